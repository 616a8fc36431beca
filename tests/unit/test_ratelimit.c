/* test_ratelimit.c - token-bucket math, the local bucket table, and local decisions.
 *
 * Includes dataplane/ratelimit.c to reach the table and the URL parser. Decisions run through
 * ratelimit_check() on requests built on a real generation (real JSON through the shared
 * decoder), without an event loop: the backend is local, so nothing waits and nothing is sent.
 * Redis behaviour (sharing, timeouts, fallback, reconnect) is tested against a real
 * redis-server in tests/integration/test_ratelimit.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <malloc.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dataplane/ratelimit.c"

/* ---- bucket math ------------------------------------------------------------------------ */

static void test_bucket_starts_full_and_empties(void **state)
{
    (void)state;
    rl_limit_t l = {.max = 10, .window_ms = 1000, .burst = 0};
    rl_state_t s;
    rl_state_init(&s, &l, 5000);
    for (int i = 0; i < 10; i++) {
        rl_state_refill(&s, &l, 5000);
        assert_true(rl_state_has_token(&s, &l));
        s.units -= l.window_ms;
    }
    assert_false(rl_state_has_token(&s, &l));
    /* One token per window/max = 100 ms. */
    rl_state_refill(&s, &l, 5099);
    assert_false(rl_state_has_token(&s, &l));
    rl_state_refill(&s, &l, 5100);
    assert_true(rl_state_has_token(&s, &l));
    assert_int_equal(s.units, 1000);
}

static void test_burst_adds_depth_not_rate(void **state)
{
    (void)state;
    rl_limit_t l = {.max = 2, .window_ms = 1000, .burst = 3};
    rl_state_t s;
    rl_state_init(&s, &l, 0);
    int taken = 0;
    while (rl_state_has_token(&s, &l)) {
        s.units -= l.window_ms;
        taken++;
    }
    assert_int_equal(taken, 5); /* max + burst at first */
    /* Refill is max per window: after one second, two tokens, not five. */
    rl_state_refill(&s, &l, 1000);
    assert_int_equal(s.units / l.window_ms, 2);
    /* A long idle time fills the bucket up to max + burst and no further. */
    rl_state_refill(&s, &l, 3600000);
    assert_int_equal(s.units, 5000);
}

static void test_refill_without_overflow_or_time_travel(void **state)
{
    (void)state;
    rl_limit_t l = {.max = UINT32_MAX, .window_ms = 86400000, .burst = UINT32_MAX};
    rl_state_t s;
    rl_state_init(&s, &l, 1000);
    s.units = 0;
    rl_state_refill(&s, &l, UINT64_MAX / 2); /* elapsed * max would overflow */
    assert_true(s.units == ((uint64_t)UINT32_MAX * 2) * 86400000u);
    s.units = 7;
    uint64_t stamp = s.stamp_ms;
    rl_state_refill(&s, &l, stamp - 10); /* the clock stepped back: nothing refills */
    assert_int_equal(s.units, 7);
    assert_true(s.stamp_ms == stamp);
}

static void test_verdict_headers_values(void **state)
{
    (void)state;
    rl_verdict_t v;
    rl_limit_t l = {.max = 100, .window_ms = 60000, .burst = 0};
    /* Empty: a token in 600 ms (Retry-After rounds up to 1 s), full in 60 s. */
    rl_verdict_make(&v, &l, 0, false);
    assert_false(v.allowed);
    assert_int_equal(v.limit, 100);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(v.reset_s, 60);
    /* 10 per 10 minutes, half a token left: Retry-After 30 s, full in 570 s. */
    l = (rl_limit_t){.max = 10, .window_ms = 600000, .burst = 0};
    rl_verdict_make(&v, &l, 300000, false);
    assert_int_equal(v.retry_after_s, 30);
    assert_int_equal(v.reset_s, 570);
    /* Allowed with 7.5 tokens left: 7 remaining, no Retry-After. */
    rl_verdict_make(&v, &l, 4500000, true);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 7);
    assert_int_equal(v.retry_after_s, 0);
    assert_int_equal(v.reset_s, 150);
    /* Burst counts in Remaining and in the time to full. */
    l = (rl_limit_t){.max = 1, .window_ms = 1000, .burst = 4};
    rl_verdict_make(&v, &l, 5000, true);
    assert_int_equal(v.remaining, 5);
    assert_int_equal(v.reset_s, 0);
}

