/* accesslog.c - the per-request JSON log and its non-blocking sink (see accesslog.h).
 *
 * Formatting writes straight into the pending buffer (no intermediate copy) when a whole
 * line's worst case fits, so a logged request costs one pass over its fields. The buffer is
 * static, per process: nothing is allocated per request. */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "fg_log.h"
#include "fg_time.h"
#include "metrics.h"
#include "overload.h"
#include "trace.h"

#define ACCESSLOG_SAMPLE_ONE 0x100000000ull /* sampling rates in 1/2^32 steps */

static struct {
    int fd;                 /* our own description of fd 2, O_NONBLOCK; -1 = off */
    bool pipe;              /* cut writes at PIPE_BUF line boundaries */
    struct event *timer;
    int64_t wall_offset_us; /* CLOCK_REALTIME minus the monotonic clock (timestamp()) */
    bool wall_offset_known;
    unsigned worker;
    fg_log_level_t level;
    uint64_t success_rate;  /* keep when rand32 < rate; ACCESSLOG_SAMPLE_ONE = all */
    uint64_t error_rate;
    uint64_t rng;
    size_t len;
    char buf[DP_ACCESSLOG_BUFFER];
} al = {.fd = -1, .success_rate = ACCESSLOG_SAMPLE_ONE, .error_rate = ACCESSLOG_SAMPLE_ONE,
        .rng = 0x9e3779b97f4a7c15u};

static int sink_open(void)
{
    /* A new open file description of whatever fd 2 is (file, pipe, tty): O_NONBLOCK on it
     * does not change stderr for anyone else holding it. */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3); /* no /proc: blocking, but works */
        if (fd < 0)
            return -errno;
    }
    struct stat st;
    bool pipe = fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    if (al.fd >= 0)
        close(al.fd);
    al.fd = fd;
    al.pipe = pipe;
    return 0;
}

