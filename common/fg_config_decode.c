/* fg_config_decode.c - JSON tree -> config model (see fg_config.h, "decode").
 *
 * The decoder walks the cJSON tree once, keeping the JSON path of the value it is looking at
 * in a fixed buffer, so every error names its field ("routes[2].rateLimit.windowMs") without
 * allocating. It checks each value on its own: type, integral-ness and range of numbers,
 * string syntax, unknown and duplicate keys. It never looks across entities; that is the
 * validator's job. JSON null is read as "not given" everywhere, which is what a YAML `~`
 * turns into.
 *
 * Numbers: cJSON keeps every number as a double, so an integer field must first be finite
 * and integral and within the field's range before it is converted; every range here is far
 * below 2^53, where doubles still hold integers exactly.
 *
 * Arrays are walked with cJSON_ArrayForEach: cJSON_GetArrayItem is O(index), which would make
 * a 100,000-route config quadratic. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_config.h"
#include "fg_config_internal.h"
#include "fg_hash.h"

typedef struct dec {
    fg_arena_t *arena;
    fg_error_t *err;
    size_t len;                    /* strlen(path) */
    char path[FG_ERROR_FIELD_MAX]; /* JSON path of the value being decoded */
} dec_t;

typedef const char *(*problem_fn)(const char *value);

/* ---- path and error helpers ----------------------------------------------------------- */

static void dec_init(dec_t *d, fg_arena_t *arena, fg_error_t *err, const char *prefix)
{
    d->arena = arena;
    d->err = err;
    snprintf(d->path, sizeof(d->path), "%s", prefix ? prefix : "");
    d->len = strlen(d->path);
}

static void dec_append(dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dec_append(dec_t *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->path + d->len, sizeof(d->path) - d->len, fmt, ap);
    va_end(ap);
    d->len = strlen(d->path);
}

/* Enter member `key`; returns the mark to restore with dec_pop. */
static size_t dec_key(dec_t *d, const char *key)
{
    size_t mark = d->len;
    dec_append(d, d->len ? ".%s" : "%s", key);
    return mark;
}

static size_t dec_index(dec_t *d, size_t i)
{
    size_t mark = d->len;
    dec_append(d, "[%zu]", i);
    return mark;
}

static void dec_pop(dec_t *d, size_t mark)
{
    d->len = mark;
    d->path[mark] = '\0';
}

static int dec_fail(dec_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dec_fail(dec_t *d, const char *fmt, ...)
{
    char msg[FG_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fg_error_set(d->err, d->path, "%s", msg);
}

static int dec_fail_key(dec_t *d, const char *key, const char *msg)
{
    size_t mark = dec_key(d, key);
    int rc = dec_fail(d, "%s", msg);
    dec_pop(d, mark);
    return rc;
}

static int dec_oom(dec_t *d)
{
    return fg_error_setc(d->err, -ENOMEM, d->path, "out of memory");
}

/* ---- generic values ------------------------------------------------------------------- */

/* The member `key`, or NULL when it is absent or JSON null. */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static bool key_allowed(const char *key, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcmp(key, *allowed) == 0)
            return true;
    return false;
}

/* `item` (at the current path) must be an object whose keys are all in `allowed`, each
 * given once. A duplicate would let two readers of the same text disagree. */
static int dec_object(dec_t *d, const cJSON *item, const char *const *allowed)
{
    if (!cJSON_IsObject(item))
        return dec_fail(d, "must be an object");
    for (const cJSON *c = item->child; c; c = c->next) {
        const char *key = c->string ? c->string : "";
        if (allowed && !key_allowed(key, allowed))
            return dec_fail_key(d, key, "unknown key");
        for (const cJSON *prev = item->child; prev != c; prev = prev->next)
            if (prev->string && strcmp(prev->string, key) == 0)
                return dec_fail_key(d, key, "duplicate key");
    }
    return 0;
}

/* Integer at the current path within [lo, hi]. */
static int dec_integer(dec_t *d, const cJSON *item, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(item))
        return dec_fail(d, "must be an integer between %.0f and %.0f", lo, hi);
    double v = item->valuedouble;
    if (!fg__double_is_integer(v))
        return dec_fail(d, "must be an integer between %.0f and %.0f", lo, hi);
    if (v < lo || v > hi)
        return dec_fail(d, "must be between %.0f and %.0f", lo, hi);
    *out = v == 0 ? 0 : v; /* folds -0 into 0 */
    return 0;
}

static int get_u32(dec_t *d, const cJSON *obj, const char *key, uint32_t lo, uint32_t hi,
                   uint32_t def, bool required, uint32_t *out)
{
    const cJSON *it = member(obj, key);
    double v = 0; /* set by dec_integer on success; gcc -O2 cannot see that */
    if (!it) {
        if (required)
            return dec_fail_key(d, key, "required");
        *out = def;
        return 0;
    }
    size_t mark = dec_key(d, key);
    int rc = dec_integer(d, it, lo, hi, &v);
    dec_pop(d, mark);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

static int get_bool(dec_t *d, const cJSON *obj, const char *key, bool def, bool *out)
{
    const cJSON *it = member(obj, key);
    if (!it) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it))
        return dec_fail_key(d, key, "must be true or false");
    *out = cJSON_IsTrue(it);
    return 0;
}

/* String at the current path: valid UTF-8, 1..max_len bytes, then `problem` (may be NULL). */
static int dec_string(dec_t *d, const cJSON *item, size_t max_len, problem_fn problem,
                      const char **out)
{
    if (!cJSON_IsString(item) || !item->valuestring)
        return dec_fail(d, "must be a string");
    const char *s = item->valuestring;
    size_t n = strlen(s);
    if (n == 0)
        return dec_fail(d, "must not be empty");
    if (n > max_len)
        return dec_fail(d, "must be at most %zu bytes", max_len);
    if (!fg__utf8_valid(s, n))
        return dec_fail(d, "must be valid UTF-8");
    if (problem) {
        const char *why = problem(s);
        if (why)
            return dec_fail(d, "%s", why);
    }
    *out = fg_arena_strndup(d->arena, s, n);
    return *out ? 0 : dec_oom(d);
}

