/* store.c - the configuration store on SQLite (see store.h for the contract).
 *
 * The one idea here: the snapshot of version N is built inside the transaction that creates
 * N, from the rows just written, and checked by the same decoder and validator a data plane
 * runs. So a committed version is always a valid configuration, a refused change leaves no
 * trace, and a crash between commit and push loses nothing (the publisher sends stored
 * snapshots only). Statements are prepared per call with bound parameters; SQL text is
 * never built from data. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "config_diff.h"
#include "fg_config.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_time.h"
#include "migrations.h"

struct store {
    sqlite3 *db;
    bool in_tx; /* a store_mutate transaction is open: store_tx_* may run */
};

/* The SQL of one entity table. Parameters are positional and shared by all kinds:
 * ?1 key, ?2 spec, ?3 now (RFC 3339), ?4 ref (routes: upstream; keys: key_sha256). */
typedef struct kind_sql {
    const char *noun;
    const char *insert;
    const char *update;     /* RETURNING the new revision */
    const char *remove;
    const char *revision;   /* SELECT revision of ?1 */
    const char *get;        /* key, spec, revision, created_at, updated_at */
    const char *list;
    const char *remove_all;
} kind_sql_t;

static const kind_sql_t kind_sql[] = {
    [STORE_UPSTREAMS] = {
        .noun = "upstream",
        .insert = "INSERT INTO upstreams (name, spec, revision, created_at, updated_at) "
                  "VALUES (?1, ?2, 1, ?3, ?3)",
        .update = "UPDATE upstreams SET spec = ?2, revision = revision + 1, updated_at = ?3 "
                  "WHERE name = ?1 RETURNING revision",
        .remove = "DELETE FROM upstreams WHERE name = ?1",
        .revision = "SELECT revision FROM upstreams WHERE name = ?1",
        .get = "SELECT name, spec, revision, created_at, updated_at FROM upstreams "
               "WHERE name = ?1",
        .list = "SELECT name, spec, revision, created_at, updated_at FROM upstreams "
                "ORDER BY rowid",
        .remove_all = "DELETE FROM upstreams",
    },
    [STORE_ROUTES] = {
        .noun = "route",
        .insert = "INSERT INTO routes (id, upstream, position, spec, revision, created_at, "
                  "updated_at) VALUES (?1, ?4, "
                  "(SELECT coalesce(max(position), 0) + 1 FROM routes), ?2, 1, ?3, ?3)",
        .update = "UPDATE routes SET spec = ?2, upstream = ?4, revision = revision + 1, "
                  "updated_at = ?3 WHERE id = ?1 RETURNING revision",
        .remove = "DELETE FROM routes WHERE id = ?1",
        .revision = "SELECT revision FROM routes WHERE id = ?1",
        .get = "SELECT id, spec, revision, created_at, updated_at FROM routes WHERE id = ?1",
        .list = "SELECT id, spec, revision, created_at, updated_at FROM routes "
                "ORDER BY position, id",
        .remove_all = "DELETE FROM routes",
    },
    [STORE_KEYS] = {
        .noun = "key",
        .insert = "INSERT INTO api_keys (name, key_sha256, spec, revision, created_at, "
                  "updated_at) VALUES (?1, ?4, ?2, 1, ?3, ?3)",
        .update = "UPDATE api_keys SET spec = ?2, key_sha256 = ?4, revision = revision + 1, "
                  "updated_at = ?3 WHERE name = ?1 RETURNING revision",
        .remove = "DELETE FROM api_keys WHERE name = ?1",
        .revision = "SELECT revision FROM api_keys WHERE name = ?1",
        .get = "SELECT name, spec, revision, created_at, updated_at FROM api_keys "
               "WHERE name = ?1",
        .list = "SELECT name, spec, revision, created_at, updated_at FROM api_keys "
                "ORDER BY rowid",
        .remove_all = "DELETE FROM api_keys",
    },
};

const char *const store_settings_sections[STORE_N_SETTINGS] = {"proxy", "security",
                                                                "rateLimit", "logging",
                                                                "metrics"};

bool store_setting_section_valid(const char *section)
{
    for (size_t i = 0; section && i < STORE_N_SETTINGS; i++)
        if (strcmp(section, store_settings_sections[i]) == 0)
            return true;
    return false;
}

const char *store_kind_noun(store_kind_t kind)
{
    return kind <= STORE_KEYS ? kind_sql[kind].noun : "entity";
}

/* ---- SQLite plumbing ------------------------------------------------------------------ */

/* Translate a failed SQLite call into our code; constraint kinds matter to callers. */
static uint64_t sqlite_errors[STORE_SQLITE_KINDS]; /* process-wide, atomic: store_sqlite_errors */

uint64_t store_sqlite_errors(store_sqlite_kind_t kind)
{
    return (unsigned)kind < STORE_SQLITE_KINDS ? __atomic_load_n(&sqlite_errors[kind],
                                                                 __ATOMIC_RELAXED)
                                               : 0;
}

static int fail_sqlite(store_t *st, int rc, fg_error_t *err, const char *what)
{
    int code;
    switch (rc) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        code = -EEXIST;
        break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        code = -EBUSY;
        break;
    case SQLITE_CONSTRAINT_TRIGGER: /* what an ON DELETE RESTRICT violation reports */
        code = st && st->db && strstr(sqlite3_errmsg(st->db), "FOREIGN KEY") ? -EBUSY : -EIO;
        break;
    case SQLITE_NOMEM:
        code = -ENOMEM;
        break;
    default:
        code = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? -EAGAIN : -EIO;
        break;
    }
    store_sqlite_kind_t kind = (rc & 0xff) == SQLITE_CONSTRAINT ? STORE_SQLITE_CONSTRAINT
                               : code == -EAGAIN               ? STORE_SQLITE_BUSY
                                                               : STORE_SQLITE_OTHER;
    __atomic_fetch_add(&sqlite_errors[kind], 1, __ATOMIC_RELAXED);
    return fg_error_setc(err, code, NULL, "%s: %s", what,
                         st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

static int prepare(store_t *st, const char *sql, sqlite3_stmt **out, fg_error_t *err)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return fail_sqlite(st, rc, err, "prepare");
    }
    return 0;
}

