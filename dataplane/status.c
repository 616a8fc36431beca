/* status.c - health endpoints on the status listener (see status.h).
 *
 * evhttp is plenty for a handful of probe requests a second, and keeps this listener
 * entirely apart from the proxy's own HTTP engine. Requests are dispatched by exact path
 * through `status_routes`; each handler builds a small JSON body and replies at once, so
 * nothing here ever waits. */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <cjson/cJSON.h>

#include "balancer.h"
#include "breaker.h"
#include "fg_log.h"
#include "fg_time.h"
#include "generation.h"
#include "health.h"
#include "metrics.h"
#include "ratelimit.h"

#define STATUS_LISTEN_BACKLOG 128
#define STATUS_BODY_MAX 512

struct dp_status {
    struct evhttp *http;
    const dp_subscriber_t *subscriber;
    bool draining;
};

typedef void (*status_handler_fn)(dp_status_t *st, struct evhttp_request *req);

static void on_health_live(dp_status_t *st, struct evhttp_request *req);
static void on_health_ready(dp_status_t *st, struct evhttp_request *req);
static void on_health_deep(dp_status_t *st, struct evhttp_request *req);

/* One row per endpoint; every one answers GET and HEAD. /metrics (or the configured
 * metrics.path) is matched apart, in on_request. */
static const struct status_route {
    const char *path;
    status_handler_fn handle;
} status_routes[] = {
    {"/health/live", on_health_live},
    {"/health/ready", on_health_ready},
    {"/health/deep", on_health_deep},
};