static int get_string(dec_t *d, const cJSON *obj, const char *key, bool required,
                      size_t max_len, problem_fn problem, const char **out)
{
    const cJSON *it = member(obj, key);
    if (!it) {
        if (required)
            return dec_fail_key(d, key, "required");
        return 0; /* *out keeps its default */
    }
    size_t mark = dec_key(d, key);
    int rc = dec_string(d, it, max_len, problem, out);
    dec_pop(d, mark);
    return rc;
}

static const char *name_problem(const char *name)
{
    return fg_name_valid(name) ? NULL
                               : "must be 1 to 64 characters of letters, digits, '.', '_' or '-'";
}

static const char *plain_text_problem(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* `item` at the current path must be an array of at most `max_items`; returns its length. */
static int dec_array(dec_t *d, const cJSON *item, size_t max_items, size_t *n)
{
    if (!cJSON_IsArray(item))
        return dec_fail(d, "must be an array");
    size_t count = 0;
    for (const cJSON *c = item->child; c; c = c->next)
        if (++count > max_items)
            return dec_fail(d, "must have at most %zu items", max_items);
    *n = count;
    return 0;
}

static int get_string_list(dec_t *d, const cJSON *obj, const char *key, size_t max_items,
                           size_t max_len, problem_fn problem, const char ***out, size_t *n_out)
{
    const cJSON *it = member(obj, key);
    size_t n = 0, i = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (!it)
        return 0;
    size_t mark = dec_key(d, key);
    if ((rc = dec_array(d, it, max_items, &n)) != 0)
        goto out;
    const char **list = fg_arena_calloc(d->arena, n, sizeof(*list));
    if (!list) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        size_t imark = dec_index(d, i);
        rc = dec_string(d, c, max_len, problem, &list[i]);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    *out = list;
    *n_out = n;
out:
    dec_pop(d, mark);
    return rc;
}

/* ---- rate limits ---------------------------------------------------------------------- */

static const char *const rate_limit_keys[] = {"enabled", "max", "windowMs", "burst", "message",
                                              NULL};
static const char *const per_route_keys[] = {"path",  "enabled", "max", "windowMs",
                                             "burst", "message", NULL};

/* Fields of a rate-limit object already checked for keys. max and windowMs are required
 * only while the limit is enabled: a disabled one may be written as {"enabled":false}. */
static int dec_rate_limit_fields(dec_t *d, const cJSON *obj, fg_rate_limit_t *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    out->set = true;
    if ((rc = get_bool(d, obj, "enabled", true, &out->enabled)) != 0)
        return rc;
    uint32_t lo = out->enabled ? 1 : 0;
    if ((rc = get_u32(d, obj, "max", lo, UINT32_MAX, 0, out->enabled, &out->max)) != 0 ||
        (rc = get_u32(d, obj, "windowMs", lo, FG_RL_WINDOW_MAX_MS, 0, out->enabled,
                      &out->window_ms)) != 0 ||
        (rc = get_u32(d, obj, "burst", 0, UINT32_MAX, 0, false, &out->burst)) != 0 ||
        (rc = get_string(d, obj, "message", false, FG_MESSAGE_MAX_LEN, NULL, &out->message)) != 0)
        return rc;
    return 0;
}

static int get_rate_limit(dec_t *d, const cJSON *obj, const char *key, fg_rate_limit_t *out)
{
    const cJSON *it = member(obj, key);
    int rc;
    memset(out, 0, sizeof(*out));
    if (!it)
        return 0;
    size_t mark = dec_key(d, key);
    rc = dec_object(d, it, rate_limit_keys);
    if (rc == 0)
        rc = dec_rate_limit_fields(d, it, out);
    dec_pop(d, mark);
    return rc;
}

/* ---- upstreams ------------------------------------------------------------------------ */

static const char *const upstream_keys[] = {
    "name",     "url",      "targets",  "loadBalancing", "hashOn",         "timeout",
    "retries",  "fallback", "caFile",   "tlsVerify",     "circuitBreaker", "healthCheck",
    "clientCert", "clientKey", "keepalive", NULL};
static const char *const keepalive_keys[] = {"maxIdle", "idleTimeout", NULL};
static const char *const target_keys[] = {"url", "weight", NULL};
static const char *const breaker_keys[] = {"enabled",          "failureThreshold",
                                           "successThreshold", "openDuration",
                                           "timeout",          "halfOpenRequests",
                                           "minRequests",      "windowMs",
                                           NULL};
static const char *const health_keys[] = {"enabled",  "path",
                                          "interval", "timeout",
                                          "unhealthyThreshold", "healthyThreshold",
                                          "consecutiveFailures", "ejectDuration",
                                          NULL};

static int dec_url(dec_t *d, const cJSON *obj, const char *key, const char **url,
                   fg_url_t *parsed)
{
    int rc = get_string(d, obj, key, true, FG_URL_MAX_LEN, NULL, url);
    if (rc != 0)
        return rc;
    size_t mark = dec_key(d, key);
    rc = fg_url_parse(*url, d->arena, parsed, d->path, d->err);
    dec_pop(d, mark);
    return rc;
}

static int dec_targets(dec_t *d, const cJSON *arr, fg_upstream_t *u)
{
    size_t n = 0, i = 0;
    int rc;
    size_t mark = dec_key(d, "targets");

    if ((rc = dec_array(d, arr, FG_MAX_TARGETS, &n)) != 0)
        goto out;
    if (n == 0) {
        rc = dec_fail(d, "must have at least one target");
        goto out;
    }
    u->targets = fg_arena_calloc(d->arena, n, sizeof(*u->targets));
    if (!u->targets) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        fg_target_t *t = &u->targets[i];
        size_t imark = dec_index(d, i);
        rc = dec_object(d, c, target_keys);
        if (rc == 0)
            rc = dec_url(d, c, "url", &t->url, &t->parsed);
        if (rc == 0)
            rc = get_u32(d, c, "weight", 1, FG_WEIGHT_MAX, 1, false, &t->weight);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    u->n_targets = n;
    u->targets_explicit = true;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_lb_policy(dec_t *d, const cJSON *obj, fg_lb_policy_t *out)
{
    static const fg_lb_policy_t all[] = {FG_LB_ROUND_ROBIN, FG_LB_LEAST_CONN, FG_LB_RANDOM_TWO,
                                         FG_LB_CONSISTENT_HASH};
    const cJSON *it = member(obj, "loadBalancing");
    if (!it)
        return 0;
    if (cJSON_IsString(it)) {
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
            if (strcmp(it->valuestring, fg_lb_policy_name(all[i])) == 0) {
                *out = all[i];
                return 0;
            }
        }
    }
    return dec_fail_key(d, "loadBalancing",
                        "must be \"round-robin\", \"least-conn\", \"random-two-choices\" or "
                        "\"consistent-hash\"");
}

static int dec_breaker(dec_t *d, const cJSON *obj, fg_breaker_conf_t *b)
{
    const cJSON *it = member(obj, "circuitBreaker");
    int rc;
    if (!it)
        return 0; /* absent: disabled, with the default tuning kept for encode */
    size_t mark = dec_key(d, "circuitBreaker");
    if ((rc = dec_object(d, it, breaker_keys)) != 0)
        goto out;
    if (member(it, "openDuration") && member(it, "timeout")) {
        rc = dec_fail_key(d, "timeout", "give either openDuration or timeout, not both");
        goto out;
    }
    const char *open_key = member(it, "timeout") ? "timeout" : "openDuration";
    if ((rc = get_bool(d, it, "enabled", true, &b->enabled)) != 0 ||
        (rc = get_u32(d, it, "failureThreshold", 1, 100, b->failure_threshold, false,
                      &b->failure_threshold)) != 0 ||
        (rc = get_u32(d, it, "successThreshold", 1, FG_BREAKER_COUNT_MAX, b->success_threshold,
                      false, &b->success_threshold)) != 0 ||
        (rc = get_u32(d, it, open_key, 1, FG_TIMEOUT_MAX_MS, b->open_duration_ms, false,
                      &b->open_duration_ms)) != 0 ||
        (rc = get_u32(d, it, "halfOpenRequests", 1, FG_BREAKER_COUNT_MAX, b->half_open_requests,
                      false, &b->half_open_requests)) != 0 ||
        (rc = get_u32(d, it, "minRequests", 1, FG_BREAKER_COUNT_MAX, b->min_requests, false,
                      &b->min_requests)) != 0 ||
        (rc = get_u32(d, it, "windowMs", 1, FG_TIMEOUT_MAX_MS, b->window_ms, false,
                      &b->window_ms)) != 0)
        goto out;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_health_check(dec_t *d, const cJSON *obj, fg_health_check_t *h)
{
    const cJSON *it = member(obj, "healthCheck");
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "healthCheck");
    if ((rc = dec_object(d, it, health_keys)) != 0 ||
        (rc = get_bool(d, it, "enabled", true, &h->enabled)) != 0 ||
        (rc = get_string(d, it, "path", false, FG_PATH_MAX_LEN, fg__http_path_problem, &h->path)) !=
            0 ||
        (rc = get_u32(d, it, "interval", 1, FG_TIMEOUT_MAX_MS, h->interval_ms, false,
                      &h->interval_ms)) != 0 ||
        (rc = get_u32(d, it, "timeout", 1, FG_TIMEOUT_MAX_MS, h->timeout_ms, false,
                      &h->timeout_ms)) != 0 ||
        (rc = get_u32(d, it, "unhealthyThreshold", 1, FG_HC_THRESHOLD_MAX,
                      h->unhealthy_threshold, false, &h->unhealthy_threshold)) != 0 ||
        (rc = get_u32(d, it, "healthyThreshold", 1, FG_HC_THRESHOLD_MAX, h->healthy_threshold,
                      false, &h->healthy_threshold)) != 0 ||
        (rc = get_u32(d, it, "consecutiveFailures", 0, FG_EJECT_FAILURES_MAX,
                      h->consecutive_failures, false, &h->consecutive_failures)) != 0 ||
        (rc = get_u32(d, it, "ejectDuration", 1, FG_TIMEOUT_MAX_MS, h->eject_ms, false,
                      &h->eject_ms)) != 0)
        goto out;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_keepalive(dec_t *d, const cJSON *obj, fg_keepalive_conf_t *k)
{
    const cJSON *it = member(obj, "keepalive");
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "keepalive");
    if ((rc = dec_object(d, it, keepalive_keys)) != 0 ||
        (rc = get_u32(d, it, "maxIdle", 0, FG_KEEPALIVE_MAX_IDLE_MAX, k->max_idle, false,
                      &k->max_idle)) != 0 ||
        (rc = get_u32(d, it, "idleTimeout", 1, FG_TIMEOUT_MAX_MS, k->idle_timeout_ms, false,
                      &k->idle_timeout_ms)) != 0)
        goto out;
out:
    dec_pop(d, mark);
    return rc;
}

/* A client certificate is useless without its key and the reverse: refuse half a pair. */
static int dec_client_cert(dec_t *d, const cJSON *obj, fg_upstream_t *u)
{
    int rc;
    if ((rc = get_string(d, obj, "clientCert", false, FG_FILE_PATH_MAX_LEN, plain_text_problem,
                         &u->client_cert)) != 0 ||
        (rc = get_string(d, obj, "clientKey", false, FG_FILE_PATH_MAX_LEN, plain_text_problem,
                         &u->client_key)) != 0)
        return rc;
    if (u->client_cert && !u->client_key)
        return dec_fail_key(d, "clientKey", "required with clientCert");
    if (u->client_key && !u->client_cert)
        return dec_fail_key(d, "clientCert", "required with clientKey");
    return 0;
}

static int dec_upstream(dec_t *d, const cJSON *obj, fg_upstream_t *u)
{
    int rc;
    fg__upstream_defaults(u);
    if ((rc = dec_object(d, obj, upstream_keys)) != 0 ||
        (rc = get_string(d, obj, "name", true, FG_NAME_MAX_LEN, name_problem, &u->name)) != 0)
        return rc;

    const cJSON *url = member(obj, "url");
    const cJSON *targets = member(obj, "targets");
    if (url && targets)
        return dec_fail_key(d, "targets", "give either url or targets, not both");
    if (!url && !targets)
        return dec_fail_key(d, "url", "required (or targets)");
    if (url) {
        u->targets = fg_arena_calloc(d->arena, 1, sizeof(*u->targets));
        if (!u->targets)
            return dec_oom(d);
        if ((rc = dec_url(d, obj, "url", &u->url, &u->targets[0].parsed)) != 0)
            return rc;
        u->targets[0].url = u->url;
        u->targets[0].weight = 1;
        u->n_targets = 1;
        u->targets_explicit = false;
    } else if ((rc = dec_targets(d, targets, u)) != 0) {
        return rc;
    }

    if ((rc = dec_lb_policy(d, obj, &u->load_balancing)) != 0 ||
        (rc = get_string(d, obj, "hashOn", false, FG_HEADER_NAME_MAX_LEN + 7,
                         fg__hash_on_problem, &u->hash_on)) != 0 ||
        (rc = get_u32(d, obj, "timeout", 1, FG_TIMEOUT_MAX_MS, FG_DEFAULT_UPSTREAM_TIMEOUT_MS,
                      false, &u->timeout_ms)) != 0 ||
        (rc = get_u32(d, obj, "retries", 0, FG_RETRIES_MAX, 0, false, &u->retries)) != 0 ||
        (rc = get_string(d, obj, "fallback", false, FG_NAME_MAX_LEN, name_problem,
                         &u->fallback)) != 0 ||
        (rc = get_string(d, obj, "caFile", false, FG_FILE_PATH_MAX_LEN, plain_text_problem,
                         &u->ca_file)) != 0 ||
        (rc = get_bool(d, obj, "tlsVerify", true, &u->tls_verify)) != 0 ||
        (rc = dec_client_cert(d, obj, u)) != 0 || (rc = dec_keepalive(d, obj, &u->keepalive)) != 0 ||
        (rc = dec_breaker(d, obj, &u->circuit_breaker)) != 0 ||
        (rc = dec_health_check(d, obj, &u->health_check)) != 0)
        return rc;
    return 0;
}

/* ---- routes --------------------------------------------------------------------------- */

static const char *const route_keys[] = {
    "id",       "path",        "upstream",  "methods",  "hosts",          "auth",
    "timeout",  "rateLimit",   "stripPrefix", "stripPath", "priority", "websocket", "requestHeaders",
    "responseHeaders", "allowEncodedSlashes", NULL};
static const char *const header_ops_keys[] = {"add", "remove", NULL};

static int dec_methods(dec_t *d, const cJSON *obj, unsigned *out)
{
    const cJSON *it = member(obj, "methods");
    size_t n, i = 0;
    int rc;
    *out = 0;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "methods");
    if ((rc = dec_array(d, it, FG_MAX_LIST, &n)) != 0)
        goto out;
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        char upper[16];
        size_t imark = dec_index(d, i++);
        unsigned bit = 0;
        if (cJSON_IsString(c) && strlen(c->valuestring) < sizeof(upper)) {
            size_t k = 0;
            for (; c->valuestring[k]; k++)
                upper[k] = (char)toupper((unsigned char)c->valuestring[k]);
            upper[k] = '\0';
            bit = fg_method_bit(upper, k);
        }
        if (!bit)
            rc = dec_fail(d, "must be an HTTP method name (GET, HEAD, POST, PUT, DELETE, PATCH, "
                             "OPTIONS, CONNECT, TRACE)");
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        *out |= bit;
    }
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_auth_mode(dec_t *d, const cJSON *obj, fg_auth_mode_t *out)
{
    const cJSON *it = member(obj, "auth");
    *out = FG_AUTH_NONE;
    if (!it)
        return 0;
    if (cJSON_IsBool(it)) {
        *out = cJSON_IsTrue(it) ? FG_AUTH_REQUIRED : FG_AUTH_NONE;
        return 0;
    }
    if (cJSON_IsString(it)) {
        static const fg_auth_mode_t all[] = {FG_AUTH_NONE, FG_AUTH_OPTIONAL, FG_AUTH_REQUIRED};
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(it->valuestring, fg_auth_mode_name(all[i])) == 0) {
                *out = all[i];
                return 0;
            }
        }
    }
    return dec_fail_key(d, "auth", "must be \"required\", \"optional\", \"none\", true or false");
}

