/* cache.h - the data plane's snapshot cache (--cache FILE).
 *
 * The cache file holds the last applied SNAPSHOT payload, byte for byte as the control plane
 * sent it (proto/PROTOCOL.md §3.2), so it needs no format of its own and is verified exactly
 * like a snapshot from the wire: decode, validate, checksum, build. A data plane that starts
 * while its control plane is unreachable serves from it; a file that fails any step is
 * ignored (and said so), never served.
 *
 * Writes are atomic: the payload goes to a temporary file beside FILE, is fsynced, renamed
 * over FILE, and the directory is fsynced, so FILE is always either the old snapshot or the
 * new one, even across a power cut. The write happens on a thread of its own (fsync can take
 * tens of milliseconds, and the event loop must not wait for it); when snapshots arrive
 * faster than the disk takes them, only the newest pending one is written. */
#ifndef DP_CACHE_H
#define DP_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "fg_error.h"
#include "generation.h"

#define DP_CACHE_MODE 0600               /* the snapshot holds key digests: owner only */
#define DP_CACHE_TMP_SUFFIX ".tmp-XXXXXX" /* temporary file beside FILE (mkstemp pattern) */
#define DP_CACHE_PATH_MAX 4096

/** Write `len` bytes of `data` to `path` atomically (temp file, fsync, rename, fsync of the
 *  directory). The file gets DP_CACHE_MODE. 0, or a negative errno with err; on failure
 *  `path` is unchanged and no temporary file is left behind. */
int cache_write_file(const char *path, const char *data, size_t len, fg_error_t *err);

/** Read the whole of `path` into a new NUL-terminated buffer (*out, the caller frees it;
 *  *out_len excludes the NUL). A file larger than `max_len` bytes is refused with -EFBIG.
 *  -ENOENT when there is no such file. */
int cache_read_file(const char *path, size_t max_len, char **out, size_t *out_len,
                    fg_error_t *err);

/** Read `path` and verify it as a SNAPSHOT payload (decode, validate, checksum) and build a
 *  generation from it. The result has refs == 1 (the caller's), ready for
 *  generation_install. NULL with err: -ENOENT (no file), -EFBIG, -EINVAL or -EBADMSG (the
 *  file is not a valid snapshot). */
dp_generation_t *cache_load(const char *path, size_t max_len, fg_error_t *err);

typedef struct dp_cache dp_cache_t;

/** Start the writer for `path`. Fails (NULL with err) when the directory of `path` does not
 *  exist or is not writable, so a typo is found at start-up, not at the first snapshot. */
dp_cache_t *cache_open(const char *path, fg_error_t *err);

/** Queue `payload` (copied; `len` bytes) of config `version` to be written. Never blocks on
 *  the disk: a pending, not yet started write is replaced by this newer one. Failures are
 *  logged by the writer (the data plane keeps serving; only the cache is stale). */
void cache_save(dp_cache_t *c, const char *payload, size_t len, int64_t version);

/** Wait until everything queued so far is written (or failed). For shutdown and tests. */
void cache_flush(dp_cache_t *c);

/** Write what is pending, stop the writer and free. NULL is accepted. */
void cache_close(dp_cache_t *c);

#endif
