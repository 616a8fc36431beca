/* server.c - the client side of the data plane: listener, connections, request parsing.
 *
 * A connection reads into its bufferevent's input through its reader (reader.h: at most
 * DP_CLIENT_READ_MAX buffered, then reading stops), and conn_process() feeds that input to
 * the request parser, one
 * request at a time. The parser pauses after each head (the body waits until the proxy has an
 * upstream for it) and after each message (the next pipelined request waits, unparsed, until
 * this one is finished); bytes already read stay in the buffer across both pauses.
 *
 * Re-entrancy: the proxy calls back into the connection (unhold, request done) from inside the
 * parse loop as well as from upstream callbacks. conn_process() runs at most once per
 * connection at a time: a nested call only flags more work for the running loop, and a
 * connection closed inside the loop is freed when the loop unwinds. This keeps a client that
 * pipelines a thousand requests from recursing a thousand frames deep.
 *
 * Memory: an idle keep-alive connection holds its bufferevent and a small struct, nothing
 * else. The request arena (where heads are copied) is taken from a server-wide free list when a
 * request's first byte arrives and given back when the connection goes idle, so ten thousand
 * idle clients do not pin ten thousand arenas, and a busy connection never calls malloc for it.
 *
 * Timeouts, one timer per connection: proxy.timeout.header from accept (or from the first
 * byte of a later request) to the end of the head (408, slowloris); proxy.timeout.idle
 * between requests; DP_LINGER_TIMEOUT_MS for a lingering close. While a request is in the
 * proxy, the proxy's own timer runs instead. Both configured timeouts are read from the
 * current generation when armed.
 *
 * Limits: proxy.maxHeaderSize and proxy.maxHeaders are set on the parser as each request
 * begins. Past proxy.maxConnections open connections, a new connection is shed: on the TLS
 * listener it is closed at once; otherwise it gets a
 * canned 503 with Retry-After written straight to its socket, is drained for
 * DP_SHED_LINGER_MS so the answer is not destroyed by an RST, and closed - at most
 * DP_SHED_MAX at a time (beyond that, closed at once), so overload never grows memory. */
#include "server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "balancer.h"
#include "fg_log.h"
#include "fg_time.h"
#include "health.h"
#include "guard.h"
#include "proxy.h"
#include "tls.h"

#define DP_LISTEN_BACKLOG 511 /* nginx's default */
#define PEEK_IOV 8

typedef enum conn_timer_kind {
    TIMER_NONE = 0,
    TIMER_IDLE,   /* keep-alive: waiting for the next request */
    TIMER_HEADER, /* reading a head (or dropping a small unread body) */
    TIMER_LINGER, /* lingering close */
} conn_timer_kind_t;

typedef struct shed_conn {
    struct dp_server *server;
    struct shed_conn *prev, *next;
    evutil_socket_t fd;
    struct event *ev;
    uint64_t deadline_ms;
} shed_conn_t;

struct dp_server {
    struct event_base *base;
    dp_server_stats_t stats;
    shed_conn_t *sheds; /* connections refused past maxConnections, draining */
    size_t n_sheds;
    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* --tls-listen, or NULL */
    tls_server_t *tls;                   /* its certificates; borrowed */
    dp_conn_t *conns; /* open connections */
    size_t n_conns;
    dp_conn_t *free_list; /* closed connection structs, kept with their timers */
    size_t n_free;
    fg_arena_t *arenas[DP_ARENA_FREELIST_MAX]; /* request arenas not attached to a request */
    size_t n_arenas;
    struct event *accept_pause; /* re-enables accepting after EMFILE/ENFILE */
    bool draining; /* stop_accepting was called: every connection closes after its request */
    bool freeing;
};

static void conn_process(dp_conn_t *c);
static void conn_close(dp_conn_t *c);
static void conn_close_graceful(dp_conn_t *c);
static size_t conn_unparsed(dp_conn_t *c);

static int on_req_head(void *ctx, http1_head_t *head);
static int on_req_body(void *ctx, const char *at, size_t len);
static int on_req_complete(void *ctx);

static const http1_callbacks_t req_callbacks = {
    .on_head = on_req_head,
    .on_body = on_req_body,
    .on_complete = on_req_complete,
};

