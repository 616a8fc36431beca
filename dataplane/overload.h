/* overload.h - shedding requests by route priority when too many are pending.
 *
 * A request is pending from admission (proxy_admit) until it finishes or becomes a tunnel.
 * `proxy.maxPending` (per worker process) is where shedding starts: with the config's
 * distinct route priorities ranked 0 (lowest) .. k-1, a route of rank i is shed (503 with
 * Retry-After: OVERLOAD_RETRY_AFTER_S) once maxPending + i * maxPending / k requests are
 * pending. The lowest priority goes first, the highest last, and nothing admits past twice
 * maxPending. The thresholds are computed per generation (O(routes log routes)); a request
 * pays one comparison. */
#ifndef DP_OVERLOAD_H
#define DP_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "fg_config.h"

#define OVERLOAD_RETRY_AFTER_S 1     /* Retry-After of a shed request */
#define OVERLOAD_ACTIVE_MS 1000u     /* overload_active() stays true this long after a shed */

/** Each route's shedding threshold, [cfg->n_routes] (caller frees; NULL when no routes).
 *  0 or -ENOMEM. */
int overload_thresholds(const fg_config_t *cfg, uint32_t **out);

/** Admit a request of a route whose threshold is `shed_at`: false (and counted) when it is to
 *  be shed; true and the request is pending until overload_done(). */
bool overload_admit(uint32_t shed_at);

/** A pending request finished. */
void overload_done(void);

/** Requests pending now. */
uint32_t overload_pending(void);

/** True while the process is shedding (a request was shed in the last OVERLOAD_ACTIVE_MS):
 *  the access log samples down then. */
bool overload_active(void);

#endif
