/* fg_config.h - the FlexGate configuration model, its JSON codec and its validator.
 *
 * This is the one description of a gateway configuration that every part of FlexGate
 * shares: the admin API decodes REST bodies with it, the YAML importer turns YAML into the
 * same JSON tree and decodes that, the control plane encodes snapshots with it, and the data
 * plane decodes and validates snapshots with it. JSON names are the seed project's YAML
 * names (camelCase: `windowMs`, `circuitBreaker`, `maxBodySize`), plus the aliases its own
 * schema used (`stripPath`, `proxy.timeout` as an object, ...), which decode into the same
 * fields.
 *
 * Three steps, each with its own job:
 *   decode   - JSON tree -> model. Checks types and ranges of single values, rejects unknown
 *              keys (naming them), fills defaults. Never looks across entities.
 *   validate - model -> ok/error. Cross-entity rules: unique names, references resolve,
 *              limits on counts. The ONE validator both planes run.
 *   encode   - model -> canonical JSON. Every field, fixed key order, defaults written out,
 *              so decode(encode(c)) encodes to the same bytes. The snapshot checksum is the
 *              SHA-256 of this text.
 *
 * Memory: an fg_config_t owns an arena; every string and array reachable from it lives
 * there and dies with fg_config_free(). Decoding a single entity (a REST body) allocates
 * from an arena the caller passes in. */
#ifndef FG_CONFIG_H
#define FG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "fg_arena.h"
#include "fg_error.h"

/* ---- named limits (docs/configuration.md lists each) ---------------------------------- */
#define FG_NAME_MAX_LEN 64           /* upstream names, route ids, key names: [A-Za-z0-9._-] */
#define FG_PATH_MAX_LEN 2048         /* route paths */
#define FG_URL_MAX_LEN 2048          /* upstream URLs */
#define FG_MAX_UPSTREAMS 10000
#define FG_MAX_ROUTES 100000
#define FG_MAX_TARGETS 256           /* per upstream */
#define FG_MAX_KEYS 100000
#define FG_MAX_LIST 1024             /* hosts, methods, header ops, CIDRs per list */
#define FG_TIMEOUT_MAX_MS 3600000u   /* one hour: the largest timeout any field accepts */
#define FG_RETRIES_MAX 10
#define FG_REQUEST_ID_HEADER_MAX_LEN 64 /* logging.requestIdHeader: a header name */

