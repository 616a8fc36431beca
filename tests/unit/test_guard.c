/* test_guard.c - dataplane/guard.c without sockets: path normalisation (and its no-copy fast
 * path), the SSRF connect check (default ranges, security.blockedIPs, mapped and loopback
 * spellings, policy swaps), the allow-list, encoded-slash refusal, forwarding fields for
 * untrusted and trusted peers, route header ops, and the response fields http1.c marks as
 * unsafe. Configs come from real JSON through the shared decoder into real generations;
 * request and response heads come from the real parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "fg_arena.h"
#include "generation.h"
#include "guard.h"
#include "http1.h"
#include "metrics.h"
#include "proxy.h"

/* ---- paths ------------------------------------------------------------------------------ */

static void expect_path(const char *in, const char *want, unsigned want_flags)
{
    fg_arena_t *a = fg_arena_new(0);
    const char *p = in;
    size_t n = strlen(in);
    unsigned flags = 0;
    int rc = guard_path_normalize(a, &p, &n, &flags);
    if (rc != 0)
        fail_msg("%s: rc %d", in, rc);
    if (n != strlen(want) || memcmp(p, want, n) != 0)
        fail_msg("%s: want %s, got %.*s", in, want, (int)n, p);
    if (flags != want_flags)
        fail_msg("%s: want flags %u, got %u", in, want_flags, flags);
    fg_arena_free(a);
}

static void expect_path_refused(const char *in)
{
    fg_arena_t *a = fg_arena_new(0);
    const char *p = in;
    size_t n = strlen(in);
    unsigned flags = 0;
    if (guard_path_normalize(a, &p, &n, &flags) != -EINVAL)
        fail_msg("%s: not refused", in);
    fg_arena_free(a);
}

static void test_path_normalize(void **state)
{
    (void)state;
    expect_path("/", "/", 0);
    expect_path("/a/b", "/a/b", 0);
    expect_path("/a/./b", "/a/b", 0);
    expect_path("/a/../b", "/b", 0);
    expect_path("/public/../admin", "/admin", 0);
    expect_path("/../../etc/passwd", "/etc/passwd", 0);
    expect_path("/a/b/..", "/a/", 0);
    expect_path("/a/.", "/a/", 0);
    expect_path("/a//b///c", "/a/b/c", 0);
    expect_path("//", "/", 0);
    expect_path("/a/", "/a/", 0);
    expect_path("/%2e%2E/admin", "/admin", 0);           /* encoded dots are dots */
    expect_path("/public/%2e%2e/admin", "/admin", 0);
    expect_path("/%61%62%7e%2D%5f", "/ab~-_", 0);         /* unreserved: decoded */
    expect_path("/a%20b%3a", "/a%20b%3A", 0);             /* others kept, hex upper-cased */
    expect_path("/a%20b", "/a%20b", 0);
    expect_path("/%252e%252e/x", "/%252e%252e/x", 0);     /* one level of decoding only */
    expect_path("/.well-known/x", "/.well-known/x", 0);
    expect_path("/a/..b/c", "/a/..b/c", 0);
    /* Encoded '/' and '\' are flagged, never decoded: "..%2F" is not a dot segment. */
    expect_path("/public/..%2Fadmin", "/public/..%2Fadmin", GUARD_PATH_ENCODED_SLASH);
    expect_path("/public/..%2fadmin", "/public/..%2Fadmin", GUARD_PATH_ENCODED_SLASH);
    expect_path("/a%5Cb", "/a%5Cb", GUARD_PATH_ENCODED_SLASH);
    expect_path("/a\\..\\b", "/a\\..\\b", GUARD_PATH_ENCODED_SLASH);
    uint64_t refused = metrics_counters()->paths_refused;
    expect_path_refused("/a%00b");
    expect_path_refused("/a%0");
    expect_path_refused("/a%");
    expect_path_refused("/a%zz");
    expect_path_refused("/a%g0");
    assert_int_equal(metrics_counters()->paths_refused - refused, 5);
}

