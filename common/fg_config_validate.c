/* fg_config_validate.c - the one validator both planes run (see fg_config.h, "validate").
 *
 * The decoder has already checked each value on its own; this file checks what only the
 * whole configuration can tell: names unique, references resolve, counts within limits. It
 * also re-checks every single-value rule (names, paths, ranges, header text, digests),
 * because a model can be assembled without the decoder: whatever passes here encodes to a
 * canonical text that decodes again, which is what lets a data plane verify a snapshot.
 *
 * Uniqueness and lookups use a throw-away open-addressing hash set, so validating 100,000
 * routes over 10,000 upstreams is linear, not quadratic. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_config.h"
#include "fg_config_internal.h"

typedef struct name_set {
    const char **names;
    size_t *index; /* position of each name in its list, for "same as upstreams[0]" */
    size_t mask;
} name_set_t;

#define NAME_RULE "must be 1 to 64 characters of letters, digits, '.', '_' or '-'"

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int set_init(name_set_t *s, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    s->names = calloc(cap, sizeof(*s->names));
    s->index = calloc(cap, sizeof(*s->index));
    s->mask = cap - 1;
    if (!s->names || !s->index) {
        free(s->names);
        free(s->index);
        return -ENOMEM;
    }
    return 0;
}

static void set_free(name_set_t *s)
{
    free(s->names);
    free(s->index);
}

/* Insert `name`; when it is already there, return false and set *first to where it was. */
static bool set_add(name_set_t *s, const char *name, size_t index, size_t *first)
{
    for (size_t i = hash_name(name) & s->mask;; i = (i + 1) & s->mask) {
        if (!s->names[i]) {
            s->names[i] = name;
            s->index[i] = index;
            return true;
        }
        if (strcmp(s->names[i], name) == 0) {
            *first = s->index[i];
            return false;
        }
    }
}

static bool set_has(const name_set_t *s, const char *name)
{
    for (size_t i = hash_name(name) & s->mask;; i = (i + 1) & s->mask) {
        if (!s->names[i])
            return false;
        if (strcmp(s->names[i], name) == 0)
            return true;
    }
}

static int oom(fg_error_t *err)
{
    return fg_error_setc(err, -ENOMEM, NULL, "out of memory while validating");
}

static int check_range(fg_error_t *err, const char *prefix, const char *name, uint64_t v,
                       uint64_t lo, uint64_t hi)
{
    char f[FG_ERROR_FIELD_MAX];
    if (v >= lo && v <= hi)
        return 0;
    /* A path longer than the field buffer is cut: the message still says what is wrong. */
    if (snprintf(f, sizeof(f), "%s%s%s", prefix, *prefix ? "." : "", name) >= (int)sizeof(f))
        f[sizeof(f) - 1] = '\0';
    return fg_error_set(err, f, "must be between %llu and %llu", (unsigned long long)lo,
                        (unsigned long long)hi);
}

static int check_problem(fg_error_t *err, const char *field, const char *why)
{
    return why ? fg_error_set(err, field, "%s", why) : 0;
}

