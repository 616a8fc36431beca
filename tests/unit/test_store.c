/* test_store.c - the control plane store on a real SQLite file in a temp directory.
 *
 * What must hold: migrations are idempotent; every mutation is one new version whose stored
 * snapshot is the canonical text of the rows and checksums to itself; a mutation the shared
 * validator refuses leaves rows and version untouched; the route -> upstream reference
 * refuses to delete a used upstream; a database from a newer binary is refused. */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "common/fg_config.h"
#include "common/fg_hash.h"
#include "common/fg_log.h"
#include "controlplane/migrations.h"
#include "controlplane/store.h"

#define ALL_MIGRATIONS ((int)ctl_migrations_count)

#define UP_BACKEND "{\"name\":\"backend\",\"url\":\"http://127.0.0.1:8081\"}"
#define UP_OTHER "{\"name\":\"other\",\"url\":\"http://127.0.0.1:8082\"}"
#define ROUTE_USERS "{\"id\":\"users\",\"path\":\"/api/users/*\",\"upstream\":\"backend\"}"
#define KEY_DIGEST "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct fixture {
    char dir[64];
    char db[128];
    store_t *st;
} fixture_t;

static const store_change_t test_change = {.summary = "test", .actor = "unit"};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    fg_error_t err;
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/fg-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/fg.db", f->dir);
    assert_int_equal(store_open(f->db, &f->st, &err), 0);
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

static void migrate_ok(fixture_t *f, int expect_applied)
{
    fg_error_t err;
    int applied = -1;
    int rc = store_migrate(f->st, &applied, &err);
    if (rc)
        fail_msg("migrate: %d %s: %s", rc, err.field, err.message);
    assert_int_equal(applied, expect_applied);
}

static int64_t version_of(fixture_t *f)
{
    fg_error_t err;
    int64_t v = -1;
    assert_int_equal(store_version(f->st, &v, &err), 0);
    return v;
}

/* Count rows through a second connection, as another process would see them. */
static int64_t count_rows(fixture_t *f, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t n = -1;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static int create(fixture_t *f, store_kind_t kind, const char *key, const char *spec,
                  const char *ref, fg_error_t *err)
{
    store_entity_t e = {.key = key, .spec = spec, .ref = ref};
    store_result_t res;
    return store_create(f->st, kind, &e, &test_change, &res, err);
}

/* The latest snapshot must be the version, checksum to its text, and parse+validate. */
static void check_latest_snapshot(fixture_t *f, int64_t version)
{
    store_snapshot_t snap;
    fg_error_t err;
    char sum[FG_SHA256_HEX_LEN + 1];
    fg_config_t *cfg = NULL;
    assert_int_equal(store_snapshot_latest(f->st, &snap, &err), 0);
    assert_int_equal(snap.version, version);
    fg_sha256_hex(snap.config, snap.config_len, sum);
    assert_string_equal(sum, snap.checksum);
    if (fg_config_parse(snap.config, snap.config_len, &cfg, &err))
        fail_msg("stored snapshot does not parse: %s: %s", err.field, err.message);
    char *again = fg_config_canonical(cfg);
    assert_string_equal(again, snap.config); /* stored text is canonical */
    free(again);
    fg_config_free(cfg);
    store_snapshot_clear(&snap);
}

/* ---- migrations ----------------------------------------------------------------------- */

static void test_migrate_creates_version_one(void **state)
{
    fixture_t *f = *state;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(version_of(f), 1);
    check_latest_snapshot(f, 1);

    fg_config_t *empty = fg_config_new_empty();
    char *text = fg_config_canonical(empty);
    store_snapshot_t snap;
    fg_error_t err;
    assert_int_equal(store_snapshot_get(f->st, 1, &snap, &err), 0);
    assert_string_equal(snap.config, text); /* version 1 is the empty configuration */
    assert_string_equal(snap.actor, "migrate");
    store_snapshot_clear(&snap);
    free(text);
    fg_config_free(empty);
}

static void test_migrate_twice_changes_nothing(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    migrate_ok(f, ALL_MIGRATIONS);
    store_snapshot_t before;
    assert_int_equal(store_snapshot_latest(f->st, &before, &err), 0);

    migrate_ok(f, 0);
    /* and from a fresh connection, as at the next start */
    store_close(f->st);
    assert_int_equal(store_open(f->db, &f->st, &err), 0);
    migrate_ok(f, 0);

    assert_int_equal(version_of(f), 1);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM schema_migrations"), ALL_MIGRATIONS);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM snapshots"), 1);
    store_snapshot_t after;
    assert_int_equal(store_snapshot_latest(f->st, &after, &err), 0);
    assert_string_equal(after.checksum, before.checksum);
    assert_string_equal(after.created_at, before.created_at);
    store_snapshot_clear(&before);
    store_snapshot_clear(&after);
}