static int dec_header_add(dec_t *d, const cJSON *it, fg_header_ops_t *ops)
{
    size_t n = 0, i = 0;
    int rc;
    if ((rc = dec_object(d, it, NULL)) != 0)
        return rc;
    for (const cJSON *c = it->child; c; c = c->next)
        if (++n > FG_MAX_LIST)
            return dec_fail(d, "must have at most %d headers", FG_MAX_LIST);
    ops->add = fg_arena_calloc(d->arena, n, sizeof(*ops->add));
    if (!ops->add)
        return dec_oom(d);
    for (const cJSON *c = it->child; c; c = c->next, i++) {
        const char *why = fg__header_name_problem(c->string);
        if (why)
            return dec_fail_key(d, c->string ? c->string : "", why);
        /* Header names are case-insensitive: "X-A" and "x-a" would fight. */
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(ops->add[k].name, c->string) == 0)
                return dec_fail_key(d, c->string, "duplicate header name");
        size_t mark = dec_key(d, c->string);
        if (!cJSON_IsString(c) || !c->valuestring) {
            rc = dec_fail(d, "must be a string");
        } else if ((why = fg__header_value_problem(c->valuestring)) != NULL) {
            rc = dec_fail(d, "%s", why);
        } else if (!fg__utf8_valid(c->valuestring, strlen(c->valuestring))) {
            rc = dec_fail(d, "must be valid UTF-8");
        } else {
            ops->add[i].name = fg_arena_strdup(d->arena, c->string);
            ops->add[i].value = fg_arena_strdup(d->arena, c->valuestring);
            if (!ops->add[i].name || !ops->add[i].value)
                rc = dec_oom(d);
        }
        dec_pop(d, mark);
        if (rc != 0)
            return rc;
    }
    ops->n_add = n;
    return 0;
}