static int check_upstream_tuning(const fg_upstream_t *u, size_t i, fg_error_t *err)
{
    char p[FG_ERROR_FIELD_MAX];
    const fg_breaker_conf_t *b = &u->circuit_breaker;
    const fg_health_check_t *h = &u->health_check;
    int rc;

    snprintf(p, sizeof(p), "upstreams[%zu]", i);
    if ((rc = check_range(err, p, "timeout", u->timeout_ms, 1, FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, p, "retries", u->retries, 0, FG_RETRIES_MAX)) != 0 ||
        (rc = check_range(err, p, "loadBalancing", (uint64_t)u->load_balancing, 0,
                          FG_LB_CONSISTENT_HASH)) != 0)
        return rc;
    snprintf(p, sizeof(p), "upstreams[%zu].hashOn", i);
    if ((rc = check_problem(err, p, fg__hash_on_problem(u->hash_on))) != 0)
        return rc;
    snprintf(p, sizeof(p), "upstreams[%zu].circuitBreaker", i);
    if ((rc = check_range(err, p, "failureThreshold", b->failure_threshold, 1, 100)) != 0 ||
        (rc = check_range(err, p, "successThreshold", b->success_threshold, 1,
                          FG_BREAKER_COUNT_MAX)) != 0 ||
        (rc = check_range(err, p, "openDuration", b->open_duration_ms, 1, FG_TIMEOUT_MAX_MS)) !=
            0 ||
        (rc = check_range(err, p, "halfOpenRequests", b->half_open_requests, 1,
                          FG_BREAKER_COUNT_MAX)) != 0 ||
        (rc = check_range(err, p, "minRequests", b->min_requests, 1, FG_BREAKER_COUNT_MAX)) !=
            0 ||
        (rc = check_range(err, p, "windowMs", b->window_ms, 1, FG_TIMEOUT_MAX_MS)) != 0)
        return rc;
    snprintf(p, sizeof(p), "upstreams[%zu].healthCheck", i);
    if ((rc = check_range(err, p, "interval", h->interval_ms, 1, FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, p, "timeout", h->timeout_ms, 1, FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, p, "unhealthyThreshold", h->unhealthy_threshold, 1,
                          FG_HC_THRESHOLD_MAX)) != 0 ||
        (rc = check_range(err, p, "healthyThreshold", h->healthy_threshold, 1,
                          FG_HC_THRESHOLD_MAX)) != 0 ||
        (rc = check_range(err, p, "consecutiveFailures", h->consecutive_failures, 0,
                          FG_EJECT_FAILURES_MAX)) != 0 ||
        (rc = check_range(err, p, "ejectDuration", h->eject_ms, 1, FG_TIMEOUT_MAX_MS)) != 0)
        return rc;
    snprintf(p, sizeof(p), "upstreams[%zu].healthCheck.path", i);
    if ((rc = check_problem(err, p, fg__http_path_problem(h->path))) != 0)
        return rc;
    snprintf(p, sizeof(p), "upstreams[%zu].keepalive", i);
    if ((rc = check_range(err, p, "maxIdle", u->keepalive.max_idle, 0,
                          FG_KEEPALIVE_MAX_IDLE_MAX)) != 0 ||
        (rc = check_range(err, p, "idleTimeout", u->keepalive.idle_timeout_ms, 1,
                          FG_TIMEOUT_MAX_MS)) != 0)
        return rc;
    if (!u->client_cert != !u->client_key) {
        snprintf(p, sizeof(p), "upstreams[%zu].%s", i, u->client_cert ? "clientKey" : "clientCert");
        return fg_error_set(err, p, "clientCert and clientKey go together");
    }
    return 0;
}

static int check_header_ops(const fg_header_ops_t *ops, const char *prefix, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    int rc;
    if (ops->n_add > FG_MAX_LIST || ops->n_remove > FG_MAX_LIST) {
        snprintf(f, sizeof(f), "%s", prefix);
        return fg_error_set(err, f, "at most %d headers to add and %d to remove", FG_MAX_LIST,
                            FG_MAX_LIST);
    }
    for (size_t i = 0; i < ops->n_add; i++) {
        snprintf(f, sizeof(f), "%s.add", prefix);
        if ((rc = check_problem(err, f, fg__header_name_problem(ops->add[i].name))) != 0)
            return rc;
        snprintf(f, sizeof(f), "%s.add.%s", prefix, ops->add[i].name);
        if ((rc = check_problem(err, f, fg__header_value_problem(ops->add[i].value))) != 0)
            return rc;
    }
    for (size_t i = 0; i < ops->n_remove; i++) {
        snprintf(f, sizeof(f), "%s.remove[%zu]", prefix, i);
        if ((rc = check_problem(err, f, fg__header_name_problem(ops->remove[i]))) != 0)
            return rc;
    }
    return 0;
}

