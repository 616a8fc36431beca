/* store.h - the control plane's configuration store: SQLite, migrations, versioned snapshots.
 *
 * All configuration lives here. Entities (upstreams, routes, API keys) are rows holding the
 * canonical JSON their codec writes; settings are one JSON object per top-level section.
 * Every mutation is ONE transaction (BEGIN IMMEDIATE) that changes rows, bumps the single
 * config version, assembles the whole configuration from the rows, decodes and validates it
 * with the shared validator (common/fg_config.h), and stores the canonical text and its
 * SHA-256 as the snapshot of the new version. A mutation the validator refuses is rolled
 * back: rows and version are as before. The publisher only ever sends stored snapshots.
 *
 * A store_t is one SQLite connection and must be used by one thread at a time; the admin
 * API and the publisher each open their own. WAL mode lets the publisher read while the
 * admin API writes.
 *
 * Return codes (negative errno, err filled for people):
 *   -ENOENT  no such entity / snapshot
 *   -EEXIST  duplicate name or id
 *   -EBUSY   the entity is in use (an upstream a route names); err.field names the user
 *   -ESTALE  if_revision given and the row's revision differs (HTTP 412)
 *   -EINVAL  a field fails decode or validation; err.field is its JSON path
 *   -EAGAIN  the database stayed locked past STORE_BUSY_TIMEOUT_MS
 *   -EPROTO  the database was migrated by a newer flexgate-ctl
 *   -EIO     any other SQLite failure (err.message carries SQLite's text)
 *   -ENOMEM */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_error.h"
#include "fg_hash.h"
#include "fg_time.h"

#define STORE_BUSY_TIMEOUT_MS 5000 /* how long a statement waits for another writer */
#define STORE_TS_MAX (FG_RFC3339_LEN + 1)
#define STORE_ROUTE_ID_PREFIX "route-" /* generated route ids: "route-<n>" */
#define STORE_CHANGES_MAX 100          /* change entries recorded per version (the total is
                                        * always counted) */
#define STORE_HISTORY_PAGE_MAX 1000    /* snapshots listed per store_snapshot_list call */
#define STORE_N_SETTINGS 5             /* the settings sections, store_settings_sections */

typedef struct store store_t;

/** The entity tables. */
typedef enum store_kind {
    STORE_UPSTREAMS = 0, /* key = name */
    STORE_ROUTES = 1,    /* key = id, ref = upstream name, kept in config order */
    STORE_KEYS = 2,      /* key = name, ref = key_sha256 */
} store_kind_t;

/** One entity row as read back. Strings are malloc'd; release with store_row_clear. */
typedef struct store_row {
    char *key;       /* name or id */
    char *spec;      /* canonical JSON text of the entity */
    int64_t revision; /* 1 on create, +1 on every replace */
    char created_at[STORE_TS_MAX];
    char updated_at[STORE_TS_MAX];
} store_row_t;

typedef struct store_rows {
    store_row_t *items; /* malloc'd array of n rows */
    size_t n;
} store_rows_t;

/** An entity to write. Borrowed strings; the store copies what it keeps. */
typedef struct store_entity {
    const char *key;  /* name or id, already checked with fg_name_valid */
    const char *spec; /* canonical JSON text (fg_*_encode, printed unformatted) */
    const char *ref;  /* routes: upstream name; keys: key_sha256; upstreams: NULL */
} store_entity_t;

/** Who made a change and what it was, recorded with the snapshot (history, audit). */
typedef struct store_change {
    const char *summary; /* "create route users"; NULL = "" */
    const char *actor;   /* "api:admin", "import:cli", "rollback:v12", "migrate"; NULL = "" */
} store_change_t;

/** What a committed mutation produced. */
typedef struct store_result {
    int64_t version;  /* the new config version */
    int64_t revision; /* the written row's revision (0 for deletes and custom mutations) */
} store_result_t;

