/* proxy.c - one request through the gateway: route, upstream, forward, stream back, finish.
 *
 * The request is driven by events on two bufferevents (client, upstream) and one timer. Each
 * callback checks for its failure first, does one step, and arms what comes next; every failure
 * and every success ends in proxy_finish(). llhttp callbacks never finish a request: they pause
 * the parser and the code that called llhttp acts once it has returned, so no parser or buffer
 * is torn down under llhttp's feet.
 *
 * Framing is normalised in both directions, never passed through: a request body goes up with
 * the Content-Length llhttp validated or re-chunked from the decoded chunks; a response goes
 * down with its Content-Length, or re-chunked (chunked and close-delimited bodies, for HTTP/1.1
 * clients), or close-delimited (HTTP/1.0 clients). What the upstream sees as one message is
 * exactly what llhttp parsed as one message. */
#include "proxy.h"

#include <errno.h>
#include <string.h>

#include <event2/buffer.h>

#include "accesslog.h"
#include "auth.h"
#include "fg_log.h"
#include "fg_time.h"
#include "guard.h"
#include "metrics.h"
#include "overload.h"
#include "ratelimit.h"
#include "retry.h"
#include "tls.h"

/* The JSON errors a request can end with. Static text only: request data is never echoed. */
typedef struct error_def {
    int status;
    const char *code;
    const char *message;
} error_def_t;

static const error_def_t error_defs[] = {
    {400, "bad_request", "the request is malformed"},
    {403, "forbidden", "the request is not allowed"},
    {404, "no_route", "no route matches the request"},
    {405, "method_not_allowed", "the method is not supported"},
    {408, "request_timeout", "the request was not received in time"},
    {413, "payload_too_large", "the request body exceeds the size limit"},
    {431, "header_too_large", "the request head exceeds the size limit"},
    {500, "internal_error", "internal error"},
    {501, "not_implemented", "the transfer coding is not supported"},
    {502, "bad_gateway", "the upstream refused or broke the connection"},
    {503, "not_ready", "no configuration has been applied yet"},
    {504, "gateway_timeout", "the upstream did not respond in time"},
    {505, "version_not_supported", "the HTTP version is not supported"},
    {401, "unauthorized", "a valid API key is required"},
    {429, "rate_limited", "too many requests"},
};

#define ERROR_DEF_500 7 /* index of the 500 entry: the answer for an unlisted status */

/* Traffic-control refusals: 503s that say why, with Retry-After. */
static const error_def_t refusal_breaker = {503, "circuit_open",
                                            "every target of the upstream is failing"};
static const error_def_t refusal_overload = {503, "overloaded",
                                             "the gateway is overloaded; retry later"};

#define ERROR_EXTRA_MAX 1024 /* bytes of a refusal's own header lines (429, 401, 503) */

static const error_def_t *error_lookup(int status)
{
    for (size_t i = 0; i < sizeof error_defs / sizeof error_defs[0]; i++)
        if (error_defs[i].status == status)
            return &error_defs[i];
    return &error_defs[ERROR_DEF_500];
}

static void on_request_timer(evutil_socket_t fd, short what, void *arg);
static void on_up_read(struct bufferevent *bev, void *arg);
static void on_up_write(struct bufferevent *bev, void *arg);
static void on_up_event(struct bufferevent *bev, short what, void *arg);
static int on_resp_head(void *ctx, http1_head_t *head);
static int on_resp_body(void *ctx, const char *at, size_t len);
static int on_resp_complete(void *ctx);

static const http1_callbacks_t resp_callbacks = {
    .on_head = on_resp_head,
    .on_body = on_resp_body,
    .on_complete = on_resp_complete,
};

/* ---- small helpers --------------------------------------------------------------------- */

void proxy_bev_flush(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) == 0 || (bufferevent_get_enabled(bev) & EV_WRITE))
        return;
    /* Socket bufferevents only (TLS ones, issue 3, must leave writing to OpenSSL's filter).
     * A socket bufferevent keeps its output's start frozen except inside its own write
     * callback; do what that callback does. A failed write (EPIPE, ECONNRESET) leaves the
     * data queued: libevent's write event then retries it and reports the error through the
     * event callback, asynchronously. */
    if (tls_bev_is_tls(bev)) { /* libevent encrypts and writes */
        bufferevent_enable(bev, EV_WRITE);
        return;
    }
    evbuffer_unfreeze(out, 1);
    (void)evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
}

