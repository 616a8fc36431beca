/* overload.c - priority shedding (see overload.h). */
#include "overload.h"

#include <errno.h>
#include <stdlib.h>

#include "fg_time.h"
#include "metrics.h"

static uint32_t pending;
static uint64_t last_shed_ms;
static bool shed_ever;

static int compare_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

int overload_thresholds(const fg_config_t *cfg, uint32_t **out)
{
    *out = NULL;
    if (cfg->n_routes == 0)
        return 0;
    uint32_t *shed_at = malloc(cfg->n_routes * sizeof *shed_at); /* the caller's */
    int32_t *prio = malloc(cfg->n_routes * sizeof *prio);        /* scratch */
    if (!shed_at || !prio) {
        free(shed_at);
        free(prio);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        prio[i] = cfg->routes[i].priority;
    qsort(prio, cfg->n_routes, sizeof *prio, compare_i32);
    size_t k = 0; /* distinct priorities, compacted in place */
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (k == 0 || prio[k - 1] != prio[i])
            prio[k++] = prio[i];
    uint64_t max = cfg->proxy.max_pending;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        size_t lo = 0, hi = k; /* rank of the route's priority */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (prio[mid] < cfg->routes[i].priority)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint64_t t = max + (uint64_t)lo * max / k;
        shed_at[i] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
    }
    free(prio);
    *out = shed_at;
    return 0;
}

bool overload_admit(uint32_t shed_at)
{
    if (shed_at && pending >= shed_at) {
        metrics_counters()->shed_overload++;
        last_shed_ms = fg_now_ms();
        shed_ever = true;
        return false;
    }
    pending++;
    return true;
}

void overload_done(void)
{
    if (pending)
        pending--;
}

uint32_t overload_pending(void)
{
    return pending;
}

bool overload_active(void)
{
    return shed_ever && fg_now_ms() - last_shed_ms < OVERLOAD_ACTIVE_MS;
}
