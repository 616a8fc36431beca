/* fg_config_internal.h - what the config decoder, encoder, validator and URL parser share,
 * and nothing outside common/ should use.
 *
 * The limits here are the per-value bounds the decoder enforces beyond those named in
 * fg_config.h; docs/configuration.md lists every one of them. The `fg__*_problem` checks
 * return NULL when a value is acceptable, or a static message saying what is wrong, so the
 * decoder (which knows the JSON path) and the validator (which re-checks models built
 * without the decoder) report the same words. */
#ifndef FG_CONFIG_INTERNAL_H
#define FG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_config.h"

#define FG_MAX_BODY_SIZE_LIMIT (1ull << 40)     /* 1 TiB: the largest maxBodySize */
#define FG_RL_WINDOW_MAX_MS 86400000u           /* one day: the longest rate-limit window */
#define FG_PRIORITY_MIN (-1000000)
#define FG_PRIORITY_MAX 1000000
#define FG_WEIGHT_MAX 1000                      /* upstream target weight */
#define FG_BREAKER_COUNT_MAX 100000u /* successThreshold, halfOpenRequests, minRequests */
#define FG_HC_THRESHOLD_MAX 100u                /* healthy/unhealthy thresholds */
#define FG_HOST_MAX_LEN 253                     /* a DNS name */
#define FG_HEADER_NAME_MAX_LEN 256
#define FG_HEADER_VALUE_MAX_LEN 8192
#define FG_MESSAGE_MAX_LEN 1024                 /* rate-limit `message` */
#define FG_FILE_PATH_MAX_LEN 4096               /* caFile */
#define FG_VERSION_MAX_LEN 64                   /* top-level `version` */
#define FG_KEY_PLAINTEXT_MAX_LEN 512            /* a plaintext `key`, hashed on decode */
#define FG_EXPIRES_MAX_MS 253402300799999ull    /* 9999-12-31T23:59:59.999Z */
#define FG_CONFIG_ARENA_CHUNK (64u * 1024u)

/* Defaults of enumerated strings. */
#define FG_DEFAULT_AUTH_TYPE "apiKey"
#define FG_DEFAULT_LOG_LEVEL "info"
#define FG_DEFAULT_LOG_FORMAT "json"

/* ---- checks shared by decoder and validator ------------------------------------------- */
const char *fg__route_path_problem(const char *path);
/* A fixed HTTP path (health-check and metrics paths); NULL is fine (the default). */
const char *fg__http_path_problem(const char *path);
const char *fg__host_pattern_problem(const char *pattern);
const char *fg__ip_or_cidr_problem(const char *text);
const char *fg__header_name_problem(const char *name);
const char *fg__header_value_problem(const char *value);
const char *fg__identity_header_problem(const char *name);
const char *fg__request_id_header_problem(const char *name);
const char *fg__redis_url_problem(const char *url);
const char *fg__hash_on_problem(const char *hash_on);
bool fg__sha256_hex_valid(const char *s);
/* An API key's `name`: a label for people, 1..FG_NAME_MAX_LEN bytes, no control characters. */
bool fg__key_name_valid(const char *s);
#define KEY_NAME_RULE "must be 1 to 64 characters with no control characters"
/** "GET" for FG_METHOD_GET, ...; NULL for anything but a single known bit. */
const char *fg__method_name(unsigned bit);
bool fg__utf8_valid(const char *s, size_t len);
/** True for a finite double with no fractional part. Written without libm, which the
 *  libraries do not link. */
bool fg__double_is_integer(double v);

/** Fill every setting of `cfg` (not its entity arrays) with its default. */
void fg__config_defaults(fg_config_t *cfg);
/** Defaults of one entity, used before decoding its fields. */
void fg__upstream_defaults(fg_upstream_t *u);
void fg__route_defaults(fg_route_t *r);

/** Parse an RFC 3339 timestamp into epoch ms. 0, or -EINVAL for anything else. */
int fg__rfc3339_parse(const char *s, uint64_t *out_ms);

/** Canonical compact text of a cJSON tree (malloc'd), per PROTOCOL.md §5. NULL on ENOMEM. */
char *fg__json_canonical_print(const cJSON *item);

#endif