static void timer_arm(struct event *ev, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

/* Arm the request timer for whichever comes first: the phase's own timeout or the
 * whole-request deadline. Progress only stamps last_io_ms; the timer re-arms itself. The timer
 * is lazy (as the connection's, server.c): one already due earlier is left alone, and it stays
 * pending after the request ends, so back-to-back requests on a connection rarely touch it. */
static void request_timer_arm(dp_request_t *r)
{
    uint64_t now = fg_now_ms();
    uint64_t due = r->phase == DP_REQ_CONNECT ? r->phase_due_ms : r->last_io_ms + r->io_timeout_ms;
    if (r->deadline_ms && r->deadline_ms < due)
        due = r->deadline_ms;
    if (r->timer_armed_ms && r->timer_armed_ms <= due)
        return;
    timer_arm(r->timer, due > now ? (uint32_t)(due - now) : 0);
    r->timer_armed_ms = due;
}

static void request_reset(dp_request_t *r)
{
    dp_conn_t *c = r->conn;
    struct event *timer = r->timer;
    uint64_t armed = r->timer_armed_ms;
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->timer = timer;
    r->timer_armed_ms = armed;
}

int proxy_request_setup(dp_request_t *r, dp_conn_t *c, struct event_base *base)
{
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->timer = evtimer_new(base, on_request_timer, r);
    return r->timer ? 0 : -ENOMEM;
}

void proxy_request_teardown(dp_request_t *r)
{
    if (r->timer)
        event_free(r->timer);
    r->timer = NULL;
}

static struct evbuffer *client_out(const dp_request_t *r)
{
    return bufferevent_get_output(r->conn->bev);
}

static struct evbuffer *up_out(const dp_request_t *r)
{
    return bufferevent_get_output(upstream_bev(r->up));
}

static bool client_is_http11(const dp_request_t *r)
{
    return r->head->major > 1 || (r->head->major == 1 && r->head->minor >= 1);
}

/* Can the connection carry another request once this response is out? Only if the rest of
 * the request body is read or small enough to read and drop (never after Expect:
 * 100-continue, whose client may be holding its body back: RFC 9110 §10.1.1). */
static bool request_can_settle(const dp_request_t *r)
{
    if (r->req_done)
        return true;
    switch (r->head->framing) {
    case HTTP1_BODY_NONE:
        return true;
    case HTTP1_BODY_LENGTH:
        return (!r->head->expect_continue || r->sent_continue) &&
               r->head->content_length - r->req_body_bytes <= DP_DISCARD_BODY_MAX;
    default:
        return false;
    }
}

/* ---- finishing ------------------------------------------------------------------------- */

/* Everything about a finished request is here: the access log and metrics (issue 7). */
static void request_finished(dp_request_t *r, int status)
{
    int st = status ? status : r->status;
    uint64_t now = trace_now_us();
    uint64_t dur = r->trace.start_us && now > r->trace.start_us ? now - r->trace.start_us : 0;
    metrics_counters()->requests++;
    if (!r->gen || r->gen->config->metrics.enabled)
        metrics_request(r->route ? r->route->id : NULL, r->head ? r->head->method : 0, st, dur,
                        r->req_body_bytes, r->resp_body_bytes,
                        r->upstream ? r->upstream->name : NULL, r->trace.upstream_us);
    trace_ensure_id(&r->trace);
    accesslog_request(r, st, now);
}

/* The client-caused refusals, counted by status (timeouts are counted where detected). */
static void count_refusal(dp_server_stats_t *st, int status)
{
    switch (status) {
    case 400: st->bad_requests++; break;
    case 413: st->body_too_large++; break;
    case 431: st->head_too_large++; break;
    case 501: st->not_implemented++; break;
    case 505: st->version_refused++; break;
    default: break;
    }
}

/* ---- traffic control: attempt outcomes, retries (issue 6) ------------------------------ */

/* What the attempt's outcome says about its target: gateway errors and 5xx count against it;
 * a client that left or stalled says nothing. */
static bal_outcome_t attempt_outcome(const dp_request_t *r, int status)
{
    if (status == 0)
        return r->status >= 500 ? BAL_FAILED : BAL_OK;
    return status == 502 || status == 504 ? BAL_FAILED : BAL_NEUTRAL;
}

static void attempt_end(dp_request_t *r, bal_outcome_t outcome)
{
    if (!r->picked)
        return;
    r->picked = false;
    balancer_done(r->bu, r->target_index, outcome);
}

static void traffic_end(dp_request_t *r, int status)
{
    attempt_end(r, attempt_outcome(r, status));
    if (r->pending) {
        r->pending = false;
        overload_done();
    }
}

static bool method_idempotent(unsigned method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_PUT ||
           method == HTTP_DELETE || method == HTTP_OPTIONS || method == HTTP_TRACE;
}

/* May the failed attempt be tried again? Only while the upstream's `retries` last, nothing of
 * the response went to the client, no body byte went up (bodies are streamed, not buffered:
 * a partly sent body cannot be sent again), the method is idempotent or the request never
 * reached the upstream (`reached` false: the connect failed), the backoff ends before the
 * whole-request deadline, and the global retry budget has a retry left. */
static bool retry_allowed(const dp_request_t *r, bool reached, uint32_t *delay_ms)
{
    if (!r->bu || r->attempts >= r->bu->conf->retries || r->resp_started ||
        r->req_body_bytes > 0 || (reached && !method_idempotent(r->head->method)))
        return false;
    uint64_t now = fg_now_ms();
    *delay_ms = retry_backoff_ms(r->attempts + 1);
    if (r->deadline_ms && now + *delay_ms >= r->deadline_ms)
        return false;
    return retry_budget_withdraw(now);
}

/* Drop the attempt's connection and wait out the backoff; the timer then dispatches again,
 * to another target when there is one. The client's body stays unread meanwhile. */
static void retry_schedule(dp_request_t *r, uint32_t delay_ms)
{
    r->attempts++;
    metrics_counters()->retries++;
    if (r->up) {
        struct bufferevent *ub = upstream_bev(r->up);
        if (ub)
            bufferevent_setcb(ub, NULL, NULL, NULL, NULL);
        upstream_release(r->up, false);
        r->up = NULL;
    }
    r->backoff = true;
    r->phase = DP_REQ_CONNECT;
    r->phase_due_ms = fg_now_ms() + delay_ms;
    server_conn_hold(r->conn, DP_HOLD_UPSTREAM);
    request_timer_arm(r);
}

/* An attempt failed before any of its response reached the client: true when a retry is
 * scheduled (the request lives on), false when the caller is to finish it. */
static bool attempt_failed(dp_request_t *r, bool reached)
{
    uint32_t delay;
    attempt_end(r, BAL_FAILED);
    if (!retry_allowed(r, reached, &delay))
        return false;
    retry_schedule(r, delay);
    return true;
}

void proxy_finish(dp_request_t *r, int status)
{
    dp_conn_t *c = r->conn;
    llhttp_errno_t perr = llhttp_get_errno(&c->parser.ll);
    bool parser_ok = perr == HPE_OK || perr == HPE_PAUSED;
    bool keep;

    if (status == 0) {
        keep = !r->resp_close;
    } else if (status == 499 || r->resp_started) {
        keep = false; /* the client left, or its response is cut short: it sees the close */
    } else {
        count_refusal(server_conn_stats(c), status);
        /* After CONNECT llhttp reads the stream as another protocol, and an oversized body is
         * not worth reading to drop: neither keeps its connection. */
        keep = r->head && parser_ok && r->head->keep_alive && r->head->method != HTTP_CONNECT &&
               status != 413 && server_conn_may_keep_alive(c) && request_can_settle(r);
        const error_def_t *e = error_lookup(status);
        /* A 401 names the credentials this gateway takes (RFC 9110 §11.6.1); a 429 carries
         * its RateLimit-* fields and the limit's message; a traffic-control 503 (shed, breaker
         * open) says when to come back. */
        const error_def_t *d = r->refusal ? r->refusal : e;
        const char *extra = r->extra_headers;
        size_t extra_len = r->extra_headers_len;
        char retry_after[32];
        if (status == 401 && r->gen && (extra = auth_challenge(r->gen->auth))) {
            extra_len = strlen(extra);
        } else if (r->refusal) {
            extra_len = (size_t)snprintf(retry_after, sizeof retry_after, "Retry-After: %d\r\n",
                                         OVERLOAD_RETRY_AFTER_S);
            extra = retry_after;
        }
        /* ...and every error carries the request id the access log line will show. */
        char hdrs[ERROR_EXTRA_MAX + DP_TRACE_HEADER_MAX + DP_TRACE_REQUEST_ID_MAX + 8];
        size_t n = extra && extra_len <= ERROR_EXTRA_MAX ? extra_len : 0;
        memcpy(hdrs, extra ? extra : "", n);
        trace_ensure_id(&r->trace);
        n = (size_t)(trace_write_response(&r->trace, hdrs + n) - hdrs);
        if (http1_write_error_ex(client_out(r), r->refusal ? d->status : status, d->code,
                                 r->error_message ? r->error_message : d->message, hdrs, n,
                                 !keep) < 0)
            keep = false;
        r->status = status;
    }
    traffic_end(r, status);

    ratelimit_cancel(r); /* a Redis answer still due for this request is dropped */
    if (r->up) {
        bool reusable = status == 0 && r->resp_done && r->up_keep_alive;
        struct bufferevent *ub = upstream_bev(r->up);
        if (ub && !reusable)
            bufferevent_setcb(ub, NULL, NULL, NULL, NULL);
        upstream_release(r->up, reusable);
        r->up = NULL;
    }
    request_finished(r, status);
    generation_release(r->gen);
    request_reset(r);
    server_conn_flush(c);
    server_conn_request_done(c, keep);
}

/* ---- target, path, route --------------------------------------------------------------- */

/* Split the request-target into path and query; accept origin-form and absolute-form (whose
 * authority is ignored: the config alone names destinations). The path is normalised
 * (guard.c); *path_flags says what the route must allow. */
static int parse_target(dp_request_t *r, unsigned *path_flags)
{
    const http1_head_t *h = r->head;
    const char *u = h->buf + h->url_off;
    size_t n = h->url_len;
    const char *hash = memchr(u, '#', n);
    if (hash)
        n = (size_t)(hash - u);
    if (n == 0)
        return -EINVAL;
    if (u[0] != '/') {
        size_t skip = 0;
        if (n > 7 && http1_caseeq(u, 7, "http://", 7))
            skip = 7;
        else if (n > 8 && http1_caseeq(u, 8, "https://", 8))
            skip = 8;
        else
            return -EINVAL; /* authority-form and asterisk-form are not proxied */
        size_t k = skip;
        while (k < n && u[k] != '/' && u[k] != '?')
            k++;
        if (k == n || u[k] == '?') {
            r->path = "/";
            r->path_len = 1;
            if (k < n) {
                r->query = u + k + 1;
                r->query_len = n - k - 1;
            }
            return 0;
        }
        u += k;
        n -= k;
    }
    const char *q = memchr(u, '?', n);
    r->path = u;
    r->path_len = q ? (size_t)(q - u) : n;
    if (q) {
        r->query = q + 1;
        r->query_len = n - r->path_len - 1;
    }
    return guard_path_normalize(r->conn->arena, &r->path, &r->path_len, path_flags);
}

/* The Host header without its port, for host-based routes. */
static void routing_host(const http1_head_t *h, const char **host, size_t *len)
{
    *host = NULL;
    *len = 0;
    if (h->host < 0)
        return;
    const http1_header_t *hd = &h->headers[h->host];
    const char *v = HTTP1_VALUE(h, hd);
    size_t n = hd->value_len;
    const char *end;
    if (n && v[0] == '[')
        n = (end = memchr(v, ']', n)) ? (size_t)(end - v) + 1 : n;
    else if ((end = memchr(v, ':', n)))
        n = (size_t)(end - v);
    *host = v;
    *len = n;
}

/* stripPrefix: the prefix route of "/api" with stripPrefix forwards "/api/users" as "/users".
 * Only the upstream's request line changes (upstream_path): logs and metrics keep the path
 * the client asked for. */
static void strip_route_prefix(dp_request_t *r)
{
    const fg_route_t *rt = r->route;
    size_t rl = strlen(rt->path);
    r->path_strip = 0;
    if (!rt->strip_prefix || !rt->prefix || rl < 2)
        return;
    size_t base = rl - 2;
    if (base <= r->path_len)
        r->path_strip = base;
}

/* The path the upstream gets: the client's, less what stripPrefix drops ("/" when nothing
 * is left). */
static const char *upstream_path(const dp_request_t *r, size_t *len)
{
    *len = r->path_len - r->path_strip;
    if (*len == 0) {
        *len = 1;
        return "/";
    }
    return r->path + r->path_strip;
}

/* ---- request head upstream ------------------------------------------------------------- */

#define PUT(p, s, n) (memcpy((p), (s), (n)), (p) += (n))
#define PUTS(p, lit) PUT(p, lit, sizeof(lit) - 1)

/* Request line, the client's end-to-end headers, Host and X-Forwarded-*, framing; sized
 * first, then written straight into the upstream's output buffer with one reservation. */
static int write_request_head(dp_request_t *r)
{
    const http1_head_t *h = r->head;
    const char *method = llhttp_method_name((llhttp_method_t)h->method);
    size_t mlen = strlen(method);
    const char *base = r->target->parsed.path ? r->target->parsed.path : "";
    size_t base_len = strlen(base);
    size_t hh_len;
    const char *hh = upstream_host_header(r->pool, &hh_len);
    char num[24];
    size_t num_len = 0;
    if (h->framing == HTTP1_BODY_LENGTH)
        num_len = http1_u64_to_dec(h->content_length, num);

    size_t path_len;
    const char *path = upstream_path(r, &path_len);
    size_t total = mlen + 1 + base_len + path_len + (r->query ? 1 + r->query_len : 0) +
                   sizeof(" HTTP/1.1\r\nHost: \r\n") + hh_len + guard_request_headers_len(r) +
                   sizeof("Transfer-Encoding: chunked\r\n") + sizeof("Content-Length: \r\n") +
                   num_len + sizeof("Connection: upgrade\r\n") + 2 +
                   trace_request_len(&r->trace);
    total += auth_identity_size(r);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        if (!(hd->flags & (HTTP1_HF_HOP | HTTP1_HF_FRAMING | HTTP1_HF_REQ_REWRITE |
                           HTTP1_HF_DROP)) ||
            hd->token == HTTP1_H_TRANSFER_ENCODING || (r->upgrade && hd->token == HTTP1_H_UPGRADE))
            total += hd->name_len + hd->value_len + 4; /* TE: covers its ", " separator */
    }

    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(up_out(r), (ev_ssize_t)total, &v, 1) < 1)
        return -ENOMEM;
    char *p = v.iov_base;
    PUT(p, method, mlen);
    *p++ = ' ';
    PUT(p, base, base_len);
    PUT(p, path, path_len);
    if (r->query) {
        *p++ = '?';
        PUT(p, r->query, r->query_len);
    }
    PUTS(p, " HTTP/1.1\r\nHost: ");
    PUT(p, hh, hh_len);
    PUTS(p, "\r\n");
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        if (hd->flags & (HTTP1_HF_HOP | HTTP1_HF_FRAMING | HTTP1_HF_REQ_REWRITE | HTTP1_HF_DROP))
            continue;
        PUT(p, HTTP1_NAME(h, hd), hd->name_len);
        PUTS(p, ": ");
        PUT(p, HTTP1_VALUE(h, hd), hd->value_len);
        PUTS(p, "\r\n");
    }
    /* X-Forwarded-*, X-Real-IP (replaced unless the peer is a trusted proxy) and the
     * route's requestHeaders adds: guard.c. */
    p = guard_request_headers_put(r, p);
    p = auth_identity_write(r, p); /* the authenticated key's name (identityHeader) */
    p = trace_write_request(&r->trace, p); /* request id, traceparent (issue 7) */
    if (r->upgrade) {
        /* The route tunnels upgrades: this hop asks for the same protocol switch. */
        for (uint32_t i = 0; i < h->n_headers; i++) {
            const http1_header_t *hd = &h->headers[i];
            if (hd->token != HTTP1_H_UPGRADE)
                continue;
            PUT(p, HTTP1_NAME(h, hd), hd->name_len);
            PUTS(p, ": ");
            PUT(p, HTTP1_VALUE(h, hd), hd->value_len);
            PUTS(p, "\r\n");
        }
        PUTS(p, "Connection: upgrade\r\n");
    }
    if (h->framing == HTTP1_BODY_CHUNKED && h->te_codings) {
        /* gzip, chunked: the codings below chunked describe the body's bytes, which pass
         * unchanged; only the chunk framing is rebuilt. The values were checked as plain
         * coding lists ending in one chunked (http1.c). */
        /* One field line: an upstream that reads only the first of several would miss the
         * final chunked and read a different body. */
        PUTS(p, "Transfer-Encoding: ");
        bool first = true;
        for (uint32_t i = 0; i < h->n_headers; i++) {
            const http1_header_t *hd = &h->headers[i];
            if (hd->token != HTTP1_H_TRANSFER_ENCODING || hd->value_len == 0)
                continue;
            if (!first)
                PUTS(p, ", ");
            PUT(p, HTTP1_VALUE(h, hd), hd->value_len);
            first = false;
        }
        PUTS(p, "\r\n");
    } else if (h->framing == HTTP1_BODY_CHUNKED) {
        PUTS(p, "Transfer-Encoding: chunked\r\n");
    } else if (h->framing == HTTP1_BODY_LENGTH) {
        PUTS(p, "Content-Length: ");
        PUT(p, num, num_len);
        PUTS(p, "\r\n");
    }
    PUTS(p, "\r\n");
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    return evbuffer_commit_space(up_out(r), &v, 1) == 0 ? 0 : -ENOMEM;
}