static int dec_header_ops(dec_t *d, const cJSON *obj, const char *key, fg_header_ops_t *ops)
{
    const cJSON *it = member(obj, key);
    int rc;
    memset(ops, 0, sizeof(*ops));
    if (!it)
        return 0;
    size_t mark = dec_key(d, key);
    if ((rc = dec_object(d, it, header_ops_keys)) != 0)
        goto out;
    const cJSON *add = member(it, "add");
    if (add) {
        size_t amark = dec_key(d, "add");
        rc = dec_header_add(d, add, ops);
        dec_pop(d, amark);
        if (rc != 0)
            goto out;
    }
    rc = get_string_list(d, it, "remove", FG_MAX_LIST, FG_HEADER_NAME_MAX_LEN,
                         fg__header_name_problem, &ops->remove, &ops->n_remove);
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_route(dec_t *d, const cJSON *obj, fg_route_t *r)
{
    int rc;
    double prio = 0; /* set by dec_integer on success */
    fg__route_defaults(r);
    if ((rc = dec_object(d, obj, route_keys)) != 0 ||
        (rc = get_string(d, obj, "id", false, FG_NAME_MAX_LEN, name_problem, &r->id)) != 0 ||
        (rc = get_string(d, obj, "path", true, FG_PATH_MAX_LEN, fg__route_path_problem,
                         &r->path)) != 0 ||
        (rc = get_string(d, obj, "upstream", true, FG_NAME_MAX_LEN, name_problem,
                         &r->upstream)) != 0 ||
        (rc = dec_methods(d, obj, &r->methods)) != 0 ||
        (rc = get_string_list(d, obj, "hosts", FG_MAX_LIST, FG_HOST_MAX_LEN + 2,
                              fg__host_pattern_problem, &r->hosts, &r->n_hosts)) != 0 ||
        (rc = dec_auth_mode(d, obj, &r->auth)) != 0 ||
        (rc = get_u32(d, obj, "timeout", 0, FG_TIMEOUT_MAX_MS, 0, false, &r->timeout_ms)) != 0 ||
        (rc = get_bool(d, obj, "websocket", false, &r->websocket)) != 0 ||
        (rc = get_bool(d, obj, "allowEncodedSlashes", false, &r->allow_encoded_slashes)) != 0 ||
        (rc = get_rate_limit(d, obj, "rateLimit", &r->rate_limit)) != 0)
        return rc;
    r->prefix = strlen(r->path) >= 2 && strcmp(r->path + strlen(r->path) - 2, "/*") == 0;

    if (member(obj, "stripPrefix") && member(obj, "stripPath"))
        return dec_fail_key(d, "stripPath", "give either stripPrefix or stripPath, not both");
    if ((rc = get_bool(d, obj, member(obj, "stripPath") ? "stripPath" : "stripPrefix", false,
                       &r->strip_prefix)) != 0)
        return rc;

    const cJSON *p = member(obj, "priority");
    if (p) {
        size_t mark = dec_key(d, "priority");
        rc = dec_integer(d, p, FG_PRIORITY_MIN, FG_PRIORITY_MAX, &prio);
        dec_pop(d, mark);
        if (rc != 0)
            return rc;
        r->priority = (int32_t)prio;
    }
    if ((rc = dec_header_ops(d, obj, "requestHeaders", &r->request_headers)) != 0 ||
        (rc = dec_header_ops(d, obj, "responseHeaders", &r->response_headers)) != 0)
        return rc;
    return 0;
}

/* ---- API keys ------------------------------------------------------------------------- */

static const char *const api_key_keys[] = {"name",      "key",  "routes", "disabled",
                                           "expiresAt", "hmac", NULL};

/* `key` is what the seed's YAML writes: documented as the key's SHA-256, but examples put
 * placeholders there ("client-a-key-sha256-hash"). 64 lowercase hex characters are taken as
 * the digest; anything else is taken as the plaintext key and hashed here, so the plaintext
 * never reaches the store or a snapshot and the seed's files import unchanged. */
static int dec_key_digest(dec_t *d, const cJSON *obj, const char **out)
{
    const char *text = NULL;
    int rc = get_string(d, obj, "key", true, FG_KEY_PLAINTEXT_MAX_LEN, plain_text_problem, &text);
    if (rc != 0)
        return rc;
    if (fg__sha256_hex_valid(text)) {
        *out = text;
        return 0;
    }
    char *digest = fg_arena_alloc(d->arena, FG_SHA256_HEX_LEN + 1);
    if (!digest)
        return -ENOMEM;
    fg_sha256_hex(text, strlen(text), digest);
    *out = digest;
    return 0;
}

/* Key names are labels people read ("Client A"), not identifiers used in paths or metrics. */
static const char *key_name_problem(const char *s)
{
    return fg__key_name_valid(s) ? NULL : KEY_NAME_RULE;
}

static int dec_expires_at(dec_t *d, const cJSON *obj, uint64_t *out)
{
    const cJSON *it = member(obj, "expiresAt");
    double v = 0; /* as above */
    int rc = 0;
    *out = 0;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "expiresAt");
    if (cJSON_IsString(it)) {
        uint64_t ms = 0;
        if (fg__rfc3339_parse(it->valuestring, &ms) != 0 || ms > FG_EXPIRES_MAX_MS || ms == 0)
            rc = dec_fail(d, "must be an RFC 3339 timestamp or epoch milliseconds");
        else
            *out = ms;
    } else if ((rc = dec_integer(d, it, 0, (double)FG_EXPIRES_MAX_MS, &v)) == 0) {
        *out = (uint64_t)v;
    }
    dec_pop(d, mark);
    return rc;
}

