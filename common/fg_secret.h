/* fg_secret.h - shared secrets kept in files: the admin token and the data plane secret.
 *
 * A secret file holds one line (trailing whitespace and the newline an editor leaves are
 * ignored). Secrets are compared by their SHA-256 digests in constant time, so a wrong
 * guess learns neither how much of it matched nor how long the real one is. Nothing here
 * logs a secret; callers must not either. */
#ifndef FG_SECRET_H
#define FG_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_error.h"

#define FG_SECRET_RANDOM_BYTES 32 /* a generated secret: 32 random bytes, 64 hex characters */
#define FG_SECRET_FILE_MODE 0600  /* a generated secret file: owner only */

/** Read the one-line secret in `path` (not followed if a symlink) into `out` (`out_len`
 *  bytes including the NUL). *too_open (may be NULL) says whether group or others may read
 *  the file, for the caller to warn about. 0; -ENOENT when there is no such file; -EINVAL
 *  for an empty, multi-line or too long secret; -errno otherwise; err says which file. */
int fg_secret_read_file(const char *path, char *out, size_t out_len, bool *too_open,
                        fg_error_t *err);

/** Create `path` (exclusively, mode FG_SECRET_FILE_MODE) holding a new random secret, which
 *  is also copied to `out` (at least 2 * FG_SECRET_RANDOM_BYTES + 1 bytes). -EEXIST when
 *  the file exists (another process won the race: read it instead), -errno/-EIO with err. */
int fg_secret_create_file(const char *path, char *out, size_t out_len, fg_error_t *err);

/** True when `given` (`given_len` bytes) equals the NUL-terminated `want`; compares digests
 *  in constant time. False when either is NULL or either is empty. */
bool fg_secret_equal(const char *want, const char *given, size_t given_len);

#endif