/* Write whole lines while the sink takes them; keep the rest. */
static void flush(void)
{
    size_t off = 0;
    while (off < al.len && al.fd >= 0) {
        size_t n = al.len - off;
        if (al.pipe && n > PIPE_BUF) {
            /* The last line boundary within PIPE_BUF (every line is at most PIPE_BUF). */
            n = PIPE_BUF;
            while (n > 0 && al.buf[off + n - 1] != '\n')
                n--;
            if (n == 0)
                n = PIPE_BUF;
        }
        ssize_t w = write(al.fd, al.buf + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* EAGAIN: the sink is full; other errors: retried next time */
        off += (size_t)w;
    }
    if (off) {
        memmove(al.buf, al.buf + off, al.len - off);
        al.len -= off;
    }
}

/* A line's timestamp is its request's finish time (the monotonic now_us the request path
 * has already read) moved onto the wall clock by this offset: no clock read per line.
 * Measured at start and on every flush tick, so a step of the wall clock shows in the
 * lines within DP_ACCESSLOG_FLUSH_MS. */
static void wall_offset_measure(void)
{
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    uint64_t mono = trace_now_us();
    al.wall_offset_us = ((int64_t)w.tv_sec * 1000000 + w.tv_nsec / 1000) - (int64_t)mono;
    al.wall_offset_known = true;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    wall_offset_measure();
    flush();
}

int accesslog_start(struct event_base *base, unsigned worker)
{
    struct timeval tv = {DP_ACCESSLOG_FLUSH_MS / 1000, (DP_ACCESSLOG_FLUSH_MS % 1000) * 1000};
    int rc = sink_open();
    if (rc < 0)
        return rc;
    al.worker = worker;
    wall_offset_measure();
    al.rng ^= (uint64_t)getpid() * 0xbf58476d1ce4e5b9u;
    al.timer = event_new(base, -1, EV_PERSIST, on_flush_timer, NULL);
    if (!al.timer || event_add(al.timer, &tv) < 0)
        return -ENOMEM;
    return 0;
}

int accesslog_reopen(void)
{
    if (al.fd < 0)
        return 0;
    flush();
    return sink_open();
}

static uint64_t rate_of(double r)
{
    if (!(r > 0))
        return 0;
    if (r >= 1)
        return ACCESSLOG_SAMPLE_ONE;
    return (uint64_t)(r * (double)ACCESSLOG_SAMPLE_ONE);
}

void accesslog_configure(const fg_logging_conf_t *conf)
{
    fg_log_level_t level = FG_LOG_INFO;
    if (conf->level && fg_log_level_parse(conf->level, &level) < 0)
        level = FG_LOG_INFO;
    al.level = level;
    al.success_rate = rate_of(conf->success_rate);
    al.error_rate = rate_of(conf->error_rate);
}

void accesslog_stop(void)
{
    if (al.timer)
        event_free(al.timer);
    al.timer = NULL;
    if (al.fd >= 0) {
        int flags = fcntl(al.fd, F_GETFL);
        if (flags >= 0)
            fcntl(al.fd, F_SETFL, flags & ~O_NONBLOCK); /* the last lines are worth a wait */
        flush();
        close(al.fd);
    }
    al.fd = -1;
    al.len = 0;
}

/* ---- formatting ---------------------------------------------------------------------- */

/* A line is formatted by one of two instances of the same code (format_line, forced inline
 * with `checked` a constant): when the worst case of every field fits the room (nearly
 * always: short paths and targets), the unchecked instance writes without a bounds test
 * per piece; otherwise the checked one cuts values and leaves out fields as they run out
 * of room. The field writers are forced inline so each key's literal length is a constant
 * and its copy a few moves (the access log is formatted once per request). */
typedef struct line {
    char *p;
    size_t len, cap;
    bool checked; /* a constant in each instance of format_line */
    bool cut;     /* a value was shortened, or fields left out */
    bool full;    /* the last raw() did not fit: its field is rolled back */
} line_t;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Bytes of a line without its escaped values (path, target, key name) and its config names
 * (method, route, upstream), with every optional field present at its longest: the keys and
 * fixed text (under 400 bytes), a DP_TRACE_REQUEST_ID_MAX request id, the trace ids (64),
 * an INET6_ADDRSTRLEN address, seven numbers of at most 24 characters. The unchecked
 * instance is used only when this plus the variable parts at their worst fits. */
#define ACCESSLOG_FIXED_MAX 1024
_Static_assert(ACCESSLOG_FIXED_MAX >= 400 + DP_TRACE_REQUEST_ID_MAX + 2 * DP_TRACE_ID_LEN +
                                          INET6_ADDRSTRLEN + 7 * 24,
               "ACCESSLOG_FIXED_MAX covers the fixed fields");
#define ACCESSLOG_ESCAPE_MAX 6 /* output bytes of one escaped input byte (\u00XX) */

/* memcpy for the short values of a line (ids, names, addresses): two overlapping moves of
 * a fixed size instead of a call; longer ones go to memcpy. */
ALWAYS_INLINE void copy_short(char *d, const char *s, size_t n)
{
    if (n >= 16 && n <= 32) {
        memcpy(d, s, 16);
        memcpy(d + n - 16, s + n - 16, 16);
    } else if (n >= 8 && n < 16) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0 && n < 4) { /* 1, 2 or 3 bytes: first, middle, last */
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    } else {
        memcpy(d, s, n);
    }
}

ALWAYS_INLINE void raw(line_t *l, const char *s, size_t n)
{
    if (l->checked && (l->full || l->cap - l->len < n)) {
        l->full = l->cut = true;
        return;
    }
    if (__builtin_constant_p(n))
        memcpy(l->p + l->len, s, n); /* a literal: the compiler's moves */
    else
        copy_short(l->p + l->len, s, n);
    l->len += n;
}

#define RAW(l, lit) raw(l, lit, sizeof(lit) - 1)

/* `,"key":` (or `,"key":"` for strings: the literal says which), given whole as one
 * literal so a field costs one copy for its key. False, with nothing written, when even
 * that does not fit. */
ALWAYS_INLINE bool key(line_t *l, const char *lit, size_t len, size_t *mark)
{
    *mark = l->len;
    raw(l, lit, len);
    if (l->checked && l->full)
        l->len = *mark;
    return !l->checked || !l->full;
}