static int exec_sql(store_t *st, const char *sql, fg_error_t *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = fail_sqlite(st, rc, err, "exec");
        if (msg)
            fg_error_setc(err, code, NULL, "%s", msg);
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

static void bind_text(sqlite3_stmt *s, int idx, const char *v)
{
    if (idx <= sqlite3_bind_parameter_count(s))
        sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC);
}

/* Step a statement that returns no rows (or whose rows we ignore). */
static int step_done(store_t *st, sqlite3_stmt *s, fg_error_t *err, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        return fail_sqlite(st, sqlite3_extended_errcode(st->db), err, what);
    return 0;
}

static void now_rfc3339(char out[STORE_TS_MAX])
{
    fg_rfc3339(fg_wall_ms(), out);
}

static char *column_strdup(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return strdup(t ? (const char *)t : "");
}

static void column_copy(sqlite3_stmt *s, int col, char *out, size_t len)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, len, "%s", t ? (const char *)t : "");
}

/* SELECT one integer; -ENOENT when there is no row. */
static int query_int(store_t *st, const char *sql, const char *param, int64_t *out,
                     fg_error_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err);
    if (rc)
        return rc;
    if (param)
        bind_text(s, 1, param);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else {
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "query");
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- lifetime ------------------------------------------------------------------------- */

int store_open(const char *path, store_t **out, fg_error_t *err)
{
    store_t *st = calloc(1, sizeof *st);
    if (!st)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                                SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = fg_error_setc(err, -EIO, NULL, "cannot open database %s: %s", path,
                           st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail_open;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    /* FULL: a committed version must survive power loss, since data planes may already
     * run it; writes are rare enough that the fsync does not matter. */
    rc = exec_sql(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
                      "PRAGMA foreign_keys = ON;", err);
    if (rc)
        goto fail_open;
    *out = st;
    return 0;

fail_open:
    sqlite3_close(st->db);
    free(st);
    return rc;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    sqlite3_close(st->db);
    free(st);
}

/* ---- migrations ----------------------------------------------------------------------- */

static int migrations_table_exists(store_t *st, bool *exists, fg_error_t *err)
{
    int64_t n = 0;
    int rc = query_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'schema_migrations'", NULL, &n, err);
    *exists = n > 0;
    return rc;
}

/* Refuse a database that a newer binary migrated: its schema may mean things we don't. */
static int check_known_migrations(store_t *st, fg_error_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT name FROM schema_migrations ORDER BY name", &s, err);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        bool known = false;
        for (size_t i = 0; i < ctl_migrations_count && !known; i++)
            known = name && strcmp(name, ctl_migrations[i].name) == 0;
        if (!known) {
            rc = fg_error_setc(err, -EPROTO, NULL,
                               "database has migration %s, unknown to this flexgate-ctl "
                               "(written by a newer version?)", name ? name : "?");
            sqlite3_finalize(s);
            return rc;
        }
    }
    rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db), err,
                                             "read schema_migrations");
    sqlite3_finalize(s);
    return rc;
}

/* Apply one migration unless recorded; the check runs inside the write transaction so two
 * processes migrating at once cannot both apply it. *applied is set when it ran now. */
