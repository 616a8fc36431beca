/* generation.c - building, swapping and freeing config generations (see generation.h).
 *
 * A generation is built off to the side from a decoded config (router, per-route upstream
 * table) and only then made current, so a failure while building leaves the running
 * generation untouched. Building costs O((routes + upstreams) log upstreams) for the upstream
 * lookup plus router_build's O(path bytes); installing is a pointer swap. The process is
 * single-threaded per worker, so the refcount is a plain integer and `current` a plain
 * pointer. */
#include "generation.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "accesslog.h"
#include "auth.h"
#include "balancer.h"
#include "fg_log.h"
#include "fg_time.h"
#include "guard.h"
#include "metrics.h"
#include "ratelimit.h"
#include "trace.h"
#include "upstream.h"

static dp_generation_t *current;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Generations created and not yet freed. Lets tests (which include this file) prove that an
 * old generation dies with its last holder; later, a metrics gauge. */
static size_t generations_live;

static void generation_free(dp_generation_t *g)
{
    if (!g)
        return;
    router_free(g->router);
    auth_table_free(g->auth); /* borrows the config's strings: before fg_config_free */
    ratelimit_compiled_free(g->ratelimit);
    balancer_free(g->traffic);
    guard_free(g->guard);
    free(g->route_upstream);
    fg_config_free(g->config);
    free(g);
    generations_live--;
}

static int compare_upstream_ptr(const void *a, const void *b)
{
    const fg_upstream_t *ua = *(const fg_upstream_t *const *)a;
    const fg_upstream_t *ub = *(const fg_upstream_t *const *)b;
    return strcmp(ua->name, ub->name);
}

static int compare_name_to_upstream(const void *key, const void *elem)
{
    const fg_upstream_t *u = *(const fg_upstream_t *const *)elem;
    return strcmp((const char *)key, u->name);
}

/* Resolve every route's upstream name once, here, so the request path never searches by
 * name. Sorted pointers + bsearch: no hash table to size, and 100,000 routes over 10,000
 * upstreams take a few milliseconds. The validator has already checked the references; a
 * miss here means the config skipped validation, which is refused rather than trusted. */
static int generation_resolve_upstreams(dp_generation_t *g, fg_error_t *err)
{
    const fg_config_t *cfg = g->config;
    const fg_upstream_t **sorted = NULL;
    int rc = 0;

    if (cfg->n_routes == 0)
        return 0;
    g->route_upstream = calloc(cfg->n_routes, sizeof(*g->route_upstream));
    if (cfg->n_upstreams > 0)
        sorted = malloc(cfg->n_upstreams * sizeof(*sorted));
    if (!g->route_upstream || (cfg->n_upstreams > 0 && !sorted)) {
        rc = fg_error_setc(err, -ENOMEM, NULL, "out of memory resolving route upstreams");
        goto fail_alloc;
    }
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        sorted[i] = &cfg->upstreams[i];
    if (sorted)
        qsort(sorted, cfg->n_upstreams, sizeof(*sorted), compare_upstream_ptr);

    for (size_t i = 0; i < cfg->n_routes; i++) {
        const fg_route_t *r = &cfg->routes[i];
        const fg_upstream_t *const *hit = NULL;
        if (r->upstream && sorted)
            hit = bsearch(r->upstream, sorted, cfg->n_upstreams, sizeof(*sorted),
                          compare_name_to_upstream);
        if (!hit) {
            char field[64];
            snprintf(field, sizeof(field), "routes[%zu].upstream", i);
            rc = fg_error_set(err, field, "unknown upstream \"%s\"",
                              r->upstream ? r->upstream : "");
            goto fail_alloc;
        }
        g->route_upstream[i] = *hit;
    }
    free(sorted);
    return 0;

fail_alloc:
    free(sorted);
    return rc;
}

