/* test_fg_tls.c - common/fg_tls: the mutual-TLS contexts both planes use.
 *
 * Certificates come from deploy/make-certs.sh, run once into a temporary directory (a CA,
 * ctl/dp certificates, "elsewhere" for a name mismatch, and a second CA). Handshakes run in
 * this thread over a socketpair, both ends non-blocking, stepping each side in turn until
 * both are done or one fails, with a bounded number of steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "fg_tls.h"

#define HANDSHAKE_MAX_STEPS 1000

static char dir[64];
static char other[96];

static const char *pem(const char *base, const char *name)
{
    static char buf[4][160];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "%s/%s", base, name);
    return out;
}

/* This file's path is absolute (CMake compiles by full path): the script is ../../deploy. */
static int make_certs(void **state)
{
    char script[512], cmd[2048];
    const char *self = __FILE__;
    const char *cut = strstr(self, "tests/unit/test_fg_tls.c");

    (void)state;
    if (!cut)
        return -1;
    snprintf(script, sizeof(script), "%.*sdeploy/make-certs.sh", (int)(cut - self), self);
    snprintf(dir, sizeof(dir), "/tmp/fg-test-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(other, sizeof(other), "%s/other", dir);
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s/pki' elsewhere >/dev/null && sh '%s' '%s' >/dev/null",
             script, dir, script, other);
    if (system(cmd) != 0)
        return -1;
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/pki");
    return 0;
}

static int remove_certs(void **state)
{
    char cmd[256];
    (void)state;
    /* dir is ".../pki": remove its parent. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(dir) - 4), dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct outcome {
    int server_rc, client_rc; /* 1 = done, -1 = failed */
    unsigned long server_err, client_err;
    SSL *server, *client;
} outcome_t;

static int step(SSL *ssl, unsigned long *err)
{
    int rc = SSL_do_handshake(ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    *err = ERR_peek_error();
    ERR_clear_error();
    return -1;
}

/* After both handshakes, one read on the server: with TLS 1.3 the server's verdict on the
 * client certificate reaches the client only then. */
static void handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx, const char *host,
                      outcome_t *o)
{
    int sv[2];
    fg_error_t err;

    memset(o, 0, sizeof(*o));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    o->server = SSL_new(server_ctx);
    o->client = fg_tls_client_ssl(client_ctx, host, &err);
    assert_non_null(o->server);
    assert_non_null(o->client);
    SSL_set_fd(o->server, sv[0]);
    SSL_set_fd(o->client, sv[1]);
    SSL_set_accept_state(o->server);
    SSL_set_connect_state(o->client);
    for (int i = 0; i < HANDSHAKE_MAX_STEPS && (o->server_rc == 0 || o->client_rc == 0); i++) {
        if (o->server_rc == 0)
            o->server_rc = step(o->server, &o->server_err);
        if (o->client_rc == 0)
            o->client_rc = step(o->client, &o->client_err);
        if (o->server_rc < 0 || o->client_rc < 0) {
            /* Let the other side read the alert. */
            if (o->server_rc == 0)
                o->server_rc = step(o->server, &o->server_err);
            if (o->client_rc == 0)
                o->client_rc = step(o->client, &o->client_err);
            break;
        }
    }
    close(sv[0]);
    close(sv[1]);
}

static void outcome_free(outcome_t *o)
{
    SSL_free(o->server);
    SSL_free(o->client);
}

static SSL_CTX *server_ctx(const char *cert)
{
    fg_error_t err;
    char crt[64], key[64];
    snprintf(crt, sizeof(crt), "%s.crt", cert);
    snprintf(key, sizeof(key), "%s.key", cert);
    SSL_CTX *ctx = fg_tls_mutual_ctx(FG_TLS_SERVER, pem(dir, "ca.crt"), pem(dir, crt),
                                     pem(dir, key), &err);
    assert_non_null(ctx);
    return ctx;
}

static SSL_CTX *client_ctx(const char *ca_dir, const char *cert_dir)
{
    fg_error_t err;
    SSL_CTX *ctx = fg_tls_mutual_ctx(FG_TLS_CLIENT, pem(ca_dir, "ca.crt"),
                                     pem(cert_dir, "dp.crt"), pem(cert_dir, "dp.key"), &err);
    assert_non_null(ctx);
    return ctx;
}