static int apply_migration(store_t *st, const ctl_migration_t *m, bool *applied,
                           fg_error_t *err)
{
    bool exists = false;
    int64_t n = 0;
    sqlite3_stmt *s = NULL;
    char now[STORE_TS_MAX];

    *applied = false;
    int rc = exec_sql(st, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    rc = migrations_table_exists(st, &exists, err);
    if (rc)
        goto fail_tx;
    if (exists) {
        rc = query_int(st, "SELECT count(*) FROM schema_migrations WHERE name = ?1", m->name,
                       &n, err);
        if (rc)
            goto fail_tx;
        if (n > 0)
            return exec_sql(st, "COMMIT", err);
    }
    rc = exec_sql(st, m->sql, err);
    if (rc) {
        char why[FG_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err ? err->message : "");
        fg_error_setc(err, rc, NULL, "migration %s failed: %s", m->name, why);
        goto fail_tx;
    }
    rc = prepare(st, "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)", &s,
                 err);
    if (rc)
        goto fail_tx;
    now_rfc3339(now);
    bind_text(s, 1, m->name);
    bind_text(s, 2, now);
    rc = step_done(st, s, err, "record migration");
    sqlite3_finalize(s);
    if (rc)
        goto fail_tx;
    rc = exec_sql(st, "COMMIT", err);
    if (rc)
        goto fail_tx;
    *applied = true;
    return 0;

fail_tx:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int ensure_first_snapshot(store_t *st, fg_error_t *err);

int store_migrate(store_t *st, int *applied, fg_error_t *err)
{
    int count = 0;
    for (size_t i = 0; i < ctl_migrations_count; i++) {
        bool ran = false;
        int rc = apply_migration(st, &ctl_migrations[i], &ran, err);
        if (rc)
            return rc;
        if (ran) {
            count++;
            fg_log(FG_LOG_INFO, "migration applied", "name", ctl_migrations[i].name, NULL);
        }
    }
    if (applied)
        *applied = count;
    int rc = check_known_migrations(st, err);
    if (rc)
        return rc;
    return ensure_first_snapshot(st, err);
}

/* ---- reads ---------------------------------------------------------------------------- */

int store_version(store_t *st, int64_t *out, fg_error_t *err)
{
    int rc = query_int(st, "SELECT version FROM config_state WHERE id = 1", NULL, out, err);
    if (rc == -ENOENT)
        return fg_error_setc(err, -EIO, NULL, "config_state row missing (not migrated?)");
    return rc;
}

static int read_snapshot(store_t *st, const char *sql, int64_t version, store_snapshot_t *out,
                         fg_error_t *err)
{
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    int rc = prepare(st, sql, &s, err);
    if (rc)
        return rc;
    if (sqlite3_bind_parameter_count(s) >= 1)
        sqlite3_bind_int64(s, 1, version);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->version = sqlite3_column_int64(s, 0);
        column_copy(s, 1, out->checksum, sizeof out->checksum);
        column_copy(s, 2, out->created_at, sizeof out->created_at);
        out->config = column_strdup(s, 3);
        out->config_len = out->config ? strlen(out->config) : 0;
        out->summary = column_strdup(s, 4);
        out->actor = column_strdup(s, 5);
        out->changes = column_strdup(s, 6);
        out->changes_total = sqlite3_column_int64(s, 7);
        rc = out->config && out->summary && out->actor && out->changes ? 0 : -ENOMEM;
        if (rc) {
            store_snapshot_clear(out);
            fg_error_setc(err, rc, NULL, "out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        rc = fg_error_setc(err, -ENOENT, NULL, "no snapshot of version %" PRId64, version);
    } else {
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "read snapshot");
    }
    sqlite3_finalize(s);
    return rc;
}

int store_snapshot_latest(store_t *st, store_snapshot_t *out, fg_error_t *err)
{
    return read_snapshot(st, "SELECT version, checksum, created_at, config, summary, actor, "
                             "changes, changes_total FROM snapshots ORDER BY version DESC "
                             "LIMIT 1", 0, out, err);
}

int store_snapshot_get(store_t *st, int64_t version, store_snapshot_t *out, fg_error_t *err)
{
    return read_snapshot(st, "SELECT version, checksum, created_at, config, summary, actor, "
                             "changes, changes_total FROM snapshots WHERE version = ?1",
                         version, out, err);
}

void store_snapshot_clear(store_snapshot_t *s)
{
    if (!s)
        return;
    free(s->config);
    free(s->summary);
    free(s->actor);
    free(s->changes);
    s->config = s->summary = s->actor = s->changes = NULL;
    s->config_len = 0;
}

int store_snapshot_list(store_t *st, int64_t before, size_t limit, store_snapshots_t *out,
                        fg_error_t *err)
{
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    if (limit < 1 || limit > STORE_HISTORY_PAGE_MAX)
        return fg_error_set(err, "limit", "must be between 1 and %d", STORE_HISTORY_PAGE_MAX);
    if (!(out->items = calloc(limit, sizeof *out->items)))
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    /* One row more than asked says whether another page exists. */
    int rc = prepare(st, "SELECT version, checksum, created_at, summary, actor, changes, "
                         "changes_total FROM snapshots WHERE ?1 <= 0 OR version < ?1 "
                         "ORDER BY version DESC LIMIT ?2", &s, err);
    if (rc) {
        store_snapshots_clear(out);
        return rc;
    }
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)limit + 1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == limit) {
            out->more = true;
            continue;
        }
        store_snapshot_t *it = &out->items[out->n++];
        it->version = sqlite3_column_int64(s, 0);
        column_copy(s, 1, it->checksum, sizeof it->checksum);
        column_copy(s, 2, it->created_at, sizeof it->created_at);
        it->summary = column_strdup(s, 3);
        it->actor = column_strdup(s, 4);
        it->changes = column_strdup(s, 5);
        it->changes_total = sqlite3_column_int64(s, 6);
        if (!it->summary || !it->actor || !it->changes) {
            sqlite3_finalize(s);
            store_snapshots_clear(out);
            return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        }
    }
    rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db), err,
                                             "list snapshots");
    sqlite3_finalize(s);
    if (rc)
        store_snapshots_clear(out);
    return rc;
}

void store_snapshots_clear(store_snapshots_t *list)
{
    if (!list)
        return;
    for (size_t i = 0; list->items && i < list->n; i++)
        store_snapshot_clear(&list->items[i]);
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

static int read_row(sqlite3_stmt *s, store_row_t *row)
{
    memset(row, 0, sizeof *row);
    row->key = column_strdup(s, 0);
    row->spec = column_strdup(s, 1);
    row->revision = sqlite3_column_int64(s, 2);
    column_copy(s, 3, row->created_at, sizeof row->created_at);
    column_copy(s, 4, row->updated_at, sizeof row->updated_at);
    if (!row->key || !row->spec) {
        store_row_clear(row);
        return -ENOMEM;
    }
    return 0;
}

int store_list(store_t *st, store_kind_t kind, store_rows_t *out, fg_error_t *err)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    int rc = prepare(st, kind_sql[kind].list, &s, err);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_row_t *items = realloc(out->items, ncap * sizeof *items);
            if (!items)
                goto fail_nomem;
            out->items = items;
            cap = ncap;
        }
        if (read_row(s, &out->items[out->n]) < 0)
            goto fail_nomem;
        out->n++;
    }
    rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db), err,
                                             "list");
    sqlite3_finalize(s);
    if (rc)
        store_rows_clear(out);
    return rc;

fail_nomem:
    sqlite3_finalize(s);
    store_rows_clear(out);
    return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

int store_get(store_t *st, store_kind_t kind, const char *key, store_row_t *out,
              fg_error_t *err)
{
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    int rc = prepare(st, kind_sql[kind].get, &s, err);
    if (rc)
        return rc;
    bind_text(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = read_row(s, out) < 0 ? fg_error_setc(err, -ENOMEM, NULL, "out of memory") : 0;
    else if (rc == SQLITE_DONE)
        rc = fg_error_setc(err, -ENOENT, NULL, "no %s named '%s'", kind_sql[kind].noun, key);
    else
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "get");
    sqlite3_finalize(s);
    return rc;
}

int store_setting_get(store_t *st, const char *section, store_row_t *out, fg_error_t *err)
{
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    if (!store_setting_section_valid(section))
        return fg_error_setc(err, -ENOENT, NULL, "no settings section '%s'",
                             section ? section : "");
    int rc = prepare(st, "SELECT key, value, revision, '', updated_at FROM settings "
                         "WHERE key = ?1", &s, err);
    if (rc)
        return rc;
    bind_text(s, 1, section);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        rc = read_row(s, out) < 0 ? fg_error_setc(err, -ENOMEM, NULL, "out of memory") : 0;
    else if (rc == SQLITE_DONE) /* a database migrated before 0002 had no rows: defaults */
        rc = (out->key = strdup(section)) && (out->spec = strdup("{}"))
                 ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    else
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "get setting");
    sqlite3_finalize(s);
    if (rc)
        store_row_clear(out);
    return rc;
}

