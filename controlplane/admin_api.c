/* admin_api.c - libmicrohttpd glue for the admin API: listen, route, authenticate, collect
 * bodies, reply, log.
 *
 * Everything that can be decided from the request head (route, token, method, declared
 * length) is decided on MHD's first call, before any body byte is read, so an
 * unauthenticated or oversized upload is refused without being buffered. Bodies are
 * accumulated up to max_body; a chunked body that grows past it is discarded and answered
 * with 413 once complete. Handlers live in api_*.c and reply through the helpers here. */
#include "admin_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "api_import.h"
#include "ctl_metrics.h"
#include "fg_log.h"
#include "fg_time.h"
#include "lockout.h"

#define ADMIN_HOST_MAX 256
#define ADMIN_AUTH_REALM "Bearer realm=\"flexgate\""

struct admin_api {
    struct MHD_Daemon *daemon;
    store_t *store;
    publisher_t *publisher;
    const token_t *token;
    const char *ui_dir;
    size_t max_body;
    uint16_t port;
    lockout_t lockout;   /* wrong tokens per client address; the API thread only */
    char *tls_cert_pem;  /* owned; MHD reads them while it runs */
    char *tls_key_pem;   /* owned; wiped before it is freed */
};

/* Where a path goes. `allow_*` list the methods of the collection, of its items and of the
 * item's `action` sub-resource (NULL: the route has no such form). HEAD is accepted
 * wherever GET is. */
typedef struct api_route {
    const char *path;
    bool auth;
    const char *allow_collection;
    const char *allow_item;
    api_handler_fn fn;
    const char *action;       /* "/{item}/<action>", or NULL */
    const char *allow_action;
} api_route_t;

static const api_route_t api_routes_table[] = {
    {"/api/v1/upstreams", true, "GET, POST", "GET, PUT, DELETE", api_upstreams, NULL, NULL},
    {"/api/v1/routes", true, "GET, POST", "GET, PUT, DELETE", api_routes, NULL, NULL},
    {"/api/v1/keys", true, "GET, POST", "GET, PUT, DELETE", api_keys, NULL, NULL},
    {"/api/v1/settings", true, "GET", "GET, PUT", api_settings, NULL, NULL},
    {"/api/v1/snapshots", true, "GET", "GET", api_snapshots, "rollback", "POST"},
    {"/api/v1/dataplanes", true, "GET", NULL, api_dataplanes, NULL, NULL},
    {.path = "/api/v1/import", .auth = true, .allow_collection = "POST", .fn = api_import},
    {.path = "/api/v1/export", .auth = true, .allow_collection = "GET", .fn = api_export},
    {"/health/live", false, "GET", NULL, api_health_live, NULL, NULL},
    {"/health/ready", false, "GET", NULL, api_health_ready, NULL, NULL},
    {"/health/deep", false, "GET", NULL, api_health_deep, NULL, NULL},
    {"/metrics", false, "GET", NULL, api_metrics, NULL, NULL},
};

/* ---- replies -------------------------------------------------------------------------- */

enum MHD_Result api_reply_response(api_req_t *req, unsigned status,
                                   struct MHD_Response *resp, const char *content_type)
{
    char buf[64];
    if (!resp)
        return MHD_NO;
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (req->reply_version > 0) {
        snprintf(buf, sizeof buf, "%" PRId64, req->reply_version);
        MHD_add_response_header(resp, "X-Config-Version", buf);
    }
    if (req->reply_revision > 0) {
        snprintf(buf, sizeof buf, "\"%" PRId64 "\"", req->reply_revision);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, buf);
    }
    if (req->reply_location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, req->reply_location);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, ADMIN_AUTH_REALM);
    if (status == MHD_HTTP_TOO_MANY_REQUESTS && req->reply_retry_after_s) {
        snprintf(buf, sizeof buf, "%" PRIu32, req->reply_retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, buf);
    }
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = (int)status;
    return rc;
}

enum MHD_Result api_reply_text(api_req_t *req, unsigned status, const char *text, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    return api_reply_response(req, status, resp, "application/json");
}

enum MHD_Result api_reply_json(api_req_t *req, unsigned status, cJSON *body)
{
    if (!body)
        return api_reply_empty(req, status);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
                                  "memory\"}}";
        return api_reply_text(req, MHD_HTTP_INTERNAL_SERVER_ERROR, oom, sizeof oom - 1);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return api_reply_response(req, status, resp, "application/json");
}

