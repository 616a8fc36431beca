/* breaker.h - the circuit breaker of one upstream target: a pure state machine on injected time.
 *
 * closed -> open: when, over the rolling window (`windowMs`, kept as BREAKER_BUCKETS buckets),
 * at least `minRequests` outcomes were recorded and the failed share reaches
 * `failureThreshold` percent. open -> half-open: `openDuration` after opening, on the next
 * request that asks. half-open lets `halfOpenRequests` trial requests through at a time;
 * `successThreshold` successes close it (with a fresh window), one failure reopens it. A trial
 * whose outcome never comes (its client left) would pin the breaker half-open: trials are
 * forgotten after another `openDuration`.
 *
 * The state lives in balancer.c's per-target table (keyed by upstream name + target URL), so it
 * survives config swaps; balancer.c resets it when the upstream's breaker settings change.
 * Transitions bump metrics_counters()->breaker_transitions[]. No allocation, O(1) per call. */
#ifndef DP_BREAKER_H
#define DP_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "fg_config.h"
#include "metrics.h" /* DP_BREAKER_* */

#define BREAKER_BUCKETS 10 /* rolling-window resolution: windowMs / 10 per bucket */

typedef struct breaker {
    int state;                    /* DP_BREAKER_* (metrics.h) */
    uint64_t changed_ms;          /* when `state` was entered (or trials were last reset) */
    uint32_t trials;              /* half-open: trial requests let through, outcome pending */
    uint32_t successes;           /* half-open: successful trials */
    uint64_t epoch[BREAKER_BUCKETS]; /* which window slice each bucket counts (now / width) */
    uint32_t total[BREAKER_BUCKETS];
    uint32_t failed[BREAKER_BUCKETS];
} breaker_t;

/** Reset to closed with an empty window. */
void breaker_reset(breaker_t *b);

/** Would a request be let through now? Does not change anything but open -> half-open once
 *  openDuration passed. Always true when the breaker is disabled. */
bool breaker_admits(breaker_t *b, const fg_breaker_conf_t *conf, uint64_t now_ms);

/** The request was let through (after breaker_admits said yes): half-open counts a trial. */
void breaker_take(breaker_t *b, const fg_breaker_conf_t *conf);

/** Record one outcome (`ok` false: connect failure, timeout, broken exchange, 5xx). */
void breaker_record(breaker_t *b, const fg_breaker_conf_t *conf, bool ok, uint64_t now_ms);

/** Every target's breaker in the current config: `state` is DP_BREAKER_*. For /health/ready
 *  and metrics. `upstream` and `target` (the target URL) are valid during the call only. */
void breaker_foreach(void (*fn)(const char *upstream, const char *target, int state, void *arg),
                     void *arg);

#endif