/* ---- response head downstream ---------------------------------------------------------- */

/* Status line and end-to-end headers of a response (final or interim), with the framing and
 * connection headers this hop needs. */
static int write_response_head(dp_request_t *r, const http1_head_t *rh, bool interim)
{
    bool http11 = client_is_http11(r);
    bool no_body = rh->framing == HTTP1_BODY_NONE;
    /* HEAD and 304 describe the representation's length: keep the upstream's value. */
    bool keep_cl = no_body && rh->status != 204 && rh->status / 100 != 1;
    const char *reason = rh->reason_len ? rh->buf + rh->reason_off : http1_reason(rh->status);
    size_t reason_len = rh->reason_len ? rh->reason_len : strlen(reason);
    char num[24];
    size_t num_len = 0;
    const char *conn_hdr = NULL;

    if (!interim) {
        /* A client that half-closed may still have pipelined requests buffered: the
         * connection decides after this response whether anything is left to serve. */
        bool keep = r->head->keep_alive && server_conn_may_keep_alive(r->conn) &&
                    request_can_settle(r);
        if (rh->framing == HTTP1_BODY_LENGTH) {
            num_len = http1_u64_to_dec(rh->content_length, num);
        } else if (rh->framing == HTTP1_BODY_CHUNKED || rh->framing == HTTP1_BODY_EOF) {
            if (http11)
                r->resp_chunked = true;
            else
                keep = false; /* an HTTP/1.0 client reads to EOF */
        }
        r->resp_close = !keep;
        if (!keep)
            conn_hdr = "Connection: close\r\n";
        else if (!http11)
            conn_hdr = "Connection: keep-alive\r\n";
    }

    size_t add_len;
    const char *add = guard_response_add(r, &add_len); /* the route's responseHeaders adds */
    size_t total = sizeof("HTTP/1.1 000 \r\n") + reason_len + sizeof("Content-Length: \r\n") +
                   num_len + sizeof("Transfer-Encoding: chunked\r\n") +
                   sizeof("Connection: keep-alive\r\n") + 2 + add_len + r->extra_headers_len +
                   trace_response_len(&r->trace);
    for (uint32_t i = 0; i < rh->n_headers; i++) {
        const http1_header_t *hd = &rh->headers[i];
        total += hd->name_len + hd->value_len + 4;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(client_out(r), (ev_ssize_t)total, &v, 1) < 1)
        return -ENOMEM;
    char *p = v.iov_base;
    PUTS(p, "HTTP/1.1 ");
    *p++ = (char)('0' + rh->status / 100 % 10);
    *p++ = (char)('0' + rh->status / 10 % 10);
    *p++ = (char)('0' + rh->status % 10);
    *p++ = ' ';
    PUT(p, reason, reason_len);
    PUTS(p, "\r\n");
    for (uint32_t i = 0; i < rh->n_headers; i++) {
        const http1_header_t *hd = &rh->headers[i];
        if (hd->flags & (HTTP1_HF_HOP | HTTP1_HF_RESP_STRIP | HTTP1_HF_DROP))
            continue;
        if ((hd->flags & HTTP1_HF_FRAMING) && !(keep_cl && hd->token == HTTP1_H_CONTENT_LENGTH))
            continue;
        if (trace_is_id_header(rh, hd)) /* ours replaces the upstream's (issue 7) */
            continue;
        PUT(p, HTTP1_NAME(rh, hd), hd->name_len);
        PUTS(p, ": ");
        PUT(p, HTTP1_VALUE(rh, hd), hd->value_len);
        PUTS(p, "\r\n");
    }
    if (add_len)
        PUT(p, add, add_len);
    if (num_len) {
        PUTS(p, "Content-Length: ");
        PUT(p, num, num_len);
        PUTS(p, "\r\n");
    } else if (r->resp_chunked && !interim) {
        PUTS(p, "Transfer-Encoding: chunked\r\n");
    }
    if (r->extra_headers && !interim)
        PUT(p, r->extra_headers, r->extra_headers_len);
    if (conn_hdr)
        PUT(p, conn_hdr, strlen(conn_hdr));
    if (!interim)
        p = trace_write_response(&r->trace, p);
    PUTS(p, "\r\n");
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    return evbuffer_commit_space(client_out(r), &v, 1) == 0 ? 0 : -ENOMEM;
}