static int dec_api_key(dec_t *d, const cJSON *obj, fg_api_key_t *k)
{
    int rc;
    memset(k, 0, sizeof(*k));
    if ((rc = dec_object(d, obj, api_key_keys)) != 0 ||
        (rc = get_string(d, obj, "name", true, FG_NAME_MAX_LEN, key_name_problem,
                         &k->name)) != 0 ||
        (rc = dec_key_digest(d, obj, &k->key_sha256)) != 0 ||
        (rc = get_string_list(d, obj, "routes", FG_MAX_LIST, FG_NAME_MAX_LEN, name_problem,
                              &k->routes, &k->n_routes)) != 0 ||
        (rc = get_bool(d, obj, "disabled", false, &k->disabled)) != 0 ||
        (rc = dec_expires_at(d, obj, &k->expires_at_ms)) != 0 ||
        (rc = get_bool(d, obj, "hmac", false, &k->hmac)) != 0)
        return rc;
    return 0;
}

/* ---- settings ------------------------------------------------------------------------- */

static const char *const config_keys[] = {"version", "proxy",   "security", "rateLimit",
                                          "logging", "metrics", "upstreams", "routes",
                                          NULL};
static const char *const proxy_keys[] = {"port",          "timeout",    "maxBodySize",
                                         "maxHeaderSize", "maxHeaders", "maxConnections",
                                         "maxPending",    "retryBudget",
                                         NULL};
static const char *const proxy_timeout_keys[] = {"request", "connect", "idle", "header", NULL};
static const char *const security_keys[] = {"allowedHosts", "blockedIPs", "trustedProxies",
                                            "strict", "auth", NULL};