/* ---- timers ---------------------------------------------------------------------------- */

/* The duration of a connection timer of `kind`, from the current generation. */
static uint32_t conn_timer_ms(conn_timer_kind_t kind)
{
    dp_generation_t *g = generation_current();
    const fg_proxy_conf_t *pc = g ? &g->config->proxy : NULL;
    switch (kind) {
    case TIMER_IDLE:
        return pc && pc->idle_timeout_ms ? pc->idle_timeout_ms : FG_DEFAULT_IDLE_TIMEOUT_MS;
    case TIMER_HEADER:
        return pc && pc->header_timeout_ms ? pc->header_timeout_ms
                                           : FG_DEFAULT_HEADER_TIMEOUT_MS;
    case TIMER_LINGER:
        return DP_LINGER_TIMEOUT_MS;
    default:
        return 0;
    }
}

/* The connection timer is lazy: moving it later costs nothing, only moving it earlier calls
 * event_add. A connection that goes idle -> request -> idle keeps the timer it had, and when
 * it fires early on_conn_timer re-arms it for what is due by then. So a keep-alive request
 * makes no timer calls at all, where it made two. */
static void conn_timer_at(dp_conn_t *c, uint64_t due, uint64_t now)
{
    if (c->timer_armed_ms && c->timer_armed_ms <= due)
        return; /* fires first; on_conn_timer moves it on */
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
    c->timer_armed_ms = due;
}

static void conn_timer(dp_conn_t *c, conn_timer_kind_t kind)
{
    if (c->timer_kind == kind)
        return;
    c->timer_kind = (uint8_t)kind;
    if (kind == TIMER_NONE)
        return; /* left pending: it finds nothing due */
    uint64_t now = fg_now_ms();
    c->timer_due_ms = now + conn_timer_ms(kind);
    conn_timer_at(c, c->timer_due_ms, now);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    dp_conn_t *c = arg;
    c->timer_armed_ms = 0;
    conn_timer_kind_t kind = c->timer_kind;
    if (kind == TIMER_NONE)
        return;
    uint64_t now = fg_now_ms();
    if (now < c->timer_due_ms) {
        conn_timer_at(c, c->timer_due_ms, now);
        return;
    }
    c->timer_kind = TIMER_NONE;
    if (kind == TIMER_HEADER && c->state == DP_CONN_HEAD) {
        c->server->stats.header_timeouts++;
        proxy_finish(&c->req, 408);
        return;
    }
    if (kind == TIMER_IDLE && c->state == DP_CONN_IDLE)
        c->server->stats.idle_timeouts++;
    conn_close(c); /* idle, linger, or a body to discard that never came */
}

/* ---- connection structs ---------------------------------------------------------------- */

static void conn_destroy(dp_conn_t *c)
{
    proxy_request_teardown(&c->req);
    reader_release(&c->rd);
    if (c->timer)
        event_free(c->timer);
    fg_arena_free(c->arena);
    free(c);
}

/* A request arena for the request about to be parsed. 0 or -ENOMEM. */
static int conn_arena_attach(dp_conn_t *c)
{
    dp_server_t *s = c->server;
    if (c->arena)
        return 0;
    c->arena = s->n_arenas ? s->arenas[--s->n_arenas] : fg_arena_new(DP_REQUEST_ARENA_CHUNK);
    c->parser.arena = c->arena;
    return c->arena ? 0 : -ENOMEM;
}

static void conn_arena_detach(dp_conn_t *c)
{
    dp_server_t *s = c->server;
    if (!c->arena)
        return;
    fg_arena_reset(c->arena);
    if (s->n_arenas < DP_ARENA_FREELIST_MAX && !s->freeing)
        s->arenas[s->n_arenas++] = c->arena;
    else
        fg_arena_free(c->arena);
    c->arena = NULL;
    c->parser.arena = NULL;
}

