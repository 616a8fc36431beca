/* metrics.c - the data plane's metrics storage and Prometheus exposition (see metrics.h).
 *
 * Layout of the shared mapping: a header, then one metrics_slot_t per worker. A slot holds
 * the worker's dp_counters_t, the values it mirrors from its own process (server counters,
 * CPU time) with their bases, its gauges, and four fixed-size open-addressed tables:
 *   series    (route, method, status) -> request count      DP_METRICS_SERIES_MAX entries
 *   routes    route -> duration histogram, bytes in/out     DP_METRICS_ROUTES_MAX
 *   upstreams upstream -> latency histogram                 DP_METRICS_UPSTREAMS_MAX
 *   targets   (upstream, target) -> breaker state, health   DP_METRICS_TARGETS_MAX
 * An entry is claimed by the one worker that owns the slot, on first use: it writes the key,
 * then publishes it with a release store of `used`; readers skip entries not yet published.
 * Entries are never freed, so a lookup is a hash of the route id (a few dozen bytes), at most
 * DP_METRICS_PROBE_MAX probes and a memcmp. A key that finds no free entry within the probe
 * limit goes to the table's overflow entry, exported with route/upstream "(overflow)": the
 * series count of a slot can never pass the table size whatever the config does. The route
 * ids of the series come from config (FG_NAME_MAX_LEN chars of [A-Za-z0-9._-]); unmatched
 * requests are counted under route "(none)".
 *
 * A scrape merges every slot's tables into a temporary hash table (heap, freed before the
 * reply is sent) and renders the sums; it runs on the status listener, never on the request
 * path. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <llhttp.h>

#include "breaker.h"
#include "fg_config.h"
#include "fg_prom.h"
#include "fg_time.h"
#include "health.h"
#include "master.h"
#include "ratelimit.h"
#include "server.h"
#include "upstream.h"

#define METRICS_KEY_LEN (FG_NAME_MAX_LEN + 1 + DP_METRICS_TARGET_LEN) /* "upstream target" */
#define METRICS_STATUS_MAX 600 /* statuses 0..599 have their own overflow counter */
#define METRICS_MAGIC 0x46474d31u

