/* store_import.h - a whole configuration (an imported YAML or JSON file) applied to the
 * store as ONE mutation: one transaction, one new config version, all of it or none of it.
 *
 * The file is given as the JSON tree the config decoder takes (controlplane/yamlio.h turns
 * YAML into it). Two modes:
 *   replace - the file is the whole configuration: entities it lacks are removed, settings
 *             sections it lacks go back to their defaults, routes take the file's order;
 *   merge   - upstreams, routes and keys in the file replace those of the same name (route
 *             id, key name) and new ones are added; everything else is kept. Settings
 *             sections present in the file replace the stored ones.
 * Routes without an `id` (the seed's files have none) take the id of the stored route with
 * the same path if there is one not otherwise claimed, else the first free "route-<n>"
 * counting from their 1-based position in the file, so importing the same file twice
 * changes nothing. Rows whose canonical JSON does not change are not written (their
 * revisions stay; routes the file reorders are moved, not re-created); the version is
 * bumped once in any case.
 *
 * The result describes what changed (the diff a dry run returns). Errors name the field by
 * its JSON path IN THE FILE ("routes[3].rateLimit.windowMs"), so a caller holding the
 * file's positions (yamlio_locate) can add line and column. A problem with an entity kept
 * from the store (merge mode) has no field: its stored path is in the message. Codes as in store.h, plus
 * -EEXIST for a name/id given twice in the file. */
#ifndef CTL_STORE_IMPORT_H
#define CTL_STORE_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "fg_hash.h"
#include "store.h"

typedef enum store_import_mode {
    STORE_IMPORT_REPLACE = 0,
    STORE_IMPORT_MERGE = 1,
} store_import_mode_t;

typedef struct store_import_result {
    int64_t from_version;                 /* the version the import was computed against */
    int64_t version;                      /* the committed version; 0 for a dry run */
    char checksum[FG_SHA256_HEX_LEN + 1]; /* of the resulting config (a dry run's would-be) */
    size_t n_changes;                     /* entities added/changed/removed + sections */
    /* {"upstreams":{"added":[names],"changed":[...],"removed":[...]},"routes":{...},
     *  "keys":{...},"settings":{"changed":[sections]}}; caller owns (cJSON_Delete). */
    cJSON *diff;
    /* [{"field","message"}]: allow-list findings on the resulting config (upstreams outside
     * security.allowedHosts / blockedIPs; errors instead under security.strict). Fields are
     * paths in the file where the upstream comes from it. Caller owns (cJSON_Delete). */
    cJSON *warnings;
} store_import_result_t;

/** "replace" / "merge" -> mode; -EINVAL for anything else. NULL or "" is replace. */
int store_import_mode_parse(const char *s, store_import_mode_t *out);

/** Apply `file` (borrowed) in `mode`. `dry_run` computes and validates everything inside
 *  the transaction, then rolls it back. chg->actor names who imported; the summary is
 *  written from the diff. On success `res` is filled (res->diff owned by the caller); on
 *  failure nothing changed and `res` holds nothing to free. */
int store_import(store_t *st, const cJSON *file, store_import_mode_t mode, bool dry_run,
                 const char *actor, store_import_result_t *res, fg_error_t *err);

/** The current configuration for export: its canonical JSON tree (caller owns), version and
 *  checksum, read from the newest snapshot. */
int store_export(store_t *st, cJSON **tree, int64_t *version,
                 char checksum[FG_SHA256_HEX_LEN + 1], fg_error_t *err);

/** Release res->diff and res->warnings. Safe on a zeroed result. */
void store_import_result_clear(store_import_result_t *res);

#endif
