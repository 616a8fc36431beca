/* test_router.c - unit tests for dataplane/router.c: exact vs prefix precedence, prefix
 * boundaries, trailing slashes, methods and hosts, config order, and a 10,000-route table.
 * Includes the module's .c to reach its static helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/router.c"

/* A config holding only routes; strings point at literals or at `owned`. */
typedef struct test_cfg {
    fg_config_t cfg;
    fg_route_t routes[64];
} test_cfg_t;

static void add_route(test_cfg_t *t, const char *id, const char *path, unsigned methods,
                      const char **hosts, size_t n_hosts)
{
    fg_route_t *r = &t->routes[t->cfg.n_routes++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->path = path;
    size_t n = strlen(path);
    r->prefix = n >= 2 && path[n - 2] == '/' && path[n - 1] == '*';
    r->upstream = "backend";
    r->methods = methods;
    r->hosts = hosts;
    r->n_hosts = n_hosts;
    t->cfg.routes = t->routes;
}

static const char *match_id(const dp_router_t *r, const char *method, const char *host,
                            const char *path)
{
    const fg_route_t *rt = router_match(r, method, strlen(method), host,
                                        host ? strlen(host) : 0, path, strlen(path));
    return rt ? rt->id : NULL;
}

#define ASSERT_MATCH(r, path, id) assert_string_equal(match_id(r, "GET", NULL, path), id)
#define ASSERT_NO_MATCH(r, path) assert_null(match_id(r, "GET", NULL, path))

static dp_router_t *build(test_cfg_t *t)
{
    fg_error_t err;
    memset(&err, 0, sizeof err);
    dp_router_t *r = router_build(&t->cfg, &err);
    assert_non_null(r);
    return r;
}

static void test_exact(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "users", "/api/users", 0, NULL, 0);
    add_route(&t, "root", "/", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/api/users", "users");
    ASSERT_MATCH(r, "/", "root");
    ASSERT_NO_MATCH(r, "/api");
    ASSERT_NO_MATCH(r, "/api/users/1");
    ASSERT_NO_MATCH(r, "/api/user");
    ASSERT_NO_MATCH(r, "/api/usersx");
    ASSERT_NO_MATCH(r, "/API/users"); /* paths are case-sensitive */
    ASSERT_NO_MATCH(r, "");
    ASSERT_NO_MATCH(r, "api/users");
    router_free(r);
}

static void test_exact_beats_prefix(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "api-prefix", "/api/*", 0, NULL, 0);
    add_route(&t, "api-exact", "/api", 0, NULL, 0);
    add_route(&t, "health", "/api/health", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/api", "api-exact");
    ASSERT_MATCH(r, "/api/", "api-prefix");
    ASSERT_MATCH(r, "/api/health", "health");
    ASSERT_MATCH(r, "/api/health/deep", "api-prefix");
    ASSERT_MATCH(r, "/api/other", "api-prefix");
    router_free(r);
}

static void test_longer_prefix_wins(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "all", "/*", 0, NULL, 0);
    add_route(&t, "api", "/api/*", 0, NULL, 0);
    add_route(&t, "users", "/api/users/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/api/users/42", "users");
    ASSERT_MATCH(r, "/api/users", "users");
    ASSERT_MATCH(r, "/api/usersx", "api");
    ASSERT_MATCH(r, "/api/orders/1", "api");
    ASSERT_MATCH(r, "/api", "api");
    ASSERT_MATCH(r, "/apix", "all");
    ASSERT_MATCH(r, "/", "all");
    ASSERT_MATCH(r, "/deep/er/and/deeper", "all");
    router_free(r);
}

static void test_prefix_boundaries(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "api", "/api/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/api", "api");
    ASSERT_MATCH(r, "/api/", "api");
    ASSERT_MATCH(r, "/api/x", "api");
    ASSERT_MATCH(r, "/api/x/y/z", "api");
    ASSERT_MATCH(r, "/api//x", "api");
    ASSERT_NO_MATCH(r, "/apix");
    ASSERT_NO_MATCH(r, "/ap");
    ASSERT_NO_MATCH(r, "/");
    ASSERT_NO_MATCH(r, "/other/api");
    router_free(r);
}

