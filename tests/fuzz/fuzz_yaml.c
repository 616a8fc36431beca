/* fuzz_yaml.c - libFuzzer target for the YAML importer's front half (controlplane/yamlio.c)
 * and the config decoder behind it.
 *
 * Input: any bytes, read as a YAML document. Besides "no crash, no leak, no UB, bounded
 * work" it checks the property export relies on: every tree that loads is written by
 * yamlio_dump as text that loads back to an equal tree. Trees that decode as a
 * configuration also go through the validator and yamlio_locate of the error's field. A
 * violation aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fg_config.h"
#include "controlplane/yamlio.h"

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
    fg_config_free(cfg);
    yamlio_doc_free(doc);
    return 0;
}