static dp_conn_t *conn_alloc(dp_server_t *s)
{
    dp_conn_t *c = s->free_list;
    if (c) {
        s->free_list = c->next;
        s->n_free--;
    } else {
        c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        c->timer = evtimer_new(s->base, on_conn_timer, c);
        if (!c->timer || proxy_request_setup(&c->req, c, s->base) < 0) {
            conn_destroy(c);
            return NULL;
        }
    }
    c->server = s;
    c->prev = c->next = NULL;
    c->bev = NULL;
    c->state = DP_CONN_IDLE;
    c->paused = DP_PAUSE_NONE;
    c->hold = 0;
    c->in_process = c->reprocess = c->dead = false;
    c->client_eof = c->client_error = c->lingering = c->unread = false;
    c->timer_kind = TIMER_NONE;
    c->timer_armed_ms = c->timer_due_ms = 0;
    c->arena = NULL;
    http1_parser_init(&c->parser, HTTP_REQUEST, &req_callbacks, c, NULL);
    return c;
}

/* Release a closed connection: it must have no request in the proxy. */
static void conn_free(dp_conn_t *c)
{
    dp_server_t *s = c->server;
    assert(!c->req.gen && !c->req.up); /* requests end in proxy_finish, never here */
    conn_timer(c, TIMER_NONE);
    if (c->bev) {
        reader_unbind(&c->rd);
        tls_bev_close_notify(c->bev);
        bufferevent_free(c->bev); /* closes the socket */
    }
    c->bev = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    conn_arena_detach(c);
    if (s->n_free < DP_CONN_FREELIST_MAX && !s->freeing) {
        c->next = s->free_list;
        s->free_list = c;
        s->n_free++;
    } else {
        conn_destroy(c);
    }
}

static void conn_close(dp_conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (!c->in_process)
        conn_free(c);
}

/* The last response is out. Close now when nothing of the client's is pending; otherwise send
 * our FIN and read and drop whatever the client still sends until it closes or the linger
 * timer fires, so that closing with unread data does not become an RST that could destroy the
 * response in flight. */
static void conn_after_flush(dp_conn_t *c)
{
    if (c->lingering || c->dead)
        return;
    if (c->client_eof || !c->unread) {
        conn_close(c);
        return;
    }
    c->lingering = true;
    tls_bev_close_notify(c->bev);
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    conn_timer(c, TIMER_LINGER);
}

static void conn_close_graceful(dp_conn_t *c)
{
    if (c->dead || c->state == DP_CONN_CLOSING)
        return;
    if (c->client_error || c->server->freeing) {
        conn_close(c);
        return;
    }
    c->unread = c->paused != DP_PAUSE_END || conn_unparsed(c) > 0;
    c->state = DP_CONN_CLOSING;
    c->hold = 0;
    proxy_bev_flush(c->bev);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        conn_after_flush(c);
    else
        conn_timer(c, TIMER_IDLE); /* a send timeout for the last response */
}

/* ---- the parse loop -------------------------------------------------------------------- */

static int on_req_head(void *ctx, http1_head_t *head)
{
    dp_conn_t *c = ctx;
    c->paused = DP_PAUSE_HEAD;
    return HTTP1_CB_PAUSE;
}

static int on_req_body(void *ctx, const char *at, size_t len)
{
    dp_conn_t *c = ctx;
    if (c->state == DP_CONN_REQUEST)
        return proxy_request_body(&c->req, at, len) == 0 ? 0 : HTTP1_CB_ERROR;
    return 0; /* DP_CONN_DISCARD: the response is out, the body goes nowhere */
}

static int on_req_complete(void *ctx)
{
    dp_conn_t *c = ctx;
    c->paused = DP_PAUSE_END;
    return HTTP1_CB_PAUSE;
}

/* Client input the parser has not read yet (pinned bytes were read). */
static size_t conn_unparsed(dp_conn_t *c)
{
    return evbuffer_get_length(bufferevent_get_input(c->bev)) - c->pinned;
}

/* The request's head no longer needs its bytes in the input: drop them. With `keep_head` the
 * head is first copied into the request arena (its body is about to be read past it). */
static int conn_unpin(dp_conn_t *c, bool keep_head)
{
    if (c->pinned == 0)
        return 0;
    if (keep_head && proxy_request_detach_head(&c->req) < 0)
        return -ENOMEM;
    evbuffer_drain(bufferevent_get_input(c->bev), c->pinned);
    c->pinned = 0;
    return 0;
}

/* Feed buffered input to the parser, chain by chain (no pullup). With nothing buffered it
 * still runs llhttp once, so a body-less message completes right after its head resumes.
 * A head that the parser borrowed from the input (http1_head_borrowed) stays there, pinned,
 * until the request is done or its body flows: parsing resumes after it. */
