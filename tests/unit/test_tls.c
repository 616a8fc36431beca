/* test_tls.c - dataplane/tls.c: listener contexts and SNI choice, upstream client contexts
 * (cache, CA loading, hostname and IP verification, client certificates, sessions).
 *
 * Includes tls.c to reach the listener's contexts and client_ssl_new(). Certificates are made
 * here with OpenSSL (a CA, and leaves with chosen SANs) in a temporary directory, and
 * handshakes run in memory over BIO pairs: no sockets, no event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "dataplane/tls.c"

static char dir[] = "/tmp/fg-test-tls-XXXXXX";
static EVP_PKEY *ca_key;
static X509 *ca_cert;

static char *path_of(const char *name)
{
    static char buf[8][160];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, bool is_ca,
                       const char *eku)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, is_ca ? X509_get_subject_name(x) : X509_get_subject_name(ca_cert));
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, is_ca ? x : ca_cert, x, NULL, NULL, 0);
    const char *exts[][2] = {{"basicConstraints", is_ca ? "critical,CA:TRUE" : "CA:FALSE"},
                             {"subjectAltName", san},
                             {"extendedKeyUsage", eku}};
    for (size_t i = 0; i < 3; i++) {
        if (!exts[i][1])
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, is_ca ? key : ca_key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *key)
{
    char file[64];
    snprintf(file, sizeof file, "%s.crt", name);
    FILE *f = fopen(path_of(file), "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(file, sizeof file, "%s.key", name);
    f = fopen(path_of(file), "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void issue(const char *name, const char *san, const char *eku)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = make_cert(k, name, san, false, eku);
    write_pem(name, x, k);
    X509_free(x);
    EVP_PKEY_free(k);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    ca_key = EVP_EC_gen("P-256");
    ca_cert = make_cert(ca_key, "test CA", NULL, true, NULL);
    write_pem("ca", ca_cert, ca_key);
    issue("localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    issue("alt", "DNS:alt.test", "serverAuth");
    issue("wild", "DNS:*.wild.test", "serverAuth");
    issue("client", "DNS:flexgate-dp", "clientAuth");
    /* A second, unrelated CA. */
    EVP_PKEY *k2 = EVP_EC_gen("P-256");
    X509 *c2 = make_cert(k2, "other CA", NULL, true, NULL);
    write_pem("other-ca", c2, k2);
    X509_free(c2);
    EVP_PKEY_free(k2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tls_client_shutdown();
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Drive both ends over a BIO pair until neither makes progress. 1 = handshake done. */
static int handshake(SSL *client, SSL *server)
{
    BIO *cb, *sb;
    BIO_new_bio_pair(&cb, 0, &sb, 0);
    SSL_set_bio(client, cb, cb);
    SSL_set_bio(server, sb, sb);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    for (int i = 0; i < 50; i++) {
        int rc = SSL_do_handshake(client), rs = SSL_do_handshake(server);
        if (rc == 1 && rs == 1)
            return 1;
        int ec = SSL_get_error(client, rc), es = SSL_get_error(server, rs);
        if ((rc != 1 && ec != SSL_ERROR_WANT_READ && ec != SSL_ERROR_WANT_WRITE) ||
            (rs != 1 && es != SSL_ERROR_WANT_READ && es != SSL_ERROR_WANT_WRITE)) {
            ERR_clear_error();
            return 0;
        }
    }
    return 0;
}

static tls_server_t *listener(size_t n, const char *const *names)
{
    const char *certs[8], *keys[8];
    char cbuf[8][160], kbuf[8][160];
    fg_error_t err;
    for (size_t i = 0; i < n; i++) {
        snprintf(cbuf[i], sizeof cbuf[i], "%s/%s.crt", dir, names[i]);
        snprintf(kbuf[i], sizeof kbuf[i], "%s/%s.key", dir, names[i]);
        certs[i] = cbuf[i];
        keys[i] = kbuf[i];
    }
    tls_server_t *ts = tls_server_new(certs, keys, n, &err);
    if (!ts)
        fail_msg("tls_server_new: %s", err.message);
    return ts;
}

/* The CN of the certificate the listener presents to a client asking for `sni`. */
static void expect_cert_for(tls_server_t *ts, const char *sni, const char *cn)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *c = SSL_new(cctx), *s = SSL_new(ts->ctx[0]);
    if (sni)
        SSL_set_tlsext_host_name(c, sni);
    assert_int_equal(handshake(c, s), 1);
    X509 *peer = SSL_get1_peer_certificate(c);
    char got[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, got, sizeof got);
    if (strcmp(got, cn) != 0)
        fail_msg("SNI %s: got certificate %s, want %s", sni ? sni : "(none)", got, cn);
    X509_free(peer);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
}