/* ---- response parser callbacks (inside llhttp: no finishing here) ---------------------- */

/* The 101 to an upgrade the route allows: its end-to-end headers plus the Upgrade and
 * Connection this hop needs. */
static int write_switching_head(dp_request_t *r, const http1_head_t *rh)
{
    size_t total = sizeof("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n") + 2;
    for (uint32_t i = 0; i < rh->n_headers; i++)
        total += rh->headers[i].name_len + rh->headers[i].value_len + 4;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(client_out(r), (ev_ssize_t)total, &v, 1) < 1)
        return -ENOMEM;
    char *p = v.iov_base;
    PUTS(p, "HTTP/1.1 101 Switching Protocols\r\n");
    for (uint32_t i = 0; i < rh->n_headers; i++) {
        const http1_header_t *hd = &rh->headers[i];
        if (((hd->flags & (HTTP1_HF_HOP | HTTP1_HF_FRAMING)) && hd->token != HTTP1_H_UPGRADE) ||
            (hd->flags & (HTTP1_HF_RESP_STRIP | HTTP1_HF_DROP)))
            continue;
        PUT(p, HTTP1_NAME(rh, hd), hd->name_len);
        PUTS(p, ": ");
        PUT(p, HTTP1_VALUE(rh, hd), hd->value_len);
        PUTS(p, "\r\n");
    }
    PUTS(p, "Connection: upgrade\r\n\r\n");
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    return evbuffer_commit_space(client_out(r), &v, 1) == 0 ? 0 : -ENOMEM;
}