/* A field that did not fit whole is taken out again: the line stays valid JSON. */
ALWAYS_INLINE void field_end(line_t *l, size_t mark)
{
    if (l->checked && l->full)
        l->len = mark;
}

#define WORD_ONES 0x0101010101010101ull
#define WORD_HIGHS 0x8080808080808080ull

/* Nonzero when one of the 8 bytes of `w` is one fg_json_escape changes: below 0x20, '"',
 * '\\', or from 0x7f on. Each test flags (in its high bit) at least the lowest such byte
 * and never a byte when there is none (borrows and carries start only at a flagged byte),
 * which is all a yes/no needs. */
ALWAYS_INLINE uint64_t word_needs_escape(uint64_t w)
{
    uint64_t ctl = (w - WORD_ONES * 0x20) & ~w;     /* a byte < 0x20 */
    uint64_t high = (w + WORD_ONES) | w;            /* a byte >= 0x7f */
    uint64_t q = w ^ (WORD_ONES * '"'), bs = w ^ (WORD_ONES * '\\');
    q = (q - WORD_ONES) & ~q;                       /* a '"' */
    bs = (bs - WORD_ONES) & ~bs;                    /* a '\\' */
    return (ctl | high | q | bs) & WORD_HIGHS;
}

/* Bytes at the start of s[0..n) that fg_json_escape would copy unchanged. 16 bytes at a
 * time with SSE2 (every x86-64), else 8 at a time in a word; the last block overlaps the
 * one before when n is not a multiple of its size (the overlap is known clean). */
ALWAYS_INLINE size_t clean_prefix(const char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    if (n >= 16) {
        const __m128i ctl = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);
        for (;;) {
            size_t at = i + 16 <= n ? i : n - 16;
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + at));
            /* Signed: bytes from 0x80 on are negative, so "< 0x20" takes them too. */
            __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, ctl),
                                                    _mm_cmpeq_epi8(v, del)),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                    _mm_cmpeq_epi8(v, bslash)));
            unsigned mask = (unsigned)_mm_movemask_epi8(bad);
            if (mask)
                return at + (size_t)__builtin_ctz(mask);
            if (at + 16 == n)
                return n;
            i += 16;
        }
    }
#endif
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        if (word_needs_escape(w))
            break;
    }
    if (i < n && n >= 8 && i + 8 > n) { /* the tail, as the last 8 bytes */
        memcpy(&w, s + n - 8, 8);
        if (!word_needs_escape(w))
            return n;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            break;
    }
    return i;
}

/* "escaped value" after its key -- at most `max` input bytes of the value. */
ALWAYS_INLINE void str_field(line_t *l, const char *lit, size_t len, const char *v, size_t n,
                             size_t max)
{
    size_t mark, used, take = n < max ? n : max;
    if (!v || !key(l, lit, len, &mark))
        return;
    if (l->checked) {
        size_t room = l->cap - l->len > 1 ? l->cap - l->len - 1 : 0;
        l->len += fg_json_escape(l->p + l->len, room, v, take, &used);
    } else {
        /* The clean run is copied; the rest (if any) escaped, with room for its worst. */
        size_t pre = clean_prefix(v, take);
        copy_short(l->p + l->len, v, pre);
        l->len += pre;
        used = pre;
        if (pre < take) {
            l->len += fg_json_escape(l->p + l->len, (take - pre) * ACCESSLOG_ESCAPE_MAX,
                                     v + pre, take - pre, &used);
            used += pre;
        }
    }
    l->cut |= used < n;
    RAW(l, "\"");
    field_end(l, mark);
}

/* "value" after its key, for values that cannot need escaping: names validated by the
 * config ([A-Za-z0-9._-]), ids we generated or accepted by charset, hex, method names,
 * addresses from inet_ntop. Copied as they are. */
ALWAYS_INLINE void plain_field(line_t *l, const char *lit, size_t len, const char *v, size_t n)
{
    size_t mark;
    if (!v || !key(l, lit, len, &mark))
        return;
    raw(l, v, n);
    RAW(l, "\"");
    field_end(l, mark);
}

