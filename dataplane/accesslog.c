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
#include <unistd.h>

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
    struct event_base *base; /* its cached time stamps the lines */
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

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    flush();
}

int accesslog_start(struct event_base *base, unsigned worker)
{
    struct timeval tv = {DP_ACCESSLOG_FLUSH_MS / 1000, (DP_ACCESSLOG_FLUSH_MS % 1000) * 1000};
    int rc = sink_open();
    if (rc < 0)
        return rc;
    al.worker = worker;
    al.base = base;
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
    al.base = NULL;
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

/* The field writers are forced inline so each key's literal length is a constant and its
 * copy a few moves (the access log is formatted once per request). */
typedef struct line {
    char *p;
    size_t len, cap;
    bool cut;  /* a value was shortened, or fields left out */
    bool full; /* the last raw() did not fit: its field is rolled back */
} line_t;

static inline __attribute__((always_inline)) void raw(line_t *l, const char *s, size_t n)
{
    if (l->full || l->cap - l->len < n) {
        l->full = l->cut = true;
        return;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

#define RAW(l, lit) raw(l, lit, sizeof(lit) - 1)

/* `,"key":` (or `,"key":"` for strings: the literal says which), given whole as one
 * literal so a field costs one copy for its key. False, with nothing written, when even
 * that does not fit. */
static inline __attribute__((always_inline)) bool key(line_t *l, const char *lit, size_t len, size_t *mark)
{
    *mark = l->len;
    raw(l, lit, len);
    if (l->full)
        l->len = *mark;
    return !l->full;
}

/* A field that did not fit whole is taken out again: the line stays valid JSON. */
static inline __attribute__((always_inline)) void field_end(line_t *l, size_t mark)
{
    if (l->full)
        l->len = mark;
}

/* "escaped value" after its key -- at most `max` input bytes of the value. */
static inline __attribute__((always_inline)) void str_field(line_t *l, const char *lit, size_t len, const char *v, size_t n,
                      size_t max)
{
    size_t mark, used;
    if (!v || !key(l, lit, len, &mark))
        return;
    size_t room = l->cap - l->len > 1 ? l->cap - l->len - 1 : 0;
    l->len += fg_json_escape(l->p + l->len, room, v, n < max ? n : max, &used);
    l->cut |= used < n;
    RAW(l, "\"");
    field_end(l, mark);
}

/* "value" after its key, for values that cannot need escaping: names validated by the
 * config ([A-Za-z0-9._-]), ids we generated or accepted by charset, hex, method names,
 * addresses from inet_ntop. Copied as they are. */
static inline __attribute__((always_inline)) void plain_field(line_t *l, const char *lit, size_t len, const char *v, size_t n)
{
    size_t mark;
    if (!v || !key(l, lit, len, &mark))
        return;
    raw(l, v, n);
    RAW(l, "\"");
    field_end(l, mark);
}

static inline __attribute__((always_inline)) void u64_field(line_t *l, const char *lit, size_t len, uint64_t v)
{
    char num[24];
    size_t mark;
    if (!key(l, lit, len, &mark))
        return;
    raw(l, num, http1_u64_to_dec(v, num));
    field_end(l, mark);
}

/* Milliseconds with microsecond precision: 12.345 */
static inline __attribute__((always_inline)) void ms_field(line_t *l, const char *lit, size_t len, uint64_t us)
{
    char num[32];
    size_t mark, n = http1_u64_to_dec(us / 1000, num);
    unsigned frac = (unsigned)(us % 1000);
    num[n++] = '.';
    num[n++] = (char)('0' + frac / 100);
    num[n++] = (char)('0' + frac / 10 % 10);
    num[n++] = (char)('0' + frac % 10);
    if (!key(l, lit, len, &mark))
        return;
    raw(l, num, n);
    field_end(l, mark);
}

/* Field helpers with a literal key. */
#define SKEY(k) ",\"" k "\":\""
#define NKEY(k) ",\"" k "\":"
#define STR(l, k, v, n, max) str_field(l, SKEY(k), sizeof(SKEY(k)) - 1, v, n, max)
#define CSTR(l, k, v) ((v) ? STR(l, k, v, strlen(v), DP_ACCESSLOG_LINE_MAX) : (void)0)
#define PLAIN(l, k, v, n) plain_field(l, SKEY(k), sizeof(SKEY(k)) - 1, v, n)
#define CPLAIN(l, k, v) ((v) ? PLAIN(l, k, v, strlen(v)) : (void)0)
#define U64(l, k, v) u64_field(l, NKEY(k), sizeof(NKEY(k)) - 1, v)
#define MS(l, k, v) ms_field(l, NKEY(k), sizeof(NKEY(k)) - 1, v)

static const char *outcome_name(uint8_t o)
{
    switch (o) {
    case DP_OUTCOME_ALLOWED: return "allowed";
    case DP_OUTCOME_LIMITED: return "limited";
    case DP_OUTCOME_OPEN: return "open";
    case DP_OUTCOME_FALLBACK: return "fallback";
    default: return NULL;
    }
}

/* A 5xx is worth a look, but it is the upstream's or the client's trouble as often as
 * ours: "warn", never "error" (that level stays for the gateway's own failures). */
static fg_log_level_t level_of(int status)
{
    return status >= 500 ? FG_LOG_WARN : FG_LOG_INFO;
}

/* The timestamp, formatted again only when the millisecond changes: at tens of thousands
 * of requests a second most lines share it. The loop's cached time is enough. */
static const char *timestamp(void)
{
    static char ts[FG_RFC3339_LEN + 1];
    static uint64_t ts_ms = UINT64_MAX;
    struct timeval tv;
    uint64_t ms;
    if (event_base_gettimeofday_cached(al.base, &tv) < 0)
        ms = fg_wall_ms();
    else
        ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    if (ms != ts_ms) {
        fg_rfc3339(ms, ts);
        ts_ms = ms;
    }
    return ts;
}

size_t accesslog_format(char *out, size_t cap, const dp_request_t *r, int status,
                        uint64_t now_us)
{
    const dp_trace_t *t = &r->trace;
    line_t l = {.p = out, .len = 0, .cap = cap > 32 ? cap - 32 : 0}; /* room for the tail */

    RAW(&l, "{\"ts\":\"");
    raw(&l, timestamp(), FG_RFC3339_LEN);
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
    if (r->head)
        CPLAIN(&l, "method", llhttp_method_name((llhttp_method_t)r->head->method));
    if (r->path)
        STR(&l, "path", r->path, r->path_len, DP_ACCESSLOG_PATH_MAX);
    else if (r->head) /* refused before the path was parsed: the raw target, escaped */
        STR(&l, "path", r->head->buf + r->head->url_off, r->head->url_len,
            DP_ACCESSLOG_PATH_MAX);
    if (r->route)
        CPLAIN(&l, "route", r->route->id);
    if (r->upstream)
        CPLAIN(&l, "upstream", r->upstream->name);
    if (r->target)
        CSTR(&l, "target", r->target->url);
    U64(&l, "status", (uint64_t)status);
    MS(&l, "duration_ms", t->start_us && now_us > t->start_us ? now_us - t->start_us : 0);
    if (t->upstream_us)
        MS(&l, "upstream_ms", t->upstream_us);
    U64(&l, "bytes_in", r->req_body_bytes);
    U64(&l, "bytes_out", r->resp_body_bytes);
    PLAIN(&l, "client_ip", r->conn->peer_ip, r->conn->peer_ip_len);
    CSTR(&l, "key_name", r->key_name); /* the key's name from config, never the key */
    U64(&l, "retries", r->attempts);
    CPLAIN(&l, "ratelimit", outcome_name(t->ratelimit));
    CPLAIN(&l, "breaker", outcome_name(t->breaker));
    if (al.worker)
        U64(&l, "worker", al.worker);
    l.cap = cap; /* the reserved tail */
    l.full = false;
    if (l.cut)
        RAW(&l, ",\"truncated\":true");
    RAW(&l, "}\n");
    return l.len;
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
