/* test_yaml.c - YAML import/export: the loader (yamlio), and store_import on a real SQLite
 * file.
 *
 * What must hold: scalars are typed by the core schema and quoted ones stay strings; every
 * refused construct (anchors, aliases, duplicate keys, extra documents, foreign tags,
 * non-finite numbers, NUL, over-deep or over-large input) is refused with a position; a JSON
 * path locates the node it names; dump -> load gives back an equal tree for awkward strings;
 * the seed's examples import; an import is one version, all or nothing, idempotent, and its
 * dry run predicts the checksum the real import commits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fg_config.h"
#include "common/fg_log.h"
#include "controlplane/store.h"
#include "controlplane/store_import.h"
#include "controlplane/yamlio.h"

/* tests/unit/test_yaml.c -> tests/fuzz/corpus/yaml/ */
static char corpus_dir[1024];

static void find_corpus(void)
{
    snprintf(corpus_dir, sizeof corpus_dir, "%s", __FILE__);
    char *slash = strrchr(corpus_dir, '/');
    if (slash)
        *slash = '\0';
    slash = strrchr(corpus_dir, '/');
    if (slash)
        *slash = '\0';
    strncat(corpus_dir, "/fuzz/corpus/yaml", sizeof corpus_dir - strlen(corpus_dir) - 1);
}

static yamlio_doc_t *load_ok(const char *text)
{
    yamlio_doc_t *doc = NULL;
    fg_error_t err;
    yamlio_mark_t at;
    int rc = yamlio_load(text, strlen(text), &doc, &err, &at);
    if (rc)
        fail_msg("load failed (%d) at %u:%u: %s: %s\n%s", rc, at.line, at.column, err.field,
                 err.message, text);
    return doc;
}

/* Load must fail with `code`, at `line` (0 = don't care), message containing `what`. */
static void load_fails(const char *text, size_t len, int code, unsigned line, const char *what)
{
    yamlio_doc_t *doc = NULL;
    fg_error_t err;
    yamlio_mark_t at;
    int rc = yamlio_load(text, len, &doc, &err, &at);
    if (rc != code)
        fail_msg("expected %d, got %d (%s) for:\n%.200s", code, rc, err.message, text);
    assert_null(doc);
    if (line)
        assert_int_equal(at.line, line);
    if (!strstr(err.message, what))
        fail_msg("message '%s' lacks '%s'", err.message, what);
}

static void test_scalars_follow_the_core_schema(void **state)
{
    (void)state;
    yamlio_doc_t *doc = load_ok("a: 12\nb: -3\nc: 0x1F\nd: 0o17\ne: 1.5\nf: 2e3\ng: true\n"
                                "h: False\ni: null\nj: ~\nk:\nl: \"12\"\nm: 'true'\nn: yes\n"
                                "o: !!str 42\np: !!float 3\nq: hello world\nr: .5\n"
                                "s: 'null'\n");
    const cJSON *r = yamlio_root(doc);
    struct { const char *key; double num; } nums[] = {
        {"a", 12}, {"b", -3}, {"c", 31}, {"d", 15}, {"e", 1.5}, {"f", 2000}, {"p", 3},
        {"r", 0.5},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, nums[i].key);
        assert_true(cJSON_IsNumber(v));
        assert_true(v->valuedouble == nums[i].num);
    }
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "g")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "h")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "i")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "j")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "k")));
    struct { const char *key, *text; } strs[] = {
        {"l", "12"}, {"m", "true"}, {"n", "yes"}, {"o", "42"}, {"q", "hello world"},
        {"s", "null"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, strs[i].key);
        assert_true(cJSON_IsString(v));
        assert_string_equal(v->valuestring, strs[i].text);
    }
    yamlio_doc_free(doc);
}

