/* subscriber.c - the data plane's snapshot client (see subscriber.h, proto/PROTOCOL.md).
 *
 * One connection at a time moves through these phases:
 *   IDLE        waiting on the retry timer (backoff with full jitter)
 *   CONNECTING  non-blocking connect in progress
 *   OPEN        HELLO (and a PING) sent, nothing heard yet
 *   ESTABLISHED the peer has answered: a session; backoff is reset
 *   STOPPED     shutdown; no more reconnects
 * Any I/O error, EOF, bad frame header or silence drops the connection back to IDLE. The
 * current generation is never touched by connection trouble: the data plane keeps serving
 * what it last applied.
 *
 * Over tcp:// the connection is TLS with a client certificate (fg_tls): the host name is
 * resolved through evdns on every attempt (a moved control plane is found again), the
 * bufferevent runs the handshake, and BEV_EVENT_CONNECTED only fires once the control
 * plane's certificate chained to --control-ca and matched the host. All callbacks are
 * deferred to the loop, so a failure found inside a libevent call (a numeric host resolves
 * at once) is never handled while libevent still holds the bufferevent.
 *
 * Logging is by transition, not by attempt: "connected" and "disconnected" once each, and
 * "cannot connect" on the first failure and then at most every DP_SUB_WARN_INTERVAL_MS, so
 * a control plane that is down for an hour costs a handful of lines, not 36,000. */
#include "subscriber.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/util.h>

#include <openssl/err.h>

#include "fg_frame.h"
#include "fg_log.h"
#include "fg_time.h"
#include "fg_tls.h"
#include "metrics.h"

typedef enum sub_phase {
    SUB_IDLE = 0,
    SUB_CONNECTING,
    SUB_OPEN,
    SUB_ESTABLISHED,
    SUB_STOPPED,
} sub_phase_t;

struct dp_subscriber {
    struct event_base *base;
    dp_control_addr_t addr;
    char control[DP_CONTROL_ADDR_MAX + 16]; /* as given, for logs */
    char dp_id[FG_ID_MAX];
    char hostname[FG_HOSTNAME_MAX];
    uint32_t max_payload;
    uint32_t ping_interval_ms;
    uint32_t backoff_min_ms, backoff_max_ms;
    dp_subscriber_applied_cb on_applied;
    void *on_applied_arg;
    SSL_CTX *tls_ctx;          /* tcp://: mutual TLS, NULL for unix: */
    struct evdns_base *dns;    /* tcp://: resolves the control plane's host name */
    struct evdns_getaddrinfo_request *dns_req; /* a resolve in flight, NULL when none */

    sub_phase_t phase;
    struct bufferevent *bev;
    struct event *retry_timer;
    struct event *ping_timer;
    uint32_t backoff_ms;   /* upper bound of the next retry delay */
    uint64_t last_rx_ms;   /* monotonic: last byte-complete frame (or connect) */
    unsigned failures;     /* failed attempts since the last session (or start) */
    uint64_t last_warn_ms; /* monotonic: last "cannot connect" line, 0 = none since session */
    uint64_t rng;          /* xorshift state for jitter; not security-relevant */
    fg_label_t labels[FG_LABELS_MAX];
    size_t n_labels;
    bool refused;          /* the control plane refused us (PROTOCOL.md §4.6): retry late */
    uint32_t retry_delay_ms; /* of the retry last scheduled */
    dp_subscriber_state_t st;
    char secret[FG_HELLO_SECRET_MAX]; /* sent in HELLO, "" = none; wiped by subscriber_free */
};

static void sub_connect(dp_subscriber_t *s);
static void sub_drop(dp_subscriber_t *s, const char *reason);

/* ---- addresses ---------------------------------------------------------------------- */

static int parse_tcp_address(const char *hp, dp_control_addr_t *out, fg_error_t *err)
{
    const char *host = hp, *colon;
    size_t host_len;
    char *end;
    long port;

    if (*hp == '[') {
        const char *close = strchr(hp, ']');
        if (!close || close[1] != ':')
            return fg_error_set(err, "control", "expected tcp://[IPV6]:PORT");
        host = hp + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon || memchr(hp, ':', (size_t)(colon - hp)))
            return fg_error_set(err, "control", "expected tcp://HOST:PORT");
        host_len = (size_t)(colon - hp);
    }
    if (host_len == 0 || host_len >= sizeof(out->host))
        return fg_error_set(err, "control", "bad host in tcp:// address");
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || port < 1 || port > 65535)
        return fg_error_set(err, "control", "bad port in tcp:// address");
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    out->kind = DP_CONTROL_TCP;
    return 0;
}