enum MHD_Result api_reply_empty(api_req_t *req, unsigned status)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL,
                                                                MHD_RESPMEM_PERSISTENT);
    return api_reply_response(req, status, resp, NULL);
}

enum MHD_Result api_reply_error(api_req_t *req, unsigned status, const char *code,
                                const char *field, const char *fmt, ...)
{
    char message[FG_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (field && *field)
        cJSON_AddStringToObject(e, "field", field);
    return api_reply_json(req, status, root);
}

enum MHD_Result api_reply_store_error(api_req_t *req, int rc, const fg_error_t *err)
{
    const char *msg = err && err->message[0] ? err->message : strerror(-rc);
    const char *field = err ? err->field : NULL;
    switch (rc) {
    case -ENOENT:
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "%s", msg);
    case -EEXIST:
        return api_reply_error(req, MHD_HTTP_CONFLICT, "already_exists", field, "%s", msg);
    case -EBUSY:
        return api_reply_error(req, MHD_HTTP_CONFLICT, "in_use", field, "%s", msg);
    case -ESTALE:
        return api_reply_error(req, MHD_HTTP_PRECONDITION_FAILED, "precondition_failed",
                               NULL, "%s", msg);
    case -EINVAL:
        return api_reply_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation_failed", field,
                               "%s%s%s", field && *field ? field : "",
                               field && *field ? ": " : "", msg);
    case -EAGAIN:
        return api_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "busy", NULL,
                               "the database is locked, retry");
    default:
        fg_log(FG_LOG_ERROR, "store failure", "path", req->path, "error", msg, NULL);
        return api_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                               "internal error; see the control plane log");
    }
}

enum MHD_Result api_reply_method_not_allowed(api_req_t *req, const char *allow)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", "method_not_allowed");
    cJSON_AddStringToObject(e, "message", "method not allowed here");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE)
             : NULL;
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return api_reply_response(req, MHD_HTTP_METHOD_NOT_ALLOWED, resp, "application/json");
}

/* ---- request helpers ------------------------------------------------------------------ */

cJSON *api_parse_body(api_req_t *req)
{
    const char *end = NULL;
    if (!req->body || req->body_len == 0) {
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                        "a JSON object body is required");
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
    if (root && end) {
        while ((size_t)(end - req->body) < req->body_len &&
               (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if ((size_t)(end - req->body) < req->body_len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = end ? (size_t)(end - req->body)
                         : at && at >= req->body && at <= req->body + req->body_len
                               ? (size_t)(at - req->body) : 0;
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                        "malformed JSON near byte %zu", off);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL,
                        "the body must be a JSON object");
        return NULL;
    }
    return root;
}

int64_t api_if_match(api_req_t *req)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_IF_MATCH);
    if (!v || strcmp(v, "*") == 0)
        return 0;
    if (strncmp(v, "W/", 2) == 0)
        v += 2;
    char *end = NULL;
    long long rev = -1;
    if (*v == '"')
        rev = strtoll(v + 1, &end, 10);
    if (rev <= 0 || !end || end[0] != '"' || end[1] != '\0') {
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", NULL,
                        "If-Match must be an ETag this API returned, e.g. \"3\"");
        return -1;
    }
    return rev;
}

void api_committed(api_req_t *req, int64_t version)
{
    req->reply_version = version;
    publisher_notify(req->publisher);
}

int api_query_int(api_req_t *req, const char *name, int64_t min, int64_t max, int64_t *out)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    char *end = NULL;
    if (!v)
        return 0;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max || !(*v >= '0' && *v <= '9')) {
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", name,
                        "%s: must be an integer from %" PRId64 " to %" PRId64, name, min, max);
        return -1;
    }
    *out = n;
    return 1;
}

void api_field_relative(fg_error_t *err, const char *prefix)
{
    size_t n = strlen(prefix);
    if (!err || strncmp(err->field, prefix, n) != 0)
        return;
    const char *rest = err->field + n;
    if (*rest == '.')
        rest++;
    else if (*rest != '[' && *rest != '\0')
        return; /* "proxyX": another name that merely starts with the prefix */
    memmove(err->field, rest, strlen(rest) + 1);
}

/* ---- routing -------------------------------------------------------------------------- */

static bool method_allowed(const char *allow, const char *method)
{
    if (!allow)
        return false;
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    size_t n = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)); p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* Match the path: exact -> collection, "<path>/<item>" -> item (no further '/'),
 * "<path>/<item>/<action>" -> the route's action. `item` is copied into `item_buf`. */