static int on_resp_head(void *ctx, http1_head_t *head)
{
    dp_request_t *r = ctx;
    guard_response(r, head); /* unsafe fields, the route's removals: marked to drop */
    if (head->status == 101 && r->upgrade) {
        if (write_switching_head(r, head) < 0)
            return HTTP1_CB_ERROR;
        r->resp_started = true;
        r->status = 101;
        return HTTP1_CB_PAUSE; /* on_up_read turns the exchange into a tunnel */
    }
    if (head->status == 101 || head->status < 100) {
        r->resp.error_status = 502; /* a switch we did not ask for */
        return HTTP1_CB_ERROR;
    }
    if (head->status / 100 == 1) {
        /* 100 Continue, 103 Early Hints: relayed to HTTP/1.1 clients, dropped for 1.0. */
        if (client_is_http11(r) && write_response_head(r, head, true) < 0)
            return HTTP1_CB_ERROR;
        return HTTP1_CB_OK;
    }
    if (r->trace.dispatch_us)
        r->trace.upstream_us = trace_now_us() - r->trace.dispatch_us;
    if ((head->status == 500 || head->status == 502 || head->status == 503 ||
         head->status == 504) &&
        retry_allowed(r, true, &r->retry_delay_ms)) {
        r->retry_response = true; /* not relayed: on_up_read retries */
        return HTTP1_CB_PAUSE;
    }
    if (write_response_head(r, head, false) < 0)
        return HTTP1_CB_ERROR;
    r->resp_started = true;
    r->status = head->status;
    return HTTP1_CB_OK;
}

static int on_resp_body(void *ctx, const char *at, size_t len)
{
    dp_request_t *r = ctx;
    struct evbuffer *out = client_out(r);
    if (r->resp_chunked) {
        char hdr[20];
        size_t hl = http1_chunk_header(len, hdr);
        if (evbuffer_add(out, hdr, hl) || evbuffer_add(out, at, len) ||
            evbuffer_add(out, "\r\n", 2))
            return HTTP1_CB_ERROR;
    } else if (evbuffer_add(out, at, len)) {
        return HTTP1_CB_ERROR;
    }
    r->resp_body_bytes += len;
    return 0;
}

static int on_resp_complete(void *ctx)
{
    dp_request_t *r = ctx;
    if (r->resp.head.status / 100 == 1)
        return HTTP1_CB_OK; /* interim: the final response follows */
    r->resp_done = true;
    /* An upstream that answered before reading the whole request body would read the rest
     * as a new request: such a connection is never reused. */
    r->up_keep_alive = http1_parser_keep_alive(&r->resp) && r->req_done;
    if (r->resp_chunked && evbuffer_add(client_out(r), "0\r\n\r\n", 5))
        return HTTP1_CB_ERROR;
    return HTTP1_CB_PAUSE;
}

/* ---- upstream connection --------------------------------------------------------------- */

static void request_connect(dp_request_t *r, bool allow_idle);
static void request_dispatch(dp_request_t *r);

static bool can_retry(const dp_request_t *r)
{
    return r->up_reused && !r->retried && r->req_body_bytes == 0 && r->resp_in_bytes == 0 &&
           !r->resp_started;
}

/* The keep-alive race: a pooled connection the upstream closed just as we picked it. Nothing
 * of the request body was consumed, so it can go again, once, on a fresh connection. */
static void request_retry(dp_request_t *r)
{
    r->retried = true;
    struct bufferevent *ub = upstream_bev(r->up);
    bufferevent_setcb(ub, NULL, NULL, NULL, NULL);
    upstream_release(r->up, false);
    r->up = NULL;
    request_connect(r, false);
}