int subscriber_parse_address(const char *text, dp_control_addr_t *out, fg_error_t *err)
{
    struct sockaddr_un sun;

    memset(out, 0, sizeof(*out));
    if (!text || !*text)
        return fg_error_set(err, "control", "missing control plane address");
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (!*path)
            return fg_error_set(err, "control", "empty socket path in unix: address");
        if (strlen(path) >= sizeof(sun.sun_path))
            return fg_error_set(err, "control", "socket path longer than %zu bytes",
                                sizeof(sun.sun_path) - 1);
        out->kind = DP_CONTROL_UNIX;
        snprintf(out->path, sizeof(out->path), "%s", path);
        return 0;
    }
    if (strncmp(text, "tcp://", 6) == 0)
        return parse_tcp_address(text + 6, out, err);
    return fg_error_set(err, "control", "expected unix:PATH or tcp://HOST:PORT, got \"%.64s\"",
                        text);
}

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t sub_random(dp_subscriber_t *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int64_t sub_applied_version(void)
{
    const dp_generation_t *g = generation_current();
    return g ? g->version : 0;
}

static void sub_record_error(dp_subscriber_t *s, const char *text)
{
    snprintf(s->st.last_error, sizeof(s->st.last_error), "%s", text);
    s->st.last_error_ms = fg_wall_ms();
}

static void format_error(const fg_error_t *err, char *out, size_t out_len)
{
    if (err->field[0])
        snprintf(out, out_len, "%.200s: %.300s", err->field, err->message);
    else
        snprintf(out, out_len, "%s", err->message[0] ? err->message : "unknown error");
}

static void fmt_i64(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

/* Frames go out as header + copy of the payload; everything the data plane sends is a few
 * dozen bytes. Takes ownership of `payload` (NULL means its encoder ran out of memory). */
static int sub_send(dp_subscriber_t *s, fg_msg_type_t type, char *payload)
{
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    struct evbuffer *out;
    size_t len;
    int rc = 0;

    if (!payload)
        return -ENOMEM;
    if (!s->bev) {
        free(payload);
        return -ENOTCONN;
    }
    len = strlen(payload);
    fg_frame_header_encode(hdr, type, (uint32_t)len);
    out = bufferevent_get_output(s->bev);
    if (evbuffer_add(out, hdr, sizeof(hdr)) < 0 || evbuffer_add(out, payload, len) < 0)
        rc = -ENOMEM;
    free(payload);
    return rc;
}

static int sub_send_ack(dp_subscriber_t *s, int64_t version, const char *error)
{
    fg_ack_t m;

    memset(&m, 0, sizeof(m));
    m.version = version;
    if (error)
        snprintf(m.error, sizeof(m.error), "%s", error);
    return sub_send(s, error ? FG_MSG_NACK : FG_MSG_ACK, fg_ack_encode(&m, error != NULL));
}

static int sub_send_ping(dp_subscriber_t *s, fg_msg_type_t type)
{
    fg_ping_t m = {.applied_version = sub_applied_version(),
                   .requests = (int64_t)metrics_counters()->requests};
    return sub_send(s, type, fg_ping_encode(&m));
}

static int sub_send_hello(dp_subscriber_t *s)
{
    fg_hello_t m;

    memset(&m, 0, sizeof(m));
    snprintf(m.dp_id, sizeof(m.dp_id), "%s", s->dp_id);
    snprintf(m.hostname, sizeof(m.hostname), "%s", s->hostname);
    m.pid = (int64_t)getpid();
    snprintf(m.software_version, sizeof(m.software_version), "%s", FG_VERSION);
    m.protocol = FG_PROTOCOL_VERSION;
    m.applied_version = sub_applied_version();
    memcpy(m.labels, s->labels, s->n_labels * sizeof(m.labels[0]));
    m.n_labels = s->n_labels;
    memcpy(m.secret, s->secret, sizeof(m.secret));
    char *payload = fg_hello_encode(&m);
    explicit_bzero(m.secret, sizeof(m.secret));
    return sub_send(s, FG_MSG_HELLO, payload);
}

/* ---- reconnecting ------------------------------------------------------------------- */

/* Full jitter (a random delay in [0, bound]) spreads a fleet of data planes that lost the
 * same control plane at the same moment, so its restart is not met by a thundering herd. */
static void sub_schedule_retry(dp_subscriber_t *s)
{
    uint32_t delay_ms = (uint32_t)(sub_random(s) % ((uint64_t)s->backoff_ms + 1));
    if (s->refused) /* asking again soon would only be refused again */
        delay_ms = DP_SUB_REFUSED_RETRY_MS / 2 +
                   (uint32_t)(sub_random(s) % (DP_SUB_REFUSED_RETRY_MS / 2 + 1));
    s->refused = false;
    s->retry_delay_ms = delay_ms;
    struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};

    s->phase = SUB_IDLE;
    if (s->backoff_ms < s->backoff_max_ms)
        s->backoff_ms = s->backoff_ms * 2 > s->backoff_max_ms ? s->backoff_max_ms
                                                                : s->backoff_ms * 2;
    evtimer_add(s->retry_timer, &tv);
}

static void sub_close_transport(dp_subscriber_t *s)
{
    if (s->dns_req) {
        struct evdns_getaddrinfo_request *req = s->dns_req;
        s->dns_req = NULL;
        evdns_getaddrinfo_cancel(req); /* on_resolved runs with EVUTIL_EAI_CANCEL */
    }
    if (s->bev) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    evtimer_del(s->ping_timer);
    s->st.connected = false;
    s->st.connected_since_ms = 0;
}

static void sub_connect_failed(dp_subscriber_t *s, const char *reason)
{
    uint64_t now = fg_now_ms();
    char attempts[16];

    sub_close_transport(s);
    sub_record_error(s, reason);
    s->failures++;
    snprintf(attempts, sizeof(attempts), "%u", s->failures);
    if (s->last_warn_ms == 0 || now - s->last_warn_ms >= DP_SUB_WARN_INTERVAL_MS) {
        s->last_warn_ms = now;
        fg_log(FG_LOG_WARN, "cannot connect to control plane", "control", s->control,
               "error", reason, "attempts", attempts,
               "serving", generation_current() ? "last applied config" : "nothing (not ready)",
               NULL);
    } else {
        fg_log(FG_LOG_DEBUG, "cannot connect to control plane", "control", s->control,
               "error", reason, "attempts", attempts, NULL);
    }
    sub_schedule_retry(s);
}

/* A session that was up went down: say so once, then retry quickly (the backoff was reset
 * when the session came up). Before a session, trouble counts as a failed attempt. */
static void sub_drop(dp_subscriber_t *s, const char *reason)
{
    char version[24];

    if (s->phase == SUB_STOPPED)
        return;
    if (s->phase != SUB_ESTABLISHED) {
        sub_connect_failed(s, reason);
        return;
    }
    sub_close_transport(s);
    sub_record_error(s, reason);
    s->failures = 0;
    s->last_warn_ms = 0;
    fmt_i64(version, sizeof(version), sub_applied_version());
    fg_log(FG_LOG_WARN, "disconnected from control plane", "control", s->control, "error",
           reason, "applied_version", version, NULL);
    sub_schedule_retry(s);
}

static void sub_session_up(dp_subscriber_t *s)
{
    char version[24], attempts[16];

    s->phase = SUB_ESTABLISHED;
    s->backoff_ms = s->backoff_min_ms;
    s->st.connected = true;
    s->st.connected_since_ms = fg_wall_ms();
    s->st.connects++;
    fmt_i64(version, sizeof(version), sub_applied_version());
    snprintf(attempts, sizeof(attempts), "%u", s->failures + 1);
    fg_log(FG_LOG_INFO, "connected to control plane", "control", s->control, "dp_id", s->dp_id,
           "applied_version", version, "attempts", attempts, NULL);
    s->failures = 0;
    s->last_warn_ms = 0;
}

/* ---- messages ----------------------------------------------------------------------- */

/* Used only when a snapshot failed to decode, to NACK the right version if the JSON at
 * least says which one it was. */
static int64_t peek_version(const char *payload, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(payload, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    int64_t version = 0;

    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9.0e15)
        version = (int64_t)v->valuedouble;
    cJSON_Delete(root);
    return version;
}

static int sub_refuse_snapshot(dp_subscriber_t *s, int64_t version, const fg_error_t *err)
{
    char text[FG_PROTO_ERROR_MAX], v[24], kept[24];

    format_error(err, text, sizeof(text));
    fmt_i64(v, sizeof(v), version);
    fmt_i64(kept, sizeof(kept), sub_applied_version());
    fg_log(FG_LOG_WARN, "snapshot rejected", "version", v, "error", text, "kept_version", kept,
           NULL);
    sub_record_error(s, text);
    s->st.snapshots_rejected++;
    return sub_send_ack(s, version, text);
}

/* Which snapshots to apply: the control plane is the only authority on configuration, so
 * the data plane applies whatever it is sent, even a version lower than the one it runs (a
 * control plane restored from a backup, or a rebuilt database, legitimately counts from a
 * lower number again, and refusing would leave this data plane stuck on a config nobody can
 * see or change). The one exception is an exact repeat - same version and same checksum as
 * the current generation - which is ACKed without being rebuilt, so re-sends (after a
 * reconnect, for instance) are idempotent and cheap. A snapshot with a known version but a
 * different checksum is applied: its content is what counts. */
static int sub_handle_snapshot(dp_subscriber_t *s, const char *payload, size_t len)
{
    fg_snapshot_t snap;
    fg_error_t err;
    dp_generation_t *cur = generation_current(), *g;
    fg_config_t *cfg;
    int64_t version;

    uint64_t t0 = fg_now_ms();

    memset(&snap, 0, sizeof(snap));
    fg_error_clear(&err);
    if (fg_snapshot_decode(payload, len, &snap, &err) < 0) {
        version = snap.version > 0 ? snap.version : peek_version(payload, len);
        fg_snapshot_clear(&snap);
        return sub_refuse_snapshot(s, version, &err);
    }
    version = snap.version;
    if (cur && cur->version == version && strcmp(cur->checksum, snap.checksum) == 0) {
        char v[24];
        fmt_i64(v, sizeof(v), version);
        fg_log(FG_LOG_DEBUG, "snapshot already applied", "version", v, NULL);
        s->st.config_from_cache = false; /* the control plane sent what we serve */
        fg_snapshot_clear(&snap);
        return sub_send_ack(s, version, NULL);
    }
    cfg = snap.config;
    snap.config = NULL; /* generation_create owns it from here, success or not */
    g = generation_create(cfg, version, snap.checksum, &err);
    fg_snapshot_clear(&snap);
    if (!g)
        return sub_refuse_snapshot(s, version, &err);
    generation_install(g);
    s->st.last_apply_ms = g->applied_at_ms;
    s->st.last_apply_duration_ms = fg_now_ms() - t0;
    metrics_apply_duration(s->st.last_apply_duration_ms * 1000u); /* issue 7 */
    s->st.snapshots_applied++;
    s->st.config_from_cache = false;
    if (s->on_applied)
        s->on_applied(s->on_applied_arg, g, payload, len);
    return sub_send_ack(s, version, NULL);
}

/* The control plane NACKs a HELLO it will not serve (an incompatible protocol, PROTOCOL.md
 * §4.6) and closes; we say so loudly, keep serving what we have, and retry late. */
static int sub_handle_refusal(dp_subscriber_t *s, const char *payload, size_t len)
{
    fg_ack_t m;
    fg_error_t err;
    char text[FG_PROTO_ERROR_MAX];

    memset(&m, 0, sizeof(m));
    if (fg_ack_decode(payload, len, &m, &err) < 0)
        return -1;
    if (m.error[0])
        snprintf(text, sizeof(text), "control plane refused this data plane: %.400s", m.error);
    else
        snprintf(text, sizeof(text), "control plane refused this data plane");
    sub_record_error(s, text);
    fg_log(FG_LOG_ERROR, "control plane refused this data plane", "control", s->control,
           "error", m.error[0] ? m.error : NULL, NULL);
    s->refused = true;
    return 0;
}

/* 0 to carry on, or -1 after which the caller drops the connection (reason in `why`).
 * A malformed PING, PONG or NACK means the peer is broken (PROTOCOL.md §6); a malformed
 * SNAPSHOT is only a bad config, NACKed on a healthy connection. */
static int sub_dispatch(dp_subscriber_t *s, fg_msg_type_t type, const char *payload,
                        size_t len, char *why, size_t why_len)
{
    fg_ping_t ping;
    fg_error_t err;

    switch (type) {
    case FG_MSG_SNAPSHOT:
        if (sub_handle_snapshot(s, payload, len) < 0) {
            snprintf(why, why_len, "out of memory answering a snapshot");
            return -1;
        }
        return 0;
    case FG_MSG_PING:
    case FG_MSG_PONG:
        if (fg_ping_decode(payload, len, &ping, &err) < 0) {
            snprintf(why, why_len, "malformed %s from control plane: %.80s",
                     fg_msg_type_name((int)type), err.message);
            return -1;
        }
        /* The control plane's PING and PONG carry its latest version: when that is what a
         * cached generation says it is, the cache is confirmed current. */
        if (s->st.config_from_cache && ping.applied_version == sub_applied_version())
            s->st.config_from_cache = false;
        /* Whatever the control plane believes we run, the answer carries the truth. A PONG
         * is liveness only: last_rx_ms is already updated. */
        if (type == FG_MSG_PING && sub_send_ping(s, FG_MSG_PONG) < 0) {
            snprintf(why, why_len, "out of memory answering a PING");
            return -1;
        }
        return 0;
    case FG_MSG_NACK:
        if (sub_handle_refusal(s, payload, len) < 0) {
            snprintf(why, why_len, "malformed NACK from control plane");
            return -1;
        }
        snprintf(why, why_len, "%.*s", (int)why_len - 1, s->st.last_error);
        return -1; /* hang up: the retry is scheduled late (s->refused) */
    default:
        fg_log(FG_LOG_WARN, "unexpected message from control plane", "type",
               fg_msg_type_name((int)type), NULL);
        return 0;
    }
}

/* ---- libevent callbacks ------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    dp_subscriber_t *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        uint8_t hdr[FG_FRAME_HEADER_SIZE];
        fg_msg_type_t type;
        uint32_t plen = 0;
        size_t have = evbuffer_get_length(in);
        char why[160];
        const char *payload;
        int rc;

        if (have < FG_FRAME_HEADER_SIZE)
            break;
        evbuffer_copyout(in, hdr, sizeof(hdr));
        rc = fg_frame_header_decode(hdr, s->max_payload, &type, &plen);
        if (rc < 0) {
            snprintf(why, sizeof(why), "bad frame from control plane: %s",
                     rc == -EMSGSIZE ? "payload larger than the frame limit"
                                     : "unknown message type");
            sub_drop(s, why);
            return;
        }
        if (have - FG_FRAME_HEADER_SIZE < plen) {
            /* Not called again until the whole frame is in: one wakeup per big snapshot
             * rather than one per read. */
            bufferevent_setwatermark(bev, EV_READ, (size_t)plen + FG_FRAME_HEADER_SIZE, 0);
            return;
        }
        bufferevent_setwatermark(bev, EV_READ, 0, 0);
        s->last_rx_ms = fg_now_ms();
        if (s->phase == SUB_OPEN && type != FG_MSG_NACK)
            sub_session_up(s);
        evbuffer_drain(in, FG_FRAME_HEADER_SIZE);
        payload = plen ? (const char *)evbuffer_pullup(in, plen) : "";
        if (!payload) {
            sub_drop(s, "out of memory reading a frame");
            return;
        }
        rc = sub_dispatch(s, type, payload, plen, why, sizeof(why));
        evbuffer_drain(in, plen);
        if (rc < 0) {
            sub_drop(s, why);
            return;
        }
    }
}

