/* test_auth.c - API-key authentication (dataplane/auth.c): the digest table, the constant-time
 * lookup, scopes, expiry and disabled keys, credential headers (X-API-Key, Bearer), the
 * identity header, and HMAC-SHA256 signed requests (signature, skew, replay, body digest).
 *
 * Includes auth.c for the HMAC primitive (checked against RFC 4231). Requests are real: raw
 * bytes through the real HTTP/1 parser, checked against a generation built from JSON by the
 * shared decoder, so what auth_check sees is what the data plane sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/auth.c"
#include "generation.h"

/* sha256("alpha-secret"), "beta-secret", "gamma-secret", "sign-secret" are computed by the
 * decoder: the config gives plaintext keys, which it hashes (as the seed's YAML does). */
static const char *const config_json =
    "{\"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:9\"}],"
    "\"routes\":["
    "{\"id\":\"open\",\"path\":\"/open\",\"upstream\":\"u\"},"
    "{\"id\":\"opt\",\"path\":\"/opt\",\"upstream\":\"u\",\"auth\":\"optional\"},"
    "{\"id\":\"req\",\"path\":\"/req\",\"upstream\":\"u\",\"auth\":\"required\"},"
    "{\"id\":\"other\",\"path\":\"/other\",\"upstream\":\"u\",\"auth\":\"required\"}],"
    "\"security\":{\"auth\":{\"bearer\":true,\"hmacClockSkewMs\":60000,\"keys\":["
    "{\"name\":\"alpha\",\"key\":\"alpha-secret\"},"
    "{\"name\":\"beta\",\"key\":\"beta-secret\",\"routes\":[\"req\",\"nope\"]},"
    "{\"name\":\"gamma\",\"key\":\"gamma-secret\",\"disabled\":true},"
    "{\"name\":\"delta\",\"key\":\"delta-secret\",\"expiresAt\":1000},"
    "{\"name\":\"Sign Key\",\"key\":\"sign-secret\",\"hmac\":true}]}}}";

enum { ROUTE_OPEN = 0, ROUTE_OPT = 1, ROUTE_REQ = 2, ROUTE_OTHER = 3 };

typedef struct fixture {
    dp_generation_t *gen;
    dp_conn_t conn;
    dp_request_t *r;
    char raw[2048]; /* the request: a head parsed in one piece stays where it was read */
} fixture_t;

static int on_head(void *ctx, http1_head_t *head)
{
    (void)ctx;
    (void)head;
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t cbs = {.on_head = on_head};

static dp_generation_t *make_generation(const char *json)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    if (fg_config_parse(json, strlen(json), &cfg, &err) < 0)
        fail_msg("config: %s: %s", err.field, err.message);
    dp_generation_t *g = generation_create(cfg, 1, NULL, &err);
    if (!g)
        fail_msg("generation_create: %s", err.message);
    return g;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->gen = make_generation(config_json);
    f->conn.arena = fg_arena_new(4096);
    f->r = &f->conn.req;
    *state = f;
    auth_replay_reset();
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    generation_release(f->gen);
    fg_arena_free(f->conn.arena);
    free(f);
    auth_replay_reset();
    return 0;
}

/* Parse `raw` (a Host header is added after its request line) as a request on route `route`
 * and run auth_check on it. */
static int check(fixture_t *f, int route, const char *in)
{
    char *raw = f->raw;
    const char *eol = strstr(in, "\r\n");
    assert_non_null(eol);
    snprintf(raw, sizeof f->raw, "%.*s\r\nHost: x%s", (int)(eol - in), in, eol);
    fg_arena_reset(f->conn.arena);
    http1_parser_init(&f->conn.parser, HTTP_REQUEST, &cbs, NULL, f->conn.arena);
    size_t used = 0;
    http1_result_t rc = http1_parser_execute(&f->conn.parser, raw, strlen(raw), &used);
    if (rc != HTTP1_PAUSED)
        fail_msg("parse: %d %d %s: %s", rc, f->conn.parser.error_status,
                 f->conn.parser.error_reason ? f->conn.parser.error_reason : "", raw);
    memset(f->r, 0, sizeof *f->r);
    f->r->conn = &f->conn;
    f->r->gen = f->gen;
    f->r->head = &f->conn.parser.head;
    f->r->route = &f->gen->config->routes[route];
    return auth_check(f->r);
}