static int check_route_fields(const fg_route_t *r, size_t i, fg_error_t *err)
{
    char p[FG_ERROR_FIELD_MAX], f[FG_ERROR_FIELD_MAX];
    const unsigned all_methods = (FG_METHOD_TRACE << 1) - 1;
    int rc;

    snprintf(p, sizeof(p), "routes[%zu]", i);
    if ((rc = check_range(err, p, "timeout", r->timeout_ms, 0, FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, p, "auth", (uint64_t)r->auth, 0, FG_AUTH_REQUIRED)) != 0 ||
        (rc = check_range(err, p, "priority", (uint64_t)((int64_t)r->priority - FG_PRIORITY_MIN),
                          0, (uint64_t)(FG_PRIORITY_MAX - FG_PRIORITY_MIN))) != 0)
        return rc;
    if (r->methods & ~all_methods) {
        snprintf(f, sizeof(f), "routes[%zu].methods", i);
        return fg_error_set(err, f, "unknown method bits");
    }
    if (r->n_hosts > FG_MAX_LIST) {
        snprintf(f, sizeof(f), "routes[%zu].hosts", i);
        return fg_error_set(err, f, "at most %d hosts", FG_MAX_LIST);
    }
    for (size_t h = 0; h < r->n_hosts; h++) {
        snprintf(f, sizeof(f), "routes[%zu].hosts[%zu]", i, h);
        if ((rc = check_problem(err, f, fg__host_pattern_problem(r->hosts[h]))) != 0)
            return rc;
    }
    snprintf(p, sizeof(p), "routes[%zu].requestHeaders", i);
    if ((rc = check_header_ops(&r->request_headers, p, err)) != 0)
        return rc;
    snprintf(p, sizeof(p), "routes[%zu].responseHeaders", i);
    return check_header_ops(&r->response_headers, p, err);
}

/* `base` + `leaf` into `out`; a path longer than FG_ERROR_FIELD_MAX is cut, which is what
 * fg_error_t would do with it anyway. */
static void field_join(char *out, size_t n, const char *base, const char *leaf)
{
    if (snprintf(out, n, "%s%s", base, leaf) < 0)
        out[0] = '\0';
}

static int check_rate_limit(const fg_rate_limit_t *rl, const char *field, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    if (!rl->set || !rl->enabled)
        return 0;
    if (rl->max == 0) {
        field_join(f, sizeof(f), field, ".max");
        return fg_error_set(err, f, "must be > 0");
    }
    if (rl->window_ms == 0 || rl->window_ms > FG_RL_WINDOW_MAX_MS) {
        field_join(f, sizeof(f), field, ".windowMs");
        return rl->window_ms == 0 ? fg_error_set(err, f, "must be > 0")
                                  : fg_error_set(err, f, "must be at most %u", FG_RL_WINDOW_MAX_MS);
    }
    return 0;
}