static void test_refused_constructs(void **state)
{
    (void)state;
#define FAILS(text, code, line, what) load_fails(text, strlen(text), code, line, what)
    FAILS("a: &x 1\nb: *x\n", -EINVAL, 1, "anchors");
    FAILS("a: [1]\nb: *x\n", -EINVAL, 0, "");
    FAILS("a: 1\nb: 2\na: 3\n", -EINVAL, 3, "duplicate key 'a' (first at line 1");
    FAILS("a: 1\n---\nb: 2\n", -EINVAL, 2, "only one YAML document");
    FAILS("a: !custom 1\n", -EINVAL, 1, "not supported");
    FAILS("a: !!binary aGk=\n", -EINVAL, 1, "not supported");
    FAILS("a: !!int abc\n", -EINVAL, 1, "not a valid !!int");
    FAILS("a: !!set {x}\n", -EINVAL, 1, "not supported");
    FAILS("a: .inf\n", -EINVAL, 1, "not a finite number");
    FAILS("a: -.Inf\n", -EINVAL, 1, "not a finite number");
    FAILS("a: .nan\n", -EINVAL, 1, "not a finite number");
    FAILS("a: 1e999\n", -EINVAL, 1, "not a finite number");
    FAILS("a: \"x\\0y\"\n", -EINVAL, 1, "NUL");
    FAILS("? [a]\n: 1\n", -EINVAL, 1, "keys must be scalars");
    FAILS("a: [1, 2\n", -EINVAL, 0, "malformed YAML");
    FAILS("a: b: c\n", -EINVAL, 1, "malformed YAML");
    FAILS("", -EINVAL, 0, "empty");
    FAILS("# only a comment\n", -EINVAL, 0, "empty");
#undef FAILS
}

/* The classic: nine levels of ten aliases each. Refused at the first anchor, in O(size). */
static void test_billion_laughs_is_refused(void **state)
{
    (void)state;
    const char *lol = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                      "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                      "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                      "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    load_fails(lol, strlen(lol), -EINVAL, 1, "anchors");
}

static void test_limits(void **state)
{
    (void)state;
    /* depth: YAMLIO_MAX_DEPTH nested flow sequences load, one more does not */
    char deep[2 * (YAMLIO_MAX_DEPTH + 1) + 2];
    size_t n = 0;
    for (int i = 0; i < YAMLIO_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < YAMLIO_MAX_DEPTH; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    yamlio_doc_free(load_ok(deep));
    memmove(deep + 1, deep, n + 1);
    deep[0] = '[';
    deep[n + 1] = ']';
    deep[n + 2] = '\0';
    load_fails(deep, n + 2, -E2BIG, 1, "nested deeper");

    /* size: one byte over the limit is refused before parsing */
    size_t big = (size_t)YAMLIO_MAX_INPUT_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    load_fails(text, big, -E2BIG, 0, "larger than");

    /* nodes: a flat sequence of YAMLIO_MAX_NODES scalars (+1 for the sequence) */
    size_t items = YAMLIO_MAX_NODES;
    assert_true(items * 2 + 2 <= big);
    text[0] = '[';
    for (size_t i = 0; i < items; i++) {
        text[1 + 2 * i] = '0';
        text[2 + 2 * i] = i + 1 < items ? ',' : ']';
    }
    load_fails(text, 1 + 2 * items, -E2BIG, 0, "nodes");
    free(text);
}

static void test_locate_names_line_and_column(void **state)
{
    (void)state;
    yamlio_doc_t *doc = load_ok("upstreams:\n"
                                "  - name: a\n"
                                "    url: http://x\n"
                                "routes:\n"
                                "  - path: /a\n"
                                "    upstream: a\n"
                                "  - path: /b\n"
                                "    upstream: a\n"
                                "    rateLimit:\n"
                                "      max: 5\n"
                                "      windowMs: 0\n"
                                "    requestHeaders:\n"
                                "      add: {X-A.B: v}\n");
    yamlio_mark_t m = yamlio_locate(doc, "routes[1].rateLimit.windowMs");
    assert_int_equal(m.line, 11);
    assert_int_equal(m.column, 7);
    m = yamlio_locate(doc, "routes[1]");
    assert_int_equal(m.line, 7);
    assert_int_equal(m.column, 5);
    m = yamlio_locate(doc, "routes[1].hosts"); /* absent: its route */
    assert_int_equal(m.line, 7);
    m = yamlio_locate(doc, "routes[0].upstream");
    assert_int_equal(m.line, 6);
    assert_int_equal(m.column, 5);
    m = yamlio_locate(doc, "routes[1].requestHeaders.add.X-A.B"); /* a key holding '.' */
    assert_int_equal(m.line, 13);
    assert_int_equal(m.column, 13);
    m = yamlio_locate(doc, "routes[9].path"); /* no such route: the list */
    assert_int_equal(m.line, 4);
    yamlio_doc_free(doc);
}

/* Strings a plain scalar would misread, and strings YAML writes specially. */
static void test_dump_then_load_is_identity(void **state)
{
    (void)state;
    static const char *const strings[] = {
        "", "true", "False", "null", "~", "123", "0x1F", "0o7", "1.5", ".inf", "yes", "off",
        "a: b", "- x", "#x", " lead", "trail ", "multi\nline", "tab\there", "quote\"s",
        "single'q", "é ünïcode", "[x]", "{y}", "*alias", "&anchor", "!tag", "%dir", "@at",
        "`tick", "|", ">", "---", "...", "x\r\ny", "\x01ctl",
    };
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "strings");
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        cJSON_AddItemToArray(list, cJSON_CreateString(strings[i]));
        cJSON_AddStringToObject(root, strings[i][0] ? strings[i] : "(empty)", strings[i]);
    }
    cJSON_AddNumberToObject(root, "int", 42);
    cJSON_AddNumberToObject(root, "neg", -7);
    cJSON_AddNumberToObject(root, "frac", 0.1);
    cJSON_AddNumberToObject(root, "big", 9007199254740993.0);
    cJSON_AddNumberToObject(root, "tiny", 1e-300);
    cJSON_AddTrueToObject(root, "t");
    cJSON_AddNullToObject(root, "nothing");
    cJSON_AddObjectToObject(root, "empty_map");
    cJSON_AddArrayToObject(root, "empty_list");

    fg_error_t err;
    size_t len = 0;
    char *text = yamlio_dump(root, "# header\n", &len, &err);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(strncmp(text, "# header\n", 9) == 0);
    yamlio_doc_t *doc = load_ok(text);
    if (!cJSON_Compare(root, yamlio_root(doc), true))
        fail_msg("round trip differs:\n%s", text);
    yamlio_doc_free(doc);
    free(text);
    cJSON_Delete(root);
}