/* Was the header `name` of the last request dropped from what goes upstream? */
static bool dropped(fixture_t *f, const char *name)
{
    const http1_head_t *h = f->r->head;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        if (http1_caseeq(HTTP1_NAME(h, hd), hd->name_len, name, strlen(name)))
            return (hd->flags & HTTP1_HF_REQ_REWRITE) != 0;
    }
    fail_msg("no header %s", name);
    return false;
}

static void digest_of(const char *key, unsigned char out[FG_SHA256_LEN])
{
    sha256_once(key, strlen(key), out);
}

/* ---- table ----------------------------------------------------------------------------- */

static void test_table_finds_every_key_by_digest(void **state)
{
    fixture_t *f = *state;
    const auth_table_t *t = f->gen->auth;
    unsigned char d[FG_SHA256_LEN];
    const char *names[] = {"alpha", "beta", "gamma", "delta", "Sign Key"};
    const char *keys[] = {"alpha-secret", "beta-secret", "gamma-secret", "delta-secret",
                          "sign-secret"};
    for (size_t i = 0; i < 5; i++) {
        digest_of(keys[i], d);
        const auth_key_t *k = auth_find_digest(t, d);
        assert_non_null(k);
        assert_string_equal(k->conf->name, names[i]);
    }
    digest_of("unknown", d);
    assert_null(auth_find_digest(t, d));
    assert_non_null(auth_find_name(t, "Sign Key", 8));
    assert_null(auth_find_name(t, "alpha", 5)); /* only signing keys are found by name */
    assert_null(auth_find_name(t, "Sign", 4));
}

/* A digest equal to a key's in its first 31 bytes lands on the same slot and must still be
 * refused: the whole digest is compared, not the hashed prefix. */
static void test_lookup_compares_whole_digest(void **state)
{
    fixture_t *f = *state;
    unsigned char d[FG_SHA256_LEN];
    digest_of("alpha-secret", d);
    d[FG_SHA256_LEN - 1] ^= 1;
    assert_null(auth_find_digest(f->gen->auth, d));
    d[FG_SHA256_LEN - 1] ^= 1;
    assert_non_null(auth_find_digest(f->gen->auth, d));
}

static void test_table_of_many_keys(void **state)
{
    (void)state;
    enum { N = 3000 };
    size_t cap = 256 + N * 100;
    char *json = malloc(cap);
    size_t o = (size_t)snprintf(json, cap, "{\"security\":{\"auth\":{\"keys\":[");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(json + o, cap - o, "%s{\"name\":\"k%d\",\"key\":\"secret-%d\"}",
                              i ? "," : "", i, i);
    snprintf(json + o, cap - o, "]}}}");
    dp_generation_t *g = make_generation(json);
    free(json);
    for (int i = 0; i < N; i++) {
        char key[32], name[32];
        unsigned char d[FG_SHA256_LEN];
        snprintf(key, sizeof key, "secret-%d", i);
        snprintf(name, sizeof name, "k%d", i);
        digest_of(key, d);
        const auth_key_t *k = auth_find_digest(g->auth, d);
        assert_non_null(k);
        assert_string_equal(k->conf->name, name);
    }
    generation_release(g);
}

/* ---- scopes, expiry, disabled ---------------------------------------------------------- */