static void test_newer_schema_is_refused(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    migrate_ok(f, ALL_MIGRATIONS);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES "
                                      "('9999_future.sql', 'x')", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_migrate(f->st, NULL, &err), -EPROTO);
    assert_non_null(strstr(err.message, "9999_future.sql"));
}

/* ---- mutations ------------------------------------------------------------------------ */

static void test_each_mutation_bumps_version(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    migrate_ok(f, ALL_MIGRATIONS);

    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    assert_int_equal(version_of(f), 2);
    check_latest_snapshot(f, 2);

    assert_int_equal(create(f, STORE_ROUTES, "users", ROUTE_USERS, "backend", &err), 0);
    assert_int_equal(version_of(f), 3);
    check_latest_snapshot(f, 3);

    store_entity_t e = {.key = "users", .ref = "backend",
                        .spec = "{\"id\":\"users\",\"path\":\"/u\",\"upstream\":\"backend\"}"};
    assert_int_equal(store_replace(f->st, STORE_ROUTES, &e, 0, &test_change, &res, &err), 0);
    assert_int_equal(res.version, 4);
    assert_int_equal(res.revision, 2);
    check_latest_snapshot(f, 4);

    store_row_t row;
    assert_int_equal(store_get(f->st, STORE_ROUTES, "users", &row, &err), 0);
    assert_string_equal(row.spec, e.spec);
    assert_int_equal(row.revision, 2);
    store_row_clear(&row);

    assert_int_equal(store_delete(f->st, STORE_ROUTES, "users", 0, &test_change, &res, &err),
                     0);
    assert_int_equal(res.version, 5);
    assert_int_equal(store_delete(f->st, STORE_UPSTREAMS, "backend", 0, &test_change, &res,
                                  &err), 0);
    assert_int_equal(res.version, 6);
    check_latest_snapshot(f, 6);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM snapshots"), 6);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM upstreams"), 0);
}

static void test_snapshot_holds_the_rows(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_snapshot_t snap;
    fg_config_t *cfg = NULL;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    assert_int_equal(create(f, STORE_ROUTES, "b", "{\"id\":\"b\",\"path\":\"/b\","
                            "\"upstream\":\"backend\"}", "backend", &err), 0);
    assert_int_equal(create(f, STORE_ROUTES, "a", "{\"id\":\"a\",\"path\":\"/a\","
                            "\"upstream\":\"backend\"}", "backend", &err), 0);
    assert_int_equal(store_snapshot_latest(f->st, &snap, &err), 0);
    assert_int_equal(fg_config_parse(snap.config, snap.config_len, &cfg, &err), 0);
    assert_int_equal(cfg->n_upstreams, 1);
    assert_string_equal(cfg->upstreams[0].name, "backend");
    assert_int_equal(cfg->n_routes, 2);
    assert_string_equal(cfg->routes[0].id, "b"); /* creation order, not id order */
    assert_string_equal(cfg->routes[1].id, "a");
    fg_config_free(cfg);
    store_snapshot_clear(&snap);
}