static const api_route_t *route_find(const char *url, char *item_buf, size_t item_len,
                                     const char **item, const char **action)
{
    *item = *action = NULL;
    for (size_t i = 0; i < sizeof api_routes_table / sizeof api_routes_table[0]; i++) {
        const api_route_t *r = &api_routes_table[i];
        size_t n = strlen(r->path);
        if (strncmp(url, r->path, n) != 0)
            continue;
        if (url[n] == '\0' || (url[n] == '/' && url[n + 1] == '\0'))
            return r;
        if (url[n] != '/' || url[n + 1] == '/')
            continue;
        const char *seg = url + n + 1, *slash = strchr(seg, '/');
        if (!slash) {
            *item = seg;
            return r;
        }
        if (r->action && strcmp(slash + 1, r->action) == 0 &&
            (size_t)(slash - seg) < item_len) {
            memcpy(item_buf, seg, (size_t)(slash - seg));
            item_buf[slash - seg] = '\0';
            *item = item_buf;
            *action = r->action;
            return r;
        }
        return NULL;
    }
    return NULL;
}

/* Whole configurations are imported in one body; everything else is small. */
static size_t body_limit(const admin_api_t *api, const api_req_t *req)
{
    return req->handler == api_import ? IMPORT_MAX_BODY : api->max_body;
}

static const struct sockaddr *client_addr(const api_req_t *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

static void describe_client(const struct sockaddr *sa, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
    snprintf(out, len, "%s", host);
}

/* The bearer token, the one credential (no cookie is ever read, so a browser cannot be
 * made to send it: no CSRF). A locked-out address is refused before its token is looked at,
 * so its guesses stop even when one would be right. Wrong tokens are logged with the client
 * address and never with what was sent. True when a reply has been queued. */
static bool refuse_unauthenticated(admin_api_t *api, api_req_t *req)
{
    lockout_key_t key;
    char n[16], wait_s[16];
    uint64_t now = fg_now_ms();
    lockout_key_from(client_addr(req), &key);
    uint32_t wait = lockout_blocked(&api->lockout, &key, now);
    if (wait) {
        req->reply_retry_after_s = wait;
        api_reply_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_attempts", NULL,
                        "too many wrong tokens from this address; retry in %" PRIu32 " s",
                        wait);
        return true;
    }
    const char *auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    if (token_check(api->token, auth)) {
        lockout_success(&api->lockout, &key);
        return false;
    }
    if (auth) { /* a guess; a request with no credential at all guesses nothing */
        uint32_t failures = lockout_fail(&api->lockout, &key, now);
        snprintf(n, sizeof n, "%" PRIu32, failures);
        fg_log(FG_LOG_WARN, "admin authentication failed: wrong token", "client", req->client,
               "method", req->method, "path", req->path, "failures", n, NULL);
        if ((wait = lockout_blocked(&api->lockout, &key, now))) {
            snprintf(wait_s, sizeof wait_s, "%" PRIu32, wait);
            fg_log(FG_LOG_WARN, "admin client locked out after repeated wrong tokens",
                   "client", req->client, "failures", n, "retry_after_s", wait_s, NULL);
        }
    }
    api_reply_error(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL,
                    "missing or wrong bearer token");
    return true;
}

/* Decide everything the head allows; true when a reply has been queued. */
static bool on_head(admin_api_t *api, api_req_t *req)
{
    const char *item = NULL, *action = NULL;
    bool is_api = strncmp(req->url, "/api/", 5) == 0;
    if (is_api && refuse_unauthenticated(api, req))
        return true;
    if (strcmp(req->url, "/") == 0 || strcmp(req->url, "/ui") == 0 ||
        strncmp(req->url, "/ui/", 4) == 0) {
        if (!method_allowed("GET", req->method)) {
            api_reply_method_not_allowed(req, "GET");
            return true;
        }
        req->handler = api_ui;
        req->endpoint = "/ui";
        return false;
    }
    const api_route_t *r = route_find(req->url, req->item_buf, sizeof req->item_buf, &item,
                                      &action);
    req->endpoint = r ? r->path : NULL;
    if (!r || (item && !r->allow_item)) {
        api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no such resource");
        return true;
    }
    const char *allow = action ? r->allow_action : item ? r->allow_item : r->allow_collection;
    if (!method_allowed(allow, req->method)) {
        api_reply_method_not_allowed(req, allow);
        return true;
    }
    req->item = item;
    req->action = action;
    req->handler = r->fn;
    const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > body_limit(api, req)) {
        api_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
                        "request body larger than %zu bytes", body_limit(api, req));
        return true;
    }
    return false;
}