static char *read_corpus(const char *name, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", corpus_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static const char *const seed_files[] = {
    "seed-full.yml", "seed-minimal.yml", "seed-quickstart.yml", "seed-ssrf.yml",
    "seed-auth.yml", "seed-ratelimit.yml", "original-schema.yml", "demo.yml",
};

static void test_seed_examples_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof seed_files / sizeof seed_files[0]; i++) {
        size_t len;
        char *text = read_corpus(seed_files[i], &len);
        yamlio_doc_t *doc = load_ok(text);
        fg_config_t *cfg = NULL;
        fg_error_t err;
        if (fg_config_decode(yamlio_root(doc), &cfg, &err) != 0)
            fail_msg("%s: %s: %s", seed_files[i], err.field, err.message);
        fg_config_free(cfg);
        yamlio_doc_free(doc);
        free(text);
    }
}

/* ---- store_import --------------------------------------------------------------------- */

typedef struct fixture {
    char dir[64];
    char db[128];
    store_t *st;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    fg_error_t err;
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/fg-test-yaml-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/fg.db", f->dir);
    assert_int_equal(store_open(f->db, &f->st, &err), 0);
    assert_int_equal(store_migrate(f->st, NULL, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char path[160];
    store_close(f->st);
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t version_of(fixture_t *f)
{
    fg_error_t err;
    int64_t v = -1;
    assert_int_equal(store_version(f->st, &v, &err), 0);
    return v;
}

static int import_text(fixture_t *f, const char *yaml, store_import_mode_t mode, bool dry,
                       store_import_result_t *res, fg_error_t *err)
{
    yamlio_doc_t *doc = load_ok(yaml);
    int rc = store_import(f->st, yamlio_root(doc), mode, dry, "unit", res, err);
    yamlio_doc_free(doc);
    return rc;
}

static void import_ok(fixture_t *f, const char *yaml, store_import_mode_t mode,
                      store_import_result_t *res)
{
    fg_error_t err;
    int rc = import_text(f, yaml, mode, false, res, &err);
    if (rc)
        fail_msg("import failed (%d): %s: %s", rc, err.field, err.message);
}

static const char *latest_checksum(fixture_t *f, char out[FG_SHA256_HEX_LEN + 1])
{
    store_snapshot_t s;
    fg_error_t err;
    assert_int_equal(store_snapshot_latest(f->st, &s, &err), 0);
    memcpy(out, s.checksum, FG_SHA256_HEX_LEN + 1);
    store_snapshot_clear(&s);
    return out;
}

static const cJSON *diff_list(const store_import_result_t *r, const char *kind, const char *what)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->diff, kind),
                                            what);
}