static void test_refused_mutation_rolls_back(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_rows_t rows;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    int64_t v = version_of(f);

    /* Refused by the store before writing: a route to an unknown upstream. */
    assert_int_equal(create(f, STORE_ROUTES, "r", "{\"id\":\"r\",\"path\":\"/r\","
                            "\"upstream\":\"ghost\"}", "ghost", &err), -EINVAL);
    assert_string_equal(err.field, "upstream");

    /* Refused by the shared validator after the row was written: a fallback to nowhere. */
    assert_int_equal(create(f, STORE_UPSTREAMS, "fb", "{\"name\":\"fb\",\"url\":\"http://x\","
                            "\"fallback\":\"ghost\"}", NULL, &err), -EINVAL);
    assert_non_null(strstr(err.field, "fallback"));

    /* Refused by the whole-config decoder: a stored spec with an unknown key. */
    assert_int_equal(create(f, STORE_UPSTREAMS, "bad", "{\"name\":\"bad\",\"url\":\"http://x\","
                            "\"bogus\":1}", NULL, &err), -EINVAL);
    assert_non_null(strstr(err.field, "bogus"));

    /* Duplicate. */
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), -EEXIST);

    assert_int_equal(version_of(f), v);
    check_latest_snapshot(f, v);
    assert_int_equal(store_list(f->st, STORE_UPSTREAMS, &rows, &err), 0);
    assert_int_equal(rows.n, 1);
    assert_string_equal(rows.items[0].key, "backend");
    store_rows_clear(&rows);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM routes"), 0);
}

static void test_used_upstream_cannot_be_deleted(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    assert_int_equal(create(f, STORE_ROUTES, "users", ROUTE_USERS, "backend", &err), 0);
    int64_t v = version_of(f);

    assert_int_equal(store_delete(f->st, STORE_UPSTREAMS, "backend", 0, &test_change, &res,
                                  &err), -EBUSY);
    assert_non_null(strstr(err.message, "users"));
    assert_int_equal(version_of(f), v);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM upstreams"), 1);
}

/* The foreign key itself, not just the pre-check: a bulk delete must fail too. */
static int on_delete_all_upstreams(store_t *st, void *arg, fg_error_t *err)
{
    return store_tx_delete_all(st, STORE_UPSTREAMS, err);
}

static void test_foreign_key_is_enforced(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    assert_int_equal(create(f, STORE_ROUTES, "users", ROUTE_USERS, "backend", &err), 0);
    int64_t v = version_of(f);
    assert_int_equal(store_mutate(f->st, on_delete_all_upstreams, NULL, &test_change, &res,
                                  &err), -EBUSY);
    assert_int_equal(version_of(f), v);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM upstreams"), 1);
}

static void test_stale_revision_is_refused(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    store_entity_t e = {.key = "backend", .spec = UP_BACKEND};
    assert_int_equal(store_replace(f->st, STORE_UPSTREAMS, &e, 1, &test_change, &res, &err), 0);
    assert_int_equal(res.revision, 2);
    int64_t v = version_of(f);
    assert_int_equal(store_replace(f->st, STORE_UPSTREAMS, &e, 1, &test_change, &res, &err),
                     -ESTALE);
    assert_int_equal(store_delete(f->st, STORE_UPSTREAMS, "backend", 1, &test_change, &res,
                                  &err), -ESTALE);
    assert_int_equal(version_of(f), v);
    assert_int_equal(store_replace(f->st, STORE_UPSTREAMS, &(store_entity_t){
                                       .key = "nope", .spec = UP_OTHER}, 0, &test_change,
                                   &res, &err), -ENOENT);
}

static void test_generated_route_ids(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    char id[FG_NAME_MAX_LEN + 1];
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(store_route_next_id(f->st, id, sizeof id, &err), 0);
    assert_string_equal(id, "route-1");
    assert_int_equal(create(f, STORE_UPSTREAMS, "backend", UP_BACKEND, NULL, &err), 0);
    /* A hand-picked id that collides with the next generated one is skipped. */
    assert_int_equal(create(f, STORE_ROUTES, "route-2", "{\"id\":\"route-2\",\"path\":\"/x\","
                            "\"upstream\":\"backend\"}", "backend", &err), 0);
    assert_int_equal(store_route_next_id(f->st, id, sizeof id, &err), 0);
    assert_string_equal(id, "route-3");
}

/* Settings and keys are rows too: they must reach the snapshot. */
typedef struct settings_arg {
    const char *logging;
    bool with_key;
} settings_arg_t;

