/* ratelimit.c - token buckets in a fixed local table or in Redis (see ratelimit.h).
 *
 * Local table: rateLimit.maxBuckets entries in one mapped region, a chained hash index
 * (uint32 links) and an LRU list through the same entries, so a lookup, an insert and an
 * eviction are O(1) and a decision never mallocs; the region is shared by a data plane's
 * workers (see "the local table" below). Entries are found by a 64-bit seeded hash of
 * the key text only (the text is not stored): two keys colliding would share a bucket, with a
 * probability of about n^2 / 2^65 - negligible, and the seed is random per process so clients
 * cannot aim for it.
 *
 * Redis: one hiredis async context on the process's event loop (libevent adapter). Decisions
 * wait in a fixed slot array; the hiredis privdata of a decision is a token (slot index and a
 * sequence number), never a pointer, so a reply for a cancelled request, or one that arrives
 * after the slot was reused, is recognised and dropped. Replies come in order, so the oldest
 * pending decision is the one that times out first: a ring of tokens in submission order and
 * one timer find it. Any failure drops the whole context (every pending decision is then
 * decided locally at once), and a reconnect timer with exponential backoff brings it back. */
#include "ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "fg_log.h"
#include "fg_time.h"
#include "generation.h"
#include "metrics.h"
#include "router.h"
#include "shm.h"

/* ---- bucket math ----------------------------------------------------------------------- */

static uint64_t div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t depth_units(const rl_limit_t *l)
{
    return ((uint64_t)l->max + l->burst) * l->window_ms;
}

void rl_state_init(rl_state_t *s, const rl_limit_t *l, uint64_t now_ms)
{
    s->units = depth_units(l);
    s->stamp_ms = now_ms;
}

void rl_state_refill(rl_state_t *s, const rl_limit_t *l, uint64_t now_ms)
{
    uint64_t depth = depth_units(l);
    if (now_ms <= s->stamp_ms) /* a clock that stepped back refills nothing */
        return;
    uint64_t elapsed = now_ms - s->stamp_ms;
    s->stamp_ms = now_ms;
    if (s->units >= depth) {
        s->units = depth;
        return;
    }
    /* Compared before multiplying: elapsed * max could overflow after a long idle time. */
    if (elapsed >= div_up(depth - s->units, l->max))
        s->units = depth;
    else
        s->units += elapsed * l->max;
}

bool rl_state_has_token(const rl_state_t *s, const rl_limit_t *l)
{
    return s->units >= l->window_ms;
}

void rl_verdict_make(rl_verdict_t *v, const rl_limit_t *l, uint64_t units, bool allowed)
{
    uint64_t depth = depth_units(l);
    if (units > depth)
        units = depth;
    v->allowed = allowed;
    v->limit = l->max;
    v->remaining = units / l->window_ms;
    v->reset_s = div_up(div_up(depth - units, l->max), 1000);
    v->retry_after_s = 0;
    if (!allowed) {
        uint64_t ms = units < l->window_ms ? div_up(l->window_ms - units, l->max) : 0;
        v->retry_after_s = ms ? div_up(ms, 1000) : 1;
    }
}

/* ---- levels of one request -------------------------------------------------------------- */

struct dp_rl_compiled {
    fg_config_t fake;    /* routes = one per perRoute entry, for router_build */
    fg_route_t *routes;  /* owned */
    dp_router_t *router; /* owned; NULL when there are no perRoute entries */
};

typedef struct rl_level {
    rl_limit_t limit;
    const char *message; /* the limit's `message` (config memory, held by the generation) */
    uint64_t hash;       /* of the key text */
    char key[DP_RL_KEY_MAX];
    size_t key_len;
} rl_level_t;

typedef struct rl_levels {
    rl_level_t lv[DP_RL_LEVELS];
    unsigned n;
} rl_levels_t;

/* Seeded, 8 bytes per step with a multiply-xorshift mix (the finaliser of splitmix64): a few
 * instructions per word on ~40-byte keys, and the random seed keeps clients from choosing
 * colliding keys. */
static uint64_t hash_seed = 0x9e3779b97f4a7c15ull;

static uint64_t hash_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t key_hash(const char *p, size_t n)
{
    uint64_t h = hash_mix(hash_seed ^ n);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = hash_mix(h ^ w);
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = hash_mix(h ^ w ^ 0xff); /* the tail marker keeps "a" and "a\0" apart */
    return h ? h : 1;           /* 0 marks a free table entry */
}

/* Append `s` (n bytes) to the key, cutting at DP_RL_KEY_MAX - 1. */
static void key_put(rl_level_t *lv, const char *s, size_t n)
{
    size_t room = sizeof lv->key - 1 - lv->key_len;
    if (n > room)
        n = room;
    memcpy(lv->key + lv->key_len, s, n);
    lv->key_len += n;
    lv->key[lv->key_len] = '\0';
}

static void key_put_str(rl_level_t *lv, const char *s)
{
    key_put(lv, s, strlen(s));
}

/* Keys name the level and its scope: "fg:rl:g", "fg:rl:p:/api/x" (the entry's path),
 * "fg:rl:r:users:k=Client A", "fg:rl:r:users:ip=10.0.0.7". The local table keeps the limit
 * beside the state (a changed limit restarts the bucket); Redis keys get the limit appended
 * (":100/60000/0") so that there too a changed limit is a new bucket. */
static rl_level_t *level_add(rl_levels_t *ls, const fg_rate_limit_t *rl, char tag)
{
    rl_level_t *lv = &ls->lv[ls->n++];
    lv->limit.max = rl->max;
    lv->limit.window_ms = rl->window_ms;
    lv->limit.burst = rl->burst;
    lv->message = rl->message;
    lv->key_len = 0;
    key_put(lv, "fg:rl:", 6);
    key_put(lv, &tag, 1);
    return lv;
}