/* ---- defaults ------------------------------------------------------------------------- */
#define FG_DEFAULT_PORT 3000
#define FG_DEFAULT_REQUEST_TIMEOUT_MS 30000u
#define FG_DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define FG_DEFAULT_IDLE_TIMEOUT_MS 60000u
#define FG_DEFAULT_MAX_BODY_SIZE (10ull * 1024 * 1024) /* "10mb" */
#define FG_DEFAULT_HEADER_TIMEOUT_MS 10000u      /* client: first byte to end of head */
#define FG_DEFAULT_MAX_HEADER_SIZE (64u * 1024)  /* request line + headers, bytes */
#define FG_DEFAULT_MAX_HEADERS 100u              /* header fields per request */
#define FG_DEFAULT_MAX_CONNECTIONS 10000u        /* client connections per data plane process */
#define FG_MAX_HEADER_SIZE_LIMIT (1024u * 1024)  /* the largest proxy.maxHeaderSize */
#define FG_MAX_HEADERS_LIMIT 10000u              /* the largest proxy.maxHeaders */
#define FG_MAX_CONNECTIONS_LIMIT 1000000u        /* the largest proxy.maxConnections */
#define FG_DEFAULT_UPSTREAM_TIMEOUT_MS 30000u
#define FG_DEFAULT_AUTH_HEADER "X-API-Key"
#define FG_DEFAULT_IDENTITY_HEADER "X-Consumer-Name" /* security.auth.identityHeader */
#define FG_DEFAULT_HMAC_SKEW_MS 300000u /* security.auth.hmacClockSkewMs: 5 min, as Kong */
#define FG_HMAC_SKEW_MAX_MS 3600000u    /* the largest hmacClockSkewMs */
#define FG_DEFAULT_BREAKER_THRESHOLD 50u              /* percent */
#define FG_DEFAULT_BREAKER_OPEN_MS 30000u
#define FG_DEFAULT_BREAKER_SUCCESS 1u
#define FG_DEFAULT_BREAKER_HALF_OPEN 1u
#define FG_DEFAULT_BREAKER_MIN_REQUESTS 10u
#define FG_DEFAULT_BREAKER_WINDOW_MS 10000u
#define FG_DEFAULT_HC_PATH "/health"
#define FG_DEFAULT_HC_INTERVAL_MS 10000u
#define FG_DEFAULT_HC_TIMEOUT_MS 2000u
#define FG_DEFAULT_HC_UNHEALTHY 3u
#define FG_DEFAULT_HC_HEALTHY 2u
#define FG_DEFAULT_METRICS_PATH "/metrics"
#define FG_DEFAULT_KEEPALIVE_MAX_IDLE 256u       /* upstream keepalive.maxIdle */
#define FG_DEFAULT_KEEPALIVE_IDLE_MS 60000u      /* upstream keepalive.idleTimeout */
#define FG_KEEPALIVE_MAX_IDLE_MAX 100000u
#define FG_DEFAULT_RL_REDIS_TIMEOUT_MS 50u   /* rateLimit.redis.timeoutMs: one decision's wait */
#define FG_DEFAULT_RL_FALLBACK_DIVISOR 1u    /* rateLimit.redis.fallbackDivisor */
#define FG_DEFAULT_RL_MAX_BUCKETS 65536u     /* rateLimit.maxBuckets: local buckets per process */
#define FG_RL_REDIS_TIMEOUT_MAX_MS 10000u    /* the largest rateLimit.redis.timeoutMs */
#define FG_RL_FALLBACK_DIVISOR_MAX 1024u     /* the largest rateLimit.redis.fallbackDivisor */
#define FG_RL_MIN_BUCKETS 16u                /* the smallest rateLimit.maxBuckets */
#define FG_RL_MAX_BUCKETS 16777216u          /* the largest rateLimit.maxBuckets (2^24) */
#define FG_DEFAULT_EJECT_FAILURES 5u             /* healthCheck.consecutiveFailures */
#define FG_DEFAULT_EJECT_MS 10000u               /* healthCheck.ejectDuration */
#define FG_EJECT_FAILURES_MAX 1000u
#define FG_DEFAULT_MAX_PENDING 8000u             /* proxy.maxPending: below maxConnections */
#define FG_MAX_PENDING_LIMIT 1000000u
#define FG_DEFAULT_RETRY_BUDGET 20u              /* proxy.retryBudget, percent of requests */

typedef enum fg_auth_mode {
    FG_AUTH_NONE = 0,     /* "none" (also YAML false / absent) */
    FG_AUTH_OPTIONAL = 1, /* "optional" */
    FG_AUTH_REQUIRED = 2, /* "required" (also YAML true) */
} fg_auth_mode_t;

typedef enum fg_lb_policy {
    FG_LB_ROUND_ROBIN = 0, /* "round-robin", smooth weighted */
    FG_LB_LEAST_CONN,      /* "least-conn" */
    FG_LB_RANDOM_TWO,      /* "random-two-choices" */
    FG_LB_CONSISTENT_HASH, /* "consistent-hash" */
} fg_lb_policy_t;

typedef enum fg_rl_backend {
    FG_RL_LOCAL = 0, /* "local" (the seed also says "memory": same thing) */
    FG_RL_REDIS = 1, /* "redis" */
} fg_rl_backend_t;

/* HTTP method bits for route `methods`; 0 means any method. */
enum {
    FG_METHOD_GET = 1u << 0,
    FG_METHOD_HEAD = 1u << 1,
    FG_METHOD_POST = 1u << 2,
    FG_METHOD_PUT = 1u << 3,
    FG_METHOD_DELETE = 1u << 4,
    FG_METHOD_PATCH = 1u << 5,
    FG_METHOD_OPTIONS = 1u << 6,
    FG_METHOD_CONNECT = 1u << 7,
    FG_METHOD_TRACE = 1u << 8,
};

/** A parsed http:// or https:// URL. `path` is "" when the URL has none (or just "/"). */
typedef struct fg_url {
    bool tls;         /* https */
    const char *host; /* name or address literal, IPv6 without brackets */
    uint16_t port;    /* explicit, or 80/443 */
    const char *path; /* base path prefix to prepend when forwarding, no trailing '/' */
} fg_url_t;

typedef struct fg_rate_limit {
    bool set;            /* false: absent (inherit), the other fields are zero */
    bool enabled;        /* `enabled`, default true when the object is present */
    uint32_t max;        /* tokens per window, > 0 */
    uint32_t window_ms;  /* `windowMs`, > 0 */
    uint32_t burst;      /* extra bucket depth, default 0 */
    const char *message; /* body text of the 429, or NULL */
} fg_rate_limit_t;