/* ---- the table -------------------------------------------------------------------------- */

static void test_table_evicts_least_recently_used(void **state)
{
    (void)state;
    rl_table_t t;
    rl_limit_t l = {.max = 5, .window_ms = 1000, .burst = 0};
    assert_int_equal(table_init(&t, FG_RL_MIN_BUCKETS), 0);
    for (uint64_t k = 1; k <= FG_RL_MIN_BUCKETS; k++)
        table_get(&t, k, &l, 0)->state.units = k; /* each bucket remembers its key */
    assert_int_equal(t.h->used, FG_RL_MIN_BUCKETS);
    table_get(&t, 1, &l, 0); /* 1 is now the most recent; 2 the least */
    rl_bucket_t *b = table_get(&t, 1000, &l, 0);
    assert_int_equal(b->state.units, 5000); /* new and full */
    assert_int_equal(t.h->used, FG_RL_MIN_BUCKETS);
    assert_int_equal(table_get(&t, 1, &l, 0)->state.units, 1); /* kept */
    assert_int_equal(table_get(&t, 2, &l, 0)->state.units, 5000); /* evicted, back full */
    for (uint64_t k = 4; k <= FG_RL_MIN_BUCKETS; k++) /* survivors kept their state */
        assert_int_equal(table_get(&t, k, &l, 0)->state.units, k);
    /* Chains stay consistent through evictions: many more keys than entries. */
    for (uint64_t k = 5000; k < 5000 + 50 * FG_RL_MIN_BUCKETS; k++)
        assert_int_equal(table_get(&t, k * 0x9e3779b97f4a7c15ull | 1, &l, 0)->state.units,
                         5000);
    assert_int_equal(t.h->used, FG_RL_MIN_BUCKETS);
    table_free(&t);
}

static void test_table_resets_a_bucket_whose_limit_changed(void **state)
{
    (void)state;
    rl_table_t t;
    rl_limit_t a = {.max = 5, .window_ms = 1000, .burst = 0};
    rl_limit_t b = {.max = 50, .window_ms = 1000, .burst = 0};
    assert_int_equal(table_init(&t, 64), 0);
    table_get(&t, 42, &a, 0)->state.units = 0;
    assert_int_equal(table_get(&t, 42, &a, 0)->state.units, 0);   /* same limit: kept */
    assert_int_equal(table_get(&t, 42, &b, 0)->state.units, 50000); /* changed: full */
    table_free(&t);
}

/* Run `fn` on `t` in a child process (as another worker would) and wait for it. */
static void in_child(void (*fn)(rl_table_t *), rl_table_t *t)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(t);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static const rl_limit_t five = {.max = 5, .window_ms = 1000, .burst = 0};

static void take_three_of_42(rl_table_t *t)
{
    table_lock(t);
    table_get(t, 42, &five, 0)->state.units -= 3 * five.window_ms;
    table_unlock(t);
}

static void resize_and_empty_7(rl_table_t *t)
{
    if (table_ensure(t, 128) != 0) /* a new maxBuckets, applied by this "worker" */
        _exit(1);
    table_lock(t);
    table_get(t, 7, &five, 0)->state.units = 0;
    table_unlock(t);
}

static void die_holding_the_lock(rl_table_t *t)
{
    table_lock(t);
    _exit(0);
}

/* Shared across fork: what a child takes from a bucket, the parent sees; the table's size
 * follows the last configured maxBuckets for every process. */
static void test_shared_table_across_processes(void **state)
{
    (void)state;
    rl_table_t t;
    assert_int_equal(table_map(&t, 4096, true), 0);
    table_reset(&t, 64);
    table_get(&t, 42, &five, 0); /* full: 5 tokens */
    in_child(take_three_of_42, &t);
    assert_int_equal(table_get(&t, 42, &five, 0)->state.units, 2000);

    in_child(resize_and_empty_7, &t);
    assert_int_equal(t.h->cap, 128);
    assert_int_equal(t.h->used, 1);
    assert_int_equal(table_get(&t, 7, &five, 0)->state.units, 0);     /* the child's bucket */
    assert_int_equal(table_get(&t, 42, &five, 0)->state.units, 5000); /* emptied by the resize */
    table_free(&t);
}