static http1_result_t conn_feed(dp_conn_t *c, struct evbuffer *in)
{
    size_t used;
    if (conn_unparsed(c) == 0)
        return http1_parser_execute(&c->parser, NULL, 0, &used);
    http1_result_t rc = HTTP1_OK;
    while (rc == HTTP1_OK && conn_unparsed(c) > 0) {
        struct evbuffer_iovec iov[PEEK_IOV];
        struct evbuffer_ptr start;
        if (evbuffer_ptr_set(in, &start, c->pinned, EVBUFFER_PTR_SET) < 0)
            return HTTP1_ERROR;
        int n = evbuffer_peek(in, -1, c->pinned ? &start : NULL, iov, PEEK_IOV);
        size_t total = 0;
        for (int i = 0; i < n && i < PEEK_IOV && rc == HTTP1_OK; i++) {
            used = 0;
            rc = http1_parser_execute(&c->parser, iov[i].iov_base, iov[i].iov_len, &used);
            total += used;
        }
        if (rc == HTTP1_PAUSED && c->paused == DP_PAUSE_HEAD &&
            http1_head_borrowed(&c->parser))
            c->pinned += total; /* the head's bytes (and any blank lines before it) */
        else if (c->pinned == 0)
            evbuffer_drain(in, total);
        else if (total > 0)
            return HTTP1_ERROR; /* unreachable: nothing is read past a pinned head */
    }
    return rc;
}

static void conn_next_request(dp_conn_t *c)
{
    c->state = DP_CONN_IDLE;
    c->paused = DP_PAUSE_NONE;
    http1_parser_resume(&c->parser);
    conn_arena_detach(c);
}

static void conn_parse_error(dp_conn_t *c)
{
    int status = c->parser.error_status ? c->parser.error_status : 400;
    if (c->state == DP_CONN_DISCARD) {
        conn_close(c);
        return;
    }
    if (c->state != DP_CONN_REQUEST)
        conn_timer(c, TIMER_NONE);
    proxy_finish(&c->req, status); /* a dead parser: the connection closes after the answer */
}

/* Do as much as the connection's state allows with what is buffered. */
static void conn_step(dp_conn_t *c)
{
    for (;;) {
        if (c->dead || c->state == DP_CONN_CLOSING || c->state == DP_CONN_TUNNEL || c->hold ||
            c->paused == DP_PAUSE_END)
            return;
        struct evbuffer *in = bufferevent_get_input(c->bev);
        if (c->paused == DP_PAUSE_HEAD) {
            /* The head went upstream; its body is read next, past the pinned head. */
            if (c->parser.head.framing != HTTP1_BODY_NONE && conn_unpin(c, true) < 0) {
                proxy_finish(&c->req, 500);
                return;
            }
            http1_parser_resume(&c->parser);
            c->paused = DP_PAUSE_NONE;
        } else if (conn_unparsed(c) == 0) {
            if (c->state == DP_CONN_IDLE && (c->server->draining || c->client_eof))
                conn_close(c); /* nothing in flight and nothing more will come */
            else if (c->state == DP_CONN_IDLE)
                conn_timer(c, TIMER_IDLE);
            else if (c->client_eof && c->state == DP_CONN_DISCARD)
                conn_close(c);
            return;
        }
        if (c->state == DP_CONN_IDLE) {
            if (conn_arena_attach(c) < 0) {
                fg_log(FG_LOG_ERROR, "out of memory for a request", NULL);
                conn_close(c);
                return;
            }
            dp_generation_t *g = generation_current();
            if (g)
                http1_parser_set_limits(&c->parser, g->config->proxy.max_header_size,
                                        g->config->proxy.max_headers);
            c->state = DP_CONN_HEAD;
        }

        http1_result_t rc = conn_feed(c, in);
        if (rc == HTTP1_ERROR) {
            conn_parse_error(c);
            return;
        }
        if (rc == HTTP1_OK) {
            if ((c->state == DP_CONN_HEAD || c->state == DP_CONN_DISCARD) && c->client_eof) {
                conn_close(c); /* a head or body cut short by the client's EOF */
            } else if (c->state == DP_CONN_HEAD || c->state == DP_CONN_DISCARD) {
                conn_timer(c, TIMER_HEADER);
            } else if (c->state == DP_CONN_REQUEST) {
                proxy_request_flush(&c->req);
                if (c->client_eof && !c->dead && c->state == DP_CONN_REQUEST)
                    proxy_client_gone(&c->req); /* the body can never complete */
            }
            return;
        }
        if (c->paused == DP_PAUSE_HEAD) {
            conn_timer(c, TIMER_NONE);
            c->state = DP_CONN_REQUEST;
            proxy_start(&c->req);
        } else if (c->paused == DP_PAUSE_END) {
            if (c->state == DP_CONN_REQUEST) {
                proxy_request_end(&c->req);
            } else if (c->state == DP_CONN_DISCARD) {
                conn_timer(c, TIMER_NONE);
                conn_next_request(c);
            }
        }
    }
}

