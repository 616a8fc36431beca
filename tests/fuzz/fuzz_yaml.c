/* fuzz_yaml.c - libFuzzer target for the YAML importer: controlplane/yamlio.c, the config
 * decoder behind it, and store_import on an in-memory SQLite store.
 *
 * Input: any bytes, read as a YAML document. Besides "no crash, no leak, no UB, bounded
 * work" it checks:
 *   - every tree that loads is written by yamlio_dump as text that loads back to an equal
 *     tree (what export relies on);
 *   - the tree is imported (replace, merge or dry run, chosen by the input's length) into
 *     one store kept across inputs: a refused import leaves the version unchanged, an
 *     accepted one commits exactly the checksum it planned, and a dry run commits nothing.
 * yamlio_locate is run on every error's field. A violation aborts. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fg_config.h"
#include "common/fg_log.h"
#include "controlplane/store.h"
#include "controlplane/store_import.h"
#include "controlplane/yamlio.h"

static store_t *store; /* one in-memory store for the whole run */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const cJSON *root)
{
    fg_error_t err;
    size_t len = 0;
    yamlio_doc_t *again = NULL;
    char *text = yamlio_dump(root, "# fuzz\n", &len, &err);
    if (!text) {
        fprintf(stderr, "a loaded tree does not dump: %s\n", err.message);
        abort();
    }
    yamlio_mark_t at;
    if (yamlio_load(text, len, &again, &err, &at) != 0) {
        fprintf(stderr, "dumped text does not load (%u:%u: %s: %s):\n%s\n", at.line, at.column,
                err.field, err.message, text);
        abort();
    }
    if (!cJSON_Compare(root, yamlio_root(again), true)) {
        char *a = cJSON_PrintUnformatted(root), *b = cJSON_PrintUnformatted(yamlio_root(again));
        fprintf(stderr, "round trip differs:\n%s\n%s\nvia:\n%s\n", a, b, text);
        abort();
    }
    yamlio_doc_free(again);
    free(text);
}

static int64_t current_version(void)
{
    fg_error_t err;
    int64_t v = -1;
    if (store_version(store, &v, &err) != 0)
        abort();
    return v;
}

static void check_import(const yamlio_doc_t *doc, size_t size)
{
    store_import_result_t res;
    store_snapshot_t snap;
    fg_error_t err;
    bool dry = size % 3 == 2;
    store_import_mode_t mode = size % 3 == 1 ? STORE_IMPORT_MERGE : STORE_IMPORT_REPLACE;
    if (!store) {
        fg_log_init("fuzz", FG_LOG_ERROR);
        if (store_open(":memory:", &store, &err) != 0 || store_migrate(store, NULL, &err) != 0)
            abort();
    }
    int64_t before = current_version();
    int rc = store_import(store, yamlio_root(doc), mode, dry, "fuzz", &res, &err);
    if (rc != 0) {
        if (current_version() != before || (rc != -EINVAL && rc != -EEXIST)) {
            fprintf(stderr, "refused import (%d: %s: %s) changed the version or failed "
                    "oddly\n", rc, err.field, err.message);
            abort();
        }
        yamlio_locate(doc, err.field);
        return;
    }
    if (current_version() != (dry ? before : before + 1))
        abort();
    if (!dry) {
        if (store_snapshot_latest(store, &snap, &err) != 0)
            abort();
        if (strcmp(snap.checksum, res.checksum) != 0) {
            fprintf(stderr, "committed %s, planned %s\n", snap.checksum, res.checksum);
            abort();
        }
        store_snapshot_clear(&snap);
    }
    store_import_result_clear(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yamlio_doc_t *doc = NULL;
    fg_config_t *cfg = NULL;
    fg_error_t err;
    yamlio_mark_t at;

    if (yamlio_load((const char *)data, size, &doc, &err, &at) != 0)
        return 0;
    check_round_trip(yamlio_root(doc));
    if (fg_config_decode(yamlio_root(doc), &cfg, &err) == 0 &&
        fg_config_validate(cfg, &err) == 0)
        err.field[0] = '\0';
    at = yamlio_locate(doc, err.field);
    (void)at;
    if (cJSON_IsObject(yamlio_root(doc)))
        check_import(doc, size);
    fg_config_free(cfg);
    yamlio_doc_free(doc);
    return 0;
}
