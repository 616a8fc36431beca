/* config_diff.h - what changed between two versions of the configuration, for the snapshot
 * history (GET /api/v1/snapshots).
 *
 * Compares two canonical config texts entity by entity (upstreams by name, routes by id, API
 * keys by name) and settings section by section, and lists each difference as
 * {"kind":"upstream"|"route"|"key"|"settings","name":...,"op":"created"|"updated"|"deleted"},
 * plus {"kind":"route","name":"*","op":"reordered"} when only the order of routes changed.
 * Key entries carry the key's name, never its digest. Cost: O(n log n) in the number of
 * entities, one parse of each text. */
#ifndef CTL_CONFIG_DIFF_H
#define CTL_CONFIG_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "fg_error.h"

/** Diff `old_text` (NULL or "" = the empty configuration) against `new_text`. On success
 *  *out is a malloc'd JSON array text of at most `max` entries (caller frees) and *total
 *  the number of differences in all. -EINVAL when a text is not a JSON object, -ENOMEM. */
int config_diff(const char *old_text, const char *new_text, size_t max, char **out,
                int64_t *total, fg_error_t *err);

#endif