static void conn_process(dp_conn_t *c)
{
    if (c->in_process) {
        c->reprocess = true;
        return;
    }
    c->in_process = true;
    do {
        c->reprocess = false;
        conn_step(c);
    } while (c->reprocess && !c->dead);
    c->in_process = false;
    if (c->dead)
        conn_free(c);
}

/* ---- called by proxy.c ----------------------------------------------------------------- */

void server_conn_hold(dp_conn_t *c, unsigned why)
{
    /* Input keeps arriving up to DP_CLIENT_READ_MAX (the reader's cap), so a client that
     * closes while we wait is still noticed. */
    c->hold |= why;
}

void server_conn_unhold(dp_conn_t *c, unsigned why)
{
    if (!(c->hold & why))
        return;
    c->hold &= ~why;
    if (!c->hold)
        conn_process(c);
}

int server_conn_tunnel(dp_conn_t *c)
{
    if (conn_unpin(c, true) < 0) /* the input is relayed raw from here on */
        return -ENOMEM;
    c->state = DP_CONN_TUNNEL;
    c->hold = 0;
    return 0;
}

void server_conn_flush(dp_conn_t *c)
{
    if (c->bev)
        proxy_bev_flush(c->bev);
}

dp_server_stats_t *server_conn_stats(dp_conn_t *c)
{
    return &c->server->stats;
}

bool server_conn_may_keep_alive(const dp_conn_t *c)
{
    return !c->server->draining && !c->server->freeing;
}

void server_conn_request_done(dp_conn_t *c, bool keep_alive)
{
    c->hold = 0;
    conn_unpin(c, false);
    if (c->dead || c->state == DP_CONN_CLOSING)
        return;
    if (!keep_alive || c->server->freeing) {
        conn_close_graceful(c);
        return;
    }
    if (c->paused == DP_PAUSE_END) {
        conn_next_request(c);
    } else {
        c->state = DP_CONN_DISCARD; /* the proxy judged the rest of the body small */
        conn_timer(c, TIMER_HEADER);
    }
    conn_process(c);
}

/* ---- client events --------------------------------------------------------------------- */

static void on_client_read(struct bufferevent *bev, void *arg)
{
    dp_conn_t *c = arg;
    if (c->state == DP_CONN_TUNNEL) {
        proxy_tunnel_client_input(&c->req);
        return;
    }
    if (c->state == DP_CONN_CLOSING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        c->unread = true;
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    conn_process(c);
}

static void on_client_write(struct bufferevent *bev, void *arg)
{
    dp_conn_t *c = arg;
    bool empty = evbuffer_get_length(bufferevent_get_output(bev)) == 0;
    if (empty)
        bufferevent_disable(bev, EV_WRITE); /* back to direct writes */
    if (c->state == DP_CONN_CLOSING) {
        if (empty)
            conn_after_flush(c);
        return;
    }
    if (c->state == DP_CONN_REQUEST || c->state == DP_CONN_TUNNEL)
        proxy_client_drained(&c->req);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    dp_conn_t *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return; /* a TLS handshake completed: requests follow */
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR))
        c->client_eof = true;
    else
        c->client_error = true;
    if (c->state == DP_CONN_TUNNEL) {
        proxy_client_gone(&c->req); /* either side closing ends the tunnel */
        return;
    }
    if (c->state == DP_CONN_REQUEST) {
        /* A half-close after a complete request still gets its response (RFC 9112 §9.6).
         * Input not parsed yet (paused at the head, held) may still complete the request:
         * conn_step decides once it has run out of input. Anything else ends the request. */
        if (c->client_error)
            proxy_client_gone(&c->req);
        else if (c->paused == DP_PAUSE_NONE && !c->hold)
            proxy_client_gone(&c->req);
        return;
    }
    conn_close(c);
}

