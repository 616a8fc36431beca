/* test_balancer.c - unit tests for dataplane/balancer.c: each policy's distribution (smooth
 * weighted round-robin exactly, the random ones within tolerance), least-loaded choice,
 * consistent hashing (stable keys, header and cookie keys, minimal remapping when a target
 * leaves), skipping tried, ejected and breaker-refused targets, fallback resolution, state kept
 * across rebuilds and reset when breaker settings change. Configs are real decoded JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/balancer.h"
#include "dataplane/overload.h"
#include "dataplane/retry.h"
#include "fg_time.h"

#define NOW fg_now_ms() /* balancer_done reads the clock itself */

typedef struct built {
    fg_config_t *cfg;
    bal_set_t *set;
} built_t;

static built_t build(const char *upstreams)
{
    char text[4096];
    snprintf(text, sizeof text, "{\"upstreams\":[%s],\"routes\":[]}", upstreams);
    built_t b = {0};
    fg_error_t err;
    if (fg_config_parse(text, strlen(text), &b.cfg, &err) != 0)
        fail_msg("config: %s: %s", err.field, err.message);
    b.set = balancer_build(b.cfg, &err);
    assert_non_null(b.set);
    return b;
}

static void done(built_t *b)
{
    balancer_free(b->set);
    fg_config_free(b->cfg);
}

static const bal_upstream_t *up(const built_t *b, size_t i)
{
    return &b->set->ups[i];
}

/* Pick and end the attempt at once with `outcome`. */
static int pick1(const bal_upstream_t *bu, const char *ip, bal_outcome_t outcome)
{
    int i = balancer_pick(bu, NULL, ip, NULL, NOW);
    if (i >= 0)
        balancer_done(bu, i, outcome);
    return i;
}

#define T3 "{\"url\":\"http://10.0.0.1:1\",\"weight\":%d},{\"url\":\"http://10.0.0.2:1\"," \
           "\"weight\":%d},{\"url\":\"http://10.0.0.3:1\",\"weight\":%d}"

static void test_smooth_weighted_round_robin(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "{\"name\":\"w\",\"targets\":[" T3 "]}", 5, 1, 1);
    built_t b = build(u);
    /* nginx's example: weights 5,1,1 give a a b a c a a, every 7 picks. */
    static const int want[] = {0, 0, 1, 0, 2, 0, 0};
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 7; k++)
            assert_int_equal(pick1(up(&b, 0), "1.1.1.1", BAL_OK), want[k]);
    done(&b);
    balancer_shutdown();
}

static void test_least_conn_by_weight(void **state)
{
    (void)state;
    built_t b = build("{\"name\":\"l\",\"loadBalancing\":\"least-conn\",\"targets\":["
                      "{\"url\":\"http://10.0.0.1:1\",\"weight\":1},"
                      "{\"url\":\"http://10.0.0.2:1\",\"weight\":3}]}");
    int n[2] = {0};
    int picked[8];
    for (int k = 0; k < 8; k++) /* none ends: in-flight counts pile up */
        n[picked[k] = balancer_pick(up(&b, 0), NULL, "x", NULL, NOW)]++;
    assert_int_equal(n[0], 2);
    assert_int_equal(n[1], 6);
    for (int k = 0; k < 8; k++)
        balancer_done(up(&b, 0), picked[k], BAL_OK);
    assert_int_equal(b.set->ups[0].targets[0]->active, 0);
    done(&b);
    balancer_shutdown();
}

static void test_two_choices_spreads_and_prefers_idle(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "{\"name\":\"r\",\"loadBalancing\":\"random-two-choices\","
                          "\"targets\":[" T3 "]}", 1, 1, 1);
    built_t b = build(u);
    int n[3] = {0};
    for (int k = 0; k < 3000; k++)
        n[pick1(up(&b, 0), "x", BAL_OK)]++;
    for (int i = 0; i < 3; i++) /* 1000 each expected; binomial sd ~26 */
        assert_in_range(n[i], 850, 1150);
    /* Two busy targets: the idle one is in 2 of the 3 possible pairs and wins whenever
     * drawn, so it gets 2/3 of the picks. */
    b.set->ups[0].targets[0]->active = 50;
    b.set->ups[0].targets[1]->active = 50;
    int idle = 0;
    for (int k = 0; k < 300; k++)
        idle += pick1(up(&b, 0), "x", BAL_OK) == 2;
    assert_true(idle >= 170); /* 200 expected, sd 8 */
    b.set->ups[0].targets[0]->active = b.set->ups[0].targets[1]->active = 0;
    done(&b);
    balancer_shutdown();
}

