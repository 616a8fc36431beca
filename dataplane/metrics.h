/* metrics.h - the data plane's metrics: event counters, per-route and per-upstream series,
 * gauges, all in memory every worker of one data plane can read; rendered in Prometheus
 * text format (0.0.4) on the status listener's /metrics.
 *
 * Every module that decides something worth counting (auth, guard, ratelimit, breaker,
 * balancer, health, proxy) bumps a field here: `metrics_counters()->ssrf_blocked++`. The
 * counters are plain uint64_t and only grow, so a data plane's totals are the element-wise
 * sum of its workers' structs.
 *
 * Storage: one MAP_SHARED anonymous mapping, made by the master before it forks (or by the
 * single process), with one slot per worker. A worker writes only its own slot, with plain
 * stores and no locks (aligned 64-bit stores are single instructions on every platform we
 * build for, so a reader in another worker sees an old or a new value, never a torn one);
 * whichever worker answers a scrape reads every slot and sums them.
 *
 * Monotonic per data plane: a restarted worker inherits its slot and keeps counting from
 * where its predecessor stopped (counters, route series, histograms are never reset).
 * Values a worker mirrors from its own process state (server refusal/timeout counters,
 * CPU time, accepted connections) restart at zero in a new process: metrics_worker_attach()
 * folds what the previous process last published into a per-slot base first, so their
 * sums never go backwards either. Gauges (active connections, RSS, fds, breaker state) are
 * the new process's own and are cleared at attach.
 *
 * Label values come from config only (route id, upstream name, target URL, method names
 * from llhttp's fixed list, status codes 100..599), never from raw client input, and every
 * per-label table has a fixed size with an overflow series: cardinality is bounded.
 *
 * Fields of dp_counters_t are ONLY uint64_t (the struct is summed as an array); add new
 * ones at the end of their group. */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct evbuffer;
struct dp_server;

/* Indexes of the per-backend / per-state arrays below. */
enum { DP_RL_BACKEND_LOCAL = 0, DP_RL_BACKEND_REDIS = 1, DP_RL_BACKENDS };
enum { DP_BREAKER_CLOSED = 0, DP_BREAKER_OPEN = 1, DP_BREAKER_HALF_OPEN = 2, DP_BREAKER_STATES };

typedef struct dp_counters {
    /* security (issue 5) */
    uint64_t auth_missing;          /* 401: no key presented on an `auth: required` route */
    uint64_t auth_invalid;          /* 401: unknown, disabled or expired key; bad signature */
    uint64_t auth_forbidden;        /* 403: valid key not scoped to the route */
    uint64_t auth_replays;          /* 401: HMAC signature seen before, or outside the skew */
    uint64_t ssrf_blocked;          /* 403: resolved upstream address in a blocked range */
    uint64_t hosts_refused;         /* 403: upstream host outside security.allowedHosts */
    uint64_t paths_refused;         /* 400: encoded '/', '\' or NUL in the path */
    uint64_t headers_refused;       /* 400: header name/value refused by hygiene rules */
    uint64_t resp_headers_dropped;  /* upstream response headers dropped (splitting, CR/LF) */
    /* traffic control (issue 6) */
    uint64_t ratelimit_allowed[DP_RL_BACKENDS];
    uint64_t ratelimit_limited[DP_RL_BACKENDS];
    uint64_t ratelimit_redis_errors;    /* Redis calls that failed or timed out */
    uint64_t ratelimit_fallbacks;       /* switches from Redis to local buckets */
    uint64_t retries;                   /* upstream attempts after the first */
    uint64_t retries_budget_exhausted;  /* retries refused by a retry budget */
    uint64_t breaker_rejected;          /* 503 (or fallback) because a breaker was open */
    uint64_t breaker_transitions[DP_BREAKER_STATES]; /* transitions INTO each state */
    uint64_t shed_overload;             /* 503: shed by priority past the pending threshold */
    uint64_t health_transitions;        /* targets marked up or down (active or passive) */
    uint64_t dns_resolutions;           /* upstream names (re-)resolved */
    /* observability and generations (issue 7) */
    uint64_t generation_swaps;
    uint64_t accesslog_lines;           /* access log lines written (after sampling) */
    uint64_t accesslog_dropped;         /* lines dropped: the sink stalled or failed */
    uint64_t accesslog_sampled_out;     /* successes left out by logging.sampling */
    uint64_t request_ids_generated;     /* X-Request-ID absent or malformed: we made one */
    uint64_t traces_started;            /* no valid traceparent: a new trace began here */
    uint64_t requests;                  /* requests finished, any status (sent to the control
                                           plane in PING/PONG for its request rates) */
} dp_counters_t;

/* ---- limits (named; compile-time: the shared mapping is sized before any config) ------ */
#define DP_METRICS_SERIES_MAX 4096    /* (route, method, status) series per worker; pow2 */
#define DP_METRICS_ROUTES_MAX 1024    /* routes with a duration histogram per worker; pow2 */
#define DP_METRICS_UPSTREAMS_MAX 256  /* upstreams with a latency histogram per worker; pow2 */
#define DP_METRICS_TARGETS_MAX 1024   /* (upstream, target) breaker/health gauges; pow2 */
#define DP_METRICS_PROBE_MAX 32       /* probes in an open-addressed table before overflow */
#define DP_METRICS_TARGET_LEN 160     /* bytes of a target URL kept as a label value */
#define DP_METRICS_REFRESH_MS 1000u   /* how often a worker publishes its gauges */
#define DP_METRICS_BUCKETS 14         /* histogram buckets, +Inf excluded (metrics.c) */

/** This process's counters (never NULL; valid for the life of the process). Before
 *  metrics_worker_attach() (unit tests, start-up) a process-local struct. */
dp_counters_t *metrics_counters(void);

/** Create the shared mapping for `workers` slots (1..MASTER_WORKERS_MAX). Called once, by
 *  the master before it forks or by the single process; the mapping is inherited. 0 or a
 *  negative errno. */
int metrics_shared_init(unsigned workers);

/** Bind this process to slot `index` (see the top of this file for what is kept and what
 *  restarts). Without metrics_shared_init() this is a no-op. */
void metrics_worker_attach(unsigned index);

/** Start publishing this worker's gauges every DP_METRICS_REFRESH_MS on `base`, reading
 *  the server's counters (borrowed; must outlive the metrics: call metrics_stop first).
 *  0 or -ENOMEM. */
int metrics_start(struct event_base *base, const struct dp_server *server);

/** Stop the refresh timer (shutdown). */
void metrics_stop(void);

/** Record one finished request: its route id (NULL: none matched), llhttp method, final
 *  status, duration, bytes, and the upstream it went to (NULL: none) with the time from
 *  dispatch to the response head (0: no response head). No allocation, no lock. */
void metrics_request(const char *route, unsigned method, int status, uint64_t duration_us,
                     uint64_t bytes_in, uint64_t bytes_out, const char *upstream,
                     uint64_t upstream_us);

/** A generation was installed: config version gauge, swap counter. */
void metrics_generation(int64_t version);

/** A snapshot from the control plane was applied in `us` (decode, validate, build, swap). */
void metrics_apply_duration(uint64_t us);

/** The config version every started worker has applied: the lowest across them, 0 while any
 *  has none yet. Readiness uses it: the workers share the ports, so a connection may reach
 *  any of them. */
int64_t metrics_config_version(void);

/** Render every slot's sum in Prometheus text format into `out`. 0 or -ENOMEM. */
int metrics_render(struct evbuffer *out);

#endif