dp_generation_t *generation_create(fg_config_t *config, int64_t version, const char *checksum,
                                   fg_error_t *err)
{
    dp_generation_t *g;

    if (!config) {
        fg_error_setc(err, -EINVAL, NULL, "no config");
        return NULL;
    }
    uint64_t t0 = mono_us();
    g = calloc(1, sizeof(*g));
    if (!g) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory creating a generation");
        fg_config_free(config);
        return NULL;
    }
    generations_live++;
    g->refs = 1;
    g->version = version;
    g->config = config;
    if (checksum)
        snprintf(g->checksum, sizeof(g->checksum), "%s", checksum);

    if (generation_resolve_upstreams(g, err) < 0)
        goto fail_build;
    g->router = router_build(config, err);
    if (!g->router)
        goto fail_build;
    g->guard = guard_build(config, err);
    if (!g->guard)
        goto fail_build;
    g->auth = auth_table_build(config, err);
    if (!g->auth)
        goto fail_build;
    g->ratelimit = ratelimit_compile(config, err);
    if (!g->ratelimit)
        goto fail_build;
    g->traffic = balancer_build(config, err); /* last: it starts health checks */
    if (!g->traffic)
        goto fail_build;
    g->build_us = mono_us() - t0;
    return g;

fail_build:
    generation_free(g);
    return NULL;
}

dp_generation_t *generation_current(void)
{
    return current;
}

dp_generation_t *generation_acquire(dp_generation_t *g)
{
    if (g)
        g->refs++;
    return g;
}

void generation_release(dp_generation_t *g)
{
    if (!g)
        return;
    assert(g->refs > 0);
    if (--g->refs == 0)
        generation_free(g);
}

static size_t config_items(const dp_generation_t *g)
{
    const fg_config_t *c = g ? g->config : NULL;
    return c ? c->n_routes + c->n_upstreams + c->security.auth.n_keys : 0;
}

/* Decoding a snapshot of 100,000 routes peaks at about 250 MB of short-lived cJSON nodes and
 * text, and glibc keeps the freed pages: the process would sit at that RSS for good while
 * it uses a fifth of it. malloc_trim returns the free pages (not only the top of the heap) to
 * the system. It walks the heap, so only large configs pay for it. */
static uint64_t trim_heap_us(void)
{
#ifdef __GLIBC__
    uint64_t t0 = mono_us();
    malloc_trim(0);
    return mono_us() - t0;
#else
    return 0;
#endif
}

static void fmt_ms(char *out, size_t len, uint64_t us)
{
    snprintf(out, len, "%llu.%03llu", (unsigned long long)(us / 1000),
             (unsigned long long)(us % 1000));
}

void generation_install(dp_generation_t *g)
{
    dp_generation_t *prev = current;
    char version[24], routes[24], upstreams[24], build[32], trim[32], router_kb[24];

    if (g == prev) {
        /* Already current: the slot keeps its reference, the caller's is the one to drop. */
        generation_release(g);
        return;
    }
    bool large = config_items(g) >= DP_GEN_TRIM_MIN_ITEMS ||
                 config_items(prev) >= DP_GEN_TRIM_MIN_ITEMS;
    current = g;
    if (g)
        ratelimit_configure(g->config); /* backend, Redis URL, table size */
    /* Requests still holding `prev` keep it alive; it is freed by whichever release is last
     * (a large one freed later is not trimmed: the next snapshot reuses its pages). */
    generation_release(prev);
    upstream_recheck_idle(); /* the SSRF guard's blocked ranges may have changed */
    uint64_t trim_us = large ? trim_heap_us() : 0;
    if (g) {
        g->applied_at_ms = fg_wall_ms();
        /* Issue 7: the version gauge, the swap counter, and this config's logging. */
        metrics_generation(g->version);
        accesslog_configure(&g->config->logging);
        trace_set_header(g->config->logging.request_id_header);
        snprintf(version, sizeof(version), "%lld", (long long)g->version);
        snprintf(routes, sizeof(routes), "%zu", g->config->n_routes);
        snprintf(upstreams, sizeof(upstreams), "%zu", g->config->n_upstreams);
        fmt_ms(build, sizeof(build), g->build_us);
        fmt_ms(trim, sizeof(trim), trim_us);
        snprintf(router_kb, sizeof(router_kb), "%zu", (router_memory(g->router) + 1023) / 1024);
        fg_log(FG_LOG_INFO, "config applied", "version", version, "routes", routes,
               "upstreams", upstreams, "checksum", g->checksum, "build_ms", build,
               "heap_trim_ms", trim, "router_kb", router_kb, NULL);
    }
}

void generation_shutdown(void)
{
    dp_generation_t *prev = current;
    current = NULL;
    generation_release(prev);
}