/* A worker killed holding the lock does not stall the others: the lock is taken over from
 * the dead pid and the table, whose links it may have left half-updated, is emptied. */
static void test_lock_taken_over_from_a_dead_holder(void **state)
{
    (void)state;
    rl_table_t t;
    assert_int_equal(table_map(&t, 1024, true), 0);
    table_reset(&t, 64);
    table_get(&t, 42, &five, 0)->state.units = 0;
    in_child(die_holding_the_lock, &t);
    assert_int_not_equal(atomic_load(&t.h->lock), 0);
    table_lock(&t); /* returns: the holder is gone */
    assert_int_equal(atomic_load(&t.h->lock), (uint32_t)getpid());
    assert_int_equal(t.h->takeovers, 1);
    assert_int_equal(t.h->used, 0);
    assert_int_equal(table_get(&t, 42, &five, 0)->state.units, 5000);
    table_unlock(&t);
    assert_int_equal(atomic_load(&t.h->lock), 0);
    table_free(&t);
}

/* ---- decisions on requests -------------------------------------------------------------- */

static const char *const limits_json =
    "{\"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:9001\"}],"
    "\"rateLimit\":{\"perRoute\":[{\"path\":\"/exp/*\",\"max\":2,\"windowMs\":60000,"
    "\"message\":\"heavily \\\"limited\\\"\\n\"}]},"
    "\"routes\":["
    "{\"id\":\"free\",\"path\":\"/free/*\",\"upstream\":\"u\"},"
    "{\"id\":\"exp\",\"path\":\"/exp/*\",\"upstream\":\"u\"},"
    "{\"id\":\"ident\",\"path\":\"/ident/*\",\"upstream\":\"u\","
    "\"rateLimit\":{\"max\":2,\"windowMs\":60000,\"burst\":1}}]}";

typedef struct fixture {
    dp_generation_t *g;
    dp_conn_t conn;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    fg_config_t *cfg = NULL;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    if (fg_config_parse(limits_json, strlen(limits_json), &cfg, &err) < 0)
        fail_msg("config: %s: %s", err.field, err.message);
    f->g = generation_create(cfg, 1, NULL, &err);
    assert_non_null(f->g);
    ratelimit_configure(f->g->config);
    f->conn.arena = fg_arena_new(4096);
    f->conn.req.conn = &f->conn;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    fg_arena_free(f->conn.arena);
    generation_release(f->g);
    ratelimit_shutdown();
    free(f);
    return 0;
}

/* A fresh request for `path` from `ip` (and key `key`, or none). */
static dp_request_t *request(fixture_t *f, const char *route, const char *path, const char *ip,
                             const char *key)
{
    dp_request_t *r = &f->conn.req;
    fg_arena_reset(f->conn.arena);
    memset(r, 0, sizeof *r);
    r->conn = &f->conn;
    r->gen = f->g;
    for (size_t i = 0; i < f->g->config->n_routes; i++)
        if (strcmp(f->g->config->routes[i].id, route) == 0)
            r->route = &f->g->config->routes[i];
    assert_non_null(r->route);
    r->path = path;
    r->path_len = strlen(path);
    r->key_name = key;
    snprintf(f->conn.peer_ip, sizeof f->conn.peer_ip, "%s", ip);
    f->conn.peer_ip_len = (uint8_t)strlen(ip);
    return r;
}

static bool has_header(const dp_request_t *r, const char *line)
{
    return r->extra_headers && strstr(r->extra_headers, line) != NULL &&
           (size_t)(strstr(r->extra_headers, line) - r->extra_headers) < r->extra_headers_len;
}

