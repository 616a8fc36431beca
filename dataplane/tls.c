/* tls.c - SSL_CTX building for the TLS listener (with SNI) and for https upstreams.
 *
 * Listener: one SSL_CTX per certificate, all with the same protocol settings. The first
 * context is the one every connection starts with; its servername callback looks the
 * ClientHello's name up in the certificates (X509_check_host: SAN DNS names, wildcards, and the
 * CN only when there is no SAN) and switches the connection to the first that matches. No name
 * or no match keeps the default, as nginx does with its default_server.
 *
 * Upstreams: a client SSL_CTX per distinct (tlsVerify, caFile, clientCert, clientKey), built
 * the first time a pool needs it and kept for the process's life: a config swap that keeps the
 * same settings reuses it, and the number of distinct settings is bounded by the configs seen
 * (TLS_CLIENT_CTX_MAX). Loading reads files synchronously, once per distinct setting; the
 * cost is a few milliseconds on the first request to such an upstream. A changed file on disk
 * with an unchanged path is not re-read until the process restarts (documented). */
#include "tls.h"

#include "fg_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

struct tls_server {
    SSL_CTX *ctx[TLS_MAX_CERTS]; /* [0] is the default */
    size_t n;
};

typedef struct client_ctx {
    struct client_ctx *next;
    SSL_CTX *ctx;            /* NULL while the last build failed */
    uint64_t failed_at_ms;   /* when it failed (fg_now_ms) */
    char error[FG_ERROR_MESSAGE_MAX];
    bool verify;
    char *ca_file, *cert, *key; /* NULL when unset */
} client_ctx_t;

/* SSL ex_data index of a client connection's session slot; set once, read-only after. */
static int session_slot_index = -1;

/* The cache of client contexts: process-wide, like the upstream pools that borrow them. */
static struct {
    client_ctx_t *head;
    size_t n;
} clients;

/* The first queued OpenSSL error as text, cleared from the queue. */
static void ssl_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

