/* test_api_ui.c - unit tests for controlplane/api_ui.c's static helpers: which request paths
 * are plain names, If-None-Match matching, content types by extension, and opening a file
 * under the UI directory without following symlinks (to a file or to a directory on the
 * way). The HTTP side (headers, 304, 404, traversal over the wire) is
 * tests/integration/test_ui_static.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../controlplane/api_ui.c"

static void test_path_safe(void **state)
{
    (void)state;
    const char *good[] = {"index.html", "js/app.js", "js/pages/routes.js", "a..b.js", "x"};
    const char *bad[] = {"../x.js", "a/../b.js", "./a.js", "a/./b.js", ".hidden.js",
                         "js/.git/config", "a//b.js", "/etc/passwd", "a\\..\\b.js", "a/",
                         "..", "."};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ui_path_safe(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ui_path_safe(bad[i]))
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_etag_matches(void **state)
{
    (void)state;
    const char *etag = "\"1f-2a-3\"";
    assert_true(ui_etag_matches("\"1f-2a-3\"", etag));
    assert_true(ui_etag_matches("W/\"1f-2a-3\"", etag));
    assert_true(ui_etag_matches("\"x\", \"1f-2a-3\"", etag));
    assert_true(ui_etag_matches("\"x\",W/\"1f-2a-3\" ", etag));
    assert_true(ui_etag_matches("*", etag));
    assert_false(ui_etag_matches("", etag));
    assert_false(ui_etag_matches("\"1f-2a-34\"", etag));
    assert_false(ui_etag_matches("\"1f-2a-\"", etag));
    assert_false(ui_etag_matches("1f-2a-3", etag));
    assert_false(ui_etag_matches("\"x\", \"y\"", etag));
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(ui_types[ui_type_of("index.html")].type, "text/html; charset=utf-8");
    assert_string_equal(ui_types[ui_type_of("js/app.js")].type,
                        "text/javascript; charset=utf-8");
    assert_string_equal(ui_types[ui_type_of("style.css")].type, "text/css; charset=utf-8");
    assert_true(ui_types[ui_type_of("favicon.svg")].immutable_asset);
    assert_false(ui_types[ui_type_of("js/app.js")].immutable_asset);
    assert_int_equal(ui_type_of("notes.xyz"), -1);
    assert_int_equal(ui_type_of("README"), -1);
    assert_int_equal(ui_type_of("v1.0/README"), -1); /* a dot in a directory is no extension */
    assert_int_equal(ui_type_of("app.js.bak"), -1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* dir + "/" + name into out (PATH_MAX) */
static void join(char *out, const char *dir, const char *name)
{
    assert_true(strlen(dir) + 1 + strlen(name) < PATH_MAX);
    strcpy(out, dir);
    strcat(out, "/");
    strcat(out, name);
}

static void test_open_confined(void **state)
{
    (void)state;
    char root[] = "/tmp/fg-test-api-ui-XXXXXX";
    char ui[PATH_MAX], outside[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    assert_non_null(mkdtemp(root));
    join(ui, root, "ui");
    join(outside, root, "outside");
    assert_int_equal(mkdir(ui, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    join(p, ui, "js");
    assert_int_equal(mkdir(p, 0700), 0);
    join(p, ui, "index.html");
    write_file(p, "index");
    join(p, ui, "js/app.js");
    write_file(p, "app");
    join(p, outside, "secret.js");
    write_file(p, "secret");
    join(q, ui, "link.js");
    assert_int_equal(symlink(p, q), 0);
    join(q, ui, "linkdir");
    assert_int_equal(symlink(outside, q), 0);

    char buf[16] = {0};
    int fd = ui_open(ui, "js/app.js");
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf - 1), 3);
    assert_string_equal(buf, "app");
    close(fd);
    fd = ui_open(ui, "index.html");
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ui_open(ui, "link.js"), -1);          /* symlink to a file */
    assert_int_equal(ui_open(ui, "linkdir/secret.js"), -1); /* through a symlinked dir */
    assert_int_equal(ui_open(ui, "missing.js"), -1);
    assert_int_equal(ui_open(ui, "index.html/x.js"), -1);  /* a file is no directory */
    assert_int_equal(ui_open("/nonexistent-fg-ui", "index.html"), -1);

    char cmd[64 + sizeof root];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_safe),
        cmocka_unit_test(test_etag_matches),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_open_confined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