static const char *reason_phrase(int code)
{
    switch (code) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void reply_json(struct evhttp_request *req, int code, const char *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (!out) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(out, body, strlen(body));
    evbuffer_add(out, "\n", 1);
    evhttp_send_reply(req, code, reason_phrase(code), out);
    evbuffer_free(out);
}

static void reply_get_only(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    reply_json(req, 405, "{\"error\":{\"code\":\"method_not_allowed\","
                         "\"message\":\"use GET or HEAD\"}}");
}

static void on_health_live(dp_status_t *st, struct evhttp_request *req)
{
    char ts[FG_RFC3339_LEN + 1], body[STATUS_BODY_MAX];

    (void)st;
    fg_rfc3339(fg_wall_ms(), ts);
    snprintf(body, sizeof(body), "{\"status\":\"UP\",\"timestamp\":\"%s\"}", ts);
    reply_json(req, 200, body);
}

/* Per-upstream health as this process sees it: an upstream is DOWN when health checks
 * report every one of its targets down. Without health checking it is UP. */
typedef struct health_tally {
    const char *upstream; /* NULL: every upstream */
    unsigned up, down;
} health_tally_t;

static void tally_health(const char *upstream, const char *target, bool up, void *arg)
{
    health_tally_t *t = arg;
    (void)target;
    if (t->upstream && strcmp(t->upstream, upstream) != 0)
        return;
    if (up)
        t->up++;
    else
        t->down++;
}

/* "UP" unless some configured upstream has every health-checked target down. */
static const char *upstreams_check(const dp_generation_t *g)
{
    if (!g)
        return "DOWN";
    for (size_t i = 0; i < g->config->n_upstreams; i++) {
        health_tally_t t = {g->config->upstreams[i].name, 0, 0};
        health_foreach(tally_health, &t);
        if (t.down && !t.up)
            return "DOWN";
    }
    return "UP";
}

static const char *redis_check(void)
{
    const char *rs = ratelimit_redis_state();
    return !rs || strcmp(rs, "disabled") == 0 ? "DISABLED" : strcmp(rs, "ok") == 0 ? "UP"
                                                                                     : "DOWN";
}

/* Ready means "send me traffic": a config is applied, by every started worker (they share
 * the ports, so a connection may reach any of them), and we are not shutting down. The
 * control plane link is reported but does not count: a data plane whose control plane is
 * away keeps serving its last config, and taking it out of rotation would turn a control
 * plane outage into a traffic outage. The same goes for "upstreams" (a DOWN upstream is
 * answered 502/503 per request, other routes still work) and "redis" (DOWN means the rate
 * limiter fell back to local buckets). checks.config is "UP" for a config from the control
 * plane, "cache" for one loaded from --cache that the control plane has not confirmed yet,
 * "DOWN" for none. checks.redis is the rate limiter's link (ratelimit_redis_state(): "ok" is
 * UP, "fallback" DOWN, "disabled" DISABLED). The top-level `upstreams` counts the config's
 * targets, those out of rotation and those whose breaker is not closed (issue 6). */
static void on_health_ready(dp_status_t *st, struct evhttp_request *req)
{
    const dp_generation_t *g = generation_current();
    dp_subscriber_state_t sub;
    char body[STATUS_BODY_MAX];
    bool ready = g && !st->draining && metrics_config_version() > 0;
    bal_summary_t ups;
    balancer_summary(&ups);

    memset(&sub, 0, sizeof(sub));
    if (st->subscriber)
        subscriber_state(st->subscriber, &sub);
    snprintf(body, sizeof(body),
             "{\"status\":\"%s\",\"checks\":{\"config\":\"%s\",\"upstreams\":\"%s\","
             "\"redis\":\"%s\",\"control_plane\":\"%s\"},\"config_version\":%" PRId64 "%s,"
             "\"upstreams\":{\"targets\":%zu,\"out_of_rotation\":%zu,\"breakers_open\":%zu}}",
             ready ? "UP" : "DOWN", !g ? "DOWN" : sub.config_from_cache ? "cache" : "UP",
             upstreams_check(g), redis_check(), sub.connected ? "UP" : "DOWN",
             g ? g->version : (int64_t)0, st->draining ? ",\"draining\":true" : "",
             ups.targets, ups.down, ups.breakers_open);
    reply_json(req, ready ? 200 : 503, body);
}

/* /health/deep: every configured target with this process's view of its health and
 * breaker. */
typedef struct deep_ctx {
    cJSON *upstreams; /* object: name -> {status, targets: [...]} */
} deep_ctx_t;

static cJSON *deep_target(deep_ctx_t *d, const char *upstream, const char *target)
{
    cJSON *u = cJSON_GetObjectItemCaseSensitive(d->upstreams, upstream);
    cJSON *list = u ? cJSON_GetObjectItemCaseSensitive(u, "targets") : NULL;
    cJSON *t;
    cJSON_ArrayForEach(t, list) {
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(t, "target");
        if (cJSON_IsString(url) && strcmp(url->valuestring, target) == 0)
            return t;
    }
    return NULL;
}

static void deep_health(const char *upstream, const char *target, bool up, void *arg)
{
    cJSON *t = deep_target(arg, upstream, target);
    if (t)
        cJSON_ReplaceItemInObjectCaseSensitive(t, "health", cJSON_CreateString(up ? "UP"
                                                                                  : "DOWN"));
}

static void deep_breaker(const char *upstream, const char *target, int state, void *arg)
{
    static const char *const names[DP_BREAKER_STATES] = {"closed", "open", "half_open"};
    cJSON *t = deep_target(arg, upstream, target);
    if (t && state >= 0 && state < DP_BREAKER_STATES)
        cJSON_ReplaceItemInObjectCaseSensitive(t, "breaker", cJSON_CreateString(names[state]));
}

static void on_health_deep(dp_status_t *st, struct evhttp_request *req)
{
    const dp_generation_t *g = generation_current();
    cJSON *root = cJSON_CreateObject();
    deep_ctx_t d = {cJSON_CreateObject()};
    bool ready = g && !st->draining && metrics_config_version() > 0, degraded = false;
    char *text;

    if (!root || !d.upstreams)
        goto fail;
    cJSON_AddItemToObject(root, "upstreams", d.upstreams);
    for (size_t i = 0; g && i < g->config->n_upstreams; i++) {
        const fg_upstream_t *u = &g->config->upstreams[i];
        cJSON *uo = cJSON_AddObjectToObject(d.upstreams, u->name);
        cJSON *list = uo ? cJSON_AddArrayToObject(uo, "targets") : NULL;
        for (size_t j = 0; list && j < u->n_targets; j++) {
            cJSON *t = cJSON_CreateObject();
            if (!t || !cJSON_AddItemToArray(list, t) ||
                !cJSON_AddStringToObject(t, "target", u->targets[j].url) ||
                !cJSON_AddStringToObject(t, "health", "unchecked") ||
                !cJSON_AddStringToObject(t, "breaker", "none"))
                goto fail;
        }
    }
    health_foreach(deep_health, &d);
    breaker_foreach(deep_breaker, &d);
    cJSON *uo;
    cJSON_ArrayForEach(uo, d.upstreams) {
        unsigned up = 0, down = 0;
        cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(uo, "targets")) {
            const char *h = cJSON_GetObjectItemCaseSensitive(t, "health")->valuestring;
            const char *b = cJSON_GetObjectItemCaseSensitive(t, "breaker")->valuestring;
            bool usable = strcmp(h, "DOWN") != 0 && strcmp(b, "open") != 0;
            up += usable;
            down += !usable;
        }
        cJSON_AddStringToObject(uo, "status", !down ? "UP" : up ? "DEGRADED" : "DOWN");
        degraded |= down > 0;
    }
    cJSON_AddStringToObject(root, "status", !ready ? "DOWN" : degraded ? "DEGRADED" : "UP");
    cJSON_AddNumberToObject(root, "config_version", g ? (double)g->version : 0);
    cJSON_AddStringToObject(root, "redis", redis_check());
    text = cJSON_PrintUnformatted(root);
    if (!text)
        goto fail;
    reply_json(req, ready ? 200 : 503, text);
    free(text);
    cJSON_Delete(root);
    return;
fail:
    cJSON_Delete(root);
    if (!root)
        cJSON_Delete(d.upstreams);
    evhttp_send_error(req, 500, NULL);
}