/* Why a tcp:// connection failed: the TLS handshake (our verdict on the control plane's
 * certificate, or the control plane's alert about ours), or the socket. */
static void sub_tls_failure(dp_subscriber_t *s, short what, char *out, size_t out_len)
{
    unsigned long code = 0, e;
    int sock_err = EVUTIL_SOCKET_ERROR();
    char why[200];

    /* libevent queues SSL_get_error's result (a small number) before OpenSSL's own error
     * codes; only the latter name a reason. */
    while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
        if (!code && ERR_GET_LIB(e) != 0)
            code = e;
    if (code) {
        fg_tls_describe_failure(bufferevent_openssl_get_ssl(s->bev), code, why, sizeof(why));
        snprintf(out, out_len, "TLS: %s", why);
    } else if ((what & BEV_EVENT_ERROR) && sock_err) {
        snprintf(out, out_len, "%s", evutil_socket_error_to_string(sock_err));
    } else if (what & BEV_EVENT_EOF) {
        snprintf(out, out_len, "connection closed by control plane");
    } else {
        snprintf(out, out_len, "connection error");
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    dp_subscriber_t *s = arg;
    char reason[256];

    if (what & BEV_EVENT_CONNECTED) {
        /* The PING right behind HELLO gets an immediate PONG from the control plane even
         * when it has no snapshot to send, so a session is confirmed (and the backoff reset)
         * in one round trip rather than one ping interval. */
        s->phase = SUB_OPEN;
        s->last_rx_ms = fg_now_ms();
        if (sub_send_hello(s) < 0 || sub_send_ping(s, FG_MSG_PING) < 0)
            sub_drop(s, "out of memory sending HELLO");
        return;
    }
    if (s->tls_ctx && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
        sub_tls_failure(s, what, reason, sizeof(reason));
        sub_drop(s, reason);
    } else if (what & BEV_EVENT_EOF) {
        sub_drop(s, "connection closed by control plane");
    } else if (what & BEV_EVENT_ERROR) {
        int e = EVUTIL_SOCKET_ERROR();
        snprintf(reason, sizeof(reason), "%s", e ? evutil_socket_error_to_string(e)
                                                 : "connection error");
        sub_drop(s, reason);
    }
    (void)bev;
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    dp_subscriber_t *s = arg;
    uint64_t silent_ms = fg_now_ms() - s->last_rx_ms;

    (void)fd;
    (void)what;
    if (silent_ms >= (uint64_t)s->ping_interval_ms * DP_SUB_SILENCE_INTERVALS) {
        char why[96];
        snprintf(why, sizeof(why), "control plane silent for %llu ms",
                 (unsigned long long)silent_ms);
        sub_drop(s, why);
        return;
    }
    if (s->phase >= SUB_OPEN && sub_send_ping(s, FG_MSG_PING) < 0)
        sub_drop(s, "out of memory sending PING");
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub_connect(arg);
}

/* ---- connecting --------------------------------------------------------------------- */

static void sub_arm_silence_timer(dp_subscriber_t *s)
{
    struct timeval tv = {.tv_sec = s->ping_interval_ms / 1000,
                         .tv_usec = (s->ping_interval_ms % 1000) * 1000};

    s->last_rx_ms = fg_now_ms();
    evtimer_add(s->ping_timer, &tv);
}

/* tcp://, second half: connect to one resolved address and run the handshake; the outcome
 * arrives in on_event (CONNECTED after the handshake, or an error with the reason). Our own
 * socket, so that TCP_NODELAY is set before the handshake: its flights are small writes
 * that Nagle would otherwise hold back for a delayed ACK (~40 ms per connect, and per
 * frame after it). */
static void sub_connect_addr(dp_subscriber_t *s, const struct sockaddr *sa, socklen_t len)
{
    fg_error_t err;
    char why[128];
    int one = 1;
    SSL *ssl;
    evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        sub_connect_failed(s, why);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ssl = fg_tls_client_ssl(s->tls_ctx, s->addr.host, &err);
    if (!ssl) {
        close(fd);
        sub_connect_failed(s, err.message);
        return;
    }
    /* The bufferevent owns `ssl` and `fd` from here (BEV_OPT_CLOSE_ON_FREE). */
    s->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!s->bev) {
        close(fd);
        sub_connect_failed(s, "out of memory creating a TLS bufferevent");
        return;
    }
    bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
    bufferevent_set_max_single_read(s->bev, DP_SUB_MAX_SINGLE_READ);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(s->bev, sa, (int)len) < 0)
        sub_connect_failed(s, "connect failed");
}