typedef struct fg_per_route_limit {
    const char *path; /* a route path pattern, same syntax as routes[].path */
    fg_rate_limit_t limit;
} fg_per_route_limit_t;

typedef struct fg_breaker_conf {
    bool enabled;
    uint32_t failure_threshold;  /* `failureThreshold`, percent 1..100 */
    uint32_t success_threshold;  /* `successThreshold`: half-open successes to close */
    uint32_t open_duration_ms;   /* `openDuration` (seed) or `timeout` (original schema) */
    uint32_t half_open_requests; /* `halfOpenRequests`: trial requests while half-open */
    uint32_t min_requests;       /* `minRequests`: below this in a window, never open */
    uint32_t window_ms;          /* `windowMs`: rolling window for the failure rate */
} fg_breaker_conf_t;

typedef struct fg_health_check {
    bool enabled;
    const char *path;
    uint32_t interval_ms, timeout_ms;
    uint32_t unhealthy_threshold, healthy_threshold;
    uint32_t consecutive_failures; /* `consecutiveFailures`: passive ejection after this many
                                      failed attempts in a row; 0 = no passive ejection */
    uint32_t eject_ms;             /* `ejectDuration`: first ejection's length (doubles) */
} fg_health_check_t;

/* Idle keep-alive connections kept per target (nginx `keepalive` / `keepalive_timeout`). */
typedef struct fg_keepalive_conf {
    uint32_t max_idle;        /* idle connections kept per target; 0 = no pooling */
    uint32_t idle_timeout_ms; /* an idle connection older than this is closed */
} fg_keepalive_conf_t;

typedef struct fg_target {
    const char *url; /* as written */
    fg_url_t parsed;
    uint32_t weight; /* 1..1000, default 1 */
} fg_target_t;

typedef struct fg_upstream {
    const char *name;
    const char *url;        /* the seed's single-target form, or NULL when `targets` is used */
    fg_target_t *targets;   /* decoded form: ALWAYS >= 1; from `url` when that was given */
    size_t n_targets;
    bool targets_explicit;  /* true when the JSON said `targets` (encode writes it back) */
    fg_lb_policy_t load_balancing;
    const char *hash_on;    /* consistent-hash key: "ip", "header:NAME" or "cookie:NAME" */
    uint32_t timeout_ms;
    uint32_t retries;
    const char *fallback;   /* name of another upstream, or NULL */
    const char *ca_file;    /* https: CA bundle for verification, or NULL (system) */
    bool tls_verify;        /* default true */
    const char *client_cert; /* https: PEM client certificate (mTLS), or NULL; with client_key */
    const char *client_key;  /* https: PEM private key of client_cert, or NULL */
    fg_keepalive_conf_t keepalive;
    fg_breaker_conf_t circuit_breaker;
    fg_health_check_t health_check;
} fg_upstream_t;

typedef struct fg_header_kv {
    const char *name;
    const char *value;
} fg_header_kv_t;

typedef struct fg_header_ops {
    fg_header_kv_t *add; /* `add: {Name: value}` set (replacing) on the message */
    size_t n_add;
    const char **remove; /* `remove: [Name]` */
    size_t n_remove;
} fg_header_ops_t;

typedef struct fg_route {
    const char *id;       /* stable identity: metric label, REST key */
    const char *path;     // "/exact", or a prefix ending in a star segment: "/api/*", "/*"
    bool prefix;          /* derived: the path ends in a star segment */
    const char *upstream; /* upstream name */
    unsigned methods;     /* FG_METHOD_* bits, 0 = any */
    const char **hosts;   /* Host header patterns ("api.example.com", "*.example.com") */
    size_t n_hosts;
    fg_auth_mode_t auth;
    uint32_t timeout_ms;  /* whole-request timeout, 0 = the upstream's */
    fg_rate_limit_t rate_limit;
    bool strip_prefix;    /* `stripPrefix` (alias `stripPath`): drop the matched prefix */
    bool websocket;       /* `websocket`: tunnel `Upgrade` requests (101) instead of
                             forwarding them as plain HTTP with Upgrade removed */
    int32_t priority;     /* overload shedding order, higher survives longer; default 0 */
    fg_header_ops_t request_headers;
    fg_header_ops_t response_headers;
    bool allow_encoded_slashes; /* `allowEncodedSlashes`: pass %2F and %5C in the path through
                                   undecoded instead of refusing the request (400) */
} fg_route_t;