/* Prometheus text format, version 0.0.4, of every worker's slot summed. */
static void on_metrics(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (!out || metrics_render(out) < 0) {
        if (out)
            evbuffer_free(out);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* metrics.path of the applied config (the default before one), unless metrics.enabled is
 * false. */
static bool is_metrics_path(const char *uri, size_t len)
{
    const dp_generation_t *g = generation_current();
    const char *path = g ? g->config->metrics.path : NULL;
    if (g && !g->config->metrics.enabled)
        return false;
    if (!path)
        path = FG_DEFAULT_METRICS_PATH;
    return strlen(path) == len && memcmp(path, uri, len) == 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    dp_status_t *st = arg;
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    size_t path_len = strcspn(uri, "?#");

    for (size_t i = 0; i < sizeof(status_routes) / sizeof(status_routes[0]); i++) {
        const struct status_route *r = &status_routes[i];
        if (strlen(r->path) != path_len || memcmp(r->path, uri, path_len) != 0)
            continue;
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
            reply_get_only(req);
            return;
        }
        r->handle(st, req);
        return;
    }
    if (is_metrics_path(uri, path_len)) {
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
            reply_get_only(req);
            return;
        }
        on_metrics(req);
        return;
    }
    reply_json(req, 404, "{\"error\":{\"code\":\"not_found\","
                         "\"message\":\"no such status endpoint\"}}");
}

/* Numeric addresses ("127.0.0.1:9101", "[::1]:9101") are parsed directly; a name
 * ("localhost:9101") goes through the resolver once, at start-up, before the loop runs. */
static int status_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *ss_len,
                          fg_error_t *err)
{
    const char *colon = strrchr(addr, ':');
    int len = (int)sizeof(*ss);
    struct evutil_addrinfo hints, *res = NULL;
    char host[256];
    size_t host_len;
    int rc;

    if (!colon || colon[1] == '\0' || colon == addr)
        return fg_error_set(err, "status-listen", "expected HOST:PORT, got \"%.64s\"", addr);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)ss, &len) == 0) {
        *ss_len = (socklen_t)len;
        return 0;
    }
    host_len = (size_t)(colon - addr);
    if (addr[0] == '[' || host_len >= sizeof(host))
        return fg_error_set(err, "status-listen", "bad address \"%.64s\"", addr);
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
    rc = evutil_getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res)
        return fg_error_set(err, "status-listen", "cannot resolve \"%.64s\": %s", addr,
                            rc ? evutil_gai_strerror(rc) : "no address");
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = (socklen_t)res->ai_addrlen;
    evutil_freeaddrinfo(res);
    return 0;
}

static evutil_socket_t status_listen_socket(const char *addr, fg_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    evutil_socket_t fd;
    int one = 1;

    memset(&ss, 0, sizeof(ss));
    if (status_resolve(addr, &ss, &ss_len, err) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fg_error_setc(err, -errno, "status-listen", "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* --workers: every worker has its own status listener on the shared port. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, ss_len) < 0 || listen(fd, STATUS_LISTEN_BACKLOG) < 0) {
        int e = errno;
        fg_error_setc(err, -e, "status-listen", "cannot listen on %s: %s", addr, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

dp_status_t *status_start(struct event_base *base, const dp_status_conf_t *conf,
                          fg_error_t *err)
{
    const char *addr = conf->listen ? conf->listen : DP_STATUS_LISTEN_DEFAULT;
    dp_status_t *st = calloc(1, sizeof(*st));
    evutil_socket_t fd;

    if (!st) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        return NULL;
    }
    st->subscriber = conf->subscriber;
    st->http = evhttp_new(base);
    if (!st->http) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory creating the status listener");
        goto fail_http;
    }
    evhttp_set_max_headers_size(st->http, DP_STATUS_MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(st->http, DP_STATUS_MAX_BODY_SIZE);
    evhttp_set_timeout(st->http, DP_STATUS_TIMEOUT_SECS);
    evhttp_set_allowed_methods(st->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(st->http, on_request, st);

    fd = status_listen_socket(addr, err);
    if (fd < 0)
        goto fail_http;
    if (!evhttp_accept_socket_with_handle(st->http, fd)) {
        close(fd);
        fg_error_setc(err, -ENOMEM, "status-listen", "cannot serve on %s", addr);
        goto fail_http;
    }
    return st;

fail_http:
    status_free(st);
    return NULL;
}

void status_set_subscriber(dp_status_t *st, const dp_subscriber_t *sub)
{
    st->subscriber = sub;
}

void status_set_draining(dp_status_t *st, bool draining)
{
    st->draining = draining;
}

void status_free(dp_status_t *st)
{
    if (!st)
        return;
    if (st->http)
        evhttp_free(st->http);
    free(st);
}
