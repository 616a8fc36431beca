/* fg_error.c - filling in fg_error_t records (see fg_error.h).
 *
 * Formatting goes straight into the caller's fixed buffers, so reporting an error never
 * allocates and can be used on the out-of-memory path. */
#include "fg_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fg_error_clear(fg_error_t *err)
{
    if (!err)
        return;
    err->field[0] = '\0';
    err->message[0] = '\0';
}

static void error_fill(fg_error_t *err, const char *field, const char *fmt, va_list ap)
{
    if (!err)
        return;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    /* vsnprintf truncates safely; a NULL fmt would be a caller bug, but costs nothing. */
    if (fmt)
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
    else
        err->message[0] = '\0';
}

int fg_error_set(fg_error_t *err, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_fill(err, field, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int fg_error_setc(fg_error_t *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_fill(err, field, fmt, ap);
    va_end(ap);
    return code;
}
