/* publisher.h - the control plane's side of the snapshot protocol (proto/PROTOCOL.md).
 *
 * The publisher runs its own thread with its own libevent event_base and its own SQLite
 * connection. It accepts data planes on a Unix socket and on TCP with mutual TLS, registers
 * each by the dp_id of its HELLO, sends it the current stored snapshot when its
 * applied_version differs, pushes every new version (bursts of notifications coalesced over
 * a few ms into one push), records ACK, NACK and liveness, and drops a peer that stays silent
 * for PUB_SILENCE_INTERVALS ping intervals. A version a data plane NACKed is never sent to it
 * again; a data plane speaking another protocol version is recorded as incompatible and not
 * fed. A HELLO on the unix socket without the configured data plane secret, or with a wrong
 * one, is refused (a NACK of version 0 saying why, then the connection is closed) before
 * anything else is sent, logged with the peer, and never enters the registry.
 *
 * Threading: publisher_notify and publisher_dataplanes_json may be called from any thread
 * (the admin API's); everything else belongs to the thread that called publisher_start. */
#ifndef CTL_PUBLISHER_H
#define CTL_PUBLISHER_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "fg_error.h"

#define PUB_PING_INTERVAL_MS 5000u       /* PING each data plane this often */
#define PUB_SILENCE_INTERVALS 3u         /* silent for this many ping intervals: dropped */
#define PUB_COALESCE_MS 5u               /* notifications within this window: one push */
#define PUB_POLL_INTERVAL_MS 1000u       /* also re-read the version this often (changes
                                          * committed by another process, lost notifies) */
#define PUB_MAX_CONNECTIONS 1024u        /* concurrent data plane connections */
#define PUB_MAX_DATAPLANES 4096u         /* registry records, connected or remembered */
#define PUB_FORGET_AFTER_MS 3600000u     /* a disconnected record is kept this long (1 h) */
#define PUB_MAX_OUTPUT_BYTES (256u << 20) /* queued to one peer beyond this: too slow, drop */
#define PUB_SOCKET_MODE 0660
#define PUB_LISTEN_BACKLOG 128
#define PUB_MAX_TCP_LISTENERS 8          /* tcp:// (mutual TLS) listen addresses */
#define PUB_HELLO_MAX_PAYLOAD (64u << 10) /* a frame before an accepted HELLO larger than
                                           * this closes the connection: an unauthenticated
                                           * peer cannot make ctl buffer a 64 MiB frame */

typedef struct publisher publisher_t;

typedef struct publisher_conf {
    const char *listen;         /* "unix:PATH" */
    const char *const *tcp_listen; /* n_tcp_listen "tcp://HOST:PORT" addresses for remote
                                    * data planes, served with mutual TLS */
    size_t n_tcp_listen;        /* 0..PUB_MAX_TCP_LISTENERS */
    const char *tls_ca;         /* tcp://: CA file client certificates must chain to */
    const char *tls_cert;       /* tcp://: the control plane's certificate chain (PEM) */
    const char *tls_key;        /* tcp://: its private key (PEM) */
    const char *db_path;        /* the store the snapshots are read from (own connection) */
    uint32_t max_payload;       /* frame payload cap, bytes; 0 = FG_FRAME_MAX_PAYLOAD_DEFAULT */
    uint32_t ping_interval_ms;  /* 0 = PUB_PING_INTERVAL_MS */
    uint32_t silence_intervals; /* 0 = PUB_SILENCE_INTERVALS */
    uint32_t coalesce_ms;       /* 0 = PUB_COALESCE_MS */
    uint32_t poll_interval_ms;  /* 0 = PUB_POLL_INTERVAL_MS */
    const char *dp_secret;      /* the shared secret a HELLO must carry on the unix socket
                                 * (on tcp:// the client certificate suffices; a secret sent
                                 * there must still be right); compared in constant time,
                                 * copied, never logged. NULL or "": none required */
} publisher_conf_t;

/** Bind the listener (a stale socket file is replaced, a live one is refused; the new one
 *  gets PUB_SOCKET_MODE) and the tcp:// listeners (TLS 1.2+, a client certificate signed by
 *  tls_ca required: a data plane without one is refused during the handshake and the reason
 *  logged), open the store, load the latest snapshot and start the thread.
 *  Strings in `conf` are copied. 0 with *out owned by the caller, or -errno with err. */
int publisher_start(const publisher_conf_t *conf, publisher_t **out, fg_error_t *err);

/** A new version was committed: push it (after the coalescing delay). Thread-safe,
 *  non-blocking, cheap; NULL is accepted. */
void publisher_notify(publisher_t *pub);

/** The data plane registry as the items array of GET /api/v1/dataplanes, each item's
 *  status judged against `current_version`. Thread-safe. Caller owns the result. */
cJSON *publisher_dataplanes_json(publisher_t *pub, int64_t current_version);

/** The newest version the publisher has loaded (and pushes); 0 before the first. */
int64_t publisher_version(const publisher_t *pub);

/** Stop the loop, join the thread, close every connection, remove the socket file, free.
 *  Call from the thread that started it. NULL is accepted. */
void publisher_stop(publisher_t *pub);

#endif