static const char *const auth_keys[] = {"type",           "header", "keys", "bearer",
                                        "identityHeader", "hmacClockSkewMs", NULL};
static const char *const rate_limit_conf_keys[] = {"enabled", "backend", "redis", "global",
                                                   "perRoute", "maxBuckets", NULL};
static const char *const redis_keys[] = {"url", "timeoutMs", "fallbackDivisor", NULL};
static const char *const logging_keys[] = {"level", "format", "sampling", "requestIdHeader",
                                           NULL};
static const char *const sampling_keys[] = {"successRate", "errorRate", NULL};
static const char *const metrics_keys[] = {"enabled", "port", "path", NULL};

/* "10mb", "512KB", "1.5 gb", "100b", "4096": binary multiples, fractions floored, as the
 * seed's Node.js `bytes` parser reads them. */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1}, {"b", 1}, {"kb", 1024.0}, {"mb", 1048576.0}, {"gb", 1073741824.0},
                 {"tb", 1099511627776.0}};
    const char *p = s;
    size_t digits = 0;

    while (*p == ' ')
        p++;
    const char *num = p;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (digits == 0 || digits > 15)
        return -EINVAL;
    if (*p == '.') {
        p++;
        size_t frac = 0;
        while (isdigit((unsigned char)*p))
            p++, frac++;
        if (frac == 0 || frac > 6)
            return -EINVAL;
    }
    char numbuf[32];
    size_t nlen = (size_t)(p - num);
    memcpy(numbuf, num, nlen);
    numbuf[nlen] = '\0';
    while (*p == ' ')
        p++;
    const char *unit = p;
    size_t ulen = strlen(unit);
    while (ulen > 0 && unit[ulen - 1] == ' ')
        ulen--;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strlen(units[i].unit) == ulen && strncasecmp(unit, units[i].unit, ulen) == 0) {
            double v = strtod(numbuf, NULL) * units[i].mult;
            if (v < 1 || v > (double)FG_MAX_BODY_SIZE_LIMIT)
                return -ERANGE;
            *out = (uint64_t)v; /* truncation: the fraction of a byte is dropped */
            return 0;
        }
    }
    return -EINVAL;
}

static int dec_max_body_size(dec_t *d, const cJSON *obj, uint64_t *out)
{
    const cJSON *it = member(obj, "maxBodySize");
    double v = 0; /* as above */
    int rc = 0;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "maxBodySize");
    if (cJSON_IsString(it)) {
        int prc = parse_size(it->valuestring, out);
        if (prc == -ERANGE)
            rc = dec_fail(d, "must be between 1 byte and 1tb");
        else if (prc != 0)
            rc = dec_fail(d, "must be a byte count or a size such as \"10mb\", \"512kb\", \"1gb\"");
    } else if ((rc = dec_integer(d, it, 1, (double)FG_MAX_BODY_SIZE_LIMIT, &v)) == 0) {
        *out = (uint64_t)v;
    }
    dec_pop(d, mark);
    return rc;
}

static int dec_proxy(dec_t *d, const cJSON *obj, fg_proxy_conf_t *p)
{
    const cJSON *it = member(obj, "proxy");
    uint32_t port = p->port;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "proxy");
    if ((rc = dec_object(d, it, proxy_keys)) != 0 ||
        (rc = get_u32(d, it, "port", 1, 65535, port, false, &port)) != 0)
        goto out;
    p->port = (uint16_t)port;
    const cJSON *t = member(it, "timeout");
    if (t && cJSON_IsObject(t)) {
        size_t tmark = dec_key(d, "timeout");
        if ((rc = dec_object(d, t, proxy_timeout_keys)) == 0 &&
            (rc = get_u32(d, t, "request", 1, FG_TIMEOUT_MAX_MS, p->request_timeout_ms, false,
                          &p->request_timeout_ms)) == 0 &&
            (rc = get_u32(d, t, "connect", 1, FG_TIMEOUT_MAX_MS, p->connect_timeout_ms, false,
                          &p->connect_timeout_ms)) == 0 &&
            (rc = get_u32(d, t, "idle", 1, FG_TIMEOUT_MAX_MS, p->idle_timeout_ms, false,
                          &p->idle_timeout_ms)) == 0)
            rc = get_u32(d, t, "header", 1, FG_TIMEOUT_MAX_MS, p->header_timeout_ms, false,
                         &p->header_timeout_ms);
        dec_pop(d, tmark);
        if (rc != 0)
            goto out;
    } else if ((rc = get_u32(d, it, "timeout", 1, FG_TIMEOUT_MAX_MS, p->request_timeout_ms,
                             false, &p->request_timeout_ms)) != 0) {
        goto out;
    }
    if ((rc = get_u32(d, it, "maxHeaderSize", 1024, FG_MAX_HEADER_SIZE_LIMIT,
                      p->max_header_size, false, &p->max_header_size)) != 0 ||
        (rc = get_u32(d, it, "maxHeaders", 1, FG_MAX_HEADERS_LIMIT, p->max_headers, false,
                      &p->max_headers)) != 0 ||
        (rc = get_u32(d, it, "maxConnections", 1, FG_MAX_CONNECTIONS_LIMIT,
                      p->max_connections, false, &p->max_connections)) != 0 ||
        (rc = get_u32(d, it, "maxPending", 0, FG_MAX_PENDING_LIMIT, p->max_pending, false,
                      &p->max_pending)) != 0 ||
        (rc = get_u32(d, it, "retryBudget", 0, 100, p->retry_budget, false,
                      &p->retry_budget)) != 0)
        goto out;
    rc = dec_max_body_size(d, it, &p->max_body_size);
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_keys(dec_t *d, const cJSON *auth, fg_auth_conf_t *a)
{
    const cJSON *it = member(auth, "keys");
    size_t n = 0, i = 0;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "keys");
    if ((rc = dec_array(d, it, FG_MAX_KEYS, &n)) != 0)
        goto out;
    a->keys = fg_arena_calloc(d->arena, n, sizeof(*a->keys));
    if (!a->keys) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        size_t imark = dec_index(d, i);
        rc = dec_api_key(d, c, &a->keys[i]);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    a->n_keys = n;
out:
    dec_pop(d, mark);
    return rc;
}

static const char *auth_type_problem(const char *type)
{
    return strcmp(type, FG_DEFAULT_AUTH_TYPE) == 0 ? NULL : "must be \"apiKey\"";
}