/* The resolver's answer. Called from the loop, or from inside evdns_getaddrinfo when the
 * answer is immediate (a numeric host), or with EVUTIL_EAI_CANCEL from sub_close_transport. */
static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    dp_subscriber_t *s = arg;
    const struct evutil_addrinfo *ai;
    size_t n = 0, pick;
    char why[DP_CONTROL_ADDR_MAX + 64];

    s->dns_req = NULL;
    if (result == EVUTIL_EAI_CANCEL) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result != 0 || !res) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", s->addr.host,
                 result ? evutil_gai_strerror(result) : "no address");
        if (res)
            evutil_freeaddrinfo(res);
        sub_connect_failed(s, why);
        return;
    }
    /* Each failed attempt moves to the next address, so a name with an address nobody
     * listens on ("localhost" as ::1 with the control plane on 127.0.0.1) still works. */
    for (ai = res; ai; ai = ai->ai_next)
        n++;
    pick = s->failures % n;
    for (ai = res; pick--; ai = ai->ai_next)
        ;
    sub_connect_addr(s, ai->ai_addr, (socklen_t)ai->ai_addrlen);
    evutil_freeaddrinfo(res);
}

/* tcp://, first half: resolve the host (again on every attempt: a moved control plane is
 * found again) without blocking the loop. */
