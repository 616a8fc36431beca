/* balancer.c - target choice and the per-target state table (see balancer.h).
 *
 * The table is a chained hash on (upstream name, target URL) that only grows; a build marks
 * the entries it references with its epoch, which is how balancer_foreach_target() and the
 * health checker know what the current config holds. The policies scan a few hundred targets
 * at most (FG_MAX_TARGETS), touching two words per target: cheaper than keeping heaps in step
 * with health and breaker changes. */
#include "balancer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fg_log.h"
#include "fg_time.h"
#include "metrics.h"
#include "overload.h"

#define TABLE_BUCKETS_INIT 64

static struct {
    bal_target_t **buckets;
    size_t n_buckets, n;
    uint64_t epoch;  /* of the newest build */
    uint64_t rng;    /* xorshift64* state */
} tab;

/* ---- small helpers --------------------------------------------------------------------- */

static uint32_t fnv1a(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* murmur3's finaliser: FNV alone clusters on similar keys ("10.0.0.1", "10.0.0.2"). */
static uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static uint32_t rand32(void)
{
    if (tab.rng == 0)
        tab.rng = (fg_now_ms() << 20) ^ ((uint64_t)getpid() << 1) ^ 0x9e3779b97f4a7c15ull;
    tab.rng ^= tab.rng >> 12;
    tab.rng ^= tab.rng << 25;
    tab.rng ^= tab.rng >> 27;
    return (uint32_t)((tab.rng * 0x2545f4914f6cdd1dull) >> 32);
}

static bool tried_has(const uint64_t *tried, int i)
{
    return tried && (tried[i / 64] >> (i % 64)) & 1u;
}

/* ---- the table ------------------------------------------------------------------------- */

static uint32_t key_hash(const char *upstream, const char *url)
{
    uint32_t h = fnv1a(2166136261u, upstream, strlen(upstream));
    h = fnv1a(h, "\n", 1);
    return fnv1a(h, url, strlen(url));
}

static int table_grow(void)
{
    size_t nb = tab.n_buckets ? tab.n_buckets * 2 : TABLE_BUCKETS_INIT;
    bal_target_t **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < tab.n_buckets; i++) {
        bal_target_t *t = tab.buckets[i];
        while (t) {
            bal_target_t *next = t->next;
            t->next = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    free(tab.buckets);
    tab.buckets = b;
    tab.n_buckets = nb;
    return 0;
}

static bal_target_t *table_get(const char *upstream, const char *url)
{
    uint32_t h = key_hash(upstream, url);
    if (tab.n_buckets) {
        for (bal_target_t *t = tab.buckets[h & (tab.n_buckets - 1)]; t; t = t->next)
            if (t->hash == h && strcmp(t->upstream, upstream) == 0 && strcmp(t->url, url) == 0)
                return t;
    }
    if (tab.n >= tab.n_buckets && table_grow() < 0)
        return NULL;
    bal_target_t *t = calloc(1, sizeof *t); /* owned by the table until balancer_shutdown */
    if (!t)
        return NULL;
    t->upstream = strdup(upstream);
    t->url = strdup(url);
    if (!t->upstream || !t->url) {
        free(t->upstream);
        free(t->url);
        free(t);
        return NULL;
    }
    t->hash = h;
    breaker_reset(&t->breaker);
    t->next = tab.buckets[h & (tab.n_buckets - 1)];
    tab.buckets[h & (tab.n_buckets - 1)] = t;
    tab.n++;
    return t;
}

/* ---- building a set -------------------------------------------------------------------- */

typedef struct ring_point {
    uint32_t hash;
    uint16_t target;
} ring_point_t;

static int compare_points(const void *a, const void *b)
{
    const ring_point_t *pa = a, *pb = b;
    if (pa->hash != pb->hash)
        return pa->hash < pb->hash ? -1 : 1;
    return (int)pa->target - (int)pb->target;
}

/* Each target gets points in proportion to its weight (at least one), placed by hashing its
 * URL and the point's number: the same targets give the same ring in every process. */
static int ring_build(bal_upstream_t *bu)
{
    const fg_upstream_t *u = bu->conf;
    uint64_t sum_w = 0;
    for (size_t i = 0; i < u->n_targets; i++)
        sum_w += u->targets[i].weight;
    size_t total = 0;
    for (size_t i = 0; i < u->n_targets; i++) {
        uint64_t pts = (uint64_t)BAL_RING_POINTS * u->n_targets * u->targets[i].weight / sum_w;
        total += pts ? pts : 1;
    }
    ring_point_t *pts = malloc(total * sizeof *pts); /* scratch, freed below */
    bu->ring_hash = malloc(total * sizeof *bu->ring_hash);
    bu->ring_target = malloc(total * sizeof *bu->ring_target);
    if (!pts || !bu->ring_hash || !bu->ring_target) {
        free(pts);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < u->n_targets; i++) {
        uint64_t n = (uint64_t)BAL_RING_POINTS * u->n_targets * u->targets[i].weight / sum_w;
        uint32_t base = fnv1a(2166136261u, u->targets[i].url, strlen(u->targets[i].url));
        for (uint64_t p = 0; p < (n ? n : 1); p++) {
            pts[k].hash = mix32(base ^ mix32((uint32_t)p * 0x9e3779b9u + (uint32_t)i));
            pts[k++].target = (uint16_t)i;
        }
    }
    qsort(pts, total, sizeof *pts, compare_points);
    for (size_t i = 0; i < total; i++) {
        bu->ring_hash[i] = pts[i].hash;
        bu->ring_target[i] = pts[i].target;
    }
    bu->ring_n = total;
    free(pts);
    return 0;
}

static int compare_upstream_name(const void *a, const void *b)
{
    const fg_upstream_t *ua = *(const fg_upstream_t *const *)a;
    const fg_upstream_t *ub = *(const fg_upstream_t *const *)b;
    return strcmp(ua->name, ub->name);
}

static int compare_key_upstream(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const fg_upstream_t *const *)elem)->name);
}