/* ---- shedding past maxConnections ------------------------------------------------------ */

#define SHED_BODY "{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections\"}}"
#define STR2(x) #x
#define STR(x) STR2(x)

static void shed_free(shed_conn_t *sh)
{
    dp_server_t *s = sh->server;
    if (sh->prev)
        sh->prev->next = sh->next;
    else
        s->sheds = sh->next;
    if (sh->next)
        sh->next->prev = sh->prev;
    s->n_sheds--;
    event_free(sh->ev);
    evutil_closesocket(sh->fd);
    free(sh);
}

/* Drop what the refused client sends until it closes or the linger time is up. */
static void on_shed_event(evutil_socket_t fd, short what, void *arg)
{
    shed_conn_t *sh = arg;
    char buf[4096];
    if (what & EV_READ) {
        for (int i = 0; i < 16; i++) { /* bounded work per wakeup */
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                shed_free(sh);
                return;
            }
            if (n < 0)
                break;
        }
    }
    uint64_t now = fg_now_ms();
    if (!(what & EV_READ) || now >= sh->deadline_ms) {
        shed_free(sh);
        return;
    }
    uint64_t left = sh->deadline_ms - now;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000)};
    event_add(sh->ev, &tv);
}

static void shed_connection(dp_server_t *s, evutil_socket_t fd)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: application/json\r\n"
                               "Retry-After: " STR(DP_RETRY_AFTER_S) "\r\n"
                               "Connection: close\r\n"
                               "Content-Length: ";
    char msg[sizeof resp + 64 + sizeof SHED_BODY];
    int n = snprintf(msg, sizeof msg, "%s%zu\r\n\r\n%s", resp, sizeof SHED_BODY - 1, SHED_BODY);
    s->stats.connections_shed++;
    shed_conn_t *sh = s->n_sheds < DP_SHED_MAX ? calloc(1, sizeof *sh) : NULL;
    if (sh)
        sh->ev = event_new(s->base, fd, EV_READ, on_shed_event, sh);
    if (!sh || !sh->ev) {
        free(sh);
        evutil_closesocket(fd); /* too many at once: no answer at all, but no growth either */
        return;
    }
    evutil_make_socket_nonblocking(fd);
    /* A fresh socket's send buffer takes this small answer whole. */
    if (n > 0)
        (void)send(fd, msg, (size_t)n, MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    sh->server = s;
    sh->fd = fd;
    sh->deadline_ms = fg_now_ms() + DP_SHED_LINGER_MS;
    sh->next = s->sheds;
    if (s->sheds)
        s->sheds->prev = sh;
    s->sheds = sh;
    s->n_sheds++;
    struct timeval tv = {DP_SHED_LINGER_MS / 1000, (DP_SHED_LINGER_MS % 1000) * 1000};
    event_add(sh->ev, &tv);
}

static size_t max_connections(void)
{
    dp_generation_t *g = generation_current();
    return g && g->config->proxy.max_connections ? g->config->proxy.max_connections
                                                 : FG_DEFAULT_MAX_CONNECTIONS;
}

