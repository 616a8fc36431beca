/* fuzz_config_json.c - libFuzzer target for the config decoder, validator and encoder.
 *
 * Input: any bytes, read as JSON text. Besides "no crash, no leak, no UB", it checks the
 * property the snapshot checksum depends on: for every input that decodes, the canonical
 * text decodes again and re-encodes to the very same bytes. A violation aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fg_config_t *cfg = NULL, *again = NULL;
    fg_error_t err;

    cJSON *json = cJSON_ParseWithLength((const char *)data, size);
    if (!json)
        return 0;
    if (fg_config_decode(json, &cfg, &err) != 0) {
        cJSON_Delete(json);
        return 0;
    }
    cJSON_Delete(json);
    int valid = fg_config_validate(cfg, &err) == 0;

    char *c1 = fg_config_canonical(cfg);
    if (!c1)
        abort(); /* only ENOMEM can do this, and the fuzzer's inputs are small */
    if (valid && fg_config_parse(c1, strlen(c1), &again, &err) != 0) {
        fprintf(stderr, "validated config's canonical text does not parse: %s: %s\n%s\n",
                err.field, err.message, c1);
        abort();
    }
    fg_config_free(again);
    again = NULL;

    cJSON *j1 = cJSON_Parse(c1);
    if (!j1 || fg_config_decode(j1, &again, &err) != 0) {
        fprintf(stderr, "canonical text does not decode: %s: %s\n%s\n", err.field, err.message,
                c1);
        abort();
    }
    cJSON_Delete(j1);
    char *c2 = fg_config_canonical(again);
    if (!c2 || strcmp(c1, c2) != 0) {
        fprintf(stderr, "canonical text is not a fixed point:\n%s\n%s\n", c1, c2 ? c2 : "");
        abort();
    }
    free(c2);
    free(c1);
    fg_config_free(again);
    fg_config_free(cfg);
    return 0;
}