/* Point each upstream at its fallback (one level: a fallback's own fallback is not followed). */
static int resolve_fallbacks(bal_set_t *s, const fg_config_t *cfg)
{
    const fg_upstream_t **sorted = malloc(cfg->n_upstreams * sizeof *sorted); /* scratch */
    if (!sorted)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        sorted[i] = &cfg->upstreams[i];
    qsort(sorted, cfg->n_upstreams, sizeof *sorted, compare_upstream_name);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        const char *fb = cfg->upstreams[i].fallback;
        if (!fb)
            continue;
        const fg_upstream_t *const *hit =
            bsearch(fb, sorted, cfg->n_upstreams, sizeof *sorted, compare_key_upstream);
        if (hit && *hit != &cfg->upstreams[i])
            s->ups[i].fallback = &s->ups[*hit - cfg->upstreams];
    }
    free(sorted);
    return 0;
}

static int build_upstream(bal_upstream_t *bu, const fg_upstream_t *u)
{
    bu->conf = u;
    bu->targets = calloc(u->n_targets, sizeof *bu->targets); /* owned by the set */
    if (!bu->targets)
        return -ENOMEM;
    for (size_t i = 0; i < u->n_targets; i++) {
        bal_target_t *t = table_get(u->name, u->targets[i].url);
        if (!t)
            return -ENOMEM;
        if (memcmp(&t->breaker_conf, &u->circuit_breaker, sizeof t->breaker_conf) != 0) {
            t->breaker_conf = u->circuit_breaker; /* new settings: start closed */
            breaker_reset(&t->breaker);
        }
        t->health_conf = u->health_check;
        t->health_conf.path = NULL; /* the config's memory: only health.c's copy is kept */
        t->epoch = tab.epoch;
        bu->targets[i] = t;
        if (health_configure(t, u, &u->targets[i]) < 0)
            fg_log(FG_LOG_WARN, "health checks not started: out of memory", "upstream", u->name,
                   NULL);
    }
    if (u->load_balancing == FG_LB_CONSISTENT_HASH && u->n_targets > 1)
        return ring_build(bu);
    return 0;
}

bal_set_t *balancer_build(const fg_config_t *cfg, fg_error_t *err)
{
    bal_set_t *s = calloc(1, sizeof *s); /* owned by the generation: balancer_free */
    if (!s)
        goto fail;
    tab.epoch++;
    if (cfg->n_upstreams) {
        s->ups = calloc(cfg->n_upstreams, sizeof *s->ups);
        if (!s->ups)
            goto fail;
    }
    s->n_ups = cfg->n_upstreams;
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (build_upstream(&s->ups[i], &cfg->upstreams[i]) < 0)
            goto fail;
    if (cfg->n_upstreams && resolve_fallbacks(s, cfg) < 0)
        goto fail;
    if (overload_thresholds(cfg, &s->shed_at) < 0)
        goto fail;
    /* Targets the new config dropped stop being checked. */
    for (size_t b = 0; b < tab.n_buckets; b++)
        for (bal_target_t *t = tab.buckets[b]; t; t = t->next)
            if (t->epoch != tab.epoch)
                health_stop(t);
    return s;
fail:
    balancer_free(s);
    fg_error_setc(err, -ENOMEM, NULL, "out of memory building the balancer");
    return NULL;
}