static const uint64_t bucket_us[DP_METRICS_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[DP_METRICS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10",
};

typedef struct metrics_key {
    uint32_t hash;
    uint32_t seen;   /* targets: the refresh round that last saw the entry */
    uint16_t status; /* series */
    uint8_t method;  /* series */
    uint8_t used;    /* published (release store by the owner) */
    char name[METRICS_KEY_LEN];
} metrics_key_t;

/* Values of each table are an array of uint64_t after the key, so one merge serves all. */
enum { SERIES_COUNT, SERIES_NVALS };
enum { HIST_BUCKETS = 0, HIST_INF = DP_METRICS_BUCKETS, HIST_COUNT, HIST_SUM_US, HIST_BYTES_IN,
       HIST_BYTES_OUT, HIST_NVALS };
enum { TGT_CLOSED = DP_BREAKER_CLOSED, TGT_OPEN = DP_BREAKER_OPEN,
       TGT_HALF_OPEN = DP_BREAKER_HALF_OPEN, TGT_HAS_BREAKER = DP_BREAKER_STATES, TGT_UP,
       TGT_HAS_HEALTH, TGT_NVALS };

typedef struct series_entry {
    metrics_key_t k;
    uint64_t v[SERIES_NVALS];
} series_entry_t;

typedef struct hist_entry {
    metrics_key_t k;
    uint64_t v[HIST_NVALS];
} hist_entry_t;

typedef struct target_entry {
    metrics_key_t k;
    uint64_t v[TGT_NVALS];
} target_entry_t;

/* Mirrored from the process: the server's counters and CPU time. */
#define SERVER_NFIELDS (sizeof(dp_server_stats_t) / sizeof(uint64_t))
typedef struct mirror {
    dp_server_stats_t server;
    uint64_t cpu_us;
} mirror_t;
#define MIRROR_NFIELDS (sizeof(mirror_t) / sizeof(uint64_t))

typedef struct metrics_slot {
    dp_counters_t counters;
    mirror_t mirror, mirror_base;
    /* gauges of the process in the slot, cleared at attach */
    uint64_t pid;
    uint64_t active_connections;
    uint64_t rss_bytes;
    uint64_t open_fds;
    uint64_t pools, pool_idle;
    int64_t config_version;
    uint64_t apply_us;
    uint64_t redis_state; /* 0 disabled, 1 ok, 2 fallback, 3 unknown */
    uint32_t refresh_round;
    uint64_t status_overflow[METRICS_STATUS_MAX];
    series_entry_t series[DP_METRICS_SERIES_MAX];
    hist_entry_t routes[DP_METRICS_ROUTES_MAX], route_overflow;
    hist_entry_t upstreams[DP_METRICS_UPSTREAMS_MAX], upstream_overflow;
    target_entry_t targets[DP_METRICS_TARGETS_MAX];
} metrics_slot_t;

_Static_assert(sizeof(dp_counters_t) % sizeof(uint64_t) == 0, "dp_counters_t: uint64_t only");
/* The scrape reads each overflow entry as one more element of its table. */
_Static_assert(offsetof(metrics_slot_t, route_overflow) ==
                   offsetof(metrics_slot_t, routes) + DP_METRICS_ROUTES_MAX * sizeof(hist_entry_t),
               "route_overflow follows routes");
_Static_assert(offsetof(metrics_slot_t, upstream_overflow) ==
                   offsetof(metrics_slot_t, upstreams) +
                       DP_METRICS_UPSTREAMS_MAX * sizeof(hist_entry_t),
               "upstream_overflow follows upstreams");
_Static_assert(sizeof(dp_server_stats_t) % sizeof(uint64_t) == 0, "server stats: uint64_t");

typedef struct metrics_shared {
    uint32_t magic;
    uint32_t workers;
    metrics_slot_t slots[];
} metrics_shared_t;

static metrics_slot_t local_slot; /* before attach, and in unit tests */
static metrics_slot_t *own = &local_slot;
static metrics_shared_t *shared;
static size_t shared_len;

/* The request path's shortcut past the tables: which entries a (route id, method, status)
 * or an upstream name went to last time, keyed by the address of the caller's string (the
 * generation's, the same for every request of a route). The address is only a hint: a hit
 * is confirmed by comparing the string with the entry's name, so a string freed with its
 * generation and its address reused for another name only costs a miss. Entries point into
 * `own`: cleared when the process attaches to another slot. */
#define METRICS_MEMO_SIZE 64 /* pow2; a collision only costs a table lookup */
typedef struct metrics_memo {
    const char *name;        /* NULL: empty */
    uint32_t extra;          /* status << 8 | method (series); 0 for upstreams */
    metrics_key_t *series;   /* the series entry (route memo) */
    hist_entry_t *hist;      /* the route's or the upstream's histogram */
} metrics_memo_t;
static metrics_memo_t route_memo[METRICS_MEMO_SIZE], upstream_memo[METRICS_MEMO_SIZE];

static struct {
    struct event *timer;
    const struct dp_server *server;
} refresh;

dp_counters_t *metrics_counters(void)
{
    return &own->counters;
}

int metrics_shared_init(unsigned workers)
{
    if (workers < 1 || workers > MASTER_WORKERS_MAX)
        return -EINVAL;
    if (shared)
        return 0;
    size_t len = sizeof(metrics_shared_t) + (size_t)workers * sizeof(metrics_slot_t);
    /* MAP_NORESERVE: untouched table pages cost nothing; a worker touches what it uses. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    shared = p;
    shared_len = len;
    shared->magic = METRICS_MAGIC;
    shared->workers = workers;
    return 0;
}

void metrics_worker_attach(unsigned index)
{
    if (!shared || index >= shared->workers)
        return;
    own = &shared->slots[index];
    memset(route_memo, 0, sizeof route_memo); /* they point into the previous slot */
    memset(upstream_memo, 0, sizeof upstream_memo);
    uint64_t *cur = (uint64_t *)&own->mirror, *base = (uint64_t *)&own->mirror_base;
    for (size_t i = 0; i < MIRROR_NFIELDS; i++) {
        base[i] += cur[i];
        cur[i] = 0;
    }
    own->active_connections = own->rss_bytes = own->open_fds = 0;
    own->pools = own->pool_idle = own->apply_us = 0;
    own->config_version = 0;
    own->redis_state = 0;
    own->refresh_round++; /* the previous process's target gauges are stale */
    own->pid = (uint64_t)getpid();
}

/* ---- recording (request path) ---------------------------------------------------------- */

/* FNV-1a over the name, mixed with the rest of the key; also measures the name. */
static uint32_t key_hash(const char *name, size_t *len, uint32_t extra)
{
    uint32_t h = 2166136261u;
    size_t n = 0;
    for (; name[n] && n < METRICS_KEY_LEN - 1; n++)
        h = (h ^ (uint8_t)name[n]) * 16777619u;
    *len = n;
    h ^= extra * 2654435761u;
    return h ? h : 1;
}

static bool key_matches(const metrics_key_t *k, uint32_t h, const char *name, size_t len,
                        uint16_t status, uint8_t method)
{
    return k->hash == h && k->status == status && k->method == method &&
           memcmp(k->name, name, len) == 0 && k->name[len] == '\0';
}

static void key_claim(metrics_key_t *k, uint32_t h, const char *name, size_t len,
                      uint16_t status, uint8_t method)
{
    k->hash = h;
    k->status = status;
    k->method = method;
    memcpy(k->name, name, len);
    k->name[len] = '\0';
    __atomic_store_n(&k->used, 1, __ATOMIC_RELEASE);
}

/* The entry for the key in a table of `cap` (a power of two) entries of `stride` bytes, or
 * NULL when the probe limit is reached. */
static metrics_key_t *table_find(void *table, size_t cap, size_t stride, const char *name,
                                 uint16_t status, uint8_t method)
{
    size_t len;
    uint32_t h = key_hash(name, &len, (uint32_t)status << 8 | method);
    for (size_t i = 0; i < DP_METRICS_PROBE_MAX && i < cap; i++) {
        metrics_key_t *k = (metrics_key_t *)((char *)table + ((h + i) & (cap - 1)) * stride);
        if (!k->used) {
            key_claim(k, h, name, len, status, method);
            return k;
        }
        if (key_matches(k, h, name, len, status, method))
            return k;
    }
    return NULL;
}

static void hist_observe(hist_entry_t *e, uint64_t us)
{
    size_t b = 0;
    while (b < DP_METRICS_BUCKETS && us > bucket_us[b])
        b++;
    e->v[HIST_BUCKETS + b]++;
    e->v[HIST_COUNT]++;
    e->v[HIST_SUM_US] += us;
}

static hist_entry_t *hist_find(hist_entry_t *tab, size_t cap, hist_entry_t *overflow,
                               const char *name)
{
    metrics_key_t *k = table_find(tab, cap, sizeof(*tab), name, 0, 0);
    if (k)
        return (hist_entry_t *)k;
    if (!overflow->k.used)
        key_claim(&overflow->k, 1, "(overflow)", 10, 0, 0);
    return overflow;
}

static metrics_memo_t *memo_slot(metrics_memo_t *memo, const char *name, uint32_t extra)
{
    uint64_t x = ((uint64_t)(uintptr_t)name ^ extra) * 0x9e3779b97f4a7c15u;
    return &memo[x >> 58]; /* the top 6 bits: METRICS_MEMO_SIZE entries */
}
_Static_assert(METRICS_MEMO_SIZE == 64, "memo_slot takes 6 bits");

/* The memo's entry for (name, extra) when it is confirmed, else NULL. */
static metrics_memo_t *memo_hit(metrics_memo_t *m, const char *name, uint32_t extra,
                                const metrics_key_t *k)
{
    return m->name == name && m->extra == extra && strcmp(k->name, name) == 0 ? m : NULL;
}

void metrics_request(const char *route, unsigned method, int status, uint64_t duration_us,
                     uint64_t bytes_in, uint64_t bytes_out, const char *upstream,
                     uint64_t upstream_us)
{
    metrics_slot_t *s = own;
    const char *rname = route ? route : "(none)";
    uint16_t st = status >= 0 && status < METRICS_STATUS_MAX ? (uint16_t)status : 0;
    uint32_t extra = (uint32_t)st << 8 | (uint8_t)method;
    metrics_memo_t *m = memo_slot(route_memo, rname, extra);
    metrics_key_t *k;
    hist_entry_t *r;
    if (m->name && memo_hit(m, rname, extra, m->series)) {
        k = m->series;
        r = m->hist;
    } else {
        k = table_find(s->series, DP_METRICS_SERIES_MAX, sizeof(s->series[0]), rname, st,
                       (uint8_t)method);
        r = hist_find(s->routes, DP_METRICS_ROUTES_MAX, &s->route_overflow, rname);
        /* Overflowed keys are not remembered: their entries' names are not `rname`. */
        if (k && r != &s->route_overflow)
            *m = (metrics_memo_t){.name = rname, .extra = extra, .series = k, .hist = r};
    }
    if (k)
        ((series_entry_t *)k)->v[SERIES_COUNT]++;
    else
        s->status_overflow[st]++;

    hist_observe(r, duration_us);
    r->v[HIST_BYTES_IN] += bytes_in;
    r->v[HIST_BYTES_OUT] += bytes_out;
    if (upstream && upstream_us) {
        m = memo_slot(upstream_memo, upstream, 0);
        if (m->name && memo_hit(m, upstream, 0, &m->hist->k)) {
            r = m->hist;
        } else {
            r = hist_find(s->upstreams, DP_METRICS_UPSTREAMS_MAX, &s->upstream_overflow,
                          upstream);
            if (r != &s->upstream_overflow)
                *m = (metrics_memo_t){.name = upstream, .hist = r};
        }
        hist_observe(r, upstream_us);
    }
}

void metrics_generation(int64_t version)
{
    own->counters.generation_swaps++;
    own->config_version = version;
}

void metrics_apply_duration(uint64_t us)
{
    own->apply_us = us;
}

/* ---- the worker's own gauges (timer and scrape) ---------------------------------------- */

static void on_target_breaker(const char *upstream, const char *target, int state, void *arg)
{
    metrics_slot_t *s = arg;
    char key[METRICS_KEY_LEN];
    snprintf(key, sizeof key, "%s %s", upstream, target);
    target_entry_t *e = (target_entry_t *)table_find(s->targets, DP_METRICS_TARGETS_MAX,
                                                     sizeof(s->targets[0]), key, 0, 0);
    if (!e || state < 0 || state >= DP_BREAKER_STATES)
        return;
    if (e->k.seen != s->refresh_round)
        memset(e->v, 0, sizeof e->v);
    for (int i = 0; i < DP_BREAKER_STATES; i++)
        e->v[i] = i == state;
    e->v[TGT_HAS_BREAKER] = 1;
    e->k.seen = s->refresh_round;
}

static void on_target_health(const char *upstream, const char *target, bool up, void *arg)
{
    metrics_slot_t *s = arg;
    char key[METRICS_KEY_LEN];
    snprintf(key, sizeof key, "%s %s", upstream, target);
    target_entry_t *e = (target_entry_t *)table_find(s->targets, DP_METRICS_TARGETS_MAX,
                                                     sizeof(s->targets[0]), key, 0, 0);
    if (!e)
        return;
    if (e->k.seen != s->refresh_round)
        memset(e->v, 0, sizeof e->v);
    e->v[TGT_UP] = up;
    e->v[TGT_HAS_HEALTH] = 1;
    e->k.seen = s->refresh_round;
}

static void refresh_own(void)
{
    metrics_slot_t *s = own;
    fg_proc_stats_t ps;

    if (refresh.server) {
        s->mirror.server = *server_stats(refresh.server);
        s->active_connections = server_active_connections(refresh.server);
    }
    fg_proc_stats(&ps);
    s->mirror.cpu_us = ps.cpu_us;
    s->rss_bytes = ps.rss_bytes;
    s->open_fds = ps.open_fds;
    size_t pools = 0, idle = 0;
    upstream_pool_totals(&pools, &idle);
    s->pools = pools;
    s->pool_idle = idle;
    const char *rs = ratelimit_redis_state();
    s->redis_state = !rs ? 3 : strcmp(rs, "disabled") == 0 ? 0 : strcmp(rs, "ok") == 0 ? 1
                   : strcmp(rs, "fallback") == 0 ? 2 : 3;
    /* A new round: entries the modules no longer report stop being exported. */
    s->refresh_round++;
    breaker_foreach(on_target_breaker, s);
    health_foreach(on_target_health, s);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    refresh_own();
}

int metrics_start(struct event_base *base, const struct dp_server *server)
{
    struct timeval tv = {DP_METRICS_REFRESH_MS / 1000, (DP_METRICS_REFRESH_MS % 1000) * 1000};
    refresh.server = server;
    refresh.timer = event_new(base, -1, EV_PERSIST, on_refresh, NULL);
    if (!refresh.timer || event_add(refresh.timer, &tv) < 0)
        return -ENOMEM;
    refresh_own();
    return 0;
}

void metrics_stop(void)
{
    if (refresh.timer)
        event_free(refresh.timer);
    refresh.timer = NULL;
    refresh.server = NULL;
}

/* ---- scrape: merge the slots --------------------------------------------------------- */

typedef struct merged {
    const metrics_key_t *k; /* borrowed from a slot (the mapping outlives the scrape) */
    uint64_t *v;            /* nvals values in the merge's value array */
} merged_t;

typedef struct merge {
    merged_t *tab;
    uint64_t *vals;
    size_t cap, n, nvals;
} merge_t;

static int merge_init(merge_t *m, size_t entries, size_t nvals)
{
    size_t cap = 16;
    while (cap < entries * 2)
        cap <<= 1;
    m->tab = calloc(cap, sizeof *m->tab);
    m->vals = calloc(entries ? entries : 1, nvals * sizeof(uint64_t));
    m->cap = cap;
    m->n = 0;
    m->nvals = nvals;
    return m->tab && m->vals ? 0 : -ENOMEM;
}

static void merge_free(merge_t *m)
{
    free(m->tab);
    free(m->vals);
}

static void merge_add(merge_t *m, const metrics_key_t *k, const uint64_t *v)
{
    size_t i = k->hash & (m->cap - 1);
    for (;; i = (i + 1) & (m->cap - 1)) {
        merged_t *e = &m->tab[i];
        if (!e->k) {
            e->k = k;
            e->v = m->vals + m->n++ * m->nvals;
            break;
        }
        if (e->k->hash == k->hash && e->k->status == k->status && e->k->method == k->method &&
            strcmp(e->k->name, k->name) == 0)
            break;
    }
    for (size_t j = 0; j < m->nvals; j++)
        m->tab[i].v[j] += v[j];
}

/* Every published entry of one table across all slots (`offset` locates the table in a
 * slot). `round` entries: targets, only those seen in their slot's latest round. */
static int merge_table(merge_t *m, size_t offset, size_t cap, size_t stride, size_t nvals,
                       bool by_round)
{
    unsigned workers = shared ? shared->workers : 1;
    size_t entries = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && merge_init(m, entries, nvals) < 0)
            return -ENOMEM;
        for (unsigned w = 0; w < workers; w++) {
            metrics_slot_t *s = shared ? &shared->slots[w] : own;
            const char *base = (const char *)s + offset;
            for (size_t i = 0; i < cap; i++) {
                const metrics_key_t *k = (const metrics_key_t *)(base + i * stride);
                if (!__atomic_load_n(&k->used, __ATOMIC_ACQUIRE))
                    continue;
                if (by_round && k->seen != s->refresh_round)
                    continue;
                if (pass == 0)
                    entries++;
                else
                    merge_add(m, k, (const uint64_t *)(k + 1));
            }
        }
    }
    return 0;
}

