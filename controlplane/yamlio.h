/* yamlio.h - YAML <-> JSON tree for configuration import and export (libyaml).
 *
 * Import reads one YAML document into the cJSON tree the config decoder takes
 * (common/fg_config.h), remembering where in the text each node was, so that a decode or
 * validation error on "routes[3].rateLimit.windowMs" can be reported at its line and column.
 * Export writes a cJSON tree (the canonical config) as block-style YAML that loads back to an
 * equal tree.
 *
 * Only what JSON can say is accepted, and nothing that makes a small file expensive:
 *   - scalars are typed by the YAML 1.2 core schema: null (~, null, empty), true/false,
 *     integers (decimal, 0o octal, 0x hex), floats; quoted scalars are always strings.
 *     Infinity and NaN are refused (JSON has neither);
 *   - explicit tags other than the core ones (!!str, !!int, !!float, !!bool, !!null, !!map,
 *     !!seq, and the non-specific "!") are refused;
 *   - anchors and aliases are refused: no expansion can happen (no "billion laughs");
 *   - duplicate keys in a mapping, non-scalar keys, a second document, an empty stream,
 *     scalars holding NUL are refused;
 *   - input size, nesting depth and node count are capped (the YAMLIO_MAX_* limits).
 * Lines and columns are 1-based, as editors show them. */
#ifndef CTL_YAMLIO_H
#define CTL_YAMLIO_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "fg_error.h"

#define YAMLIO_MAX_INPUT_BYTES (16u << 20) /* 16 MiB: larger documents are refused */
#define YAMLIO_MAX_DEPTH 64                /* nested mappings/sequences */
#define YAMLIO_MAX_NODES 1000000u          /* scalars + mappings + sequences per document */

/** A position in the YAML text, 1-based; line 0 means "unknown". */
typedef struct yamlio_mark {
    unsigned line;
    unsigned column;
} yamlio_mark_t;

/** A loaded document: the JSON tree plus where each node came from. */
typedef struct yamlio_doc yamlio_doc_t;

/** Parse `len` bytes of YAML (need not be NUL-terminated). On success *out is owned by the
 *  caller (yamlio_doc_free). On failure returns -EINVAL (malformed or refused YAML),
 *  -E2BIG (over YAMLIO_MAX_INPUT_BYTES, depth or node limits) or -ENOMEM, fills `err`
 *  (message says what; field is the JSON path of the offending node when known) and `at`
 *  (may be NULL) with the position of the problem. */
int yamlio_load(const char *text, size_t len, yamlio_doc_t **out, fg_error_t *err,
                yamlio_mark_t *at);

/** The document's root (borrowed, lives as long as `doc`). */
const cJSON *yamlio_root(const yamlio_doc_t *doc);

/** Where the node at JSON path `path` ("routes[3].rateLimit.windowMs", "" = root) was: the
 *  key of a mapping member, the start of anything else. A path that does not exist in the
 *  document (a missing required field) gives the deepest node that does. */
yamlio_mark_t yamlio_locate(const yamlio_doc_t *doc, const char *path);

/** Release a document. NULL is accepted. */
void yamlio_doc_free(yamlio_doc_t *doc);

/** `root` as YAML text: block style, keys in tree order, strings quoted whenever a plain
 *  scalar would load as something else. `header` (may be NULL) is written first, verbatim
 *  (comment lines). Returns malloc'd NUL-terminated text (caller frees), length in *len;
 *  NULL with err filled on failure (-ENOMEM, or a tree JSON cannot hold: NaN). */
char *yamlio_dump(const cJSON *root, const char *header, size_t *len, fg_error_t *err);

#endif