void store_row_clear(store_row_t *row)
{
    if (!row)
        return;
    free(row->key);
    free(row->spec);
    row->key = row->spec = NULL;
}

void store_rows_clear(store_rows_t *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++)
        store_row_clear(&rows->items[i]);
    free(rows->items);
    rows->items = NULL;
    rows->n = 0;
}

int store_route_next_id(store_t *st, char *out, size_t len, fg_error_t *err)
{
    int64_t n = 0, taken = 0;
    int rc = query_int(st, "SELECT count(*) FROM routes", NULL, &n, err);
    if (rc)
        return rc;
    /* Starting at count+1 makes the first probe succeed unless ids were chosen by hand. */
    for (int64_t i = n + 1; i < INT64_MAX; i++) {
        snprintf(out, len, STORE_ROUTE_ID_PREFIX "%" PRId64, i);
        rc = query_int(st, "SELECT count(*) FROM routes WHERE id = ?1", out, &taken, err);
        if (rc)
            return rc;
        if (!taken)
            return 0;
    }
    return fg_error_setc(err, -EEXIST, "id", "no free route id");
}

/* ---- the snapshot of a new version ---------------------------------------------------- */

/* Parse stored JSON; a row that does not parse means the database was edited by hand. */
static int parse_stored(const char *text, const char *what, const char *key, cJSON **out,
                        fg_error_t *err)
{
    *out = cJSON_Parse(text ? text : "");
    if (!*out)
        return fg_error_setc(err, -EIO, NULL, "stored %s '%s' is not valid JSON", what,
                             key ? key : "");
    return 0;
}

/* Append every row's spec of `sql` (columns: key, spec) to `array`. */
static int add_rows(store_t *st, const char *sql, const char *what, cJSON *array,
                    fg_error_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, sql, &s, err);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cJSON *item;
        rc = parse_stored((const char *)sqlite3_column_text(s, 1), what,
                          (const char *)sqlite3_column_text(s, 0), &item, err);
        if (rc)
            goto fail_stmt;
        cJSON_AddItemToArray(array, item);
    }
    rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db), err, what);
fail_stmt:
    sqlite3_finalize(s);
    return rc;
}

static int add_settings(store_t *st, cJSON *root, fg_error_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT key, value FROM settings ORDER BY key", &s, err);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cJSON *value;
        const char *key = (const char *)sqlite3_column_text(s, 0);
        rc = parse_stored((const char *)sqlite3_column_text(s, 1), "setting", key, &value,
                          err);
        if (rc)
            goto fail_stmt;
        cJSON_AddItemToObject(root, key, value);
    }
    rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db), err,
                                             "settings");
fail_stmt:
    sqlite3_finalize(s);
    return rc;
}

/* Keys live in their own table but belong under security.auth.keys in the config. */
static int add_keys(store_t *st, cJSON *root, fg_error_t *err)
{
    cJSON *keys = cJSON_CreateArray();
    if (!keys)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    int rc = add_rows(st, "SELECT name, spec FROM api_keys ORDER BY rowid", "key", keys, err);
    if (rc || cJSON_GetArraySize(keys) == 0) {
        cJSON_Delete(keys);
        return rc;
    }
    cJSON *security = cJSON_GetObjectItemCaseSensitive(root, "security");
    if (!security)
        security = cJSON_AddObjectToObject(root, "security");
    cJSON *auth = security ? cJSON_GetObjectItemCaseSensitive(security, "auth") : NULL;
    if (security && !auth)
        auth = cJSON_AddObjectToObject(security, "auth");
    if (!auth || !cJSON_IsObject(auth)) {
        cJSON_Delete(keys);
        return fg_error_setc(err, -EIO, "security.auth", "stored security setting has no "
                                                         "auth object for the keys");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(auth, "keys");
    cJSON_AddItemToObject(auth, "keys", keys);
    return 0;
}

/* The whole configuration as a JSON tree, read back from the rows (caller owns). */
static int assemble_config(store_t *st, cJSON **out, fg_error_t *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *upstreams = cJSON_AddArrayToObject(root, "upstreams");
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    int rc = -ENOMEM;
    if (!root || !upstreams || !routes) {
        fg_error_setc(err, rc, NULL, "out of memory");
        goto fail_tree;
    }
    if ((rc = add_settings(st, root, err)) ||
        (rc = add_rows(st, "SELECT name, spec FROM upstreams ORDER BY rowid", "upstream",
                       upstreams, err)) ||
        (rc = add_rows(st, "SELECT id, spec FROM routes ORDER BY position, id", "route",
                       routes, err)) ||
        (rc = add_keys(st, root, err)))
        goto fail_tree;
    *out = root;
    return 0;

fail_tree:
    cJSON_Delete(root);
    return rc;
}

/* What changed since the newest stored snapshot, as config_diff's array text. */
static int changes_since_latest(store_t *st, const char *text, char **changes, int64_t *total,
                                fg_error_t *err)
{
    sqlite3_stmt *s;
    int rc = prepare(st, "SELECT config FROM snapshots ORDER BY version DESC LIMIT 1", &s, err);
    if (rc)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = config_diff(rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL,
                         text, STORE_CHANGES_MAX, changes, total, err);
    else
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "read previous snapshot");
    sqlite3_finalize(s);
    return rc == -EINVAL ? -EIO : rc; /* a stored config that is not JSON: hand-edited */
}

/* Bump the version, build and check the config of it, store its snapshot. Runs inside
 * the caller's transaction; any failure leaves the rollback to the caller. */