static void test_sni_picks_certificate(void **state)
{
    (void)state;
    const char *names[] = {"localhost", "alt", "wild"};
    tls_server_t *ts = listener(3, names);
    expect_cert_for(ts, "alt.test", "alt");
    expect_cert_for(ts, "ALT.TEST", "alt"); /* DNS names compare case-insensitively */
    expect_cert_for(ts, "a.wild.test", "wild");
    expect_cert_for(ts, "localhost", "localhost");
    expect_cert_for(ts, "unknown.test", "localhost"); /* the default: the first */
    expect_cert_for(ts, "b.a.wild.test", "localhost"); /* a wildcard is one label */
    expect_cert_for(ts, NULL, "localhost");
    tls_server_free(ts);
}

static void test_listener_refuses_old_protocols(void **state)
{
    (void)state;
    const char *names[] = {"localhost"};
    tls_server_t *ts = listener(1, names);
    assert_int_equal(SSL_CTX_get_min_proto_version(ts->ctx[0]), TLS1_2_VERSION);
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(cctx, 0);
    SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
    SSL *c = SSL_new(cctx), *s = SSL_new(ts->ctx[0]);
    assert_int_equal(handshake(c, s), 0);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    tls_server_free(ts);
}

static void test_listener_bad_files(void **state)
{
    (void)state;
    fg_error_t err;
    const char *certs[] = {path_of("nope.crt")}, *keys[] = {path_of("localhost.key")};
    assert_null(tls_server_new(certs, keys, 1, &err));
    assert_non_null(strstr(err.message, "nope.crt"));
    const char *certs2[] = {path_of("localhost.crt")}, *keys2[] = {path_of("alt.key")};
    assert_null(tls_server_new(certs2, keys2, 1, &err));
    assert_non_null(strstr(err.message, "alt.key"));
    assert_null(tls_server_new(certs2, keys2, 0, &err));
    assert_null(tls_server_new(certs2, keys2, TLS_MAX_CERTS + 1, &err));
}

static fg_upstream_t upstream(const char *ca, bool verify, const char *cert, const char *key)
{
    fg_upstream_t u;
    memset(&u, 0, sizeof u);
    u.name = "u";
    u.ca_file = ca;
    u.tls_verify = verify;
    u.client_cert = cert;
    u.client_key = key;
    return u;
}

static void test_client_ctx_cache(void **state)
{
    (void)state;
    fg_error_t err;
    fg_upstream_t a = upstream(path_of("ca.crt"), true, NULL, NULL);
    fg_upstream_t a2 = upstream(path_of("ca.crt"), true, NULL, NULL);
    fg_upstream_t b = upstream(path_of("ca.crt"), false, NULL, NULL);
    fg_upstream_t c = upstream(path_of("ca.crt"), true, path_of("client.crt"),
                               path_of("client.key"));
    SSL_CTX *ca, *ca2, *cb, *cc;
    assert_int_equal(tls_client_ctx(&a, &ca, &err), 0);
    assert_non_null(ca);
    assert_int_equal(tls_client_ctx(&a2, &ca2, &err), 0);
    assert_ptr_equal(ca2, ca); /* equal settings, other strings */
    assert_int_equal(tls_client_ctx(&b, &cb, &err), 0);
    assert_int_equal(tls_client_ctx(&c, &cc, &err), 0);
    assert_non_null(cb);
    assert_non_null(cc);
    assert_ptr_not_equal(cb, ca);
    assert_ptr_not_equal(cc, ca);
    assert_int_equal(SSL_CTX_get_min_proto_version(ca), TLS1_2_VERSION);

    SSL_CTX *none;
    fg_upstream_t missing = upstream(path_of("none.pem"), true, NULL, NULL);
    assert_int_equal(tls_client_ctx(&missing, &none, &err), -EINVAL);
    assert_null(none);
    assert_non_null(strstr(err.message, "cannot load CA file"));
    /* The failure is remembered: same error, not rebuilt (the file appearing now changes
     * nothing until TLS_CLIENT_RETRY_MS has passed). */
    fg_error_clear(&err);
    assert_int_equal(symlink(path_of("ca.crt"), path_of("none.pem")), 0);
    assert_int_equal(tls_client_ctx(&missing, &none, &err), -EAGAIN);
    assert_null(none);
    assert_non_null(strstr(err.message, "cannot load CA file"));
    fg_upstream_t badkey = upstream(NULL, true, path_of("client.crt"), path_of("alt.key"));
    assert_int_equal(tls_client_ctx(&badkey, &none, &err), -EINVAL);
    assert_non_null(strstr(err.message, "alt.key"));
}

/* Handshake a client for `host` (with upstream settings `u`) against a listener serving
 * `cert_name`; returns the client's verify result, or -1 when the handshake failed. */