static void test_key_admits_scope_expiry_disabled(void **state)
{
    fixture_t *f = *state;
    unsigned char d[FG_SHA256_LEN];
    const auth_table_t *t = f->gen->auth;
    digest_of("alpha-secret", d);
    const auth_key_t *alpha = auth_find_digest(t, d);
    digest_of("beta-secret", d);
    const auth_key_t *beta = auth_find_digest(t, d);
    digest_of("gamma-secret", d);
    const auth_key_t *gamma = auth_find_digest(t, d);
    digest_of("delta-secret", d);
    const auth_key_t *delta = auth_find_digest(t, d);

    assert_int_equal(auth_key_admits(alpha, ROUTE_OTHER, 5000), 0);
    assert_int_equal(beta->n_routes, 1); /* "nope" names no route */
    assert_int_equal(auth_key_admits(beta, ROUTE_REQ, 5000), 0);
    assert_int_equal(auth_key_admits(beta, ROUTE_OTHER, 5000), 403);
    assert_int_equal(auth_key_admits(gamma, ROUTE_REQ, 5000), 401);
    assert_int_equal(auth_key_admits(delta, ROUTE_REQ, 999), 0);
    assert_int_equal(auth_key_admits(delta, ROUTE_REQ, 1000), 401);
}

/* ---- credential headers ---------------------------------------------------------------- */

static void test_required_route(void **state)
{
    fixture_t *f = *state;
    dp_counters_t *m = metrics_counters();
    uint64_t missing = m->auth_missing, invalid = m->auth_invalid, forbidden = m->auth_forbidden;

    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\n\r\n"), 401);
    assert_int_equal(m->auth_missing, missing + 1);
    assert_null(f->r->key_name);

    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nx-api-key: wrong\r\n\r\n"), 401);
    assert_int_equal(m->auth_invalid, invalid + 1);

    assert_int_equal(
        check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: alpha-secret\r\nA: b\r\n\r\n"), 0);
    assert_string_equal(f->r->key_name, "alpha");
    assert_true(dropped(f, "X-API-Key"));
    assert_false(dropped(f, "A"));

    assert_int_equal(check(f, ROUTE_OTHER, "GET /other HTTP/1.1\r\nX-API-Key: beta-secret\r\n\r\n"),
                     403);
    assert_int_equal(m->auth_forbidden, forbidden + 1);
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: gamma-secret\r\n\r\n"),
                     401);
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: delta-secret\r\n\r\n"),
                     401);
    /* Two credentials are ambiguous: refused even when both are valid. */
    assert_int_equal(check(f, ROUTE_REQ,
                           "GET /req HTTP/1.1\r\nX-API-Key: alpha-secret\r\n"
                           "X-API-Key: alpha-secret\r\n\r\n"),
                     401);
}

static void test_bearer_and_identity_header(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\n"
                                         "Authorization: Bearer   alpha-secret\r\n"
                                         "X-Consumer-Name: admin\r\n\r\n"),
                     0);
    assert_string_equal(f->r->key_name, "alpha");
    assert_true(dropped(f, "Authorization"));
    assert_true(dropped(f, "X-Consumer-Name"));
    /* Another scheme is not ours: left alone (and not a credential). */
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n"),
                     401);
    assert_false(dropped(f, "Authorization"));
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n"),
                     401);

    /* Without `bearer`, Authorization is never read. */
    dp_generation_t *g = make_generation(
        "{\"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:9\"}],"
        "\"routes\":[{\"id\":\"req\",\"path\":\"/req\",\"upstream\":\"u\",\"auth\":\"required\"}],"
        "\"security\":{\"auth\":{\"header\":\"X-Key\",\"identityHeader\":\"X-Who\",\"keys\":["
        "{\"name\":\"alpha\",\"key\":\"alpha-secret\"}]}}}");
    dp_generation_t *saved = f->gen;
    f->gen = g;
    assert_int_equal(check(f, 0, "GET /req HTTP/1.1\r\nAuthorization: Bearer alpha-secret\r\n\r\n"),
                     401);
    assert_int_equal(check(f, 0, "GET /req HTTP/1.1\r\nx-key: alpha-secret\r\nX-Who: me\r\n"
                                 "X-API-Key: x\r\n\r\n"),
                     0);
    assert_true(dropped(f, "X-Key"));
    assert_true(dropped(f, "X-Who"));
    assert_false(dropped(f, "X-API-Key"));
    assert_int_equal(auth_identity_size(f->r), strlen("X-Who: alpha\r\n"));
    char out[64];
    char *end = auth_identity_write(f->r, out);
    assert_int_equal(end - out, (long)strlen("X-Who: alpha\r\n"));
    assert_memory_equal(out, "X-Who: alpha\r\n", (size_t)(end - out));
    assert_non_null(strstr(auth_challenge(g->auth), "header=\"X-Key\""));
    assert_null(strstr(auth_challenge(g->auth), "Bearer"));
    f->gen = saved;
    generation_release(g);
    assert_non_null(strstr(auth_challenge(f->gen->auth), "WWW-Authenticate: Bearer"));
    assert_non_null(strstr(auth_challenge(f->gen->auth), AUTH_HMAC_SCHEME));
}