/* A path with nothing to change is neither copied nor given arena space. */
static void test_path_fast_path(void **state)
{
    (void)state;
    static const char *const clean[] = {"/", "/api/users/42", "/a%20b/%C3%A9", "/.well-known/x",
                                        "/a.b/c..d/...", "/a/b/"};
    fg_arena_t *a = fg_arena_new(0);
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
        const char *p = clean[i];
        size_t n = strlen(p);
        unsigned flags = 0;
        size_t before = fg_arena_used(a);
        assert_int_equal(guard_path_normalize(a, &p, &n, &flags), 0);
        assert_ptr_equal(p, clean[i]);
        assert_int_equal(n, strlen(clean[i]));
        assert_int_equal(fg_arena_used(a), before);
    }
    fg_arena_free(a);
}

/* ---- generations ------------------------------------------------------------------------- */

static dp_generation_t *install(const char *json)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    if (fg_config_parse(json, strlen(json), &cfg, &err) < 0)
        fail_msg("config did not parse: %s: %s", err.field, err.message);
    dp_generation_t *g = generation_create(cfg, 1, NULL, &err);
    if (!g)
        fail_msg("generation_create: %s", err.message);
    generation_install(g);
    return g;
}

static int teardown(void **state)
{
    (void)state;
    generation_shutdown();
    return 0;
}

static int check(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
    }
    return guard_addr_check((struct sockaddr *)&ss, "test-host");
}

/* No generation yet, and a generation with no security section: the default ranges. */
static void test_ssrf_defaults(void **state)
{
    (void)state;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            install("{}");
        uint64_t before = metrics_counters()->ssrf_blocked;
        static const char *const blocked[] = {
            "169.254.169.254", "169.254.170.2", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe",
            "64:ff9b::a9fe:a9fe", "fd00:ec2::254", "fe80::1", "100.100.100.200",
            "168.63.129.16", "169.254.0.1"};
        for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
            if (check(blocked[i]) != -EACCES)
                fail_msg("pass %d: %s not blocked", pass, blocked[i]);
        assert_int_equal(metrics_counters()->ssrf_blocked - before,
                         sizeof blocked / sizeof blocked[0]);
        /* Private and loopback ranges are an internal gateway's upstreams: allowed. */
        static const char *const allowed[] = {"10.0.0.1", "127.0.0.1", "::1", "192.168.1.1",
                                              "172.16.0.1", "fd00::1", "93.184.216.34"};
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            if (check(allowed[i]) != 0)
                fail_msg("pass %d: %s blocked", pass, allowed[i]);
    }
}

/* security.blockedIPs adds to the defaults; every spelling of a blocked address is caught;
 * a swap to a config without the rule lifts it. */
static void test_ssrf_blocked_ips(void **state)
{
    (void)state;
    install("{\"security\":{\"blockedIPs\":[\"10.0.0.0/8\",\"127.0.0.0/8\","
            "\"2001:db8::/32\"]}}");
    static const char *const blocked[] = {"10.1.2.3", "127.0.0.1", "127.9.9.9",
                                          "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::1",
                                          "0.0.0.0", "::", "2001:db8::5", "169.254.169.254"};
    for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
        if (check(blocked[i]) != -EACCES)
            fail_msg("%s not blocked", blocked[i]);
    assert_int_equal(check("11.0.0.1"), 0);
    assert_int_equal(check("2001:db9::1"), 0);
    install("{}");
    assert_int_equal(check("127.0.0.1"), 0);
    assert_int_equal(check("10.1.2.3"), 0);
}

/* ---- requests ---------------------------------------------------------------------------- */

typedef struct req_fixture {
    struct event_base *base;
    fg_arena_t *arena;
    http1_parser_t p;
    http1_head_t head;
    dp_conn_t conn;
    dp_request_t r;
    dp_generation_t *gen;
} req_fixture_t;

static int head_cb(void *ctx, http1_head_t *h)
{
    ((req_fixture_t *)ctx)->head = *h;
    return HTTP1_CB_PAUSE;
}

static const http1_callbacks_t req_cbs = {head_cb, NULL, NULL};

/* Parse `raw` as a request from `peer` and route it to route `route_index` of the current
 * generation (routing itself is router.c's: tested there). */