static void level_close(rl_level_t *lv)
{
    lv->hash = key_hash(lv->key, lv->key_len);
}

static bool limit_on(const fg_rate_limit_t *rl)
{
    return rl->set && rl->enabled && rl->max > 0 && rl->window_ms > 0;
}

/* The levels that apply to `r`; none (n == 0) for a route without limits, at the cost of a
 * few branches. */
static void levels_collect(const dp_request_t *r, rl_levels_t *ls)
{
    const fg_config_t *cfg = r->gen->config;
    const fg_rate_limit_conf_t *rc = &cfg->rate_limit;
    ls->n = 0;
    if (!rc->enabled)
        return;
    if (limit_on(&rc->global))
        level_close(level_add(ls, &rc->global, 'g'));
    const dp_rl_compiled_t *comp = r->gen->ratelimit;
    if (comp && comp->router) {
        const fg_route_t *pr = router_match(comp->router, "GET", 3, NULL, 0, r->path,
                                            r->path_len);
        if (pr) {
            const fg_per_route_limit_t *p = &rc->per_route[pr - comp->routes];
            fg_rate_limit_t l = p->limit;
            l.set = true;
            if (limit_on(&l)) {
                rl_level_t *lv = level_add(ls, &l, 'p');
                key_put(lv, ":", 1);
                key_put_str(lv, p->path);
                level_close(lv);
            }
        }
    }
    if (limit_on(&r->route->rate_limit)) {
        rl_level_t *lv = level_add(ls, &r->route->rate_limit, 'r');
        key_put(lv, ":", 1);
        key_put_str(lv, r->route->id);
        if (r->key_name) {
            key_put(lv, ":k=", 3);
            key_put_str(lv, r->key_name);
        } else {
            key_put(lv, ":ip=", 4);
            key_put(lv, r->conn->peer_ip, r->conn->peer_ip_len);
        }
        level_close(lv);
    }
}

dp_rl_compiled_t *ratelimit_compile(const fg_config_t *cfg, fg_error_t *err)
{
    /* Owned by the caller (the generation); freed with ratelimit_compiled_free. */
    dp_rl_compiled_t *c = calloc(1, sizeof *c);
    if (!c) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory compiling rate limits");
        return NULL;
    }
    size_t n = cfg->rate_limit.n_per_route;
    if (n == 0)
        return c;
    c->routes = calloc(n, sizeof *c->routes);
    if (!c->routes) {
        fg_error_setc(err, -ENOMEM, NULL, "out of memory compiling rate limits");
        ratelimit_compiled_free(c);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        c->routes[i].id = cfg->rate_limit.per_route[i].path;
        c->routes[i].path = cfg->rate_limit.per_route[i].path;
    }
    c->fake.routes = c->routes;
    c->fake.n_routes = n;
    c->router = router_build(&c->fake, err);
    if (!c->router) {
        ratelimit_compiled_free(c);
        return NULL;
    }
    return c;
}

void ratelimit_compiled_free(dp_rl_compiled_t *c)
{
    if (!c)
        return;
    router_free(c->router);
    free(c->routes);
    free(c);
}

/* ---- the local table ------------------------------------------------------------------- */

/* The table is one memory region (shm.h): a header, the hash index, the buckets. Links are
 * indexes, so the region can be shared: the master maps it before forking and every worker of
 * a data plane decides against the same buckets, as nginx's limit_req zones do
 * (ratelimit_shared_init). Without it (mapping refused, unit tests) each process maps its
 * own, sized to rateLimit.maxBuckets. A decision holds the header's lock for its levels; when
 * the lock is taken over from a worker that died holding it, the table is emptied (the dead
 * worker may have left links half-updated): every bucket starts full again, once. */
#define NIL UINT32_MAX

typedef struct rl_bucket {
    uint64_t hash;     /* 0 = free */
    rl_state_t state;
    rl_limit_t limit;  /* the limit `state` belongs to */
    uint32_t chain;    /* next entry in the same index slot */
    uint32_t prev, next; /* LRU list: head most recent */
} rl_bucket_t;

typedef struct rl_table_hdr {
    shm_lock_t lock;
    uint32_t cap, used, mask;
    uint32_t lru_head, lru_tail;
    uint64_t takeovers;    /* locks taken from a dead holder (the table was emptied) */
} rl_table_hdr_t;

typedef struct rl_table {
    rl_table_hdr_t *h;  /* in the region; NULL = no table */
    uint32_t *index;    /* [slots_max] chain heads, in the region */
    rl_bucket_t *b;     /* [cap_max], in the region */
    uint32_t cap_max;   /* buckets the region holds */
    void *map;          /* the region; owned (munmap) */
    size_t map_len;
    bool shared;        /* mapped before the fork, for every worker: never remapped */
} rl_table_t;

static uint32_t slots_for(uint32_t cap)
{
    uint32_t slots = 1;
    while (slots < cap)
        slots <<= 1;
    return slots;
}

static void table_free(rl_table_t *t)
{
    shm_unmap(t->map, t->map_len);
    memset(t, 0, sizeof *t);
}

/* Map a region for up to `cap_max` buckets (pages are touched only as they are used). */
static int table_map(rl_table_t *t, uint32_t cap_max, bool shared)
{
    size_t slots = slots_for(cap_max);
    size_t index_off = (sizeof(rl_table_hdr_t) + 63) & ~(size_t)63;
    size_t b_off = (index_off + slots * sizeof(uint32_t) + 63) & ~(size_t)63;
    size_t len = b_off + (size_t)cap_max * sizeof(rl_bucket_t);
    void *p = shm_map(len, shared);
    if (!p)
        return -errno;
    memset(t, 0, sizeof *t);
    t->map = p;
    t->map_len = len;
    t->h = p;
    t->index = (uint32_t *)((char *)p + index_off);
    t->b = (rl_bucket_t *)((char *)p + b_off);
    t->cap_max = cap_max;
    t->shared = shared;
    return 0;
}

