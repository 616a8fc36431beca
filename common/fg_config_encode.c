/* fg_config_encode.c - config model -> canonical JSON (see fg_config.h, "encode").
 *
 * The canonical form is what the snapshot checksum covers, and a data plane recomputes it
 * from the model it decoded, so it must be a pure function of the model: every field is
 * written (defaults included) in one fixed order, optional strings that are NULL are left
 * out, enums are written by name, and the text is produced by our own printer rather than
 * cJSON_Print, so the bytes are pinned down by proto/PROTOCOL.md §5 and not by whichever
 * cJSON release is installed. A NULL string that has a default (a hand-built model's health
 * check path, say) is written as that default, which is what decoding its absence gives.
 * decode(canonical(c)) re-encodes to the same bytes; the unit tests hold us to that. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_config.h"
#include "fg_config_internal.h"

/* ---- tree building: every helper reports allocation failure as false ------------------ */

static bool add_item(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return false;
    /* Keys are string literals: the CS variant skips copying them. */
    if (!cJSON_AddItemToObjectCS(o, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

static bool add_num(cJSON *o, const char *key, double v)
{
    return add_item(o, key, cJSON_CreateNumber(v));
}

static bool add_bool(cJSON *o, const char *key, bool v)
{
    return add_item(o, key, cJSON_CreateBool(v));
}

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return v ? add_item(o, key, cJSON_CreateString(v)) : true;
}

static const char *or_default(const char *s, const char *def)
{
    return s ? s : def;
}

static cJSON *str_array(const char *const *list, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(list[i] ? list[i] : "");
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static bool add_rate_limit_fields(cJSON *o, const fg_rate_limit_t *rl)
{
    return add_bool(o, "enabled", rl->enabled) && add_num(o, "max", rl->max) &&
           add_num(o, "windowMs", rl->window_ms) && add_num(o, "burst", rl->burst) &&
           add_str(o, "message", rl->message);
}

static cJSON *enc_rate_limit(const fg_rate_limit_t *rl)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !add_rate_limit_fields(o, rl)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- upstreams ------------------------------------------------------------------------ */

static cJSON *enc_targets(const fg_upstream_t *u)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < u->n_targets; i++) {
        cJSON *t = cJSON_CreateObject();
        if (!t || !add_str(t, "url", u->targets[i].url) ||
            !add_num(t, "weight", u->targets[i].weight) || !cJSON_AddItemToArray(a, t)) {
            cJSON_Delete(t);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *enc_breaker(const fg_breaker_conf_t *b)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(add_bool(o, "enabled", b->enabled) &&
               add_num(o, "failureThreshold", b->failure_threshold) &&
               add_num(o, "successThreshold", b->success_threshold) &&
               add_num(o, "openDuration", b->open_duration_ms) &&
               add_num(o, "halfOpenRequests", b->half_open_requests) &&
               add_num(o, "minRequests", b->min_requests) &&
               add_num(o, "windowMs", b->window_ms))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_health_check(const fg_health_check_t *h)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(add_bool(o, "enabled", h->enabled) &&
               add_str(o, "path", or_default(h->path, FG_DEFAULT_HC_PATH)) &&
               add_num(o, "interval", h->interval_ms) && add_num(o, "timeout", h->timeout_ms) &&
               add_num(o, "unhealthyThreshold", h->unhealthy_threshold) &&
               add_num(o, "healthyThreshold", h->healthy_threshold) &&
               add_num(o, "consecutiveFailures", h->consecutive_failures) &&
               add_num(o, "ejectDuration", h->eject_ms))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_keepalive(const fg_keepalive_conf_t *k)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(add_num(o, "maxIdle", k->max_idle) &&
               add_num(o, "idleTimeout", k->idle_timeout_ms))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *fg_upstream_encode(const fg_upstream_t *u)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* A model built from `url` writes `url` back; one built by hand without a url, or from
     * `targets`, writes `targets`. */
    bool as_url = !u->targets_explicit && u->url;
    bool ok = add_str(o, "name", u->name) &&
              (as_url ? add_str(o, "url", u->url) : add_item(o, "targets", enc_targets(u))) &&
              add_str(o, "loadBalancing", fg_lb_policy_name(u->load_balancing)) &&
              add_str(o, "hashOn", u->hash_on) && add_num(o, "timeout", u->timeout_ms) &&
              add_num(o, "retries", u->retries) && add_str(o, "fallback", u->fallback) &&
              add_str(o, "caFile", u->ca_file) && add_bool(o, "tlsVerify", u->tls_verify) &&
              add_str(o, "clientCert", u->client_cert) && add_str(o, "clientKey", u->client_key) &&
              add_item(o, "keepalive", enc_keepalive(&u->keepalive)) &&
              add_item(o, "circuitBreaker", enc_breaker(&u->circuit_breaker)) &&
              add_item(o, "healthCheck", enc_health_check(&u->health_check));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- routes --------------------------------------------------------------------------- */

static cJSON *enc_methods(unsigned methods)
{
    cJSON *a = cJSON_CreateArray();
    for (unsigned bit = 1; a && bit <= FG_METHOD_TRACE; bit <<= 1) {
        const char *name = fg__method_name(bit);
        if (!(methods & bit) || !name)
            continue;
        cJSON *s = cJSON_CreateString(name);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *enc_header_ops(const fg_header_ops_t *ops)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *add = cJSON_CreateObject();
    if (!o || !add)
        goto fail;
    for (size_t i = 0; i < ops->n_add; i++) {
        cJSON *v = cJSON_CreateString(ops->add[i].value ? ops->add[i].value : "");
        /* Header names are data, not literals: this variant copies the key. */
        if (!v || !cJSON_AddItemToObject(add, ops->add[i].name ? ops->add[i].name : "", v)) {
            cJSON_Delete(v);
            goto fail;
        }
    }
    if (!add_item(o, "add", add)) {
        add = NULL; /* add_item freed it */
        goto fail;
    }
    if (!add_item(o, "remove", str_array(ops->remove, ops->n_remove)))
        goto fail_o;
    return o;
fail:
    cJSON_Delete(add);
fail_o:
    cJSON_Delete(o);
    return NULL;
}

cJSON *fg_route_encode(const fg_route_t *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = add_str(o, "id", r->id) && add_str(o, "path", r->path) &&
              add_str(o, "upstream", r->upstream) &&
              add_item(o, "methods", enc_methods(r->methods)) &&
              add_item(o, "hosts", str_array(r->hosts, r->n_hosts)) &&
              add_str(o, "auth", fg_auth_mode_name(r->auth)) &&
              add_num(o, "timeout", r->timeout_ms) && add_bool(o, "stripPrefix", r->strip_prefix) &&
              add_num(o, "priority", r->priority) && add_bool(o, "websocket", r->websocket) &&
              (!r->rate_limit.set || add_item(o, "rateLimit", enc_rate_limit(&r->rate_limit))) &&
              add_item(o, "requestHeaders", enc_header_ops(&r->request_headers)) &&
              add_item(o, "responseHeaders", enc_header_ops(&r->response_headers)) &&
              add_bool(o, "allowEncodedSlashes", r->allow_encoded_slashes);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- keys and settings ---------------------------------------------------------------- */

cJSON *fg_api_key_encode(const fg_api_key_t *k)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(add_str(o, "name", k->name) && add_str(o, "key", k->key_sha256) &&
               add_item(o, "routes", str_array(k->routes, k->n_routes)) &&
               add_bool(o, "disabled", k->disabled) &&
               add_num(o, "expiresAt", (double)k->expires_at_ms) &&
               add_bool(o, "hmac", k->hmac))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_proxy(const fg_proxy_conf_t *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *t = cJSON_CreateObject();
    if (!o || !t)
        goto fail;
    if (!add_num(t, "request", p->request_timeout_ms) ||
        !add_num(t, "connect", p->connect_timeout_ms) || !add_num(t, "idle", p->idle_timeout_ms) ||
        !add_num(t, "header", p->header_timeout_ms))
        goto fail;
    if (!add_num(o, "port", p->port)) /* before `timeout`: canonical order */
        goto fail;
    if (!add_item(o, "timeout", t)) {
        t = NULL;
        goto fail;
    }
    t = NULL;
    if (!add_num(o, "maxBodySize", (double)p->max_body_size) ||
        !add_num(o, "maxHeaderSize", p->max_header_size) ||
        !add_num(o, "maxHeaders", p->max_headers) ||
        !add_num(o, "maxConnections", p->max_connections) ||
        !add_num(o, "maxPending", p->max_pending) || !add_num(o, "retryBudget", p->retry_budget))
        goto fail;
    return o;
fail:
    cJSON_Delete(t);
    cJSON_Delete(o);
    return NULL;
}

static cJSON *enc_keys(const fg_auth_conf_t *a)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < a->n_keys; i++) {
        cJSON *k = fg_api_key_encode(&a->keys[i]);
        if (!k || !cJSON_AddItemToArray(arr, k)) {
            cJSON_Delete(k);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *enc_security(const fg_security_conf_t *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *auth = cJSON_CreateObject();
    bool ok = o && auth && add_str(auth, "type", or_default(s->auth.type, FG_DEFAULT_AUTH_TYPE)) &&
              add_str(auth, "header", or_default(s->auth.header, FG_DEFAULT_AUTH_HEADER)) &&
              add_item(auth, "keys", enc_keys(&s->auth)) &&
              add_bool(auth, "bearer", s->auth.bearer) &&
              add_str(auth, "identityHeader",
                      or_default(s->auth.identity_header, FG_DEFAULT_IDENTITY_HEADER)) &&
              add_num(auth, "hmacClockSkewMs", s->auth.hmac_skew_ms);
    if (!ok) {
        cJSON_Delete(auth);
        cJSON_Delete(o);
        return NULL;
    }
    ok = add_item(o, "allowedHosts", str_array(s->allowed_hosts, s->n_allowed_hosts)) &&
         add_item(o, "blockedIPs", str_array(s->blocked_ips, s->n_blocked_ips)) &&
         add_item(o, "trustedProxies", str_array(s->trusted_proxies, s->n_trusted_proxies)) &&
         add_bool(o, "strict", s->strict);
    if (!ok) {
        cJSON_Delete(auth);
        cJSON_Delete(o);
        return NULL;
    }
    if (!add_item(o, "auth", auth)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_per_route(const fg_rate_limit_conf_t *c)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < c->n_per_route; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e || !add_str(e, "path", c->per_route[i].path) ||
            !add_rate_limit_fields(e, &c->per_route[i].limit) || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* Written when it says anything: a URL or a setting off its default. */
static bool redis_written(const fg_rate_limit_conf_t *c)
{
    return c->redis_url || c->redis_timeout_ms != FG_DEFAULT_RL_REDIS_TIMEOUT_MS ||
           c->redis_fallback_divisor != FG_DEFAULT_RL_FALLBACK_DIVISOR;
}

static cJSON *enc_redis(const fg_rate_limit_conf_t *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !((!c->redis_url || add_str(o, "url", c->redis_url)) &&
               add_num(o, "timeoutMs", c->redis_timeout_ms) &&
               add_num(o, "fallbackDivisor", c->redis_fallback_divisor))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_rate_limit_conf(const fg_rate_limit_conf_t *c)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_bool(o, "enabled", c->enabled) &&
              add_str(o, "backend", c->backend == FG_RL_REDIS ? "redis" : "local") &&
              (!redis_written(c) || add_item(o, "redis", enc_redis(c))) &&
              (!c->global.set || add_item(o, "global", enc_rate_limit(&c->global))) &&
              add_item(o, "perRoute", enc_per_route(c)) &&
              add_num(o, "maxBuckets", c->max_buckets);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_logging(const fg_logging_conf_t *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *s = cJSON_CreateObject();
    bool ok = o && s && add_num(s, "successRate", l->success_rate) &&
              add_num(s, "errorRate", l->error_rate) &&
              add_str(o, "level", or_default(l->level, FG_DEFAULT_LOG_LEVEL)) &&
              add_str(o, "format", or_default(l->format, FG_DEFAULT_LOG_FORMAT)) &&
              add_str(o, "requestIdHeader", l->request_id_header);
    if (!ok) {
        cJSON_Delete(s);
        cJSON_Delete(o);
        return NULL;
    }
    if (!add_item(o, "sampling", s)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_metrics(const fg_metrics_conf_t *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(add_bool(o, "enabled", m->enabled) && add_num(o, "port", m->port) &&
               add_str(o, "path", or_default(m->path, FG_DEFAULT_METRICS_PATH)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *enc_upstreams(const fg_config_t *cfg)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < cfg->n_upstreams; i++) {
        cJSON *u = fg_upstream_encode(&cfg->upstreams[i]);
        if (!u || !cJSON_AddItemToArray(arr, u)) {
            cJSON_Delete(u);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *enc_routes(const fg_config_t *cfg)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < cfg->n_routes; i++) {
        cJSON *r = fg_route_encode(&cfg->routes[i]);
        if (!r || !cJSON_AddItemToArray(arr, r)) {
            cJSON_Delete(r);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

cJSON *fg_config_encode(const fg_config_t *cfg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    bool ok = add_str(o, "version", cfg->version) && add_item(o, "proxy", enc_proxy(&cfg->proxy)) &&
              add_item(o, "security", enc_security(&cfg->security)) &&
              add_item(o, "rateLimit", enc_rate_limit_conf(&cfg->rate_limit)) &&
              add_item(o, "logging", enc_logging(&cfg->logging)) &&
              add_item(o, "metrics", enc_metrics(&cfg->metrics)) &&
              add_item(o, "upstreams", enc_upstreams(cfg)) &&
              add_item(o, "routes", enc_routes(cfg));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- canonical printer (PROTOCOL.md §5) ----------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void print_string(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char u[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4], u[5] = hex[c & 0xf], u[6] = '\0';
            esc = u;
        }
        if (esc) {
            sb_put(b, run, (size_t)(s - run));
            sb_puts(b, esc);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
    sb_put(b, "\"", 1);
}

/* Integers (every number but the sampling rates) print as plain decimal; anything else as
 * the shortest %.Ng, N = 1..17, that reads back to the same double. */
static void print_number(sbuf_t *b, double v)
{
    char buf[40];
    if (v - v != 0) { /* NaN or infinite: not JSON */
        sb_puts(b, "null");
        return;
    }
    if (fg__double_is_integer(v) && v < 9007199254740992.0 && v > -9007199254740992.0) {
        snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    sb_puts(b, buf);
}

static void print_value(sbuf_t *b, const cJSON *it)
{
    if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
        bool obj = cJSON_IsObject(it);
        sb_put(b, obj ? "{" : "[", 1);
        for (const cJSON *c = it->child; c; c = c->next) {
            if (c != it->child)
                sb_put(b, ",", 1);
            if (obj) {
                print_string(b, c->string ? c->string : "");
                sb_put(b, ":", 1);
            }
            print_value(b, c);
        }
        sb_put(b, obj ? "}" : "]", 1);
    } else if (cJSON_IsString(it)) {
        print_string(b, it->valuestring ? it->valuestring : "");
    } else if (cJSON_IsNumber(it)) {
        print_number(b, it->valuedouble);
    } else if (cJSON_IsTrue(it)) {
        sb_puts(b, "true");
    } else if (cJSON_IsFalse(it)) {
        sb_puts(b, "false");
    } else {
        sb_puts(b, "null");
    }
}

char *fg__json_canonical_print(const cJSON *item)
{
    sbuf_t b = {0};
    print_value(&b, item);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *fg_config_canonical(const fg_config_t *cfg)
{
    cJSON *tree = fg_config_encode(cfg);
    if (!tree)
        return NULL;
    char *text = fg__json_canonical_print(tree);
    cJSON_Delete(tree);
    return text;
}