/* The upstream connection is ready: send the head and let the body flow. */
static void exchange_begin(dp_request_t *r)
{
    dp_conn_t *c = r->conn;
    struct bufferevent *ub = upstream_bev(r->up);
    r->phase = DP_REQ_EXCHANGE;
    bufferevent_setcb(ub, on_up_read, on_up_write, on_up_event, r);
    bufferevent_setwatermark(ub, EV_WRITE, DP_LOW_WATERMARK, 0);
    reader_enable(upstream_reader(r->up)); /* a pooled connection reads already: no-op */
    http1_parser_init(&r->resp, HTTP_RESPONSE, &resp_callbacks, r, c->arena);
    r->resp.skip_body = r->head->method == HTTP_HEAD;
    if (write_request_head(r) < 0) {
        proxy_finish(r, 500);
        return;
    }
    /* A retried request that was already complete had an empty body: end it again. */
    if (r->req_done && r->head->framing == HTTP1_BODY_CHUNKED)
        evbuffer_add(up_out(r), "0\r\n\r\n", 5);
    proxy_bev_flush(ub);
    /* Expect: 100-continue is answered here, once the body has somewhere to go, and not
     * forwarded: the client need not wait on an upstream that may never send the 100 (nginx
     * and Envoy do the same). Interim responses the upstream sends are still relayed. */
    if (r->head->expect_continue && !r->sent_continue && !r->req_done &&
        r->head->framing != HTTP1_BODY_NONE && client_is_http11(r)) {
        r->sent_continue = true;
        evbuffer_add(client_out(r), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        server_conn_flush(c);
    }
    r->last_io_ms = fg_now_ms();
    request_timer_arm(r);
    server_conn_unhold(c, DP_HOLD_UPSTREAM); /* may parse body now: nothing after this */
}

static void on_upstream_ready(up_conn_t *up, int err, void *arg)
{
    dp_request_t *r = arg;
    if (err < 0) {
        r->up = NULL; /* already freed by upstream.c */
        if (err == -EACCES) /* the SSRF guard: not the target's failure, no retry */
            proxy_finish(r, 403);
        else if (!attempt_failed(r, false))
            proxy_finish(r, 502);
        return;
    }
    exchange_begin(r);
}

static void request_connect(dp_request_t *r, bool allow_idle)
{
    if (allow_idle && (r->up = upstream_take_idle(r->pool))) {
        r->up_reused = true;
        exchange_begin(r);
        return;
    }
    r->up_reused = false;
    r->phase = DP_REQ_CONNECT;
    server_conn_hold(r->conn, DP_HOLD_UPSTREAM);
    r->up = upstream_connect(r->pool, on_upstream_ready, r);
    if (!r->up) {
        if (errno == EACCES) /* the SSRF guard: not the target's failure, no retry */
            proxy_finish(r, 403);
        else if (!attempt_failed(r, false))
            proxy_finish(r, 502);
        return;
    }
    uint32_t ms = r->gen->config->proxy.connect_timeout_ms;
    r->phase_due_ms = fg_now_ms() + (ms ? ms : FG_DEFAULT_CONNECT_TIMEOUT_MS);
    request_timer_arm(r);
}

void proxy_start(dp_request_t *r)
{
    dp_conn_t *c = r->conn;
    request_reset(r);
    r->head = &c->parser.head;
    r->start_ms = fg_now_ms();
    trace_begin(&r->trace, r->head); /* request id, trace context (issue 7) */
    if (r->head->method == HTTP_CONNECT) {
        proxy_finish(r, 405);
        return;
    }
    dp_generation_t *g = generation_current();
    if (!g) {
        proxy_finish(r, 503);
        return;
    }
    r->gen = generation_acquire(g);
    const fg_config_t *cfg = g->config;
    unsigned path_flags = 0;
    int prc = parse_target(r, &path_flags);
    if (prc < 0) {
        proxy_finish(r, prc == -ENOMEM ? 500 : 400);
        return;
    }
    const char *host;
    size_t host_len;
    routing_host(r->head, &host, &host_len);
    const char *method = llhttp_method_name((llhttp_method_t)r->head->method);
    r->route = router_match(g->router, method, strlen(method), host, host_len, r->path,
                            r->path_len);
    if (!r->route) {
        proxy_finish(r, 404);
        return;
    }
    r->upstream = g->route_upstream[r->route - cfg->routes];
    int gst = guard_request(r, path_flags); /* encoded slashes, trusted peer, header ops */
    if (gst) {
        proxy_finish(r, gst);
        return;
    }
    /* Admission, in this order, each refusing through proxy_finish():
     *   limits (below) and header hygiene -> auth -> rate limit (may wait for Redis, then
     *   resumes in proxy_admit) -> proxy_admit(). */
    r->max_body = cfg->proxy.max_body_size;
    if (r->head->framing == HTTP1_BODY_LENGTH && r->max_body &&
        r->head->content_length > r->max_body) {
        proxy_finish(r, 413);
        return;
    }
    int auth_status = auth_check(r); /* 401/403, or r->key_name set */
    if (auth_status) {
        proxy_finish(r, auth_status);
        return;
    }
    /* Rate limit (ratelimit.c): local buckets answer now; Redis answers later, and then
     * ratelimit.c resumes the request with proxy_admit() or proxy_finish(r, 429). */
    int limited = ratelimit_check(r);
    if (limited == RATELIMIT_PENDING)
        return;
    if (limited) {
        proxy_finish(r, limited);
        return;
    }
    proxy_admit(r);
}

void proxy_admit(dp_request_t *r)
{
    const fg_config_t *cfg = r->gen->config;
    /* Dispatch, in this order: overload shedding (here) -> circuit breaker and target pick
     * (request_dispatch, balancer.h) -> SSRF guard on its address (request_dispatch, before
     * request_connect) -> connect, with retries in the connect/exchange failure paths (each
     * retry dispatches again, after its backoff). */
    /* Upgrade (WebSocket) is tunnelled only where the route allows it, and only for a
     * body-less request; elsewhere the Upgrade field is dropped as hop-by-hop and the request
     * goes up as plain HTTP, as nginx does. */
    r->upgrade = r->route->websocket && r->head->upgrade &&
                 r->head->framing == HTTP1_BODY_NONE;
    strip_route_prefix(r);
    const bal_set_t *ts = r->gen->traffic;
    if (!overload_admit(ts->shed_at[r->route - cfg->routes])) {
        r->refusal = &refusal_overload;
        proxy_finish(r, 503);
        return;
    }
    r->pending = true;
    retry_budget_deposit(cfg->proxy.retry_budget, r->start_ms);
    r->bu = balancer_upstream(ts, cfg, r->upstream);
    uint32_t whole = r->route->timeout_ms ? r->route->timeout_ms : cfg->proxy.request_timeout_ms;
    r->deadline_ms = whole ? r->start_ms + whole : 0;
    request_dispatch(r);
}

/* The balancer's choice for this attempt, or -1 once the request is finished (503): when
 * every target's breaker refuses, the upstream's fallback takes the request. */
static int dispatch_pick(dp_request_t *r)
{
    uint64_t now = r->attempts ? fg_now_ms() : r->start_ms; /* first attempt: same callback */
    int i = balancer_pick(r->bu, r->head, r->conn->peer_ip, r->tried, now);
    if (i < 0) {
        metrics_counters()->breaker_rejected++;
        /* One level: a request already on the fallback does not move on to its fallback. */
        const fg_upstream_t *own = r->gen->route_upstream[r->route - r->gen->config->routes];
        if (r->bu->fallback && r->bu->conf == own) {
            r->bu = r->bu->fallback;
            r->upstream = r->bu->conf;
            memset(r->tried, 0, sizeof r->tried);
            i = balancer_pick(r->bu, r->head, r->conn->peer_ip, r->tried, now);
            r->trace.breaker = DP_OUTCOME_FALLBACK; /* for the access log */
        }
        if (i < 0) {
            r->trace.breaker = DP_OUTCOME_OPEN;
            r->refusal = &refusal_breaker;
            proxy_finish(r, 503);
            return -1;
        }
    }
    r->target_index = (uint16_t)i;
    r->tried[i / 64] |= 1ull << (i % 64);
    return i;
}

/* Pick a target (balancer.h) and connect to it: the first attempt and every retry. A single
 * target without a breaker has nothing to choose and nothing to record, so the common case
 * skips the balancer and stays as cheap as before it existed. */
static void request_dispatch(dp_request_t *r)
{
    const fg_upstream_t *u = r->bu->conf;
    int i = 0;
    r->picked = u->n_targets > 1 || u->circuit_breaker.enabled;
    if (r->picked && (i = dispatch_pick(r)) < 0)
        return;
    r->target = &r->bu->conf->targets[i];
    int gst = guard_target(r); /* allowedHosts; resolved addresses are checked at connect */
    if (gst) {
        proxy_finish(r, gst);
        return;
    }
    r->pool = upstream_pool_get(r->bu->conf, &r->target->parsed);
    if (!r->pool) {
        proxy_finish(r, 500);
        return;
    }
    r->io_timeout_ms = r->bu->conf->timeout_ms ? r->bu->conf->timeout_ms
                                               : FG_DEFAULT_UPSTREAM_TIMEOUT_MS;
    r->trace.dispatch_us = trace_now_us();
    request_connect(r, true);
}

/* ---- request head ---------------------------------------------------------------------- */

static void rebase(const char **ptr, const char *old, size_t len, const char *now)
{
    if (*ptr && *ptr >= old && *ptr < old + len)
        *ptr = now + (*ptr - old);
}

int proxy_request_detach_head(dp_request_t *r)
{
    http1_parser_t *p = &r->conn->parser;
    const char *old;
    if (http1_head_detach(p, &old) < 0)
        return -ENOMEM;
    rebase(&r->path, old, p->len, p->head.buf);
    rebase(&r->query, old, p->len, p->head.buf);
    return 0;
}

/* ---- request body ---------------------------------------------------------------------- */

int proxy_request_body(dp_request_t *r, const char *at, size_t len)
{
    if (r->max_body && r->req_body_bytes + len > r->max_body) {
        r->conn->parser.error_status = 413; /* chunked bodies are only known mid-stream */
        r->conn->parser.error_reason = "body too large";
        return -1;
    }
    if (r->phase != DP_REQ_EXCHANGE || !r->up) {
        r->conn->parser.error_status = 500;
        return -1;
    }
    r->req_body_bytes += len;
    if (r->auth_body && (len = auth_body_feed(r, at, len)) == 0)
        return 0; /* a signed body's last byte waits for its digest check */
    struct evbuffer *out = up_out(r);
    if (r->head->framing == HTTP1_BODY_CHUNKED) {
        char hdr[20];
        size_t hl = http1_chunk_header(len, hdr);
        if (evbuffer_add(out, hdr, hl) || evbuffer_add(out, at, len) ||
            evbuffer_add(out, "\r\n", 2))
            return -1;
    } else if (evbuffer_add(out, at, len)) {
        return -1;
    }
    return 0;
}

void proxy_request_flush(dp_request_t *r)
{
    if (r->phase != DP_REQ_EXCHANGE || !r->up)
        return;
    struct bufferevent *ub = upstream_bev(r->up);
    proxy_bev_flush(ub);
    r->last_io_ms = fg_now_ms();
    if (evbuffer_get_length(bufferevent_get_output(ub)) > DP_HIGH_WATERMARK)
        server_conn_hold(r->conn, DP_HOLD_BACKPRESSURE);
}

void proxy_request_end(dp_request_t *r)
{
    int auth_status;
    if (r->auth_body && (auth_status = auth_body_end(r)) != 0) {
        proxy_finish(r, auth_status); /* the upstream never saw the body end */
        return;
    }
    r->req_done = true;
    if (r->phase != DP_REQ_EXCHANGE || !r->up)
        return; /* a retry is connecting: exchange_begin ends the body */
    if (r->head->framing == HTTP1_BODY_CHUNKED && evbuffer_add(up_out(r), "0\r\n\r\n", 5)) {
        proxy_finish(r, 500);
        return;
    }
    proxy_request_flush(r);
}

/* ---- upstream events ------------------------------------------------------------------- */

#define PEEK_IOV 8

/* ---- tunnel (after a 101) ------------------------------------------------------------- */

/* Relay what one side has buffered to the other; stop reading the source while the
 * destination holds more than DP_HIGH_WATERMARK (resumed by the drain callbacks). */
static void tunnel_pump_upstream(dp_request_t *r)
{
    struct bufferevent *ub = upstream_bev(r->up);
    struct evbuffer *in = bufferevent_get_input(ub);
    if (evbuffer_get_length(in) > 0) {
        evbuffer_add_buffer(client_out(r), in);
        r->last_io_ms = fg_now_ms();
    }
    server_conn_flush(r->conn);
    if (evbuffer_get_length(client_out(r)) > DP_HIGH_WATERMARK) {
        reader_disable(upstream_reader(r->up));
        r->up_paused = true;
    }
}

static void tunnel_pump_client(dp_request_t *r)
{
    struct evbuffer *in = bufferevent_get_input(r->conn->bev);
    if (evbuffer_get_length(in) > 0) {
        evbuffer_add_buffer(up_out(r), in);
        r->last_io_ms = fg_now_ms();
    }
    proxy_bev_flush(upstream_bev(r->up));
    if (evbuffer_get_length(up_out(r)) > DP_HIGH_WATERMARK) {
        reader_disable(&r->conn->rd);
        r->client_paused = true;
    }
}

void proxy_tunnel_client_input(dp_request_t *r)
{
    if (r->phase == DP_REQ_TUNNEL && r->up)
        tunnel_pump_client(r);
}

/* The upstream switched protocols: from here on both connections carry opaque bytes until
 * either side closes or both stay silent for proxy.timeout.idle. The tunnel is not a request
 * any more: the whole-request deadline no longer applies. */
static void tunnel_begin(dp_request_t *r)
{
    uint32_t idle = r->gen->config->proxy.idle_timeout_ms;
    r->phase = DP_REQ_TUNNEL;
    if (r->pending) { /* a tunnel may last hours: it is a connection, not a pending request */
        r->pending = false;
        overload_done();
    }
    r->resp_close = true; /* neither connection carries HTTP again */
    r->up_keep_alive = false;
    r->deadline_ms = 0;
    r->io_timeout_ms = idle ? idle : FG_DEFAULT_IDLE_TIMEOUT_MS;
    if (server_conn_tunnel(r->conn) < 0) {
        proxy_finish(r, 500); /* the 101 is out: the client sees the close */
        return;
    }
    reader_enable(&r->conn->rd);
    tunnel_pump_upstream(r);
    tunnel_pump_client(r);
    r->last_io_ms = fg_now_ms();
    request_timer_arm(r);
}

static void on_up_read(struct bufferevent *bev, void *arg)
{
    dp_request_t *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    http1_result_t rc = HTTP1_OK;
    if (r->phase == DP_REQ_TUNNEL) {
        tunnel_pump_upstream(r);
        return;
    }
    r->last_io_ms = fg_now_ms();
    while (rc == HTTP1_OK && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec iov[PEEK_IOV];
        int n = evbuffer_peek(in, -1, NULL, iov, PEEK_IOV);
        size_t total = 0;
        for (int i = 0; i < n && i < PEEK_IOV && rc == HTTP1_OK; i++) {
            size_t used = 0;
            rc = http1_parser_execute(&r->resp, iov[i].iov_base, iov[i].iov_len, &used);
            total += used;
        }
        r->resp_in_bytes += total;
        evbuffer_drain(in, total);
    }
    if (rc == HTTP1_PAUSED && r->retry_response) { /* a 5xx head, not relayed */
        r->retry_response = false;
        attempt_end(r, BAL_FAILED);
        retry_schedule(r, r->retry_delay_ms);
        return;
    }
    if (rc == HTTP1_ERROR) {
        server_conn_flush(r->conn);
        if (!r->resp_started && attempt_failed(r, true))
            return;
        proxy_finish(r, 502);
        return;
    }
    if (rc == HTTP1_PAUSED && r->status == 101) {
        tunnel_begin(r);
        return;
    }
    if (rc == HTTP1_PAUSED) { /* the final response is complete */
        if (evbuffer_get_length(in) > 0)
            r->up_keep_alive = false; /* bytes after the response: not a sane connection */
        proxy_finish(r, 0);
        return;
    }
    server_conn_flush(r->conn);
    if (evbuffer_get_length(client_out(r)) > DP_HIGH_WATERMARK) {
        reader_disable(upstream_reader(r->up));
        r->up_paused = true;
    }
}

static void on_up_write(struct bufferevent *bev, void *arg)
{
    dp_request_t *r = arg;
    r->last_io_ms = fg_now_ms();
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE); /* back to direct writes */
    if (r->client_paused && evbuffer_get_length(bufferevent_get_output(bev)) < DP_LOW_WATERMARK) {
        r->client_paused = false;
        reader_enable(&r->conn->rd);
        tunnel_pump_client(r);
        return;
    }
    if (r->conn->hold & DP_HOLD_BACKPRESSURE)
        server_conn_unhold(r->conn, DP_HOLD_BACKPRESSURE); /* may finish: nothing after */
}