/* Empty the table and size it for `cap` buckets (<= cap_max). Under the lock. */
static void table_reset(rl_table_t *t, uint32_t cap)
{
    uint32_t slots = slots_for(cap);
    for (uint32_t i = 0; i < slots; i++)
        t->index[i] = NIL;
    t->h->cap = cap;
    t->h->used = 0;
    t->h->mask = slots - 1;
    t->h->lru_head = t->h->lru_tail = NIL;
}

/* A new empty table of `cap` buckets, this process's own. 0 or -errno. */
static int table_init(rl_table_t *t, uint32_t cap)
{
    int rc = table_map(t, cap, false);
    if (rc == 0)
        table_reset(t, cap);
    return rc;
}

static void table_lock(rl_table_t *t)
{
    if (shm_lock(&t->h->lock)) {
        t->h->takeovers++;
        table_reset(t, t->h->cap); /* its links may be half-updated */
    }
}

static void table_unlock(rl_table_t *t)
{
    shm_unlock(&t->h->lock);
}

/* The table holds `cap` buckets: emptied and resized if it did not (the first worker to apply
 * a new rateLimit.maxBuckets does it for all). A private table past its mapping is mapped
 * anew. 0 or -errno (the old table is kept). */
static int table_ensure(rl_table_t *t, uint32_t cap)
{
    if (t->h && cap > t->cap_max && !t->shared) {
        rl_table_t n;
        int rc = table_init(&n, cap);
        if (rc < 0)
            return rc;
        table_free(t);
        *t = n;
        return 0;
    }
    if (!t->h)
        return table_init(t, cap);
    if (cap > t->cap_max)
        return -ERANGE; /* shared: mapped for FG_RL_MAX_BUCKETS, so not reached */
    table_lock(t);
    if (t->h->cap != cap)
        table_reset(t, cap);
    table_unlock(t);
    return 0;
}

static void lru_unlink(rl_table_t *t, uint32_t i)
{
    rl_bucket_t *b = &t->b[i];
    if (b->prev != NIL)
        t->b[b->prev].next = b->next;
    else
        t->h->lru_head = b->next;
    if (b->next != NIL)
        t->b[b->next].prev = b->prev;
    else
        t->h->lru_tail = b->prev;
}

static void lru_push_head(rl_table_t *t, uint32_t i)
{
    rl_bucket_t *b = &t->b[i];
    b->prev = NIL;
    b->next = t->h->lru_head;
    if (t->h->lru_head != NIL)
        t->b[t->h->lru_head].prev = i;
    t->h->lru_head = i;
    if (t->h->lru_tail == NIL)
        t->h->lru_tail = i;
}

static void chain_unlink(rl_table_t *t, uint32_t i)
{
    uint32_t *pp = &t->index[t->b[i].hash & t->h->mask];
    while (*pp != i)
        pp = &t->b[*pp].chain;
    *pp = t->b[i].chain;
}

/* The bucket for `hash`, created full (evicting the least recently used one when the table
 * is full) and refilled to `now`. Its limit is reset when it differs. */
static rl_bucket_t *table_get(rl_table_t *t, uint64_t hash, const rl_limit_t *l, uint64_t now)
{
    rl_table_hdr_t *h = t->h;
    uint32_t i = t->index[hash & h->mask];
    while (i != NIL && t->b[i].hash != hash)
        i = t->b[i].chain;
    if (i != NIL) {
        lru_unlink(t, i);
    } else {
        if (h->used < h->cap) {
            i = h->used++;
        } else { /* evict: the idlest bucket has refilled the most, so forgetting it costs least */
            i = h->lru_tail;
            lru_unlink(t, i);
            chain_unlink(t, i);
        }
        t->b[i].hash = hash;
        t->b[i].chain = t->index[hash & h->mask];
        t->index[hash & h->mask] = i;
        t->b[i].limit = *l;
        rl_state_init(&t->b[i].state, l, now);
    }
    lru_push_head(t, i);
    rl_bucket_t *b = &t->b[i];
    if (memcmp(&b->limit, l, sizeof *l) != 0) {
        b->limit = *l;
        rl_state_init(&b->state, l, now);
    }
    rl_state_refill(&b->state, l, now);
    return b;
}

/* ---- module state ---------------------------------------------------------------------- */

/* Where rateLimit.redis.url points: redis://[[user]:password@]host[:port][/db], or
 * unix:/path. */
typedef struct redis_target {
    const char *host, *user, *password, *unix_path;
    int port, db;
} redis_target_t;

typedef enum rl_redis_state {
    RS_DISABLED = 0, /* backend local (or no URL) */
    RS_CONNECTING,   /* resolve / connect / AUTH / SELECT / SCRIPT LOAD under way; decisions
                        are local */
    RS_OK,           /* decisions go to Redis */
    RS_DOWN,         /* waiting for the reconnect timer; decisions are local */
} rl_redis_state_t;

typedef struct rl_wait {
    dp_request_t *r; /* NULL when the slot is free */
    uint32_t seq;    /* bumped on each release: stale tokens no longer match */
    uint64_t deadline_ms;
} rl_wait_t;

