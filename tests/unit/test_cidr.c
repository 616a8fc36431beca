/* test_cidr.c - unit tests for common/fg_cidr.c: address and CIDR parsing (IPv4, IPv6,
 * IPv4-mapped IPv6 normalised to IPv4, host bits cleared, bad text refused), and sets:
 * most-specific match, both families, mapped and NAT64 forms of IPv4 addresses, sockaddrs,
 * and a large set. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fg_cidr.h"

static fg_ip_t ip(const char *text)
{
    fg_ip_t a;
    assert_int_equal(fg_ip_parse(text, strlen(text), &a), 0);
    return a;
}

static const char *fmt(const fg_ip_t *a)
{
    static char buf[64];
    fg_ip_format(a, buf, sizeof buf);
    return buf;
}

static void test_ip_parse(void **state)
{
    (void)state;
    fg_ip_t a = ip("10.1.2.3");
    assert_int_equal(a.family, 4);
    assert_string_equal(fmt(&a), "10.1.2.3");
    a = ip("fe80::1");
    assert_int_equal(a.family, 6);
    assert_string_equal(fmt(&a), "fe80::1");
    a = ip("[::1]");
    assert_int_equal(a.family, 6);
    a = ip("::ffff:169.254.169.254"); /* mapped: the IPv4 address */
    assert_int_equal(a.family, 4);
    assert_string_equal(fmt(&a), "169.254.169.254");
    a = ip("[::ffff:a9fe:a9fe]");
    assert_int_equal(a.family, 4);
    assert_string_equal(fmt(&a), "169.254.169.254");

    static const char *const bad[] = {"", "1.2.3", "127.1", "0x7f.0.0.1", "1.2.3.4.5",
                                      "256.0.0.1", "fe80::1%eth0", "[::1", "::g", "host",
                                      "1.2.3.4 ", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fg_ip_t x;
        assert_int_equal(fg_ip_parse(bad[i], strlen(bad[i]), &x), -22);
    }
}