static int dec_security(dec_t *d, const cJSON *obj, fg_security_conf_t *s)
{
    const cJSON *it = member(obj, "security");
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "security");
    if ((rc = dec_object(d, it, security_keys)) != 0 ||
        (rc = get_string_list(d, it, "allowedHosts", FG_MAX_LIST, FG_HOST_MAX_LEN + 2,
                              fg__host_pattern_problem, &s->allowed_hosts,
                              &s->n_allowed_hosts)) != 0 ||
        (rc = get_string_list(d, it, "blockedIPs", FG_MAX_LIST, 64, fg__ip_or_cidr_problem,
                              &s->blocked_ips, &s->n_blocked_ips)) != 0 ||
        (rc = get_string_list(d, it, "trustedProxies", FG_MAX_LIST, 64, fg__ip_or_cidr_problem,
                              &s->trusted_proxies, &s->n_trusted_proxies)) != 0 ||
        (rc = get_bool(d, it, "strict", false, &s->strict)) != 0)
        goto out;
    const cJSON *auth = member(it, "auth");
    if (auth) {
        size_t amark = dec_key(d, "auth");
        if ((rc = dec_object(d, auth, auth_keys)) == 0 &&
            (rc = get_string(d, auth, "type", false, 32, auth_type_problem, &s->auth.type)) ==
                0 &&
            (rc = get_string(d, auth, "header", false, FG_HEADER_NAME_MAX_LEN,
                             fg__header_name_problem, &s->auth.header)) == 0 &&
            (rc = get_bool(d, auth, "bearer", false, &s->auth.bearer)) == 0 &&
            (rc = get_string(d, auth, "identityHeader", false, FG_HEADER_NAME_MAX_LEN,
                             fg__identity_header_problem, &s->auth.identity_header)) == 0 &&
            (rc = get_u32(d, auth, "hmacClockSkewMs", 1000, FG_HMAC_SKEW_MAX_MS,
                          FG_DEFAULT_HMAC_SKEW_MS, false, &s->auth.hmac_skew_ms)) == 0)
            rc = dec_keys(d, auth, &s->auth);
        dec_pop(d, amark);
    }
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_per_route(dec_t *d, const cJSON *rl, fg_rate_limit_conf_t *c)
{
    const cJSON *it = member(rl, "perRoute");
    size_t n = 0, i = 0;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "perRoute");
    if ((rc = dec_array(d, it, FG_MAX_ROUTES, &n)) != 0)
        goto out;
    c->per_route = fg_arena_calloc(d->arena, n, sizeof(*c->per_route));
    if (!c->per_route) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, it)
    {
        fg_per_route_limit_t *pr = &c->per_route[i];
        size_t imark = dec_index(d, i);
        if ((rc = dec_object(d, e, per_route_keys)) == 0 &&
            (rc = get_string(d, e, "path", true, FG_PATH_MAX_LEN, fg__route_path_problem,
                             &pr->path)) == 0)
            rc = dec_rate_limit_fields(d, e, &pr->limit);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    c->n_per_route = n;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_rl_backend(dec_t *d, const cJSON *rl, fg_rl_backend_t *out)
{
    const cJSON *it = member(rl, "backend");
    if (!it)
        return 0;
    if (cJSON_IsString(it)) {
        if (strcmp(it->valuestring, "local") == 0 || strcmp(it->valuestring, "memory") == 0) {
            *out = FG_RL_LOCAL;
            return 0;
        }
        if (strcmp(it->valuestring, "redis") == 0) {
            *out = FG_RL_REDIS;
            return 0;
        }
    }
    return dec_fail_key(d, "backend", "must be \"local\", \"memory\" or \"redis\"");
}

static int dec_rate_limit_conf(dec_t *d, const cJSON *obj, fg_rate_limit_conf_t *c)
{
    const cJSON *it = member(obj, "rateLimit");
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "rateLimit");
    if ((rc = dec_object(d, it, rate_limit_conf_keys)) != 0 ||
        (rc = get_bool(d, it, "enabled", true, &c->enabled)) != 0 ||
        (rc = dec_rl_backend(d, it, &c->backend)) != 0)
        goto out;
    const cJSON *redis = member(it, "redis");
    if (redis) {
        size_t rmark = dec_key(d, "redis");
        if ((rc = dec_object(d, redis, redis_keys)) == 0 &&
            (rc = get_u32(d, redis, "timeoutMs", 1, FG_RL_REDIS_TIMEOUT_MAX_MS,
                          FG_DEFAULT_RL_REDIS_TIMEOUT_MS, false, &c->redis_timeout_ms)) == 0 &&
            (rc = get_u32(d, redis, "fallbackDivisor", 1, FG_RL_FALLBACK_DIVISOR_MAX,
                          FG_DEFAULT_RL_FALLBACK_DIVISOR, false,
                          &c->redis_fallback_divisor)) == 0)
            rc = get_string(d, redis, "url", false, FG_URL_MAX_LEN, fg__redis_url_problem,
                            &c->redis_url);
        dec_pop(d, rmark);
        if (rc != 0)
            goto out;
    }
    if ((rc = get_rate_limit(d, it, "global", &c->global)) != 0 ||
        (rc = get_u32(d, it, "maxBuckets", FG_RL_MIN_BUCKETS, FG_RL_MAX_BUCKETS,
                      FG_DEFAULT_RL_MAX_BUCKETS, false, &c->max_buckets)) != 0)
        goto out;
    rc = dec_per_route(d, it, c);
out:
    dec_pop(d, mark);
    return rc;
}

static int get_rate(dec_t *d, const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = member(obj, key);
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) ||
        it->valuedouble > 1)
        return dec_fail_key(d, key, "must be a number between 0 and 1");
    *out = it->valuedouble == 0 ? 0 : it->valuedouble;
    return 0;
}

static const char *log_level_problem(const char *level)
{
    static const char *const ok[] = {"debug", "info", "warn", "error", NULL};
    for (size_t i = 0; ok[i]; i++)
        if (strcmp(level, ok[i]) == 0)
            return NULL;
    return "must be \"debug\", \"info\", \"warn\" or \"error\"";
}

static const char *log_format_problem(const char *format)
{
    return strcmp(format, "json") == 0 ? NULL : "must be \"json\"";
}