typedef struct rl_module {
    struct event_base *base;
    rl_table_t table;
    rl_redis_state_t state;
    bool fallback_logged;         /* the switch to local was logged (once per outage) */
    char url[FG_URL_MAX_LEN + 1]; /* the configured URL ("" = none) */
    char url_buf[FG_URL_MAX_LEN + 1]; /* rl.url cut up by redis_url_parse for `target` */
    char url_log[FG_URL_MAX_LEN + 1]; /* rl.url with any password masked, for logs */
    redis_target_t target;        /* where to connect (strings in url_buf) */
    struct evdns_base *dns;       /* resolves a Redis host name; created on first need */
    struct evdns_getaddrinfo_request *dns_req; /* a resolve in flight, or NULL */
    uint32_t timeout_ms, divisor;
    redisAsyncContext *ctx;       /* the live context, or NULL */
    char sha[41];                 /* SHA1 of the script, from SCRIPT LOAD */
    struct event *io_timer;       /* oldest pending decision / setup deadline */
    struct event *retry_timer;    /* reconnect */
    uint32_t backoff_ms;
    uint32_t failures;            /* since the last success: picks the next resolved address */
    uint64_t setup_deadline_ms;
    rl_wait_t waits[DP_RL_INFLIGHT_MAX];
    uint32_t free_waits[DP_RL_INFLIGHT_MAX]; /* stack of free slot indexes */
    uint32_t n_free;
    uint64_t ring[2 * DP_RL_INFLIGHT_MAX]; /* tokens in submission order */
    uint32_t ring_head, ring_len;
    bool waits_ready;
} rl_module_t;

static rl_module_t rl;

/* ---- local decisions ------------------------------------------------------------------- */

static rl_limit_t limit_divided(const rl_limit_t *l, uint32_t div)
{
    rl_limit_t d = *l;
    if (div > 1) {
        d.max = l->max / div ? l->max / div : 1;
        d.burst = l->burst / div;
    }
    return d;
}

/* Decide `ls` against the local table (limits divided by `div` during a Redis fallback).
 * Fills `v` with the refusing level (*refused) or the level with the fewest tokens left. */
static bool decide_local(rl_levels_t *ls, uint32_t div, rl_verdict_t *v, unsigned *which)
{
    rl_bucket_t *b[DP_RL_LEVELS];
    rl_limit_t lim[DP_RL_LEVELS];
    uint64_t now = fg_now_ms();
    bool ok = true;
    *which = 0;
    table_lock(&rl.table); /* all levels in one step, against every worker */
    for (unsigned i = 0; i < ls->n; i++) {
        lim[i] = limit_divided(&ls->lv[i].limit, div);
        b[i] = table_get(&rl.table, ls->lv[i].hash ^ (div > 1 ? 0x9e3779b97f4a7c15ull : 0),
                         &lim[i], now);
        if (ok && !rl_state_has_token(&b[i]->state, &lim[i])) {
            ok = false;
            *which = i;
        }
    }
    if (!ok) {
        rl_verdict_make(v, &lim[*which], b[*which]->state.units, false);
        table_unlock(&rl.table);
        return false;
    }
    uint64_t units[DP_RL_LEVELS];
    for (unsigned i = 0; i < ls->n; i++)
        units[i] = b[i]->state.units -= lim[i].window_ms;
    table_unlock(&rl.table);
    uint64_t best = UINT64_MAX;
    for (unsigned i = 0; i < ls->n; i++) {
        rl_verdict_t vi;
        rl_verdict_make(&vi, &lim[i], units[i], true);
        if (vi.remaining < best) {
            best = vi.remaining;
            *v = vi;
            *which = i;
        }
    }
    return true;
}

/* ---- the answer to the client ---------------------------------------------------------- */

/* JSON string body text of `s` (without quotes) in the request arena, or NULL. */
static const char *json_escape(fg_arena_t *a, const char *s)
{
    size_t n = strlen(s);
    char *o = fg_arena_alloc(a, 6 * n + 1);
    if (!o)
        return NULL;
    char *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p = '\0';
    return o;
}

static void put_header(char **p, const char *name, uint64_t v)
{
    size_t n = strlen(name);
    memcpy(*p, name, n);
    *p += n;
    *p += http1_u64_to_dec(v, *p);
    memcpy(*p, "\r\n", 2);
    *p += 2;
}

/* Attach the verdict to the request: headers for whatever response it gets, and on refusal
 * the level's message. Arena memory; without it the request simply goes without them. */
static void verdict_apply(dp_request_t *r, const rl_verdict_t *v, const rl_level_t *lv)
{
    char *h = fg_arena_alloc(r->conn->arena, DP_RL_HEADERS_MAX);
    if (h) {
        char *p = h;
        put_header(&p, "RateLimit-Limit: ", v->limit);
        put_header(&p, "RateLimit-Remaining: ", v->remaining);
        put_header(&p, "RateLimit-Reset: ", v->reset_s);
        if (!v->allowed)
            put_header(&p, "Retry-After: ", v->retry_after_s);
        r->extra_headers = h;
        r->extra_headers_len = (uint32_t)(p - h);
    }
    dp_counters_t *m = metrics_counters();
    int be = rl.state == RS_OK ? DP_RL_BACKEND_REDIS : DP_RL_BACKEND_LOCAL;
    r->trace.ratelimit = v->allowed ? DP_OUTCOME_ALLOWED : DP_OUTCOME_LIMITED; /* access log */
    if (v->allowed) {
        m->ratelimit_allowed[be]++;
        return;
    }
    m->ratelimit_limited[be]++;
    if (lv && lv->message)
        r->error_message = json_escape(r->conn->arena, lv->message);
}

static int finish_local(dp_request_t *r, rl_levels_t *ls, uint32_t div)
{
    rl_verdict_t v;
    unsigned which;
    bool ok = decide_local(ls, div, &v, &which);
    verdict_apply(r, &v, &ls->lv[which]);
    return ok ? 0 : 429;
}

/* ---- Redis: the script ------------------------------------------------------------------ */

/* KEYS[i]: bucket keys; ARGV[3i-2..3i]: max, windowMs, burst of KEYS[i]. Refills every
 * bucket on the server's clock (data planes' clocks never matter), takes one token from all
 * of them or from none, and returns {allowed, units_1, ..., units_n}. A bucket expires once
 * it would be full again, when it is the same as no bucket. */
