/* metrics.h - the data plane's event counters, one set per worker process.
 *
 * Every module that decides something worth counting (auth, guard, ratelimit, breaker,
 * balancer, health, proxy) bumps a field here: `metrics_counters()->ssrf_blocked++`. The
 * counters are plain uint64_t and only grow, so a data plane's totals are the element-wise
 * sum of its workers' structs: metrics.c keeps one struct per worker where the status
 * listener of any worker can read them all, and renders them in Prometheus text format.
 * Series with labels taken from config (route, upstream, target) live in metrics.c itself.
 *
 * Fields are ONLY uint64_t (the struct is summed as an array); add new ones at the end of
 * their group. */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stdint.h>

/* Indexes of the per-backend / per-state arrays below. */
enum { DP_RL_BACKEND_LOCAL = 0, DP_RL_BACKEND_REDIS = 1, DP_RL_BACKENDS };
enum { DP_BREAKER_CLOSED = 0, DP_BREAKER_OPEN = 1, DP_BREAKER_HALF_OPEN = 2, DP_BREAKER_STATES };

typedef struct dp_counters {
    /* security (issue 5) */
    uint64_t auth_missing;          /* 401: no key presented on an `auth: required` route */
    uint64_t auth_invalid;          /* 401: unknown, disabled or expired key; bad signature */
    uint64_t auth_forbidden;        /* 403: valid key not scoped to the route */
    uint64_t auth_replays;          /* 401: HMAC signature seen before, or outside the skew */
    uint64_t ssrf_blocked;          /* 403: resolved upstream address in a blocked range */
    uint64_t hosts_refused;         /* 403: upstream host outside security.allowedHosts */
    uint64_t paths_refused;         /* 400: encoded '/', '\' or NUL in the path */
    uint64_t headers_refused;       /* 400: header name/value refused by hygiene rules */
    uint64_t resp_headers_dropped;  /* upstream response headers dropped (splitting, CR/LF) */
    /* traffic control (issue 6) */
    uint64_t ratelimit_allowed[DP_RL_BACKENDS];
    uint64_t ratelimit_limited[DP_RL_BACKENDS];
    uint64_t ratelimit_redis_errors;    /* Redis calls that failed or timed out */
    uint64_t ratelimit_fallbacks;       /* switches from Redis to local buckets */
    uint64_t retries;                   /* upstream attempts after the first */
    uint64_t retries_budget_exhausted;  /* retries refused by a retry budget */
    uint64_t breaker_rejected;          /* 503 (or fallback) because a breaker was open */
    uint64_t breaker_transitions[DP_BREAKER_STATES]; /* transitions INTO each state */
    uint64_t shed_overload;             /* 503: shed by priority past the pending threshold */
    uint64_t health_transitions;        /* targets marked up or down (active or passive) */
    uint64_t dns_resolutions;           /* upstream names (re-)resolved */
    /* observability and generations (issue 7) */
    uint64_t generation_swaps;
} dp_counters_t;

/** This process's counters (never NULL; valid for the life of the process). */
dp_counters_t *metrics_counters(void);

#endif
