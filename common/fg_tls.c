/* fg_tls.c - mutual-TLS contexts for the snapshot protocol (see fg_tls.h).
 *
 * Errors name the file that failed and carry OpenSSL's reason, because "TLS setup failed"
 * helps nobody who has three PEM files in front of them. */
#include "fg_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* OpenSSL's reason for the oldest queued error (the root cause), and clear the queue. */
static void queue_reason(char *out, size_t out_len)
{
    unsigned long code = ERR_get_error();
    const char *why = code ? ERR_reason_error_string(code) : NULL;

    if (why)
        snprintf(out, out_len, "%s", why);
    else if (code)
        snprintf(out, out_len, "OpenSSL error %lx", code);
    else
        snprintf(out, out_len, "unknown OpenSSL error");
    ERR_clear_error();
}

static int load_error(fg_error_t *err, const char *field, const char *what, const char *file)
{
    char why[160];

    queue_reason(why, sizeof(why));
    return fg_error_setc(err, -EINVAL, field, "cannot load %s %s: %s", what, file, why);
}

SSL_CTX *fg_tls_mutual_ctx(fg_tls_role_t role, const char *ca_file, const char *cert_file,
                           const char *key_file, fg_error_t *err)
{
    SSL_CTX *ctx;
    int mode = SSL_VERIFY_PEER;

    if (!ca_file || !*ca_file || !cert_file || !*cert_file || !key_file || !*key_file) {
        fg_error_setc(err, -EINVAL, "tls", "mutual TLS needs a CA file, a certificate and "
                                           "a key");
        return NULL;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(role == FG_TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        fg_error_setc(err, -ENOMEM, "tls", "cannot create a TLS context");
        return NULL;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, FG_TLS_MIN_VERSION)) {
        fg_error_setc(err, -EINVAL, "tls", "cannot require TLS 1.2 or newer");
        goto fail_ctx;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        load_error(err, "tls-cert", "certificate", cert_file);
        goto fail_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        load_error(err, "tls-key", "private key", key_file);
        goto fail_ctx;
    }
    /* A key for another certificate is a mix-up of files, worth saying in those words. */
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        fg_error_setc(err, -EINVAL, "tls-key", "private key %s does not belong to the "
                      "certificate %s", key_file, cert_file);
        goto fail_ctx;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        load_error(err, "tls-ca", "CA file", ca_file);
        goto fail_ctx;
    }
    if (role == FG_TLS_SERVER) {
        /* Tell clients which CAs we accept, so one holding several certificates picks the
         * right one. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (!names) {
            load_error(err, "tls-ca", "CA names from", ca_file);
            goto fail_ctx;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        /* One long-lived session per data plane: resumption buys nothing, and without it
         * every connection is verified in full against the current CA file. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A peer that closes without close_notify (a data plane killed, a control plane
     * restarting) has closed the connection, not attacked it: every frame is
     * length-prefixed, so a truncation can never pass for a whole message. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, FG_TLS_VERIFY_DEPTH);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;

fail_ctx:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *fg_tls_client_ssl(SSL_CTX *ctx, const char *host, fg_error_t *err)
{
    unsigned char addr[sizeof(struct in6_addr)];
    SSL *ssl = SSL_new(ctx);
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;

    if (!ssl) {
        fg_error_setc(err, -ENOMEM, "tls", "cannot create a TLS connection");
        return NULL;
    }
    if (is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
            goto fail_name;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
            goto fail_name;
    }
    return ssl;

fail_name:
    ERR_clear_error();
    SSL_free(ssl);
    fg_error_setc(err, -EINVAL, "tls", "cannot check the server's certificate against "
                                       "\"%.200s\"", host);
    return NULL;
}

void fg_tls_describe_failure(const SSL *ssl, unsigned long code, char *out, size_t out_len)
{
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    const char *why;
    char reason[160];

    if (code) {
        why = ERR_reason_error_string(code);
        if (why)
            snprintf(reason, sizeof(reason), "%s", why);
        else
            snprintf(reason, sizeof(reason), "OpenSSL error %lx", code);
    } else {
        queue_reason(reason, sizeof(reason));
    }
    /* A refused certificate says more through its verify result than through the generic
     * "certificate verify failed". */
    if (verify != X509_V_OK)
        snprintf(out, out_len, "%s: %s", reason, X509_verify_cert_error_string(verify));
    else
        snprintf(out, out_len, "%s", reason);
}

void fg_tls_peer_subject(const SSL *ssl, char *out, size_t out_len)
{
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

    out[0] = '\0';
    if (!cert || out_len == 0)
        return;
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem)
        return;
    if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(mem, out, (int)out_len - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
}