/* ---- rendering --------------------------------------------------------------------------- */

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct evbuffer *o, const char *name, const char *labels, uint64_t v)
{
    evbuffer_add_printf(o, "%s%s%s%s %" PRIu64 "\n", name, labels ? "{" : "", labels ? labels : "",
                        labels ? "}" : "", v);
}

static void counter(struct evbuffer *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    sample(o, name, NULL, v);
}

static void gauge(struct evbuffer *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "gauge", help);
    sample(o, name, NULL, v);
}

static void sum_slots(dp_counters_t *c, mirror_t *mirror, uint64_t *gauges, size_t n_gauges)
{
    unsigned workers = shared ? shared->workers : 1;
    memset(c, 0, sizeof *c);
    memset(mirror, 0, sizeof *mirror);
    for (unsigned w = 0; w < workers; w++) {
        const metrics_slot_t *s = shared ? &shared->slots[w] : own;
        const uint64_t *src = (const uint64_t *)&s->counters;
        uint64_t *dst = (uint64_t *)c;
        for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)
            dst[i] += src[i];
        const uint64_t *mc = (const uint64_t *)&s->mirror, *mb = (const uint64_t *)&s->mirror_base;
        uint64_t *md = (uint64_t *)mirror;
        for (size_t i = 0; i < MIRROR_NFIELDS; i++)
            md[i] += mc[i] + mb[i];
        if (n_gauges >= 6) {
            gauges[0] += s->active_connections;
            gauges[1] += s->rss_bytes;
            gauges[2] += s->open_fds;
            gauges[3] += s->pools;
            gauges[4] += s->pool_idle;
            gauges[5] += s->redis_state == 2;
        }
    }
}