static void test_consistent_hash_stable_and_minimal_remap(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "{\"name\":\"h\",\"loadBalancing\":\"consistent-hash\","
                          "\"targets\":[" T3 "]}", 1, 1, 1);
    built_t b = build(u);
    built_t two = build("{\"name\":\"h\",\"loadBalancing\":\"consistent-hash\",\"targets\":["
                        "{\"url\":\"http://10.0.0.1:1\"},{\"url\":\"http://10.0.0.2:1\"}]}");
    int n[3] = {0}, moved = 0, kept_wrongly = 0;
    char ip[32];
    for (int k = 0; k < 3000; k++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", k >> 16, (k >> 8) & 255, k & 255);
        int i = pick1(up(&b, 0), ip, BAL_OK);
        assert_int_equal(pick1(up(&b, 0), ip, BAL_OK), i); /* same key, same target */
        n[i]++;
        int j = pick1(up(&two, 0), ip, BAL_OK);
        if (i != 2 && j != i)
            kept_wrongly++;
        moved += i == 2;
    }
    for (int i = 0; i < 3; i++) /* ring variance: within 25 % of even */
        assert_in_range(n[i], 750, 1250);
    assert_int_equal(kept_wrongly, 0); /* only the removed target's keys moved */
    assert_true(moved > 0);
    done(&two);
    done(&b);
    balancer_shutdown();
}

static void test_hash_on_header_and_cookie(void **state)
{
    (void)state;
    built_t b = build("{\"name\":\"c\",\"loadBalancing\":\"consistent-hash\","
                      "\"hashOn\":\"cookie:sid\",\"targets\":["
                      "{\"url\":\"http://10.0.0.1:1\"},{\"url\":\"http://10.0.0.2:1\"},"
                      "{\"url\":\"http://10.0.0.3:1\"},{\"url\":\"http://10.0.0.4:1\"}]}");
    char buf[128];
    http1_header_t hd[1];
    http1_head_t h = {.buf = buf, .headers = hd, .n_headers = 1, .host = -1};
    int seen[4] = {0};
    for (int k = 0; k < 64; k++) {
        int n = snprintf(buf, sizeof buf, "Cookiea=1; sid=user%d; b=2", k);
        hd[0] = (http1_header_t){.name_off = 0, .name_len = 6, .value_off = 6,
                                 .value_len = (uint32_t)n - 6};
        int i = balancer_pick(up(&b, 0), &h, "1.1.1.1", NULL, NOW);
        balancer_done(up(&b, 0), i, BAL_OK);
        /* Only the sid value counts: other cookies and the client IP change nothing. */
        n = snprintf(buf, sizeof buf, "Cookiesid=user%d; zz=9", k);
        hd[0].value_len = (uint32_t)n - 6;
        assert_int_equal(pick1(up(&b, 0), "9.9.9.9", BAL_OK) >= 0, 1);
        int j = balancer_pick(up(&b, 0), &h, "2.2.2.2", NULL, NOW);
        balancer_done(up(&b, 0), j, BAL_OK);
        assert_int_equal(i, j);
        seen[i] = 1;
    }
    assert_int_equal(seen[0] + seen[1] + seen[2] + seen[3], 4);
    done(&b);
    balancer_shutdown();
}