void balancer_free(bal_set_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_ups; i++) {
        free(s->ups[i].targets);
        free(s->ups[i].ring_hash);
        free(s->ups[i].ring_target);
    }
    free(s->ups);
    free(s->shed_at);
    free(s);
}

/* ---- picking --------------------------------------------------------------------------- */

/* How picky a pass is: the first pass wants an untried, healthy target; later passes settle. */
enum { PASS_STRICT = 0, PASS_TRIED, PASS_UNHEALTHY, PASSES };

static bool eligible(const bal_upstream_t *bu, int i, int pass, const uint64_t *tried,
                     uint64_t now)
{
    bal_target_t *t = bu->targets[i];
    if (pass == PASS_STRICT && tried_has(tried, i))
        return false;
    if (pass <= PASS_TRIED && !health_up(&t->health, now))
        return false;
    return breaker_admits(&t->breaker, &bu->conf->circuit_breaker, now);
}

static int pick_round_robin(const bal_upstream_t *bu, int pass, const uint64_t *tried,
                            uint64_t now)
{
    const fg_upstream_t *u = bu->conf;
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < u->n_targets; i++) {
        if (!eligible(bu, (int)i, pass, tried, now))
            continue;
        bal_target_t *t = bu->targets[i];
        t->current_weight += u->targets[i].weight;
        total += u->targets[i].weight;
        if (best < 0 || t->current_weight > bu->targets[best]->current_weight)
            best = (int)i;
    }
    if (best >= 0)
        bu->targets[best]->current_weight -= total;
    return best;
}

/* a has fewer in-flight attempts per unit of weight than b (cross-multiplied: no division) */
static bool less_loaded(const bal_upstream_t *bu, int a, int b)
{
    const fg_upstream_t *u = bu->conf;
    return (uint64_t)bu->targets[a]->active * u->targets[b].weight <
           (uint64_t)bu->targets[b]->active * u->targets[a].weight;
}

static int pick_least_conn(bal_upstream_t *bu, int pass, const uint64_t *tried, uint64_t now)
{
    size_t n = bu->conf->n_targets;
    size_t start = bu->rotate++ % n;
    int best = -1;
    for (size_t k = 0; k < n; k++) {
        int i = (int)((start + k) % n);
        if (eligible(bu, i, pass, tried, now) && (best < 0 || less_loaded(bu, i, best)))
            best = i;
    }
    return best;
}

static int pick_two_choices(const bal_upstream_t *bu, int pass, const uint64_t *tried,
                            uint64_t now)
{
    uint16_t ok[FG_MAX_TARGETS];
    size_t n = 0;
    for (size_t i = 0; i < bu->conf->n_targets; i++)
        if (eligible(bu, (int)i, pass, tried, now))
            ok[n++] = (uint16_t)i;
    if (n == 0)
        return -1;
    int a = ok[rand32() % n];
    if (n == 1)
        return a;
    int b = ok[rand32() % (n - 1)];
    if (b == a)
        b = ok[n - 1]; /* draws from the n-1 others, uniformly */
    return less_loaded(bu, b, a) ? b : a;
}

/* The hashOn key of the request: client IP, a header's value, or a cookie's value. */
static bool hash_key(const bal_upstream_t *bu, const http1_head_t *h, const char *peer_ip,
                     uint32_t *out)
{
    const char *on = bu->conf->hash_on ? bu->conf->hash_on : "ip";
    if (strcmp(on, "ip") == 0 || !h) {
        *out = mix32(fnv1a(2166136261u, peer_ip, strlen(peer_ip)));
        return true;
    }
    bool cookie = strncmp(on, "cookie:", 7) == 0;
    const char *name = cookie ? on + 7 : on + 7; /* "header:" is 7 bytes too */
    size_t nlen = strlen(name);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        const char *v = HTTP1_VALUE(h, hd);
        if (!cookie) {
            if (http1_caseeq(HTTP1_NAME(h, hd), hd->name_len, name, nlen)) {
                *out = mix32(fnv1a(2166136261u, v, hd->value_len));
                return true;
            }
            continue;
        }
        if (!http1_caseeq(HTTP1_NAME(h, hd), hd->name_len, "cookie", 6))
            continue;
        /* "a=1; b=2": find NAME= at the start of a pair */
        size_t p = 0, n = hd->value_len;
        while (p < n) {
            while (p < n && (v[p] == ' ' || v[p] == ';'))
                p++;
            size_t e = p;
            while (e < n && v[e] != ';')
                e++;
            if (e - p > nlen && memcmp(v + p, name, nlen) == 0 && v[p + nlen] == '=') {
                *out = mix32(fnv1a(2166136261u, v + p + nlen + 1, e - p - nlen - 1));
                return true;
            }
            p = e;
        }
    }
    return false;
}