static void render_hist(struct evbuffer *o, const char *name, const char *label,
                        const merge_t *m)
{
    char lv[METRICS_KEY_LEN * 2], labels[METRICS_KEY_LEN * 2 + 64];
    for (size_t i = 0; i < m->cap; i++) {
        const merged_t *e = &m->tab[i];
        if (!e->k)
            continue;
        fg_prom_label(lv, sizeof lv, e->k->name, sizeof e->k->name);
        uint64_t cum = 0;
        for (size_t b = 0; b <= DP_METRICS_BUCKETS; b++) {
            cum += e->v[HIST_BUCKETS + b];
            snprintf(labels, sizeof labels, "%s=\"%s\",le=\"%s\"", label, lv,
                     b < DP_METRICS_BUCKETS ? bucket_le[b] : "+Inf");
            evbuffer_add_printf(o, "%s_bucket{%s} %" PRIu64 "\n", name, labels, cum);
        }
        evbuffer_add_printf(o, "%s_sum{%s=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", name, label, lv,
                            e->v[HIST_SUM_US] / 1000000u, e->v[HIST_SUM_US] % 1000000u);
        evbuffer_add_printf(o, "%s_count{%s=\"%s\"} %" PRIu64 "\n", name, label, lv,
                            e->v[HIST_COUNT]);
    }
}