static void test_skips_tried_ejected_and_open(void **state)
{
    (void)state;
    char u[512];
    snprintf(u, sizeof u, "{\"name\":\"s\",\"healthCheck\":{\"enabled\":false,"
                          "\"consecutiveFailures\":2,\"ejectDuration\":1000},"
                          "\"circuitBreaker\":{\"minRequests\":2,\"failureThreshold\":20},"
                          "\"targets\":[" T3 "]}", 1, 1, 1);
    built_t b = build(u);
    const bal_upstream_t *bu = up(&b, 0);
    uint64_t tried[BAL_TRIED_WORDS] = {0};
    tried[0] = 1u << 0 | 1u << 2;
    for (int k = 0; k < 5; k++) {
        int i = balancer_pick(bu, NULL, "x", tried, NOW);
        assert_int_equal(i, 1);
        balancer_done(bu, i, BAL_OK);
    }
    /* Target 1 fails twice: ejected (passive) and its breaker opens (2 of 7 failed). */
    balancer_pick(bu, NULL, "x", tried, NOW);
    balancer_done(bu, 1, BAL_FAILED);
    balancer_pick(bu, NULL, "x", tried, NOW);
    balancer_done(bu, 1, BAL_FAILED);
    assert_int_equal(bu->targets[1]->breaker.state, DP_BREAKER_OPEN);
    /* Untried are all refused now: the tried ones are better than nothing. */
    int i = balancer_pick(bu, NULL, "x", tried, NOW);
    assert_true(i == 0 || i == 2);
    balancer_done(bu, i, BAL_OK);
    /* Every breaker open: no pick. */
    for (int t = 0; t < 3; t += 2) {
        balancer_done(bu, t, BAL_FAILED); /* done() without pick is fine for counts */
        balancer_done(bu, t, BAL_FAILED);
        balancer_done(bu, t, BAL_FAILED);
    }
    assert_int_equal(balancer_pick(bu, NULL, "x", NULL, NOW), -1);
    done(&b);
    balancer_shutdown();
}

static void test_unhealthy_all_still_served(void **state)
{
    (void)state;
    built_t b = build("{\"name\":\"p\",\"healthCheck\":{\"enabled\":false,"
                      "\"consecutiveFailures\":1},\"targets\":["
                      "{\"url\":\"http://10.0.0.1:1\"},{\"url\":\"http://10.0.0.2:1\"}]}");
    const bal_upstream_t *bu = up(&b, 0);
    balancer_done(bu, 0, BAL_FAILED);
    balancer_done(bu, 1, BAL_FAILED);
    assert_false(health_up(&bu->targets[0]->health, NOW));
    assert_true(pick1(bu, "x", BAL_OK) >= 0); /* panic: better a maybe-down target */
    done(&b);
    balancer_shutdown();
}

static void test_state_survives_rebuild_unless_settings_change(void **state)
{
    (void)state;
    const char *u = "{\"name\":\"k\",\"circuitBreaker\":{\"minRequests\":1},"
                    "\"url\":\"http://10.0.0.1:1\"},"
                    "{\"name\":\"f\",\"url\":\"http://10.0.0.9:1\"},"
                    "{\"name\":\"g\",\"url\":\"http://10.0.0.8:1\",\"fallback\":\"f\"}";
    built_t b1 = build(u);
    balancer_done(up(&b1, 0), 0, BAL_FAILED);
    assert_int_equal(up(&b1, 0)->targets[0]->breaker.state, DP_BREAKER_OPEN);
    assert_ptr_equal(up(&b1, 2)->fallback, up(&b1, 1));
    assert_null(up(&b1, 0)->fallback);
    built_t b2 = build(u);
    assert_ptr_equal(up(&b2, 0)->targets[0], up(&b1, 0)->targets[0]);
    assert_int_equal(balancer_pick(up(&b2, 0), NULL, "x", NULL, NOW), -1);
    built_t b3 = build("{\"name\":\"k\",\"circuitBreaker\":{\"minRequests\":2},"
                       "\"url\":\"http://10.0.0.1:1\"}");
    assert_int_equal(up(&b3, 0)->targets[0]->breaker.state, DP_BREAKER_CLOSED);
    done(&b1);
    done(&b2);
    done(&b3);
    balancer_shutdown();
}

static void count_target(const char *upstream, const char *target, bal_target_t *t, void *arg)
{
    (void)upstream, (void)target, (void)t;
    ++*(int *)arg;
}

