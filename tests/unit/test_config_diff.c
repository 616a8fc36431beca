/* test_config_diff.c - what the snapshot history says changed between two configurations.
 *
 * Entities are matched by name (upstreams, keys) or id (routes) whatever their order, an
 * entity whose JSON differs is "updated", settings sections are compared whole (security
 * without its keys), a change of route order alone is one "reordered" entry, and the list
 * is capped while the total keeps counting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controlplane/config_diff.h"

#define U(n, port) "{\"name\":\"" n "\",\"url\":\"http://127.0.0.1:" port "\"}"
#define R(id, path) "{\"id\":\"" id "\",\"path\":\"" path "\",\"upstream\":\"a\"}"

static char *diff(const char *a, const char *b, size_t max, int64_t *total)
{
    char *out = NULL;
    fg_error_t err;
    int rc = config_diff(a, b, max, &out, total, &err);
    if (rc)
        fail_msg("config_diff: %d %s", rc, err.message);
    return out;
}

static void expect(const char *a, const char *b, const char *want, int64_t want_total)
{
    int64_t total = -1;
    char *got = diff(a, b, 100, &total);
    assert_string_equal(got, want);
    assert_int_equal(total, want_total);
    free(got);
}

static void test_entities_by_name(void **state)
{
    (void)state;
    expect(NULL, "{\"upstreams\":[" U("a", "1") "]}",
           "[{\"kind\":\"upstream\",\"name\":\"a\",\"op\":\"created\"}]", 1);
    /* order of upstreams is not a change; a different url is */
    expect("{\"upstreams\":[" U("a", "1") "," U("b", "2") "]}",
           "{\"upstreams\":[" U("b", "3") "," U("a", "1") "]}",
           "[{\"kind\":\"upstream\",\"name\":\"b\",\"op\":\"updated\"}]", 1);
    expect("{\"upstreams\":[" U("a", "1") "," U("b", "2") "]}", "{\"upstreams\":[" U("b", "2") "]}",
           "[{\"kind\":\"upstream\",\"name\":\"a\",\"op\":\"deleted\"}]", 1);
    expect("{\"upstreams\":[" U("a", "1") "]}", "{\"upstreams\":[" U("a", "1") "]}", "[]", 0);
}

static void test_routes_reordered(void **state)
{
    (void)state;
    expect("{\"routes\":[" R("r1", "/1") "," R("r2", "/2") "]}",
           "{\"routes\":[" R("r2", "/2") "," R("r1", "/1") "]}",
           "[{\"kind\":\"route\",\"name\":\"*\",\"op\":\"reordered\"}]", 1);
    /* a new route at the end is not a reorder */
    expect("{\"routes\":[" R("r1", "/1") "]}",
           "{\"routes\":[" R("r1", "/1") "," R("r0", "/0") "]}",
           "[{\"kind\":\"route\",\"name\":\"r0\",\"op\":\"created\"}]", 1);
}

static void test_settings_and_keys(void **state)
{
    (void)state;
    static const char a[] =
        "{\"logging\":{\"level\":\"info\"},\"security\":{\"strict\":false,\"auth\":{\"keys\":"
        "[{\"name\":\"k1\",\"key\":\"aa\"}]}}}";
    static const char b[] =
        "{\"logging\":{\"level\":\"warn\"},\"security\":{\"strict\":false,\"auth\":{\"keys\":"
        "[{\"name\":\"k1\",\"key\":\"bb\"},{\"name\":\"k2\",\"key\":\"cc\"}]}}}";
    /* keys changed but security otherwise did not: no "settings security" entry, and the
     * key's digest never appears */
    expect(a, b,
           "[{\"kind\":\"key\",\"name\":\"k1\",\"op\":\"updated\"},"
           "{\"kind\":\"key\",\"name\":\"k2\",\"op\":\"created\"},"
           "{\"kind\":\"settings\",\"name\":\"logging\",\"op\":\"updated\"}]", 3);
}

static void test_cap_and_bad_input(void **state)
{
    int64_t total = 0;
    char *out;
    fg_error_t err;
    (void)state;
    out = diff(NULL, "{\"upstreams\":[" U("a", "1") "," U("b", "1") "," U("c", "1") "]}", 2,
               &total);
    assert_int_equal(total, 3);
    assert_string_equal(out, "[{\"kind\":\"upstream\",\"name\":\"a\",\"op\":\"created\"},"
                             "{\"kind\":\"upstream\",\"name\":\"b\",\"op\":\"created\"}]");
    free(out);
    assert_int_equal(config_diff("{", "{}", 10, &out, &total, &err), -EINVAL);
    assert_int_equal(config_diff("{}", "[]", 10, &out, &total, &err), -EINVAL);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entities_by_name),
        cmocka_unit_test(test_routes_reordered),
        cmocka_unit_test(test_settings_and_keys),
        cmocka_unit_test(test_cap_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