static int pick_hash(const bal_upstream_t *bu, uint32_t key, int pass, const uint64_t *tried,
                     uint64_t now)
{
    size_t lo = 0, hi = bu->ring_n;
    while (lo < hi) { /* first point at or after key */
        size_t mid = (lo + hi) / 2;
        if (bu->ring_hash[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < bu->ring_n; k++) {
        int i = bu->ring_target[(lo + k) % bu->ring_n];
        if (eligible(bu, i, pass, tried, now))
            return i;
    }
    return -1;
}

int balancer_pick(const bal_upstream_t *cbu, const http1_head_t *head, const char *peer_ip,
                  const uint64_t tried[BAL_TRIED_WORDS], uint64_t now)
{
    /* The set is per generation but its counters are the process's: picking mutates them. */
    bal_upstream_t *bu = (bal_upstream_t *)cbu;
    const fg_upstream_t *u = bu->conf;
    int i = -1;
    if (u->n_targets == 1) {
        /* Nothing to choose: only the breaker can say no. */
        if (!breaker_admits(&bu->targets[0]->breaker, &u->circuit_breaker, now))
            return -1;
        i = 0;
    } else {
        uint32_t key = 0;
        bool hashed = u->load_balancing == FG_LB_CONSISTENT_HASH &&
                      hash_key(bu, head, peer_ip, &key);
        for (int pass = PASS_STRICT; pass < PASSES && i < 0; pass++) {
            if (hashed) {
                i = pick_hash(bu, key, pass, tried, now);
                continue;
            }
            switch (u->load_balancing) {
            case FG_LB_LEAST_CONN: i = pick_least_conn(bu, pass, tried, now); break;
            case FG_LB_RANDOM_TWO: i = pick_two_choices(bu, pass, tried, now); break;
            default: i = pick_round_robin(bu, pass, tried, now); break;
            }
        }
        if (i < 0)
            return -1;
    }
    bal_target_t *t = bu->targets[i];
    breaker_take(&t->breaker, &u->circuit_breaker);
    t->active++;
    return i;
}

void balancer_done(const bal_upstream_t *bu, int i, bal_outcome_t outcome)
{
    bal_target_t *t = bu->targets[i];
    if (t->active)
        t->active--;
    /* A single target without a breaker has nothing to record: skip even the clock. */
    if (outcome == BAL_NEUTRAL || (bu->conf->n_targets == 1 && !bu->conf->circuit_breaker.enabled))
        return;
    uint64_t now = fg_now_ms();
    bool ok = outcome == BAL_OK;
    int before = t->breaker.state;
    breaker_record(&t->breaker, &bu->conf->circuit_breaker, ok, now);
    if (t->breaker.state != before) {
        static const char *const names[] = {"closed", "open", "half-open"};
        fg_log(t->breaker.state == DP_BREAKER_OPEN ? FG_LOG_WARN : FG_LOG_INFO,
               "circuit breaker changed state", "upstream", t->upstream, "target", t->url,
               "state", names[t->breaker.state], NULL);
    }
    /* Ejecting the only target would only turn its errors into ours. */
    if (bu->conf->n_targets > 1 && health_record(&t->health, &bu->conf->health_check, ok, now))
        fg_log(ok ? FG_LOG_INFO : FG_LOG_WARN,
               ok ? "upstream target back in rotation" : "upstream target ejected", "upstream",
               t->upstream, "target", t->url, NULL);
}

void balancer_foreach_target(void (*fn)(const char *upstream, const char *target,
                                        bal_target_t *t, void *arg),
                             void *arg)
{
    for (size_t b = 0; b < tab.n_buckets; b++)
        for (bal_target_t *t = tab.buckets[b]; t; t = t->next)
            if (t->epoch == tab.epoch)
                fn(t->upstream, t->url, t, arg);
}

static void summarise(const char *upstream, const char *target, bal_target_t *t, void *arg)
{
    (void)upstream, (void)target;
    bal_summary_t *s = arg;
    s->targets++;
    s->down += !health_up(&t->health, fg_now_ms());
    s->breakers_open += t->breaker.state != DP_BREAKER_CLOSED;
}

void balancer_summary(bal_summary_t *out)
{
    memset(out, 0, sizeof *out);
    balancer_foreach_target(summarise, out);
}

void balancer_shutdown(void)
{
    for (size_t b = 0; b < tab.n_buckets; b++) {
        bal_target_t *t = tab.buckets[b];
        while (t) {
            bal_target_t *next = t->next;
            health_stop(t);
            free(t->upstream);
            free(t->url);
            free(t);
            t = next;
        }
    }
    free(tab.buckets);
    memset(&tab, 0, sizeof tab);
}