static void render_route_bytes(struct evbuffer *o, const char *name, const char *help,
                               const merge_t *m, size_t field)
{
    char lv[METRICS_KEY_LEN * 2];
    family(o, name, "counter", help);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->tab[i].k)
            continue;
        fg_prom_label(lv, sizeof lv, m->tab[i].k->name, sizeof m->tab[i].k->name);
        evbuffer_add_printf(o, "%s{route=\"%s\"} %" PRIu64 "\n", name, lv, m->tab[i].v[field]);
    }
}

static int render_series(struct evbuffer *o)
{
    merge_t m;
    char lv[METRICS_KEY_LEN * 2];
    if (merge_table(&m, offsetof(metrics_slot_t, series), DP_METRICS_SERIES_MAX,
                    sizeof(series_entry_t), SERIES_NVALS, false) < 0) {
        merge_free(&m);
        return -ENOMEM;
    }
    family(o, "http_requests_total", "counter",
           "Requests finished, by method, route id (from config) and status.");
    for (size_t i = 0; i < m.cap; i++) {
        const merged_t *e = &m.tab[i];
        if (!e->k)
            continue;
        fg_prom_label(lv, sizeof lv, e->k->name, sizeof e->k->name);
        evbuffer_add_printf(o, "http_requests_total{method=\"%s\",route=\"%s\",status=\"%u\"} "
                            "%" PRIu64 "\n", llhttp_method_name((llhttp_method_t)e->k->method),
                            lv, (unsigned)e->k->status, e->v[SERIES_COUNT]);
    }
    merge_free(&m);
    unsigned workers = shared ? shared->workers : 1;
    for (unsigned st = 0; st < METRICS_STATUS_MAX; st++) {
        uint64_t n = 0;
        for (unsigned w = 0; w < workers; w++)
            n += (shared ? &shared->slots[w] : own)->status_overflow[st];
        if (n)
            evbuffer_add_printf(o, "http_requests_total{method=\"(overflow)\","
                                   "route=\"(overflow)\",status=\"%u\"} %" PRIu64 "\n", st, n);
    }
    return 0;
}