static void request(req_fixture_t *f, const char *raw, const char *peer, size_t route_index)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    f->arena = fg_arena_new(0);
    http1_parser_init(&f->p, HTTP_REQUEST, &req_cbs, f, f->arena);
    size_t used = 0;
    assert_int_equal(http1_parser_execute(&f->p, raw, strlen(raw), &used), HTTP1_PAUSED);
    f->conn.bev = bufferevent_socket_new(f->base, -1, 0);
    snprintf(f->conn.peer_ip, sizeof f->conn.peer_ip, "%s", peer);
    f->conn.peer_ip_len = (uint8_t)strlen(peer);
    f->gen = generation_acquire(generation_current());
    const fg_config_t *cfg = f->gen->config;
    f->r.conn = &f->conn;
    f->r.gen = f->gen;
    f->r.head = &f->head;
    f->r.route = &cfg->routes[route_index];
    f->r.upstream = f->gen->route_upstream[route_index];
    f->r.target = &f->r.upstream->targets[0];
}

static void request_done(req_fixture_t *f)
{
    generation_release(f->gen);
    bufferevent_free(f->conn.bev);
    fg_arena_free(f->arena);
    event_base_free(f->base);
}

/* The fields guard writes, and the client fields write_request_head forwards (those with no
 * skip flag), as one text. */
static char *forwarded_text(req_fixture_t *f)
{
    size_t n = guard_request_headers_len(&f->r);
    char *out = calloc(1, n + 4096), *p = out;
    for (uint32_t i = 0; i < f->head.n_headers; i++) {
        const http1_header_t *hd = &f->head.headers[i];
        if (hd->flags & (HTTP1_HF_HOP | HTTP1_HF_FRAMING | HTTP1_HF_REQ_REWRITE | HTTP1_HF_DROP))
            continue;
        p += sprintf(p, "%.*s: %.*s\r\n", (int)hd->name_len, HTTP1_NAME(&f->head, hd),
                     (int)hd->value_len, HTTP1_VALUE(&f->head, hd));
    }
    char *end = guard_request_headers_put(&f->r, p);
    assert_true((size_t)(end - p) <= n);
    *end = '\0';
    return out;
}

#define FORGED "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n" \
               "X-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;host=evil\r\n" \
               "X-Real-IP: 6.6.6.6\r\n"

static const char *const routes_json =
    "{\"security\":{\"trustedProxies\":[\"203.0.113.0/24\"],"
    "  \"allowedHosts\":[\"127.0.0.1\",\"*.internal.corp\"]},"
    " \"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:9\"},"
    "  {\"name\":\"out\",\"url\":\"http://api.primary.com\"},"
    "  {\"name\":\"in\",\"url\":\"http://a.internal.corp\"}],"
    " \"routes\":[{\"id\":\"plain\",\"path\":\"/p/*\",\"upstream\":\"u\"},"
    "  {\"id\":\"ops\",\"path\":\"/o/*\",\"upstream\":\"u\","
    "   \"requestHeaders\":{\"add\":{\"X-Gateway\":\"fg\",\"Host\":\"evil\","
    "     \"X-Forwarded-For\":\"1.1.1.1\"},\"remove\":[\"Cookie\",\"X-Secret\"]},"
    "   \"responseHeaders\":{\"add\":{\"X-Frame-Options\":\"DENY\",\"Content-Length\":\"0\"},"
    "     \"remove\":[\"X-Internal\"]}},"
    "  {\"id\":\"enc\",\"path\":\"/e/*\",\"upstream\":\"u\",\"allowEncodedSlashes\":true},"
    "  {\"id\":\"out\",\"path\":\"/out\",\"upstream\":\"out\"},"
    "  {\"id\":\"in\",\"path\":\"/in\",\"upstream\":\"in\"}]}";

/* An untrusted client's forwarding fields are replaced, not appended to. */
static void test_forwarding_untrusted(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    request(&f, "GET /p/x HTTP/1.1\r\nHost: gw.example\r\n" FORGED "X-Other: 1\r\n\r\n",
            "198.51.100.7", 0);
    assert_int_equal(guard_request(&f.r, 0), 0);
    assert_false(f.r.peer_trusted);
    char *t = forwarded_text(&f);
    assert_string_equal(t, "X-Other: 1\r\n"
                           "X-Forwarded-For: 198.51.100.7\r\n"
                           "X-Forwarded-Proto: http\r\n"
                           "X-Forwarded-Host: gw.example\r\n"
                           "X-Real-IP: 198.51.100.7\r\n");
    free(t);
    request_done(&f);
}