static void test_catch_all(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "all", "/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/", "all");
    ASSERT_MATCH(r, "/x", "all");
    ASSERT_MATCH(r, "/x/y/", "all");
    ASSERT_MATCH(r, "//", "all");
    ASSERT_NO_MATCH(r, "x"); /* not a path */
    router_free(r);
}

static void test_trailing_slash(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "a", "/a", 0, NULL, 0);
    add_route(&t, "b-slash", "/b/", 0, NULL, 0);
    add_route(&t, "c", "/c/*", 0, NULL, 0);
    add_route(&t, "c-slash", "/c/", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/a", "a");
    ASSERT_NO_MATCH(r, "/a/");
    ASSERT_MATCH(r, "/b/", "b-slash");
    ASSERT_NO_MATCH(r, "/b");
    ASSERT_MATCH(r, "/c/", "c-slash"); /* exact beats the prefix on the same path */
    ASSERT_MATCH(r, "/c", "c");
    ASSERT_MATCH(r, "/c/d/", "c");
    router_free(r);
}

static void test_methods(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "api-any", "/api/*", 0, NULL, 0);
    add_route(&t, "items-get", "/api/items", FG_METHOD_GET | FG_METHOD_HEAD, NULL, 0);
    add_route(&t, "items-post", "/api/items", FG_METHOD_POST, NULL, 0);
    add_route(&t, "items-any", "/api/items", 0, NULL, 0);
    add_route(&t, "w-put", "/w/*", FG_METHOD_PUT, NULL, 0);
    dp_router_t *r = build(&t);
    assert_string_equal(match_id(r, "GET", NULL, "/api/items"), "items-get");
    assert_string_equal(match_id(r, "HEAD", NULL, "/api/items"), "items-get");
    assert_string_equal(match_id(r, "POST", NULL, "/api/items"), "items-post");
    assert_string_equal(match_id(r, "DELETE", NULL, "/api/items"), "items-any");
    assert_string_equal(match_id(r, "PUT", NULL, "/w/1"), "w-put");
    assert_null(match_id(r, "GET", NULL, "/w/1"));
    assert_null(match_id(r, "BREW", NULL, "/w/1"));
    router_free(r);
}

static void test_methods_fall_back_to_shorter_prefix(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "all", "/*", 0, NULL, 0);
    add_route(&t, "deep-post", "/a/b/*", FG_METHOD_POST, NULL, 0);
    add_route(&t, "exact-post", "/a/b/c", FG_METHOD_POST, NULL, 0);
    dp_router_t *r = build(&t);
    assert_string_equal(match_id(r, "POST", NULL, "/a/b/c"), "exact-post");
    assert_string_equal(match_id(r, "GET", NULL, "/a/b/c"), "all");
    assert_string_equal(match_id(r, "POST", NULL, "/a/b/x"), "deep-post");
    assert_string_equal(match_id(r, "GET", NULL, "/a/b/x"), "all");
    router_free(r);
}

