/* test_breaker.c - unit tests for dataplane/breaker.c: the closed/open/half-open state machine
 * on injected time (window, minimum requests, threshold, open duration, trials, success
 * threshold, lost trials) and its transition counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/breaker.h"
#include "dataplane/metrics.h"

static fg_breaker_conf_t conf(void)
{
    return (fg_breaker_conf_t){.enabled = true, .failure_threshold = 50, .success_threshold = 2,
                               .open_duration_ms = 1000, .half_open_requests = 1,
                               .min_requests = 4, .window_ms = 10000};
}

/* One request through the breaker at `now` with outcome `ok`; false when it was refused. */
static bool run(breaker_t *b, const fg_breaker_conf_t *c, uint64_t now, bool ok)
{
    if (!breaker_admits(b, c, now))
        return false;
    breaker_take(b, c);
    breaker_record(b, c, ok, now);
    return true;
}

static void test_min_requests_hold_it_closed(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    for (int i = 0; i < 3; i++)
        assert_true(run(&b, &c, 100000 + i, false));
    assert_int_equal(b.state, DP_BREAKER_CLOSED); /* 3 < minRequests */
    assert_true(run(&b, &c, 100010, false));
    assert_int_equal(b.state, DP_BREAKER_OPEN);
}

static void test_threshold_is_a_share(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    uint64_t t = 100000;
    for (int i = 0; i < 6; i++)
        run(&b, &c, t++, true);
    run(&b, &c, t++, false);
    run(&b, &c, t++, false);
    run(&b, &c, t++, false);
    assert_int_equal(b.state, DP_BREAKER_CLOSED); /* 3 of 9: 33 % */
    run(&b, &c, t++, false);
    run(&b, &c, t++, false);
    assert_int_equal(b.state, DP_BREAKER_CLOSED); /* 5 of 11: 45 % */
    run(&b, &c, t++, false);
    assert_int_equal(b.state, DP_BREAKER_OPEN); /* 6 of 12: 50 % */
}

static void test_window_forgets_old_failures(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    uint64_t t = 100000;
    for (int i = 0; i < 3; i++)
        run(&b, &c, t, false);
    t += c.window_ms + 1000; /* those three have left the window */
    run(&b, &c, t, true);
    run(&b, &c, t, true);
    run(&b, &c, t, true);
    run(&b, &c, t, false);
    assert_int_equal(b.state, DP_BREAKER_CLOSED); /* 1 of 4 */
}

static void test_open_half_open_close(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    uint64_t before[DP_BREAKER_STATES];
    memcpy(before, metrics_counters()->breaker_transitions, sizeof before);
    uint64_t t = 100000;
    for (int i = 0; i < 4; i++)
        run(&b, &c, t, false);
    assert_int_equal(b.state, DP_BREAKER_OPEN);
    assert_false(breaker_admits(&b, &c, t + 999));
    /* openDuration later: one trial at a time. */
    assert_true(breaker_admits(&b, &c, t + 1000));
    assert_int_equal(b.state, DP_BREAKER_HALF_OPEN);
    breaker_take(&b, &c);
    assert_false(breaker_admits(&b, &c, t + 1001));
    breaker_record(&b, &c, true, t + 1002);
    assert_int_equal(b.state, DP_BREAKER_HALF_OPEN); /* successThreshold 2 */
    assert_true(run(&b, &c, t + 1003, true));
    assert_int_equal(b.state, DP_BREAKER_CLOSED);
    /* Closed starts over: three failures are below minRequests again. */
    for (int i = 0; i < 3; i++)
        run(&b, &c, t + 1004, false);
    assert_int_equal(b.state, DP_BREAKER_CLOSED);
    const uint64_t *after = metrics_counters()->breaker_transitions;
    assert_int_equal(after[DP_BREAKER_OPEN] - before[DP_BREAKER_OPEN], 1);
    assert_int_equal(after[DP_BREAKER_HALF_OPEN] - before[DP_BREAKER_HALF_OPEN], 1);
    assert_int_equal(after[DP_BREAKER_CLOSED] - before[DP_BREAKER_CLOSED], 1);
}

static void test_failed_trial_reopens(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    for (int i = 0; i < 4; i++)
        run(&b, &c, 100000, false);
    assert_true(run(&b, &c, 101000, false));
    assert_int_equal(b.state, DP_BREAKER_OPEN);
    assert_false(breaker_admits(&b, &c, 101999)); /* a full openDuration again */
    assert_true(breaker_admits(&b, &c, 102000));
}

static void test_lost_trials_are_forgotten(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    breaker_t b;
    breaker_reset(&b);
    for (int i = 0; i < 4; i++)
        run(&b, &c, 100000, false);
    assert_true(breaker_admits(&b, &c, 101000));
    breaker_take(&b, &c); /* its client leaves: no outcome ever */
    assert_false(breaker_admits(&b, &c, 101500));
    assert_true(breaker_admits(&b, &c, 102000)); /* another openDuration later */
}

static void test_disabled_always_admits(void **state)
{
    (void)state;
    fg_breaker_conf_t c = conf();
    c.enabled = false;
    breaker_t b;
    breaker_reset(&b);
    for (int i = 0; i < 100; i++)
        assert_true(run(&b, &c, 100000, false));
    assert_int_equal(b.state, DP_BREAKER_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_requests_hold_it_closed),
        cmocka_unit_test(test_threshold_is_a_share),
        cmocka_unit_test(test_window_forgets_old_failures),
        cmocka_unit_test(test_open_half_open_close),
        cmocka_unit_test(test_failed_trial_reopens),
        cmocka_unit_test(test_lost_trials_are_forgotten),
        cmocka_unit_test(test_disabled_always_admits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