static const char rl_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ok, u, res = 1, {}, {}\n"
    "for i = 1, #KEYS do\n"
    "  local max, win = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])\n"
    "  local cap = (max + tonumber(ARGV[3*i])) * win\n"
    "  local v = redis.call('HMGET', KEYS[i], 'u', 't')\n"
    "  local units, ts = tonumber(v[1]), tonumber(v[2])\n"
    "  if units == nil or ts == nil then units, ts = cap, now end\n"
    "  if now > ts then units = math.min(cap, units + (now - ts) * max) end\n"
    "  u[i] = units\n"
    "  if units < win then ok = 0 end\n"
    "end\n"
    "res[1] = ok\n"
    "for i = 1, #KEYS do\n"
    "  local max, win = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])\n"
    "  local cap = (max + tonumber(ARGV[3*i])) * win\n"
    "  if ok == 1 then\n"
    "    u[i] = u[i] - win\n"
    "    redis.call('HSET', KEYS[i], 'u', u[i], 't', now)\n"
    "    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - u[i]) / max) + 1000)\n"
    "  end\n"
    "  res[i + 1] = u[i]\n"
    "end\n"
    "return res\n";

/* ---- Redis: pending decisions ------------------------------------------------------------ */

#define TOKEN(i, seq) ((((uint64_t)(seq)) << 16) | (uint64_t)(i))
#define TOKEN_INDEX(t) ((uint32_t)((t) & 0xffffu))
#define TOKEN_SEQ(t) ((uint32_t)((t) >> 16))
#define TOKEN_CONTROL NULL /* AUTH, SELECT, SCRIPT LOAD: answered by on_control_reply */

static void waits_init(void)
{
    if (rl.waits_ready)
        return;
    for (uint32_t i = 0; i < DP_RL_INFLIGHT_MAX; i++)
        rl.free_waits[i] = DP_RL_INFLIGHT_MAX - 1 - i;
    rl.n_free = DP_RL_INFLIGHT_MAX;
    rl.waits_ready = true;
}

/* The slot a token names, or NULL when it was released since (cancelled or answered). */
static rl_wait_t *wait_lookup(uint64_t token)
{
    uint32_t i = TOKEN_INDEX(token);
    if (i >= DP_RL_INFLIGHT_MAX)
        return NULL;
    rl_wait_t *w = &rl.waits[i];
    return w->r && w->seq == TOKEN_SEQ(token) ? w : NULL;
}

static void wait_release(rl_wait_t *w)
{
    w->r->rl_wait = 0;
    w->r = NULL;
    w->seq++;
    rl.free_waits[rl.n_free++] = (uint32_t)(w - rl.waits);
}

static void timer_arm_at(struct event *ev, uint64_t due_ms)
{
    uint64_t now = fg_now_ms();
    uint64_t ms = due_ms > now ? due_ms - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

/* Pop tokens of decisions already answered or cancelled off the ring's head. */
static void ring_trim(void)
{
    while (rl.ring_len > 0 && !wait_lookup(rl.ring[rl.ring_head])) {
        rl.ring_head = (rl.ring_head + 1) % (2 * DP_RL_INFLIGHT_MAX);
        rl.ring_len--;
    }
}

static void io_timer_arm(void)
{
    ring_trim();
    if (rl.state == RS_CONNECTING)
        timer_arm_at(rl.io_timer, rl.setup_deadline_ms);
    else if (rl.ring_len > 0)
        timer_arm_at(rl.io_timer, wait_lookup(rl.ring[rl.ring_head])->deadline_ms);
    else
        evtimer_del(rl.io_timer);
}

/* ---- Redis: connection ------------------------------------------------------------------- */

/* Drop the current context: every pending decision is taken locally now (under the state the
 * caller has set), and the context is freed (its late callbacks see a context that is not
 * rl.ctx and return). */
static void redis_drop(void)
{
    redisAsyncContext *ac = rl.ctx;
    rl.ctx = NULL;
    if (ac)
        redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
    if (rl.dns_req) {
        struct evdns_getaddrinfo_request *req = rl.dns_req;
        rl.dns_req = NULL;
        evdns_getaddrinfo_cancel(req); /* on_redis_resolved runs with EVUTIL_EAI_CANCEL */
    }
    if (rl.io_timer)
        evtimer_del(rl.io_timer);
    rl.ring_len = 0;
    /* Resume the waiting requests last: proxy_admit may start the connection's next
     * pipelined request, which must see the new state. */
    for (uint32_t i = 0; rl.waits_ready && i < DP_RL_INFLIGHT_MAX; i++) {
        rl_wait_t *w = &rl.waits[i];
        if (!w->r)
            continue;
        dp_request_t *r = w->r;
        wait_release(w);
        rl_levels_t ls;
        levels_collect(r, &ls);
        if (finish_local(r, &ls, rl.divisor) == 0)
            proxy_admit(r);
        else
            proxy_finish(r, 429);
    }
}

/* Redis failed (error, timeout, lost connection): decide locally from now on, log the switch
 * once per outage, count it, and schedule a reconnect with exponential backoff. */
static void redis_fail(const char *why)
{
    dp_counters_t *m = metrics_counters();
    m->ratelimit_redis_errors++;
    rl.failures++;
    if (rl.state == RS_OK)
        m->ratelimit_fallbacks++;
    rl.state = RS_DOWN;
    if (!rl.fallback_logged) {
        rl.fallback_logged = true;
        fg_log(FG_LOG_WARN, "rate limit: Redis unavailable, deciding locally", "redis", rl.url_log,
               "error", why, NULL);
    }
    if (rl.backoff_ms == 0)
        rl.backoff_ms = DP_RL_RECONNECT_MIN_MS;
    else if ((rl.backoff_ms *= 2) > DP_RL_RECONNECT_MAX_MS)
        rl.backoff_ms = DP_RL_RECONNECT_MAX_MS;
    timer_arm_at(rl.retry_timer, fg_now_ms() + rl.backoff_ms);
    redis_drop();
}

static void on_control_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    (void)priv;
    if (ac != rl.ctx || rl.state != RS_CONNECTING)
        return;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        redis_fail(rep ? rep->str : (ac->errstr[0] ? ac->errstr : "connection lost"));
        return;
    }
    /* SCRIPT LOAD is sent last: its answer means the context is ready. */
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        memcpy(rl.sha, rep->str, 40);
        rl.sha[40] = '\0';
        rl.state = RS_OK;
        rl.backoff_ms = 0;
        rl.failures = 0;
        evtimer_del(rl.io_timer);
        if (rl.fallback_logged)
            fg_log(FG_LOG_INFO, "rate limit: Redis is back, limits shared again", "redis",
                   rl.url_log, NULL);
        else
            fg_log(FG_LOG_INFO, "rate limit: deciding through Redis", "redis", rl.url_log, NULL);
        rl.fallback_logged = false;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (ac != rl.ctx)
        return;
    if (status != REDIS_OK) {
        rl.ctx = NULL; /* hiredis frees a context whose connect failed */
        redis_fail(ac->errstr[0] ? ac->errstr : "connect failed");
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (ac != rl.ctx)
        return;
    rl.ctx = NULL; /* hiredis frees it after this callback */
    redis_fail(ac->errstr[0] ? ac->errstr : "disconnected");
}