static void sub_connect_tcp(dp_subscriber_t *s)
{
    struct evutil_addrinfo hints;
    char port[8];
    struct evdns_getaddrinfo_request *req;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)s->addr.port);
    s->phase = SUB_CONNECTING;
    sub_arm_silence_timer(s); /* also bounds a resolve or handshake that hangs */
    req = evdns_getaddrinfo(s->dns, s->addr.host, port, &hints, on_resolved, s);
    /* NULL when on_resolved already ran (an immediate answer or failure). */
    if (req && s->phase == SUB_CONNECTING && !s->bev)
        s->dns_req = req;
}

/* For a Unix socket the connect is done here rather than by bufferevent_socket_connect so
 * that an immediate failure (ENOENT, ECONNREFUSED: the usual answers of a Unix socket whose
 * server is down) is handled in this frame instead of through a callback fired from inside
 * libevent's call. tcp:// goes through sub_connect_tcp (resolve, connect, handshake). */
static void sub_connect(dp_subscriber_t *s)
{
    struct sockaddr_un sun;
    evutil_socket_t fd;
    char why[DP_CONTROL_ADDR_MAX + 96];
    int in_progress = 0;

    if (s->phase == SUB_STOPPED)
        return;
    if (s->addr.kind == DP_CONTROL_TCP) {
        sub_connect_tcp(s);
        return;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    /* subscriber_parse_address guaranteed that the path fits. */
    memcpy(sun.sun_path, s->addr.path, strlen(s->addr.path) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, sizeof(why), "socket: %s", strerror(errno));
        sub_connect_failed(s, why);
        return;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        if (errno != EINPROGRESS) {
            snprintf(why, sizeof(why), "connect %s: %s", s->addr.path, strerror(errno));
            close(fd);
            sub_connect_failed(s, why);
            return;
        }
        in_progress = 1;
    }
    s->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!s->bev) {
        close(fd);
        sub_connect_failed(s, "out of memory creating a bufferevent");
        return;
    }
    bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
    bufferevent_set_max_single_read(s->bev, DP_SUB_MAX_SINGLE_READ);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    /* One timer paces PINGs and bounds every silence, a connect that hangs included. */
    sub_arm_silence_timer(s);
    if (in_progress) {
        s->phase = SUB_CONNECTING;
        if (bufferevent_socket_connect(s->bev, NULL, 0) < 0)
            sub_connect_failed(s, "connect failed");
        return;
    }
    on_event(s->bev, BEV_EVENT_CONNECTED, s);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* tcp://: the TLS context (a bad file fails start-up, not every attempt) and a resolver
 * that reads resolv.conf and the hosts file, like the upstream pools' one. */