static void test_seed_examples_import(void **state)
{
    fixture_t *f = *state;
    char sum[FG_SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < sizeof seed_files / sizeof seed_files[0]; i++) {
        size_t len;
        char *text = read_corpus(seed_files[i], &len);
        store_import_result_t res;
        int64_t before = version_of(f);
        import_ok(f, text, STORE_IMPORT_REPLACE, &res);
        assert_int_equal(res.version, before + 1);
        assert_string_equal(res.checksum, latest_checksum(f, sum));
        store_import_result_clear(&res);
        free(text);
    }
}

static const char *const two_routes =
    "upstreams:\n  - name: a\n    url: http://127.0.0.1:1\n  - name: b\n"
    "    url: http://127.0.0.1:2\n    fallback: a\n"
    "routes:\n  - path: /one/*\n    upstream: a\n  - path: /two\n    upstream: b\n";

static void test_import_twice_changes_nothing(void **state)
{
    fixture_t *f = *state;
    store_import_result_t r1, r2;
    import_ok(f, two_routes, STORE_IMPORT_REPLACE, &r1);
    assert_int_equal(r1.n_changes, 4);
    assert_string_equal(cJSON_GetArrayItem(diff_list(&r1, "routes", "added"), 0)->valuestring,
                        "route-1");
    import_ok(f, two_routes, STORE_IMPORT_REPLACE, &r2);
    assert_int_equal(r2.n_changes, 0);
    assert_int_equal(r2.version, r1.version + 1);
    assert_string_equal(r1.checksum, r2.checksum);
    store_import_result_clear(&r1);
    store_import_result_clear(&r2);
}

static void test_dry_run_predicts_and_changes_nothing(void **state)
{
    fixture_t *f = *state;
    store_import_result_t dry, real;
    fg_error_t err;
    int64_t before = version_of(f);
    assert_int_equal(import_text(f, two_routes, STORE_IMPORT_REPLACE, true, &dry, &err), 0);
    assert_int_equal(dry.version, 0);
    assert_int_equal(version_of(f), before);
    assert_int_equal(cJSON_GetArraySize(diff_list(&dry, "upstreams", "added")), 2);
    import_ok(f, two_routes, STORE_IMPORT_REPLACE, &real);
    assert_string_equal(dry.checksum, real.checksum);
    store_import_result_clear(&dry);
    store_import_result_clear(&real);
}

