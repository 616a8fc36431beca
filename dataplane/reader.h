/* reader.h - the read side of a data plane connection's bufferevent.
 *
 * libevent's socket bufferevent asks the kernel how many bytes are waiting (ioctl FIONREAD)
 * before every read, and runs each read through its rate-limit and watermark machinery: on a
 * proxied keep-alive request that is two extra system calls and several hundred instructions
 * for nothing we use. For a plain socket the reader therefore owns the read event itself: it
 * reads straight into the bufferevent's input evbuffer and calls the
 * bufferevent's own read and event callbacks, exactly as libevent would (read callback after
 * data; event callback with BEV_EVENT_READING|EOF or |ERROR, reading already stopped). The
 * bufferevent keeps doing everything else: its input and output evbuffers, writes, connects.
 * A TLS bufferevent reads through OpenSSL, so for one the reader only forwards to
 * bufferevent_enable/disable and the bufferevent's read watermark.
 *
 * The input cap (`max`) is the read high watermark: while the input holds that much, the
 * reader stops, and an input callback resumes it once the owner drained below the cap. The
 * callback exists only while the reader is stopped at the cap, so the common case pays nothing.
 *
 * Lifetime: reader_bind() on a bufferevent before it reads; reader_unbind() before the
 * bufferevent is freed (its socket closes with it). A reader can be bound again to another
 * bufferevent; its event is allocated once and kept. Callbacks may free the reader's owner:
 * the reader touches nothing of its own after calling one. */
#ifndef DP_READER_H
#define DP_READER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#define READER_CHUNK (16 * 1024) /* bytes read per wakeup when no smaller cap applies;
                                    libevent's own default for a socket bufferevent */

typedef struct dp_reader {
    struct bufferevent *bev; /* borrowed; NULL when unbound */
    struct event *ev;        /* EV_READ|EV_PERSIST on the socket; owned (plain sockets) */
    size_t max;              /* input cap, 0 = none */
    size_t chunk;            /* bytes per read call */
    bool tls;                /* reads go through the bufferevent (OpenSSL) */
    bool on;                 /* the owner wants reading (plain sockets) */
    bool armed;              /* ev is added */
    bool full;               /* stopped at the cap; drained_cb is installed */
    bool bulk;               /* the last read was large: read the next in place */
    struct evbuffer_cb_entry *drained_cb; /* on the input, while full */
} dp_reader_t;

/** Attach to `bev` (a plain socket or TLS bufferevent), reading stopped. `max` caps the input
 *  (0: none); `chunk` caps one read (0: READER_CHUNK). 0, or -errno (left unbound). */
int reader_bind(dp_reader_t *r, struct event_base *base, struct bufferevent *bev, size_t max,
                size_t chunk);

/** Stop reading and detach, before the bufferevent is freed. Safe on an unbound reader. */
void reader_unbind(dp_reader_t *r);

/** Free the reader's event (after reader_unbind). */
void reader_release(dp_reader_t *r);

/** Start (or keep) reading. Costs nothing when already reading. */
void reader_enable(dp_reader_t *r);

/** Stop reading. Costs nothing when already stopped. */
void reader_disable(dp_reader_t *r);

/** The owner wants reading (it may still be paused at the cap). */
bool reader_enabled(const dp_reader_t *r);

#endif
