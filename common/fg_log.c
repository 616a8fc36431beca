/* fg_log.c - the JSON line logger (see fg_log.h).
 *
 * Each line is formatted into a thread-local buffer and handed to the kernel with one
 * write(2) on fd 2, so lines from different threads never interleave and no lock is needed
 * (writes of up to PIPE_BUF bytes to a pipe are atomic; longer lines still go out in one
 * call). A line that would exceed FG_LOG_LINE_MAX is cut at a character boundary and marked
 * "truncated":true, and stays valid JSON. Bytes that are not valid UTF-8 become U+FFFD, so
 * request data copied into a value can neither break the JSON nor the terminal. */
#include "fg_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fg_time.h"

#define FG_LOG_LINE_MAX 16384 /* bytes per line, newline included */
#define LOG_RESERVE 32        /* room always kept for `","truncated":true}\n` */

static const char *log_component = "flexgate";
static atomic_int log_min_level = FG_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The --log-file path, kept for fg_log_reopen(); empty = stderr is whatever we inherited. */
static char log_path[PATH_MAX];

typedef struct log_buf {
    char *p;
    size_t len;
    size_t cap; /* usable bytes: the real size minus LOG_RESERVE */
} log_buf_t;

void fg_log_init(const char *component, fg_log_level_t min_level)
{
    if (component)
        log_component = component;
    fg_log_set_level(min_level);
}

void fg_log_set_level(fg_log_level_t min_level)
{
    atomic_store_explicit(&log_min_level, (int)min_level, memory_order_relaxed);
}

int fg_log_enabled(fg_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

/* Point fd 2 at `path` (appending): the logger, libevent and anything else that writes to
 * stderr all follow. O_APPEND keeps lines from several processes whole. */
static int log_dup_to_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    if (fd != STDERR_FILENO) {
        int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
        close(fd);
        return rc;
    }
    return 0;
}

int fg_log_open(const char *path)
{
    if (!path || !*path || strlen(path) >= sizeof(log_path))
        return -EINVAL;
    int rc = log_dup_to_stderr(path);
    if (rc == 0)
        snprintf(log_path, sizeof(log_path), "%s", path);
    return rc;
}

int fg_log_reopen(void)
{
    if (!log_path[0])
        return 0;
    return log_dup_to_stderr(log_path);
}

int fg_log_level_parse(const char *name, fg_log_level_t *out)
{
    if (!name)
        return -EINVAL;
    for (int i = FG_LOG_DEBUG; i <= FG_LOG_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (fg_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = FG_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

static bool buf_raw(log_buf_t *b, const char *s, size_t n)
{
    if (b->cap - b->len < n)
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not one. Rejects
 * overlong forms and surrogates, as RFC 3629 requires. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Bytes that go into a JSON string as they are ('1'): printable ASCII but '"' and '\\'. */
static const char json_plain[257] =
    "0000000000000000000000000000000011011111111111111111111111111111"
    "1111111111111111111111111111011111111111111111111111111111111110"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000";

size_t fg_json_escape(char *out, size_t cap, const char *s, size_t n, size_t *consumed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, len = 0;

    while (i < n) {
        /* The common case, a run of printable ASCII other than '"' and '\\', is copied
         * whole: the access log escapes a path per request. */
        size_t run = i;
        while (run < n && json_plain[u[run]] == '1')
            run++;
        if (run > i) {
            size_t take = run - i < cap - len ? run - i : cap - len;
            memcpy(out + len, u + i, take);
            len += take;
            i += take;
            if (i < run)
                break; /* out of room */
            continue;
        }
        unsigned char c = u[i];
        char esc[8];
        size_t esc_len = 0;
        size_t adv = 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, esc_len = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2), esc_len = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2), esc_len = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2), esc_len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 0xf], esc_len = 6;
        } else if (c < 0x80) {
            esc[0] = (char)c, esc_len = 1;
        } else {
            adv = utf8_seq_len(u + i, n - i);
            if (adv == 0) {
                memcpy(esc, "\\ufffd", 6), esc_len = 6, adv = 1;
            } else {
                memcpy(esc, u + i, adv), esc_len = adv;
            }
        }
        if (cap - len < esc_len)
            break;
        memcpy(out + len, esc, esc_len);
        len += esc_len;
        i += adv;
    }
    if (consumed)
        *consumed = i;
    return len;
}

/* Append `s` as a JSON string. On overflow the string is closed where it was cut and
 * false is returned; the caller then stops adding fields. */
static bool buf_json_string(log_buf_t *b, const char *s)
{
    size_t n = strlen(s), used;

    if (!buf_raw(b, "\"", 1))
        return false;
    b->len += fg_json_escape(b->p + b->len, b->cap - b->len, s, n, &used);
    /* The closing quote may use the reserve: it is what keeps a cut line valid JSON. */
    b->p[b->len++] = '"';
    return used == n;
}

static bool buf_pair(log_buf_t *b, const char *key, const char *value)
{
    size_t mark = b->len;
    if (!buf_raw(b, ",", 1) || !buf_json_string(b, key) || !buf_raw(b, ":", 1)) {
        b->len = mark; /* a cut key is worse than no key */
        return false;
    }
    if (!value) {
        if (!buf_raw(b, "null", 4)) {
            b->len = mark;
            return false;
        }
        return true;
    }
    return buf_json_string(b, value);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void fg_log(fg_log_level_t level, const char *msg, ...)
{
    static _Thread_local char line[FG_LOG_LINE_MAX];
    log_buf_t b = {.p = line, .len = 0, .cap = sizeof(line) - LOG_RESERVE};
    char ts[FG_RFC3339_LEN + 1];
    int saved_errno = errno;
    bool ok;

    if (!fg_log_enabled(level))
        return;
    if ((int)level < FG_LOG_DEBUG || (int)level > FG_LOG_ERROR)
        level = FG_LOG_ERROR;
    fg_rfc3339(fg_wall_ms(), ts);

    ok = buf_raw(&b, "{\"ts\":\"", 7) && buf_raw(&b, ts, strlen(ts)) && buf_raw(&b, "\"", 1) &&
         buf_pair(&b, "level", level_names[level]) && buf_pair(&b, "component", log_component) &&
         buf_pair(&b, "msg", msg ? msg : "");

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        if (ok)
            ok = buf_pair(&b, key, value);
    }
    va_end(ap);

    b.cap = sizeof(line); /* the reserve is for exactly this tail */
    if (!ok)
        buf_raw(&b, ",\"truncated\":true", 17);
    buf_raw(&b, "}\n", 2);
    write_all(line, b.len);
    errno = saved_errno; /* logging must not disturb the caller's error handling */
}
