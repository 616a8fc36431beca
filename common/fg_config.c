/* fg_config.c - the config model's lifecycle: defaults, creation, freeing, and
 * fg_config_parse, the text -> decoded -> validated path a snapshot consumer takes. */
#include <errno.h>
#include <string.h>

#include "fg_config.h"
#include "fg_config_internal.h"

void fg__config_defaults(fg_config_t *cfg)
{
    cfg->version = NULL;

    cfg->proxy.port = FG_DEFAULT_PORT;
    cfg->proxy.request_timeout_ms = FG_DEFAULT_REQUEST_TIMEOUT_MS;
    cfg->proxy.connect_timeout_ms = FG_DEFAULT_CONNECT_TIMEOUT_MS;
    cfg->proxy.idle_timeout_ms = FG_DEFAULT_IDLE_TIMEOUT_MS;
    cfg->proxy.max_body_size = FG_DEFAULT_MAX_BODY_SIZE;
    cfg->proxy.header_timeout_ms = FG_DEFAULT_HEADER_TIMEOUT_MS;
    cfg->proxy.max_header_size = FG_DEFAULT_MAX_HEADER_SIZE;
    cfg->proxy.max_headers = FG_DEFAULT_MAX_HEADERS;
    cfg->proxy.max_connections = FG_DEFAULT_MAX_CONNECTIONS;
    cfg->proxy.max_pending = FG_DEFAULT_MAX_PENDING;
    cfg->proxy.retry_budget = FG_DEFAULT_RETRY_BUDGET;

    memset(&cfg->security, 0, sizeof(cfg->security));
    cfg->security.auth.type = FG_DEFAULT_AUTH_TYPE;
    cfg->security.auth.header = FG_DEFAULT_AUTH_HEADER;
    cfg->security.auth.identity_header = FG_DEFAULT_IDENTITY_HEADER;
    cfg->security.auth.hmac_skew_ms = FG_DEFAULT_HMAC_SKEW_MS;

    memset(&cfg->rate_limit, 0, sizeof(cfg->rate_limit));
    cfg->rate_limit.enabled = true;
    cfg->rate_limit.backend = FG_RL_LOCAL;
    cfg->rate_limit.redis_timeout_ms = FG_DEFAULT_RL_REDIS_TIMEOUT_MS;
    cfg->rate_limit.redis_fallback_divisor = FG_DEFAULT_RL_FALLBACK_DIVISOR;
    cfg->rate_limit.max_buckets = FG_DEFAULT_RL_MAX_BUCKETS;

    cfg->logging.level = FG_DEFAULT_LOG_LEVEL;
    cfg->logging.format = FG_DEFAULT_LOG_FORMAT;
    cfg->logging.success_rate = 1.0;
    cfg->logging.error_rate = 1.0;

    cfg->metrics.enabled = true;
    cfg->metrics.port = 0;
    cfg->metrics.path = FG_DEFAULT_METRICS_PATH;
}

void fg__upstream_defaults(fg_upstream_t *u)
{
    memset(u, 0, sizeof(*u));
    u->load_balancing = FG_LB_ROUND_ROBIN;
    u->timeout_ms = FG_DEFAULT_UPSTREAM_TIMEOUT_MS;
    u->retries = 0;
    u->tls_verify = true;
    u->keepalive = (fg_keepalive_conf_t){.max_idle = FG_DEFAULT_KEEPALIVE_MAX_IDLE,
                                         .idle_timeout_ms = FG_DEFAULT_KEEPALIVE_IDLE_MS};
    u->circuit_breaker = (fg_breaker_conf_t){
        .enabled = false,
        .failure_threshold = FG_DEFAULT_BREAKER_THRESHOLD,
        .success_threshold = FG_DEFAULT_BREAKER_SUCCESS,
        .open_duration_ms = FG_DEFAULT_BREAKER_OPEN_MS,
        .half_open_requests = FG_DEFAULT_BREAKER_HALF_OPEN,
        .min_requests = FG_DEFAULT_BREAKER_MIN_REQUESTS,
        .window_ms = FG_DEFAULT_BREAKER_WINDOW_MS,
    };
    u->health_check = (fg_health_check_t){
        .enabled = false,
        .path = FG_DEFAULT_HC_PATH,
        .interval_ms = FG_DEFAULT_HC_INTERVAL_MS,
        .timeout_ms = FG_DEFAULT_HC_TIMEOUT_MS,
        .unhealthy_threshold = FG_DEFAULT_HC_UNHEALTHY,
        .healthy_threshold = FG_DEFAULT_HC_HEALTHY,
        .consecutive_failures = FG_DEFAULT_EJECT_FAILURES,
        .eject_ms = FG_DEFAULT_EJECT_MS,
    };
}

void fg__route_defaults(fg_route_t *r)
{
    memset(r, 0, sizeof(*r));
    r->auth = FG_AUTH_NONE;
}

fg_config_t *fg_config_new_empty(void)
{
    fg_arena_t *arena = fg_arena_new(FG_CONFIG_ARENA_CHUNK);
    if (!arena)
        return NULL;
    fg_config_t *cfg = fg_arena_calloc(arena, 1, sizeof(*cfg));
    if (!cfg) {
        fg_arena_free(arena);
        return NULL;
    }
    cfg->arena = arena;
    fg__config_defaults(cfg);
    return cfg;
}

void fg_config_free(fg_config_t *cfg)
{
    if (!cfg)
        return;
    fg_arena_free(cfg->arena); /* cfg itself lives in its arena */
}

int fg_config_parse(const char *text, size_t len, fg_config_t **out, fg_error_t *err)
{
    const char *end = NULL;
    fg_config_t *cfg = NULL;
    int rc;

    *out = NULL;
    fg_error_clear(err);
    if (!text)
        return fg_error_set(err, NULL, "no configuration text");
    cJSON *json = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!json)
        return fg_error_set(err, NULL, "malformed JSON near byte %zu",
                            end && end >= text ? (size_t)(end - text) : (size_t)0);
    /* cJSON stops at the end of the first value; anything but whitespace after it means
     * the text was not one JSON document. */
    for (const char *p = end; p && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(json);
            return fg_error_set(err, NULL, "trailing data after JSON value at byte %zu",
                                (size_t)(p - text));
        }
    }
    rc = fg_config_decode(json, &cfg, err);
    cJSON_Delete(json);
    if (rc != 0)
        return rc;
    rc = fg_config_validate(cfg, err);
    if (rc != 0) {
        fg_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}