/* A trusted proxy's chain is appended to and its own fields kept. */
static void test_forwarding_trusted(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    request(&f, "GET /p/x HTTP/1.1\r\nHost: gw.example\r\n" FORGED
                "X-Forwarded-For: 10.0.0.2\r\n\r\n", "203.0.113.9", 0);
    assert_int_equal(guard_request(&f.r, 0), 0);
    assert_true(f.r.peer_trusted);
    char *t = forwarded_text(&f);
    assert_string_equal(t, "X-Forwarded-For: 6.6.6.6, 10.0.0.2, 203.0.113.9\r\n"
                           "X-Forwarded-Proto: https\r\n"
                           "X-Forwarded-Host: evil.example\r\n"
                           "X-Real-IP: 6.6.6.6\r\n"
                           "Forwarded: for=6.6.6.6;host=evil\r\n");
    free(t);
    request_done(&f);
}

static void test_request_header_ops(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    request(&f, "GET /o/x HTTP/1.1\r\nHost: gw\r\nCookie: a=1\r\nx-gateway: client\r\n"
                "X-SECRET: s\r\nX-Keep: k\r\n\r\n", "198.51.100.7", 1);
    assert_int_equal(guard_request(&f.r, 0), 0);
    char *t = forwarded_text(&f);
    /* Removed: Cookie, X-Secret; replaced: X-Gateway; Host and X-Forwarded-For are the
     * gateway's own and are not added. */
    assert_string_equal(t, "X-Keep: k\r\n"
                           "X-Forwarded-For: 198.51.100.7\r\n"
                           "X-Forwarded-Proto: http\r\n"
                           "X-Forwarded-Host: gw\r\n"
                           "X-Real-IP: 198.51.100.7\r\n"
                           "X-Gateway: fg\r\n");
    free(t);
    request_done(&f);
}

