/* health.h - whether an upstream target should get traffic: passive outlier ejection and
 * active HTTP health checks.
 *
 * Passive: `healthCheck.consecutiveFailures` failed attempts in a row (connect failure,
 * timeout, broken exchange, 5xx) eject the target for `healthCheck.ejectDuration`, doubled
 * for each ejection in a row up to HEALTH_EJECT_MAX_FACTOR times. A target back from
 * ejection is on probation: a failure before its first success ejects it again (for longer).
 * A success at least one ejectDuration after the last ejection ended forgets the backoff.
 * This runs for every upstream with more than one target, whether or not active checks are
 * enabled; consecutiveFailures 0 turns it off.
 *
 * Active (`healthCheck.enabled`): every `interval` the data plane sends `GET <path>` to each
 * target over a fresh connection from upstream.c (same TLS and DNS handling as requests),
 * `Connection: close`, bounded by `timeout` (the first check comes at a spread-out moment
 * within the first interval). 2xx and 3xx are success. `unhealthyThreshold`
 * failures in a row mark the target down, `healthyThreshold` successes up. Targets start up.
 * Everything runs on the event loop; nothing blocks.
 *
 * State lives in balancer.c's per-target table and survives config swaps; a target no longer
 * configured stops being checked. Transitions bump metrics_counters()->health_transitions and
 * log one warn/info line each. */
#ifndef DP_HEALTH_H
#define DP_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "fg_config.h"

#define HEALTH_EJECT_MAX_FACTOR 8u        /* ejection time grows to at most 8 x ejectDuration */
#define HEALTH_STATUS_LINE_MAX 256        /* bytes of a check's response read for its status */

struct bal_target;
struct hc_probe;

typedef struct health {
    uint32_t consecutive_failures; /* passive: failed attempts in a row */
    uint32_t ejections;            /* passive: ejections in a row (backoff exponent) */
    uint64_t ejected_until_ms;     /* passive: out of rotation until then */
    bool active_down;              /* active checks say down */
    uint32_t checks_ok, checks_failed; /* active: results in a row */
    struct hc_probe *probe;        /* active checker, owned; NULL when checks are off */
} health_t;

/** Bind active checks to the process's event loop (before the first generation). Without it
 *  (unit tests), no active check runs. */
void health_init(struct event_base *base);

/** True when the target may get traffic now. */
bool health_up(const health_t *h, uint64_t now_ms);

/** Record a request attempt's outcome for passive ejection (conf: the upstream's
 *  healthCheck). True when it changed whether the target is up. */
bool health_record(health_t *h, const fg_health_check_t *conf, bool ok, uint64_t now_ms);

/** Start, retune or stop the active checker of target `t` per `u`'s healthCheck (`target`
 *  is one of u->targets). Called by balancer_build(). 0 or -ENOMEM (checks stay off). */
int health_configure(struct bal_target *t, const fg_upstream_t *u, const fg_target_t *target);

/** Stop `t`'s active checker (its upstream or target left the config; shutdown). */
void health_stop(struct bal_target *t);

/** Every target of the current config: whether it gets traffic. `upstream` and `target` (its
 *  URL) are valid during the call only. For /health/deep and metrics. */
void health_foreach(void (*fn)(const char *upstream, const char *target, bool up, void *arg),
                    void *arg);

#endif