static void test_foreach_lists_the_newest_config(void **state)
{
    (void)state;
    built_t b1 = build("{\"name\":\"a\",\"url\":\"http://10.0.0.1:1\"},"
                       "{\"name\":\"b\",\"url\":\"http://10.0.0.2:1\"}");
    built_t b2 = build("{\"name\":\"a\",\"url\":\"http://10.0.0.1:1\"}");
    int n = 0;
    balancer_foreach_target(count_target, &n);
    assert_int_equal(n, 1);
    done(&b1);
    done(&b2);
    balancer_shutdown();
}

/* ---- overload thresholds and retry budget/backoff (small modules of the same issue) -- */

static void test_overload_thresholds_rank_priorities(void **state)
{
    (void)state;
    const char *text = "{\"proxy\":{\"maxPending\":100},\"upstreams\":[{\"name\":\"u\","
                       "\"url\":\"http://10.0.0.1:1\"}],\"routes\":["
                       "{\"id\":\"a\",\"path\":\"/a\",\"upstream\":\"u\",\"priority\":-5},"
                       "{\"id\":\"b\",\"path\":\"/b\",\"upstream\":\"u\",\"priority\":10},"
                       "{\"id\":\"c\",\"path\":\"/c\",\"upstream\":\"u\"},"
                       "{\"id\":\"d\",\"path\":\"/d\",\"upstream\":\"u\",\"priority\":10}]}";
    fg_config_t *cfg;
    fg_error_t err;
    assert_int_equal(fg_config_parse(text, strlen(text), &cfg, &err), 0);
    uint32_t *at;
    assert_int_equal(overload_thresholds(cfg, &at), 0);
    assert_int_equal(at[0], 100); /* lowest of 3 priorities */
    assert_int_equal(at[2], 133);
    assert_int_equal(at[1], 166);
    assert_int_equal(at[3], 166);
    free(at);
    fg_config_free(cfg);
    uint32_t p = overload_pending();
    assert_true(overload_admit(p + 1));
    assert_false(overload_admit(p + 1)); /* p + 1 pending now */
    assert_true(overload_active());
    overload_done();
    assert_int_equal(overload_pending(), p);
}

static void test_retry_backoff_and_budget(void **state)
{
    (void)state;
    for (uint32_t a = 1; a <= 10; a++) {
        uint32_t ceiling = RETRY_BACKOFF_BASE_MS << (a - 1);
        if (ceiling > RETRY_BACKOFF_CAP_MS || a > 8)
            ceiling = RETRY_BACKOFF_CAP_MS;
        uint32_t hi = 0;
        for (int k = 0; k < 200; k++) {
            uint32_t d = retry_backoff_ms(a);
            assert_true(d <= ceiling);
            hi = d > hi ? d : hi;
        }
        assert_true(hi > ceiling / 2); /* full jitter reaches up the range */
    }
    retry_budget_reset();
    uint64_t t = 5000000;
    assert_true(retry_budget_withdraw(t)); /* starts the clock with a full reserve */
    for (uint32_t i = 1; i < RETRY_BUDGET_RESERVE_PER_S; i++)
        assert_true(retry_budget_withdraw(t));
    assert_false(retry_budget_withdraw(t));
    for (int i = 0; i < 50; i++) /* 50 requests at 20 %: 10 retries */
        retry_budget_deposit(20, t);
    for (int i = 0; i < 10; i++)
        assert_true(retry_budget_withdraw(t));
    assert_false(retry_budget_withdraw(t));
    assert_true(retry_budget_withdraw(t + 1000)); /* the reserve refills with time */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smooth_weighted_round_robin),
        cmocka_unit_test(test_least_conn_by_weight),
        cmocka_unit_test(test_two_choices_spreads_and_prefers_idle),
        cmocka_unit_test(test_consistent_hash_stable_and_minimal_remap),
        cmocka_unit_test(test_hash_on_header_and_cookie),
        cmocka_unit_test(test_skips_tried_ejected_and_open),
        cmocka_unit_test(test_unhealthy_all_still_served),
        cmocka_unit_test(test_state_survives_rebuild_unless_settings_change),
        cmocka_unit_test(test_foreach_lists_the_newest_config),
        cmocka_unit_test(test_overload_thresholds_rank_priorities),
        cmocka_unit_test(test_retry_backoff_and_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