static int commit_snapshot(store_t *st, const store_change_t *chg, int64_t *version,
                           fg_error_t *err)
{
    cJSON *tree = NULL;
    fg_config_t *cfg = NULL;
    char *text = NULL, *changes = NULL;
    int64_t changes_total = 0;
    sqlite3_stmt *s = NULL;
    char checksum[FG_SHA256_HEX_LEN + 1], now[STORE_TS_MAX];

    int rc = prepare(st, "UPDATE config_state SET version = version + 1 WHERE id = 1 "
                         "RETURNING version", &s, err);
    if (rc)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? fg_error_setc(err, -EIO, NULL, "config_state row missing")
                               : fail_sqlite(st, sqlite3_extended_errcode(st->db), err,
                                             "bump version");
    }
    sqlite3_finalize(s);
    if (rc)
        return rc;

    if ((rc = assemble_config(st, &tree, err)))
        return rc;
    rc = fg_config_decode(tree, &cfg, err);
    cJSON_Delete(tree);
    if (rc)
        return rc == -ENOMEM ? rc : -EINVAL;
    if ((rc = fg_config_validate(cfg, err))) {
        rc = rc == -ENOMEM ? rc : -EINVAL;
        goto fail_cfg;
    }
    text = fg_config_canonical(cfg);
    if (!text) {
        rc = fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        goto fail_cfg;
    }
    fg_sha256_hex(text, strlen(text), checksum);
    now_rfc3339(now);
    if ((rc = changes_since_latest(st, text, &changes, &changes_total, err)))
        goto fail_text;
    if ((rc = prepare(st, "INSERT INTO snapshots (version, checksum, created_at, config, "
                          "summary, actor, changes, changes_total) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &s, err)))
        goto fail_text;
    sqlite3_bind_int64(s, 1, *version);
    bind_text(s, 2, checksum);
    bind_text(s, 3, now);
    bind_text(s, 4, text);
    bind_text(s, 5, chg && chg->summary ? chg->summary : "");
    bind_text(s, 6, chg && chg->actor ? chg->actor : "");
    bind_text(s, 7, changes);
    sqlite3_bind_int64(s, 8, changes_total);
    rc = step_done(st, s, err, "store snapshot");
    sqlite3_finalize(s);

fail_text:
    free(changes);
    free(text);
fail_cfg:
    fg_config_free(cfg);
    return rc;
}

int store_mutate(store_t *st, store_mutate_fn fn, void *arg, const store_change_t *chg,
                 store_result_t *res, fg_error_t *err)
{
    int64_t version = 0;
    fg_error_clear(err);
    int rc = exec_sql(st, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    st->in_tx = true;
    if (fn && (rc = fn(st, arg, err)))
        goto fail_tx;
    if ((rc = commit_snapshot(st, chg, &version, err)))
        goto fail_tx;
    if ((rc = exec_sql(st, "COMMIT", err)))
        goto fail_tx;
    st->in_tx = false;
    if (res)
        res->version = version;
    fg_log(FG_LOG_DEBUG, "config version committed", "summary",
           chg && chg->summary ? chg->summary : "", NULL);
    return 0;

fail_tx:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->in_tx = false;
    return rc;
}

static int ensure_first_snapshot(store_t *st, fg_error_t *err)
{
    int64_t n = 0;
    int rc = query_int(st, "SELECT count(*) FROM snapshots", NULL, &n, err);
    if (rc || n > 0)
        return rc;
    const store_change_t chg = {.summary = "initial empty configuration", .actor = "migrate"};
    store_result_t res = {0};
    rc = store_mutate(st, NULL, NULL, &chg, &res, err);
    if (rc == 0)
        fg_log(FG_LOG_INFO, "initial config version committed", "version", "1", NULL);
    return rc;
}

/* ---- row operations (inside store_mutate) --------------------------------------------- */

static int check_revision(store_t *st, store_kind_t kind, const char *key, int64_t if_revision,
                          fg_error_t *err)
{
    int64_t revision = 0;
    int rc = query_int(st, kind_sql[kind].revision, key, &revision, err);
    if (rc == -ENOENT)
        return fg_error_setc(err, -ENOENT, NULL, "no %s named '%s'", kind_sql[kind].noun, key);
    if (rc)
        return rc;
    if (if_revision > 0 && revision != if_revision)
        return fg_error_setc(err, -ESTALE, NULL, "%s '%s' is at revision %" PRId64
                             ", not %" PRId64, kind_sql[kind].noun, key, revision, if_revision);
    return 0;
}

/* A route must name an existing upstream: said here with the field, not as an FK error. */
static int check_route_upstream(store_t *st, const store_entity_t *e, fg_error_t *err)
{
    int64_t n = 0;
    if (!e->ref || !*e->ref)
        return fg_error_set(err, "upstream", "is required");
    int rc = query_int(st, "SELECT count(*) FROM upstreams WHERE name = ?1", e->ref, &n, err);
    if (rc)
        return rc;
    if (n == 0)
        return fg_error_set(err, "upstream", "unknown upstream '%s'", e->ref);
    return 0;
}

static int check_entity(store_t *st, store_kind_t kind, const store_entity_t *e,
                        fg_error_t *err)
{
    if (!st->in_tx)
        return fg_error_setc(err, -EPERM, NULL, "store_tx_* outside store_mutate");
    if (kind > STORE_KEYS || !e || !e->key || !e->spec)
        return fg_error_set(err, NULL, "incomplete entity");
    if (kind == STORE_KEYS && (!e->ref || strlen(e->ref) != FG_SHA256_HEX_LEN))
        return fg_error_set(err, "key", "key digest must be %d hex characters",
                            FG_SHA256_HEX_LEN);
    return kind == STORE_ROUTES ? check_route_upstream(st, e, err) : 0;
}

/* Run an insert/update with the shared parameters; `revision` from RETURNING if any. */
static int write_entity(store_t *st, const char *sql, const store_entity_t *e,
                        int64_t *revision, fg_error_t *err)
{
    sqlite3_stmt *s;
    char now[STORE_TS_MAX];
    int rc = prepare(st, sql, &s, err);
    if (rc)
        return rc;
    now_rfc3339(now);
    bind_text(s, 1, e->key);
    bind_text(s, 2, e->spec);
    bind_text(s, 3, now);
    bind_text(s, 4, e->ref);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (revision)
            *revision = sqlite3_column_int64(s, 0);
        rc = step_done(st, s, err, "write");
    } else if (rc == SQLITE_DONE) {
        if (revision)
            *revision = 1;
        rc = 0;
    } else {
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "write");
    }
    sqlite3_finalize(s);
    return rc;
}

int store_tx_insert(store_t *st, store_kind_t kind, const store_entity_t *e,
                    int64_t *revision, fg_error_t *err)
{
    int rc = check_entity(st, kind, e, err);
    if (rc)
        return rc;
    rc = write_entity(st, kind_sql[kind].insert, e, revision, err);
    if (rc == -EEXIST && kind == STORE_KEYS) { /* the name, or the digest (UNIQUE)? */
        int64_t n = 0;
        int qrc = query_int(st, kind_sql[kind].revision, e->key, &n, err);
        if (qrc == -ENOENT)
            return fg_error_setc(err, -EEXIST, "key", "another key has the same value");
    }
    if (rc == -EEXIST)
        return fg_error_setc(err, -EEXIST, kind == STORE_ROUTES ? "id" : "name",
                             "%s '%s' already exists", kind_sql[kind].noun, e->key);
    return rc;
}

int store_tx_replace(store_t *st, store_kind_t kind, const store_entity_t *e,
                     int64_t if_revision, int64_t *revision, fg_error_t *err)
{
    int rc = check_entity(st, kind, e, err);
    if (rc)
        return rc;
    if ((rc = check_revision(st, kind, e->key, if_revision, err)))
        return rc;
    rc = write_entity(st, kind_sql[kind].update, e, revision, err);
    if (rc == -EEXIST) /* keys: the new digest belongs to another key */
        return fg_error_setc(err, -EEXIST, "key", "another key has the same value");
    return rc;
}

/* Who still points at upstream `name`: a route (FK) or another upstream's fallback. */
static int check_upstream_unused(store_t *st, const char *name, fg_error_t *err)
{
    static const struct {
        const char *sql, *what;
    } users[] = {
        {"SELECT id FROM routes WHERE upstream = ?1 ORDER BY position LIMIT 1", "route"},
        {"SELECT name FROM upstreams WHERE json_extract(spec, '$.fallback') = ?1 "
         "AND name <> ?1 LIMIT 1", "upstream (as fallback)"},
    };
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        sqlite3_stmt *s;
        int rc = prepare(st, users[i].sql, &s, err);
        if (rc)
            return rc;
        bind_text(s, 1, name);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            rc = fg_error_setc(err, -EBUSY, NULL, "upstream '%s' is used by %s '%s'", name,
                               users[i].what, (const char *)sqlite3_column_text(s, 0));
        else
            rc = rc == SQLITE_DONE ? 0 : fail_sqlite(st, sqlite3_extended_errcode(st->db),
                                                     err, "check use");
        sqlite3_finalize(s);
        if (rc)
            return rc;
    }
    return 0;
}

