/* test_cache.c - the data plane's snapshot cache file: atomic write, bounded read, and a
 * load that verifies the file like a snapshot from the wire (decode, validate, checksum)
 * before anything is built from it; plus the background writer (newest payload wins, close
 * writes what is pending). Each test works in a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "fg_config.h"
#include "fg_hash.h"
#include "fg_proto.h"
#include "generation.h"

static const char *const config_json =
    "{\"upstreams\":[{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"}],"
    "\"routes\":[{\"id\":\"r1\",\"path\":\"/a/*\",\"upstream\":\"alpha\"}]}";

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/fg-test-cache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/snap.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];

    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Entries in the fixture directory, "." and ".." aside. */
static int count_entries(const fixture_t *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* A SNAPSHOT payload of config_json at `version`, as the control plane would build it. */
static char *make_payload(int64_t version)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    char sum[FG_SHA256_HEX_LEN + 1], *canon, *payload;

    assert_int_equal(fg_config_parse(config_json, strlen(config_json), &cfg, &err), 0);
    canon = fg_config_canonical(cfg);
    assert_non_null(canon);
    fg_sha256_hex(canon, strlen(canon), sum);
    payload = fg_snapshot_encode(version, sum, "2026-11-25T19:43:28.123Z", canon);
    assert_non_null(payload);
    free(canon);
    fg_config_free(cfg);
    return payload;
}

static void write_raw(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_write_then_read_round_trips(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    struct stat sb;
    char *data = NULL;
    size_t len = 0;

    assert_int_equal(cache_write_file(f->path, "first", 5, &err), 0);
    assert_int_equal(cache_write_file(f->path, "second!", 7, &err), 0);
    assert_int_equal(cache_read_file(f->path, 1024, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "second!");
    free(data);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, DP_CACHE_MODE);
    assert_int_equal(count_entries(f), 1); /* no temporary file left */
}

static void test_failed_write_leaves_old_file(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    char bad[256], *data = NULL;
    size_t len = 0;

    assert_int_equal(cache_write_file(f->path, "old", 3, &err), 0);
    /* The target is a directory: rename fails after the temporary file was written. */
    snprintf(bad, sizeof(bad), "%s/adir", f->dir);
    assert_int_equal(mkdir(bad, 0700), 0);
    {
        char inner[300];
        snprintf(inner, sizeof(inner), "%s/x", bad);
        write_raw(inner, "keep");
    }
    assert_true(cache_write_file(bad, "new", 3, &err) < 0);
    assert_non_null(strstr(err.message, "rename"));
    assert_int_equal(count_entries(f), 2); /* snap.json and adir: the temp file is gone */
    assert_int_equal(cache_read_file(f->path, 1024, &data, &len, &err), 0);
    assert_string_equal(data, "old");
    free(data);
    {
        char inner[300];
        snprintf(inner, sizeof(inner), "%s/x", bad);
        unlink(inner);
    }
    rmdir(bad);
}

static void test_read_limits(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    char *data = (char *)1;
    size_t len = 1;

    assert_int_equal(cache_read_file(f->path, 1024, &data, &len, &err), -ENOENT);
    assert_null(data);
    write_raw(f->path, "0123456789");
    assert_int_equal(cache_read_file(f->path, 9, &data, &len, &err), -EFBIG);
    assert_null(data);
    assert_int_equal(cache_read_file(f->path, 10, &data, &len, &err), 0);
    assert_int_equal(len, 10);
    free(data);
    assert_int_equal(cache_read_file(f->dir, 1 << 20, &data, &len, &err), -EINVAL);
}

static void test_load_verifies_snapshot(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    char *payload = make_payload(7);
    dp_generation_t *g;

    assert_int_equal(cache_write_file(f->path, payload, strlen(payload), &err), 0);
    g = cache_load(f->path, 1 << 20, &err);
    assert_non_null(g);
    assert_int_equal(g->version, 7);
    assert_int_equal(g->config->n_routes, 1);
    generation_release(g);

    /* Same bytes with the route's path changed: the checksum no longer matches. */
    char *tampered = strdup(payload);
    char *p = strstr(tampered, "\"/a/*\"");
    assert_non_null(p);
    p[2] = 'b';
    write_raw(f->path, tampered);
    assert_null(cache_load(f->path, 1 << 20, &err));
    assert_non_null(strstr(err.message, "checksum"));
    free(tampered);

    /* Truncated. */
    payload[strlen(payload) / 2] = '\0';
    write_raw(f->path, payload);
    assert_null(cache_load(f->path, 1 << 20, &err));
    assert_non_null(strstr(err.message, "not a valid snapshot"));

    write_raw(f->path, "");
    assert_null(cache_load(f->path, 1 << 20, &err));
    unlink(f->path);
    assert_null(cache_load(f->path, 1 << 20, &err));
    free(payload);
}

static void test_writer_keeps_newest(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    dp_cache_t *c = cache_open(f->path, &err);
    char *data = NULL;
    size_t len = 0;

    assert_non_null(c);
    for (int i = 0; i < 50; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "payload %d", i);
        cache_save(c, buf, strlen(buf), i);
    }
    cache_flush(c);
    assert_int_equal(cache_read_file(f->path, 1024, &data, &len, &err), 0);
    assert_string_equal(data, "payload 49");
    free(data);

    cache_save(c, "last", 4, 50);
    cache_close(c); /* writes what is pending */
    assert_int_equal(cache_read_file(f->path, 1024, &data, &len, &err), 0);
    assert_string_equal(data, "last");
    free(data);
    assert_int_equal(count_entries(f), 1);
}

static void test_open_refuses_missing_directory(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    char p[256];

    snprintf(p, sizeof(p), "%s/missing/snap.json", f->dir);
    assert_null(cache_open(p, &err));
    assert_non_null(strstr(err.message, "missing"));
    assert_null(cache_open("", &err));
    cache_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_then_read_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_leaves_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_verifies_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_missing_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