static void test_identity_is_key_name_else_ip(void **state)
{
    fixture_t *f = *state;
    dp_counters_t before = *metrics_counters();
    /* max 2 + burst 1: three requests per identity. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_check(request(f, "ident", "/ident/a", "10.0.0.1", NULL)), 0);
    dp_request_t *r = request(f, "ident", "/ident/a", "10.0.0.1", NULL);
    assert_int_equal(ratelimit_check(r), 429);
    assert_true(has_header(r, "RateLimit-Limit: 2\r\n"));
    assert_true(has_header(r, "RateLimit-Remaining: 0\r\n"));
    assert_true(has_header(r, "Retry-After: 30\r\n"));
    assert_true(has_header(r, "RateLimit-Reset: 90\r\n"));
    assert_null(r->error_message); /* no message configured: the default text */
    /* Another IP, and an API key (even one named like the IP) each have their own bucket. */
    assert_int_equal(ratelimit_check(request(f, "ident", "/ident/a", "10.0.0.2", NULL)), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_check(request(f, "ident", "/ident/a", "10.0.0.1",
                                                 "10.0.0.1")), 0);
    assert_int_equal(ratelimit_check(request(f, "ident", "/ident/b", "10.0.0.9", "10.0.0.1")),
                     429);
    /* Allowed responses carry the headers too. */
    r = request(f, "ident", "/ident/a", "10.0.0.3", NULL);
    assert_int_equal(ratelimit_check(r), 0);
    assert_true(has_header(r, "RateLimit-Remaining: 2\r\n"));
    assert_false(has_header(r, "Retry-After"));
    /* Counted as local decisions: 3 + 1 + 3 + 1 allowed, 2 limited. */
    const dp_counters_t *m = metrics_counters();
    assert_int_equal(m->ratelimit_allowed[DP_RL_BACKEND_LOCAL] -
                         before.ratelimit_allowed[DP_RL_BACKEND_LOCAL], 8);
    assert_int_equal(m->ratelimit_limited[DP_RL_BACKEND_LOCAL] -
                         before.ratelimit_limited[DP_RL_BACKEND_LOCAL], 2);
    assert_int_equal(m->ratelimit_allowed[DP_RL_BACKEND_REDIS], 0);
}

static void test_per_route_entry_shared_with_message(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(ratelimit_check(request(f, "exp", "/exp/1", "10.0.0.1", NULL)), 0);
    assert_int_equal(ratelimit_check(request(f, "exp", "/exp/2", "10.0.0.2", "k")), 0);
    dp_request_t *r = request(f, "exp", "/exp/3", "10.0.0.3", NULL);
    assert_int_equal(ratelimit_check(r), 429);
    assert_string_equal(r->error_message, "heavily \\\"limited\\\"\\u000a"); /* JSON-escaped */
    /* Matching is by request path: another route under /exp/ is limited too, others not. */
    assert_int_equal(ratelimit_check(request(f, "free", "/exp/x", "10.0.0.4", NULL)), 429);
    assert_int_equal(ratelimit_check(request(f, "free", "/free/x", "10.0.0.4", NULL)), 0);
}

static void test_routes_without_limits_cost_nothing(void **state)
{
    fixture_t *f = *state;
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 1000; i++) {
        dp_request_t *r = request(f, "free", "/free/x", "10.0.0.1", NULL);
        assert_int_equal(ratelimit_check(r), 0);
        assert_null(r->extra_headers);
    }
    assert_true(mallinfo2().uordblks == before.uordblks);
}

static void test_local_decisions_do_not_malloc(void **state)
{
    fixture_t *f = *state;
    char ip[32];
    /* Warm: the table exists, the arena has its chunk. */
    ratelimit_check(request(f, "ident", "/ident/a", "10.1.0.0", NULL));
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 2000; i++) {
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
        ratelimit_check(request(f, "ident", "/ident/a", ip, NULL));
    }
    assert_true(mallinfo2().uordblks == before.uordblks);
}

static void test_buckets_survive_a_generation_swap(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_check(request(f, "ident", "/ident/a", "10.2.0.1", NULL)), 0);
    /* The same config again (a new generation, as after an unrelated change). */
    fg_config_t *cfg = NULL;
    fg_error_t err;
    memset(&err, 0, sizeof err);
    assert_int_equal(fg_config_parse(limits_json, strlen(limits_json), &cfg, &err), 0);
    dp_generation_t *g2 = generation_create(cfg, 2, NULL, &err);
    assert_non_null(g2);
    ratelimit_configure(g2->config);
    generation_release(f->g);
    f->g = g2;
    assert_int_equal(ratelimit_check(request(f, "ident", "/ident/a", "10.2.0.1", NULL)), 429);
}

