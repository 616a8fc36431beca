/* test_secret.c - unit tests for common/fg_secret.c (the admin token and the data plane
 * secret): equality only for the same bytes, whatever the length; files read trimmed, and
 * refused when empty, multi-line, too long or a symlink; new files are 0600 and never
 * overwritten. Also admin_addr_is_loopback and admin_api_check_listen (controlplane/
 * admin_api.c), which decide whether the admin API may listen without TLS. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin_api.h"
#include "fg_secret.h"

static char dir[] = "/tmp/fg-test-secret-XXXXXX";

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char p[256];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_equal(void **state)
{
    (void)state;
    assert_true(fg_secret_equal("abc", "abc", 3));
    assert_false(fg_secret_equal("abc", "abd", 3));
    assert_false(fg_secret_equal("abc", "ab", 2));      /* a prefix is not it */
    assert_false(fg_secret_equal("abc", "abcd", 4));    /* nor a longer one */
    assert_true(fg_secret_equal("abc", "abcd", 3));     /* only given_len bytes count */
    assert_false(fg_secret_equal("abc", "", 0));
    assert_false(fg_secret_equal("", "", 0));           /* an empty secret matches nothing */
    assert_false(fg_secret_equal(NULL, "abc", 3));
    assert_false(fg_secret_equal("abc", NULL, 3));
}

static void test_read(void **state)
{
    (void)state;
    char p[256], out[16];
    fg_error_t err;
    bool too_open = true;
    write_file("ok", "s3cret\n");
    path_of(p, sizeof p, "ok");
    chmod(p, 0600);
    assert_int_equal(fg_secret_read_file(p, out, sizeof out, &too_open, &err), 0);
    assert_string_equal(out, "s3cret");
    assert_false(too_open);
    chmod(p, 0644);
    assert_int_equal(fg_secret_read_file(p, out, sizeof out, &too_open, &err), 0);
    assert_true(too_open);

    static const struct { const char *text; const char *why; } bad[] = {
        {"", "empty"}, {" \n\n", "empty"}, {"two\nlines\n", "more than one line"},
        {"in side\n", "more than one line"}, {"0123456789abcdef\n", "longer than 15"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file("bad", bad[i].text);
        path_of(p, sizeof p, "bad");
        assert_int_equal(fg_secret_read_file(p, out, sizeof out, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, bad[i].why));
    }
    write_file("fits", "0123456789abcde\r\n"); /* exactly 15: fits */
    path_of(p, sizeof p, "fits");
    assert_int_equal(fg_secret_read_file(p, out, sizeof out, NULL, &err), 0);
    assert_string_equal(out, "0123456789abcde");

    path_of(p, sizeof p, "missing");
    assert_int_equal(fg_secret_read_file(p, out, sizeof out, NULL, &err), -ENOENT);
    char link[256];
    path_of(link, sizeof link, "link");
    path_of(p, sizeof p, "ok");
    assert_int_equal(symlink(p, link), 0);
    assert_int_equal(fg_secret_read_file(link, out, sizeof out, NULL, &err), -ELOOP);
}

static void test_create(void **state)
{
    (void)state;
    char p[256], out[2 * FG_SECRET_RANDOM_BYTES + 1], again[sizeof out];
    fg_error_t err;
    struct stat sb;
    path_of(p, sizeof p, "new");
    assert_int_equal(fg_secret_create_file(p, out, sizeof out, &err), 0);
    assert_int_equal(strlen(out), 2 * FG_SECRET_RANDOM_BYTES);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(fg_secret_read_file(p, again, sizeof again, NULL, &err), 0);
    assert_string_equal(again, out);
    assert_int_equal(fg_secret_create_file(p, again, sizeof again, &err), -EEXIST);
    assert_int_equal(fg_secret_read_file(p, again, sizeof again, NULL, &err), 0);
    assert_string_equal(again, out); /* not overwritten */
}

static bool loopback(int family, const char *ip)
{
    struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
    void *a = family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
                                : (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    assert_int_equal(inet_pton(family, ip, a), 1);
    return admin_addr_is_loopback((struct sockaddr *)&ss);
}

static void test_admin_listen_needs_tls_off_loopback(void **state)
{
    (void)state;
    assert_true(loopback(AF_INET, "127.0.0.1"));
    assert_true(loopback(AF_INET, "127.255.0.9"));
    assert_true(loopback(AF_INET6, "::1"));
    assert_true(loopback(AF_INET6, "::ffff:127.0.0.1"));
    assert_false(loopback(AF_INET, "0.0.0.0"));
    assert_false(loopback(AF_INET, "10.0.0.1"));
    assert_false(loopback(AF_INET, "128.0.0.1"));
    assert_false(loopback(AF_INET6, "::"));
    assert_false(loopback(AF_INET6, "::ffff:10.0.0.1"));
    assert_false(admin_addr_is_loopback(NULL));

    fg_error_t err;
    assert_int_equal(admin_api_check_listen("127.0.0.1:0", false, false, &err), 0);
    assert_int_equal(admin_api_check_listen("[::1]:0", false, false, &err), 0);
    assert_int_equal(admin_api_check_listen("0.0.0.0:9080", false, false, &err), -EACCES);
    assert_non_null(strstr(err.message, "--admin-insecure-bind"));
    assert_non_null(strstr(err.message, "--admin-tls-cert"));
    assert_int_equal(admin_api_check_listen("[::]:9080", false, false, &err), -EACCES);
    assert_int_equal(admin_api_check_listen("0.0.0.0:9080", true, false, &err), 0);
    assert_int_equal(admin_api_check_listen("0.0.0.0:9080", false, true, &err), 0);
    assert_int_equal(admin_api_check_listen("nonsense", false, false, &err), -EINVAL);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"ok", "bad", "fits", "link", "new"};
    char p[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_of(p, sizeof p, names[i]);
        unlink(p);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_admin_listen_needs_tls_off_loopback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
