/* generation.h - immutable, refcounted configuration generations.
 *
 * A generation is everything the request path needs from one applied snapshot: the decoded
 * config, the router built from it, and each route's upstream resolved ahead of time. It
 * never changes after generation_create(). The process holds one *current* generation; a
 * request acquires the current one when its head is parsed and releases it when it ends, so a
 * swap never changes the config under a running request, and the old generation is freed when
 * its last request finishes. The data plane is single-threaded per process: refcounts are
 * plain integers. The current-generation pointer is the only mutable global the request path
 * reads. */
#ifndef DP_GENERATION_H
#define DP_GENERATION_H

#include <stdint.h>

#include "fg_config.h"
#include "fg_error.h"
#include "fg_hash.h"
#include "router.h"

typedef struct dp_generation {
    unsigned refs;                       /* holders: "current" slot + in-flight requests */
    int64_t version;                     /* config version of the snapshot */
    char checksum[FG_SHA256_HEX_LEN + 1];
    uint64_t applied_at_ms;              /* fg_wall_ms() when installed */
    uint64_t build_us;                   /* time generation_create() took (upstreams, router) */
    fg_config_t *config;                 /* owned */
    dp_router_t *router;                 /* owned, built from config */
    const fg_upstream_t **route_upstream; /* [config->n_routes]: each route's upstream */
    struct auth_table *auth;             /* owned: the API keys, by digest (auth.c) */
    struct dp_rl_compiled *ratelimit;    /* owned: ratelimit.c's per-generation state */
    struct bal_set *traffic;             /* owned: balancer, fallbacks, shedding thresholds */
    struct dp_guard *guard;              /* owned: guard.c's security tables (issue 5) */
} dp_generation_t;

/** Build a generation from a decoded, validated config. Takes ownership of `config` whether
 *  it succeeds or not. The result has refs == 1 (the caller's). NULL with err on failure. */
dp_generation_t *generation_create(fg_config_t *config, int64_t version, const char *checksum,
                                   fg_error_t *err);

/** The current generation, or NULL before the first apply. Borrowed: call
 *  generation_acquire() to keep it past the current callback. */
dp_generation_t *generation_current(void);

/** Take a reference; returns `g` for chaining. NULL is passed through. */
dp_generation_t *generation_acquire(dp_generation_t *g);

/** Drop a reference; the last one frees the generation. NULL is accepted. */
void generation_release(dp_generation_t *g);

/** Configs at least this large (routes + upstreams + keys) make generation_install() hand
 *  the heap the snapshot's decoding left free back to the system (glibc malloc_trim): about
 *  190 MB after 100,000 routes. Smaller ones skip it, it would cost more than it frees. */
#define DP_GEN_TRIM_MIN_ITEMS 1000

/** Make `g` current, transferring the caller's reference to the current slot; the previous
 *  current generation loses that slot's reference (and is freed if nothing else holds it).
 *  Logs "config applied" with the build and heap-trim times and the router's size. */
void generation_install(dp_generation_t *g);

/** Release the current generation (shutdown). */
void generation_shutdown(void);

#endif