static int render_histograms(struct evbuffer *o)
{
    merge_t routes, ups;
    int rc = -ENOMEM;
    memset(&ups, 0, sizeof ups);
    if (merge_table(&routes, offsetof(metrics_slot_t, routes), DP_METRICS_ROUTES_MAX + 1,
                    sizeof(hist_entry_t), HIST_NVALS, false) < 0 ||
        merge_table(&ups, offsetof(metrics_slot_t, upstreams), DP_METRICS_UPSTREAMS_MAX + 1,
                    sizeof(hist_entry_t), HIST_NVALS, false) < 0)
        goto out;
    /* route_overflow / upstream_overflow follow their tables: cap + 1 covers them. */
    family(o, "http_request_duration_seconds", "histogram",
           "Time from request head to the last response byte, by route id.");
    render_hist(o, "http_request_duration_seconds", "route", &routes);
    family(o, "flexgate_upstream_response_seconds", "histogram",
           "Time from dispatch (target picked) to the upstream's response head, by upstream.");
    render_hist(o, "flexgate_upstream_response_seconds", "upstream", &ups);
    render_route_bytes(o, "flexgate_received_bytes_total",
                       "Request body bytes received from clients, by route id.", &routes,
                       HIST_BYTES_IN);
    render_route_bytes(o, "flexgate_sent_bytes_total",
                       "Response body bytes sent to clients, by route id.", &routes,
                       HIST_BYTES_OUT);
    rc = 0;
out:
    merge_free(&routes);
    merge_free(&ups);
    return rc;
}

static int render_targets(struct evbuffer *o)
{
    static const char *const state_names[DP_BREAKER_STATES] = {"closed", "open", "half_open"};
    merge_t m;
    char up[METRICS_KEY_LEN * 2], tg[METRICS_KEY_LEN * 2];
    if (merge_table(&m, offsetof(metrics_slot_t, targets), DP_METRICS_TARGETS_MAX,
                    sizeof(target_entry_t), TGT_NVALS, true) < 0) {
        merge_free(&m);
        return -ENOMEM;
    }
    family(o, "flexgate_circuit_breaker_state", "gauge",
           "Workers whose circuit breaker for the target is in the state.");
    for (size_t i = 0; i < m.cap; i++) {
        const merged_t *e = &m.tab[i];
        const char *sp = e->k ? strchr(e->k->name, ' ') : NULL;
        if (!sp || !e->v[TGT_HAS_BREAKER])
            continue;
        fg_prom_label(up, sizeof up, e->k->name, (size_t)(sp - e->k->name));
        fg_prom_label(tg, sizeof tg, sp + 1, strlen(sp + 1));
        for (int s = 0; s < DP_BREAKER_STATES; s++)
            evbuffer_add_printf(o, "flexgate_circuit_breaker_state{upstream=\"%s\",target=\"%s\","
                                "state=\"%s\"} %" PRIu64 "\n", up, tg, state_names[s], e->v[s]);
    }
    family(o, "flexgate_upstream_target_healthy", "gauge",
           "Workers whose health checks see the target up.");
    for (size_t i = 0; i < m.cap; i++) {
        const merged_t *e = &m.tab[i];
        const char *sp = e->k ? strchr(e->k->name, ' ') : NULL;
        if (!sp || !e->v[TGT_HAS_HEALTH])
            continue;
        fg_prom_label(up, sizeof up, e->k->name, (size_t)(sp - e->k->name));
        fg_prom_label(tg, sizeof tg, sp + 1, strlen(sp + 1));
        evbuffer_add_printf(o, "flexgate_upstream_target_healthy{upstream=\"%s\",target=\"%s\"} "
                            "%" PRIu64 "\n", up, tg, e->v[TGT_UP]);
    }
    merge_free(&m);
    return 0;
}

