/* reader.c - reading a connection's socket into its bufferevent's input (see reader.h for why
 * not through libevent's own read path). */
#include "reader.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#include "tls.h"

#define READER_IOV 2     /* evbuffer_reserve_space() hands out at most two chains for a read */
#define READER_BULK 4096 /* a read this large is followed by one in place (see reader_fill) */
#define READER_SCRATCH (64 * 1024) /* ordinary reads land here first; >= any reader's chunk */

static void reader_arm(dp_reader_t *r)
{
    if (!r->armed) {
        event_add(r->ev, NULL);
        r->armed = true;
    }
}

static void reader_disarm(dp_reader_t *r)
{
    if (r->armed) {
        event_del(r->ev);
        r->armed = false;
    }
}

static void on_input_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg);

/* At the cap: stop until the owner drains the input below it. */
static void reader_stop_full(dp_reader_t *r, struct evbuffer *in)
{
    reader_disarm(r);
    if (!r->full) {
        r->drained_cb = evbuffer_add_cb(in, on_input_drained, r);
        r->full = r->drained_cb != NULL; /* without it, reading resumes on the next enable */
    }
}

static void reader_clear_full(dp_reader_t *r)
{
    if (r->full) {
        evbuffer_remove_cb_entry(bufferevent_get_input(r->bev), r->drained_cb);
        r->drained_cb = NULL;
        r->full = false;
    }
}

static void on_input_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    dp_reader_t *r = arg;
    if (info->n_deleted == 0 || evbuffer_get_length(in) >= r->max)
        return;
    reader_clear_full(r); /* removing the running callback is safe: libevent kept its next */
    if (r->on)
        reader_arm(r);
}

/* How much one read may bring in: the chunk, less what the cap leaves. 0 at the cap. */
static size_t reader_room(const dp_reader_t *r, struct evbuffer *in)
{
    if (!r->max)
        return r->chunk;
    size_t len = evbuffer_get_length(in);
    if (len >= r->max)
        return 0;
    return r->max - len < r->chunk ? r->max - len : r->chunk;
}

/* The input end is frozen by the socket bufferevent outside its own read path: thaw it for
 * the read. */
static int reader_commit(struct evbuffer *in, const void *data, size_t n)
{
    evbuffer_unfreeze(in, 0);
    int rc = evbuffer_add(in, data, n);
    evbuffer_freeze(in, 0);
    return rc;
}

/* A large read straight into the input's free space: no copy. */
static ssize_t reader_fill_in_place(evutil_socket_t fd, struct evbuffer *in, size_t want)
{
    struct evbuffer_iovec vec[READER_IOV];
    struct iovec iov[READER_IOV];
    evbuffer_unfreeze(in, 0);
    int n = evbuffer_reserve_space(in, (ev_ssize_t)want, vec, READER_IOV);
    if (n <= 0) {
        evbuffer_freeze(in, 0);
        errno = ENOMEM;
        return -1;
    }
    size_t space = 0;
    int used = 0;
    for (; used < n && space < want; used++) {
        size_t take = vec[used].iov_len < want - space ? vec[used].iov_len : want - space;
        iov[used].iov_base = vec[used].iov_base;
        iov[used].iov_len = take;
        space += take;
    }
    ssize_t got = readv(fd, iov, used);
    int err = errno;
    if (got > 0) {
        size_t rest = (size_t)got;
        for (int i = 0; i < used; i++) {
            vec[i].iov_len = rest < iov[i].iov_len ? rest : iov[i].iov_len;
            rest -= vec[i].iov_len;
        }
        evbuffer_commit_space(in, vec, used);
    }
    evbuffer_freeze(in, 0);
    errno = err;
    return got;
}

/* One read into the input. Bytes read, 0 at EOF, -1 with errno set.
 *
 * Most reads are one small request or response. Reserving room for a whole chunk in the input
 * would cost a large malloc (outside glibc's per-thread cache) and evbuffer's reserve and
 * commit bookkeeping on every read; reading into a scratch buffer and appending the bytes is
 * a small copy into the input's last chain (or a small new one). A read of READER_BULK bytes or
 * more says a transfer is under way: the next one goes straight into the input. */