static int on_put_settings(store_t *st, void *arg, fg_error_t *err)
{
    settings_arg_t *a = arg;
    int rc = store_tx_setting_put(st, "logging", a->logging, err);
    if (rc || !a->with_key)
        return rc;
    store_entity_t key = {.key = "client-a", .ref = KEY_DIGEST,
                          .spec = "{\"name\":\"client-a\",\"key\":\"" KEY_DIGEST "\"}"};
    return store_tx_insert(st, STORE_KEYS, &key, NULL, err);
}

static int on_put_unknown_section(store_t *st, void *arg, fg_error_t *err)
{
    return store_tx_setting_put(st, "routes", "[]", err);
}

static void test_settings_and_keys_reach_snapshot(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    store_snapshot_t snap;
    fg_config_t *cfg = NULL;
    migrate_ok(f, ALL_MIGRATIONS);
    settings_arg_t arg = {.logging = "{\"level\":\"debug\"}", .with_key = true};
    int rc = store_mutate(f->st, on_put_settings, &arg, &test_change, &res, &err);
    if (rc)
        fail_msg("mutate: %s: %s", err.field, err.message);
    assert_int_equal(res.version, 2);
    assert_int_equal(store_snapshot_latest(f->st, &snap, &err), 0);
    assert_int_equal(fg_config_parse(snap.config, snap.config_len, &cfg, &err), 0);
    assert_string_equal(cfg->logging.level, "debug");
    assert_int_equal(cfg->security.auth.n_keys, 1);
    assert_string_equal(cfg->security.auth.keys[0].key_sha256, KEY_DIGEST);
    assert_string_equal(snap.summary, "test");
    fg_config_free(cfg);
    store_snapshot_clear(&snap);

    /* A bad setting is refused with its path and nothing changes. */
    arg.logging = "{\"level\":\"loud\"}";
    arg.with_key = false;
    assert_int_equal(store_mutate(f->st, on_put_settings, &arg, &test_change, &res, &err),
                     -EINVAL);
    assert_non_null(strstr(err.field, "logging"));
    assert_int_equal(version_of(f), 2);
    /* Unknown sections never reach SQL. */
    assert_int_equal(store_mutate(f->st, on_put_unknown_section, NULL, &test_change, &res,
                                  &err), -EINVAL);
    assert_int_equal(version_of(f), 2);
}


/* ---- settings sections, history, rollback (issue 4) ----------------------------------- */

static void test_setting_put_has_revisions(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res = {0};
    store_row_t row;
    migrate_ok(f, ALL_MIGRATIONS);
    for (size_t i = 0; i < STORE_N_SETTINGS; i++) { /* every section exists from the start */
        assert_int_equal(store_setting_get(f->st, store_settings_sections[i], &row, &err), 0);
        assert_int_equal(row.revision, 1);
        store_row_clear(&row);
    }
    assert_int_equal(store_setting_get(f->st, "routes", &row, &err), -ENOENT);

    assert_int_equal(store_setting_put(f->st, "logging", "{\"level\":\"warn\"}", 1,
                                       &test_change, &res, &err), 0);
    assert_int_equal(res.revision, 2);
    assert_int_equal(res.version, 2);
    /* A write against the old revision is refused and changes nothing. */
    assert_int_equal(store_setting_put(f->st, "logging", "{\"level\":\"error\"}", 1,
                                       &test_change, &res, &err), -ESTALE);
    assert_int_equal(version_of(f), 2);
    assert_int_equal(store_setting_get(f->st, "logging", &row, &err), 0);
    assert_string_equal(row.spec, "{\"level\":\"warn\"}");
    assert_int_equal(row.revision, 2);
    store_row_clear(&row);
    /* Invalid values fail validation with the path; reset (NULL) bumps the revision. */
    assert_int_equal(store_setting_put(f->st, "proxy", "{\"port\":0}", 0, &test_change, &res,
                                       &err), -EINVAL);
    assert_string_equal(err.field, "proxy.port");
    assert_int_equal(store_setting_put(f->st, "logging", NULL, 0, &test_change, &res, &err), 0);
    assert_int_equal(res.revision, 3);
    assert_int_equal(version_of(f), 3);
}

