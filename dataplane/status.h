/* status.h - the data plane's status listener: health endpoints for orchestrators.
 *
 * A small HTTP server (libevent's evhttp) on its own address, separate from client traffic,
 * so probes and scrapes never compete with proxied requests and never pass through routing:
 *   GET /health/live   200 while the process's event loop turns
 *   GET /health/ready  200 once a config generation is applied (and not draining), else 503;
 *                      the body names the applied config version, where it came from (the
 *                      control plane, or the --cache file) and the control plane link
 * Bodies are JSON. Each path is one row of a handler table in status.c (/metrics joins it
 * later). It lives on the process's event_base and never blocks it. */
#ifndef DP_STATUS_H
#define DP_STATUS_H

#include <stdbool.h>

#include <event2/event.h>

#include "fg_error.h"
#include "subscriber.h"

#define DP_STATUS_LISTEN_DEFAULT "127.0.0.1:9101"
#define DP_STATUS_MAX_HEADERS_SIZE 8192 /* bytes of request head a probe may send */
#define DP_STATUS_MAX_BODY_SIZE 1024    /* bytes of request body accepted (none is needed) */
#define DP_STATUS_TIMEOUT_SECS 10       /* per-connection read/write timeout */

typedef struct dp_status_conf {
    const char *listen;                 /* "127.0.0.1:9101", "[::1]:9101"; NULL = default */
    const dp_subscriber_t *subscriber;  /* borrowed, may be NULL; must outlive the status */
} dp_status_conf_t;

typedef struct dp_status dp_status_t;

/** Bind and serve on `base`. NULL with err when the address is bad or cannot be bound. */
dp_status_t *status_start(struct event_base *base, const dp_status_conf_t *conf,
                          fg_error_t *err);

/** Set the subscriber whose state /health/ready reports (borrowed; NULL detaches). */
void status_set_subscriber(dp_status_t *st, const dp_subscriber_t *sub);

/** Mark the process as draining (shutdown): /health/ready answers 503 from now on, so load
 *  balancers stop sending new traffic while in-flight requests finish. */
void status_set_draining(dp_status_t *st, bool draining);

/** Stop listening and release. NULL is accepted. */
void status_free(dp_status_t *st);

#endif