/* Fills `t` from `buf` (cut up in place: the strings point into it). 0 or -EINVAL. */
static int redis_url_parse(char *buf, redis_target_t *t)
{
    memset(t, 0, sizeof *t);
    t->port = 6379;
    if (strncasecmp(buf, "unix:", 5) == 0) {
        t->unix_path = buf + 5;
        return 0;
    }
    if (strncasecmp(buf, "redis://", 8) != 0)
        return -EINVAL; /* rediss:// (TLS) is not supported by this hiredis */
    char *p = buf + 8;
    char *slash = strchr(p, '/');
    if (slash) {
        *slash = '\0';
        if (slash[1]) {
            char *end;
            long db = strtol(slash + 1, &end, 10);
            if (*end || db < 0 || db > 65535)
                return -EINVAL;
            t->db = (int)db;
        }
    }
    char *at = strrchr(p, '@');
    if (at) {
        *at = '\0';
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            t->user = *p ? p : NULL;
            t->password = colon + 1;
        } else {
            t->password = p;
        }
        p = at + 1;
    }
    char *port = NULL;
    if (*p == '[') { /* [::1]:6379 */
        char *close = strchr(p, ']');
        if (!close)
            return -EINVAL;
        *close = '\0';
        t->host = p + 1;
        if (close[1] == ':')
            port = close + 2;
    } else {
        t->host = p;
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (*end || v < 1 || v > 65535)
            return -EINVAL;
        t->port = (int)v;
    }
    return *t->host ? 0 : -EINVAL;
}

/* Second half of a connect: `ip` is an address literal (or NULL for the Unix socket). */
static void redis_connect_addr(const char *ip)
{
    const redis_target_t *t = &rl.target;
    redisAsyncContext *ac = t->unix_path ? redisAsyncConnectUnix(t->unix_path)
                                         : redisAsyncConnect(ip, t->port);
    if (!ac) {
        redis_fail("out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        redis_fail(why);
        return;
    }
    if (redisLibeventAttach(ac, rl.base) != REDIS_OK) {
        redisAsyncFree(ac);
        redis_fail("cannot attach to the event loop");
        return;
    }
    rl.ctx = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    char db[8];
    snprintf(db, sizeof db, "%d", t->db);
    int rc = REDIS_OK;
    if (t->password && t->user)
        rc = redisAsyncCommand(ac, on_control_reply, TOKEN_CONTROL, "AUTH %s %s", t->user,
                               t->password);
    else if (t->password)
        rc = redisAsyncCommand(ac, on_control_reply, TOKEN_CONTROL, "AUTH %s", t->password);
    if (rc == REDIS_OK && t->db)
        rc = redisAsyncCommand(ac, on_control_reply, TOKEN_CONTROL, "SELECT %s", db);
    if (rc == REDIS_OK)
        rc = redisAsyncCommand(ac, on_control_reply, TOKEN_CONTROL, "SCRIPT LOAD %s", rl_script);
    if (rc != REDIS_OK)
        redis_fail("cannot queue the setup commands");
}

/* The resolver's answer for a Redis host name; EVUTIL_EAI_CANCEL when redis_drop cancelled
 * it. May run inside evdns_getaddrinfo (an immediate answer). */
static void on_redis_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    (void)arg;
    rl.dns_req = NULL;
    if (result == EVUTIL_EAI_CANCEL || rl.state != RS_CONNECTING || rl.ctx) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    if (result == 0 && res) {
        /* Each failed attempt moves to the next address, so a name with an address nobody
         * listens on ("localhost" as ::1 with Redis on 127.0.0.1) still works. */
        size_t n = 0;
        const struct evutil_addrinfo *ai;
        for (ai = res; ai; ai = ai->ai_next)
            n++;
        size_t pick = rl.failures % n;
        for (ai = res; pick--; ai = ai->ai_next)
            ;
        const void *a = ai->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        evutil_inet_ntop(ai->ai_family, a, ip, sizeof ip);
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (!ip[0]) {
        redis_fail(result ? evutil_gai_strerror(result) : "the Redis host has no address");
        return;
    }
    redis_connect_addr(ip);
}

/* Connect to rl.url: parse it, resolve a host name through evdns (never blocking the loop),
 * then connect and queue AUTH / SELECT / SCRIPT LOAD. The whole setup is bounded by
 * DP_RL_SETUP_TIMEOUT_MS. */
static void redis_connect(void)
{
    snprintf(rl.url_buf, sizeof rl.url_buf, "%s", rl.url);
    if (redis_url_parse(rl.url_buf, &rl.target) < 0) {
        redis_fail("unusable rateLimit.redis.url (redis://[user:password@]host[:port][/db] "
                   "or unix:/path; no TLS)");
        return;
    }
    rl.state = RS_CONNECTING;
    rl.setup_deadline_ms = fg_now_ms() + DP_RL_SETUP_TIMEOUT_MS;
    io_timer_arm();
    unsigned char addr[sizeof(struct in6_addr)];
    const char *host = rl.target.host;
    if (rl.target.unix_path || evutil_inet_pton(AF_INET, host, addr) == 1 ||
        evutil_inet_pton(AF_INET6, host, addr) == 1) {
        redis_connect_addr(host);
        return;
    }
    if (!rl.dns) {
        rl.dns = evdns_base_new(rl.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!rl.dns && (rl.dns = evdns_base_new(rl.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)))
            evdns_base_load_hosts(rl.dns, NULL);
        if (!rl.dns) {
            redis_fail("cannot create a DNS resolver");
            return;
        }
    }
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(rl.dns, host, NULL, &hints, on_redis_resolved, NULL);
    /* NULL when on_redis_resolved already ran. */
    if (req && rl.state == RS_CONNECTING && !rl.ctx)
        rl.dns_req = req;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (rl.state == RS_DOWN && rl.url[0])
        redis_connect();
}

static void on_io_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    uint64_t now = fg_now_ms();
    if (rl.state == RS_CONNECTING) {
        if (now >= rl.setup_deadline_ms)
            redis_fail("no answer to the setup commands in time");
        else
            io_timer_arm();
        return;
    }
    ring_trim();
    if (rl.ring_len > 0 && now >= wait_lookup(rl.ring[rl.ring_head])->deadline_ms) {
        redis_fail("a decision timed out (rateLimit.redis.timeoutMs)");
        return;
    }
    io_timer_arm();
}