/* "00" .. "99": numbers are written two digits at a time. */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Three digits 000..999 (milliseconds of a timestamp, microseconds of a duration) at `out`. */
ALWAYS_INLINE void put_dec3(char *out, unsigned v)
{
    out[0] = (char)('0' + v / 100);
    memcpy(out + 1, digit_pairs + v % 100 * 2, 2);
}

/* `v` in decimal at `out` (at most 20 bytes); returns the length. */
ALWAYS_INLINE size_t put_dec(char *out, uint64_t v)
{
    if (v < 10) { /* the common sizes first: retries, statuses, small bodies */
        out[0] = (char)('0' + v);
        return 1;
    }
    if (v < 100) {
        memcpy(out, digit_pairs + v * 2, 2);
        return 2;
    }
    if (v < 1000) {
        put_dec3(out, (unsigned)v);
        return 3;
    }
    size_t n = 4;
    for (uint64_t p = 10000; n < 20 && v >= p; p *= 10)
        n++;
    char *e = out + n;
    while (v >= 100) {
        const char *d = digit_pairs + (v % 100) * 2;
        v /= 100;
        *--e = d[1];
        *--e = d[0];
    }
    if (v >= 10) {
        *--e = digit_pairs[v * 2 + 1];
        *--e = digit_pairs[v * 2];
    } else {
        *--e = (char)('0' + v);
    }
    return n;
}

ALWAYS_INLINE void u64_field(line_t *l, const char *lit, size_t len, uint64_t v)
{
    char num[24];
    size_t mark;
    if (!key(l, lit, len, &mark))
        return;
    if (l->checked)
        raw(l, num, put_dec(num, v));
    else
        l->len += put_dec(l->p + l->len, v);
    field_end(l, mark);
}

/* Milliseconds with microsecond precision: 12.345 */
ALWAYS_INLINE void ms_field(line_t *l, const char *lit, size_t len, uint64_t us)
{
    char buf[32];
    size_t mark;
    if (!key(l, lit, len, &mark))
        return;
    char *num = l->checked ? buf : l->p + l->len;
    size_t n = put_dec(num, us / 1000);
    num[n++] = '.';
    put_dec3(num + n, (unsigned)(us % 1000));
    n += 3;
    if (l->checked)
        raw(l, num, n);
    else
        l->len += n;
    field_end(l, mark);
}

/* Field helpers with a literal key. */
#define SKEY(k) ",\"" k "\":\""
#define NKEY(k) ",\"" k "\":"
#define STR(l, k, v, n, max) str_field(l, SKEY(k), sizeof(SKEY(k)) - 1, v, n, max)
#define PLAIN(l, k, v, n) plain_field(l, SKEY(k), sizeof(SKEY(k)) - 1, v, n)
#define U64(l, k, v) u64_field(l, NKEY(k), sizeof(NKEY(k)) - 1, v)
#define MS(l, k, v) ms_field(l, NKEY(k), sizeof(NKEY(k)) - 1, v)

/* What the rate limiter and the breaker decided, by DP_OUTCOME_* (NULL: not consulted). */
static const struct outcome {
    const char *name;
    size_t len;
} outcomes[] = {
    [DP_OUTCOME_ALLOWED] = {"allowed", 7}, [DP_OUTCOME_LIMITED] = {"limited", 7},
    [DP_OUTCOME_OPEN] = {"open", 4},       [DP_OUTCOME_FALLBACK] = {"fallback", 8},
};
#define OUTCOME(l, k, o)                                                                   \
    ((o) < sizeof outcomes / sizeof outcomes[0]                                            \
         ? PLAIN(l, k, outcomes[(o)].name, outcomes[(o)].len)                              \
         : (void)0)

/* A 5xx is worth a look, but it is the upstream's or the client's trouble as often as
 * ours: "warn", never "error" (that level stays for the gateway's own failures). */
static fg_log_level_t level_of(int status)
{
    return status >= 500 ? FG_LOG_WARN : FG_LOG_INFO;
}

#define ACCESSLOG_YEAR10000_S 253402300800ull /* fg_rfc3339 clamps from here on */

/* The timestamp of a line finished at `now_us` (monotonic): its date and seconds formatted
 * again only when the second changes, its milliseconds when they change (at tens of
 * thousands of requests a second most lines share them). */
