/* retry.h - when a failed upstream attempt may be tried again, and after how long.
 *
 * Per request: the upstream's `retries` (attempts after the first). Globally, per worker: a
 * retry budget keeps retries to at most `proxy.retryBudget` percent of requests (default
 * RETRY_BUDGET_DEFAULT_PERCENT) plus a reserve of RETRY_BUDGET_RESERVE_PER_S retries per
 * second, so a failing upstream cannot multiply the load on itself (Finagle's RetryBudget).
 * Each request deposits retryBudget/100 of a retry; the balance is capped at
 * RETRY_BUDGET_CAP retries so a long quiet spell does not bank a storm. Backoff is
 * exponential with full jitter: uniform in [0, min(RETRY_BACKOFF_CAP_MS,
 * RETRY_BACKOFF_BASE_MS * 2^(attempt-1))]. O(1), no allocation. */
#ifndef DP_RETRY_H
#define DP_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define RETRY_BACKOFF_BASE_MS 25u         /* first retry waits up to this long */
#define RETRY_BACKOFF_CAP_MS 1000u        /* no retry waits longer */
#define RETRY_BUDGET_DEFAULT_PERCENT 20u  /* proxy.retryBudget default */
#define RETRY_BUDGET_RESERVE_PER_S 10u    /* retries allowed per second whatever the ratio */
#define RETRY_BUDGET_CAP 100u             /* most retries the ratio part can bank */

/** A request was admitted: deposit `percent`/100 of a retry. */
void retry_budget_deposit(uint32_t percent, uint64_t now_ms);

/** Take one retry from the budget; false (counted in retries_budget_exhausted) when empty. */
bool retry_budget_withdraw(uint64_t now_ms);

/** Delay before retry number `attempt` (1 = the first retry), in ms. */
uint32_t retry_backoff_ms(uint32_t attempt);

/** Reset the budget (tests). */
void retry_budget_reset(void);

#endif