static void test_history_lists_changes(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    store_snapshots_t page;
    const store_change_t by_api = {.summary = "create upstream backend", .actor = "api:admin"};
    migrate_ok(f, ALL_MIGRATIONS);
    store_entity_t up = {.key = "backend", .spec = UP_BACKEND};
    store_entity_t route = {.key = "users", .spec = ROUTE_USERS, .ref = "backend"};
    assert_int_equal(store_create(f->st, STORE_UPSTREAMS, &up, &by_api, &res, &err), 0);
    assert_int_equal(store_create(f->st, STORE_ROUTES, &route, &test_change, &res, &err), 0);
    assert_int_equal(store_delete(f->st, STORE_ROUTES, "users", 0, &test_change, &res, &err), 0);
    assert_int_equal(version_of(f), 4);

    assert_int_equal(store_snapshot_list(f->st, 0, 2, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_true(page.more);
    assert_int_equal(page.items[0].version, 4);
    assert_null(page.items[0].config);
    assert_string_equal(page.items[0].changes,
                        "[{\"kind\":\"route\",\"name\":\"users\",\"op\":\"deleted\"}]");
    assert_int_equal(page.items[0].changes_total, 1);
    assert_string_equal(page.items[1].changes,
                        "[{\"kind\":\"route\",\"name\":\"users\",\"op\":\"created\"}]");
    store_snapshots_clear(&page);

    assert_int_equal(store_snapshot_list(f->st, 3, 10, &page, &err), 0); /* before=3 */
    assert_int_equal(page.n, 2);
    assert_false(page.more);
    assert_int_equal(page.items[0].version, 2);
    assert_string_equal(page.items[0].actor, "api:admin");
    assert_string_equal(page.items[0].summary, "create upstream backend");
    assert_string_equal(page.items[0].changes,
                        "[{\"kind\":\"upstream\",\"name\":\"backend\",\"op\":\"created\"}]");
    assert_int_equal(page.items[1].version, 1);
    store_snapshots_clear(&page);
    assert_int_equal(store_snapshot_list(f->st, 0, 0, &page, &err), -EINVAL);
}

static int on_big_change(store_t *st, void *arg, fg_error_t *err)
{
    char name[32], spec[128];
    for (int i = 0; i < STORE_CHANGES_MAX + 5; i++) {
        snprintf(name, sizeof name, "u%d", i);
        snprintf(spec, sizeof spec, "{\"name\":\"%s\",\"url\":\"http://127.0.0.1:1\"}", name);
        store_entity_t e = {.key = name, .spec = spec};
        int rc = store_tx_insert(st, STORE_UPSTREAMS, &e, NULL, err);
        if (rc)
            return rc;
    }
    return 0;
}

static void test_history_caps_change_entries(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    store_snapshot_t snap;
    migrate_ok(f, ALL_MIGRATIONS);
    assert_int_equal(store_mutate(f->st, on_big_change, NULL, &test_change, &res, &err), 0);
    assert_int_equal(store_snapshot_latest(f->st, &snap, &err), 0);
    assert_int_equal(snap.changes_total, STORE_CHANGES_MAX + 5);
    cJSON *changes = cJSON_Parse(snap.changes);
    assert_int_equal(cJSON_GetArraySize(changes), STORE_CHANGES_MAX);
    cJSON_Delete(changes);
    store_snapshot_clear(&snap);
}

static int64_t row_revision(fixture_t *f, store_kind_t kind, const char *key)
{
    store_row_t row;
    fg_error_t err;
    if (store_get(f->st, kind, key, &row, &err) != 0)
        return -1;
    int64_t rev = row.revision;
    store_row_clear(&row);
    return rev;
}

static void test_rollback_restores_config_and_checksum(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    store_result_t res;
    store_snapshot_t v3, now;
    migrate_ok(f, ALL_MIGRATIONS);
    store_entity_t up = {.key = "backend", .spec = UP_BACKEND};
    store_entity_t other = {.key = "other", .spec = UP_OTHER};
    store_entity_t route = {.key = "users", .spec = ROUTE_USERS, .ref = "backend"};
    assert_int_equal(store_create(f->st, STORE_UPSTREAMS, &up, &test_change, &res, &err), 0);
    assert_int_equal(store_create(f->st, STORE_ROUTES, &route, &test_change, &res, &err), 0);
    assert_int_equal(store_snapshot_get(f->st, 3, &v3, &err), 0);

    /* Move on: a second upstream before, route moved to it, backend deleted, settings. */
    assert_int_equal(store_create(f->st, STORE_UPSTREAMS, &other, &test_change, &res, &err), 0);
    store_entity_t moved = {.key = "users", .ref = "other",
                            .spec = "{\"id\":\"users\",\"path\":\"/v2/*\",\"upstream\":\"other\"}"};
    assert_int_equal(store_replace(f->st, STORE_ROUTES, &moved, 0, &test_change, &res, &err), 0);
    assert_int_equal(store_delete(f->st, STORE_UPSTREAMS, "backend", 0, &test_change, &res,
                                  &err), 0);
    assert_int_equal(store_setting_put(f->st, "logging", "{\"level\":\"debug\"}", 0,
                                       &test_change, &res, &err), 0);
    int64_t route_rev = row_revision(f, STORE_ROUTES, "users");
    assert_int_equal(route_rev, 2);
    store_row_t before;
    assert_int_equal(store_setting_get(f->st, "proxy", &before, &err), 0);
    int64_t proxy_rev = before.revision;
    store_row_clear(&before);

    const store_change_t chg = {.summary = "rollback to version 3", .actor = "rollback:v3"};
    int rc = store_rollback(f->st, 3, &chg, &res, &err);
    if (rc)
        fail_msg("rollback: %d %s: %s", rc, err.field, err.message);
    assert_int_equal(res.version, 8);
    assert_int_equal(store_snapshot_latest(f->st, &now, &err), 0);
    assert_string_equal(now.checksum, v3.checksum);
    assert_string_equal(now.config, v3.config);
    assert_string_equal(now.actor, "rollback:v3");
    assert_non_null(strstr(now.changes, "\"name\":\"other\",\"op\":\"deleted\""));
    assert_non_null(strstr(now.changes, "\"name\":\"backend\",\"op\":\"created\""));
    assert_non_null(strstr(now.changes, "\"name\":\"logging\",\"op\":\"updated\""));
    store_snapshot_clear(&now);
    store_snapshot_clear(&v3);
    /* Revisions move forward, never back: a client's old ETag cannot match by accident. */
    assert_int_equal(row_revision(f, STORE_ROUTES, "users"), route_rev + 1);
    assert_int_equal(row_revision(f, STORE_UPSTREAMS, "other"), -1);

    /* Rolling back to what is current changes no revision, of rows or of sections (which
     * are stored as "{}" until first written). */
    store_row_t row;
    assert_int_equal(store_rollback(f->st, 8, &chg, &res, &err), 0);
    assert_int_equal(row_revision(f, STORE_ROUTES, "users"), route_rev + 1);
    assert_int_equal(store_setting_get(f->st, "proxy", &row, &err), 0);
    assert_int_equal(row.revision, proxy_rev);
    assert_string_equal(row.spec, "{}");
    store_row_clear(&row);
    assert_int_equal(store_rollback(f->st, 99, &chg, &res, &err), -ENOENT);
    assert_int_equal(version_of(f), 9);
}

static void test_tx_calls_outside_mutate_are_refused(void **state)
{
    fixture_t *f = *state;
    fg_error_t err;
    migrate_ok(f, ALL_MIGRATIONS);
    store_entity_t e = {.key = "backend", .spec = UP_BACKEND};
    assert_int_equal(store_tx_insert(f->st, STORE_UPSTREAMS, &e, NULL, &err), -EPERM);
    assert_int_equal(store_tx_setting_put(f->st, "logging", "{}", &err), -EPERM);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM upstreams"), 0);
}

int main(void)
{
    fg_log_init("test", FG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_creates_version_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_twice_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_mutation_bumps_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_holds_the_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_mutation_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_upstream_cannot_be_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_key_is_enforced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_revision_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_route_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_and_keys_reach_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setting_put_has_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_lists_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_caps_change_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_restores_config_and_checksum, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tx_calls_outside_mutate_are_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
