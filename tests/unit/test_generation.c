/* test_generation.c - config generations: building, upstream resolution, refcounted swaps.
 *
 * Includes dataplane/generation.c to read `generations_live`, the count of generations not
 * yet freed, which is how these tests see that an old generation outlives a swap exactly as
 * long as someone holds it. Configs come from real JSON through the shared decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/generation.c"

#define CHECKSUM_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CHECKSUM_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static const char *const two_routes_json =
    "{\"upstreams\":["
    "{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"},"
    "{\"name\":\"beta\",\"url\":\"http://127.0.0.1:9002\"}],"
    "\"routes\":["
    "{\"id\":\"r-beta\",\"path\":\"/b\",\"upstream\":\"beta\"},"
    "{\"id\":\"r-alpha\",\"path\":\"/a/*\",\"upstream\":\"alpha\"}]}";

static fg_config_t *parse_config(const char *json)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;

    memset(&err, 0, sizeof(err));
    if (fg_config_parse(json, strlen(json), &cfg, &err) < 0)
        fail_msg("config did not parse: %s: %s", err.field, err.message);
    return cfg;
}

static dp_generation_t *make_generation(int64_t version, const char *checksum)
{
    fg_error_t err;
    dp_generation_t *g = generation_create(parse_config(two_routes_json), version, checksum,
                                           &err);
    if (!g)
        fail_msg("generation_create: %s: %s", err.field, err.message);
    return g;
}

static int teardown(void **state)
{
    (void)state;
    generation_shutdown();
    assert_int_equal(generations_live, 0);
    return 0;
}

static void test_create_resolves_route_upstreams(void **state)
{
    dp_generation_t *g = make_generation(7, CHECKSUM_A);
    const fg_route_t *r;

    (void)state;
    assert_int_equal(g->refs, 1);
    assert_int_equal(g->version, 7);
    assert_string_equal(g->checksum, CHECKSUM_A);
    assert_int_equal(g->config->n_routes, 2);
    assert_non_null(g->router);
    /* Routes in config order; each points at the upstream its name says. */
    assert_string_equal(g->route_upstream[0]->name, "beta");
    assert_string_equal(g->route_upstream[1]->name, "alpha");
    assert_ptr_equal(g->route_upstream[1], &g->config->upstreams[0]);

    r = router_match(g->router, "GET", 3, NULL, 0, "/a/x", 4);
    assert_non_null(r);
    assert_string_equal(r->id, "r-alpha");
    assert_null(generation_current()); /* creating is not installing */
    assert_int_equal(generations_live, 1);
    generation_release(g);
    assert_int_equal(generations_live, 0);
}

static void test_held_generation_survives_swap(void **state)
{
    dp_generation_t *g1 = make_generation(1, CHECKSUM_A), *g2, *held;

    (void)state;
    generation_install(g1);
    assert_ptr_equal(generation_current(), g1);
    assert_true(g1->applied_at_ms > 0);

    held = generation_acquire(generation_current()); /* a request in flight */
    assert_ptr_equal(held, g1);
    assert_int_equal(g1->refs, 2);

    g2 = make_generation(2, CHECKSUM_B);
    generation_install(g2);
    assert_ptr_equal(generation_current(), g2);
    assert_int_equal(g2->refs, 1);
    /* The old one lost the slot's reference but the request still reads it. */
    assert_int_equal(generations_live, 2);
    assert_int_equal(held->refs, 1);
    assert_int_equal(held->version, 1);
    assert_string_equal(held->route_upstream[0]->name, "beta");

    generation_release(held); /* the request ends: last holder frees it */
    assert_int_equal(generations_live, 1);
    assert_ptr_equal(generation_current(), g2);
}

static void test_unheld_generation_freed_on_swap(void **state)
{
    (void)state;
    generation_install(make_generation(1, CHECKSUM_A));
    generation_install(make_generation(2, CHECKSUM_B));
    assert_int_equal(generations_live, 1);
    assert_int_equal(generation_current()->version, 2);
    generation_shutdown();
    assert_null(generation_current());
    assert_int_equal(generations_live, 0);
}

static void test_reinstalling_current_drops_callers_reference(void **state)
{
    dp_generation_t *g = make_generation(3, CHECKSUM_A);

    (void)state;
    generation_install(g);
    generation_install(generation_acquire(g));
    assert_ptr_equal(generation_current(), g);
    assert_int_equal(g->refs, 1);
    assert_int_equal(generations_live, 1);
}

static void test_unknown_upstream_refused_and_nothing_leaks(void **state)
{
    const char *json = "{\"upstreams\":[{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"}],"
                       "\"routes\":[{\"id\":\"ok\",\"path\":\"/ok\",\"upstream\":\"alpha\"},"
                       "{\"id\":\"bad\",\"path\":\"/bad\",\"upstream\":\"missing\"}]}";
    cJSON *tree = cJSON_Parse(json);
    fg_config_t *cfg = NULL;
    fg_error_t err;
    dp_generation_t *before = make_generation(1, CHECKSUM_A);

    (void)state;
    generation_install(before);
    /* decode without validate: the validator would refuse this before it got here. */
    assert_int_equal(fg_config_decode(tree, &cfg, &err), 0);
    cJSON_Delete(tree);
    memset(&err, 0, sizeof(err));
    assert_null(generation_create(cfg, 2, CHECKSUM_B, &err)); /* cfg is consumed */
    assert_string_equal(err.field, "routes[1].upstream");
    assert_non_null(strstr(err.message, "missing"));
    assert_ptr_equal(generation_current(), before);
    assert_int_equal(generations_live, 1);
}