static int subscriber_start_tls(dp_subscriber_t *s, const dp_subscriber_conf_t *conf,
                                fg_error_t *err)
{
    s->tls_ctx = fg_tls_mutual_ctx(FG_TLS_CLIENT, conf->control_ca, conf->control_cert,
                                   conf->control_key, err);
    if (!s->tls_ctx)
        return -EINVAL;
    s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!s->dns) {
        s->dns = evdns_base_new(s->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (s->dns)
            evdns_base_load_hosts(s->dns, NULL);
    }
    if (!s->dns)
        return fg_error_setc(err, -ENOMEM, "control", "cannot create a DNS resolver");
    return 0;
}

dp_subscriber_t *subscriber_start(struct event_base *base, const dp_subscriber_conf_t *conf,
                                  fg_error_t *err)
{
    dp_subscriber_t *s;
    dp_control_addr_t addr;
    struct timeval now_tv = {0, 0};

    if (subscriber_parse_address(conf->control, &addr, err) < 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        return NULL;
    }
    s->base = base;
    s->addr = addr;
    snprintf(s->control, sizeof(s->control), "%s", conf->control);
    snprintf(s->dp_id, sizeof(s->dp_id), "%s", conf->dp_id ? conf->dp_id : "");
    snprintf(s->hostname, sizeof(s->hostname), "%s", conf->hostname ? conf->hostname : "");
    s->n_labels = conf->n_labels < FG_LABELS_MAX ? conf->n_labels : FG_LABELS_MAX;
    if (s->n_labels)
        memcpy(s->labels, conf->labels, s->n_labels * sizeof(s->labels[0]));
    if (conf->secret && snprintf(s->secret, sizeof(s->secret), "%s", conf->secret) >=
                            (int)sizeof(s->secret)) {
        free(s);
        fg_error_setc(err, -EINVAL, "dp-secret", "the data plane secret is longer than %d "
                      "bytes", FG_HELLO_SECRET_MAX - 1);
        return NULL;
    }
    s->max_payload = conf->max_payload ? conf->max_payload : FG_FRAME_MAX_PAYLOAD_DEFAULT;
    s->ping_interval_ms = conf->ping_interval_ms ? conf->ping_interval_ms
                                                 : DP_SUB_PING_INTERVAL_MS;
    s->backoff_min_ms = conf->backoff_min_ms ? conf->backoff_min_ms : DP_SUB_BACKOFF_MIN_MS;
    s->backoff_max_ms = conf->backoff_max_ms ? conf->backoff_max_ms : DP_SUB_BACKOFF_MAX_MS;
    if (s->backoff_max_ms < s->backoff_min_ms)
        s->backoff_max_ms = s->backoff_min_ms;
    s->backoff_ms = s->backoff_min_ms;
    s->on_applied = conf->on_applied;
    s->on_applied_arg = conf->on_applied_arg;
    if (fg_random_bytes(&s->rng, sizeof(s->rng)) < 0 || s->rng == 0)
        s->rng = fg_now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;

    if (addr.kind == DP_CONTROL_TCP && subscriber_start_tls(s, conf, err) < 0)
        goto fail_events;
    s->retry_timer = evtimer_new(base, on_retry_timer, s);
    s->ping_timer = event_new(base, -1, EV_PERSIST, on_ping_timer, s);
    if (!s->retry_timer || !s->ping_timer) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        goto fail_events;
    }
    /* First attempt on the first loop iteration, so start-up order does not matter. */
    s->phase = SUB_IDLE;
    evtimer_add(s->retry_timer, &now_tv);
    return s;