static void append_body(admin_api_t *api, api_req_t *req, const char *data, size_t len)
{
    if (req->body_too_large)
        return;
    if (req->body_len + len > body_limit(api, req)) {
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        char *body = realloc(req->body, cap);
        if (!body) {
            req->body_too_large = true; /* answered 413: nothing better to say */
            return;
        }
        req->body = body;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    admin_api_t *api = cls;
    api_req_t *req = *con_cls;
    if (!req) {
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        *con_cls = req;
        req->api = api;
        req->store = api->store;
        req->publisher = api->publisher;
        req->ui_dir = api->ui_dir;
        req->conn = conn;
        req->method = method;
        req->url = url;
        req->start_ms = fg_now_ms();
        snprintf(req->path, sizeof req->path, "%s", url);
        describe_client(client_addr(req), req->client, sizeof req->client);
        on_head(api, req);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->replied)
            append_body(api, req, upload_data, *upload_data_size);
        *upload_data_size = 0; /* consumed (or discarded) */
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    if (req->body_too_large)
        return api_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", NULL,
                               "request body larger than %zu bytes", body_limit(api, req));
    enum MHD_Result rc = req->handler(req);
    if (!req->replied) /* a handler bug; never leave the client hanging */
        return api_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                               "no reply");
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_req_t *req = *con_cls;
    char status[8], ms[24];
    if (!req)
        return;
    snprintf(status, sizeof status, "%d", req->status);
    snprintf(ms, sizeof ms, "%" PRIu64, fg_now_ms() - req->start_ms);
    /* A locked-out client's 429s stay at debug: the lockout itself was logged once, and a
     * flood of refused requests must not become a flood of log lines. */
    fg_log_level_t level = req->status >= 500 ? FG_LOG_ERROR
                           : req->status == MHD_HTTP_UNAUTHORIZED ? FG_LOG_WARN
                           : FG_LOG_DEBUG;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && level < FG_LOG_WARN)
        level = FG_LOG_INFO;
    ctl_metrics_admin_request(req->endpoint, req->item != NULL, req->action, req->method,
                              req->status);
    if (fg_log_enabled(level))
        fg_log(level, "admin request", "client", req->client, "method", req->method, "path",
               req->path, "status", status, "duration_ms", ms, "completed",
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "true" : "false", NULL);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    fg_log(FG_LOG_WARN, "microhttpd", "detail", line, NULL);
}

/* ---- lifetime ------------------------------------------------------------------------- */

/* "127.0.0.1:9080", "[::1]:9080", "localhost:9080" -> first address getaddrinfo gives. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                        fg_error_t *err)
{
    char host[ADMIN_HOST_MAX];
    const char *colon, *h = listen;
    size_t hlen;
    if (!listen || !*listen)
        return fg_error_set(err, "admin-listen", "empty address");
    if (*listen == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return fg_error_set(err, "admin-listen", "expected [V6ADDR]:PORT");
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return fg_error_set(err, "admin-listen", "expected HOST:PORT");
        hlen = (size_t)(colon - listen);
    }
    if (hlen == 0 || hlen >= sizeof host)
        return fg_error_set(err, "admin-listen", "bad host in '%s'", listen);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return fg_error_set(err, "admin-listen", "bad port in '%s'", listen);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return fg_error_set(err, "admin-listen", "cannot resolve '%s': %s", host,
                            gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

bool admin_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static int check_bind(const char *listen, const struct sockaddr_storage *ss, bool tls,
                      bool insecure_bind, fg_error_t *err)
{
    if (tls || admin_addr_is_loopback((const struct sockaddr *)ss))
        return 0;
    if (insecure_bind) {
        fg_log(FG_LOG_WARN, "admin API served without TLS on a non-loopback address "
               "(--admin-insecure-bind): the token crosses the network in clear unless a "
               "TLS-terminating proxy fronts it", "listen", listen, NULL);
        return 0;
    }
    return fg_error_setc(err, -EACCES, "admin-listen", "refusing to serve the admin API on "
                         "non-loopback %s without TLS: the bearer token would cross the "
                         "network in clear. Give --admin-tls-cert and --admin-tls-key, or "
                         "--admin-insecure-bind when a TLS-terminating proxy fronts it",
                         listen);
}

int admin_api_check_listen(const char *listen, bool tls, bool insecure_bind, fg_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (!listen)
        listen = ADMIN_DEFAULT_LISTEN;
    int rc = parse_listen(listen, &ss, &sslen, err);
    return rc ? rc : check_bind(listen, &ss, tls, insecure_bind, err);
}

/* A PEM file, whole, NUL-terminated (MHD wants memory, not a path). Caller frees. */
static char *read_pem(const char *path, const char *flag, fg_error_t *err)
{
    struct stat sb;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fg_error_setc(err, -errno, flag, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
        sb.st_size > (off_t)ADMIN_TLS_FILE_MAX) {
        fg_error_setc(err, -EINVAL, flag, "%s: not a regular file of 1 to %u bytes", path,
                      ADMIN_TLS_FILE_MAX);
        goto fail_fd;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fg_error_setc(err, -ENOMEM, flag, "out of memory");
        goto fail_fd;
    }
    ssize_t n = read(fd, buf, (size_t)sb.st_size);
    if (n != sb.st_size || !strstr((buf[n] = '\0', buf), "-----BEGIN ")) {
        fg_error_setc(err, -EINVAL, flag, "%s: cannot read PEM from it", path);
        free(buf);
        buf = NULL;
    }
fail_fd:
    close(fd);
    return buf;
}

