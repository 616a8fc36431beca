/* balancer.h - choosing the target of a request attempt, and the per-target state behind it.
 *
 * Per-target state (bal_target_t: circuit breaker, health, least-conn and round-robin
 * counters) lives in one process-wide table keyed by (upstream name, target URL), so a config
 * swap keeps it for every target that is still configured; entries are never freed before
 * shutdown (like upstream pools, they are bounded by the targets ever configured). A breaker
 * is reset when its upstream's circuitBreaker settings change.
 *
 * Per generation, balancer_build() makes a bal_set_t: for each upstream its targets' entries,
 * its fallback upstream and, for consistent-hash, a hash ring (BAL_RING_POINTS points per
 * target, weighted; built in O(points log points) per generation). Policies, all O(targets)
 * per pick or better and allocation-free:
 *   round-robin         smooth weighted round-robin (nginx): even interleaving by weight
 *   least-conn          fewest in-flight attempts per unit of weight; ties rotate
 *   random-two-choices  two random targets, the one with fewer in-flight per weight
 *   consistent-hash     ring lookup of hash(hashOn key: header, cookie or client IP; "ip" by
 *                       default); a missing key falls back to round-robin
 * A pick skips targets this request already tried, targets that are down (health.h) and
 * targets whose breaker refuses; if nothing is left it allows tried targets, then unhealthy
 * ones (better a maybe-down target than none), but never one whose breaker refuses: when
 * every breaker refuses, the pick fails (the caller answers 503 or uses the fallback). A
 * single-target upstream without a breaker costs nothing but a branch. */
#ifndef DP_BALANCER_H
#define DP_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "fg_config.h"
#include "fg_error.h"
#include "health.h"
#include "http1.h"
#include "upstream.h"

#define BAL_RING_POINTS 160 /* consistent-hash ring points per target of average weight */
#define BAL_TRIED_WORDS ((FG_MAX_TARGETS + 63) / 64) /* request's tried-target bitmap */

/** Per-target state that survives config swaps. Fields are the modules' (breaker.c, health.c,
 *  balancer.c); others read them. */
typedef struct bal_target {
    struct bal_target *next;      /* hash chain */
    uint32_t hash;
    char *upstream;               /* upstream name, owned */
    char *url;                    /* target URL as configured, owned */
    uint64_t epoch;               /* the last balancer_build that referenced it */
    fg_breaker_conf_t breaker_conf; /* settings `breaker` runs with (copy) */
    fg_health_check_t health_conf;  /* passive settings `health` runs with (copy; path unused) */
    breaker_t breaker;
    health_t health;
    int64_t current_weight;       /* smooth weighted round-robin */
    uint32_t active;              /* attempts in flight (least-conn, random-two-choices) */
} bal_target_t;

/** One upstream of a generation. */
typedef struct bal_upstream {
    const fg_upstream_t *conf;
    const struct bal_upstream *fallback; /* the `fallback` upstream, or NULL */
    bal_target_t **targets;              /* [conf->n_targets], owned array, shared entries */
    uint32_t *ring_hash;                 /* consistent-hash ring, sorted; owned */
    uint16_t *ring_target;               /* target index of each ring point; owned */
    size_t ring_n;
    uint32_t rotate;                     /* least-conn tie rotation */
} bal_upstream_t;

/** What a generation holds for traffic control. */
typedef struct bal_set {
    bal_upstream_t *ups;  /* [config->n_upstreams], same order */
    size_t n_ups;
    uint32_t *shed_at;    /* [config->n_routes]: pending requests at which the route is shed */
} bal_set_t;

/** Build the generation's set, creating table entries for new targets and (re)configuring
 *  health checks; targets no longer configured stop being checked. NULL with err (ENOMEM). */
bal_set_t *balancer_build(const fg_config_t *cfg, fg_error_t *err);

/** Free a set (not the table entries). NULL is accepted. */
void balancer_free(bal_set_t *s);

/** The set's entry for upstream `u` (a pointer into the set's config). */
static inline const bal_upstream_t *balancer_upstream(const bal_set_t *s,
                                                      const fg_config_t *cfg,
                                                      const fg_upstream_t *u)
{
    return &s->ups[u - cfg->upstreams];
}

/** Choose a target index of `bu` for a request: `head` and `peer_ip` give the hash key,
 *  `tried` the targets to avoid. The chosen target's breaker counts it (half-open trial) and
 *  its in-flight count goes up: pair with balancer_done(). -1 when every breaker refuses. */
int balancer_pick(const bal_upstream_t *bu, const http1_head_t *head, const char *peer_ip,
                  const uint64_t tried[BAL_TRIED_WORDS], uint64_t now_ms);

/** Outcome of an attempt on a picked target. */
typedef enum bal_outcome {
    BAL_OK = 0,      /* a response below 500 */
    BAL_FAILED,      /* connect failure, timeout, broken exchange, 5xx */
    BAL_NEUTRAL,     /* the client went away or stalled: says nothing about the target */
} bal_outcome_t;

/** The attempt on target `i` of `bu` ended: in-flight count, breaker, passive health (reads
 *  the clock only when a breaker or passive health has something to record). */
void balancer_done(const bal_upstream_t *bu, int i, bal_outcome_t outcome);

/** Call fn for each table entry referenced by the newest set (the current config). */
void balancer_foreach_target(void (*fn)(const char *upstream, const char *target,
                                        bal_target_t *t, void *arg),
                             void *arg);

/** Counts over the current config's targets, for /health/ready: all of them, those out of
 *  rotation (health.h), those whose breaker is open or half-open. O(targets ever
 *  configured). */
typedef struct bal_summary {
    size_t targets, down, breakers_open;
} bal_summary_t;
void balancer_summary(bal_summary_t *out);

/** Free the table (stops health checks). */
void balancer_shutdown(void);

#endif
