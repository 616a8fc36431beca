/* fg_tls.h - OpenSSL contexts for the snapshot protocol's mutual TLS (tcp:// transport).
 *
 * Both planes build their context here so the policy is written once: TLS 1.2 at least (1.3
 * preferred: OpenSSL negotiates the highest both sides speak), OpenSSL's default cipher
 * suites, our certificate and key (checked to belong together), and the peer's certificate
 * verified against a CA file we trust for this purpose only. The server *requires* a client
 * certificate; the client checks the server's name (a DNS SAN, or an IP SAN for an address
 * literal) against the host it dialled. Contexts are immutable once built and may be shared
 * by every connection of their thread. */
#ifndef FG_TLS_H
#define FG_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "fg_error.h"

#define FG_TLS_MIN_VERSION TLS1_2_VERSION /* oldest protocol accepted on either side */
#define FG_TLS_VERIFY_DEPTH 4             /* longest certificate chain accepted */
#define FG_TLS_SUBJECT_MAX 256            /* bytes of a certificate subject we keep */

typedef enum fg_tls_role {
    FG_TLS_SERVER = 0, /* the control plane's listener: requires a client certificate */
    FG_TLS_CLIENT = 1, /* a data plane: verifies the control plane's certificate and name */
} fg_tls_role_t;

/** A mutual-TLS context for `role`: our certificate chain (`cert_file`, PEM, leaf first) and
 *  `key_file`; peers must chain to a CA in `ca_file`. NULL with err naming the file at fault
 *  and OpenSSL's reason. The caller frees it with SSL_CTX_free. */
SSL_CTX *fg_tls_mutual_ctx(fg_tls_role_t role, const char *ca_file, const char *cert_file,
                           const char *key_file, fg_error_t *err);

/** A client connection object for `ctx` that accepts only a server certificate valid for
 *  `host` (a DNS name, or an IPv4/IPv6 literal checked against IP SANs); names also go out
 *  as SNI. NULL with err. The caller owns the result (SSL_free, or hand it to a bufferevent
 *  with BEV_OPT_CLOSE_ON_FREE). */
SSL *fg_tls_client_ssl(SSL_CTX *ctx, const char *host, fg_error_t *err);

/** Why a handshake or TLS session failed, for logs: the certificate verification result
 *  when a certificate was refused ("certificate verify failed: hostname mismatch"), else
 *  OpenSSL's reason for `code` (an ERR_get_error value, e.g. from
 *  bufferevent_get_openssl_error: "peer did not return a certificate"). `ssl` may be NULL,
 *  `code` may be 0 (then the thread's error queue is read and cleared). */
void fg_tls_describe_failure(const SSL *ssl, unsigned long code, char *out, size_t out_len);

/** The peer certificate's subject as a one-line string ("CN=flexgate-dp"), or "" when
 *  there is none. */
void fg_tls_peer_subject(const SSL *ssl, char *out, size_t out_len);

#endif