static void test_refused_import_changes_nothing(void **state)
{
    fixture_t *f = *state;
    store_import_result_t res;
    fg_error_t err;
    char before_sum[FG_SHA256_HEX_LEN + 1], after_sum[FG_SHA256_HEX_LEN + 1];
    import_ok(f, two_routes, STORE_IMPORT_REPLACE, &res);
    store_import_result_clear(&res);
    int64_t before = version_of(f);
    latest_checksum(f, before_sum);
    /* validation: an unknown upstream, named in the file's coordinates */
    assert_int_equal(import_text(f, "upstreams:\n  - name: z\n    url: http://z\nroutes:\n"
                                 "  - path: /x\n    upstream: nope\n",
                                 STORE_IMPORT_REPLACE, false, &res, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].upstream");
    /* decode: a bad value */
    assert_int_equal(import_text(f, "routes:\n  - path: /x\n    upstream: a\n    rateLimit:\n"
                                 "      max: 1\n      windowMs: 0\n",
                                 STORE_IMPORT_MERGE, false, &res, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].rateLimit.windowMs");
    /* a wrongly typed id is refused, not replaced by a generated one */
    assert_int_equal(import_text(f, "routes:\n  - {id: 5, path: /x, upstream: a}\n",
                                 STORE_IMPORT_MERGE, false, &res, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].id");
    /* a name given twice in the file */
    assert_int_equal(import_text(f, "upstreams:\n  - name: q\n    url: http://q\n"
                                 "  - name: q\n    url: http://r\n",
                                 STORE_IMPORT_MERGE, false, &res, &err), -EEXIST);
    assert_string_equal(err.field, "upstreams[1].name");
    /* SQL metacharacters are data, and refused by the name rules */
    assert_int_equal(import_text(f, "upstreams:\n  - name: \"x'); DROP TABLE upstreams;--\"\n"
                                 "    url: http://q\n", STORE_IMPORT_MERGE, false, &res, &err),
                     -EINVAL);
    assert_string_equal(err.field, "upstreams[0].name");
    assert_int_equal(version_of(f), before);
    assert_string_equal(latest_checksum(f, after_sum), before_sum);
}

static void test_merge_keeps_and_replaces(void **state)
{
    fixture_t *f = *state;
    store_import_result_t res;
    import_ok(f, two_routes, STORE_IMPORT_REPLACE, &res);
    store_import_result_clear(&res);
    import_ok(f, "upstreams:\n  - name: a\n    url: http://127.0.0.1:9\n  - name: c\n"
                 "    url: http://127.0.0.1:3\n"
                 "routes:\n  - id: extra\n    path: /three\n    upstream: c\n"
                 "logging:\n  level: warn\n",
              STORE_IMPORT_MERGE, &res);
    assert_int_equal(cJSON_GetArraySize(diff_list(&res, "upstreams", "added")), 1);
    assert_string_equal(cJSON_GetArrayItem(diff_list(&res, "upstreams", "changed"), 0)
                            ->valuestring, "a");
    assert_int_equal(cJSON_GetArraySize(diff_list(&res, "upstreams", "removed")), 0);
    assert_int_equal(cJSON_GetArraySize(diff_list(&res, "routes", "added")), 1);
    assert_string_equal(cJSON_GetArrayItem(diff_list(&res, "settings", "changed"), 0)
                            ->valuestring, "logging");
    store_import_result_clear(&res);
    store_rows_t rows;
    fg_error_t err;
    assert_int_equal(store_list(f->st, STORE_ROUTES, &rows, &err), 0);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.items[2].key, "extra");
    store_rows_clear(&rows);
    /* replace with just one upstream: the rest goes, fallbacks and all */
    import_ok(f, "upstreams:\n  - name: c\n    url: http://127.0.0.1:3\n",
              STORE_IMPORT_REPLACE, &res);
    assert_int_equal(cJSON_GetArraySize(diff_list(&res, "upstreams", "removed")), 2);
    assert_int_equal(cJSON_GetArraySize(diff_list(&res, "routes", "removed")), 3);
    assert_string_equal(cJSON_GetArrayItem(diff_list(&res, "settings", "changed"), 0)
                            ->valuestring, "logging");
    store_import_result_clear(&res);
}

/* A merge can make a stored entity invalid (here: a stored key now has the same value as a
 * key the file changes); the error then names the stored entity and no field of the file. */
static void test_merge_error_on_a_stored_entity(void **state)
{
    fixture_t *f = *state;
    store_import_result_t res;
    fg_error_t err;
    import_ok(f, "security:\n  auth:\n    keys:\n      - {name: k1, key: one}\n"
                 "      - {name: k2, key: two}\n", STORE_IMPORT_REPLACE, &res);
    store_import_result_clear(&res);
    int64_t before = version_of(f);
    assert_int_equal(import_text(f, "security:\n  auth:\n    keys:\n      - {name: k1, key: two}\n",
                                 STORE_IMPORT_MERGE, false, &res, &err), -EINVAL);
    assert_string_equal(err.field, "");
    if (!strstr(err.message, "security.auth.keys[1]") || !strstr(err.message, "stored key 'k2'"))
        fail_msg("message: %s", err.message);
    assert_int_equal(version_of(f), before);
}

static void test_replace_takes_the_files_route_order(void **state)
{
    fixture_t *f = *state;
    store_import_result_t res;
    store_rows_t rows;
    fg_error_t err;
    const char *abc = "upstreams:\n  - name: u\n    url: http://u\nroutes:\n"
                      "  - {id: a, path: /a, upstream: u}\n  - {id: b, path: /b, upstream: u}\n"
                      "  - {id: c, path: /c, upstream: u}\n";
    const char *abc2 = "upstreams:\n  - name: u\n    url: http://u\nroutes:\n"
                       "  - {id: a, path: /a, upstream: u}\n  - {id: b, path: /b, upstream: u}\n"
                       "  - {id: c, path: /c, upstream: u, timeout: 5}\n";
    const char *cab = "upstreams:\n  - name: u\n    url: http://u\nroutes:\n"
                      "  - {id: c, path: /c, upstream: u, timeout: 5}\n"
                      "  - {id: a, path: /a, upstream: u}\n  - {id: b, path: /b, upstream: u}\n";
    import_ok(f, abc, STORE_IMPORT_REPLACE, &res);
    store_import_result_clear(&res);
    import_ok(f, abc2, STORE_IMPORT_REPLACE, &res); /* c: revision 2 */
    store_import_result_clear(&res);
    import_ok(f, cab, STORE_IMPORT_REPLACE, &res);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(res.diff, "routes"), "reordered")));
    store_import_result_clear(&res);
    assert_int_equal(store_list(f->st, STORE_ROUTES, &rows, &err), 0);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.items[0].key, "c");
    assert_string_equal(rows.items[1].key, "a");
    assert_string_equal(rows.items[2].key, "b");
    /* moved, not re-created: revisions are kept (a reset one could match a stale ETag) */
    assert_int_equal(rows.items[0].revision, 2);
    assert_int_equal(rows.items[1].revision, 1);
    store_rows_clear(&rows);
}

