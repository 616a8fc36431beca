/* server.h - the client-facing HTTP listener of the data plane.
 *
 * The server accepts client connections on one address and runs the proxy state machine for
 * each request on them, reading the current generation for routing. It lives on the process's
 * one event_base and never blocks it. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stddef.h>

#include <event2/event.h>

#include "fg_error.h"

struct tls_server;

typedef struct dp_server_conf {
    const char *listen; /* "127.0.0.1:8080", "[::1]:8080" or "0.0.0.0:8080" */
    const char *tls_listen;     /* a second, TLS-terminating listener, or NULL */
    struct tls_server *tls;     /* its certificates (tls.h); borrowed, must outlive the server */
} dp_server_conf_t;

typedef struct dp_server dp_server_t;

/** Bind and start accepting on `base`. NULL with err when the address is bad or taken. */
dp_server_t *server_start(struct event_base *base, const dp_server_conf_t *conf, fg_error_t *err);

/** Stop accepting new connections; in-flight requests continue (graceful shutdown). */
void server_stop_accepting(dp_server_t *s);

/** Client connections currently open. */
size_t server_active_connections(const dp_server_t *s);

/** Close every connection and free the server. NULL is accepted. */
void server_free(dp_server_t *s);

#endif