static void render_labelled(struct evbuffer *o, const char *name, const char *type,
                            const char *help, const char *label, const char *const *values,
                            const uint64_t *counts, size_t n)
{
    family(o, name, type, help);
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(o, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, values[i], counts[i]);
}

static void render_counters(struct evbuffer *o, const dp_counters_t *c, const mirror_t *mr,
                            const uint64_t *g)
{
    const dp_server_stats_t *sv = &mr->server;
    static const char *const timeout_kinds[] = {"header", "client", "idle", "connect",
                                                "upstream", "request"};
    uint64_t timeouts[] = {sv->header_timeouts, sv->client_timeouts, sv->idle_timeouts,
                           sv->connect_timeouts, sv->upstream_timeouts, sv->request_timeouts};
    static const char *const refusal_kinds[] = {"bad_request", "not_implemented",
                                                "version", "head_too_large", "body_too_large"};
    uint64_t refusals[] = {sv->bad_requests, sv->not_implemented, sv->version_refused,
                           sv->head_too_large, sv->body_too_large};
    static const char *const auth_kinds[] = {"missing", "invalid", "forbidden", "replay"};
    uint64_t auth[] = {c->auth_missing, c->auth_invalid, c->auth_forbidden, c->auth_replays};
    static const char *const guard_kinds[] = {"host", "path", "header"};
    uint64_t guard[] = {c->hosts_refused, c->paths_refused, c->headers_refused};
    static const char *const breaker_states[] = {"closed", "open", "half_open"};

    gauge(o, "flexgate_client_connections_active", "Client connections open now.", g[0]);
    counter(o, "flexgate_client_connections_total", "Client connections accepted.",
            sv->connections_accepted);
    counter(o, "flexgate_client_connections_shed_total",
            "Client connections refused with 503 over proxy.maxConnections.",
            sv->connections_shed);
    gauge(o, "flexgate_upstream_pools", "Upstream connection pools (one per target address).",
          g[3]);
    gauge(o, "flexgate_upstream_pool_idle_connections",
          "Idle keep-alive upstream connections in the pools.", g[4]);
    render_labelled(o, "flexgate_timeouts_total", "counter", "Requests or connections ended "
                    "by a timeout, by kind.", "kind", timeout_kinds, timeouts, 6);
    render_labelled(o, "flexgate_refused_requests_total", "counter",
                    "Requests refused for their framing or size, by reason.", "reason",
                    refusal_kinds, refusals, 5);
    counter(o, "flexgate_retries_total", "Upstream attempts after the first.", c->retries);
    counter(o, "flexgate_retry_budget_exhausted_total", "Retries refused by a retry budget.",
            c->retries_budget_exhausted);
    render_labelled(o, "flexgate_auth_failures_total", "counter",
                    "Requests refused by API key authentication, by reason.", "reason",
                    auth_kinds, auth, 4);
    counter(o, "flexgate_ssrf_blocked_total",
            "Requests refused: the upstream address is in a blocked range.", c->ssrf_blocked);
    render_labelled(o, "flexgate_guard_refused_total", "counter",
                    "Requests refused by the security guard, by reason.", "reason",
                    guard_kinds, guard, 3);
    counter(o, "flexgate_response_headers_dropped_total",
            "Upstream response headers dropped as unsafe.", c->resp_headers_dropped);
    family(o, "flexgate_ratelimit_decisions_total", "counter",
           "Rate-limit decisions, by decision and backend.");
    for (int b = 0; b < DP_RL_BACKENDS; b++) {
        const char *be = b == DP_RL_BACKEND_LOCAL ? "local" : "redis";
        evbuffer_add_printf(o, "flexgate_ratelimit_decisions_total{decision=\"allowed\","
                            "backend=\"%s\"} %" PRIu64 "\n", be, c->ratelimit_allowed[b]);
        evbuffer_add_printf(o, "flexgate_ratelimit_decisions_total{decision=\"limited\","
                            "backend=\"%s\"} %" PRIu64 "\n", be, c->ratelimit_limited[b]);
    }
    counter(o, "flexgate_ratelimit_redis_errors_total", "Redis calls that failed or timed out.",
            c->ratelimit_redis_errors);
    counter(o, "flexgate_ratelimit_fallbacks_total",
            "Switches from Redis to local rate-limit buckets.", c->ratelimit_fallbacks);
    gauge(o, "flexgate_ratelimit_redis_fallback",
          "Workers rate limiting with local buckets because Redis is unavailable.", g[5]);
    counter(o, "flexgate_circuit_breaker_rejected_total",
            "Requests refused because a circuit breaker was open.", c->breaker_rejected);
    render_labelled(o, "flexgate_circuit_breaker_transitions_total", "counter",
                    "Circuit breaker transitions, by the state entered.", "state",
                    breaker_states, c->breaker_transitions, DP_BREAKER_STATES);
    counter(o, "flexgate_shed_requests_total", "Requests shed (503) under overload.",
            c->shed_overload);
    counter(o, "flexgate_health_transitions_total", "Targets marked up or down.",
            c->health_transitions);
    counter(o, "flexgate_dns_resolutions_total", "Upstream names resolved.",
            c->dns_resolutions);
    counter(o, "flexgate_config_generation_swaps_total", "Config generations installed.",
            c->generation_swaps);
    counter(o, "flexgate_accesslog_lines_total", "Access log lines written.",
            c->accesslog_lines);
    counter(o, "flexgate_accesslog_dropped_lines_total",
            "Access log lines dropped because the log sink stalled or failed.",
            c->accesslog_dropped);
    counter(o, "flexgate_accesslog_sampled_out_total",
            "Access log lines left out by logging.sampling.", c->accesslog_sampled_out);
    counter(o, "flexgate_request_ids_generated_total",
            "Requests without a well-formed request id, given a generated one.",
            c->request_ids_generated);
    counter(o, "flexgate_traces_started_total",
            "Requests without a valid traceparent: a trace started here.", c->traces_started);
    family(o, "process_cpu_seconds_total", "counter",
           "User and system CPU time of all workers, in seconds.");
    evbuffer_add_printf(o, "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n",
                        mr->cpu_us / 1000000u, mr->cpu_us % 1000000u);
    gauge(o, "process_resident_memory_bytes", "Resident memory of all workers, in bytes.", g[1]);
    gauge(o, "process_open_fds", "Open file descriptors of all workers.", g[2]);
}