static void test_disabled_rate_limiting_admits_everything(void **state)
{
    (void)state;
    static const char json[] =
        "{\"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:9001\"}],"
        "\"rateLimit\":{\"enabled\":false,\"global\":{\"max\":1,\"windowMs\":60000}},"
        "\"routes\":[{\"id\":\"r\",\"path\":\"/*\",\"upstream\":\"u\"}]}";
    fixture_t f;
    fg_config_t *cfg = NULL;
    fg_error_t err;
    memset(&f, 0, sizeof f);
    memset(&err, 0, sizeof err);
    assert_int_equal(fg_config_parse(json, strlen(json), &cfg, &err), 0);
    f.g = generation_create(cfg, 1, NULL, &err);
    f.conn.arena = fg_arena_new(4096);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_check(request(&f, "r", "/x", "10.0.0.1", NULL)), 0);
    fg_arena_free(f.conn.arena);
    generation_release(f.g);
    ratelimit_shutdown();
}

static void test_redis_url_parse(void **state)
{
    (void)state;
    char b[128];
    redis_target_t t;
    snprintf(b, sizeof b, "redis://127.0.0.1:6380/2");
    assert_int_equal(redis_url_parse(b, &t), 0);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 6380);
    assert_int_equal(t.db, 2);
    assert_null(t.password);
    snprintf(b, sizeof b, "redis://:s3cret@localhost");
    assert_int_equal(redis_url_parse(b, &t), 0);
    assert_string_equal(t.host, "localhost");
    assert_int_equal(t.port, 6379);
    assert_string_equal(t.password, "s3cret");
    assert_null(t.user);
    snprintf(b, sizeof b, "redis://app:pw@[::1]:7000/0");
    assert_int_equal(redis_url_parse(b, &t), 0);
    assert_string_equal(t.host, "::1");
    assert_string_equal(t.user, "app");
    assert_string_equal(t.password, "pw");
    assert_int_equal(t.port, 7000);
    snprintf(b, sizeof b, "unix:/run/redis.sock");
    assert_int_equal(redis_url_parse(b, &t), 0);
    assert_string_equal(t.unix_path, "/run/redis.sock");
    const char *bad[] = {"rediss://h", "redis://h:0", "redis://h:99999", "redis://h/x",
                         "redis://", "redis://[::1", "http://h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(b, sizeof b, "%s", bad[i]);
        assert_int_equal(redis_url_parse(b, &t), -EINVAL);
    }
}

static void test_logged_urls_hide_passwords(void **state)
{
    (void)state;
    char out[128];
    url_mask_password("redis://app:pw@h:1/2", out, sizeof out);
    assert_string_equal(out, "redis://app:***@h:1/2");
    url_mask_password("redis://:s3cret@h", out, sizeof out);
    assert_string_equal(out, "redis://:***@h");
    url_mask_password("redis://pw@h", out, sizeof out);
    assert_string_equal(out, "redis://***@h");
    url_mask_password("redis://127.0.0.1:6379/0", out, sizeof out);
    assert_string_equal(out, "redis://127.0.0.1:6379/0");
    url_mask_password("unix:/run/redis.sock", out, sizeof out);
    assert_string_equal(out, "unix:/run/redis.sock");
}

static void test_state_without_redis_is_disabled(void **state)
{
    (void)state;
    assert_string_equal(ratelimit_redis_state(), "disabled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_starts_full_and_empties),
        cmocka_unit_test(test_shared_table_across_processes),
        cmocka_unit_test(test_lock_taken_over_from_a_dead_holder),
        cmocka_unit_test(test_burst_adds_depth_not_rate),
        cmocka_unit_test(test_refill_without_overflow_or_time_travel),
        cmocka_unit_test(test_verdict_headers_values),
        cmocka_unit_test(test_table_evicts_least_recently_used),
        cmocka_unit_test(test_table_resets_a_bucket_whose_limit_changed),
        cmocka_unit_test_setup_teardown(test_identity_is_key_name_else_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_route_entry_shared_with_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_routes_without_limits_cost_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_decisions_do_not_malloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buckets_survive_a_generation_swap, setup, teardown),
        cmocka_unit_test(test_disabled_rate_limiting_admits_everything),
        cmocka_unit_test(test_redis_url_parse),
        cmocka_unit_test(test_logged_urls_hide_passwords),
        cmocka_unit_test(test_state_without_redis_is_disabled),
    };
    fg_log_init("dp", FG_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