static int check_upstreams(const fg_config_t *cfg, name_set_t *names, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    size_t first;

    if (cfg->n_upstreams > FG_MAX_UPSTREAMS)
        return fg_error_set(err, "upstreams", "at most %d upstreams", FG_MAX_UPSTREAMS);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const fg_upstream_t *u = &cfg->upstreams[i];
        snprintf(f, sizeof(f), "upstreams[%zu].name", i);
        if (!u->name)
            return fg_error_set(err, f, "required");
        if (!fg_name_valid(u->name))
            return fg_error_set(err, f, NAME_RULE);
        if (!set_add(names, u->name, i, &first))
            return fg_error_set(err, f, "duplicate upstream name \"%s\" (also upstreams[%zu])",
                                u->name, first);
        if (u->n_targets == 0 || !u->targets) {
            snprintf(f, sizeof(f), "upstreams[%zu].url", i);
            return fg_error_set(err, f, "required (or targets)");
        }
        if (u->n_targets > FG_MAX_TARGETS) {
            snprintf(f, sizeof(f), "upstreams[%zu].targets", i);
            return fg_error_set(err, f, "at most %d targets", FG_MAX_TARGETS);
        }
        for (size_t t = 0; t < u->n_targets; t++) {
            if (!u->targets[t].parsed.host || !u->targets[t].parsed.host[0]) {
                snprintf(f, sizeof(f), "upstreams[%zu].targets[%zu].url", i, t);
                return fg_error_set(err, f, "must be an http:// or https:// URL");
            }
            if (u->targets[t].weight < 1 || u->targets[t].weight > FG_WEIGHT_MAX) {
                snprintf(f, sizeof(f), "upstreams[%zu].targets[%zu].weight", i, t);
                return fg_error_set(err, f, "must be between 1 and %d", FG_WEIGHT_MAX);
            }
        }
        int rc = check_upstream_tuning(u, i, err);
        if (rc != 0)
            return rc;
    }
    /* Fallbacks second: they may name an upstream defined later in the list. */
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const fg_upstream_t *u = &cfg->upstreams[i];
        if (!u->fallback)
            continue;
        snprintf(f, sizeof(f), "upstreams[%zu].fallback", i);
        if (!fg_name_valid(u->fallback))
            return fg_error_set(err, f, "unknown upstream");
        if (strcmp(u->fallback, u->name) == 0)
            return fg_error_set(err, f, "must name another upstream, not itself");
        if (!set_has(names, u->fallback))
            return fg_error_set(err, f, "unknown upstream \"%s\"", u->fallback);
    }
    return 0;
}

static int check_routes(const fg_config_t *cfg, const name_set_t *upstreams, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    name_set_t ids;
    size_t first;
    int rc = 0;
    const char *why;

    if (cfg->n_routes > FG_MAX_ROUTES)
        return fg_error_set(err, "routes", "at most %d routes", FG_MAX_ROUTES);
    if (set_init(&ids, cfg->n_routes) != 0)
        return oom(err);
    for (size_t i = 0; i < cfg->n_routes && rc == 0; i++) {
        const fg_route_t *r = &cfg->routes[i];
        snprintf(f, sizeof(f), "routes[%zu].id", i);
        if (!r->id)
            rc = fg_error_set(err, f, "required");
        else if (!fg_name_valid(r->id))
            rc = fg_error_set(err, f, NAME_RULE);
        else if (!set_add(&ids, r->id, i, &first))
            rc = fg_error_set(err, f, "duplicate route id \"%s\" (also routes[%zu])", r->id, first);
        if (rc)
            break;
        snprintf(f, sizeof(f), "routes[%zu].path", i);
        if ((why = fg__route_path_problem(r->path)) != NULL) {
            rc = fg_error_set(err, f, "%s", why);
            break;
        }
        snprintf(f, sizeof(f), "routes[%zu].upstream", i);
        if (!r->upstream)
            rc = fg_error_set(err, f, "required");
        else if (!set_has(upstreams, r->upstream))
            rc = fg_error_set(err, f, "unknown upstream \"%s\"", r->upstream);
        if (rc)
            break;
        snprintf(f, sizeof(f), "routes[%zu].rateLimit", i);
        if ((rc = check_rate_limit(&r->rate_limit, f, err)) != 0)
            break;
        rc = check_route_fields(r, i, err);
    }
    set_free(&ids);
    return rc;
}

static int check_keys(const fg_auth_conf_t *a, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    name_set_t names, digests;
    size_t first;
    int rc = 0;

    if (a->n_keys > FG_MAX_KEYS)
        return fg_error_set(err, "security.auth.keys", "at most %d keys", FG_MAX_KEYS);
    if (set_init(&names, a->n_keys) != 0)
        return oom(err);
    if (set_init(&digests, a->n_keys) != 0) {
        set_free(&names);
        return oom(err);
    }
    for (size_t i = 0; i < a->n_keys && rc == 0; i++) {
        const fg_api_key_t *k = &a->keys[i];
        snprintf(f, sizeof(f), "security.auth.keys[%zu].name", i);
        if (!fg__key_name_valid(k->name))
            rc = fg_error_set(err, f, KEY_NAME_RULE);
        else if (!set_add(&names, k->name, i, &first))
            rc = fg_error_set(err, f, "duplicate key name \"%s\" (also keys[%zu])", k->name, first);
        if (rc)
            break;
        snprintf(f, sizeof(f), "security.auth.keys[%zu].key", i);
        if (!fg__sha256_hex_valid(k->key_sha256))
            rc = fg_error_set(err, f, "must be the key's SHA-256 as 64 lowercase hex characters");
        else if (!set_add(&digests, k->key_sha256, i, &first))
            rc = fg_error_set(err, f, "same key as keys[%zu]", first); /* never echo a digest */
    }
    set_free(&digests);
    set_free(&names);
    return rc;
}