static void test_hosts(void **state)
{
    (void)state;
    static const char *api_host[] = {"api.example.com"};
    static const char *wild[] = {"*.example.com"};
    static const char *two[] = {"a.test", "B.Test"};
    test_cfg_t t = {0};
    add_route(&t, "api-host", "/v1/*", 0, api_host, 1);
    add_route(&t, "wild", "/v1/*", 0, wild, 1);
    add_route(&t, "two", "/v1/*", 0, two, 2);
    add_route(&t, "nohost", "/v1/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    assert_string_equal(match_id(r, "GET", "api.example.com", "/v1/x"), "api-host");
    assert_string_equal(match_id(r, "GET", "API.Example.COM", "/v1/x"), "api-host");
    assert_string_equal(match_id(r, "GET", "api.example.com.", "/v1/x"), "api-host");
    assert_string_equal(match_id(r, "GET", "www.example.com", "/v1/x"), "wild");
    assert_string_equal(match_id(r, "GET", "a.b.EXAMPLE.com", "/v1/x"), "wild");
    assert_string_equal(match_id(r, "GET", "example.com", "/v1/x"), "nohost");
    assert_string_equal(match_id(r, "GET", "xexample.com", "/v1/x"), "nohost");
    assert_string_equal(match_id(r, "GET", "b.test", "/v1/x"), "two");
    assert_string_equal(match_id(r, "GET", "a.test", "/v1/x"), "two");
    assert_string_equal(match_id(r, "GET", NULL, "/v1/x"), "nohost");
    assert_string_equal(match_id(r, "GET", "", "/v1/x"), "nohost");
    router_free(r);
}

static void test_config_order(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "first", "/same", 0, NULL, 0);
    add_route(&t, "second", "/same", 0, NULL, 0);
    add_route(&t, "p-first", "/p/*", 0, NULL, 0);
    add_route(&t, "p-second", "/p/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/same", "first");
    ASSERT_MATCH(r, "/p/q", "p-first");
    router_free(r);
}

static void test_empty_and_errors(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    dp_router_t *r = build(&t);
    ASSERT_NO_MATCH(r, "/");
    ASSERT_NO_MATCH(r, "/anything");
    router_free(r);
    router_free(NULL);
    assert_null(router_match(NULL, "GET", 3, NULL, 0, "/", 1));

    test_cfg_t bad = {0};
    add_route(&bad, "bad", "nope", 0, NULL, 0);
    fg_error_t err;
    memset(&err, 0, sizeof err);
    assert_null(router_build(&bad.cfg, &err));
    assert_non_null(strstr(err.message, "routes[0].path"));
}

static void test_segments_are_not_substrings(void **state)
{
    (void)state;
    test_cfg_t t = {0};
    add_route(&t, "ab", "/a/b", 0, NULL, 0);
    add_route(&t, "a-b", "/a-b", 0, NULL, 0);
    add_route(&t, "deep", "/x/y/z/*", 0, NULL, 0);
    dp_router_t *r = build(&t);
    ASSERT_MATCH(r, "/a/b", "ab");
    ASSERT_MATCH(r, "/a-b", "a-b");
    ASSERT_NO_MATCH(r, "/ab");
    ASSERT_NO_MATCH(r, "/x/y");
    ASSERT_MATCH(r, "/x/y/z", "deep");
    ASSERT_NO_MATCH(r, "/x/y/zz");
    router_free(r);
}

#define MANY 10000