static void test_cidr_parse(void **state)
{
    (void)state;
    fg_cidr_t c;
    assert_int_equal(fg_cidr_parse("10.1.2.3/8", &c), 0); /* host bits cleared */
    assert_int_equal(c.prefix, 8);
    assert_string_equal(fmt(&c.net), "10.0.0.0");
    assert_int_equal(fg_cidr_parse("169.254.169.254", &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(fg_cidr_parse("fe80::1/10", &c), 0);
    assert_int_equal(c.net.family, 6);
    assert_int_equal(c.prefix, 10);
    assert_string_equal(fmt(&c.net), "fe80::");
    assert_int_equal(fg_cidr_parse("::ffff:10.0.0.0/104", &c), 0); /* mapped: 10.0.0.0/8 */
    assert_int_equal(c.net.family, 4);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(fg_cidr_parse("0.0.0.0/0", &c), 0);
    assert_int_equal(c.prefix, 0);

    static const char *const bad[] = {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x",
                                      "10.0.0.0/8/8", "/8", "10.0.0.0/0008", "foo/8",
                                      "10.0.0.0/-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(fg_cidr_parse(bad[i], &c), -22);
}

static fg_cidr_set_t *set_of(const char *const *rules, size_t n)
{
    fg_cidr_set_t *s = fg_cidr_set_new();
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fg_cidr_set_add(s, rules[i], NULL), 0);
    assert_int_equal(fg_cidr_set_build(s), 0);
    return s;
}

static const char *match(const fg_cidr_set_t *s, const char *addr)
{
    fg_ip_t a = ip(addr);
    return fg_cidr_set_match(s, &a);
}

static void test_set_match(void **state)
{
    (void)state;
    static const char *const rules[] = {"10.0.0.0/8",  "10.1.0.0/16", "169.254.169.254",
                                        "127.0.0.0/8", "fd00:ec2::254", "fe80::/10"};
    fg_cidr_set_t *s = set_of(rules, 6);
    assert_string_equal(match(s, "10.9.9.9"), "10.0.0.0/8");
    assert_string_equal(match(s, "10.1.9.9"), "10.1.0.0/16"); /* most specific */
    assert_string_equal(match(s, "169.254.169.254"), "169.254.169.254");
    assert_null(match(s, "169.254.169.253"));
    assert_null(match(s, "11.0.0.1"));
    assert_string_equal(match(s, "127.0.0.1"), "127.0.0.0/8");
    assert_string_equal(match(s, "127.255.255.255"), "127.0.0.0/8");
    assert_string_equal(match(s, "fd00:ec2::254"), "fd00:ec2::254");
    assert_null(match(s, "fd00:ec2::255"));
    assert_string_equal(match(s, "fe80::abcd"), "fe80::/10");
    assert_string_equal(match(s, "febf::1"), "fe80::/10");
    assert_null(match(s, "fec0::1"));
    assert_null(match(s, "::1"));
    /* The IPv4 rules stop the other spellings of the same address. */
    assert_string_equal(match(s, "::ffff:169.254.169.254"), "169.254.169.254");
    assert_string_equal(match(s, "::ffff:7f00:1"), "127.0.0.0/8");
    assert_string_equal(match(s, "64:ff9b::a9fe:a9fe"), "169.254.169.254"); /* NAT64 */
    assert_string_equal(match(s, "::10.2.3.4"), "10.0.0.0/8");              /* compatible */
    assert_int_equal(fg_cidr_set_count(s), 6);
    fg_cidr_set_free(s);

    fg_cidr_set_t *empty = set_of(NULL, 0);
    assert_null(match(empty, "10.0.0.1"));
    fg_cidr_set_free(empty);
    assert_null(fg_cidr_set_match(NULL, NULL));
}

static void test_set_wide_v6_covers_mapped(void **state)
{
    (void)state;
    static const char *const rules[] = {"::ffff:0:0/96"};
    fg_cidr_set_t *s = set_of(rules, 1);
    assert_non_null(match(s, "1.2.3.4")); /* every IPv4 address, as mapped */
    assert_null(match(s, "2001:db8::1"));
    fg_cidr_set_free(s);
    static const char *const all6[] = {"::/0"};
    s = set_of(all6, 1);
    assert_non_null(match(s, "2001:db8::1"));
    assert_non_null(match(s, "8.8.8.8"));
    fg_cidr_set_free(s);
}

static void test_sockaddr(void **state)
{
    (void)state;
    static const char *const rules[] = {"169.254.0.0/16", "fe80::/10"};
    fg_cidr_set_t *s = set_of(rules, 2);
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "169.254.169.254", &s4.sin_addr);
    assert_string_equal(fg_cidr_set_match_sockaddr(s, (struct sockaddr *)&s4), "169.254.0.0/16");
    inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
    assert_null(fg_cidr_set_match_sockaddr(s, (struct sockaddr *)&s4));
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
    inet_pton(AF_INET6, "::ffff:169.254.1.1", &s6.sin6_addr);
    assert_string_equal(fg_cidr_set_match_sockaddr(s, (struct sockaddr *)&s6), "169.254.0.0/16");
    inet_pton(AF_INET6, "fe80::1", &s6.sin6_addr);
    assert_string_equal(fg_cidr_set_match_sockaddr(s, (struct sockaddr *)&s6), "fe80::/10");
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_null(fg_cidr_set_match_sockaddr(s, &un));
    fg_cidr_set_free(s);
}

/* 1,024 rules (the config's list limit) of mixed lengths: every network matches itself, and
 * addresses just outside match nothing. */
static void test_large_set(void **state)
{
    (void)state;
    fg_cidr_set_t *s = fg_cidr_set_new();
    char text[64];
    for (unsigned i = 0; i < 1024; i++) {
        unsigned prefix = 24 + i % 9; /* /24 .. /32 */
        snprintf(text, sizeof text, "20.%u.%u.0/%u", i / 256, i % 256, prefix);
        assert_int_equal(fg_cidr_set_add(s, text, NULL), 0);
    }
    assert_int_equal(fg_cidr_set_build(s), 0);
    for (unsigned i = 0; i < 1024; i++) {
        snprintf(text, sizeof text, "20.%u.%u.0", i / 256, i % 256);
        assert_non_null(match(s, text));
        snprintf(text, sizeof text, "21.%u.%u.0", i / 256, i % 256);
        assert_null(match(s, text));
    }
    fg_cidr_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_parse),   cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_set_match),  cmocka_unit_test(test_set_wide_v6_covers_mapped),
        cmocka_unit_test(test_sockaddr),   cmocka_unit_test(test_large_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