/** A stored snapshot. Strings are malloc'd; release with store_snapshot_clear. */
typedef struct store_snapshot {
    int64_t version;
    char checksum[FG_SHA256_HEX_LEN + 1]; /* SHA-256 hex of `config` */
    char created_at[STORE_TS_MAX];
    char *config;      /* canonical config text, NUL-terminated */
    size_t config_len; /* strlen(config) */
    char *summary;
    char *actor;
    char *changes;         /* JSON array text: [{"kind","name","op"}], at most
                            * STORE_CHANGES_MAX entries, computed at commit */
    int64_t changes_total; /* how many changes there were in all */
} store_snapshot_t;

/** A page of history, newest first. Configs are not read (config is NULL). */
typedef struct store_snapshots {
    store_snapshot_t *items; /* malloc'd array of n */
    size_t n;
    bool more; /* older versions exist beyond this page */
} store_snapshots_t;

/** The settings sections, in config order: "proxy", "security", "rateLimit", "logging",
 *  "metrics". `security` is stored without auth.keys (keys are rows of their own). */
extern const char *const store_settings_sections[STORE_N_SETTINGS];

/** True when `section` is one of store_settings_sections. */
bool store_setting_section_valid(const char *section);

/* ---- lifetime ------------------------------------------------------------------------- */

/** Open (creating if needed) the database at `path`: WAL, foreign keys, busy timeout.
 *  Does not migrate. *out is owned by the caller (store_close). */
int store_open(const char *path, store_t **out, fg_error_t *err);

/** Close the connection. NULL is accepted. */
void store_close(store_t *st);

/** Apply the embedded migrations (controlplane/migrations.h) not yet in schema_migrations,
 *  each in its own transaction, then, if no snapshot exists yet, commit version 1: the empty
 *  configuration, so a data plane can become ready before any route exists. Idempotent.
 *  `applied` (may be NULL) receives the number of migrations applied now. */
int store_migrate(store_t *st, int *applied, fg_error_t *err);

/* ---- reads ---------------------------------------------------------------------------- */

/** The current config version (0 before store_migrate's first snapshot). */
int store_version(store_t *st, int64_t *out, fg_error_t *err);

/** The snapshot of the newest version. -ENOENT when none exists. */
int store_snapshot_latest(store_t *st, store_snapshot_t *out, fg_error_t *err);

/** The snapshot of `version`. -ENOENT when none exists. */
int store_snapshot_get(store_t *st, int64_t version, store_snapshot_t *out, fg_error_t *err);

/** Release what a snapshot read allocated; safe on a zeroed or cleared struct. */
void store_snapshot_clear(store_snapshot_t *s);

/** Up to `limit` (1..STORE_HISTORY_PAGE_MAX) snapshots with version < `before` (0: no
 *  bound), newest first, without their configs. Release with store_snapshots_clear. */
int store_snapshot_list(store_t *st, int64_t before, size_t limit, store_snapshots_t *out,
                        fg_error_t *err);
void store_snapshots_clear(store_snapshots_t *list);

/** One settings section's stored row: key = section, spec = the stored JSON object text
 *  (not necessarily canonical: "{}" is all defaults), revision, updated_at (created_at is
 *  "" for settings). -ENOENT for an unknown section. */
int store_setting_get(store_t *st, const char *section, store_row_t *out, fg_error_t *err);

/** Every row of `kind` in config order (routes by position, others by creation). */
int store_list(store_t *st, store_kind_t kind, store_rows_t *out, fg_error_t *err);

/** One row by key. -ENOENT when absent. */
int store_get(store_t *st, store_kind_t kind, const char *key, store_row_t *out,
              fg_error_t *err);

/** A free generated route id "route-<n>" (smallest n > number of routes that is unused),
 *  written into `out` (`len` bytes). Only meaningful on the writer's connection. */
int store_route_next_id(store_t *st, char *out, size_t len, fg_error_t *err);

void store_row_clear(store_row_t *row);
void store_rows_clear(store_rows_t *rows);

/* ---- mutations: each one transaction, one new version --------------------------------- */

/** Insert a new entity. -EEXIST on a duplicate key; routes whose `ref` upstream does not
 *  exist fail with -EINVAL, field "upstream". */
int store_create(store_t *st, store_kind_t kind, const store_entity_t *e,
                 const store_change_t *chg, store_result_t *res, fg_error_t *err);