static long connect_to(fg_upstream_t *u, const char *host, const char *cert_name,
                       SSL_CTX *require_client_ca)
{
    fg_error_t err;
    const char *names[] = {cert_name};
    tls_server_t *ts = listener(1, names);
    SSL_CTX *cctx;
    assert_int_equal(tls_client_ctx(u, &cctx, &err), 0);
    SSL *c = client_ssl_new(cctx, host, NULL), *s = SSL_new(ts->ctx[0]);
    if (require_client_ca) {
        SSL_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        X509_STORE *store = SSL_CTX_get_cert_store(require_client_ca);
        SSL_set1_verify_cert_store(s, store);
    }
    int ok = handshake(c, s);
    long vr = SSL_get_verify_result(c);
    /* TLS 1.3: the server's verdict on a client certificate comes after the client's
     * handshake is done; the server side tells. */
    if (ok && require_client_ca && SSL_get_verify_result(s) != X509_V_OK)
        ok = 0;
    if (ok && require_client_ca && !SSL_get0_peer_certificate(s))
        ok = 0;
    SSL_free(c);
    SSL_free(s);
    tls_server_free(ts);
    return ok ? vr : (vr != X509_V_OK ? vr : -1);
}

static void test_client_verification(void **state)
{
    (void)state;
    fg_upstream_t good = upstream(path_of("ca.crt"), true, NULL, NULL);
    fg_upstream_t other = upstream(path_of("other-ca.crt"), true, NULL, NULL);
    fg_upstream_t off = upstream(path_of("other-ca.crt"), false, NULL, NULL);
    assert_int_equal(connect_to(&good, "localhost", "localhost", NULL), X509_V_OK);
    assert_int_equal(connect_to(&good, "127.0.0.1", "localhost", NULL), X509_V_OK);
    assert_int_equal(connect_to(&good, "x.wild.test", "wild", NULL), X509_V_OK);
    assert_int_equal(connect_to(&good, "alt.test", "localhost", NULL),
                     X509_V_ERR_HOSTNAME_MISMATCH);
    assert_int_equal(connect_to(&good, "127.0.0.2", "localhost", NULL),
                     X509_V_ERR_IP_ADDRESS_MISMATCH);
    assert_int_equal(connect_to(&other, "localhost", "localhost", NULL),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* tlsVerify false: any certificate is accepted (the result records why it would not). */
    assert_int_not_equal(connect_to(&off, "localhost", "localhost", NULL), -1);
}

static void test_client_certificate(void **state)
{
    (void)state;
    fg_error_t err;
    fg_upstream_t trust = upstream(path_of("ca.crt"), true, NULL, NULL);
    SSL_CTX *trust_ctx; /* its store holds the test CA */
    assert_int_equal(tls_client_ctx(&trust, &trust_ctx, &err), 0);
    fg_upstream_t with = upstream(path_of("ca.crt"), true, path_of("client.crt"),
                                  path_of("client.key"));
    fg_upstream_t without = upstream(path_of("ca.crt"), true, NULL, NULL);
    assert_int_equal(connect_to(&with, "localhost", "localhost", trust_ctx), X509_V_OK);
    assert_int_equal(connect_to(&without, "localhost", "localhost", trust_ctx), -1);
}

static void test_session_slot(void **state)
{
    (void)state;
    fg_error_t err;
    fg_upstream_t u = upstream(path_of("ca.crt"), true, NULL, NULL);
    const char *names[] = {"localhost"};
    tls_server_t *ts = listener(1, names);
    SSL_CTX *cctx;
    assert_int_equal(tls_client_ctx(&u, &cctx, &err), 0);
    SSL_SESSION *slot = NULL;
    for (int round = 0; round < 2; round++) {
        SSL *c = client_ssl_new(cctx, "localhost", &slot), *s = SSL_new(ts->ctx[0]);
        assert_int_equal(handshake(c, s), 1);
        /* TLS 1.3 tickets are post-handshake messages: one read on the client takes them. */
        char b;
        SSL_write(s, "x", 1);
        assert_int_equal(SSL_read(c, &b, 1), 1);
        assert_non_null(slot);
        assert_int_equal(SSL_session_reused(c), round == 1);
        /* A client SSL freed without close_notify marks its session not resumable: the data
         * plane sends one before every free (tls_bev_close_notify), and so does this. */
        SSL_shutdown(c);
        SSL_free(c);
        SSL_free(s);
    }
    SSL_SESSION_free(slot);
    tls_server_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_picks_certificate),
        cmocka_unit_test(test_listener_refuses_old_protocols),
        cmocka_unit_test(test_listener_bad_files),
        cmocka_unit_test(test_client_ctx_cache),
        cmocka_unit_test(test_client_verification),
        cmocka_unit_test(test_client_certificate),
        cmocka_unit_test(test_session_slot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
