/* tls.h - OpenSSL contexts of the data plane: the TLS listener's certificates (chosen by SNI)
 * and the client contexts used to reach https upstreams.
 *
 * Both sides speak TLS 1.2 and 1.3 only, with forward-secret AEAD cipher suites for 1.2
 * (TLS_CIPHERS_TLS12). Connections are libevent bufferevent_openssl socket bufferevents: the
 * rest of the data plane reads and writes their evbuffers as with plain sockets, except that
 * writing must be left to libevent (see tls_bev_is_tls()).
 *
 * Ownership: a tls_server_t belongs to its creator (tls_server_free()); client contexts are
 * cached process-wide by their settings, live until tls_client_shutdown(), and are borrowed by
 * the upstream pools that use them. */
#ifndef DP_TLS_H
#define DP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "fg_config.h"
#include "fg_error.h"

#define TLS_MAX_CERTS 64 /* --tls-cert/--tls-key pairs on one listener */
/* Mozilla "intermediate": ECDHE key exchange, AEAD ciphers. TLS 1.3 suites are OpenSSL's. */
#define TLS_CIPHERS_TLS12                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CLIENT_CTX_MAX 256 /* distinct (caFile, tlsVerify, clientCert, clientKey) sets */
#define TLS_CLIENT_RETRY_MS 5000u /* a context that failed to build is retried after this */

typedef struct tls_server tls_server_t;

/** Load `n` certificate chain / private key PEM file pairs (1..TLS_MAX_CERTS). The first is
 *  the default; a ClientHello whose server name matches another's SAN (or CN) gets that one.
 *  NULL with err naming the file that failed. */
tls_server_t *tls_server_new(const char *const *certs, const char *const *keys, size_t n,
                             fg_error_t *err);

/** Free the contexts; connections already accepted keep their own references. NULL is ok. */
void tls_server_free(tls_server_t *ts);

/** A server-side TLS bufferevent around accepted socket `fd` (handshake starts at once; the
 *  event callback gets BEV_EVENT_CONNECTED when it completes). It owns and closes `fd`. NULL
 *  on ENOMEM, and `fd` is then still the caller's. */
struct bufferevent *tls_server_bev(tls_server_t *ts, struct event_base *base, int fd);

/** True when `bev` is a TLS bufferevent. Its output must then be written by libevent (enable
 *  EV_WRITE), never with a direct write(2) on its descriptor, which would bypass encryption. */
bool tls_bev_is_tls(struct bufferevent *bev);

/** The client context for https targets of upstream `u` (its caFile, tlsVerify, clientCert,
 *  clientKey), created on first use and cached in *out. 0; -EINVAL (or -ENOMEM, -ENOSPC) with
 *  err when it cannot be built (a file cannot be loaded); -EAGAIN with the same err while
 *  that failure is younger than TLS_CLIENT_RETRY_MS, so files are not re-read, nor the
 *  failure logged, on every request. */
int tls_client_ctx(const fg_upstream_t *u, SSL_CTX **out, fg_error_t *err);

/** A client TLS bufferevent that will connect to `host` (SNI unless `host` is an IP literal;
 *  with verification on, the certificate must match `host`). Connect it with
 *  bufferevent_socket_connect(); BEV_EVENT_CONNECTED means the handshake is done. NULL on
 *  ENOMEM. `session` (NULL: none) is the caller's slot for resumption: the handshake offers
 *  the session in it, and a new session the server issues replaces it (the slot owns one
 *  reference; free it with SSL_SESSION_free). The slot must outlive the bufferevent. */
struct bufferevent *tls_client_bev(SSL_CTX *ctx, struct event_base *base, const char *host,
                                   SSL_SESSION **session);

/** Before freeing a TLS bufferevent: send close_notify if the handshake completed, so the
 *  peer can tell our close from a truncation (and, on a client, so OpenSSL keeps the session
 *  resumable: an SSL freed without it marks its session unusable). Best effort, never
 *  blocks; a no-op for plain bufferevents. */
void tls_bev_close_notify(struct bufferevent *bev);

/** Why the handshake of a client bufferevent failed, for the log ("certificate verify failed:
 *  unable to get local issuer certificate"). Static or thread-local storage. */
const char *tls_bev_error(struct bufferevent *bev);

/** Free every cached client context (process exit). */
void tls_client_shutdown(void);

#endif