static void test_ten_thousand_routes(void **state)
{
    (void)state;
    fg_config_t cfg = {0};
    fg_route_t *routes = calloc(2 * MANY + 1, sizeof *routes);
    char *paths = malloc((size_t)(2 * MANY) * 48);
    char *ids = malloc((size_t)(2 * MANY) * 24);
    assert_non_null(routes);
    assert_non_null(paths);
    assert_non_null(ids);
    for (int i = 0; i < MANY; i++) {
        char *pp = paths + (size_t)(2 * i) * 48, *pe = paths + (size_t)(2 * i + 1) * 48;
        char *ip = ids + (size_t)(2 * i) * 24, *ie = ids + (size_t)(2 * i + 1) * 24;
        snprintf(pp, 48, "/svc/%d/*", i);
        snprintf(pe, 48, "/svc/%d/exact", i);
        snprintf(ip, 24, "p%d", i);
        snprintf(ie, 24, "e%d", i);
        routes[2 * i] = (fg_route_t){.id = ip, .path = pp, .prefix = true, .upstream = "u"};
        routes[2 * i + 1] = (fg_route_t){.id = ie, .path = pe, .upstream = "u"};
    }
    routes[2 * MANY] = (fg_route_t){.id = "all", .path = "/*", .prefix = true, .upstream = "u"};
    cfg.routes = routes;
    cfg.n_routes = 2 * MANY + 1;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    dp_router_t *r = router_build(&cfg, &err);
    assert_non_null(r);

    char path[64], want[24];
    for (int i = 0; i < MANY; i++) {
        snprintf(path, sizeof path, "/svc/%d/exact", i);
        snprintf(want, sizeof want, "e%d", i);
        ASSERT_MATCH(r, path, want);
        snprintf(path, sizeof path, "/svc/%d/other/x", i);
        snprintf(want, sizeof want, "p%d", i);
        ASSERT_MATCH(r, path, want);
        snprintf(path, sizeof path, "/svc/%d", i);
        ASSERT_MATCH(r, path, want);
    }
    ASSERT_MATCH(r, "/svc/10000/x", "all");
    ASSERT_MATCH(r, "/svc", "all");

    /* Cost is per segment, not per route: the trie holds one node per distinct prefix. */
    assert_true(r->n_nodes <= 2 * MANY + 3);
    assert_true(r->edge_mask + 1 <= 4 * r->n_nodes); /* the table stays 1/4..1/2 full */
    router_free(r);
    free(routes);
    free(paths);
    free(ids);
}

/* Tables sized by distinct prefixes, not by the sum of all paths' segments: 10,000 routes
 * six segments deep under one shared "/api/v1/team/service" need about 10,000 nodes, not
 * 60,000, and the memory follows. */
static void test_tables_follow_distinct_prefixes(void **state)
{
    (void)state;
    fg_config_t cfg = {0};
    fg_route_t *routes = calloc(MANY, sizeof *routes);
    char *paths = malloc((size_t)MANY * 64);
    assert_non_null(routes);
    assert_non_null(paths);
    for (int i = 0; i < MANY; i++) {
        char *pp = paths + (size_t)i * 64;
        snprintf(pp, 64, "/api/v1/team/service/resource-%d/*", i);
        routes[i] = (fg_route_t){.id = pp, .path = pp, .prefix = true, .upstream = "u"};
    }
    cfg.routes = routes;
    cfg.n_routes = MANY;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    dp_router_t *r = router_build(&cfg, &err);
    assert_non_null(r);

    assert_int_equal(r->n_nodes, MANY + 5);
    assert_int_equal(r->nodes_cap, r->n_nodes);
    assert_true(r->edge_mask + 1 <= 4 * r->n_nodes);
    /* nodes + edges + refs: well under what the segment total (60,000) would have reserved. */
    size_t per_node = sizeof(rnode_t) + 4 * sizeof(redge_t);
    assert_true(router_memory(r) <= (MANY + 5) * per_node + MANY * sizeof(uint32_t) + 4096);
    assert_true(router_memory(r) < 60000 * 2 * sizeof(redge_t));

    char path[80], want[64];
    for (int i = 0; i < MANY; i += 7) {
        snprintf(path, sizeof path, "/api/v1/team/service/resource-%d/items/9", i);
        snprintf(want, sizeof want, "/api/v1/team/service/resource-%d/*", i);
        ASSERT_MATCH(r, path, want);
    }
    ASSERT_NO_MATCH(r, "/api/v1/team/service/resource-x/1");
    ASSERT_NO_MATCH(r, "/api/v1/team/service");
    router_free(r);
    free(routes);
    free(paths);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_exact_beats_prefix),
        cmocka_unit_test(test_longer_prefix_wins),
        cmocka_unit_test(test_prefix_boundaries),
        cmocka_unit_test(test_catch_all),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_methods_fall_back_to_shorter_prefix),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_config_order),
        cmocka_unit_test(test_empty_and_errors),
        cmocka_unit_test(test_segments_are_not_substrings),
        cmocka_unit_test(test_ten_thousand_routes),
        cmocka_unit_test(test_tables_follow_distinct_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