static void test_export_imports_to_the_same_checksum(void **state)
{
    fixture_t *f = *state;
    store_import_result_t res;
    size_t len;
    char *text = read_corpus("seed-full.yml", &len);
    import_ok(f, text, STORE_IMPORT_REPLACE, &res);
    free(text);
    store_import_result_clear(&res);
    text = read_corpus("seed-auth.yml", &len);
    import_ok(f, text, STORE_IMPORT_MERGE, &res);
    free(text);
    store_import_result_clear(&res);

    cJSON *tree;
    int64_t version;
    char sum[FG_SHA256_HEX_LEN + 1];
    fg_error_t err;
    assert_int_equal(store_export(f->st, &tree, &version, sum, &err), 0);
    char *yaml = yamlio_dump(tree, NULL, &len, &err);
    cJSON_Delete(tree);
    assert_non_null(yaml);
    /* into the same store (nothing changes) ... */
    import_ok(f, yaml, STORE_IMPORT_REPLACE, &res);
    assert_int_equal(res.n_changes, 0);
    assert_string_equal(res.checksum, sum);
    store_import_result_clear(&res);
    /* ... and into an empty one */
    assert_int_equal(import_text(f, "{}", STORE_IMPORT_REPLACE, false, &res, &err), 0);
    store_import_result_clear(&res);
    import_ok(f, yaml, STORE_IMPORT_REPLACE, &res);
    assert_string_equal(res.checksum, sum);
    store_import_result_clear(&res);
    free(yaml);
}

int main(void)
{
    find_corpus();
    fg_log_init("test", FG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_follow_the_core_schema),
        cmocka_unit_test(test_refused_constructs),
        cmocka_unit_test(test_billion_laughs_is_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_locate_names_line_and_column),
        cmocka_unit_test(test_dump_then_load_is_identity),
        cmocka_unit_test(test_seed_examples_decode),
        cmocka_unit_test_setup_teardown(test_seed_examples_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_twice_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_predicts_and_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_import_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_keeps_and_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_error_on_a_stored_entity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_takes_the_files_route_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_export_imports_to_the_same_checksum, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