static int dec_logging(dec_t *d, const cJSON *obj, fg_logging_conf_t *l)
{
    const cJSON *it = member(obj, "logging");
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "logging");
    if ((rc = dec_object(d, it, logging_keys)) != 0)
        goto out;
    /* "warning" is what several loggers call it; store the one spelling the encoder writes. */
    const cJSON *lv = member(it, "level");
    if (cJSON_IsString(lv) && strcmp(lv->valuestring, "warning") == 0)
        l->level = "warn";
    else if ((rc = get_string(d, it, "level", false, 16, log_level_problem, &l->level)) != 0)
        goto out;
    if ((rc = get_string(d, it, "format", false, 16, log_format_problem, &l->format)) != 0)
        goto out;
    if ((rc = get_string(d, it, "requestIdHeader", false, FG_REQUEST_ID_HEADER_MAX_LEN,
                         fg__request_id_header_problem, &l->request_id_header)) != 0)
        goto out;
    const cJSON *s = member(it, "sampling");
    if (s) {
        size_t smark = dec_key(d, "sampling");
        if ((rc = dec_object(d, s, sampling_keys)) == 0 &&
            (rc = get_rate(d, s, "successRate", &l->success_rate)) == 0)
            rc = get_rate(d, s, "errorRate", &l->error_rate);
        dec_pop(d, smark);
    }
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_metrics(dec_t *d, const cJSON *obj, fg_metrics_conf_t *m)
{
    const cJSON *it = member(obj, "metrics");
    uint32_t port = m->port;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "metrics");
    if ((rc = dec_object(d, it, metrics_keys)) == 0 &&
        (rc = get_bool(d, it, "enabled", true, &m->enabled)) == 0 &&
        (rc = get_u32(d, it, "port", 0, 65535, port, false, &port)) == 0)
        rc = get_string(d, it, "path", false, FG_PATH_MAX_LEN, fg__http_path_problem, &m->path);
    m->port = (uint16_t)port;
    dec_pop(d, mark);
    return rc;
}

/* The original schema wrote `version: "1.0"` or `version: 1`; either is kept as text. */
static int dec_version(dec_t *d, const cJSON *obj, const char **out)
{
    const cJSON *it = member(obj, "version");
    if (!it)
        return 0;
    if (cJSON_IsNumber(it) && it->valuedouble - it->valuedouble == 0) { /* finite */
        char buf[40];
        snprintf(buf, sizeof(buf), "%.15g", it->valuedouble);
        if (strtod(buf, NULL) != it->valuedouble)
            snprintf(buf, sizeof(buf), "%.17g", it->valuedouble);
        *out = fg_arena_strdup(d->arena, buf);
        return *out ? 0 : dec_oom(d);
    }
    size_t mark = dec_key(d, "version");
    int rc = dec_string(d, it, FG_VERSION_MAX_LEN, plain_text_problem, out);
    dec_pop(d, mark);
    return rc;
}

static int dec_upstream_list(dec_t *d, const cJSON *obj, fg_config_t *cfg)
{
    const cJSON *it = member(obj, "upstreams");
    size_t n = 0, i = 0;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "upstreams");
    if ((rc = dec_array(d, it, FG_MAX_UPSTREAMS, &n)) != 0)
        goto out;
    cfg->upstreams = fg_arena_calloc(d->arena, n, sizeof(*cfg->upstreams));
    if (!cfg->upstreams) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        size_t imark = dec_index(d, i);
        rc = dec_upstream(d, c, &cfg->upstreams[i]);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    cfg->n_upstreams = n;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_route_list(dec_t *d, const cJSON *obj, fg_config_t *cfg)
{
    const cJSON *it = member(obj, "routes");
    size_t n = 0, i = 0;
    int rc;
    if (!it)
        return 0;
    size_t mark = dec_key(d, "routes");
    if ((rc = dec_array(d, it, FG_MAX_ROUTES, &n)) != 0)
        goto out;
    cfg->routes = fg_arena_calloc(d->arena, n, sizeof(*cfg->routes));
    if (!cfg->routes) {
        rc = dec_oom(d);
        goto out;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        size_t imark = dec_index(d, i);
        rc = dec_route(d, c, &cfg->routes[i]);
        dec_pop(d, imark);
        if (rc != 0)
            goto out;
        i++;
    }
    cfg->n_routes = n;
out:
    dec_pop(d, mark);
    return rc;
}

static int dec_config(dec_t *d, const cJSON *json, fg_config_t *cfg)
{
    int rc;
    if ((rc = dec_object(d, json, config_keys)) != 0 ||
        (rc = dec_version(d, json, &cfg->version)) != 0 ||
        (rc = dec_proxy(d, json, &cfg->proxy)) != 0 ||
        (rc = dec_security(d, json, &cfg->security)) != 0 ||
        (rc = dec_rate_limit_conf(d, json, &cfg->rate_limit)) != 0 ||
        (rc = dec_logging(d, json, &cfg->logging)) != 0 ||
        (rc = dec_metrics(d, json, &cfg->metrics)) != 0 ||
        (rc = dec_upstream_list(d, json, cfg)) != 0 || (rc = dec_route_list(d, json, cfg)) != 0)
        return rc;
    return 0;
}

/* ---- public entry points -------------------------------------------------------------- */

int fg_config_decode(const cJSON *json, fg_config_t **out, fg_error_t *err)
{
    dec_t d;
    *out = NULL;
    fg_error_clear(err);
    fg_config_t *cfg = fg_config_new_empty();
    if (!cfg)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    dec_init(&d, cfg->arena, err, "");
    int rc = dec_config(&d, json, cfg);
    if (rc != 0) {
        fg_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int fg_upstream_decode(const cJSON *json, fg_arena_t *arena, const char *path,
                       fg_upstream_t *out, fg_error_t *err)
{
    dec_t d;
    fg_error_clear(err);
    dec_init(&d, arena, err, path);
    return dec_upstream(&d, json, out);
}

int fg_route_decode(const cJSON *json, fg_arena_t *arena, const char *path, fg_route_t *out,
                    fg_error_t *err)
{
    dec_t d;
    fg_error_clear(err);
    dec_init(&d, arena, err, path);
    return dec_route(&d, json, out);
}

int fg_api_key_decode(const cJSON *json, fg_arena_t *arena, const char *path,
                      fg_api_key_t *out, fg_error_t *err)
{
    dec_t d;
    fg_error_clear(err);
    dec_init(&d, arena, err, path);
    return dec_api_key(&d, json, out);
}
