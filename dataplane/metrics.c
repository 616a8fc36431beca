/* metrics.c - the data plane's counters (see metrics.h).
 *
 * For now one process-local struct; the exposition on the status listener and the
 * per-worker shared storage build on it. */
#include "metrics.h"

static dp_counters_t process_counters;

dp_counters_t *metrics_counters(void)
{
    return &process_counters;
}
