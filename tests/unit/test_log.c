/* test_log.c - unit tests for the small pieces of common/: the JSON line logger (format,
 * escaping that no request data can break out of, levels, truncation), RFC 3339 timestamps,
 * SHA-256, constant-time compare, randomness and the error record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fg_error.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_time.h"

/* Run fg_log with fd 2 pointed at a pipe; returns what was written (malloc'd). */
#define CAPTURE(out, call)                                                                  \
    do {                                                                                    \
        int fds[2], saved = dup(2);                                                         \
        assert_int_equal(pipe(fds), 0);                                                     \
        dup2(fds[1], 2);                                                                    \
        call;                                                                               \
        dup2(saved, 2);                                                                     \
        close(saved);                                                                       \
        close(fds[1]);                                                                      \
        out = read_all(fds[0]);                                                             \
        close(fds[0]);                                                                      \
    } while (0)

static char *read_all(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    buf[len] = '\0';
    return buf;
}

/* The captured text must be exactly one line of one JSON object. */
static cJSON *one_line(const char *text)
{
    size_t n = strlen(text);
    assert_true(n > 0);
    assert_int_equal(text[n - 1], '\n');
    assert_null(memchr(text, '\n', n - 1));
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    assert_true(cJSON_IsObject(j));
    return j;
}

static void test_log_line_shape(void **state)
{
    (void)state;
    char *out;
    fg_log_init("ctl", FG_LOG_INFO);
    CAPTURE(out, fg_log(FG_LOG_WARN, "snapshot applied", "version", "42", "reason", NULL, NULL));
    cJSON *j = one_line(out);
    assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
    const char *ts = cJSON_GetObjectItem(j, "ts")->valuestring;
    assert_int_equal(strlen(ts), FG_RFC3339_LEN);
    assert_int_equal(ts[FG_RFC3339_LEN - 1], 'Z');
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    assert_string_equal(cJSON_GetObjectItem(j, "component")->valuestring, "ctl");
    assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring, "snapshot applied");
    assert_string_equal(cJSON_GetObjectItem(j, "version")->valuestring, "42");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "reason")));
    cJSON_Delete(j);
    free(out);
}

static void test_log_escaping(void **state)
{
    (void)state;
    char *out;
    fg_log_init("dp", FG_LOG_DEBUG);
    /* A value trying to end the line and forge another, plus bytes that are not UTF-8. */
    const char *evil = "x\"}\n{\"level\":\"error\",\"msg\":\"forged\"}\r\t\\\x01\x7f\xff\xc3(caf\xc3\xa9";
    CAPTURE(out, fg_log(FG_LOG_INFO, "m\"sg", "path", evil, "k\ney", "v", NULL));
    cJSON *j = one_line(out);
    const char *path = cJSON_GetObjectItem(j, "path")->valuestring;
    assert_non_null(strstr(path, "\"}\n{\"level\":\"error\""));      /* kept as data */
    assert_non_null(strstr(path, "\xef\xbf\xbd"));                    /* U+FFFD for \xff */
    assert_non_null(strstr(path, "caf\xc3\xa9"));                     /* valid UTF-8 kept */
    assert_non_null(strstr(out, "\\u0001"));
    assert_non_null(strstr(out, "\\u007f"));
    assert_string_equal(cJSON_GetObjectItem(j, "msg")->valuestring, "m\"sg");
    assert_non_null(cJSON_GetObjectItem(j, "k\ney"));
    cJSON_Delete(j);
    free(out);
}

static void test_log_levels(void **state)
{
    (void)state;
    char *out;
    fg_log_init("ctl", FG_LOG_WARN);
    assert_false(fg_log_enabled(FG_LOG_INFO));
    assert_true(fg_log_enabled(FG_LOG_ERROR));
    CAPTURE(out, fg_log(FG_LOG_INFO, "dropped", NULL); fg_log(FG_LOG_DEBUG, "dropped", NULL));
    assert_string_equal(out, "");
    free(out);
    fg_log_set_level(FG_LOG_DEBUG);
    CAPTURE(out, fg_log(FG_LOG_DEBUG, "kept", NULL));
    assert_non_null(strstr(out, "\"level\":\"debug\""));
    free(out);

    fg_log_level_t l = FG_LOG_ERROR;
    assert_int_equal(fg_log_level_parse("debug", &l), 0);
    assert_int_equal(l, FG_LOG_DEBUG);
    assert_int_equal(fg_log_level_parse("INFO", &l), 0);
    assert_int_equal(l, FG_LOG_INFO);
    assert_int_equal(fg_log_level_parse("warning", &l), 0);
    assert_int_equal(l, FG_LOG_WARN);
    assert_int_equal(fg_log_level_parse("error", &l), 0);
    assert_int_equal(l, FG_LOG_ERROR);
    assert_int_equal(fg_log_level_parse("loud", &l), -EINVAL);
    assert_int_equal(l, FG_LOG_ERROR);
    assert_int_equal(fg_log_level_parse(NULL, &l), -EINVAL);
    fg_log_init("ctl", FG_LOG_INFO);
}