int64_t metrics_config_version(void)
{
    unsigned workers = shared ? shared->workers : 1;
    int64_t version = -1;
    for (unsigned w = 0; w < workers; w++) {
        const metrics_slot_t *s = shared ? &shared->slots[w] : own;
        if (!s->pid && shared)
            continue; /* not started yet: it does not listen either */
        if (version < 0 || s->config_version < version)
            version = s->config_version;
    }
    return version < 0 ? 0 : version;
}

/* The config version every live worker serves: the lowest (a worker that lags shows). */
static void render_config(struct evbuffer *o)
{
    unsigned workers = shared ? shared->workers : 1;
    uint64_t apply_us = 0;
    for (unsigned w = 0; w < workers; w++) {
        const metrics_slot_t *s = shared ? &shared->slots[w] : own;
        if ((s->pid || !shared) && s->apply_us > apply_us)
            apply_us = s->apply_us;
    }
    gauge(o, "flexgate_config_version",
          "Config version applied (the lowest across workers; 0 = none).",
          (uint64_t)metrics_config_version());
    family(o, "flexgate_config_apply_duration_seconds", "gauge",
           "Time the last snapshot apply took (decode, validate, build, swap), slowest worker.");
    evbuffer_add_printf(o, "flexgate_config_apply_duration_seconds %" PRIu64 ".%06" PRIu64 "\n",
                        apply_us / 1000000u, apply_us % 1000000u);
    gauge(o, "flexgate_workers", "Worker processes of this data plane.", workers);
}

int metrics_render(struct evbuffer *out)
{
    dp_counters_t c;
    mirror_t mirror;
    uint64_t g[6] = {0};

    refresh_own();
    sum_slots(&c, &mirror, g, 6);
    if (render_series(out) < 0 || render_histograms(out) < 0 || render_targets(out) < 0)
        return -ENOMEM;
    render_counters(out, &c, &mirror, g);
    render_config(out);
    return 0;
}