int store_tx_delete(store_t *st, store_kind_t kind, const char *key, int64_t if_revision,
                    fg_error_t *err)
{
    sqlite3_stmt *s;
    if (!st->in_tx)
        return fg_error_setc(err, -EPERM, NULL, "store_tx_* outside store_mutate");
    int rc = check_revision(st, kind, key, if_revision, err);
    if (rc)
        return rc;
    if (kind == STORE_UPSTREAMS && (rc = check_upstream_unused(st, key, err)))
        return rc;
    if ((rc = prepare(st, kind_sql[kind].remove, &s, err)))
        return rc;
    bind_text(s, 1, key);
    rc = step_done(st, s, err, "delete");
    sqlite3_finalize(s);
    if (rc == -EBUSY)
        fg_error_setc(err, rc, NULL, "%s '%s' is in use", kind_sql[kind].noun, key);
    return rc;
}

int store_tx_delete_all(store_t *st, store_kind_t kind, fg_error_t *err)
{
    if (!st->in_tx)
        return fg_error_setc(err, -EPERM, NULL, "store_tx_* outside store_mutate");
    return exec_sql(st, kind_sql[kind].remove_all, err);
}

/* Upsert a section, conditional on `if_revision` (> 0); `revision` receives the new one. */
static int setting_write(store_t *st, const char *section, const char *value,
                         int64_t if_revision, int64_t *revision, fg_error_t *err)
{
    sqlite3_stmt *s;
    char now[STORE_TS_MAX];
    int64_t current = 0;
    if (!st->in_tx)
        return fg_error_setc(err, -EPERM, NULL, "store_tx_* outside store_mutate");
    if (!store_setting_section_valid(section))
        return fg_error_set(err, section ? section : "", "unknown settings section");
    int rc = query_int(st, "SELECT revision FROM settings WHERE key = ?1", section, &current,
                       err);
    if (rc && rc != -ENOENT)
        return rc;
    if (if_revision > 0 && current != if_revision)
        return fg_error_setc(err, -ESTALE, NULL, "settings section '%s' is at revision %"
                             PRId64 ", not %" PRId64, section, current, if_revision);
    rc = prepare(st, "INSERT INTO settings (key, value, revision, updated_at) "
                     "VALUES (?1, ?2, 1, ?3) ON CONFLICT (key) DO UPDATE SET "
                     "value = ?2, revision = revision + 1, updated_at = ?3 RETURNING revision",
                 &s, err);
    if (rc)
        return rc;
    now_rfc3339(now);
    bind_text(s, 1, section);
    bind_text(s, 2, value ? value : "{}");
    bind_text(s, 3, now);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (revision)
            *revision = sqlite3_column_int64(s, 0);
        rc = step_done(st, s, err, "settings");
    } else {
        rc = fail_sqlite(st, sqlite3_extended_errcode(st->db), err, "settings");
    }
    sqlite3_finalize(s);
    return rc;
}

int store_tx_setting_put(store_t *st, const char *section, const char *value,
                         fg_error_t *err)
{
    return setting_write(st, section, value, 0, NULL, err);
}

/* ---- single-entity mutations ---------------------------------------------------------- */