static void free_api(admin_api_t *api)
{
    if (api->tls_key_pem)
        explicit_bzero(api->tls_key_pem, strlen(api->tls_key_pem));
    free(api->tls_key_pem);
    free(api->tls_cert_pem);
    free(api);
}

int admin_api_start(const admin_api_conf_t *conf, admin_api_t **out, fg_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    const char *listen = conf->listen ? conf->listen : ADMIN_DEFAULT_LISTEN;
    bool tls = conf->tls_cert && conf->tls_key;
    int rc = parse_listen(listen, &ss, &sslen, err);
    if (rc || (rc = check_bind(listen, &ss, tls, conf->insecure_bind, err)))
        return rc;
    if (!conf->store || !conf->token)
        return fg_error_set(err, NULL, "admin API needs a store and a token");
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return fg_error_setc(err, -ENOTSUP, "admin-tls-cert", "this libmicrohttpd was built "
                             "without TLS: serve the admin API on loopback behind a "
                             "TLS-terminating proxy");
    admin_api_t *api = calloc(1, sizeof *api);
    if (!api)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    if (tls && (!(api->tls_cert_pem = read_pem(conf->tls_cert, "admin-tls-cert", err)) ||
                !(api->tls_key_pem = read_pem(conf->tls_key, "admin-tls-key", err)))) {
        free_api(api);
        return -EINVAL;
    }
    api->store = conf->store;
    api->publisher = conf->publisher;
    api->token = conf->token;
    api->ui_dir = conf->ui_dir;
    api->max_body = conf->max_body ? conf->max_body : ADMIN_MAX_BODY;
    api->lockout.max_failures = conf->lockout_failures;
    api->lockout.window_ms = conf->lockout_window_ms;

    uint16_t port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    /* The TLS options go last: without MHD_USE_TLS, MHD refuses them, so a plain daemon
     * ends its list before them. */
    api->daemon = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, api,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, api, /* first, or MHD logs the rest itself */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_CONNECTION_MEMORY,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, api->tls_cert_pem,
        MHD_OPTION_HTTPS_MEM_KEY, api->tls_key_pem,
        MHD_OPTION_HTTPS_PRIORITIES, ADMIN_TLS_PRIORITIES,
        MHD_OPTION_END);
    if (!api->daemon) {
        free_api(api);
        if (tls)
            return fg_error_setc(err, -EINVAL, "admin-listen", "cannot serve HTTPS on %s (in "
                                 "use, not a local address, or --admin-tls-cert and "
                                 "--admin-tls-key unusable or not a pair)", listen);
        return fg_error_setc(err, -EADDRNOTAVAIL, "admin-listen",
                             "cannot listen on %s (in use, or not a local address)", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon,
                                                           MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : port;
    char pbuf[8];
    snprintf(pbuf, sizeof pbuf, "%u", (unsigned)api->port);
    fg_log(FG_LOG_INFO, "admin API listening", "listen", listen, "port", pbuf, "tls",
           tls ? "true" : "false", NULL);
    *out = api;
    return 0;
}

void admin_api_stop(admin_api_t *api)
{
    if (!api)
        return;
    MHD_stop_daemon(api->daemon);
    free_api(api);
}
