/* fg_config_validate.c - the one validator both planes run (see fg_config.h, "validate").
 *
 * The decoder has already checked each value on its own; this file checks what only the
 * whole configuration can tell: names unique, references resolve, counts within limits. It
 * also re-checks the single-value rules that matter for safety (names, paths, targets,
 * digests), because a model can be assembled without the decoder and the data plane must
 * never trust one that was.
 *
 * Uniqueness and lookups use a throw-away open-addressing hash set, so validating 100,000
 * routes over 10,000 upstreams is linear, not quadratic. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_config.h"
#include "fg_config_internal.h"

typedef struct name_set {
    const char **names;
    size_t *index; /* position of each name in its list, for "same as upstreams[0]" */
    size_t mask;
} name_set_t;

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

static int check_rate_limit(const fg_rate_limit_t *rl, const char *field, fg_error_t *err)
{
    char f[FG_ERROR_FIELD_MAX];
    if (!rl->set || !rl->enabled)
        return 0;
    if (rl->max == 0) {
        snprintf(f, sizeof(f), "%s.max", field);
        return fg_error_set(err, f, "must be > 0");
    }
    if (rl->window_ms == 0 || rl->window_ms > FG_RL_WINDOW_MAX_MS) {
        snprintf(f, sizeof(f), "%s.windowMs", field);
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
            return fg_error_set(err, f, "must be 1 to 64 characters of letters, digits, '.', '_' or '-'");
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
        if (u->timeout_ms < 1 || u->timeout_ms > FG_TIMEOUT_MAX_MS) {
            snprintf(f, sizeof(f), "upstreams[%zu].timeout", i);
            return fg_error_set(err, f, "must be between 1 and %u", FG_TIMEOUT_MAX_MS);
        }
        if (u->retries > FG_RETRIES_MAX) {
            snprintf(f, sizeof(f), "upstreams[%zu].retries", i);
            return fg_error_set(err, f, "must be between 0 and %d", FG_RETRIES_MAX);
        }
    }
    /* Fallbacks second: they may name an upstream defined later in the list. */
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const fg_upstream_t *u = &cfg->upstreams[i];
        if (!u->fallback)
            continue;
        snprintf(f, sizeof(f), "upstreams[%zu].fallback", i);
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
            rc = fg_error_set(err, f, "must be 1 to 64 characters of letters, digits, '.', '_' or '-'");
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
        rc = check_rate_limit(&r->rate_limit, f, err);
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
        if (!fg_name_valid(k->name))
            rc = fg_error_set(err, f, "must be 1 to 64 characters of letters, digits, '.', '_' or '-'");
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
    if (cfg->proxy.port == 0)
        return fg_error_set(err, "proxy.port", "must be between 1 and 65535");
    if (cfg->proxy.max_body_size == 0 || cfg->proxy.max_body_size > FG_MAX_BODY_SIZE_LIMIT)
        return fg_error_set(err, "proxy.maxBodySize", "must be between 1 byte and 1tb");
    return check_keys(&cfg->security.auth, err);
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
    return rc;
}