typedef struct entity_op {
    enum { OP_CREATE, OP_REPLACE, OP_DELETE } op;
    store_kind_t kind;
    const store_entity_t *e;
    const char *key;
    int64_t if_revision;
    int64_t revision; /* out */
} entity_op_t;

static int on_entity_op(store_t *st, void *arg, fg_error_t *err)
{
    entity_op_t *op = arg;
    switch (op->op) {
    case OP_CREATE:
        return store_tx_insert(st, op->kind, op->e, &op->revision, err);
    case OP_REPLACE:
        return store_tx_replace(st, op->kind, op->e, op->if_revision, &op->revision, err);
    case OP_DELETE:
        return store_tx_delete(st, op->kind, op->key, op->if_revision, err);
    }
    return -EINVAL;
}

static int run_entity_op(store_t *st, entity_op_t *op, const store_change_t *chg,
                         store_result_t *res, fg_error_t *err)
{
    if (op->kind > STORE_KEYS)
        return fg_error_set(err, NULL, "unknown entity kind");
    store_result_t r = {0};
    int rc = store_mutate(st, on_entity_op, op, chg, &r, err);
    if (rc)
        return rc;
    r.revision = op->revision;
    if (res)
        *res = r;
    return 0;
}

int store_create(store_t *st, store_kind_t kind, const store_entity_t *e,
                 const store_change_t *chg, store_result_t *res, fg_error_t *err)
{
    entity_op_t op = {.op = OP_CREATE, .kind = kind, .e = e};
    return run_entity_op(st, &op, chg, res, err);
}

int store_replace(store_t *st, store_kind_t kind, const store_entity_t *e,
                  int64_t if_revision, const store_change_t *chg, store_result_t *res,
                  fg_error_t *err)
{
    entity_op_t op = {.op = OP_REPLACE, .kind = kind, .e = e, .if_revision = if_revision};
    return run_entity_op(st, &op, chg, res, err);
}

int store_delete(store_t *st, store_kind_t kind, const char *key, int64_t if_revision,
                 const store_change_t *chg, store_result_t *res, fg_error_t *err)
{
    entity_op_t op = {.op = OP_DELETE, .kind = kind, .key = key, .if_revision = if_revision};
    return run_entity_op(st, &op, chg, res, err);
}

/* ---- settings and rollback ------------------------------------------------------------ */

typedef struct setting_op {
    const char *section, *value;
    int64_t if_revision;
    int64_t revision; /* out */
} setting_op_t;

static int on_setting_op(store_t *st, void *arg, fg_error_t *err)
{
    setting_op_t *op = arg;
    return setting_write(st, op->section, op->value, op->if_revision, &op->revision, err);
}

int store_setting_put(store_t *st, const char *section, const char *value,
                      int64_t if_revision, const store_change_t *chg, store_result_t *res,
                      fg_error_t *err)
{
    setting_op_t op = {.section = section, .value = value, .if_revision = if_revision};
    store_result_t r = {0};
    int rc = store_mutate(st, on_setting_op, &op, chg, &r, err);
    if (rc)
        return rc;
    r.revision = op.revision;
    if (res)
        *res = r;
    return 0;
}

/* Rows are rewritten from the old snapshot in its order. Entity order is table order
 * (rowid for upstreams and keys, position for routes), so every entity row is deleted and
 * re-inserted; what the rows were before is kept in a temporary table for the length of the
 * transaction, so a row whose spec is unchanged keeps its revision and timestamps, a changed
 * one gets revision + 1, and only a row that did not exist starts at 1. */
static const char rollback_save_sql[] =
    "DROP TABLE IF EXISTS temp.rollback_old;"
    "CREATE TEMP TABLE rollback_old (kind INTEGER, key TEXT, spec TEXT, revision INTEGER, "
    "  created_at TEXT, updated_at TEXT, PRIMARY KEY (kind, key));"
    "INSERT INTO temp.rollback_old SELECT 0, name, spec, revision, created_at, updated_at "
    "  FROM upstreams;"
    "INSERT INTO temp.rollback_old SELECT 1, id, spec, revision, created_at, updated_at "
    "  FROM routes;"
    "INSERT INTO temp.rollback_old SELECT 2, name, spec, revision, created_at, updated_at "
    "  FROM api_keys;"
    "DELETE FROM routes; DELETE FROM api_keys; DELETE FROM upstreams;";

/* ?1 key, ?2 spec, ?3 now, ?4 ref, ?5 kind. */
#define ROLLBACK_OLD(col) "(SELECT " col " FROM temp.rollback_old WHERE kind = ?5 AND key = ?1)"
#define ROLLBACK_REVISION "coalesce(" ROLLBACK_OLD("revision + (spec IS NOT ?2)") ", 1)"
#define ROLLBACK_CREATED "coalesce(" ROLLBACK_OLD("created_at") ", ?3)"
#define ROLLBACK_UPDATED "coalesce(" ROLLBACK_OLD("CASE WHEN spec IS ?2 THEN updated_at END") \
                         ", ?3)"
static const char *const rollback_insert_sql[] = {
    [STORE_UPSTREAMS] = "INSERT INTO upstreams (name, spec, revision, created_at, updated_at) "
                        "VALUES (?1, ?2, " ROLLBACK_REVISION ", " ROLLBACK_CREATED ", "
                        ROLLBACK_UPDATED ")",
    [STORE_ROUTES] = "INSERT INTO routes (id, upstream, position, spec, revision, created_at, "
                     "updated_at) VALUES (?1, ?4, (SELECT coalesce(max(position), 0) + 1 FROM "
                     "routes), ?2, " ROLLBACK_REVISION ", " ROLLBACK_CREATED ", "
                     ROLLBACK_UPDATED ")",
    [STORE_KEYS] = "INSERT INTO api_keys (name, key_sha256, spec, revision, created_at, "
                   "updated_at) VALUES (?1, ?4, ?2, " ROLLBACK_REVISION ", " ROLLBACK_CREATED
                   ", " ROLLBACK_UPDATED ")",
};