static int check_settings(const fg_config_t *cfg, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    const char *why;
    int rc;

    if (cfg->rate_limit.backend == FG_RL_REDIS && !cfg->rate_limit.redis_url)
        return fg_error_set(err, "rateLimit.redis.url", "required when backend is \"redis\"");
    if ((rc = check_rate_limit(&cfg->rate_limit.global, "rateLimit.global", err)) != 0)
        return rc;
    if (cfg->rate_limit.n_per_route > FG_MAX_ROUTES)
        return fg_error_set(err, "rateLimit.perRoute", "at most %d entries", FG_MAX_ROUTES);
    for (size_t i = 0; i < cfg->rate_limit.n_per_route; i++) {
        const fg_per_route_limit_t *p = &cfg->rate_limit.per_route[i];
        snprintf(f, sizeof(f), "rateLimit.perRoute[%zu].path", i);
        if ((why = fg__route_path_problem(p->path)) != NULL)
            return fg_error_set(err, f, "%s", why);
        fg_rate_limit_t limit = p->limit;
        limit.set = true;
        snprintf(f, sizeof(f), "rateLimit.perRoute[%zu]", i);
        if ((rc = check_rate_limit(&limit, f, err)) != 0)
            return rc;
    }
    const fg_proxy_conf_t *px = &cfg->proxy;
    if ((rc = check_range(err, "proxy", "port", px->port, 1, 65535)) != 0 ||
        (rc = check_range(err, "proxy.timeout", "request", px->request_timeout_ms, 1,
                          FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, "proxy.timeout", "connect", px->connect_timeout_ms, 1,
                          FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, "proxy.timeout", "idle", px->idle_timeout_ms, 1,
                          FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, "proxy.timeout", "header", px->header_timeout_ms, 1,
                          FG_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, "proxy", "maxHeaderSize", px->max_header_size, 1024,
                          FG_MAX_HEADER_SIZE_LIMIT)) != 0 ||
        (rc = check_range(err, "proxy", "maxHeaders", px->max_headers, 1,
                          FG_MAX_HEADERS_LIMIT)) != 0 ||
        (rc = check_range(err, "proxy", "maxConnections", px->max_connections, 1,
                          FG_MAX_CONNECTIONS_LIMIT)) != 0 ||
        (rc = check_range(err, "proxy", "maxPending", px->max_pending, 0,
                          FG_MAX_PENDING_LIMIT)) != 0 ||
        (rc = check_range(err, "proxy", "retryBudget", px->retry_budget, 0, 100)) != 0 ||
        (rc = check_range(err, "rateLimit", "backend", (uint64_t)cfg->rate_limit.backend, 0,
                          FG_RL_REDIS)) != 0 ||
        (rc = check_range(err, "rateLimit.redis", "timeoutMs", cfg->rate_limit.redis_timeout_ms,
                          1, FG_RL_REDIS_TIMEOUT_MAX_MS)) != 0 ||
        (rc = check_range(err, "rateLimit.redis", "fallbackDivisor",
                          cfg->rate_limit.redis_fallback_divisor, 1,
                          FG_RL_FALLBACK_DIVISOR_MAX)) != 0 ||
        (rc = check_range(err, "rateLimit", "maxBuckets", cfg->rate_limit.max_buckets,
                          FG_RL_MIN_BUCKETS, FG_RL_MAX_BUCKETS)) != 0)
        return rc;
    const fg_logging_conf_t *lg = &cfg->logging;
    if (!(lg->success_rate >= 0 && lg->success_rate <= 1))
        return fg_error_set(err, "logging.sampling.successRate", "must be between 0 and 1");
    if (!(lg->error_rate >= 0 && lg->error_rate <= 1))
        return fg_error_set(err, "logging.sampling.errorRate", "must be between 0 and 1");
    if (lg->level && strcmp(lg->level, "debug") != 0 && strcmp(lg->level, "info") != 0 &&
        strcmp(lg->level, "warn") != 0 && strcmp(lg->level, "error") != 0)
        return fg_error_set(err, "logging.level",
                            "must be \"debug\", \"info\", \"warn\" or \"error\"");
    if (lg->format && strcmp(lg->format, FG_DEFAULT_LOG_FORMAT) != 0)
        return fg_error_set(err, "logging.format", "must be \"json\"");
    if (lg->request_id_header &&
        (rc = check_problem(err, "logging.requestIdHeader",
                            fg__request_id_header_problem(lg->request_id_header))) != 0)
        return rc;
    if ((rc = check_problem(err, "metrics.path", fg__http_path_problem(cfg->metrics.path))) != 0)
        return rc;
    if (cfg->security.auth.header &&
        (rc = check_problem(err, "security.auth.header",
                            fg__header_name_problem(cfg->security.auth.header))) != 0)
        return rc;
    const fg_auth_conf_t *au = &cfg->security.auth;
    if (au->identity_header &&
        (rc = check_problem(err, "security.auth.identityHeader",
                            fg__identity_header_problem(au->identity_header))) != 0)
        return rc;
    /* One name for both would forward the client's key as the identity, or drop the identity. */
    if (au->identity_header && au->header && strcasecmp(au->identity_header, au->header) == 0)
        return fg_error_set(err, "security.auth.identityHeader", "must differ from header");
    if (au->hmac_skew_ms < 1000 || au->hmac_skew_ms > FG_HMAC_SKEW_MAX_MS)
        return fg_error_set(err, "security.auth.hmacClockSkewMs",
                            "must be between 1000 and %u", FG_HMAC_SKEW_MAX_MS);
    if (cfg->security.auth.type && strcmp(cfg->security.auth.type, FG_DEFAULT_AUTH_TYPE) != 0)
        return fg_error_set(err, "security.auth.type", "must be \"apiKey\"");
    if (cfg->proxy.max_body_size == 0 || cfg->proxy.max_body_size > FG_MAX_BODY_SIZE_LIMIT)
        return fg_error_set(err, "proxy.maxBodySize", "must be between 1 byte and 1tb");
    return check_keys(&cfg->security.auth, err);
}

/* security.strict: the first allow-list finding (fg_config_security.c) is an error. */
static void first_finding(void *ctx, const char *field, const char *message)
{
    fg_error_t *err = ctx;
    if (!err->field[0] && !err->message[0])
        fg_error_set(err, field, "%s (security.strict is true)", message);
}

static int check_strict_security(const fg_config_t *cfg, fg_error_t *err)
{
    fg_error_clear(err);
    int n = fg_config_security_check(cfg, first_finding, err);
    if (n < 0)
        return oom(err);
    return n > 0 ? -EINVAL : 0;
}

int fg_config_validate(const fg_config_t *cfg, fg_error_t *err)
{
    name_set_t upstreams;
    int rc;

    fg_error_clear(err);
    if (!cfg)
        return fg_error_set(err, NULL, "no configuration");
    if ((rc = check_settings(cfg, err)) != 0)
        return rc;
    if (set_init(&upstreams, cfg->n_upstreams) != 0)
        return oom(err);
    rc = check_upstreams(cfg, &upstreams, err);
    if (rc == 0)
        rc = check_routes(cfg, &upstreams, err);
    set_free(&upstreams);
    if (rc == 0 && cfg->security.strict)
        rc = check_strict_security(cfg, err);
    return rc;
}
