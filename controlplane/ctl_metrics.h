/* ctl_metrics.h - the control plane's metrics, served in Prometheus text format (0.0.4) at
 * GET /metrics on the admin listener, and its /health/deep.
 *
 * Series: admin requests by endpoint (the route table's path with "{id}" for an item, never
 * the raw URL), method (a fixed list, "OTHER" beyond it) and status; the config version;
 * data planes by sync status and each one's applied version; the publish duration (load,
 * encode and push of a new snapshot) as a histogram; SQLite errors by kind; the process's
 * CPU, RSS and open descriptors. Counters are updated from the admin API's and the
 * publisher's threads: atomics, and one mutex for the (rare) admin-request table insert.
 * The admin series table is fixed-size (CTL_METRICS_SERIES_MAX) with an overflow series. */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"

#define CTL_METRICS_SERIES_MAX 512 /* (endpoint, method, status) admin request series */
#define CTL_METRICS_ENDPOINT_MAX 96 /* bytes of an endpoint template */

/** Count one finished admin request. `route` is the route table's path (NULL: no route
 *  matched; "/ui" for the UI), `item`/`action` its form. Thread-safe. */
void ctl_metrics_admin_request(const char *route, bool item, const char *action,
                               const char *method, int status);

/** One snapshot published (loaded, encoded, pushed) in `us` microseconds. Thread-safe. */
void ctl_metrics_publish(uint64_t us);


/** Monotonic microseconds. */
uint64_t ctl_metrics_now_us(void);

/** GET /metrics (admin listener, no token: it carries counts, never config). */
enum MHD_Result api_metrics(api_req_t *req);

/** GET /health/deep: database, publisher, and every data plane's sync status. */
enum MHD_Result api_health_deep(api_req_t *req);

#endif