static int rollback_insert(store_t *st, store_kind_t kind, const cJSON *entity,
                           const char *key_field, const char *ref_field, fg_error_t *err)
{
    sqlite3_stmt *s;
    char now[STORE_TS_MAX];
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(entity, key_field);
    const cJSON *ref = ref_field ? cJSON_GetObjectItemCaseSensitive(entity, ref_field) : NULL;
    if (!cJSON_IsString(key) || (ref_field && !cJSON_IsString(ref)))
        return fg_error_setc(err, -EIO, NULL, "stored snapshot has a %s without %s",
                             kind_sql[kind].noun, !cJSON_IsString(key) ? key_field : ref_field);
    char *spec = cJSON_PrintUnformatted(entity);
    if (!spec)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    int rc = prepare(st, rollback_insert_sql[kind], &s, err);
    if (rc == 0) {
        now_rfc3339(now);
        bind_text(s, 1, key->valuestring);
        bind_text(s, 2, spec);
        bind_text(s, 3, now);
        bind_text(s, 4, ref ? ref->valuestring : NULL);
        sqlite3_bind_int(s, 5, (int)kind);
        rc = step_done(st, s, err, "rollback insert");
        sqlite3_finalize(s);
    }
    free(spec);
    return rc;
}

static int rollback_entities(store_t *st, store_kind_t kind, const cJSON *array,
                             const char *key_field, const char *ref_field, fg_error_t *err)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, array) {
        int rc = rollback_insert(st, kind, it, key_field, ref_field, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Canonical tree of settings section `section` holding JSON `text` (caller owns), or NULL
 * when it does not decode. */
static cJSON *section_canonical_tree(const char *section, const char *text)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    cJSON *root = cJSON_CreateObject(), *value = cJSON_Parse(text), *out = NULL;
    if (root && value && cJSON_AddItemToObject(root, section, value)) {
        value = NULL;
        if (fg_config_decode(root, &cfg, &err) == 0) {
            cJSON *all = fg_config_encode(cfg);
            out = all ? cJSON_DetachItemFromObjectCaseSensitive(all, section) : NULL;
            cJSON_Delete(all);
            fg_config_free(cfg);
        }
    }
    cJSON_Delete(value);
    cJSON_Delete(root);
    return out;
}

/* Same meaning, even if written differently ("{}" and every default spelled out). */
static bool section_same(const char *section, const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    cJSON *x = section_canonical_tree(section, a), *y = section_canonical_tree(section, b);
    bool same = x && y && cJSON_Compare(x, y, true);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

/* A section is rewritten only when its meaning differs, so an untouched section keeps its
 * revision (an ETag a client holds stays valid). */
static int rollback_setting(store_t *st, const char *section, const cJSON *value,
                            fg_error_t *err)
{
    cJSON *copy = value ? cJSON_Duplicate(value, true) : cJSON_CreateObject();
    char *text = NULL;
    store_row_t row;
    if (!copy)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    if (strcmp(section, "security") == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(copy, "auth"), "keys");
    text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    int rc = store_setting_get(st, section, &row, err);
    if (rc == 0 && !section_same(section, row.spec, text))
        rc = setting_write(st, section, text, 0, NULL, err);
    store_row_clear(&row);
    free(text);
    return rc;
}

static int on_rollback(store_t *st, void *arg, fg_error_t *err)
{
    const cJSON *cfg = arg;
    const cJSON *security = cJSON_GetObjectItemCaseSensitive(cfg, "security");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(security, "auth"), "keys");
    int rc = exec_sql(st, rollback_save_sql, err);
    if (rc == 0)
        rc = rollback_entities(st, STORE_UPSTREAMS,
                               cJSON_GetObjectItemCaseSensitive(cfg, "upstreams"), "name", NULL,
                               err);
    if (rc == 0)
        rc = rollback_entities(st, STORE_ROUTES, cJSON_GetObjectItemCaseSensitive(cfg, "routes"),
                               "id", "upstream", err);
    if (rc == 0)
        rc = rollback_entities(st, STORE_KEYS, keys, "name", "key", err);
    for (size_t i = 0; rc == 0 && i < STORE_N_SETTINGS; i++)
        rc = rollback_setting(st, store_settings_sections[i],
                              cJSON_GetObjectItemCaseSensitive(cfg, store_settings_sections[i]),
                              err);
    if (rc == 0)
        rc = exec_sql(st, "DROP TABLE temp.rollback_old", err);
    return rc;
}

int store_rollback(store_t *st, int64_t version, const store_change_t *chg,
                   store_result_t *res, fg_error_t *err)
{
    store_snapshot_t snap;
    int rc = store_snapshot_get(st, version, &snap, err);
    if (rc)
        return rc;
    cJSON *cfg = cJSON_Parse(snap.config);
    store_snapshot_clear(&snap);
    if (!cfg || !cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return fg_error_setc(err, -EIO, NULL, "stored snapshot %" PRId64 " is not a JSON "
                             "object", version);
    }
    rc = store_mutate(st, on_rollback, cfg, chg, res, err);
    cJSON_Delete(cfg);
    /* A temp table left by a failed transaction is rolled back with it; nothing to undo. */
    return rc;
}

/* ---- for imports ---------------------------------------------------------------------- */

/* An import that reorders routes moves rows instead of re-inserting them, so a route's
 * revision (its ETag) is never reset and reused. */
int store_tx_route_to_end(store_t *st, const char *id, fg_error_t *err)
{
    sqlite3_stmt *s;
    if (!st->in_tx)
        return fg_error_setc(err, -EPERM, NULL, "store_tx_* outside store_mutate");
    int rc = prepare(st, "UPDATE routes SET position = (SELECT max(position) + 1 FROM routes) "
                         "WHERE id = ?1", &s, err);
    if (rc)
        return rc;
    bind_text(s, 1, id);
    rc = step_done(st, s, err, "move route");
    sqlite3_finalize(s);
    if (rc == 0 && sqlite3_changes(st->db) == 0)
        rc = fg_error_setc(err, -ENOENT, NULL, "no route '%s'", id);
    return rc;
}