static void on_up_event(struct bufferevent *bev, short what, void *arg)
{
    dp_request_t *r = arg;
    if (r->phase == DP_REQ_TUNNEL) {
        tunnel_pump_upstream(r); /* whatever arrived before the close */
        proxy_finish(r, 0);
        return;
    }
    if ((what & BEV_EVENT_EOF) && r->resp_started && r->resp.head.framing == HTTP1_BODY_EOF) {
        if (http1_parser_finish(&r->resp) == HTTP1_PAUSED) {
            r->up_keep_alive = false;
            proxy_finish(r, 0);
        } else {
            proxy_finish(r, 502);
        }
        return;
    }
    if (can_retry(r)) {
        request_retry(r);
        return;
    }
    if (!r->resp_started && attempt_failed(r, true))
        return;
    if (fg_log_enabled(FG_LOG_DEBUG))
        fg_log(FG_LOG_DEBUG, "upstream connection failed", "upstream", r->upstream->name,
               "event", (what & BEV_EVENT_EOF) ? "eof" : "error", NULL);
    proxy_finish(r, 502);
}

/* ---- client events --------------------------------------------------------------------- */

void proxy_client_drained(dp_request_t *r)
{
    r->last_io_ms = fg_now_ms();
    if (r->up_paused && r->up) {
        r->up_paused = false;
        reader_enable(upstream_reader(r->up));
    }
}