/* ---- listener -------------------------------------------------------------------------- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    dp_server_t *s = arg;
    if (s->draining) {
        close(fd);
        return;
    }
    if (s->n_conns >= max_connections()) {
        if (l == s->tls_listener) {
            /* A 503 needs a TLS handshake first: the work shedding exists to avoid, and
             * plaintext would be garbage to the client. Close, as nginx does. */
            s->stats.connections_shed++;
            evutil_closesocket(fd);
        } else {
            shed_connection(s, fd);
        }
        return;
    }
    s->stats.connections_accepted++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    dp_conn_t *c = conn_alloc(s);
    if (!c) {
        close(fd);
        fg_log(FG_LOG_ERROR, "out of memory accepting a connection", NULL);
        return;
    }
    c->bev = l == s->tls_listener ? tls_server_bev(s->tls, s->base, fd)
                                  : bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev || reader_bind(&c->rd, s->base, c->bev, DP_CLIENT_READ_MAX, 0) < 0) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        conn_destroy(c);
        return;
    }
    const void *addr = sa->sa_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)sa)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, addr, c->peer_ip, sizeof c->peer_ip))
        strcpy(c->peer_ip, "unknown");
    c->peer_ip_len = (uint8_t)strlen(c->peer_ip);

    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;

    bufferevent_setcb(c->bev, on_client_read, on_client_write, on_client_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, DP_LOW_WATERMARK, 0);
    bufferevent_disable(c->bev, EV_WRITE); /* writes go out directly (proxy_bev_flush) */
    reader_enable(&c->rd);
    conn_timer(c, TIMER_HEADER); /* the first request is due within the header timeout */
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    dp_server_t *s = arg;
    if (!s->draining) {
        evconnlistener_enable(s->listener);
        if (s->tls_listener)
            evconnlistener_enable(s->tls_listener);
    }
}

/* Out of descriptors the listening socket stays readable: without a pause the loop would spin
 * on failing accepts. Stop accepting for a moment (nginx does the same). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    dp_server_t *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    fg_log(FG_LOG_WARN, "accept failed", "error", evutil_socket_error_to_string(err), NULL);
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        struct timeval tv = {0, DP_ACCEPT_PAUSE_MS * 1000};
        evconnlistener_disable(l);
        evtimer_add(s->accept_pause, &tv);
    }
}

/* "host:port", "[v6]:port", "localhost:port", ":port" / "*:port" (every address). */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, int *len)
{
    char buf[128];
    if (!spec || strlen(spec) >= sizeof buf - 16)
        return -EINVAL;
    if (spec[0] == ':')
        snprintf(buf, sizeof buf, "0.0.0.0%s", spec);
    else if (strncmp(spec, "*:", 2) == 0)
        snprintf(buf, sizeof buf, "0.0.0.0%s", spec + 1);
    else if (strncmp(spec, "localhost:", 10) == 0)
        snprintf(buf, sizeof buf, "127.0.0.1%s", spec + 9);
    else
        snprintf(buf, sizeof buf, "%s", spec);
    if (!strrchr(buf, ':') || buf[strlen(buf) - 1] == ':')
        return -EINVAL; /* a port is required */
    *len = (int)sizeof *ss;
    if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss, len) < 0)
        return -EINVAL;
    return 0;
}

/* The TLS listener: same accept path, with a TLS bufferevent per connection. 0 or -errno. */
static int server_listen_tls(dp_server_t *s, const dp_server_conf_t *conf, fg_error_t *err)
{
    struct sockaddr_storage ss;
    int sslen;
    if (!conf->tls || parse_listen(conf->tls_listen, &ss, &sslen) < 0)
        return fg_error_set(err, "tls-listen", "bad TLS listen address \"%s\" (want host:port)",
                            conf->tls_listen);
    s->tls = conf->tls;
    s->tls_listener = evconnlistener_new_bind(
        s->base, on_accept, s,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
            LEV_OPT_CLOSE_ON_EXEC,
        DP_LISTEN_BACKLOG, (struct sockaddr *)&ss, sslen);
    if (!s->tls_listener) {
        int e = errno ? errno : EADDRINUSE;
        return fg_error_setc(err, -e, "tls-listen", "cannot listen on %s: %s", conf->tls_listen,
                             strerror(e));
    }
    evconnlistener_set_error_cb(s->tls_listener, on_accept_error);
    return 0;
}