static ssize_t reader_fill(dp_reader_t *r, evutil_socket_t fd, struct evbuffer *in, size_t want)
{
    /* The worker is single-threaded and the bytes are copied out before this returns, so one
     * scratch buffer per process serves every connection. */
    static char scratch[READER_SCRATCH];
    ssize_t got;
    if (r->bulk) {
        got = reader_fill_in_place(fd, in, want);
    } else {
        got = recv(fd, scratch, want < sizeof scratch ? want : sizeof scratch, 0);
        if (got > 0 && reader_commit(in, scratch, (size_t)got) < 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    if (got > 0)
        r->bulk = (size_t)got >= READER_BULK;
    return got;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    dp_reader_t *r = arg;
    struct bufferevent *bev = r->bev;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t want = reader_room(r, in);
    if (want == 0) {
        reader_stop_full(r, in);
        return;
    }
    ssize_t got = reader_fill(r, fd, in, want);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    bufferevent_data_cb readcb;
    bufferevent_event_cb eventcb;
    void *cbarg;
    bufferevent_getcb(bev, &readcb, NULL, &eventcb, &cbarg);
    if (got > 0) {
        if (readcb)
            readcb(bev, cbarg); /* may free the reader's owner: nothing after */
        return;
    }
    /* EOF or an error: reading stops, as libevent's own read path does, then the event
     * callback hears of it (errno intact for EVUTIL_SOCKET_ERROR()). */
    int err = errno;
    reader_disable(r);
    errno = got == 0 ? 0 : err;
    if (eventcb)
        eventcb(bev, (short)(BEV_EVENT_READING | (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR)),
                cbarg);
}

int reader_bind(dp_reader_t *r, struct event_base *base, struct bufferevent *bev, size_t max,
                size_t chunk)
{
    reader_unbind(r);
    r->bev = bev;
    r->max = max;
    r->chunk = chunk ? chunk : READER_CHUNK;
    r->tls = tls_bev_is_tls(bev);
    if (r->tls) {
        bufferevent_setwatermark(bev, EV_READ, 0, max);
        bufferevent_set_max_single_read(bev, r->chunk);
        return 0;
    }
    evutil_socket_t fd = bufferevent_getfd(bev);
    int rc = 0;
    if (!r->ev) {
        r->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, r);
        rc = r->ev ? 0 : -ENOMEM;
    } else if (event_assign(r->ev, base, fd, EV_READ | EV_PERSIST, on_readable, r) < 0) {
        rc = -EINVAL;
    }
    if (rc < 0)
        r->bev = NULL; /* left unbound */
    return rc;
}

void reader_unbind(dp_reader_t *r)
{
    if (!r->bev)
        return;
    if (!r->tls) {
        reader_clear_full(r);
        reader_disarm(r);
    }
    r->on = false;
    r->bev = NULL;
}

void reader_release(dp_reader_t *r)
{
    reader_unbind(r);
    if (r->ev)
        event_free(r->ev);
    r->ev = NULL;
}

/* A TLS bufferevent's read state is libevent's (it stops reading by itself at EOF): ask it. */
void reader_enable(dp_reader_t *r)
{
    if (r->tls) {
        if (!(bufferevent_get_enabled(r->bev) & EV_READ))
            bufferevent_enable(r->bev, EV_READ);
        return;
    }
    if (r->on)
        return;
    r->on = true;
    struct evbuffer *in = bufferevent_get_input(r->bev);
    if (r->max && evbuffer_get_length(in) >= r->max)
        reader_stop_full(r, in);
    else
        reader_arm(r);
}

void reader_disable(dp_reader_t *r)
{
    if (r->tls) {
        if (bufferevent_get_enabled(r->bev) & EV_READ)
            bufferevent_disable(r->bev, EV_READ);
        return;
    }
    if (!r->on)
        return;
    r->on = false;
    reader_clear_full(r);
    reader_disarm(r);
}

bool reader_enabled(const dp_reader_t *r)
{
    return r->tls ? (bufferevent_get_enabled(r->bev) & EV_READ) != 0 : r->on;
}