void proxy_client_gone(dp_request_t *r)
{
    proxy_finish(r, 499);
}

/* ---- timer ----------------------------------------------------------------------------- */

static void on_request_timer(evutil_socket_t fd, short what, void *arg)
{
    dp_request_t *r = arg;
    r->timer_armed_ms = 0;
    if (r->phase == DP_REQ_NONE)
        return; /* left from a finished request */
    dp_server_stats_t *st = server_conn_stats(r->conn);
    uint64_t now = fg_now_ms();
    if (r->deadline_ms && now >= r->deadline_ms) {
        st->request_timeouts++;
        proxy_finish(r, 504);
        return;
    }
    if (r->phase == DP_REQ_CONNECT) {
        if (now >= r->phase_due_ms && r->backoff) {
            r->backoff = false;
            request_dispatch(r);
        } else if (now >= r->phase_due_ms) {
            st->connect_timeouts++;
            if (!attempt_failed(r, false))
                proxy_finish(r, 504);
        } else {
            request_timer_arm(r);
        }
        return;
    }
    if (now - r->last_io_ms < r->io_timeout_ms) {
        request_timer_arm(r);
        return;
    }
    if (r->phase == DP_REQ_TUNNEL) {
        st->idle_timeouts++;
        proxy_finish(r, 0);
        return;
    }
    bool client_stalled =
        r->up_paused || (!r->req_done && !(r->conn->hold & DP_HOLD_BACKPRESSURE) &&
                         evbuffer_get_length(up_out(r)) == 0);
    if (client_stalled)
        st->client_timeouts++;
    else
        st->upstream_timeouts++;
    if (!client_stalled && !r->resp_started && attempt_failed(r, true))
        return;
    proxy_finish(r, client_stalled ? 408 : 504);
}