/* ---- Redis: decisions -------------------------------------------------------------------- */

static int decision_send(rl_wait_t *w, const rl_levels_t *ls, bool eval);

static void on_decision_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    if (ac != rl.ctx)
        return; /* an abandoned context: its decisions were taken locally already */
    rl_wait_t *w = wait_lookup((uint64_t)(uintptr_t)priv);
    if (!w)
        return; /* the request ended while waiting */
    dp_request_t *r = w->r;
    rl_levels_t ls;
    levels_collect(r, &ls);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        if (decision_send(w, &ls, true) == 0) /* same token: the slot keeps waiting */
            return;
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != ls.n + 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        redis_fail(!rep ? (ac->errstr[0] ? ac->errstr : "connection lost")
                   : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                    : "unexpected script answer");
        return; /* redis_fail decided this request too */
    }
    bool allowed = rep->element[0]->integer == 1;
    rl_verdict_t v = {0};
    unsigned which = 0;
    uint64_t best = UINT64_MAX;
    for (unsigned i = 0; i < ls.n; i++) {
        const redisReply *e = rep->element[i + 1];
        uint64_t units = e->type == REDIS_REPLY_INTEGER && e->integer > 0 ? (uint64_t)e->integer
                                                                           : 0;
        rl_verdict_t vi;
        rl_verdict_make(&vi, &ls.lv[i].limit, units, allowed || units >= ls.lv[i].limit.window_ms);
        if (!allowed && !vi.allowed) { /* the first empty level refused */
            v = vi;
            which = i;
            break;
        }
        if (allowed && vi.remaining < best) {
            best = vi.remaining;
            v = vi;
            which = i;
        }
    }
    v.allowed = allowed;
    wait_release(w);
    verdict_apply(r, &v, &ls.lv[which]);
    if (allowed)
        proxy_admit(r);
    else
        proxy_finish(r, 429);
}

/* EVALSHA (or EVAL) for the levels of slot `w`. 0, or -1 when hiredis refused it. */
static int decision_send(rl_wait_t *w, const rl_levels_t *ls, bool eval)
{
    const char *argv[3 + DP_RL_LEVELS * 4];
    size_t lens[3 + DP_RL_LEVELS * 4];
    char nums[DP_RL_LEVELS * 3][12];
    char keys[DP_RL_LEVELS][DP_RL_KEY_MAX + 40];
    int argc = 0;
    argv[argc] = eval ? "EVAL" : "EVALSHA";
    lens[argc] = strlen(argv[argc]);
    argc++;
    argv[argc] = eval ? rl_script : rl.sha;
    lens[argc] = eval ? sizeof rl_script - 1 : 40;
    argc++;
    char nk[4] = {(char)('0' + ls->n), 0};
    argv[argc] = nk;
    lens[argc++] = 1;
    for (unsigned i = 0; i < ls->n; i++) {
        const rl_level_t *lv = &ls->lv[i];
        int n = snprintf(keys[i], sizeof keys[i], "%s:%u/%u/%u", lv->key, lv->limit.max,
                         lv->limit.window_ms, lv->limit.burst);
        argv[argc] = keys[i];
        lens[argc++] = n > 0 && (size_t)n < sizeof keys[i] ? (size_t)n : strlen(keys[i]);
    }
    for (unsigned i = 0; i < ls->n; i++) {
        const uint32_t v[3] = {ls->lv[i].limit.max, ls->lv[i].limit.window_ms,
                               ls->lv[i].limit.burst};
        for (int j = 0; j < 3; j++) {
            char *s = nums[i * 3 + (unsigned)j];
            argv[argc] = s;
            lens[argc++] = http1_u64_to_dec(v[j], s);
        }
    }
    uint32_t idx = (uint32_t)(w - rl.waits);
    void *token = (void *)(uintptr_t)TOKEN(idx, w->seq);
    return redisAsyncCommandArgv(rl.ctx, on_decision_reply, token, argc, argv, lens) == REDIS_OK
               ? 0
               : -1;
}

/* Send the decision to Redis and make `r` wait. 0 = pending; -1 = not possible now (the
 * caller decides locally). */