ALWAYS_INLINE const char *timestamp(uint64_t now_us)
{
    static char ts[FG_RFC3339_LEN + 1];
    static uint64_t ts_ms = UINT64_MAX;  /* the millisecond in ts */
    static uint64_t sec_ms = UINT64_MAX; /* the first millisecond of its second (MAX: none) */
    if (!al.wall_offset_known) /* formatting before accesslog_start (unit tests) */
        wall_offset_measure();
    int64_t wall_us = (int64_t)now_us + al.wall_offset_us;
    uint64_t ms = wall_us > 0 ? (uint64_t)wall_us / 1000u : 0;
    if (ms == ts_ms)
        return ts;
    uint64_t frac = ms - sec_ms;
    if (ms >= sec_ms && frac < 1000) { /* "....:ss.mmmZ": only mmm moves */
        put_dec3(ts + FG_RFC3339_LEN - 4, (unsigned)frac);
    } else {
        fg_rfc3339(ms, ts);
        sec_ms = ms / 1000 < ACCESSLOG_YEAR10000_S ? ms - ms % 1000 : UINT64_MAX;
    }
    ts_ms = ms;
    return ts;
}

/* llhttp's name of a method and its length, measured once per method (uint8_t: the head's
 * field; NULL when llhttp has no name for it). */
static const char *method_name(uint8_t method, size_t *len)
{
    static struct {
        const char *name;
        size_t len;
        bool known;
    } names[UINT8_MAX + 1];
    if (!names[method].known) {
        names[method].name = llhttp_method_name((llhttp_method_t)method);
        names[method].len = names[method].name ? strlen(names[method].name) : 0;
        names[method].known = true;
    }
    *len = names[method].len;
    return names[method].name;
}

/* What format_line needs measured first (the unchecked instance's bound needs the lengths). */
typedef struct fields {
    const char *path, *method, *route, *upstream, *target, *key_name;
    size_t path_len, method_len, route_len, upstream_len, target_len, key_name_len;
} fields_t;

ALWAYS_INLINE size_t format_line(char *out, size_t cap, const dp_request_t *r, int status,
                                 uint64_t now_us, const fields_t *f, bool checked)
{
    const dp_trace_t *t = &r->trace;
    line_t l = {.p = out, .len = 0, .cap = cap > 32 ? cap - 32 : 0, /* room for the tail */
                .checked = checked};

    RAW(&l, "{\"ts\":\"");
    raw(&l, timestamp(now_us), FG_RFC3339_LEN);
    if (level_of(status) == FG_LOG_WARN)
        RAW(&l, "\",\"level\":\"warn\",\"component\":\"dp\",\"msg\":\"request\"");
    else
        RAW(&l, "\",\"level\":\"info\",\"component\":\"dp\",\"msg\":\"request\"");
    /* Accepted ids are charset-checked (trace.c): no quote, backslash or control byte. */
    PLAIN(&l, "request_id", t->request_id, t->request_id_len);
    if (t->trace_id[0]) {
        PLAIN(&l, "trace_id", t->trace_id, DP_TRACE_ID_LEN);
        PLAIN(&l, "span_id", t->span_id, DP_TRACE_SPAN_LEN);
        if (t->parent_id[0])
            PLAIN(&l, "parent_id", t->parent_id, DP_TRACE_SPAN_LEN);
    }
    PLAIN(&l, "method", f->method, f->method_len);
    STR(&l, "path", f->path, f->path_len, DP_ACCESSLOG_PATH_MAX);
    PLAIN(&l, "route", f->route, f->route_len);
    PLAIN(&l, "upstream", f->upstream, f->upstream_len);
    STR(&l, "target", f->target, f->target_len, DP_ACCESSLOG_LINE_MAX);
    U64(&l, "status", (uint64_t)status);
    MS(&l, "duration_ms", t->start_us && now_us > t->start_us ? now_us - t->start_us : 0);
    if (t->upstream_us)
        MS(&l, "upstream_ms", t->upstream_us);
    U64(&l, "bytes_in", r->req_body_bytes);
    U64(&l, "bytes_out", r->resp_body_bytes);
    PLAIN(&l, "client_ip", r->conn->peer_ip, r->conn->peer_ip_len);
    /* the key's name from config, never the key */
    STR(&l, "key_name", f->key_name, f->key_name_len, DP_ACCESSLOG_LINE_MAX);
    U64(&l, "retries", r->attempts);
    OUTCOME(&l, "ratelimit", t->ratelimit);
    OUTCOME(&l, "breaker", t->breaker);
    if (al.worker)
        U64(&l, "worker", al.worker);
    l.cap = cap; /* the reserved tail */
    l.full = false;
    if (l.cut)
        RAW(&l, ",\"truncated\":true");
    RAW(&l, "}\n");
    return l.len;
}

