/* admin_api.h - the admin REST API of flexgate-ctl (libmicrohttpd).
 *
 * Serves /api/v1/... (bearer token required), /health/live and /health/ready (no token) and
 * the static UI under /ui/ on ONE internal polling thread, so every store call is made from
 * that thread and mutations are serialised without further locking. Each successful
 * mutation is one store transaction (one new config version, X-Config-Version in the
 * response) followed by publisher_notify. Error bodies are
 * {"error":{"code","message","field"}}.
 *
 * Security: the token is the only credential (a bearer header; no cookies, no CORS), compared
 * in constant time; wrong tokens are counted per client address (lockout.h) and logged with
 * the address, never the token. A non-loopback listen address needs TLS (tls_cert/tls_key,
 * served by libmicrohttpd with GnuTLS) or insecure_bind. */
#ifndef CTL_ADMIN_API_H
#define CTL_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fg_error.h"
#include "publisher.h"
#include "store.h"
#include "token.h"

#define ADMIN_DEFAULT_LISTEN "127.0.0.1:9080"
#define ADMIN_MAX_BODY (1u << 20)          /* request bodies above this: 413 */
#define ADMIN_CONNECTION_LIMIT 256u        /* concurrent admin connections */
#define ADMIN_CONNECTION_TIMEOUT_S 30u     /* idle admin connection closed after this */
#define ADMIN_CONNECTION_MEMORY (64u << 10) /* per-connection header memory */
#define ADMIN_TLS_FILE_MAX (1u << 20)       /* --admin-tls-cert/--admin-tls-key above this:
                                             * refused */
#define ADMIN_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" /* GnuTLS: 1.2+ */

typedef struct admin_api admin_api_t;

typedef struct admin_api_conf {
    const char *listen;     /* "HOST:PORT" or "[V6]:PORT"; port 0 picks a free one */
    store_t *store;         /* borrowed; used only from the API thread once started */
    publisher_t *publisher; /* borrowed; may be NULL (no data plane endpoints) */
    const token_t *token;   /* borrowed; must outlive the API */
    const char *ui_dir;     /* static UI directory, or NULL for none */
    size_t max_body;        /* 0 = ADMIN_MAX_BODY */
    bool insecure_bind;     /* serve a non-loopback address without TLS (a TLS-terminating
                             * proxy in front); otherwise that is refused */
    const char *tls_cert;   /* PEM certificate chain: serve HTTPS; NULL = plain HTTP */
    const char *tls_key;    /* PEM private key of tls_cert */
    uint32_t lockout_failures;  /* wrong tokens per address per window; 0 = LOCKOUT_MAX_FAILURES */
    uint32_t lockout_window_ms; /* that window; 0 = LOCKOUT_WINDOW_MS */
} admin_api_conf_t;

/** True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool admin_addr_is_loopback(const struct sockaddr *sa);

/** Check that `listen` may be served: it parses and resolves, and is loopback unless `tls`
 *  or `insecure_bind`. 0, or -EINVAL/-EACCES with err naming the flags that would allow it. */
int admin_api_check_listen(const char *listen, bool tls, bool insecure_bind, fg_error_t *err);

/** Bind `conf->listen` and start serving. 0 with *out owned by the caller, or -errno. */
int admin_api_start(const admin_api_conf_t *conf, admin_api_t **out, fg_error_t *err);

/** Stop accepting, finish the thread, free. Stop this before the publisher and the store.
 *  NULL is accepted. */
void admin_api_stop(admin_api_t *api);

#endif