static void test_optional_and_none_routes(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(check(f, ROUTE_OPT, "GET /opt HTTP/1.1\r\n\r\n"), 0);
    assert_null(f->r->key_name);
    assert_int_equal(
        check(f, ROUTE_OPT, "GET /opt HTTP/1.1\r\nX-API-Key: alpha-secret\r\n\r\n"), 0);
    assert_string_equal(f->r->key_name, "alpha");
    assert_int_equal(check(f, ROUTE_OPT, "GET /opt HTTP/1.1\r\nX-API-Key: bad\r\n\r\n"), 401);

    /* none: nothing is checked, nothing identifies, a forged identity is still dropped. */
    assert_int_equal(check(f, ROUTE_OPEN, "GET /open HTTP/1.1\r\nX-API-Key: bad\r\n"
                                          "x-consumer-name: admin\r\n\r\n"),
                     0);
    assert_null(f->r->key_name);
    assert_false(dropped(f, "X-API-Key"));
    assert_true(dropped(f, "X-Consumer-Name"));
    assert_int_equal(auth_identity_size(f->r), 0);
}

/* ---- HMAC ------------------------------------------------------------------------------ */

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    /* RFC 4231 test case 2, and case 6 (a key longer than the block). */
    const span_t data2[] = {{"what do ya want ", 16}, {"for nothing?", 12}};
    unsigned char out[FG_SHA256_LEN];
    hmac_sha256((const unsigned char *)"Jefe", 4, data2, 2, out);
    static const unsigned char want2[] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
        0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
        0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(out, want2, sizeof want2);
    unsigned char key6[131];
    memset(key6, 0xaa, sizeof key6);
    const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    const span_t data6[] = {{msg6, strlen(msg6)}};
    hmac_sha256(key6, sizeof key6, data6, 1, out);
    static const unsigned char want6[] = {
        0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f,
        0x0d, 0x8a, 0x26, 0xaa, 0xcb, 0xf5, 0xb7, 0x7f,
        0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28, 0xc5, 0x14,
        0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
    assert_memory_equal(out, want6, sizeof want6);
}