size_t accesslog_format(char *out, size_t cap, const dp_request_t *r, int status,
                        uint64_t now_us)
{
    fields_t f = {0};
    if (r->head)
        f.method = method_name(r->head->method, &f.method_len);
    if (r->path) {
        f.path = r->path;
        f.path_len = r->path_len;
    } else if (r->head) { /* refused before the path was parsed: the raw target, escaped */
        f.path = r->head->buf + r->head->url_off;
        f.path_len = r->head->url_len;
    }
    if (r->route && r->route->id) {
        f.route = r->route->id;
        f.route_len = strlen(f.route);
    }
    if (r->upstream && r->upstream->name) {
        f.upstream = r->upstream->name;
        f.upstream_len = strlen(f.upstream);
    }
    if (r->target && r->target->url) {
        f.target = r->target->url;
        f.target_len = strlen(f.target);
    }
    if (r->key_name) {
        f.key_name = r->key_name;
        f.key_name_len = strlen(f.key_name);
    }
    size_t path_take = f.path_len < DP_ACCESSLOG_PATH_MAX ? f.path_len : DP_ACCESSLOG_PATH_MAX;
    /* The lengths are of strings in memory (far below 2^60): the sum cannot wrap. The
     * request id and address lengths index fixed arrays: ACCESSLOG_FIXED_MAX counts them at
     * their largest, which the check makes sure of. */
    if (r->conn->peer_ip_len <= INET6_ADDRSTRLEN &&
        r->trace.request_id_len <= DP_TRACE_REQUEST_ID_MAX && cap >= 32 &&
        ACCESSLOG_FIXED_MAX + f.method_len + f.route_len + f.upstream_len +
                ACCESSLOG_ESCAPE_MAX * (path_take + f.target_len + f.key_name_len) <=
            cap - 32)
        return format_line(out, cap, r, status, now_us, &f, false);
    return format_line(out, cap, r, status, now_us, &f, true);
}

/* xorshift64*: sampling needs speed and spread, not secrecy. */
static uint32_t rand32(void)
{
    al.rng ^= al.rng >> 12;
    al.rng ^= al.rng << 25;
    al.rng ^= al.rng >> 27;
    return (uint32_t)((al.rng * 0x2545f4914f6cdd1du) >> 32);
}

void accesslog_request(const dp_request_t *r, int status, uint64_t now_us)
{
    dp_counters_t *c = metrics_counters();
    if (al.fd < 0 || level_of(status) < al.level)
        return;
    uint64_t rate = status >= DP_ACCESSLOG_ERROR_STATUS ? al.error_rate : al.success_rate;
    if (status < DP_ACCESSLOG_ERROR_STATUS && overload_active())
        rate /= DP_ACCESSLOG_OVERLOAD_KEEP; /* an overloaded gateway spends less on logs */
    if (rate < ACCESSLOG_SAMPLE_ONE && rand32() >= rate) {
        c->accesslog_sampled_out++;
        return;
    }
    if (sizeof al.buf - al.len < DP_ACCESSLOG_LINE_MAX) {
        flush();
        if (sizeof al.buf - al.len < DP_ACCESSLOG_LINE_MAX) {
            c->accesslog_dropped++; /* the sink is stalled: never wait for it */
            return;
        }
    }
    al.len += accesslog_format(al.buf + al.len, DP_ACCESSLOG_LINE_MAX, r, status, now_us);
    c->accesslog_lines++;
    if (al.len >= sizeof al.buf / 2)
        flush();
}
