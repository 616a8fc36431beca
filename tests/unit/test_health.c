/* test_health.c - unit tests for dataplane/health.c's passive outlier ejection on injected
 * time: the consecutive-failure threshold, ejection length doubling up to its cap, probation
 * after an ejection, the backoff forgotten after a quiet spell, and consecutiveFailures 0.
 * Active checks run against real origins in tests/integration/test_health.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/health.h"
#include "dataplane/metrics.h"

static fg_health_check_t conf(void)
{
    return (fg_health_check_t){.consecutive_failures = 3, .eject_ms = 1000};
}

static void fail_n(health_t *h, const fg_health_check_t *c, int n, uint64_t now)
{
    for (int i = 0; i < n; i++)
        health_record(h, c, false, now);
}

static void test_ejects_after_consecutive_failures(void **state)
{
    (void)state;
    fg_health_check_t c = conf();
    health_t h;
    memset(&h, 0, sizeof h);
    uint64_t before = metrics_counters()->health_transitions;
    fail_n(&h, &c, 2, 1000);
    health_record(&h, &c, true, 1000); /* a success in between resets the count */
    fail_n(&h, &c, 2, 1000);
    assert_true(health_up(&h, 1000));
    assert_true(health_record(&h, &c, false, 1000));
    assert_false(health_up(&h, 1000));
    assert_false(health_up(&h, 1999));
    assert_true(health_up(&h, 2000));
    assert_int_equal(metrics_counters()->health_transitions - before, 1);
}

static void test_backoff_doubles_to_its_cap_and_probation(void **state)
{
    (void)state;
    fg_health_check_t c = conf();
    health_t h;
    memset(&h, 0, sizeof h);
    uint64_t now = 10000;
    fail_n(&h, &c, 3, now);
    uint64_t expect = 1000;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(h.ejected_until_ms - now, expect);
        now = h.ejected_until_ms;
        /* Back on probation: one failure ejects it again, for twice as long (capped). */
        assert_true(health_record(&h, &c, false, now));
        expect = expect * 2 > 1000 * HEALTH_EJECT_MAX_FACTOR ? 1000 * HEALTH_EJECT_MAX_FACTOR
                                                              : expect * 2;
    }
    assert_int_equal(h.ejected_until_ms - now, 1000 * HEALTH_EJECT_MAX_FACTOR);
}

static void test_success_ends_probation_and_quiet_forgets_backoff(void **state)
{
    (void)state;
    fg_health_check_t c = conf();
    health_t h;
    memset(&h, 0, sizeof h);
    fail_n(&h, &c, 3, 10000);
    health_record(&h, &c, true, 11000); /* back, and it works */
    assert_false(health_record(&h, &c, false, 11001));
    assert_true(health_up(&h, 11001)); /* one failure is not enough any more */
    health_record(&h, &c, true, 12500); /* an ejectDuration after the ejection ended */
    fail_n(&h, &c, 3, 12500);
    assert_int_equal(h.ejected_until_ms, 13500); /* the base length again, not doubled */
}

static void test_failures_while_ejected_do_not_extend_it(void **state)
{
    (void)state;
    fg_health_check_t c = conf();
    health_t h;
    memset(&h, 0, sizeof h);
    fail_n(&h, &c, 3, 10000);
    assert_false(health_record(&h, &c, false, 10500)); /* started before the ejection */
    assert_int_equal(h.ejected_until_ms, 11000);
}

static void test_zero_turns_passive_off_and_active_down_counts(void **state)
{
    (void)state;
    fg_health_check_t c = conf();
    c.consecutive_failures = 0;
    health_t h;
    memset(&h, 0, sizeof h);
    fail_n(&h, &c, 100, 1000);
    assert_true(health_up(&h, 1000));
    h.active_down = true;
    assert_false(health_up(&h, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ejects_after_consecutive_failures),
        cmocka_unit_test(test_backoff_doubles_to_its_cap_and_probation),
        cmocka_unit_test(test_success_ends_probation_and_quiet_forgets_backoff),
        cmocka_unit_test(test_failures_while_ejected_do_not_extend_it),
        cmocka_unit_test(test_zero_turns_passive_off_and_active_down_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