/** Replace an existing entity's spec (routes keep their position). `if_revision` > 0 makes
 *  it conditional (-ESTALE when the row moved on); 0 = unconditional. -ENOENT if absent. */
int store_replace(store_t *st, store_kind_t kind, const store_entity_t *e,
                  int64_t if_revision, const store_change_t *chg, store_result_t *res,
                  fg_error_t *err);

/** Delete an entity. -ENOENT if absent; -EBUSY for an upstream a route uses. */
int store_delete(store_t *st, store_kind_t kind, const char *key, int64_t if_revision,
                 const store_change_t *chg, store_result_t *res, fg_error_t *err);

/** Replace settings section `section` with the JSON object text `value` (NULL: defaults).
 *  `if_revision` > 0 makes it conditional (-ESTALE). res->revision is the section's new
 *  revision. -EINVAL when the section is unknown or the whole config fails validation. */
int store_setting_put(store_t *st, const char *section, const char *value,
                      int64_t if_revision, const store_change_t *chg, store_result_t *res,
                      fg_error_t *err);

/** Commit a new version whose configuration equals that of stored `version`: every row is
 *  rewritten from that snapshot in one transaction (entities in its order; revisions of
 *  rows whose spec changes are bumped, never reset, for rows that exist now). The new
 *  snapshot's checksum equals the old one's. -ENOENT when no such version is stored. */
int store_rollback(store_t *st, int64_t version, const store_change_t *chg,
                   store_result_t *res, fg_error_t *err);

/** A custom mutation (import, rollback, settings): `fn` changes rows inside the
 *  transaction using the store_tx_* calls below; then the version is bumped and the
 *  snapshot built as for every mutation. `fn` returning < 0 rolls everything back. */
typedef int (*store_mutate_fn)(store_t *st, void *arg, fg_error_t *err);
int store_mutate(store_t *st, store_mutate_fn fn, void *arg, const store_change_t *chg,
                 store_result_t *res, fg_error_t *err);

/* Row operations for store_mutate callbacks only (they assume an open transaction).
 * `revision` (may be NULL) receives the written row's revision. */
int store_tx_insert(store_t *st, store_kind_t kind, const store_entity_t *e,
                    int64_t *revision, fg_error_t *err);
int store_tx_replace(store_t *st, store_kind_t kind, const store_entity_t *e,
                     int64_t if_revision, int64_t *revision, fg_error_t *err);
int store_tx_delete(store_t *st, store_kind_t kind, const char *key, int64_t if_revision,
                    fg_error_t *err);
/** Delete every row of `kind` (routes before upstreams, or the FK refuses). */
int store_tx_delete_all(store_t *st, store_kind_t kind, fg_error_t *err);
/** Set a settings section ("proxy", "security", "rateLimit", "logging", "metrics") to the
 *  JSON object text `value`; NULL `value` resets it to all defaults ("{}"). The section's
 *  revision is bumped either way (a revision is never reused). */
int store_tx_setting_put(store_t *st, const char *section, const char *value,
                         fg_error_t *err);

/** "upstream", "route", "key": for messages. */
const char *store_kind_noun(store_kind_t kind);

/* ---- for imports (controlplane/store_import.c) ---------------------------------------- */

/** Inside store_mutate: move route `id` after every other route, keeping its row (spec,
 *  revision, timestamps). -ENOENT when there is no such route. */
int store_tx_route_to_end(store_t *st, const char *id, fg_error_t *err);

/* Failed SQLite calls, by kind, counted by the store for the whole process (the control
 * plane's /metrics reads them: flexgate_ctl_sqlite_errors_total{kind}). */
typedef enum store_sqlite_kind {
    STORE_SQLITE_CONSTRAINT = 0, /* unique / foreign key: usually a 409 to the caller */
    STORE_SQLITE_BUSY,           /* busy or locked */
    STORE_SQLITE_OTHER,          /* I/O, corruption, out of memory, ... */
    STORE_SQLITE_KINDS
} store_sqlite_kind_t;

/** Failed SQLite calls of `kind` since the process started. Thread-safe. */
uint64_t store_sqlite_errors(store_sqlite_kind_t kind);

#endif