static int set_protocol(SSL_CTX *ctx, fg_error_t *err)
{
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12)) {
        char e[256];
        ssl_error_text(e, sizeof e);
        fg_error_setc(err, -EINVAL, "tls", "cannot set TLS protocol options: %s", e);
        return -EINVAL;
    }
    /* Renegotiation is an old DoS lever and useless to a proxy; compression leaks (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, const char *field,
                     fg_error_t *err)
{
    char e[256];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error_text(e, sizeof e);
        return fg_error_setc(err, -EINVAL, field, "cannot load certificate %s: %s", cert, e);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error_text(e, sizeof e);
        return fg_error_setc(err, -EINVAL, field, "cannot load private key %s: %s", key, e);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error_text(e, sizeof e);
        return fg_error_setc(err, -EINVAL, field, "key %s does not match certificate %s: %s",
                             key, cert, e);
    }
    return 0;
}

/* ---- listener -------------------------------------------------------------------------- */

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    tls_server_t *ts = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)alert;
    if (!name || !*name)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 1; i < ts->n; i++) {
        X509 *x = SSL_CTX_get0_certificate(ts->ctx[i]);
        if (x && X509_check_host(x, name, 0, 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, ts->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK; /* no match: the default certificate */
}

tls_server_t *tls_server_new(const char *const *certs, const char *const *keys, size_t n,
                             fg_error_t *err)
{
    if (n == 0 || n > TLS_MAX_CERTS) {
        fg_error_setc(err, -EINVAL, "tls-cert", "give 1..%d --tls-cert/--tls-key pairs",
                      TLS_MAX_CERTS);
        return NULL;
    }
    tls_server_t *ts = calloc(1, sizeof *ts);
    if (!ts) {
        fg_error_setc(err, -ENOMEM, "", "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
            fg_error_setc(err, -ENOMEM, "", "out of memory");
            goto fail;
        }
        ts->ctx[ts->n++] = ctx;
        if (set_protocol(ctx, err) < 0 || load_pair(ctx, certs[i], keys[i], "tls-cert", err) < 0)
            goto fail;
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        /* One id context for all, so a session resumed after an SNI switch is accepted. */
        static const unsigned char sid[] = "flexgate-dp";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
        SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(ctx, ts);
    }
    return ts;
fail:
    tls_server_free(ts);
    return NULL;
}

void tls_server_free(tls_server_t *ts)
{
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n; i++)
        SSL_CTX_free(ts->ctx[i]); /* refcounted: live connections keep theirs */
    free(ts);
}

struct bufferevent *tls_server_bev(tls_server_t *ts, struct event_base *base, int fd)
{
    SSL *ssl = SSL_new(ts->ctx[0]);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* A client that closes without close_notify is an EOF, as on a plain socket: HTTP has its
     * own framing, so truncation cannot pass for a complete message. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

bool tls_bev_is_tls(struct bufferevent *bev)
{
    return bufferevent_openssl_get_ssl(bev) != NULL;
}

void tls_bev_close_notify(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl); /* one alert record on a non-blocking socket */
    ERR_clear_error();
}

/* ---- upstream client contexts ---------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void client_ctx_free(client_ctx_t *c)
{
    SSL_CTX_free(c->ctx);
    free(c->ca_file);
    free(c->cert);
    free(c->key);
    free(c);
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* A session (TLS 1.2 at the handshake's end, 1.3 on each NewSessionTicket) for the pool's
 * slot. Returning 1 keeps the reference OpenSSL gave us. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_ex_data(ssl, session_slot_index);
    if (!slot)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

static SSL_CTX *client_ctx_build(const fg_upstream_t *u, fg_error_t *err)
{
    char e[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fg_error_setc(err, -ENOMEM, "", "out of memory");
        return NULL;
    }
    if (set_protocol(ctx, err) < 0)
        goto fail;
    if (u->tls_verify) {
        int ok = u->ca_file ? SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            ssl_error_text(e, sizeof e);
            fg_error_setc(err, -EINVAL, "caFile", "cannot load CA file %s: %s",
                          u->ca_file ? u->ca_file : "(system)", e);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (u->client_cert && u->client_key &&
        load_pair(ctx, u->client_cert, u->client_key, "clientCert", err) < 0)
        goto fail;
    /* Resumption: sessions are kept per pool (target + context), not in OpenSSL's cache,
     * which a client context does not look up by itself. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Build (again) the context of cache entry `c`. 0, or a negative errno with err set. */
static int client_ctx_try(client_ctx_t *c, const fg_upstream_t *u, fg_error_t *err)
{
    c->ctx = client_ctx_build(u, err);
    if (c->ctx)
        return 0;
    c->failed_at_ms = fg_now_ms();
    snprintf(c->error, sizeof c->error, "%s", err->message);
    return -EINVAL;
}

int tls_client_ctx(const fg_upstream_t *u, SSL_CTX **out, fg_error_t *err)
{
    *out = NULL;
    if (session_slot_index < 0)
        session_slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    for (client_ctx_t *c = clients.head; c; c = c->next) {
        if (c->verify != u->tls_verify || !str_eq(c->ca_file, u->ca_file) ||
            !str_eq(c->cert, u->client_cert) || !str_eq(c->key, u->client_key))
            continue;
        if (!c->ctx && fg_now_ms() - c->failed_at_ms < TLS_CLIENT_RETRY_MS) {
            fg_error_set(err, "caFile", "%s", c->error);
            return -EAGAIN;
        }
        if (!c->ctx && client_ctx_try(c, u, err) < 0)
            return -EINVAL;
        *out = c->ctx;
        return 0;
    }
    if (clients.n >= TLS_CLIENT_CTX_MAX)
        return fg_error_setc(err, -ENOSPC, "caFile", "more than %d distinct upstream TLS settings",
                             TLS_CLIENT_CTX_MAX);
    client_ctx_t *c = calloc(1, sizeof *c);
    bool oom = !c;
    if (c) {
        c->verify = u->tls_verify;
        c->ca_file = dup_or_null(u->ca_file, &oom);
        c->cert = dup_or_null(u->client_cert, &oom);
        c->key = dup_or_null(u->client_key, &oom);
    }
    if (oom) {
        if (c)
            client_ctx_free(c);
        return fg_error_setc(err, -ENOMEM, "", "out of memory");
    }
    /* Kept even when the build fails: the failure is remembered for TLS_CLIENT_RETRY_MS. */
    c->next = clients.head;
    clients.head = c;
    clients.n++;
    if (client_ctx_try(c, u, err) < 0)
        return -EINVAL;
    *out = c->ctx;
    return 0;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* A client SSL for `host`: SNI, the identity to verify, the session slot. NULL on ENOMEM. */
static SSL *client_ssl_new(SSL_CTX *ctx, const char *host, SSL_SESSION **session)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (session && session_slot_index >= 0) {
        SSL_set_ex_data(ssl, session_slot_index, session);
        if (*session)
            SSL_set_session(ssl, *session); /* a refused offer is a full handshake, no error */
    }
    bool ip = is_ip_literal(host);
    int ok = 1;
    /* RFC 6066: SNI carries DNS names only. The identity check is done by OpenSSL during
     * the handshake: SAN iPAddress for literals, SAN DNS names (wildcards allowed) else. */
    if (!ip)
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    else
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return ssl;
}

struct bufferevent *tls_client_bev(SSL_CTX *ctx, struct event_base *base, const char *host,
                                   SSL_SESSION **session)
{
    SSL *ssl = client_ssl_new(ctx, host, session);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

const char *tls_bev_error(struct bufferevent *bev)
{
    static _Thread_local char buf[320];
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(bev);
    char lib[256] = "";
    if (e)
        ERR_error_string_n(e, lib, sizeof lib);
    while (bufferevent_get_openssl_error(bev))
        ;
    if (vr != X509_V_OK)
        snprintf(buf, sizeof buf, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (e)
        snprintf(buf, sizeof buf, "%s", lib);
    else
        snprintf(buf, sizeof buf, "connection closed during the TLS handshake");
    return buf;
}

void tls_client_shutdown(void)
{
    while (clients.head) {
        client_ctx_t *c = clients.head;
        clients.head = c->next;
        client_ctx_free(c);
    }
    clients.n = 0;
}