static int decide_redis(dp_request_t *r, const rl_levels_t *ls)
{
    waits_init();
    ring_trim();
    if (rl.n_free == 0 || rl.ring_len >= 2 * DP_RL_INFLIGHT_MAX)
        return -1;
    uint32_t idx = rl.free_waits[rl.n_free - 1];
    rl_wait_t *w = &rl.waits[idx];
    if (decision_send(w, ls, false) < 0) {
        redis_fail("cannot queue a command");
        return -1;
    }
    rl.n_free--;
    w->r = r;
    w->deadline_ms = fg_now_ms() + rl.timeout_ms;
    r->rl_wait = idx + 1;
    rl.ring[(rl.ring_head + rl.ring_len) % (2 * DP_RL_INFLIGHT_MAX)] =
        TOKEN(idx, w->seq);
    if (rl.ring_len++ == 0)
        io_timer_arm();
    /* The body stays unread until the verdict (proxy_admit connects, or 429). */
    server_conn_hold(r->conn, DP_HOLD_UPSTREAM);
    return 0;
}

/* ---- module entry points ----------------------------------------------------------------- */

/* Bucket keys are hashed with a random seed so clients cannot aim for collisions. */
static void hash_seed_pick(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        hash_seed ^= seed;
    else
        hash_seed ^= fg_now_ms();
}

int ratelimit_shared_init(void)
{
    if (rl.table.shared)
        return 0;
    rl_table_t t;
    int rc = table_map(&t, FG_RL_MAX_BUCKETS, true);
    if (rc < 0)
        return rc;
    table_reset(&t, FG_DEFAULT_RL_MAX_BUCKETS);
    table_free(&rl.table);
    rl.table = t;
    hash_seed_pick(); /* before the fork: every worker must hash a key the same way */
    return 0;
}

int ratelimit_init(struct event_base *base)
{
    if (!rl.table.shared)
        hash_seed_pick();
    rl.base = base;
    rl.io_timer = evtimer_new(base, on_io_timer, NULL);
    rl.retry_timer = evtimer_new(base, on_retry_timer, NULL);
    if (!rl.io_timer || !rl.retry_timer)
        return -ENOMEM;
    waits_init();
    return 0;
}

/* `url` with the user info's password replaced by "***" (passwords never reach the logs). */
static void url_mask_password(const char *url, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strrchr(scheme, '@') : NULL;
    if (!at) {
        snprintf(out, n, "%s", url);
        return;
    }
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
    const char *cut = colon ? colon + 1 : scheme + 3; /* "user:***@", ":***@" or "***@" */
    snprintf(out, n, "%.*s***%s", (int)(cut - url), url, at);
}

void ratelimit_configure(const fg_config_t *cfg)
{
    const fg_rate_limit_conf_t *c = &cfg->rate_limit;
    uint32_t cap = c->max_buckets ? c->max_buckets : FG_DEFAULT_RL_MAX_BUCKETS;
    if (table_ensure(&rl.table, cap) < 0)
        fg_log(FG_LOG_ERROR, "rate limit: no memory for the bucket table, keeping the old one",
               NULL);
    rl.timeout_ms = c->redis_timeout_ms ? c->redis_timeout_ms : FG_DEFAULT_RL_REDIS_TIMEOUT_MS;
    rl.divisor = c->redis_fallback_divisor ? c->redis_fallback_divisor : 1;
    const char *url = c->enabled && c->backend == FG_RL_REDIS && c->redis_url ? c->redis_url : "";
    if (strcmp(url, rl.url) == 0)
        return;
    /* A new (or no) Redis: drop the old context; pending decisions are taken locally. */
    snprintf(rl.url, sizeof rl.url, "%s", url);
    url_mask_password(url, rl.url_log, sizeof rl.url_log);
    rl.state = url[0] && rl.base ? RS_DOWN : RS_DISABLED;
    redis_drop(); /* a deliberate switch, not an outage: not logged or counted */
    if (rl.retry_timer)
        evtimer_del(rl.retry_timer);
    rl.backoff_ms = 0;
    rl.fallback_logged = false;
    if (rl.state == RS_DOWN)
        redis_connect();
}

int ratelimit_check(dp_request_t *r)
{
    rl_levels_t ls;
    levels_collect(r, &ls);
    if (ls.n == 0)
        return 0;
    if (!rl.table.h && table_init(&rl.table, FG_DEFAULT_RL_MAX_BUCKETS) < 0)
        return 0; /* never configured (unit tests), and no memory: admitting beats failing */
    if (rl.state == RS_OK && rl.ctx && decide_redis(r, &ls) == 0)
        return RATELIMIT_PENDING;
    return finish_local(r, &ls, rl.state == RS_DISABLED ? 1 : rl.divisor);
}

void ratelimit_cancel(dp_request_t *r)
{
    if (r->rl_wait == 0 || r->rl_wait > DP_RL_INFLIGHT_MAX)
        return;
    rl_wait_t *w = &rl.waits[r->rl_wait - 1];
    if (w->r == r)
        wait_release(w);
    r->rl_wait = 0;
}

const char *ratelimit_redis_state(void)
{
    switch (rl.state) {
    case RS_DISABLED: return "disabled";
    case RS_OK: return "ok";
    default: return "fallback";
    }
}

void ratelimit_shutdown(void)
{
    if (rl.ctx) {
        redisAsyncContext *ac = rl.ctx;
        rl.ctx = NULL;
        redisAsyncFree(ac);
    }
    if (rl.io_timer)
        event_free(rl.io_timer);
    if (rl.retry_timer)
        event_free(rl.retry_timer);
    if (rl.dns_req)
        evdns_getaddrinfo_cancel(rl.dns_req);
    if (rl.dns)
        evdns_base_free(rl.dns, 0);
    table_free(&rl.table);
    memset(&rl, 0, sizeof rl);
}