typedef struct fg_api_key {
    const char *name;
    const char *key_sha256;  /* 64 lowercase hex chars: the seed's `key` */
    const char **routes;     /* route ids it may use; none = all */
    size_t n_routes;
    bool disabled;
    uint64_t expires_at_ms;  /* `expiresAt` (epoch ms, or RFC 3339 in JSON); 0 = never */
    bool hmac;               /* `hmac`: the key signs requests (HMAC-SHA256) and is never
                                sent itself; presenting it in the key header is refused */
} fg_api_key_t;

typedef struct fg_proxy_conf {
    uint16_t port;
    uint32_t request_timeout_ms; /* `timeout` (number) or `timeout.request` */
    uint32_t connect_timeout_ms; /* `timeout.connect` */
    uint32_t idle_timeout_ms;    /* `timeout.idle` */
    uint32_t header_timeout_ms;  /* `timeout.header`: client request head (slowloris), 408 */
    uint64_t max_body_size;      /* `maxBodySize`: bytes, or "10mb"/"512kb"/"1gb" strings */
    uint32_t max_header_size;    /* `maxHeaderSize`: request line + headers bytes, 431 */
    uint32_t max_headers;        /* `maxHeaders`: header fields per request, 431 */
    uint32_t max_connections;    /* `maxConnections`: client connections per process, 503 */
    uint32_t max_pending;        /* `maxPending`: pending requests per process where priority
                                    shedding starts (503); 0 = never shed */
    uint32_t retry_budget;       /* `retryBudget`: retries as a percent of requests, 0..100 */
} fg_proxy_conf_t;

typedef struct fg_auth_conf {
    const char *type;   /* "apiKey" */
    const char *header; /* default "X-API-Key" */
    fg_api_key_t *keys;
    size_t n_keys;
    bool bearer;                 /* `bearer`: also read the key from `Authorization: Bearer` */
    const char *identity_header; /* `identityHeader`: carries the key's name upstream; default
                                    FG_DEFAULT_IDENTITY_HEADER */
    uint32_t hmac_skew_ms;       /* `hmacClockSkewMs`: signed requests' Date within +- this */
} fg_auth_conf_t;

typedef struct fg_security_conf {
    const char **allowed_hosts; /* "api.example.com", "*.internal.corp" */
    size_t n_allowed_hosts;
    const char **blocked_ips;   /* addresses or CIDRs, IPv4 or IPv6 */
    size_t n_blocked_ips;
    const char **trusted_proxies; /* CIDRs whose X-Forwarded-* we keep */
    size_t n_trusted_proxies;
    bool strict;
    fg_auth_conf_t auth;
} fg_security_conf_t;

typedef struct fg_rate_limit_conf {
    bool enabled;              /* default true */
    fg_rl_backend_t backend;
    const char *redis_url;     /* `redis.url`, or NULL */
    fg_rate_limit_t global;
    fg_per_route_limit_t *per_route;
    size_t n_per_route;
    uint32_t redis_timeout_ms;       /* `redis.timeoutMs`: a decision waits at most this long
                                        for Redis, then is taken locally (fallback) */
    uint32_t redis_fallback_divisor; /* `redis.fallbackDivisor`: during a fallback each local
                                        limit is max/divisor (the number of data planes) */
    uint32_t max_buckets;            /* `maxBuckets`: local bucket table size per process;
                                        the least recently used bucket is evicted when full */
} fg_rate_limit_conf_t;

typedef struct fg_logging_conf {
    const char *level;   /* "debug" | "info" | "warn" | "error" */
    const char *format;  /* "json" */
    double success_rate; /* `sampling.successRate` 0..1, default 1 */
    double error_rate;   /* `sampling.errorRate` 0..1, default 1 */
    const char *request_id_header; /* `requestIdHeader`: request correlation header, NULL =
                                      "X-Request-ID" (issue 7) */
} fg_logging_conf_t;

typedef struct fg_metrics_conf {
    bool enabled; /* default true */
    uint16_t port; /* 0 = the data plane's status listener */
    const char *path;
} fg_metrics_conf_t;

typedef struct fg_config {
    fg_arena_t *arena;          /* owns everything below */
    const char *version;        /* the original schema's top-level `version`, or NULL */
    fg_proxy_conf_t proxy;
    fg_security_conf_t security;
    fg_rate_limit_conf_t rate_limit;
    fg_logging_conf_t logging;
    fg_metrics_conf_t metrics;
    fg_upstream_t *upstreams;
    size_t n_upstreams;
    fg_route_t *routes;
    size_t n_routes;
} fg_config_t;

