/* fg_error.h - the error record every fallible FlexGate call fills in.
 *
 * A failure is reported twice: as a negative errno-style return code (for control flow)
 * and as an fg_error_t (for people): `field` is the JSON path of the offending value
 * ("routes[3].rateLimit.windowMs", empty when no single field is at fault) and `message`
 * says what is wrong with it ("must be > 0"). Both are plain NUL-terminated buffers owned
 * by the caller, so an error can be produced without allocating. */
#ifndef FG_ERROR_H
#define FG_ERROR_H

#include <stddef.h>

#define FG_ERROR_FIELD_MAX 256
#define FG_ERROR_MESSAGE_MAX 512

typedef struct fg_error {
    char field[FG_ERROR_FIELD_MAX];     /* JSON path of the bad value, or "" */
    char message[FG_ERROR_MESSAGE_MAX]; /* human-readable reason, never echoes secrets */
} fg_error_t;

/** Clear `err` (both strings empty). NULL is accepted and ignored. */
void fg_error_clear(fg_error_t *err);

/** Record `field` (may be NULL) and a printf-style message. NULL `err` is ignored.
 *  Both are truncated to fit. Returns -EINVAL so callers can `return fg_error_set(...)`. */
int fg_error_set(fg_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Like fg_error_set, but returns `code` (a negative errno) instead of -EINVAL. */
int fg_error_setc(fg_error_t *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
