/* server.h - the client-facing HTTP listener of the data plane.
 *
 * The server accepts client connections on one address and runs the proxy state machine for
 * each request on them, reading the current generation for routing. It lives on the process's
 * one event_base and never blocks it. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "fg_error.h"

struct tls_server;

typedef struct dp_server_conf {
    const char *listen; /* "127.0.0.1:8080", "[::1]:8080" or "0.0.0.0:8080" */
    const char *tls_listen;     /* a second, TLS-terminating listener, or NULL */
    struct tls_server *tls;     /* its certificates (tls.h); borrowed, must outlive the server */
} dp_server_conf_t;

typedef struct dp_server dp_server_t;

/** Why requests and connections ended early: one counter per cause, for /metrics (issue 7).
 *  Counters only grow; they are read through server_stats(). */
typedef struct dp_server_stats {
    uint64_t connections_accepted;
    uint64_t connections_shed;  /* 503 + Retry-After: over proxy.maxConnections */
    uint64_t bad_requests;      /* 400: malformed, every smuggling form (connection closed) */
    uint64_t not_implemented;   /* 501: unknown transfer coding */
    uint64_t version_refused;   /* 505: HTTP major version other than 1 */
    uint64_t head_too_large;    /* 431: proxy.maxHeaderSize or proxy.maxHeaders */
    uint64_t body_too_large;    /* 413: proxy.maxBodySize, announced or mid-stream */
    uint64_t header_timeouts;   /* 408: request head not complete within proxy.timeout.header */
    uint64_t client_timeouts;   /* 408: client stalled sending its body or reading the response */
    uint64_t idle_timeouts;     /* keep-alive connection closed after proxy.timeout.idle */
    uint64_t connect_timeouts;  /* 504: upstream connect over proxy.timeout.connect */
    uint64_t upstream_timeouts; /* 504: upstream silent (response head or body) over its timeout */
    uint64_t request_timeouts;  /* 504: whole request over the route timeout */
} dp_server_stats_t;

/** Bind and start accepting on `base`. NULL with err when the address is bad or taken. */
dp_server_t *server_start(struct event_base *base, const dp_server_conf_t *conf, fg_error_t *err);

/** Stop accepting new connections; in-flight requests continue (graceful shutdown). */
void server_stop_accepting(dp_server_t *s);

/** The server's counters (valid until server_free). */
const dp_server_stats_t *server_stats(const dp_server_t *s);

/** Client connections currently open. */
size_t server_active_connections(const dp_server_t *s);

/** Close every connection and free the server. NULL is accepted. */
void server_free(dp_server_t *s);

#endif