static void test_encoded_slash_per_route(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    uint64_t before = metrics_counters()->paths_refused;
    request(&f, "GET /p/a%2Fb HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 0);
    assert_int_equal(guard_request(&f.r, GUARD_PATH_ENCODED_SLASH), 400);
    assert_int_equal(metrics_counters()->paths_refused - before, 1);
    request_done(&f);
    request(&f, "GET /e/a%2Fb HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 2);
    assert_int_equal(guard_request(&f.r, GUARD_PATH_ENCODED_SLASH), 0);
    request_done(&f);
}

static void test_allowed_hosts(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    uint64_t before = metrics_counters()->hosts_refused;
    request(&f, "GET /out HTTP/1.1\r\nHost: api.primary.com\r\n\r\n", "198.51.100.7", 3);
    /* Every target outside: refused at admission already (before auth), and per target. */
    assert_int_equal(guard_request(&f.r, 0), 403);
    assert_int_equal(guard_target(&f.r), 403);
    assert_int_equal(metrics_counters()->hosts_refused - before, 2);
    request_done(&f);
    request(&f, "GET /in HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 4);
    assert_int_equal(guard_request(&f.r, 0), 0);
    assert_int_equal(guard_target(&f.r), 0);
    request_done(&f);
    request(&f, "GET /p/ HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 0);
    assert_int_equal(guard_target(&f.r), 0);
    request_done(&f);
    /* No allow-list: everything the config names may be connected to (then checked by
     * address). */
    install("{\"upstreams\":[{\"name\":\"out\",\"url\":\"http://api.primary.com\"}],"
            "\"routes\":[{\"id\":\"out\",\"path\":\"/out\",\"upstream\":\"out\"}]}");
    request(&f, "GET /out HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 0);
    assert_int_equal(guard_target(&f.r), 0);
    request_done(&f);
}

/* ---- responses --------------------------------------------------------------------------- */

static void parse_response(req_fixture_t *f, http1_parser_t *rp, const char *raw, size_t len,
                           http1_result_t want)
{
    http1_parser_init(rp, HTTP_RESPONSE, &req_cbs, f, f->arena);
    size_t used = 0;
    assert_int_equal(http1_parser_execute(rp, raw, len, &used), want);
}

static void test_response_fields(void **state)
{
    (void)state;
    install(routes_json);
    req_fixture_t f;
    request(&f, "GET /o/x HTTP/1.1\r\nHost: gw\r\n\r\n", "198.51.100.7", 1);
    http1_parser_t rp;
    static const char raw[] = "HTTP/1.1 200 OK\r\nServer: Apache/2.4.1\r\nX-Powered-By: PHP\r\n"
                              "X Y: space in name\r\nX-Nul: a\0b\r\nX-Ctl: a\x01" "b\r\n"
                              ": empty name\r\n"
                              "X-Internal: i\r\nX-Fine: \xe9 ok\tok\r\nContent-Length: 0\r\n\r\n";
    parse_response(&f, &rp, raw, sizeof raw - 1, HTTP1_PAUSED);
    uint64_t before = metrics_counters()->resp_headers_dropped;
    guard_response(&f.r, &f.head);
    assert_int_equal(f.head.n_bad, 4);
    assert_int_equal(metrics_counters()->resp_headers_dropped - before, 4);
    char kept[512] = "";
    for (uint32_t i = 0; i < f.head.n_headers; i++) {
        const http1_header_t *hd = &f.head.headers[i];
        if (hd->flags & (HTTP1_HF_HOP | HTTP1_HF_RESP_STRIP | HTTP1_HF_DROP | HTTP1_HF_FRAMING))
            continue;
        snprintf(kept + strlen(kept), sizeof kept - strlen(kept), "%.*s;",
                 (int)hd->name_len, HTTP1_NAME(&f.head, hd));
    }
    assert_string_equal(kept, "X-Fine;"); /* Server, X-Powered-By, unsafe, removed: gone */
    size_t add_len;
    const char *add = guard_response_add(&f.r, &add_len);
    assert_int_equal(add_len, strlen("X-Frame-Options: DENY\r\n")); /* Content-Length: not */
    assert_memory_equal(add, "X-Frame-Options: DENY\r\n", add_len);

    /* A bare LF or CR would let a field be read as two: the whole response is refused. */
    static const char lf[] = "HTTP/1.1 200 OK\r\nX: a\nSet-Cookie: evil\r\n"
                             "Content-Length: 0\r\n\r\n";
    parse_response(&f, &rp, lf, sizeof lf - 1, HTTP1_ERROR);
    assert_int_equal(rp.error_status, 502);
    static const char cr[] = "HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: evil\r\n"
                             "Content-Length: 0\r\n\r\n";
    parse_response(&f, &rp, cr, sizeof cr - 1, HTTP1_ERROR);
    request_done(&f);
}

/* Requests: control bytes anywhere in the head and oversize fields are refused (400). */
static void test_request_head_hygiene(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01" "b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1b[31m\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX\x01" "A: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX@A: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", /* empty name (found by fuzz_http1) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fg_arena_t *a = fg_arena_new(0);
        http1_parser_t p;
        req_fixture_t f;
        http1_parser_init(&p, HTTP_REQUEST, &req_cbs, &f, a);
        size_t used;
        if (http1_parser_execute(&p, bad[i], strlen(bad[i]), &used) != HTTP1_ERROR ||
            p.error_status != 400)
            fail_msg("case %zu not refused with 400", i);
        fg_arena_free(a);
    }
    /* A value over HTTP1_MAX_VALUE_SIZE, and one at it. */
    for (int over = 0; over < 2; over++) {
        size_t vlen = HTTP1_MAX_VALUE_SIZE + (size_t)over;
        char *raw = malloc(vlen + 64);
        int n = sprintf(raw, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(raw + n, 'v', vlen);
        strcpy(raw + n + vlen, "\r\n\r\n");
        fg_arena_t *a = fg_arena_new(0);
        http1_parser_t p;
        req_fixture_t f;
        http1_parser_init(&p, HTTP_REQUEST, &req_cbs, &f, a);
        size_t used;
        http1_result_t rc = http1_parser_execute(&p, raw, strlen(raw), &used);
        assert_int_equal(rc, over ? HTTP1_ERROR : HTTP1_PAUSED);
        if (over)
            assert_int_equal(p.error_status, 400);
        fg_arena_free(a);
        free(raw);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_path_fast_path),
        cmocka_unit_test_teardown(test_ssrf_defaults, teardown),
        cmocka_unit_test_teardown(test_ssrf_blocked_ips, teardown),
        cmocka_unit_test_teardown(test_forwarding_untrusted, teardown),
        cmocka_unit_test_teardown(test_forwarding_trusted, teardown),
        cmocka_unit_test_teardown(test_request_header_ops, teardown),
        cmocka_unit_test_teardown(test_encoded_slash_per_route, teardown),
        cmocka_unit_test_teardown(test_allowed_hosts, teardown),
        cmocka_unit_test_teardown(test_response_fields, teardown),
        cmocka_unit_test(test_request_head_hygiene),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