static void test_imf_date(void **state)
{
    (void)state;
    uint64_t ms = 0;
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_int_equal(auth_parse_imf_date(d, strlen(d), &ms), 0);
    assert_int_equal(ms, 784111777000ull);
    d = "Thu, 29 Feb 2024 23:59:59 GMT";
    assert_int_equal(auth_parse_imf_date(d, strlen(d), &ms), 0);
    assert_int_equal(ms, 1709251199000ull);
    const char *bad[] = {"Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT",
                         "Sun, 06 Nov 1994 24:49:37 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT",
                         "Sun, 6 Nov 1994 08:49:37 GMT", "784111777"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(auth_parse_imf_date(bad[i], strlen(bad[i]), &ms), -EINVAL);
}

#define SIG64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void test_signature_header_parsing(void **state)
{
    (void)state;
    char name[FG_NAME_MAX_LEN + 1];
    size_t nl = 0;
    unsigned char sig[FG_SHA256_LEN];
    const char *ok = "keyName=\"Sign \\\"K\\\"\",  signature=\"" SIG64 "\"";
    assert_int_equal(auth_parse_signature(ok, strlen(ok), name, &nl, sig), 0);
    assert_string_equal(name, "Sign \"K\"");
    assert_int_equal(nl, 8);
    assert_int_equal(sig[1], 0x11);
    const char *tok = "signature=" SIG64 ",keyName=k";
    assert_int_equal(auth_parse_signature(tok, strlen(tok), name, &nl, sig), 0);
    assert_string_equal(name, "k");
    const char *bad[] = {
        "keyName=\"k\"",                                          /* no signature */
        "signature=\"" SIG64 "\"",                                /* no key */
        "keyName=\"k\", signature=\"" SIG64 "\", extra=1",        /* unknown parameter */
        "keyName=\"k\", keyName=\"j\", signature=\"" SIG64 "\"",  /* repeated */
        "keyName=\"k\", signature=\"0011\"",                      /* short signature */
        "keyName=\"k, signature=\"" SIG64 "\"",                   /* unterminated quote */
        "keyName=\"k\" signature=\"" SIG64 "\"",                  /* no comma */
        "keyName=\"k\", signature=\"zz1122334455667788"
        "99aabbccddeeff00112233445566778899aabbccddeeff\"", /* not hex */
        "keyName=\"\", signature=\"" SIG64 "\"",                  /* empty name */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(auth_parse_signature(bad[i], strlen(bad[i]), name, &nl, sig), -EINVAL);
    char longname[200];
    int n = snprintf(longname, sizeof longname, "keyName=\"%070d\", signature=\"%s\"", 0, SIG64);
    assert_int_equal(auth_parse_signature(longname, (size_t)n, name, &nl, sig), -EINVAL);
}

static void imf_now(uint64_t offset_s_neg, uint64_t offset_s_pos, char out[32])
{
    time_t t = time(NULL) - (time_t)offset_s_neg + (time_t)offset_s_pos;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void b64_digest(const char *body, char out[64])
{
    unsigned char md[FG_SHA256_LEN];
    sha256_once(body, strlen(body), md);
    memcpy(out, "sha-256=:", 9);
    EVP_EncodeBlock((unsigned char *)out + 9, md, FG_SHA256_LEN);
    strcpy(out + 9 + 44, ":");
}

/* A signed request the way a client builds it; `sign_target` lets a test sign something else. */
static void signed_request(fixture_t *f, const char *method, const char *target,
                           const char *sign_target, const char *date, const char *body,
                           const char *digest_hdr, char *out, size_t cap)
{
    unsigned char d[FG_SHA256_LEN], sig[FG_SHA256_LEN];
    digest_of("sign-secret", d);
    const auth_key_t *k = auth_find_digest(f->gen->auth, d);
    const char *dv = digest_hdr ? digest_hdr : "";
    auth_hmac_sign(k, method, sign_target, strlen(sign_target), date, strlen(date), dv,
                   strlen(dv), sig);
    char hex[FG_SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < FG_SHA256_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", sig[i]);
    size_t o = (size_t)snprintf(out, cap,
                                "%s %s HTTP/1.1\r\nDate: %s\r\n"
                                "Authorization: HMAC-SHA256 keyName=\"Sign Key\", "
                                "signature=\"%s\"\r\n",
                                method, target, date, hex);
    if (digest_hdr)
        o += (size_t)snprintf(out + o, cap - o, "Content-Digest: %s\r\n", digest_hdr);
    if (body)
        o += (size_t)snprintf(out + o, cap - o, "Content-Length: %zu\r\n", strlen(body));
    snprintf(out + o, cap - o, "\r\n");
}

static void test_signed_requests(void **state)
{
    fixture_t *f = *state;
    dp_counters_t *m = metrics_counters();
    char req[1024], date[32];
    imf_now(0, 0, date);

    signed_request(f, "GET", "/req?a=1", "/req?a=1", date, NULL, NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);
    assert_string_equal(f->r->key_name, "Sign Key");
    assert_true(dropped(f, "Authorization"));
    assert_null(f->r->auth_body);

    /* The same signature again: a replay. */
    uint64_t replays = m->auth_replays;
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
    assert_int_equal(m->auth_replays, replays + 1);
    assert_null(f->r->key_name);

    /* Signed over another target than the one sent. */
    imf_now(1, 0, date);
    signed_request(f, "GET", "/req?a=2", "/req?a=1", date, NULL, NULL, req, sizeof req);
    uint64_t invalid = m->auth_invalid;
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
    assert_int_equal(m->auth_invalid, invalid + 1);

    /* A Date outside the 60 s window, either side, with a good signature. */
    imf_now(120, 0, date);
    signed_request(f, "GET", "/req", "/req", date, NULL, NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
    assert_int_equal(m->auth_replays, replays + 2);
    imf_now(0, 120, date);
    signed_request(f, "GET", "/req", "/req", date, NULL, NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
    /* Inside the window but not now: fine. */
    imf_now(30, 0, date);
    signed_request(f, "GET", "/req", "/req", date, NULL, NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);

    /* The signing key itself, sent in the clear, is refused. */
    assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: sign-secret\r\n\r\n"),
                     401);
    /* A body without Content-Digest is refused before anything is forwarded. */
    imf_now(2, 0, date);
    signed_request(f, "POST", "/req", "/req", date, "hello", NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
}

static void test_signed_body_digest(void **state)
{
    fixture_t *f = *state;
    char req[1024], date[32], dig[64];
    imf_now(3, 0, date);
    b64_digest("hello", dig);
    signed_request(f, "POST", "/req", "/req", date, "hello", dig, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);
    assert_non_null(f->r->auth_body);
    /* The body streams: every byte but the last goes on at once. */
    f->r->req_body_bytes = 3;
    assert_int_equal(auth_body_feed(f->r, "hel", 3), 3);
    f->r->req_body_bytes = 5;
    assert_int_equal(auth_body_feed(f->r, "lo", 2), 1);
    /* Digest good; the held byte needs an upstream connection, which this test has not. */
    assert_int_equal(auth_body_end(f->r), 500);
    assert_null(f->r->auth_body);

    /* Another body than the digest names. */
    imf_now(4, 0, date);
    signed_request(f, "POST", "/req", "/req", date, "hello", dig, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);
    f->r->req_body_bytes = 5;
    assert_int_equal(auth_body_feed(f->r, "jello", 5), 4);
    assert_int_equal(auth_body_end(f->r), 401);
    assert_null(f->r->key_name);

    /* Chunked: nothing held back (the final chunk is what waits), digest good -> 0. */
    imf_now(5, 0, date);
    signed_request(f, "POST", "/req", "/req", date, NULL, dig, req, sizeof req);
    char chunked[1200];
    snprintf(chunked, sizeof chunked, "%.*sTransfer-Encoding: chunked\r\n\r\n",
             (int)(strlen(req) - 2), req);
    assert_int_equal(check(f, ROUTE_REQ, chunked), 0);
    f->r->req_body_bytes = 5;
    assert_int_equal(auth_body_feed(f->r, "hello", 5), 5);
    assert_int_equal(auth_body_end(f->r), 0);
    assert_string_equal(f->r->key_name, "Sign Key");

    /* No body, a digest of the empty body: checked at once; a wrong one refused. */
    imf_now(6, 0, date);
    b64_digest("", dig);
    signed_request(f, "DELETE", "/req", "/req", date, NULL, dig, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);
    imf_now(7, 0, date);
    b64_digest("x", dig);
    signed_request(f, "DELETE", "/req", "/req", date, NULL, dig, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 401);
}

/* Run `fn` in a child process (as another worker would) and wait for it. */
static void in_child(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static const unsigned char seen_sig[FG_SHA256_LEN] = {1, 2, 3};

static void remember_seen_sig(void)
{
    if (auth_replay_remember(seen_sig, 1000, 5000) != 0)
        _exit(1);
}

/* Dies holding the lock with every chain cut: what a worker killed mid-insert may leave. */
static void die_mid_insert(void)
{
    shm_lock(&replay.c->lock);
    memset(replay.c->bucket, 0, sizeof replay.c->bucket);
    _exit(0);
}

/* Shared by the workers: a signature one of them took is a replay for the others, and a
 * worker that dies holding the lock leaves nothing forgotten (the chains are re-linked). */
static void test_replay_cache_shared_by_workers(void **state)
{
    (void)state;
    auth_replay_reset();
    assert_int_equal(auth_replay_shared_init(), 0);
    in_child(remember_seen_sig);
    assert_int_equal(auth_replay_remember(seen_sig, 1500, 5000), -EEXIST);
    in_child(die_mid_insert);
    assert_int_equal(auth_replay_remember(seen_sig, 1600, 5000), -EEXIST);
    assert_int_equal(replay.c->takeovers, 1);
    assert_int_equal(atomic_load(&replay.c->lock), 0);
    auth_replay_reset();
}

static void test_replay_cache_bounds(void **state)
{
    (void)state;
    unsigned char sig[FG_SHA256_LEN] = {0};
    auth_replay_reset();
    assert_int_equal(auth_replay_remember(sig, 1000, 2000), 0);
    assert_int_equal(auth_replay_remember(sig, 1500, 2500), -EEXIST);
    /* Expired: forgotten, and remembered anew. */
    assert_int_equal(auth_replay_remember(sig, 2000, 3000), 0);
    /* Fill it: past AUTH_REPLAY_CACHE_MAX live entries, new signatures are refused. */
    for (uint32_t i = 1; i < AUTH_REPLAY_CACHE_MAX; i++) {
        memcpy(sig, &i, sizeof i);
        assert_int_equal(auth_replay_remember(sig, 2000, 10000), 0);
    }
    uint32_t extra = AUTH_REPLAY_CACHE_MAX;
    memcpy(sig, &extra, sizeof extra);
    assert_int_equal(auth_replay_remember(sig, 2000, 10000), -ENOSPC);
    /* Once the oldest expires, room again, and the survivors are still remembered. */
    assert_int_equal(auth_replay_remember(sig, 3000, 10000), 0);
    uint32_t some = 12345;
    memcpy(sig, &some, sizeof some);
    assert_int_equal(auth_replay_remember(sig, 3000, 10000), -EEXIST);
    auth_replay_reset();
}

/* OpenSSL's allocations, counted: the request path must make none (EVP would make one per
 * digest, SHA256() about fifty). */
static size_t openssl_allocs;

static void *count_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    openssl_allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    openssl_allocs++;
    return realloc(p, n);
}

static void count_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

static void test_request_path_allocates_nothing_in_openssl(void **state)
{
    fixture_t *f = *state;
    char req[1024], date[32], dig[64];
    imf_now(8, 0, date);
    signed_request(f, "GET", "/req", "/req", date, NULL, NULL, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0); /* allocates the replay cache once */
    openssl_allocs = 0;
    /* The counter counts: an EVP context is an allocation. */
    EVP_MD_CTX_free(EVP_MD_CTX_new());
    assert_true(openssl_allocs > 0);
    openssl_allocs = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(
            check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: alpha-secret\r\n\r\n"), 0);
        assert_int_equal(check(f, ROUTE_REQ, "GET /req HTTP/1.1\r\nX-API-Key: nope\r\n\r\n"),
                         401);
    }
    imf_now(9, 0, date);
    b64_digest("hello", dig);
    signed_request(f, "POST", "/req", "/req", date, "hello", dig, req, sizeof req);
    assert_int_equal(check(f, ROUTE_REQ, req), 0);
    f->r->req_body_bytes = 5;
    assert_int_equal(auth_body_feed(f->r, "hello", 5), 4);
    assert_int_equal(auth_body_end(f->r), 500); /* digest good; no upstream in this test */
    assert_int_equal(openssl_allocs, 0);
}

int main(void)
{
    /* Before OpenSSL allocates anything: it refuses a change of functions after that. */
    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free))
        fprintf(stderr, "test_auth: could not count OpenSSL allocations\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table_finds_every_key_by_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_compares_whole_digest, setup, teardown),
        cmocka_unit_test(test_table_of_many_keys),
        cmocka_unit_test_setup_teardown(test_key_admits_scope_expiry_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_and_identity_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optional_and_none_routes, setup, teardown),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_imf_date),
        cmocka_unit_test(test_signature_header_parsing),
        cmocka_unit_test_setup_teardown(test_signed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_body_digest, setup, teardown),
        cmocka_unit_test(test_replay_cache_bounds),
        cmocka_unit_test(test_replay_cache_shared_by_workers),
        cmocka_unit_test_setup_teardown(test_request_path_allocates_nothing_in_openssl, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
