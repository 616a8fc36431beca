/* retry.c - retry budget and backoff (see retry.h). Balances are in hundredths of a retry. */
#include "retry.h"

#include <stdlib.h>
#include <unistd.h>

#include "fg_time.h"
#include "metrics.h"

static struct {
    uint64_t ratio;       /* hundredths of a retry earned by requests */
    uint64_t reserve;     /* hundredths of a retry from the per-second reserve */
    uint64_t refilled_ms; /* last reserve refill */
    uint64_t rng;
} budget;

void retry_budget_reset(void)
{
    budget.ratio = 0;
    budget.reserve = RETRY_BUDGET_RESERVE_PER_S * 100u;
    budget.refilled_ms = 0;
}

static void refill(uint64_t now)
{
    if (budget.refilled_ms == 0) {
        budget.refilled_ms = now;
        budget.reserve = RETRY_BUDGET_RESERVE_PER_S * 100u;
        return;
    }
    uint64_t add = (now - budget.refilled_ms) * RETRY_BUDGET_RESERVE_PER_S / 10u; /* /1000*100 */
    if (add == 0)
        return;
    budget.refilled_ms = now;
    budget.reserve += add;
    if (budget.reserve > RETRY_BUDGET_RESERVE_PER_S * 100u)
        budget.reserve = RETRY_BUDGET_RESERVE_PER_S * 100u;
}

void retry_budget_deposit(uint32_t percent, uint64_t now)
{
    (void)now;
    budget.ratio += percent;
    if (budget.ratio > RETRY_BUDGET_CAP * 100u)
        budget.ratio = RETRY_BUDGET_CAP * 100u;
}

bool retry_budget_withdraw(uint64_t now)
{
    refill(now);
    if (budget.ratio >= 100u) {
        budget.ratio -= 100u;
        return true;
    }
    if (budget.reserve >= 100u) {
        budget.reserve -= 100u;
        return true;
    }
    metrics_counters()->retries_budget_exhausted++;
    return false;
}

uint32_t retry_backoff_ms(uint32_t attempt)
{
    uint64_t ceiling = RETRY_BACKOFF_BASE_MS;
    for (uint32_t i = 1; i < attempt && ceiling < RETRY_BACKOFF_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > RETRY_BACKOFF_CAP_MS)
        ceiling = RETRY_BACKOFF_CAP_MS;
    if (budget.rng == 0)
        budget.rng = (fg_now_ms() << 16) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
    budget.rng ^= budget.rng << 13;
    budget.rng ^= budget.rng >> 7;
    budget.rng ^= budget.rng << 17;
    return (uint32_t)(budget.rng % (ceiling + 1));
}