fail_events:
    subscriber_free(s);
    return NULL;
}

void subscriber_stop(dp_subscriber_t *s)
{
    if (!s || s->phase == SUB_STOPPED)
        return;
    if (s->phase == SUB_ESTABLISHED)
        fg_log(FG_LOG_INFO, "disconnected from control plane", "control", s->control, "error",
               "shutting down", NULL);
    sub_close_transport(s);
    if (s->retry_timer)
        evtimer_del(s->retry_timer);
    s->phase = SUB_STOPPED;
}

void subscriber_set_config_from_cache(dp_subscriber_t *s, bool from_cache)
{
    s->st.config_from_cache = from_cache;
}

void subscriber_state(const dp_subscriber_t *s, dp_subscriber_state_t *out)
{
    *out = s->st;
    out->applied_version = sub_applied_version();
}

void subscriber_free(dp_subscriber_t *s)
{
    if (!s)
        return;
    if (s->dns_req)
        evdns_getaddrinfo_cancel(s->dns_req); /* on_resolved only clears the pointer */
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->dns)
        evdns_base_free(s->dns, 0);
    if (s->tls_ctx)
        SSL_CTX_free(s->tls_ctx);
    if (s->retry_timer)
        event_free(s->retry_timer);
    if (s->ping_timer)
        event_free(s->ping_timer);
    explicit_bzero(s->secret, sizeof(s->secret));
    free(s);
}
