/* test_lockout.c - unit tests for controlplane/lockout.c: an address is refused after
 * LOCKOUT_MAX_FAILURES wrong tokens until its window ends, and only that address; a right
 * token forgets the failures; IPv6 counts per /64 and IPv4-mapped as IPv4; the table stays
 * within LOCKOUT_TABLE_SIZE, forgetting the oldest window. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lockout.h"

static lockout_key_t key4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    lockout_key_t k;
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    lockout_key_from((struct sockaddr *)&sa, &k);
    return k;
}

static lockout_key_t key6(const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    lockout_key_t k;
    assert_int_equal(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
    lockout_key_from((struct sockaddr *)&sa, &k);
    return k;
}

static lockout_t *new_table(void)
{
    lockout_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    return l;
}

static void test_locked_after_max_failures_until_the_window_ends(void **state)
{
    (void)state;
    lockout_t *l = new_table();
    lockout_key_t a = key4("192.0.2.1"), b = key4("192.0.2.2");
    uint64_t t0 = 1000000;
    for (uint32_t i = 1; i <= LOCKOUT_MAX_FAILURES; i++) {
        assert_int_equal(lockout_blocked(l, &a, t0), 0);
        assert_int_equal(lockout_fail(l, &a, t0), i);
    }
    assert_int_equal(lockout_blocked(l, &a, t0 + 100), LOCKOUT_WINDOW_MS / 1000);
    assert_int_equal(lockout_blocked(l, &a, t0 + LOCKOUT_WINDOW_MS - 1500), 2);
    assert_int_equal(lockout_blocked(l, &a, t0 + LOCKOUT_WINDOW_MS - 1), 1);
    assert_int_equal(lockout_blocked(l, &b, t0 + 100), 0); /* only that address */
    assert_int_equal(lockout_blocked(l, &a, t0 + LOCKOUT_WINDOW_MS), 0);
    /* A new window starts from one. */
    assert_int_equal(lockout_fail(l, &a, t0 + LOCKOUT_WINDOW_MS), 1);
    free(l);
}

static void test_success_forgets_failures(void **state)
{
    (void)state;
    lockout_t *l = new_table();
    lockout_key_t a = key4("198.51.100.7");
    for (uint32_t i = 0; i < LOCKOUT_MAX_FAILURES - 1; i++)
        lockout_fail(l, &a, 5);
    lockout_success(l, &a);
    assert_int_equal(lockout_fail(l, &a, 6), 1);
    assert_int_equal(lockout_blocked(l, &a, 6), 0);
    free(l);
}

static void test_configured_limits(void **state)
{
    (void)state;
    lockout_t *l = new_table();
    l->max_failures = 2;
    l->window_ms = 500;
    lockout_key_t a = key4("203.0.113.9");
    lockout_fail(l, &a, 0);
    assert_int_equal(lockout_blocked(l, &a, 0), 0);
    lockout_fail(l, &a, 0);
    assert_int_equal(lockout_blocked(l, &a, 0), 1);
    assert_int_equal(lockout_blocked(l, &a, 500), 0);
    free(l);
}

static void test_keys(void **state)
{
    (void)state;
    lockout_key_t a = key6("2001:db8:1:2::1"), b = key6("2001:db8:1:2:ffff::9");
    lockout_key_t c = key6("2001:db8:1:3::1");
    assert_memory_equal(&a, &b, sizeof a);     /* one /64 */
    assert_memory_not_equal(&a, &c, sizeof a); /* another /64 */
    lockout_key_t m = key6("::ffff:192.0.2.1"), v4 = key4("192.0.2.1"), o = key4("192.0.2.9");
    assert_memory_equal(&m, &v4, sizeof m);    /* mapped IPv4 is that IPv4 */
    assert_memory_not_equal(&v4, &o, sizeof v4);
    lockout_key_t none;
    lockout_key_from(NULL, &none);
    lockout_key_t zero = {{0}};
    assert_memory_equal(&none, &zero, sizeof none);
}

static void test_table_is_bounded_and_forgets_the_oldest(void **state)
{
    (void)state;
    lockout_t *l = new_table();
    lockout_key_t first = key4("10.255.255.255");
    for (uint32_t i = 0; i < LOCKOUT_MAX_FAILURES; i++)
        lockout_fail(l, &first, 1);
    assert_true(lockout_blocked(l, &first, 2) > 0);
    /* LOCKOUT_TABLE_SIZE more addresses, all inside the window: the oldest goes. */
    for (uint32_t i = 0; i < LOCKOUT_TABLE_SIZE; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        lockout_key_t k;
        lockout_key_from((struct sockaddr *)&sa, &k);
        lockout_fail(l, &k, 2 + i);
    }
    assert_int_equal(lockout_blocked(l, &first, 3), 0);
    size_t used = 0;
    for (size_t i = 0; i < LOCKOUT_TABLE_SIZE; i++)
        used += l->entries[i].failures > 0;
    assert_int_equal(used, LOCKOUT_TABLE_SIZE);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locked_after_max_failures_until_the_window_ends),
        cmocka_unit_test(test_success_forgets_failures),
        cmocka_unit_test(test_configured_limits),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_table_is_bounded_and_forgets_the_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