/* ---- whole configurations ------------------------------------------------------------- */

/** Decode a whole configuration from a JSON tree (types, ranges, unknown keys, defaults).
 *  Does NOT run fg_config_validate. On success *out is a new config the caller frees with
 *  fg_config_free; on failure returns -EINVAL (or -ENOMEM) and fills err. */
int fg_config_decode(const cJSON *json, fg_config_t **out, fg_error_t *err);

/** Parse JSON text, decode and validate: the one call a snapshot consumer needs. */
int fg_config_parse(const char *text, size_t len, fg_config_t **out, fg_error_t *err);

/** Cross-entity rules: unique upstream names and route ids, every route's upstream and every
 *  fallback exists, counts within limits, key digests well-formed and names unique.
 *  0 or -EINVAL with err naming the field. */
int fg_config_validate(const fg_config_t *cfg, fg_error_t *err);

/** Canonical JSON tree of `cfg` (caller owns; cJSON_Delete). NULL on ENOMEM. */
cJSON *fg_config_encode(const fg_config_t *cfg);

/** Canonical compact JSON text (caller frees with free()). NULL on ENOMEM. */
char *fg_config_canonical(const fg_config_t *cfg);

/** A config with every setting at its default and no entities. NULL on ENOMEM. */
fg_config_t *fg_config_new_empty(void);

/** Release `cfg` and its arena. NULL is accepted. */
void fg_config_free(fg_config_t *cfg);

/* ---- single entities (REST bodies) ----------------------------------------------------
 * `path` is the JSON path used as prefix in error fields ("" for a bare REST body, or
 * "routes[3]"). Strings are copied into `arena`. */
int fg_upstream_decode(const cJSON *json, fg_arena_t *arena, const char *path,
                       fg_upstream_t *out, fg_error_t *err);
int fg_route_decode(const cJSON *json, fg_arena_t *arena, const char *path,
                    fg_route_t *out, fg_error_t *err);
int fg_api_key_decode(const cJSON *json, fg_arena_t *arena, const char *path,
                      fg_api_key_t *out, fg_error_t *err);
cJSON *fg_upstream_encode(const fg_upstream_t *u);
cJSON *fg_route_encode(const fg_route_t *r);
cJSON *fg_api_key_encode(const fg_api_key_t *k);

/* ---- helpers shared by both planes ---------------------------------------------------- */

/** Parse an http(s) URL into `out` (strings in `arena`). 0 or -EINVAL with err. */
int fg_url_parse(const char *url, fg_arena_t *arena, fg_url_t *out, const char *field,
                 fg_error_t *err);

/** True when `name` is 1..FG_NAME_MAX_LEN chars of [A-Za-z0-9._-]. */
bool fg_name_valid(const char *name);

/** Method token ("GET") to its FG_METHOD_* bit, 0 when not one of them. */
unsigned fg_method_bit(const char *method, size_t len);

/** Names for enums, as written in JSON. */
const char *fg_auth_mode_name(fg_auth_mode_t m);
const char *fg_lb_policy_name(fg_lb_policy_t p);

/* ---- allow-list findings (issue 5; fg_config_security.c) -------------------------------
 * An upstream outside `security.allowedHosts` or `security.blockedIPs` is a warning when
 * config is written (admin API, import), and an error under `security.strict`. Names are
 * not resolved here (no DNS on the control plane's request path): the data plane checks
 * every address it resolves when it connects. */

/** Called once per finding: `field` is the JSON path ("upstreams[2].url"), `message` says
 *  what is wrong and names the security field. Both are valid during the call only. */
typedef void (*fg_warning_fn)(void *ctx, const char *field, const char *message);

/** Check each target of upstream `u` (at JSON path `path`: "upstreams[2]", or "" for a REST
 *  body) against `sec`: a host outside allowedHosts (when the list is not empty), an address
 *  literal in a blocked range (the defaults or blockedIPs). Returns the number of findings
 *  (0: none) or -ENOMEM. */
int fg_upstream_security_check(const fg_security_conf_t *sec, const fg_upstream_t *u,
                               const char *path, fg_warning_fn fn, void *ctx);

/** fg_upstream_security_check for every upstream of `cfg`, against its own security
 *  section. Returns the number of findings or -ENOMEM. */
int fg_config_security_check(const fg_config_t *cfg, fg_warning_fn fn, void *ctx);

#endif