dp_server_t *server_start(struct event_base *base, const dp_server_conf_t *conf, fg_error_t *err)
{
    struct sockaddr_storage ss;
    int sslen;
    if (!conf || parse_listen(conf->listen, &ss, &sslen) < 0) {
        fg_error_set(err, "listen", "bad listen address \"%s\" (want host:port)",
                     conf && conf->listen ? conf->listen : "");
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN); /* a vanished peer is an error return, not a signal */
    if (upstream_init(base) < 0) {
        fg_error_setc(err, -ENOMEM, "", "out of memory");
        return NULL;
    }
    health_init(base); /* active health checks run on this loop */
    upstream_set_addr_check(guard_addr_check); /* the SSRF guard, on every connect */
    dp_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        fg_error_setc(err, -ENOMEM, "", "out of memory");
        return NULL;
    }
    s->base = base;
    s->accept_pause = evtimer_new(base, on_accept_resume, s);
    if (!s->accept_pause) {
        free(s);
        fg_error_setc(err, -ENOMEM, "", "out of memory");
        return NULL;
    }
    /* SO_REUSEPORT lets --workers processes share the port (the kernel balances accepts). */
    s->listener = evconnlistener_new_bind(
        base, on_accept, s,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
            LEV_OPT_CLOSE_ON_EXEC,
        DP_LISTEN_BACKLOG, (struct sockaddr *)&ss, sslen);
    if (!s->listener) {
        int e = errno;
        fg_error_setc(err, e ? -e : -EADDRINUSE, "listen", "cannot listen on %s: %s",
                      conf->listen, strerror(e ? e : EADDRINUSE));
        event_free(s->accept_pause);
        free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    if (conf->tls_listen && server_listen_tls(s, conf, err) < 0) {
        server_free(s);
        return NULL;
    }
    return s;
}

void server_stop_accepting(dp_server_t *s)
{
    if (!s || s->draining)
        return;
    s->draining = true;
    evconnlistener_disable(s->listener);
    if (s->tls_listener)
        evconnlistener_disable(s->tls_listener);
    evtimer_del(s->accept_pause);
    /* Idle keep-alive connections have nothing in flight: close them now. The others close
     * after their current response (server_conn_may_keep_alive says no). */
    dp_conn_t *c = s->conns;
    while (c) {
        dp_conn_t *next = c->next;
        if (c->state == DP_CONN_IDLE &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            conn_close(c);
        c = next;
    }
}

const dp_server_stats_t *server_stats(const dp_server_t *s)
{
    return &s->stats;
}

size_t server_active_connections(const dp_server_t *s)
{
    return s ? s->n_conns : 0;
}

/* One line with every counter at shutdown: until /metrics exists (issue 7) this is where an
 * operator (and the tests) can read why requests were refused or timed out. */
static void log_stats(const dp_server_stats_t *st)
{
    char v[13][24];
    const uint64_t n[13] = {st->connections_accepted, st->connections_shed, st->bad_requests,
                            st->not_implemented,      st->version_refused,  st->head_too_large,
                            st->body_too_large,       st->header_timeouts,  st->client_timeouts,
                            st->idle_timeouts,        st->connect_timeouts, st->upstream_timeouts,
                            st->request_timeouts};
    for (int i = 0; i < 13; i++)
        snprintf(v[i], sizeof v[i], "%llu", (unsigned long long)n[i]);
    fg_log(FG_LOG_INFO, "http counters", "connections_accepted", v[0], "connections_shed", v[1],
           "bad_requests", v[2], "not_implemented", v[3], "version_refused", v[4],
           "head_too_large", v[5], "body_too_large", v[6], "header_timeouts", v[7],
           "client_timeouts", v[8], "idle_timeouts", v[9], "connect_timeouts", v[10],
           "upstream_timeouts", v[11], "request_timeouts", v[12], NULL);
}

void server_free(dp_server_t *s)
{
    if (!s)
        return;
    log_stats(&s->stats);
    s->freeing = true;
    while (s->conns) {
        dp_conn_t *c = s->conns;
        if (c->state == DP_CONN_REQUEST)
            proxy_finish(&c->req, 499); /* ends in conn_close via request_done */
        else
            conn_close(c);
        if (s->conns == c) /* not freed (cannot happen outside the loop): force it */
            conn_free(c);
    }
    while (s->sheds)
        shed_free(s->sheds);
    while (s->free_list) {
        dp_conn_t *c = s->free_list;
        s->free_list = c->next;
        conn_destroy(c);
    }
    while (s->n_arenas)
        fg_arena_free(s->arenas[--s->n_arenas]);
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->tls_listener)
        evconnlistener_free(s->tls_listener);
    event_free(s->accept_pause);
    balancer_shutdown(); /* stops health checks, which hold upstream connections */
    upstream_shutdown();
    free(s);
}