static void test_log_truncation(void **state)
{
    (void)state;
    char *out;
    size_t big_len = 40000;
    char *big = malloc(big_len + 1);
    /* Quotes double in size when escaped: the cut must not split an escape. */
    for (size_t i = 0; i < big_len; i++)
        big[i] = i % 3 ? 'a' : '"';
    big[big_len] = '\0';
    fg_log_init("dp", FG_LOG_INFO);
    CAPTURE(out, fg_log(FG_LOG_ERROR, "big", "a", "1", "value", big, "after", "x", NULL));
    cJSON *j = one_line(out);
    assert_true(strlen(out) <= 16384);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
    assert_string_equal(cJSON_GetObjectItem(j, "a")->valuestring, "1");
    assert_null(cJSON_GetObjectItem(j, "after"));
    cJSON_Delete(j);
    free(out);
    free(big);
    /* errno survives logging. */
    errno = ERANGE;
    CAPTURE(out, fg_log(FG_LOG_ERROR, "x", NULL));
    assert_int_equal(errno, ERANGE);
    free(out);
}

static void test_rfc3339(void **state)
{
    (void)state;
    char ts[FG_RFC3339_LEN + 1];
    fg_rfc3339(0, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    fg_rfc3339(1769423445123ull, ts);
    assert_string_equal(ts, "2026-01-26T10:30:45.123Z");
    fg_rfc3339(951782400007ull, ts); /* 2000-02-29, a leap day */
    assert_string_equal(ts, "2000-02-29T00:00:00.007Z");
    fg_rfc3339(UINT64_MAX, ts); /* clamped, never overflows */
    assert_int_equal(strlen(ts), FG_RFC3339_LEN);

    uint64_t a = fg_now_ms(), b = fg_now_ms();
    assert_true(b >= a);
    assert_true(fg_wall_ms() > 1700000000000ull);
}

static void test_hash(void **state)
{
    (void)state;
    char hex[FG_SHA256_HEX_LEN + 1];
    fg_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    fg_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fg_sha256_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    assert_int_equal(fg_ct_memcmp("abcd", "abcd", 4), 0);
    assert_int_not_equal(fg_ct_memcmp("abcd", "abce", 4), 0);
    assert_int_not_equal(fg_ct_memcmp("xbcd", "abcd", 4), 0);
    assert_int_equal(fg_ct_memcmp("a", "b", 0), 0);

    char r1[65], r2[65];
    assert_int_equal(fg_random_hex(r1, 32), 0);
    assert_int_equal(fg_random_hex(r2, 32), 0);
    assert_int_equal(strlen(r1), 64);
    assert_string_not_equal(r1, r2);
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", r1[i]));
    char *many = malloc(2 * 1000 + 1); /* more than one internal block */
    assert_int_equal(fg_random_hex(many, 1000), 0);
    assert_int_equal(strlen(many), 2000);
    free(many);
    unsigned char buf[16] = {0};
    assert_int_equal(fg_random_bytes(buf, sizeof(buf)), 0);
}

static void test_error_record(void **state)
{
    (void)state;
    fg_error_t err;
    assert_int_equal(fg_error_set(&err, "routes[1].upstream", "unknown upstream \"%s\"", "x"),
                     -EINVAL);
    assert_string_equal(err.field, "routes[1].upstream");
    assert_string_equal(err.message, "unknown upstream \"x\"");
    assert_int_equal(fg_error_setc(&err, -ENOMEM, NULL, "out of memory"), -ENOMEM);
    assert_string_equal(err.field, "");
    fg_error_clear(&err);
    assert_string_equal(err.message, "");
    fg_error_clear(NULL);
    assert_int_equal(fg_error_set(NULL, "f", "m"), -EINVAL);
    char longf[1000];
    memset(longf, 'f', sizeof(longf) - 1);
    longf[sizeof(longf) - 1] = '\0';
    fg_error_set(&err, longf, "%s", longf);
    assert_int_equal(strlen(err.field), FG_ERROR_FIELD_MAX - 1);
    assert_int_equal(strlen(err.message), FG_ERROR_MESSAGE_MAX - 1);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* logrotate: rename the file, then ask for a reopen; lines before the reopen follow the old
 * file under its new name, lines after it go to a new file with the configured name. */
static void test_log_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/fg-test-log-XXXXXX", path[128], rotated[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/dp.log", dir);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    int saved = dup(2);
    assert_int_equal(fg_log_reopen(), 0); /* nothing configured yet: a no-op */
    assert_int_equal(fg_log_open("/nonexistent-dir/x.log"), -ENOENT);
    assert_int_equal(fg_log_open(path), 0);
    fg_log(FG_LOG_ERROR, "first", NULL);
    assert_int_equal(rename(path, rotated), 0);
    fg_log(FG_LOG_ERROR, "second", NULL);
    assert_int_equal(fg_log_reopen(), 0);
    fg_log(FG_LOG_ERROR, "third", NULL);
    dup2(saved, 2);
    close(saved);

    char *old = slurp(rotated), *cur = slurp(path);
    assert_non_null(strstr(old, "\"msg\":\"first\""));
    assert_non_null(strstr(old, "\"msg\":\"second\""));
    assert_null(strstr(old, "third"));
    assert_non_null(strstr(cur, "\"msg\":\"third\""));
    assert_null(strstr(cur, "first"));
    free(old);
    free(cur);
    unlink(rotated);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_line_shape), cmocka_unit_test(test_log_escaping),
        cmocka_unit_test(test_log_levels),     cmocka_unit_test(test_log_truncation),
        cmocka_unit_test(test_rfc3339),        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_error_record),   cmocka_unit_test(test_log_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
