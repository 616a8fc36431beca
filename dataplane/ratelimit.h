/* ratelimit.h - token-bucket rate limiting: in the process, or shared through Redis.
 *
 * Three levels, each a token bucket of `max` tokens refilled over `windowMs` (plus `burst`
 * extra depth, full at first use); a request takes one token from every level that applies,
 * all or nothing, and is refused with 429 when any of them is empty. How the seed's keys map:
 *   global   `rateLimit.global`       ONE bucket for the whole gateway: every request of every
 *                                     client on every route
 *   route    `rateLimit.perRoute[]`   ONE bucket per entry, shared by all clients, for requests
 *                                     whose path the entry's pattern matches (most specific
 *                                     entry wins, same syntax and trie as routes[].path)
 *   identity `routes[].rateLimit`     one bucket per route AND identity: the API key's name when
 *                                     the request authenticated (dp_request_t.key_name), else
 *                                     the client IP - the seed's per-client limit
 * The 429 carries Retry-After and RateLimit-Limit/-Remaining/-Reset (IETF draft
 * ratelimit-headers) of the level that refused, and that level's `message`. Allowed responses
 * of a limited request carry the RateLimit-* headers of the level with the fewest tokens left.
 *
 * Backends (`rateLimit.backend`):
 *   local - a fixed table of rateLimit.maxBuckets buckets (no malloc per request, O(1)
 *           lookup; the least recently used bucket is evicted when the table is full), shared
 *           by all the workers of a data plane (ratelimit_shared_init) as nginx's limit_req
 *           zones are, so `--workers N` enforces each limit once, not N times
 *   redis - one Lua script per decision (EVALSHA, EVAL on NOSCRIPT) takes the tokens of all
 *           levels atomically on the Redis server's clock, so N data planes share one limit.
 *           The answer arrives later: the request waits (body unread) and resumes through
 *           proxy_admit() or proxy_finish(r, 429). A decision not answered within
 *           `rateLimit.redis.timeoutMs`, or any Redis error, switches the process to local
 *           buckets at max / `rateLimit.redis.fallbackDivisor` (logged once, counted in
 *           metrics, reported by ratelimit_redis_state()) until a reconnect (with backoff)
 *           succeeds. No request fails because Redis did.
 * State is keyed by stable identity (level, route id or perRoute path, identity) and by the
 * limit itself, so a generation swap keeps every bucket whose limit did not change.
 * Single-threaded: everything runs on the process's event loop. */
#ifndef DP_RATELIMIT_H
#define DP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "fg_config.h"
#include "fg_error.h"
#include "proxy.h"

/* ---- named limits ---------------------------------------------------------------------- */
#define DP_RL_LEVELS 3                  /* global, route (perRoute), identity (routes[]) */
#define DP_RL_INFLIGHT_MAX 4096         /* decisions waiting on Redis at once; beyond, local */
#define DP_RL_RECONNECT_MIN_MS 100u     /* first Redis reconnect delay, doubled per failure */
#define DP_RL_RECONNECT_MAX_MS 5000u    /* ...up to this */
#define DP_RL_SETUP_TIMEOUT_MS 1000u    /* connect + AUTH + SELECT + SCRIPT LOAD */
#define DP_RL_KEY_MAX 256               /* bytes of one bucket key (longer keys are cut) */
#define DP_RL_HEADERS_MAX 192           /* bytes of the RateLimit-* and Retry-After lines */

/** ratelimit_check() result: the decision is pending (Redis); ratelimit.c resumes the request
 *  with proxy_admit() or proxy_finish(r, 429). */
#define RATELIMIT_PENDING 1

/** A limit as the bucket math sees it. */
typedef struct rl_limit {
    uint32_t max;       /* tokens per window, > 0 */
    uint32_t window_ms; /* > 0 */
    uint32_t burst;     /* extra depth */
} rl_limit_t;

/** A bucket's state: tokens are counted in units of 1/window_ms, so refill is exact integer
 *  arithmetic (`max` units per elapsed ms; one token = window_ms units). */
typedef struct rl_state {
    uint64_t units;    /* tokens * window_ms */
    uint64_t stamp_ms; /* when `units` was last refilled */
} rl_state_t;

/** What a decision tells the client. Seconds are rounded up. */
typedef struct rl_verdict {
    bool allowed;
    uint32_t limit;         /* RateLimit-Limit: max */
    uint64_t remaining;     /* RateLimit-Remaining: whole tokens left after this request */
    uint64_t reset_s;       /* RateLimit-Reset: seconds until the bucket is full again */
    uint64_t retry_after_s; /* Retry-After (refused only): seconds until one token, >= 1 */
} rl_verdict_t;

/** Per-generation compiled form (the perRoute matcher); owned by the generation. */
typedef struct dp_rl_compiled dp_rl_compiled_t;

/* ---- bucket math (pure; exported for tests) -------------------------------------------- */

/** A full bucket for `l` at `now_ms`. */
void rl_state_init(rl_state_t *s, const rl_limit_t *l, uint64_t now_ms);

/** Refill `s` up to `now_ms` (never past the bucket's depth, never backwards in time). */
void rl_state_refill(rl_state_t *s, const rl_limit_t *l, uint64_t now_ms);

/** True when `s` (refilled) holds at least one token. */
bool rl_state_has_token(const rl_state_t *s, const rl_limit_t *l);

/** The verdict for `units` tokens-units left (after taking, when allowed). */
void rl_verdict_make(rl_verdict_t *v, const rl_limit_t *l, uint64_t units, bool allowed);

/* ---- the module ------------------------------------------------------------------------ */

/** Use `base` for Redis I/O and timers. Before it (unit tests), Redis is never contacted. */
int ratelimit_init(struct event_base *base);

/** Compile the per-generation state of `cfg` (perRoute matcher). The caller (generation.c)
 *  owns the result and frees it with ratelimit_compiled_free. NULL with err on ENOMEM; a
 *  config without perRoute entries compiles to a valid empty object. */
dp_rl_compiled_t *ratelimit_compile(const fg_config_t *cfg, fg_error_t *err);
void ratelimit_compiled_free(dp_rl_compiled_t *c);

/** Map the local bucket table in memory the workers forked after this call share (the
 *  master calls it before forking; a single process need not). Address space for
 *  FG_RL_MAX_BUCKETS buckets is reserved, pages are used as buckets are. 0 or -errno: then
 *  each process keeps a table of its own. */
int ratelimit_shared_init(void);

/** A generation with `cfg` became current: apply backend, Redis URL and table size (a
 *  changed URL reconnects; a changed maxBuckets starts an empty table). */
void ratelimit_configure(const fg_config_t *cfg);

/** Admission of `r` (route matched, auth done): 0 = proceed now (proxy_admit), 429 = refused
 *  (the caller finishes with 429; r carries the headers and message), or RATELIMIT_PENDING.
 *  Never allocates on the heap for the local backend. */
int ratelimit_check(dp_request_t *r);

/** The request ends (proxy_finish): forget a pending decision, so a late Redis reply is
 *  ignored. Cheap when nothing is pending. */
void ratelimit_cancel(dp_request_t *r);

/** "disabled" (backend local, or no Redis), "ok" (deciding through Redis) or "fallback"
 *  (Redis unreachable, slow or failing: deciding locally). Static string. */
const char *ratelimit_redis_state(void);

/** Close Redis and free the tables (process exit). Pending requests must be finished. */
void ratelimit_shutdown(void);

#endif
