/* fg_log.h - the process log: one JSON object per line on stderr (or a file, fg_log_open).
 *
 * Every line carries "ts" (RFC 3339 UTC with milliseconds), "level", "component" (set once
 * per process: "ctl" or "dp") and "msg", then the caller's key/value pairs. Keys and values
 * are JSON-escaped, so request data placed in a value can never forge a line. Lines below the
 * configured level are dropped before any formatting work is done. */
#ifndef FG_LOG_H
#define FG_LOG_H

#include <stddef.h>

typedef enum fg_log_level {
    FG_LOG_DEBUG = 0,
    FG_LOG_INFO = 1,
    FG_LOG_WARN = 2,
    FG_LOG_ERROR = 3,
} fg_log_level_t;

/** Set the process's component name (static storage, not copied) and minimum level. */
void fg_log_init(const char *component, fg_log_level_t min_level);

/** Change the minimum level at run time (a new config generation may do this). */
void fg_log_set_level(fg_log_level_t min_level);

/** True when a line of `level` would be written: guard expensive argument building. */
int fg_log_enabled(fg_log_level_t level);

/** Send the log (and everything else written to stderr) to file `path`, appending, created
 *  0640 if missing. 0, or a negative errno leaving stderr as it was. */
int fg_log_open(const char *path);

/** Open the fg_log_open() path again (after logrotate renamed the file): new lines go to a
 *  file of that name. No file configured: nothing to do, 0. Else 0 or a negative errno; on
 *  error the old file stays in use. */
int fg_log_reopen(void);

/** Parse "debug", "info", "warn"/"warning", "error". Returns 0, or -EINVAL leaving *out. */
int fg_log_level_parse(const char *name, fg_log_level_t *out);

/** JSON-escape `n` bytes of `s` into `out` (at most `cap` bytes, no quotes, no NUL): '"' and
 *  '\\' escaped, control characters and DEL as \\n \\r \\t or \\u00XX, invalid UTF-8 as
 *  \\ufffd. Stops before a character that does not fit whole. Returns the bytes written;
 *  `*consumed` (if not NULL) gets the input bytes used (n when everything fit). */
size_t fg_json_escape(char *out, size_t cap, const char *s, size_t n, size_t *consumed);

/** Write one line. After `msg` come string key/value pairs, terminated by a single NULL:
 *  fg_log(FG_LOG_INFO, "snapshot applied", "version", "42", NULL). A NULL value is written
 *  as JSON null. Never fails visibly: a write error drops the line. */
void fg_log(fg_log_level_t level, const char *msg, ...) __attribute__((sentinel));

#endif