static void test_good_pair_gets_tls13_and_subject(void **state)
{
    SSL_CTX *s = server_ctx("ctl"), *c = client_ctx(dir, dir);
    outcome_t o;
    char subject[FG_TLS_SUBJECT_MAX];

    (void)state;
    handshake(s, c, "127.0.0.1", &o);
    assert_int_equal(o.server_rc, 1);
    assert_int_equal(o.client_rc, 1);
    assert_string_equal(SSL_get_version(o.server), "TLSv1.3");
    fg_tls_peer_subject(o.server, subject, sizeof(subject));
    assert_string_equal(subject, "CN=flexgate-dp");
    fg_tls_peer_subject(o.client, subject, sizeof(subject));
    assert_string_equal(subject, "CN=flexgate-ctl");
    outcome_free(&o);

    handshake(s, c, "localhost", &o); /* DNS SAN */
    assert_int_equal(o.client_rc, 1);
    outcome_free(&o);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

static void test_server_requires_client_certificate(void **state)
{
    SSL_CTX *s = server_ctx("ctl");
    SSL_CTX *c = SSL_CTX_new(TLS_client_method()); /* verifies the server, sends no cert */
    outcome_t o;
    char why[256];

    (void)state;
    assert_int_equal(SSL_CTX_load_verify_locations(c, pem(dir, "ca.crt"), NULL), 1);
    handshake(s, c, "127.0.0.1", &o);
    assert_int_equal(o.server_rc, -1);
    fg_tls_describe_failure(o.server, o.server_err, why, sizeof(why));
    assert_non_null(strstr(why, "peer did not return a certificate"));
    outcome_free(&o);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

static void test_client_certificate_from_other_ca_refused(void **state)
{
    SSL_CTX *s = server_ctx("ctl"), *c = client_ctx(dir, other);
    outcome_t o;
    char why[256];

    (void)state;
    handshake(s, c, "127.0.0.1", &o);
    assert_int_equal(o.server_rc, -1);
    fg_tls_describe_failure(o.server, o.server_err, why, sizeof(why));
    assert_non_null(strstr(why, "certificate verify failed"));
    assert_non_null(strstr(why, "unable to get local issuer certificate"));
    outcome_free(&o);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

static void test_client_checks_server_name_and_ca(void **state)
{
    SSL_CTX *s = server_ctx("elsewhere"), *c = client_ctx(dir, dir);
    SSL_CTX *s_ok = server_ctx("ctl"), *c_other_ca = client_ctx(other, dir);
    outcome_t o;
    char why[256];

    (void)state;
    handshake(s, c, "127.0.0.1", &o);
    assert_int_equal(o.client_rc, -1);
    fg_tls_describe_failure(o.client, o.client_err, why, sizeof(why));
    assert_non_null(strstr(why, "IP address mismatch"));
    outcome_free(&o);

    handshake(s, c, "localhost", &o);
    assert_int_equal(o.client_rc, -1);
    fg_tls_describe_failure(o.client, o.client_err, why, sizeof(why));
    assert_non_null(strstr(why, "hostname mismatch"));
    outcome_free(&o);

    handshake(s, c, "elsewhere", &o); /* the name it does carry */
    assert_int_equal(o.client_rc, 1);
    outcome_free(&o);

    handshake(s_ok, c_other_ca, "127.0.0.1", &o);
    assert_int_equal(o.client_rc, -1);
    fg_tls_describe_failure(o.client, o.client_err, why, sizeof(why));
    assert_non_null(strstr(why, "certificate verify failed"));
    outcome_free(&o);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    SSL_CTX_free(s_ok);
    SSL_CTX_free(c_other_ca);
}

static void test_bad_files_are_named(void **state)
{
    fg_error_t err;

    (void)state;
    assert_null(fg_tls_mutual_ctx(FG_TLS_SERVER, NULL, NULL, NULL, &err));
    assert_null(fg_tls_mutual_ctx(FG_TLS_SERVER, pem(dir, "ca.crt"), pem(dir, "nope.crt"),
                                  pem(dir, "ctl.key"), &err));
    assert_non_null(strstr(err.message, "nope.crt"));
    assert_string_equal(err.field, "tls-cert");
    assert_null(fg_tls_mutual_ctx(FG_TLS_SERVER, pem(dir, "ca.crt"), pem(dir, "ctl.crt"),
                                  pem(dir, "dp.key"), &err));
    assert_non_null(strstr(err.message, "does not belong"));
    assert_null(fg_tls_mutual_ctx(FG_TLS_CLIENT, pem(dir, "nope-ca.crt"), pem(dir, "dp.crt"),
                                  pem(dir, "dp.key"), &err));
    assert_non_null(strstr(err.message, "nope-ca.crt"));
    assert_int_equal(ERR_peek_error(), 0); /* nothing left on the thread's error queue */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_pair_gets_tls13_and_subject),
        cmocka_unit_test(test_server_requires_client_certificate),
        cmocka_unit_test(test_client_certificate_from_other_ca_refused),
        cmocka_unit_test(test_client_checks_server_name_and_ca),
        cmocka_unit_test(test_bad_files_are_named),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