static void test_null_arguments(void **state)
{
    fg_error_t err;

    (void)state;
    assert_null(generation_acquire(NULL));
    generation_release(NULL);
    generation_shutdown();
    assert_null(generation_create(NULL, 1, NULL, &err));
    assert_int_equal(generations_live, 0);
}

static void test_empty_config_is_a_generation(void **state)
{
    fg_error_t err;
    dp_generation_t *g = generation_create(fg_config_new_empty(), 1, NULL, &err);

    (void)state;
    assert_non_null(g);
    assert_string_equal(g->checksum, "");
    assert_null(router_match(g->router, "GET", 3, NULL, 0, "/", 1));
    generation_install(g);
    assert_int_equal(generation_current()->version, 1);
}

/* A config of n_routes routes over n_up upstreams, named so that sorted order differs from
 * config order. */
static fg_config_t *many_routes_config(int n_up, int n_routes)
{
    size_t cap = (size_t)n_routes * 96 + (size_t)n_up * 80 + 64, n = 0;
    char *json = malloc(cap);
    assert_non_null(json);
    n += (size_t)snprintf(json + n, cap - n, "{\"upstreams\":[");
    for (int i = 0; i < n_up; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"name\":\"u%d\",\"url\":\"http://127.0.0.1:%d\"}",
                              i ? "," : "", (n_up - i) * 7 % 9973, 1024 + i);
    n += (size_t)snprintf(json + n, cap - n, "],\"routes\":[");
    for (int i = 0; i < n_routes; i++)
        n += (size_t)snprintf(json + n, cap - n,
                              "%s{\"id\":\"r%d\",\"path\":\"/svc/%d/*\",\"upstream\":\"u%d\"}",
                              i ? "," : "", i, i, ((n_up - i % n_up) * 7) % 9973);
    n += (size_t)snprintf(json + n, cap - n, "]}");
    assert_true(n < cap);
    fg_config_t *cfg = parse_config(json);
    free(json);
    return cfg;
}

/* 20,000 routes over 2,000 upstreams: every route must still land on its own upstream. */
static void test_many_routes_resolve(void **state)
{
    dp_generation_t *g;
    fg_error_t err;

    (void)state;
    g = generation_create(many_routes_config(2000, 20000), 9, CHECKSUM_A, &err);
    if (!g)
        fail_msg("generation_create: %s: %s", err.field, err.message);
    for (size_t i = 0; i < g->config->n_routes; i++)
        assert_string_equal(g->route_upstream[i]->name, g->config->routes[i].upstream);
    generation_release(g);
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#endif

#if !defined(UNDER_ASAN) && defined(__GLIBC__)
static long resident_kb(void)
{
    long pages_total = 0, pages_res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_res) != 2)
        pages_res = -1;
    fclose(f);
    return pages_res < 0 ? -1 : pages_res * (sysconf(_SC_PAGESIZE) / 1024);
}
#endif

/* Installing a large config hands the heap's free pages back to the system: 64 MB of freed
 * blocks, pinned in the heap by small live blocks between them (as a decoded snapshot's
 * cJSON nodes are by the config's strings), stop counting as resident. glibc's allocator
 * only; ASan brings its own. */
static void test_large_install_returns_free_heap(void **state)
{
    enum { BLOCKS = 4096, BLOCK = 16 * 1024 };
    (void)state;
#if defined(UNDER_ASAN) || !defined(__GLIBC__)
    skip();
#else
    fg_error_t err;
    dp_generation_t *g = generation_create(many_routes_config(10, DP_GEN_TRIM_MIN_ITEMS), 3,
                                           CHECKSUM_A, &err);
    if (!g)
        fail_msg("generation_create: %s: %s", err.field, err.message);
    void **big = calloc(BLOCKS, sizeof *big), **pin = calloc(BLOCKS, sizeof *pin);
    assert_non_null(big);
    assert_non_null(pin);
    for (int i = 0; i < BLOCKS; i++) {
        big[i] = malloc(BLOCK);
        pin[i] = malloc(32);
        assert_non_null(big[i]);
        assert_non_null(pin[i]);
        memset(big[i], 0x5a, BLOCK);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(big[i]);
    long before = resident_kb();

    generation_install(g);
    long after = resident_kb();
    print_message("resident: %ld kB before install, %ld kB after\n", before, after);
    assert_true(before > 0 && after > 0);
    assert_true(before - after >= (long)BLOCKS * BLOCK / 1024 / 2);

    for (int i = 0; i < BLOCKS; i++)
        free(pin[i]);
    free(big);
    free(pin);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_create_resolves_route_upstreams, teardown),
        cmocka_unit_test_teardown(test_held_generation_survives_swap, teardown),
        cmocka_unit_test_teardown(test_unheld_generation_freed_on_swap, teardown),
        cmocka_unit_test_teardown(test_reinstalling_current_drops_callers_reference, teardown),
        cmocka_unit_test_teardown(test_unknown_upstream_refused_and_nothing_leaks, teardown),
        cmocka_unit_test_teardown(test_null_arguments, teardown),
        cmocka_unit_test_teardown(test_empty_config_is_a_generation, teardown),
        cmocka_unit_test_teardown(test_many_routes_resolve, teardown),
        cmocka_unit_test_teardown(test_large_install_returns_free_heap, teardown),
    };
    fg_log_init("dp", FG_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
