/* test_config.c - unit tests for the config codec and validator (common/fg_config_*.c):
 * types and ranges, unknown keys named by path, defaults, aliases, size strings, URL and path
 * syntax, cross-entity validation, and the canonical round trip the snapshot checksum relies
 * on. JSON in this file is written with single quotes, turned into double quotes by J(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fg_cidr.h"
#include "fg_config.h"
#include "fg_config_internal.h"
#include "fg_time.h"

/* Single-quoted JSON -> real JSON, in a buffer owned by the caller (free()). */
static char *J(const char *s)
{
    char *out = strdup(s);
    assert_non_null(out);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* Parse + decode (no validate). Returns rc; *out set on success. */
static int decode(const char *sq_json, fg_config_t **out, fg_error_t *err)
{
    char *text = J(sq_json);
    cJSON *json = cJSON_Parse(text);
    free(text);
    assert_non_null(json);
    *out = NULL;
    int rc = fg_config_decode(json, out, err);
    cJSON_Delete(json);
    return rc;
}

static fg_config_t *decode_ok(const char *sq_json)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    int rc = decode(sq_json, &cfg, &err);
    if (rc != 0)
        fail_msg("decode failed: %s: %s", err.field, err.message);
    return cfg;
}

static fg_config_t *parse_ok(const char *sq_json)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    char *text = J(sq_json);
    int rc = fg_config_parse(text, strlen(text), &cfg, &err);
    free(text);
    if (rc != 0)
        fail_msg("parse failed: %s: %s", err.field, err.message);
    return cfg;
}

static void expect_decode_error(const char *sq_json, const char *field, const char *substr)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    int rc = decode(sq_json, &cfg, &err);
    if (rc == 0) {
        fg_config_free(cfg);
        fail_msg("decode of %s succeeded; expected error at %s", sq_json, field);
    }
    assert_int_equal(rc, -EINVAL);
    assert_null(cfg);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: expected field '%s', got '%s' (%s)", sq_json, field, err.field,
                 err.message);
    if (substr && !strstr(err.message, substr))
        fail_msg("%s: message '%s' lacks '%s'", sq_json, err.message, substr);
}

static void expect_validate_error(const char *sq_json, const char *field, const char *substr)
{
    fg_config_t *cfg = decode_ok(sq_json);
    fg_error_t err;
    int rc = fg_config_validate(cfg, &err);
    fg_config_free(cfg);
    if (rc == 0)
        fail_msg("validate of %s succeeded; expected error at %s", sq_json, field);
    assert_int_equal(rc, -EINVAL);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: expected field '%s', got '%s' (%s)", sq_json, field, err.field,
                 err.message);
    if (substr && !strstr(err.message, substr))
        fail_msg("%s: message '%s' lacks '%s'", sq_json, err.message, substr);
}

/* Wrap one upstream / one route into a whole config. */
#define UP(body) "{'upstreams':[" body "]}"
#define ROUTE(body) "{'upstreams':[{'name':'b','url':'http://127.0.0.1:8081'}],'routes':[" body "]}"

/* canonical(decode(canonical(x))) == canonical(x), and returns canonical(x) (free()). */
static char *assert_round_trip(const fg_config_t *cfg)
{
    char *c1 = fg_config_canonical(cfg);
    assert_non_null(c1);
    fg_config_t *again = NULL;
    fg_error_t err;
    cJSON *json = cJSON_Parse(c1);
    assert_non_null(json);
    int rc = fg_config_decode(json, &again, &err);
    cJSON_Delete(json);
    if (rc != 0)
        fail_msg("canonical text does not decode: %s: %s\n%s", err.field, err.message, c1);
    char *c2 = fg_config_canonical(again);
    assert_non_null(c2);
    assert_string_equal(c1, c2);
    free(c2);
    fg_config_free(again);
    return c1;
}

/* ---- the seed README's examples ------------------------------------------------------- */

static const char seed_minimal[] =
    "{'upstreams':[{'name':'backend','url':'http://localhost:8080'}],"
    " 'routes':[{'id':'all','path':'/*','upstream':'backend'}]}";

/* The seed's "Full Example", as JSON, with the route ids the validator requires. */
static const char seed_full[] =
    "{'proxy':{'port':3000,'timeout':30000,'maxBodySize':'10mb'},"
    " 'security':{'allowedHosts':['api.example.com','*.internal.corp'],"
    "             'blockedIPs':['169.254.169.254','10.0.0.0/8'],"
    "             'auth':{'type':'apiKey','header':'X-API-Key'}},"
    " 'rateLimit':{'backend':'redis','redis':{'url':'redis://localhost:6379'},"
    "              'global':{'max':1000,'windowMs':60000}},"
    " 'upstreams':[{'name':'primary-api','url':'https://api.primary.com','timeout':5000,"
    "               'retries':3,'circuitBreaker':{'enabled':true,'failureThreshold':50,"
    "               'openDuration':30000}},"
    "              {'name':'fallback-api','url':'https://api.fallback.com','timeout':10000}],"
    " 'routes':[{'id':'users','path':'/api/users/*','upstream':'primary-api','auth':'required',"
    "            'rateLimit':{'max':100,'windowMs':60000}},"
    "           {'id':'batch','path':'/api/batch/*','upstream':'primary-api','auth':'required',"
    "            'timeout':120000,'rateLimit':{'max':10,'windowMs':60000}}],"
    " 'logging':{'level':'info','format':'json','sampling':{'successRate':0.1,'errorRate':1.0}}}";

static void test_seed_minimal(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(seed_minimal);
    assert_int_equal(cfg->n_upstreams, 1);
    assert_string_equal(cfg->upstreams[0].name, "backend");
    assert_string_equal(cfg->upstreams[0].url, "http://localhost:8080");
    assert_int_equal(cfg->upstreams[0].n_targets, 1);
    assert_string_equal(cfg->upstreams[0].targets[0].parsed.host, "localhost");
    assert_int_equal(cfg->upstreams[0].targets[0].parsed.port, 8080);
    assert_false(cfg->upstreams[0].targets[0].parsed.tls);
    assert_string_equal(cfg->upstreams[0].targets[0].parsed.path, "");
    assert_int_equal(cfg->upstreams[0].targets[0].weight, 1);
    assert_false(cfg->upstreams[0].targets_explicit);
    assert_int_equal(cfg->n_routes, 1);
    assert_true(cfg->routes[0].prefix);
    assert_int_equal(cfg->routes[0].auth, FG_AUTH_NONE);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);
}

static void test_seed_minimal_without_id(void **state)
{
    (void)state;
    /* The seed's YAML has no route ids: decode accepts that, the validator does not. */
    expect_validate_error("{'upstreams':[{'name':'backend','url':'http://localhost:8080'}],"
                          " 'routes':[{'path':'/*','upstream':'backend'}]}",
                          "routes[0].id", "required");
}

static void test_seed_full(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(seed_full);
    assert_int_equal(cfg->proxy.port, 3000);
    assert_int_equal(cfg->proxy.request_timeout_ms, 30000);
    assert_int_equal(cfg->proxy.connect_timeout_ms, FG_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.max_body_size, 10u * 1024 * 1024);
    assert_int_equal(cfg->security.n_allowed_hosts, 2);
    assert_string_equal(cfg->security.allowed_hosts[1], "*.internal.corp");
    assert_int_equal(cfg->security.n_blocked_ips, 2);
    assert_string_equal(cfg->security.auth.header, "X-API-Key");
    assert_int_equal(cfg->rate_limit.backend, FG_RL_REDIS);
    assert_string_equal(cfg->rate_limit.redis_url, "redis://localhost:6379");
    assert_true(cfg->rate_limit.global.set);
    assert_true(cfg->rate_limit.global.enabled);
    assert_int_equal(cfg->rate_limit.global.max, 1000);
    assert_int_equal(cfg->rate_limit.global.window_ms, 60000);
    const fg_upstream_t *p = &cfg->upstreams[0];
    assert_true(p->targets[0].parsed.tls);
    assert_int_equal(p->targets[0].parsed.port, 443);
    assert_int_equal(p->timeout_ms, 5000);
    assert_int_equal(p->retries, 3);
    assert_true(p->circuit_breaker.enabled);
    assert_int_equal(p->circuit_breaker.failure_threshold, 50);
    assert_int_equal(p->circuit_breaker.open_duration_ms, 30000);
    assert_false(cfg->upstreams[1].circuit_breaker.enabled);
    assert_int_equal(cfg->upstreams[1].timeout_ms, 10000);
    assert_int_equal(cfg->routes[0].auth, FG_AUTH_REQUIRED);
    assert_true(cfg->routes[0].rate_limit.set);
    assert_int_equal(cfg->routes[0].rate_limit.max, 100);
    assert_int_equal(cfg->routes[1].timeout_ms, 120000);
    assert_int_equal(cfg->routes[1].rate_limit.max, 10);
    assert_string_equal(cfg->logging.level, "info");
    assert_true(cfg->logging.success_rate > 0.0999 && cfg->logging.success_rate < 0.1001);
    assert_true(cfg->logging.error_rate == 1.0);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);
}

/* ---- defaults ------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{}");
    assert_null(cfg->version);
    assert_int_equal(cfg->proxy.port, FG_DEFAULT_PORT);
    assert_int_equal(cfg->proxy.request_timeout_ms, FG_DEFAULT_REQUEST_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.connect_timeout_ms, FG_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.idle_timeout_ms, FG_DEFAULT_IDLE_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.max_body_size, FG_DEFAULT_MAX_BODY_SIZE);
    assert_string_equal(cfg->security.auth.header, FG_DEFAULT_AUTH_HEADER);
    assert_string_equal(cfg->security.auth.type, "apiKey");
    assert_false(cfg->security.strict);
    assert_true(cfg->rate_limit.enabled);
    assert_int_equal(cfg->rate_limit.backend, FG_RL_LOCAL);
    assert_false(cfg->rate_limit.global.set);
    assert_string_equal(cfg->logging.level, "info");
    assert_string_equal(cfg->logging.format, "json");
    assert_true(cfg->logging.success_rate == 1.0 && cfg->logging.error_rate == 1.0);
    assert_true(cfg->metrics.enabled);
    assert_int_equal(cfg->metrics.port, 0);
    assert_string_equal(cfg->metrics.path, FG_DEFAULT_METRICS_PATH);
    assert_int_equal(cfg->n_upstreams, 0);
    assert_int_equal(cfg->n_routes, 0);

    /* fg_config_new_empty is the same configuration. */
    fg_config_t *empty = fg_config_new_empty();
    assert_non_null(empty);
    char *a = fg_config_canonical(cfg), *b = fg_config_canonical(empty);
    assert_string_equal(a, b);
    free(a);
    free(b);
    fg_config_free(empty);
    fg_config_free(cfg);
}

static void test_entity_defaults(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok(ROUTE("{'path':'/x','upstream':'b'}"));
    const fg_upstream_t *u = &cfg->upstreams[0];
    assert_int_equal(u->load_balancing, FG_LB_ROUND_ROBIN);
    assert_int_equal(u->timeout_ms, FG_DEFAULT_UPSTREAM_TIMEOUT_MS);
    assert_int_equal(u->retries, 0);
    assert_true(u->tls_verify);
    assert_null(u->client_cert);
    assert_null(u->client_key);
    assert_int_equal(u->keepalive.max_idle, FG_DEFAULT_KEEPALIVE_MAX_IDLE);
    assert_int_equal(u->keepalive.idle_timeout_ms, FG_DEFAULT_KEEPALIVE_IDLE_MS);
    assert_null(u->fallback);
    assert_null(u->hash_on);
    assert_false(u->circuit_breaker.enabled);
    assert_int_equal(u->circuit_breaker.failure_threshold, FG_DEFAULT_BREAKER_THRESHOLD);
    assert_int_equal(u->circuit_breaker.open_duration_ms, FG_DEFAULT_BREAKER_OPEN_MS);
    assert_int_equal(u->circuit_breaker.min_requests, FG_DEFAULT_BREAKER_MIN_REQUESTS);
    assert_false(u->health_check.enabled);
    assert_string_equal(u->health_check.path, FG_DEFAULT_HC_PATH);
    assert_int_equal(u->health_check.interval_ms, FG_DEFAULT_HC_INTERVAL_MS);
    const fg_route_t *r = &cfg->routes[0];
    assert_null(r->id);
    assert_false(r->prefix);
    assert_int_equal(r->methods, 0);
    assert_int_equal(r->auth, FG_AUTH_NONE);
    assert_int_equal(r->timeout_ms, 0);
    assert_false(r->rate_limit.set);
    assert_false(r->strip_prefix);
    assert_int_equal(r->priority, 0);
    assert_int_equal(r->request_headers.n_add, 0);
    fg_config_free(cfg);

    /* A circuitBreaker or healthCheck object that is present is enabled unless it says not. */
    cfg = decode_ok(UP("{'name':'a','url':'http://h','circuitBreaker':{},'healthCheck':{}}"));
    assert_true(cfg->upstreams[0].circuit_breaker.enabled);
    assert_true(cfg->upstreams[0].health_check.enabled);
    fg_config_free(cfg);
}

/* ---- unknown keys, duplicates and types ----------------------------------------------- */

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_decode_error("{'bogus':1}", "bogus", "unknown key");
    expect_decode_error("{'proxy':{'prot':80}}", "proxy.prot", "unknown key");
    expect_decode_error("{'proxy':{'timeout':{'read':5}}}", "proxy.timeout.read", "unknown key");
    expect_decode_error(UP("{'name':'a','url':'http://h','circuitBreaker':{'x':1}}"),
                        "upstreams[0].circuitBreaker.x", "unknown key");
    expect_decode_error(UP("{'name':'a','targets':[{'url':'http://h','wieght':2}]}"),
                        "upstreams[0].targets[0].wieght", "unknown key");
    expect_decode_error("{'upstreams':[{'name':'b','url':'http://h'}],'routes':["
                        "{'path':'/a','upstream':'b'},{'path':'/b','upstream':'b'},"
                        "{'path':'/c','upstream':'b','rateLimt':{}}]}",
                        "routes[2].rateLimt", "unknown key");
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'k','key':'x','secret':1}]}}}",
                        "security.auth.keys[0].secret", "unknown key");
    expect_decode_error("{'logging':{'sampling':{'rate':1}}}", "logging.sampling.rate", NULL);
    expect_decode_error("{'rateLimit':{'redis':{'host':'x'}}}", "rateLimit.redis.host", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'set':{}}}"),
                        "routes[0].requestHeaders.set", "unknown key");
    /* Keys are case-sensitive: the seed's names are camelCase. */
    expect_decode_error("{'Proxy':{}}", "Proxy", "unknown key");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_decode_error("{'proxy':{'port':1,'port':2}}", "proxy.port", "duplicate");
}

static void test_types(void **state)
{
    (void)state;
    expect_decode_error("[]", "", "object");
    expect_decode_error("{'proxy':[]}", "proxy", "object");
    expect_decode_error("{'proxy':{'port':'3000'}}", "proxy.port", "integer");
    expect_decode_error("{'proxy':{'port':true}}", "proxy.port", "integer");
    expect_decode_error("{'upstreams':{}}", "upstreams", "array");
    expect_decode_error("{'routes':[1]}", "routes[0]", "object");
    expect_decode_error(UP("{'name':'a','url':'http://h','tlsVerify':'yes'}"),
                        "upstreams[0].tlsVerify", "true or false");
    /* Half a client certificate pair, and keepalive's own keys and ranges. */
    expect_decode_error(UP("{'name':'a','url':'https://h','clientCert':'/c.pem'}"),
                        "upstreams[0].clientKey", "required with clientCert");
    expect_decode_error(UP("{'name':'a','url':'https://h','clientKey':'/c.key'}"),
                        "upstreams[0].clientCert", "required with clientKey");
    expect_decode_error(UP("{'name':'a','url':'https://h','clientCert':3,'clientKey':'/k'}"),
                        "upstreams[0].clientCert", "string");
    expect_decode_error(UP("{'name':'a','url':'http://h','keepalive':{'max':1}}"),
                        "upstreams[0].keepalive.max", "unknown key");
    expect_decode_error(UP("{'name':'a','url':'http://h','keepalive':{'idleTimeout':0}}"),
                        "upstreams[0].keepalive.idleTimeout", "");
    expect_decode_error(UP("{'name':'a','url':'http://h','keepalive':{'maxIdle':100001}}"),
                        "upstreams[0].keepalive.maxIdle", "");
    expect_decode_error(UP("{'name':5,'url':'http://h'}"), "upstreams[0].name", "string");
    expect_decode_error(UP("{'name':'','url':'http://h'}"), "upstreams[0].name", "empty");
    expect_decode_error("{'security':{'allowedHosts':'a.com'}}", "security.allowedHosts",
                        "array");
    expect_decode_error("{'security':{'allowedHosts':['a.com',7]}}",
                        "security.allowedHosts[1]", "string");
    expect_decode_error("{'logging':{'sampling':{'successRate':'all'}}}",
                        "logging.sampling.successRate", "between 0 and 1");
    expect_decode_error("{'version':true}", "version", "string");
}

static void test_null_means_absent(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok(
        "{'proxy':null,'upstreams':[{'name':'a','url':'http://h','fallback':null,"
        "'circuitBreaker':null}],'routes':null}");
    assert_int_equal(cfg->proxy.port, FG_DEFAULT_PORT);
    assert_null(cfg->upstreams[0].fallback);
    assert_false(cfg->upstreams[0].circuit_breaker.enabled);
    fg_config_free(cfg);
    expect_decode_error(UP("{'name':null,'url':'http://h'}"), "upstreams[0].name", "required");
}

/* ---- numbers -------------------------------------------------------------------------- */

static void test_integer_ranges(void **state)
{
    (void)state;
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':0}"), "upstreams[0].timeout",
                        "between 1 and 3600000");
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':3600001}"),
                        "upstreams[0].timeout", "between 1 and 3600000");
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':1.5}"), "upstreams[0].timeout",
                        "integer");
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':-1}"), "upstreams[0].timeout",
                        NULL);
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':1e300}"),
                        "upstreams[0].timeout", NULL);
    /* Beyond 2^53 doubles lose integers; such a value must be refused, not wrapped. */
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':9007199254740993}"),
                        "upstreams[0].timeout", NULL);
    expect_decode_error(UP("{'name':'a','url':'http://h','timeout':1e999}"),
                        "upstreams[0].timeout", "integer");
    expect_decode_error(UP("{'name':'a','url':'http://h','retries':11}"), "upstreams[0].retries",
                        "between 0 and 10");
    expect_decode_error(UP("{'name':'a','url':'http://h','circuitBreaker':{'failureThreshold':101}}"),
                        "upstreams[0].circuitBreaker.failureThreshold", "between 1 and 100");
    expect_decode_error(UP("{'name':'a','url':'http://h','circuitBreaker':{'failureThreshold':0}}"),
                        "upstreams[0].circuitBreaker.failureThreshold", NULL);
    expect_decode_error("{'proxy':{'port':0}}", "proxy.port", "between 1 and 65535");
    expect_decode_error("{'proxy':{'port':65536}}", "proxy.port", NULL);
    expect_decode_error("{'metrics':{'port':70000}}", "metrics.port", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','rateLimit':{'max':10,'windowMs':0}}"),
                        "routes[0].rateLimit.windowMs", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','rateLimit':{'max':0,'windowMs':10}}"),
                        "routes[0].rateLimit.max", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','rateLimit':{'windowMs':10}}"),
                        "routes[0].rateLimit.max", "required");
    expect_decode_error(UP("{'name':'a','targets':[{'url':'http://h','weight':0}]}"),
                        "upstreams[0].targets[0].weight", "between 1 and 1000");
    expect_decode_error(UP("{'name':'a','targets':[{'url':'http://h','weight':1001}]}"),
                        "upstreams[0].targets[0].weight", NULL);
    expect_decode_error("{'logging':{'sampling':{'errorRate':1.5}}}", "logging.sampling.errorRate",
                        NULL);
    expect_decode_error("{'logging':{'sampling':{'successRate':-0.1}}}",
                        "logging.sampling.successRate", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','timeout':3600001}"),
                        "routes[0].timeout", NULL);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','priority':0.5}"),
                        "routes[0].priority", "integer");

    /* Edges that are fine: -0 is 0, 1.0 is 1, bounds are inclusive. */
    fg_config_t *cfg = decode_ok(
        "{'proxy':{'port':65535},'upstreams':[{'name':'a','url':'http://h','retries':-0,"
        "'timeout':3600000,'targets':null}],'routes':[{'path':'/','upstream':'a','timeout':0,"
        "'priority':-5,'rateLimit':{'enabled':false}}],"
        "'logging':{'sampling':{'successRate':0,'errorRate':1.0}}}");
    assert_int_equal(cfg->proxy.port, 65535);
    assert_int_equal(cfg->upstreams[0].retries, 0);
    assert_int_equal(cfg->upstreams[0].timeout_ms, FG_TIMEOUT_MAX_MS);
    assert_int_equal(cfg->routes[0].priority, -5);
    assert_true(cfg->routes[0].rate_limit.set);
    assert_false(cfg->routes[0].rate_limit.enabled);
    assert_true(cfg->logging.success_rate == 0.0);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"successRate\":0,"));
    assert_non_null(strstr(canon, "\"priority\":-5"));
    free(canon);
    fg_config_free(cfg);
}

/* ---- aliases -------------------------------------------------------------------------- */

static void test_aliases(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok(
        "{'upstreams':[{'name':'b','url':'http://h','circuitBreaker':{'timeout':1234}}],"
        " 'routes':[{'path':'/a/*','upstream':'b','stripPath':true,'auth':true},"
        "           {'path':'/b','upstream':'b','stripPrefix':true,'auth':false},"
        "           {'path':'/c','upstream':'b','auth':'optional'},"
        "           {'path':'/d','upstream':'b','auth':'REQUIRED'},"
        "           {'path':'/e','upstream':'b','auth':'none'}],"
        " 'rateLimit':{'backend':'memory'},"
        " 'logging':{'level':'warning'}}");
    assert_int_equal(cfg->upstreams[0].circuit_breaker.open_duration_ms, 1234);
    assert_true(cfg->routes[0].strip_prefix);
    assert_true(cfg->routes[1].strip_prefix);
    assert_int_equal(cfg->routes[0].auth, FG_AUTH_REQUIRED);
    assert_int_equal(cfg->routes[1].auth, FG_AUTH_NONE);
    assert_int_equal(cfg->routes[2].auth, FG_AUTH_OPTIONAL);
    assert_int_equal(cfg->routes[3].auth, FG_AUTH_REQUIRED);
    assert_int_equal(cfg->routes[4].auth, FG_AUTH_NONE);
    assert_int_equal(cfg->rate_limit.backend, FG_RL_LOCAL);
    assert_string_equal(cfg->logging.level, "warn");
    /* Aliases re-encode under their canonical names. */
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"openDuration\":1234"));
    assert_null(strstr(canon, "stripPath"));
    assert_non_null(strstr(canon, "\"stripPrefix\":true"));
    assert_non_null(strstr(canon, "\"auth\":\"required\""));
    assert_non_null(strstr(canon, "\"backend\":\"local\""));
    assert_non_null(strstr(canon, "\"level\":\"warn\""));
    free(canon);
    fg_config_free(cfg);

    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','stripPath':true,'stripPrefix':true}"),
                        "routes[0].stripPath", "not both");
    expect_decode_error(UP("{'name':'a','url':'http://h','circuitBreaker':{'timeout':1,"
                           "'openDuration':2}}"),
                        "upstreams[0].circuitBreaker.timeout", "not both");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','auth':'sometimes'}"),
                        "routes[0].auth", "required");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','auth':1}"), "routes[0].auth", NULL);
    expect_decode_error("{'rateLimit':{'backend':'memcached'}}", "rateLimit.backend", NULL);
    expect_decode_error("{'logging':{'level':'verbose'}}", "logging.level", NULL);
    expect_decode_error("{'logging':{'format':'text'}}", "logging.format", NULL);
}

static void test_proxy_timeout_forms(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok("{'proxy':{'timeout':1000}}");
    assert_int_equal(cfg->proxy.request_timeout_ms, 1000);
    assert_int_equal(cfg->proxy.connect_timeout_ms, FG_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.idle_timeout_ms, FG_DEFAULT_IDLE_TIMEOUT_MS);
    char *a = assert_round_trip(cfg);
    fg_config_free(cfg);

    cfg = decode_ok("{'proxy':{'timeout':{'request':1000,'connect':200,'idle':300}}}");
    assert_int_equal(cfg->proxy.request_timeout_ms, 1000);
    assert_int_equal(cfg->proxy.connect_timeout_ms, 200);
    assert_int_equal(cfg->proxy.idle_timeout_ms, 300);
    fg_config_free(cfg);

    /* The number form and the object form with the same values are the same config. */
    cfg = decode_ok("{'proxy':{'timeout':{'request':1000}}}");
    char *b = assert_round_trip(cfg);
    assert_string_equal(a, b);
    free(a);
    free(b);
    fg_config_free(cfg);

    expect_decode_error("{'proxy':{'timeout':{'connect':0}}}", "proxy.timeout.connect", NULL);
    expect_decode_error("{'proxy':{'timeout':'30s'}}", "proxy.timeout", "integer");
}

static void test_max_body_size(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        uint64_t bytes;
    } ok[] = {
        {"{'proxy':{'maxBodySize':'10mb'}}", 10485760ull},
        {"{'proxy':{'maxBodySize':'10MB'}}", 10485760ull},
        {"{'proxy':{'maxBodySize':'512kb'}}", 524288ull},
        {"{'proxy':{'maxBodySize':'512Kb'}}", 524288ull},
        {"{'proxy':{'maxBodySize':'1gb'}}", 1073741824ull},
        {"{'proxy':{'maxBodySize':'100b'}}", 100ull},
        {"{'proxy':{'maxBodySize':'100'}}", 100ull},
        {"{'proxy':{'maxBodySize':'1.5mb'}}", 1572864ull},
        {"{'proxy':{'maxBodySize':'10 mb'}}", 10485760ull},
        {"{'proxy':{'maxBodySize':'1tb'}}", 1099511627776ull},
        {"{'proxy':{'maxBodySize':4096}}", 4096ull},
        {"{'proxy':{'maxBodySize':20000000000}}", 20000000000ull},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        fg_config_t *cfg = decode_ok(ok[i].json);
        if (cfg->proxy.max_body_size != ok[i].bytes)
            fail_msg("%s: got %llu", ok[i].json, (unsigned long long)cfg->proxy.max_body_size);
        free(assert_round_trip(cfg));
        fg_config_free(cfg);
    }
    static const char *const bad[] = {
        "{'proxy':{'maxBodySize':'10xb'}}", "{'proxy':{'maxBodySize':'mb'}}",
        "{'proxy':{'maxBodySize':'0b'}}",   "{'proxy':{'maxBodySize':'2tb'}}",
        "{'proxy':{'maxBodySize':'-1mb'}}", "{'proxy':{'maxBodySize':0}}",
        "{'proxy':{'maxBodySize':1.5}}",    "{'proxy':{'maxBodySize':'1e3'}}",
        "{'proxy':{'maxBodySize':true}}",   "{'proxy':{'maxBodySize':'10mbb'}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_decode_error(bad[i], "proxy.maxBodySize", NULL);
}

/* ---- upstreams and URLs --------------------------------------------------------------- */

static void test_url_or_targets(void **state)
{
    (void)state;
    expect_decode_error(UP("{'name':'a','url':'http://h','targets':[{'url':'http://h'}]}"),
                        "upstreams[0].targets", "not both");
    expect_decode_error(UP("{'name':'a'}"), "upstreams[0].url", "required");
    expect_decode_error(UP("{'name':'a','targets':[]}"), "upstreams[0].targets", "at least one");
    expect_decode_error(UP("{'name':'a','targets':[{'weight':2}]}"), "upstreams[0].targets[0].url",
                        "required");

    fg_config_t *cfg = decode_ok(UP(
        "{'name':'a','targets':[{'url':'http://10.0.0.1:8080','weight':3},"
        "{'url':'https://[::1]:8443/base/'}],'loadBalancing':'consistent-hash',"
        "'hashOn':'header:X-User'}"));
    const fg_upstream_t *u = &cfg->upstreams[0];
    assert_true(u->targets_explicit);
    assert_null(u->url);
    assert_int_equal(u->n_targets, 2);
    assert_int_equal(u->targets[0].weight, 3);
    assert_int_equal(u->targets[1].weight, 1);
    assert_string_equal(u->targets[1].parsed.host, "::1");
    assert_int_equal(u->targets[1].parsed.port, 8443);
    assert_true(u->targets[1].parsed.tls);
    assert_string_equal(u->targets[1].parsed.path, "/base");
    assert_int_equal(u->load_balancing, FG_LB_CONSISTENT_HASH);
    assert_string_equal(u->hash_on, "header:X-User");
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"targets\":[{\"url\":\"http://10.0.0.1:8080\",\"weight\":3}"));
    assert_null(strstr(canon, "\"url\":\"http://10.0.0.1:8080\",\"loadBalancing\""));
    free(canon);
    fg_config_free(cfg);

    /* An upstream given with `url` keeps `url` in canonical form. */
    cfg = decode_ok(UP("{'name':'a','url':'http://h:81/p'}"));
    canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "{\"name\":\"a\",\"url\":\"http://h:81/p\",\"loadBalancing\""));
    assert_null(strstr(canon, "targets"));
    free(canon);
    fg_config_free(cfg);

    expect_decode_error(UP("{'name':'a','url':'http://h','loadBalancing':'fastest'}"),
                        "upstreams[0].loadBalancing", NULL);
    expect_decode_error(UP("{'name':'a','url':'http://h','hashOn':'body'}"), "upstreams[0].hashOn",
                        NULL);
    expect_decode_error(UP("{'name':'a','url':'http://h','fallback':'no good'}"),
                        "upstreams[0].fallback", NULL);
    expect_decode_error(UP("{'name':'a','url':'http://h','healthCheck':{'path':'health'}}"),
                        "upstreams[0].healthCheck.path", "'/'");
}

static void test_url_parse(void **state)
{
    (void)state;
    fg_arena_t *a = fg_arena_new(0);
    fg_url_t u;
    fg_error_t err;

    assert_int_equal(fg_url_parse("HTTP://Example.COM", a, &u, "url", &err), 0);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "");
    assert_int_equal(fg_url_parse("https://example.com/", a, &u, "url", &err), 0);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "");
    assert_int_equal(fg_url_parse("http://127.0.0.1:65535/a/b//", a, &u, "url", &err), 0);
    assert_int_equal(u.port, 65535);
    assert_string_equal(u.path, "/a/b");
    assert_int_equal(fg_url_parse("http://[2001:db8::1]/", a, &u, "url", &err), 0);
    assert_string_equal(u.host, "2001:db8::1");
    assert_int_equal(fg_url_parse("http://my_host.internal:8080", a, &u, "url", &err), 0);

    static const char *const bad[] = {
        "",
        "ftp://h",
        "http://",
        "http://:80",
        "http://h:0",
        "http://h:65536",
        "http://h:",
        "http://h:8o",
        "http://user:pw@h",
        "http://h/a?x=1",
        "http://h/#frag",
        "http://h h",
        "http://h/\x01",
        "http://[::1",
        "http://[zz::1]/",
        "http://127.1",
        "http://0x7f.0.0.1",
        "http://999.1.1.1",
        "http://a..b",
        "h:80",
        "http://exa\xc3\xa9.com",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fg_error_clear(&err);
        if (fg_url_parse(bad[i], a, &u, "upstreams[0].url", &err) != -EINVAL)
            fail_msg("URL '%s' accepted", bad[i]);
        assert_string_equal(err.field, "upstreams[0].url");
        assert_true(err.message[0] != '\0');
    }
    char long_url[FG_URL_MAX_LEN + 20] = "http://h/";
    memset(long_url + 9, 'a', FG_URL_MAX_LEN);
    long_url[FG_URL_MAX_LEN + 9] = '\0';
    assert_int_equal(fg_url_parse(long_url, a, &u, "url", &err), -EINVAL);
    fg_arena_free(a);

    expect_decode_error(UP("{'name':'a','url':'ftp://h'}"), "upstreams[0].url", "http");
    expect_decode_error(UP("{'name':'a','targets':[{'url':'http://h'},{'url':'http://u@h'}]}"),
                        "upstreams[0].targets[1].url", "user info");
}

/* ---- routes --------------------------------------------------------------------------- */

static void test_route_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        bool prefix;
    } ok[] = {{"/", false},         {"/*", true},           {"/api/*", true},
              {"/api/users", false}, {"/a/b/c/", false},     {"/%7Euser", false},
              {"/a-b_c.d~e", false}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), ROUTE("{'path':'%s','upstream':'b'}"), ok[i].path);
        fg_config_t *cfg = decode_ok(json);
        assert_int_equal(cfg->routes[0].prefix, ok[i].prefix);
        fg_config_free(cfg);
    }
    static const char *const bad[] = {"api",   "/a*",  "/*/a", "/a/*b", "*",  "/a?b",
                                      "/a#b",  "/a b", "/a\\tb", "/caf\xc3\xa9", "/a/**"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), ROUTE("{'path':'%s','upstream':'b'}"), bad[i]);
        expect_decode_error(json, "routes[0].path", NULL);
    }
    expect_decode_error(ROUTE("{'upstream':'b'}"), "routes[0].path", "required");
    expect_decode_error(ROUTE("{'path':'/x'}"), "routes[0].upstream", "required");

    char *big = malloc(FG_PATH_MAX_LEN + 200);
    strcpy(big, ROUTE("{'path':'/"));
    size_t n = strlen(big);
    memset(big + n, 'a', FG_PATH_MAX_LEN);
    strcpy(big + n + FG_PATH_MAX_LEN, "','upstream':'b'}]}");
    expect_decode_error(big, "routes[0].path", NULL);
    free(big);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(fg_name_valid("a"));
    assert_true(fg_name_valid("api-v1.users_2"));
    assert_false(fg_name_valid(""));
    assert_false(fg_name_valid(NULL));
    assert_false(fg_name_valid("has space"));
    assert_false(fg_name_valid("slash/name"));
    assert_false(fg_name_valid("caf\xc3\xa9"));
    char n64[66];
    memset(n64, 'x', 64);
    n64[64] = '\0';
    assert_true(fg_name_valid(n64));
    n64[64] = 'x';
    n64[65] = '\0';
    assert_false(fg_name_valid(n64));
    expect_decode_error(UP("{'name':'bad name','url':'http://h'}"), "upstreams[0].name", NULL);
    expect_decode_error(ROUTE("{'id':'a/b','path':'/x','upstream':'b'}"), "routes[0].id", NULL);
}

static void test_methods(void **state)
{
    (void)state;
    fg_config_t *cfg =
        decode_ok(ROUTE("{'path':'/x','upstream':'b','methods':['post','GET','Delete','GET']}"));
    assert_int_equal(cfg->routes[0].methods, FG_METHOD_GET | FG_METHOD_POST | FG_METHOD_DELETE);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"methods\":[\"GET\",\"POST\",\"DELETE\"]"));
    free(canon);
    fg_config_free(cfg);
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','methods':['GET','FETCH']}"),
                        "routes[0].methods[1]", "HTTP method");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','methods':'GET'}"),
                        "routes[0].methods", "array");
    assert_int_equal(fg_method_bit("GET", 3), FG_METHOD_GET);
    assert_int_equal(fg_method_bit("OPTIONS", 7), FG_METHOD_OPTIONS);
    assert_int_equal(fg_method_bit("get", 3), 0);
    assert_int_equal(fg_method_bit("GETX", 3), FG_METHOD_GET);
    assert_int_equal(fg_method_bit("GE", 2), 0);
}

static void test_header_ops(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok(ROUTE(
        "{'path':'/x','upstream':'b','hosts':['api.example.com','*.example.com'],"
        "'requestHeaders':{'add':{'X-Gateway':'flexgate','X-Tab':'a\\tb'},'remove':['Cookie']},"
        "'responseHeaders':{'remove':['Server','X-Powered-By']}}"));
    const fg_route_t *r = &cfg->routes[0];
    assert_int_equal(r->n_hosts, 2);
    assert_int_equal(r->request_headers.n_add, 2);
    assert_string_equal(r->request_headers.add[0].name, "X-Gateway");
    assert_string_equal(r->request_headers.add[0].value, "flexgate");
    assert_string_equal(r->request_headers.add[1].value, "a\tb");
    assert_int_equal(r->request_headers.n_remove, 1);
    assert_string_equal(r->request_headers.remove[0], "Cookie");
    assert_int_equal(r->response_headers.n_add, 0);
    assert_int_equal(r->response_headers.n_remove, 2);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"requestHeaders\":{\"add\":{\"X-Gateway\":\"flexgate\","
                                  "\"X-Tab\":\"a\\tb\"},\"remove\":[\"Cookie\"]}"));
    free(canon);
    fg_config_free(cfg);

    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'add':{'Bad Name':'v'}}}"),
                        "routes[0].requestHeaders.add.Bad Name", "token");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'add':{'X':'a\\r\\nEvil: 1'}}}"),
                        "routes[0].requestHeaders.add.X", "CR, LF");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'add':{'X':5}}}"),
                        "routes[0].requestHeaders.add.X", "string");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'add':{'X-A':'1','x-a':'2'}}}"),
                        "routes[0].requestHeaders.add.x-a", "duplicate");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','responseHeaders':{'remove':['Ok','Not:Ok']}}"),
                        "routes[0].responseHeaders.remove[1]", "token");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','requestHeaders':{'add':['X']}}"),
                        "routes[0].requestHeaders.add", "object");
    expect_decode_error(ROUTE("{'path':'/x','upstream':'b','hosts':['bad host']}"),
                        "routes[0].hosts[0]", NULL);
}

/* ---- security and keys ---------------------------------------------------------------- */

#define KEY_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void test_api_keys(void **state)
{
    (void)state;
    fg_config_t *cfg = decode_ok(
        "{'security':{'auth':{'header':'Authorization','keys':["
        "{'name':'client-a','key':'" KEY_A "','routes':['users'],'expiresAt':'2030-01-02T03:04:05.678Z'},"
        "{'name':'client-b','key':'" KEY_B "','disabled':true,'expiresAt':1767225600000},"
        "{'name':'client-c','key':'" KEY_B "','expiresAt':'2030-01-02T05:04:05+02:00'}]}}}");
    const fg_auth_conf_t *a = &cfg->security.auth;
    assert_string_equal(a->header, "Authorization");
    assert_int_equal(a->n_keys, 3);
    assert_string_equal(a->keys[0].key_sha256, KEY_A);
    assert_int_equal(a->keys[0].n_routes, 1);
    assert_int_equal(a->keys[0].expires_at_ms, 1893553445678ull);
    assert_false(a->keys[0].disabled);
    assert_true(a->keys[1].disabled);
    assert_int_equal(a->keys[1].expires_at_ms, 1767225600000ull);
    assert_int_equal(a->keys[2].expires_at_ms, 1893553445000ull);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"expiresAt\":1893553445678"));
    free(canon);
    /* Duplicate digests are a validation error, and the message never shows the digest. */
    fg_error_t err;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "security.auth.keys[2].key");
    assert_null(strstr(err.message, KEY_B));
    fg_config_free(cfg);

    /* The seed's placeholders: a key that is not a digest is a plaintext key, hashed on
     * decode (SHA-256("abc") is the FIPS 180-2 test vector), and a name is a label. */
    cfg = decode_ok("{'security':{'auth':{'keys':[{'name':'Client A','key':'abc'},"
                    "{'name':'Client B','key':'0123456789ABCDEF0123456789abcdef0123456789abcd"
                    "ef0123456789abcdef'}]}}}");
    assert_string_equal(cfg->security.auth.keys[0].key_sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(cfg->security.auth.keys[0].name, "Client A");
    assert_true(fg__sha256_hex_valid(cfg->security.auth.keys[1].key_sha256));
    assert_int_equal(fg_config_validate(cfg, &err), 0);
    canon = assert_round_trip(cfg);
    assert_null(strstr(canon, "\"abc\""));
    free(canon);
    fg_config_free(cfg);
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'k','key':''}]}}}",
                        "security.auth.keys[0].key", NULL);
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'a\\u0001b','key':'abc'}]}}}",
                        "security.auth.keys[0].name", "control");
    expect_decode_error("{'security':{'auth':{'keys':[{'key':'" KEY_A "'}]}}}",
                        "security.auth.keys[0].name", "required");
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'k','key':'" KEY_A
                        "','expiresAt':'tomorrow'}]}}}",
                        "security.auth.keys[0].expiresAt", NULL);
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'k','key':'" KEY_A
                        "','expiresAt':'2030-02-30T00:00:00Z'}]}}}",
                        "security.auth.keys[0].expiresAt", NULL);
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'k','key':'" KEY_A
                        "','expiresAt':-1}]}}}",
                        "security.auth.keys[0].expiresAt", NULL);
    expect_decode_error("{'security':{'auth':{'type':'jwt'}}}", "security.auth.type", "apiKey");
    expect_decode_error("{'security':{'auth':{'header':'X Key'}}}", "security.auth.header", NULL);
    expect_validate_error("{'security':{'auth':{'keys':[{'name':'k','key':'" KEY_A "'},"
                          "{'name':'k','key':'" KEY_B "'}]}}}",
                          "security.auth.keys[1].name", "duplicate");
}

static void test_security_lists(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(
        "{'security':{'allowedHosts':['api.example.com','*.internal.corp','10.1.2.3','[::1]'],"
        "'blockedIPs':['169.254.169.254','169.254.170.2','fd00:ec2::254','10.0.0.0/8',"
        "'127.0.0.0/8','fe80::/10','::ffff:169.254.169.254'],"
        "'trustedProxies':['192.168.0.0/16'],'strict':true}}");
    assert_int_equal(cfg->security.n_blocked_ips, 7);
    assert_true(cfg->security.strict);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);
    expect_decode_error("{'security':{'blockedIPs':['10.0.0.0/33']}}", "security.blockedIPs[0]",
                        NULL);
    expect_decode_error("{'security':{'blockedIPs':['::/129']}}", "security.blockedIPs[0]", NULL);
    expect_decode_error("{'security':{'blockedIPs':['1.2.3.4','not-an-ip']}}",
                        "security.blockedIPs[1]", NULL);
    expect_decode_error("{'security':{'blockedIPs':['10.0.0.0/']}}", "security.blockedIPs[0]",
                        NULL);
    expect_decode_error("{'security':{'trustedProxies':['10.0.0.0/x']}}",
                        "security.trustedProxies[0]", NULL);
    expect_decode_error("{'security':{'allowedHosts':['bad host!']}}", "security.allowedHosts[0]",
                        NULL);
    expect_decode_error("{'security':{'allowedHosts':['*.']}}", "security.allowedHosts[0]", NULL);
    expect_decode_error("{'security':{'strict':1}}", "security.strict", NULL);
}

static void test_rate_limit_conf(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(
        "{'rateLimit':{'enabled':false,'perRoute':[{'path':'/api/expensive/*','max':10,"
        "'windowMs':60000,'message':'This endpoint is heavily rate limited'},"
        "{'path':'/b','enabled':false}]}}");
    assert_false(cfg->rate_limit.enabled);
    assert_int_equal(cfg->rate_limit.n_per_route, 2);
    assert_string_equal(cfg->rate_limit.per_route[0].path, "/api/expensive/*");
    assert_string_equal(cfg->rate_limit.per_route[0].limit.message,
                        "This endpoint is heavily rate limited");
    assert_false(cfg->rate_limit.per_route[1].limit.enabled);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);
    expect_decode_error("{'rateLimit':{'perRoute':[{'path':'nope','max':1,'windowMs':1}]}}",
                        "rateLimit.perRoute[0].path", NULL);
    expect_decode_error("{'rateLimit':{'perRoute':[{'max':1,'windowMs':1}]}}",
                        "rateLimit.perRoute[0].path", "required");
    expect_decode_error("{'rateLimit':{'global':{'max':1,'windowMs':86400001}}}",
                        "rateLimit.global.windowMs", NULL);
    expect_decode_error("{'rateLimit':{'redis':{'url':'http://x'}}}", "rateLimit.redis.url",
                        NULL);
    expect_validate_error("{'rateLimit':{'backend':'redis'}}", "rateLimit.redis.url", "required");
}

static void test_strings(void **state)
{
    (void)state;
    /* Invalid UTF-8 in any string is refused (the canonical text must be valid JSON). */
    expect_decode_error("{'rateLimit':{'global':{'max':1,'windowMs':1,'message':'\xff'}}}",
                        "rateLimit.global.message", "UTF-8");
    expect_decode_error("{'rateLimit':{'global':{'max':1,'windowMs':1,'message':'\xed\xa0\x80'}}}",
                        "rateLimit.global.message", "UTF-8");
    /* Escapes and non-ASCII text survive the canonical round trip. */
    fg_config_t *cfg = decode_ok(
        "{'version':'1.0','rateLimit':{'global':{'max':1,'windowMs':1,"
        "'message':'sl\\u00f6w \\\"down\\\" \\\\ \\u0001 / caf\xc3\xa9'}}}");
    assert_string_equal(cfg->rate_limit.global.message,
                        "sl\xc3\xb6w \"down\" \\ \x01 / caf\xc3\xa9");
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"message\":\"sl\xc3\xb6w \\\"down\\\" \\\\ \\u0001 / "
                                  "caf\xc3\xa9\""));
    assert_int_equal(strncmp(canon, "{\"version\":\"1.0\",\"proxy\":", 25), 0);
    free(canon);
    fg_config_free(cfg);

    cfg = decode_ok("{'version':2}");
    assert_string_equal(cfg->version, "2");
    fg_config_free(cfg);
    cfg = decode_ok("{'version':1.5}");
    assert_string_equal(cfg->version, "1.5");
    fg_config_free(cfg);
}

/* ---- the validator -------------------------------------------------------------------- */

static void test_validate_cross_entity(void **state)
{
    (void)state;
    expect_validate_error("{'upstreams':[{'name':'a','url':'http://h'},{'name':'b','url':'http://h'},"
                          "{'name':'a','url':'http://h'}]}",
                          "upstreams[2].name", "duplicate upstream name \"a\" (also upstreams[0])");
    expect_validate_error("{'upstreams':[{'name':'b','url':'http://h'}],'routes':["
                          "{'id':'r','path':'/a','upstream':'b'},"
                          "{'id':'r','path':'/b','upstream':'b'}]}",
                          "routes[1].id", "duplicate route id");
    expect_validate_error("{'upstreams':[{'name':'b','url':'http://h'}],'routes':["
                          "{'id':'r1','path':'/a','upstream':'b'},"
                          "{'id':'r2','path':'/b','upstream':'nope'}]}",
                          "routes[1].upstream", "unknown upstream \"nope\"");
    expect_validate_error("{'upstreams':[{'name':'b','url':'http://h','fallback':'ghost'}]}",
                          "upstreams[0].fallback", "unknown upstream");
    expect_validate_error("{'upstreams':[{'name':'b','url':'http://h','fallback':'b'}]}",
                          "upstreams[0].fallback", "itself");
    /* A fallback may name an upstream that comes later. */
    fg_config_t *cfg = parse_ok("{'upstreams':[{'name':'a','url':'http://h','fallback':'z'},"
                                "{'name':'z','url':'http://h'}]}");
    fg_config_free(cfg);
}

/* Models assembled without the decoder get the same checks. */
static void test_validate_hand_built(void **state)
{
    (void)state;
    fg_config_t *cfg = fg_config_new_empty();
    fg_error_t err;
    fg_upstream_t ups[1];
    fg_route_t routes[1];
    fg_target_t target = {.url = "http://h", .parsed = {.host = "h", .port = 80, .path = ""},
                          .weight = 1};

    memset(ups, 0, sizeof(ups));
    ups[0].name = "b";
    ups[0].url = "http://h";
    ups[0].targets = &target;
    ups[0].n_targets = 1;
    ups[0].timeout_ms = 1000;
    memset(routes, 0, sizeof(routes));
    routes[0].path = "/x";
    routes[0].upstream = "b";
    cfg->upstreams = ups;
    cfg->n_upstreams = 1;
    cfg->routes = routes;
    cfg->n_routes = 1;

    /* Zeroed tuning would encode to text the decoder refuses: the validator says so. */
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].circuitBreaker.failureThreshold");
    ups[0].circuit_breaker = (fg_breaker_conf_t){
        .failure_threshold = FG_DEFAULT_BREAKER_THRESHOLD, .success_threshold = 1,
        .open_duration_ms = 1, .half_open_requests = 1, .min_requests = 1, .window_ms = 1};
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].healthCheck.interval");
    ups[0].health_check = (fg_health_check_t){.interval_ms = 1, .timeout_ms = 1,
                                              .unhealthy_threshold = 1, .healthy_threshold = 1};
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].healthCheck.ejectDuration");
    ups[0].health_check.eject_ms = 1;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].keepalive.idleTimeout");
    ups[0].keepalive.idle_timeout_ms = 1;
    ups[0].client_cert = "/c.pem";
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].clientKey");
    ups[0].client_key = "/c.key";
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].id");
    routes[0].id = "x";
    assert_int_equal(fg_config_validate(cfg, &err), 0);
    routes[0].path = "x*";
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].path");
    routes[0].path = "/x";
    ups[0].n_targets = 0;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].url");
    ups[0].n_targets = 1;
    ups[0].name = "bad name";
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].name");
    ups[0].name = "b";
    routes[0].rate_limit = (fg_rate_limit_t){.set = true, .enabled = true, .max = 0,
                                             .window_ms = 10};
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].rateLimit.max");
    routes[0].rate_limit.set = false;
    /* Header text that could split a request is refused even without the decoder. */
    fg_header_kv_t evil = {.name = "X-Evil", .value = "a\r\nInjected: 1"};
    routes[0].request_headers.add = &evil;
    routes[0].request_headers.n_add = 1;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].requestHeaders.add.X-Evil");
    evil.value = "fine";
    assert_int_equal(fg_config_validate(cfg, &err), 0);
    routes[0].request_headers.n_add = 0;
    cfg->logging.success_rate = 2;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "logging.sampling.successRate");
    cfg->logging.success_rate = 1;
    cfg->proxy.port = 0;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "proxy.port");
    cfg->proxy.port = 80;
    assert_int_equal(fg_config_validate(cfg, &err), 0);

    /* A hand-built upstream without `url` encodes as targets, and that decodes again. */
    ups[0].url = NULL;
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"targets\":[{\"url\":\"http://h\",\"weight\":1}]"));
    free(canon);

    /* The entity arrays point at the stack: detach them before the arena goes. */
    cfg->upstreams = NULL;
    cfg->n_upstreams = 0;
    cfg->routes = NULL;
    cfg->n_routes = 0;
    fg_config_free(cfg);
    assert_int_equal(fg_config_validate(NULL, &err), -EINVAL);
}

/* ---- HTTP limits and timeouts (issue 3) ----------------------------------------------- */

static void test_proxy_limits(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{}");
    assert_int_equal(cfg->proxy.header_timeout_ms, FG_DEFAULT_HEADER_TIMEOUT_MS);
    assert_int_equal(cfg->proxy.max_header_size, FG_DEFAULT_MAX_HEADER_SIZE);
    assert_int_equal(cfg->proxy.max_headers, FG_DEFAULT_MAX_HEADERS);
    assert_int_equal(cfg->proxy.max_connections, FG_DEFAULT_MAX_CONNECTIONS);
    fg_config_free(cfg);

    cfg = parse_ok("{'proxy':{'timeout':{'header':1500},'maxHeaderSize':4096,'maxHeaders':20,"
                   "'maxConnections':3}}");
    assert_int_equal(cfg->proxy.header_timeout_ms, 1500);
    assert_int_equal(cfg->proxy.max_header_size, 4096);
    assert_int_equal(cfg->proxy.max_headers, 20);
    assert_int_equal(cfg->proxy.max_connections, 3);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);

    expect_decode_error("{'proxy':{'maxHeaderSize':100}}", "proxy.maxHeaderSize", "between");
    expect_decode_error("{'proxy':{'maxHeaders':0}}", "proxy.maxHeaders", "between");
    expect_decode_error("{'proxy':{'maxConnections':-1}}", "proxy.maxConnections", "between");
    expect_decode_error("{'proxy':{'timeout':{'header':0}}}", "proxy.timeout.header", "between");
    expect_decode_error("{'proxy':{'maxHeader':5000}}", "proxy.maxHeader", "unknown key");
}

static void test_route_websocket(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(ROUTE("{'id':'a','path':'/a','upstream':'b'},"
                                      "{'id':'w','path':'/ws','upstream':'b','websocket':true}"));
    assert_false(cfg->routes[0].websocket);
    assert_true(cfg->routes[1].websocket);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"websocket\":true"));
    assert_non_null(strstr(canon, "\"websocket\":false"));
    free(canon);
    fg_config_free(cfg);
    expect_decode_error(ROUTE("{'id':'w','path':'/ws','upstream':'b','websocket':'yes'}"),
                        "routes[0].websocket", "true or false");
}

/* ---- canonical form ------------------------------------------------------------------- */

static const char everything[] =
    "{'version':'1.0',"
    " 'proxy':{'port':8080,'timeout':{'request':1000,'connect':100,'idle':5000},'maxBodySize':'2mb'},"
    " 'security':{'allowedHosts':['*.corp','127.0.0.1','u.example'],'blockedIPs':['10.0.0.0/8'],'trustedProxies':['127.0.0.1'],"
    "   'strict':true,'auth':{'type':'apiKey','header':'X-Key','keys':[{'name':'k1','key':'" KEY_A "',"
    "   'routes':['r1','r2'],'disabled':false,'expiresAt':1893553445678}]}},"
    " 'rateLimit':{'enabled':true,'backend':'redis','redis':{'url':'redis://127.0.0.1:6379/0'},"
    "   'global':{'max':100,'windowMs':1000,'burst':5,'message':'slow'},"
    "   'perRoute':[{'path':'/r1/*','max':1,'windowMs':1000}]},"
    " 'logging':{'level':'debug','format':'json','sampling':{'successRate':0.333,'errorRate':0.5}},"
    " 'metrics':{'enabled':false,'port':9200,'path':'/m'},"
    " 'upstreams':[{'name':'u1','targets':[{'url':'http://127.0.0.1:1','weight':2},"
    "   {'url':'https://u.example:443/base'}],'loadBalancing':'least-conn','timeout':100,"
    "   'retries':2,'fallback':'u2','caFile':'/etc/ca.pem','tlsVerify':false,"
    "   'clientCert':'/etc/c.pem','clientKey':'/etc/c.key','keepalive':{'maxIdle':7,'idleTimeout':900},"
    "   'circuitBreaker':{'enabled':true,'failureThreshold':10,'successThreshold':2,'openDuration':500,"
    "   'halfOpenRequests':3,'minRequests':4,'windowMs':600},"
    "   'healthCheck':{'enabled':true,'path':'/hz?full=1','interval':700,'timeout':80,"
    "   'unhealthyThreshold':5,'healthyThreshold':6}},"
    "  {'name':'u2','url':'http://127.0.0.1:2','loadBalancing':'random-two-choices'}],"
    " 'routes':[{'id':'r1','path':'/r1/*','upstream':'u1','methods':['GET','HEAD'],'hosts':['a.corp'],"
    "   'auth':'optional','timeout':900,'stripPrefix':true,'priority':7,"
    "   'rateLimit':{'max':3,'windowMs':4,'burst':1},"
    "   'requestHeaders':{'add':{'X-A':'1'},'remove':['X-B']},"
    "   'responseHeaders':{'add':{'X-C':'2'},'remove':[]}},"
    "  {'id':'r2','path':'/exact','upstream':'u2'}]}";

static void test_canonical_round_trip(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(everything);
    char *canon = assert_round_trip(cfg);
    /* The decoded canonical text validates too, and is the fixed point of decode+encode. */
    fg_config_t *again = NULL;
    fg_error_t err;
    assert_int_equal(fg_config_parse(canon, strlen(canon), &again, &err), 0);
    char *c2 = fg_config_canonical(again);
    assert_string_equal(canon, c2);
    /* Key order at the top and in one nested object. */
    static const char head[] =
        "{\"version\":\"1.0\",\"proxy\":{\"port\":8080,\"timeout\":"
        "{\"request\":1000,\"connect\":100,\"idle\":5000,\"header\":10000},"
        "\"maxBodySize\":2097152,\"maxHeaderSize\":65536,\"maxHeaders\":100,"
        "\"maxConnections\":10000,\"maxPending\":8000,\"retryBudget\":20},\"security\":";
    assert_int_equal(strncmp(canon, head, sizeof head - 1), 0);
    const char *rl = strstr(canon, "\"rateLimit\":{\"enabled\":true,\"backend\":\"redis\",\"redis\"");
    const char *lg = strstr(canon, "\"logging\":");
    const char *mt = strstr(canon, "\"metrics\":");
    const char *up = strstr(canon, "\"upstreams\":");
    const char *rt = up ? strstr(up, "\"routes\":[{\"id\"") : NULL;
    assert_true(rl && lg && mt && up && rt && rl < lg && lg < mt && mt < up && up < rt);
    assert_non_null(strstr(canon, "\"successRate\":0.333,\"errorRate\":0.5"));
    assert_null(strstr(canon, "\"hashOn\""));
    assert_non_null(strstr(canon, "\"fallback\":\"u2\",\"caFile\":\"/etc/ca.pem\",\"tlsVerify\":false"));
    assert_non_null(strstr(canon, "\"tlsVerify\":false,\"clientCert\":\"/etc/c.pem\","
                                  "\"clientKey\":\"/etc/c.key\","
                                  "\"keepalive\":{\"maxIdle\":7,\"idleTimeout\":900}"));
    /* No whitespace outside strings. */
    assert_null(strstr(canon, ": "));
    assert_null(strstr(canon, ", "));
    assert_null(strchr(canon, '\n'));
    free(c2);
    free(canon);
    fg_config_free(again);
    fg_config_free(cfg);
}

static void test_canonical_is_independent_of_input_form(void **state)
{
    (void)state;
    /* Different spellings of the same configuration encode to the same bytes. */
    fg_config_t *a = decode_ok(
        "{'routes':[{'path':'/x','upstream':'b','stripPath':true,'auth':true,"
        "'methods':['post','get']}],'upstreams':[{'url':'http://h','name':'b',"
        "'circuitBreaker':{'timeout':30000,'enabled':false}}],'proxy':{'maxBodySize':'10mb'}}");
    fg_config_t *b = decode_ok(
        "{'proxy':{'maxBodySize':10485760,'timeout':{'request':30000}},"
        "'upstreams':[{'name':'b','url':'http://h'}],"
        "'routes':[{'path':'/x','upstream':'b','stripPrefix':true,'auth':'required',"
        "'methods':['GET','POST']}]}");
    char *ca = fg_config_canonical(a), *cb = fg_config_canonical(b);
    assert_string_equal(ca, cb);
    free(ca);
    free(cb);
    fg_config_free(a);
    fg_config_free(b);
}

/* ---- entity decoders and fg_config_parse ---------------------------------------------- */

static void test_entity_decoders(void **state)
{
    (void)state;
    fg_arena_t *arena = fg_arena_new(0);
    fg_error_t err;
    fg_upstream_t u;
    fg_route_t r;
    fg_api_key_t k;

    char *t = J("{'name':'backend','url':'http://127.0.0.1:8081','timeout':5000,'retries':0}");
    cJSON *j = cJSON_Parse(t);
    assert_int_equal(fg_upstream_decode(j, arena, "", &u, &err), 0);
    assert_string_equal(u.name, "backend");
    assert_int_equal(u.timeout_ms, 5000);
    cJSON *enc = fg_upstream_encode(&u);
    assert_non_null(enc);
    assert_string_equal(cJSON_GetObjectItem(enc, "url")->valuestring, "http://127.0.0.1:8081");
    cJSON_Delete(enc);
    cJSON_Delete(j);
    free(t);

    /* Bare REST bodies report bare field names. */
    t = J("{'name':'backend','url':'http://h','timeout':0}");
    j = cJSON_Parse(t);
    assert_int_equal(fg_upstream_decode(j, arena, "", &u, &err), -EINVAL);
    assert_string_equal(err.field, "timeout");
    cJSON_Delete(j);
    free(t);

    t = J("{'id':'users','path':'/api/users/*','upstream':'backend','auth':'none'}");
    j = cJSON_Parse(t);
    assert_int_equal(fg_route_decode(j, arena, "routes[3]", &r, &err), 0);
    assert_true(r.prefix);
    enc = fg_route_encode(&r);
    assert_string_equal(cJSON_GetObjectItem(enc, "auth")->valuestring, "none");
    cJSON_Delete(enc);
    cJSON_Delete(j);
    free(t);

    t = J("{'id':'users','path':'/api/users/*'}");
    j = cJSON_Parse(t);
    assert_int_equal(fg_route_decode(j, arena, "routes[3]", &r, &err), -EINVAL);
    assert_string_equal(err.field, "routes[3].upstream");
    cJSON_Delete(j);
    free(t);

    t = J("{'name':'k','key':'" KEY_A "'}");
    j = cJSON_Parse(t);
    assert_int_equal(fg_api_key_decode(j, arena, "", &k, &err), 0);
    enc = fg_api_key_encode(&k);
    assert_string_equal(cJSON_GetObjectItem(enc, "key")->valuestring, KEY_A);
    assert_int_equal(cJSON_GetObjectItem(enc, "expiresAt")->valuedouble, 0);
    cJSON_Delete(enc);
    cJSON_Delete(j);
    free(t);
    fg_arena_free(arena);

    assert_string_equal(fg_auth_mode_name(FG_AUTH_OPTIONAL), "optional");
    assert_string_equal(fg_lb_policy_name(FG_LB_RANDOM_TWO), "random-two-choices");
}

static void test_parse_text(void **state)
{
    (void)state;
    fg_config_t *cfg = (fg_config_t *)1;
    fg_error_t err;
    assert_int_equal(fg_config_parse("{\"proxy\":", 9, &cfg, &err), -EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err.message, "malformed JSON"));
    assert_int_equal(fg_config_parse("{} {}", 5, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.message, "trailing"));
    assert_int_equal(fg_config_parse("{}  \n", 5, &cfg, &err), 0);
    fg_config_free(cfg);
    /* Only `len` bytes are read. */
    assert_int_equal(fg_config_parse("{}garbage", 2, &cfg, &err), 0);
    fg_config_free(cfg);
    assert_int_equal(fg_config_parse("{'x':1}", 7, &cfg, &err), -EINVAL);
    /* Validation runs too. */
    const char *bad = "{\"routes\":[{\"id\":\"r\",\"path\":\"/\",\"upstream\":\"x\"}]}";
    assert_int_equal(fg_config_parse(bad, strlen(bad), &cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[0].upstream");
    fg_config_free(NULL);
}

/* ---- scale ---------------------------------------------------------------------------- */

static void test_many_routes(void **state)
{
    (void)state;
    enum { N_UP = 2000, N_ROUTES = 20000 };
    cJSON *root = cJSON_CreateObject();
    cJSON *ups = cJSON_AddArrayToObject(root, "upstreams");
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    char buf[64];
    for (int i = 0; i < N_UP; i++) {
        cJSON *u = cJSON_CreateObject();
        snprintf(buf, sizeof(buf), "up-%d", i);
        cJSON_AddStringToObject(u, "name", buf);
        cJSON_AddStringToObject(u, "url", "http://127.0.0.1:8081");
        cJSON_AddItemToArray(ups, u);
    }
    for (int i = 0; i < N_ROUTES; i++) {
        cJSON *r = cJSON_CreateObject();
        snprintf(buf, sizeof(buf), "r-%d", i);
        cJSON_AddStringToObject(r, "id", buf);
        snprintf(buf, sizeof(buf), "/svc/%d/*", i);
        cJSON_AddStringToObject(r, "path", buf);
        snprintf(buf, sizeof(buf), "up-%d", i % N_UP);
        cJSON_AddStringToObject(r, "upstream", buf);
        cJSON_AddItemToArray(routes, r);
    }
    uint64_t t0 = fg_now_ms();
    fg_config_t *cfg = NULL;
    fg_error_t err;
    assert_int_equal(fg_config_decode(root, &cfg, &err), 0);
    assert_int_equal(fg_config_validate(cfg, &err), 0);
    char *canon = fg_config_canonical(cfg);
    assert_non_null(canon);
    uint64_t elapsed = fg_now_ms() - t0;
    /* Linear work: generous enough for a sanitizer build on a loaded machine. */
    assert_true(elapsed < 20000);
    free(canon);

    /* A duplicate at the very end is still found. */
    cJSON *last = cJSON_GetArrayItem(routes, N_ROUTES - 1);
    cJSON_ReplaceItemInObject(last, "id", cJSON_CreateString("r-0"));
    fg_config_free(cfg);
    assert_int_equal(fg_config_decode(root, &cfg, &err), 0);
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "routes[19999].id");
    fg_config_free(cfg);
    cJSON_Delete(root);
}

static void test_count_limits(void **state)
{
    (void)state;
    cJSON *root = cJSON_CreateObject();
    cJSON *ups = cJSON_AddArrayToObject(root, "upstreams");
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "name", "a");
    cJSON *targets = cJSON_AddArrayToObject(u, "targets");
    for (int i = 0; i <= FG_MAX_TARGETS; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "url", "http://h");
        cJSON_AddItemToArray(targets, t);
    }
    cJSON_AddItemToArray(ups, u);
    fg_config_t *cfg = NULL;
    fg_error_t err;
    assert_int_equal(fg_config_decode(root, &cfg, &err), -EINVAL);
    assert_string_equal(err.field, "upstreams[0].targets");
    cJSON_Delete(root);

    root = cJSON_CreateObject();
    cJSON *hosts = cJSON_AddArrayToObject(cJSON_AddObjectToObject(root, "security"),
                                          "allowedHosts");
    for (int i = 0; i <= FG_MAX_LIST; i++)
        cJSON_AddItemToArray(hosts, cJSON_CreateString("a.com"));
    assert_int_equal(fg_config_decode(root, &cfg, &err), -EINVAL);
    assert_string_equal(err.field, "security.allowedHosts");
    cJSON_Delete(root);
}

/* security.auth.bearer / identityHeader / hmacClockSkewMs and keys[].hmac (issue 5). */
static void test_auth_options(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{}");
    assert_false(cfg->security.auth.bearer);
    assert_string_equal(cfg->security.auth.identity_header, FG_DEFAULT_IDENTITY_HEADER);
    assert_int_equal(cfg->security.auth.hmac_skew_ms, FG_DEFAULT_HMAC_SKEW_MS);
    fg_config_free(cfg);

    cfg = parse_ok("{'security':{'auth':{'bearer':true,'identityHeader':'X-Client',"
                   "'hmacClockSkewMs':60000,'keys':[{'name':'s','key':'k1','hmac':true},"
                   "{'name':'p','key':'k2'}]}}}");
    assert_true(cfg->security.auth.bearer);
    assert_string_equal(cfg->security.auth.identity_header, "X-Client");
    assert_int_equal(cfg->security.auth.hmac_skew_ms, 60000);
    assert_true(cfg->security.auth.keys[0].hmac);
    assert_false(cfg->security.auth.keys[1].hmac);
    char *text = assert_round_trip(cfg);
    assert_non_null(strstr(text, "\"bearer\":true"));
    assert_non_null(strstr(text, "\"identityHeader\":\"X-Client\""));
    assert_non_null(strstr(text, "\"hmacClockSkewMs\":60000"));
    assert_non_null(strstr(text, "\"hmac\":true"));
    free(text);
    fg_config_free(cfg);

    expect_decode_error("{'security':{'auth':{'bearer':'yes'}}}", "security.auth.bearer", NULL);
    expect_decode_error("{'security':{'auth':{'identityHeader':'X Bad'}}}",
                        "security.auth.identityHeader", "token");
    expect_decode_error("{'security':{'auth':{'identityHeader':'host'}}}",
                        "security.auth.identityHeader", "proxy writes");
    expect_decode_error("{'security':{'auth':{'identityHeader':'Authorization'}}}",
                        "security.auth.identityHeader", NULL);
    expect_decode_error("{'security':{'auth':{'hmacClockSkewMs':999}}}",
                        "security.auth.hmacClockSkewMs", NULL);
    expect_decode_error("{'security':{'auth':{'hmacClockSkewMs':3600001}}}",
                        "security.auth.hmacClockSkewMs", NULL);
    expect_decode_error("{'security':{'auth':{'keys':[{'name':'a','key':'k','hmac':1}]}}}",
                        "security.auth.keys[0].hmac", NULL);
    expect_validate_error("{'security':{'auth':{'header':'X-Who','identityHeader':'x-who'}}}",
                          "security.auth.identityHeader", "differ");
}

/* rateLimit.redis.timeoutMs / fallbackDivisor and rateLimit.maxBuckets (issue 6): defaults,
 * ranges, the round trip, and the seed's rate-limit examples still decoding to the defaults. */
static void test_rate_limit_redis_and_table_settings(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{'rateLimit':{'backend':'redis','redis':{'url':'redis://h'}}}");
    assert_int_equal(cfg->rate_limit.redis_timeout_ms, FG_DEFAULT_RL_REDIS_TIMEOUT_MS);
    assert_int_equal(cfg->rate_limit.redis_fallback_divisor, FG_DEFAULT_RL_FALLBACK_DIVISOR);
    assert_int_equal(cfg->rate_limit.max_buckets, FG_DEFAULT_RL_MAX_BUCKETS);
    char *text = assert_round_trip(cfg);
    assert_non_null(strstr(text, "\"redis\":{\"url\":\"redis://h\",\"timeoutMs\":50,"
                                 "\"fallbackDivisor\":1}"));
    assert_non_null(strstr(text, "\"maxBuckets\":65536"));
    free(text);
    fg_config_free(cfg);

    cfg = parse_ok("{'rateLimit':{'maxBuckets':16,'redis':{'timeoutMs':20,"
                   "'fallbackDivisor':3}}}");
    assert_int_equal(cfg->rate_limit.redis_timeout_ms, 20);
    assert_int_equal(cfg->rate_limit.redis_fallback_divisor, 3);
    assert_int_equal(cfg->rate_limit.max_buckets, 16);
    assert_null(cfg->rate_limit.redis_url);
    free(assert_round_trip(cfg)); /* settings without a URL are written (and read) back */
    fg_config_free(cfg);

    cfg = fg_config_new_empty();
    char *empty = fg_config_canonical(cfg);
    assert_null(strstr(empty, "\"redis\"")); /* nothing to say: not written */
    free(empty);
    fg_config_free(cfg);

    expect_decode_error("{'rateLimit':{'redis':{'timeoutMs':0}}}", "rateLimit.redis.timeoutMs",
                        NULL);
    expect_decode_error("{'rateLimit':{'redis':{'timeoutMs':10001}}}",
                        "rateLimit.redis.timeoutMs", NULL);
    expect_decode_error("{'rateLimit':{'redis':{'fallbackDivisor':0}}}",
                        "rateLimit.redis.fallbackDivisor", NULL);
    expect_decode_error("{'rateLimit':{'redis':{'fallbackDivisor':1025}}}",
                        "rateLimit.redis.fallbackDivisor", NULL);
    expect_decode_error("{'rateLimit':{'redis':{'fallbackDivisor':'2'}}}",
                        "rateLimit.redis.fallbackDivisor", NULL);
    expect_decode_error("{'rateLimit':{'maxBuckets':15}}", "rateLimit.maxBuckets", NULL);
    expect_decode_error("{'rateLimit':{'maxBuckets':16777217}}", "rateLimit.maxBuckets", NULL);

    /* Hand-built models are checked by the validator with the same ranges. */
    cfg = fg_config_new_empty();
    fg_error_t err;
    memset(&err, 0, sizeof err);
    cfg->rate_limit.redis_timeout_ms = 0;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "rateLimit.redis.timeoutMs");
    cfg->rate_limit.redis_timeout_ms = 50;
    cfg->rate_limit.redis_fallback_divisor = 0;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "rateLimit.redis.fallbackDivisor");
    cfg->rate_limit.redis_fallback_divisor = 1;
    cfg->rate_limit.max_buckets = 1;
    assert_int_equal(fg_config_validate(cfg, &err), -EINVAL);
    assert_string_equal(err.field, "rateLimit.maxBuckets");
    fg_config_free(cfg);
}

/* Issue 6: passive ejection (healthCheck.consecutiveFailures/ejectDuration) and the proxy's
 * shedding threshold and retry budget. */
static void test_traffic_control_keys(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{'upstreams':[{'name':'u','url':'http://h'}]}");
    assert_int_equal(cfg->upstreams[0].health_check.consecutive_failures,
                     FG_DEFAULT_EJECT_FAILURES);
    assert_int_equal(cfg->upstreams[0].health_check.eject_ms, FG_DEFAULT_EJECT_MS);
    assert_int_equal(cfg->proxy.max_pending, FG_DEFAULT_MAX_PENDING);
    assert_int_equal(cfg->proxy.retry_budget, FG_DEFAULT_RETRY_BUDGET);
    fg_config_free(cfg);

    cfg = parse_ok("{'proxy':{'maxPending':0,'retryBudget':100},'upstreams':[{'name':'u',"
                   "'url':'http://h','healthCheck':{'enabled':false,'consecutiveFailures':0,"
                   "'ejectDuration':2500}}]}");
    assert_int_equal(cfg->proxy.max_pending, 0);
    assert_int_equal(cfg->proxy.retry_budget, 100);
    assert_false(cfg->upstreams[0].health_check.enabled);
    assert_int_equal(cfg->upstreams[0].health_check.consecutive_failures, 0);
    assert_int_equal(cfg->upstreams[0].health_check.eject_ms, 2500);
    free(assert_round_trip(cfg));
    fg_config_free(cfg);

    expect_decode_error("{'proxy':{'retryBudget':101}}", "proxy.retryBudget", "between");
    expect_decode_error("{'proxy':{'maxPending':-1}}", "proxy.maxPending", "between");
    expect_decode_error("{'upstreams':[{'name':'u','url':'http://h','healthCheck':"
                        "{'ejectDuration':0}}]}",
                        "upstreams[0].healthCheck.ejectDuration", "between");
    expect_decode_error("{'upstreams':[{'name':'u','url':'http://h','healthCheck':"
                        "{'consecutiveFailures':1001}}]}",
                        "upstreams[0].healthCheck.consecutiveFailures", "between");
}

/* logging.requestIdHeader (issue 7): a header name, absent by default, round-tripped. */
static void test_request_id_header(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok("{'logging':{'requestIdHeader':'X-Correlation-ID'}}");
    assert_string_equal(cfg->logging.request_id_header, "X-Correlation-ID");
    char *text = fg_config_canonical(cfg);
    assert_non_null(strstr(text, "\"requestIdHeader\":\"X-Correlation-ID\""));
    fg_config_t *again = NULL;
    fg_error_t err;
    assert_int_equal(fg_config_parse(text, strlen(text), &again, &err), 0);
    char *text2 = fg_config_canonical(again);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    fg_config_free(again);
    fg_config_free(cfg);
    cfg = parse_ok("{}");
    assert_null(cfg->logging.request_id_header);
    text = fg_config_canonical(cfg);
    assert_null(strstr(text, "requestIdHeader"));
    free(text);
    fg_config_free(cfg);
    expect_decode_error("{'logging':{'requestIdHeader':'bad header'}}",
                        "logging.requestIdHeader", NULL);
    expect_decode_error("{'logging':{'requestIdHeader':''}}", "logging.requestIdHeader", NULL);
    expect_decode_error("{'logging':{'requestIdHeader':7}}", "logging.requestIdHeader", NULL);
    expect_decode_error("{'logging':{'requestIdHeader':'Host'}}", "logging.requestIdHeader",
                        "proxy writes");
    expect_decode_error("{'logging':{'requestIdHeader':'TraceParent'}}",
                        "logging.requestIdHeader", "proxy writes");
    char long_name[FG_REQUEST_ID_HEADER_MAX_LEN + 64];
    int n = snprintf(long_name, sizeof long_name, "{'logging':{'requestIdHeader':'");
    memset(long_name + n, 'x', FG_REQUEST_ID_HEADER_MAX_LEN + 1);
    strcpy(long_name + n + FG_REQUEST_ID_HEADER_MAX_LEN + 1, "'}}");
    expect_decode_error(long_name, "logging.requestIdHeader", NULL);
}

/* Issue 5: `allowEncodedSlashes` (default false) round-trips and is a boolean. */
static void test_route_allow_encoded_slashes(void **state)
{
    (void)state;
    fg_config_t *cfg = parse_ok(ROUTE("{'id':'a','path':'/a','upstream':'b'},"
                                      "{'id':'e','path':'/e/*','upstream':'b',"
                                      "'allowEncodedSlashes':true}"));
    assert_false(cfg->routes[0].allow_encoded_slashes);
    assert_true(cfg->routes[1].allow_encoded_slashes);
    char *canon = assert_round_trip(cfg);
    assert_non_null(strstr(canon, "\"allowEncodedSlashes\":true"));
    assert_non_null(strstr(canon, "\"allowEncodedSlashes\":false"));
    free(canon);
    fg_config_free(cfg);
    expect_decode_error(ROUTE("{'id':'e','path':'/e','upstream':'b','allowEncodedSlashes':1}"),
                        "routes[0].allowEncodedSlashes", "true or false");
}

static void count_finding(void *ctx, const char *field, const char *message)
{
    char *last = ctx;
    snprintf(last, 512, "%s: %s", field, message);
}

/* Issue 5: upstreams outside allowedHosts / blockedIPs are findings (warnings); under
 * security.strict the validator refuses the config, naming the field. The seed's full
 * example (upstreams outside its own allowedHosts) stays valid. */
static void test_security_findings_and_strict(void **state)
{
    (void)state;
    char last[512] = "";
    static const char ups[] =
        " 'upstreams':[{'name':'a','url':'https://api.primary.com'},"
        "  {'name':'m','targets':[{'url':'http://10.0.0.1:80'},{'url':'http://169.254.169.254'}]},"
        "  {'name':'ok','url':'http://x.internal.corp:8080'}]}";
    char text[1024];
    snprintf(text, sizeof text, "{'security':{'allowedHosts':['*.internal.corp','10.0.0.1',"
             "'169.254.169.254'],'blockedIPs':['10.0.0.0/8']},%s", ups);
    fg_config_t *cfg = parse_ok(text);
    assert_int_equal(fg_config_security_check(cfg, count_finding, last), 3);
    /* the last finding: the metadata address, blocked by default */
    assert_non_null(strstr(last, "upstreams[1].targets[1].url: upstream \"m\": address "
                                 "169.254.169.254 is blocked (default: link-local"));
    fg_config_free(cfg);

    snprintf(text, sizeof text, "{'security':{'strict':true,'allowedHosts':['*.internal.corp']},"
             "%s", ups);
    expect_validate_error(text, "upstreams[0].url", "outside security.allowedHosts");
    snprintf(text, sizeof text, "{'security':{'strict':true,'allowedHosts':['*.internal.corp',"
             "'api.primary.com','10.0.0.1','169.254.169.254']},%s", ups);
    expect_validate_error(text, "upstreams[1].targets[1].url", "is blocked");

    /* *.suffix does not match the bare suffix; exact names are case-insensitive. */
    assert_true(fg_host_match("*.internal.corp", "a.b.internal.corp"));
    assert_false(fg_host_match("*.internal.corp", "internal.corp"));
    assert_false(fg_host_match("*.internal.corp", "xinternal.corp"));
    assert_true(fg_host_match("API.example.com", "api.example.com"));
    assert_true(fg_host_match("[::1]", "::1"));
    assert_false(fg_host_match("api.example.com", "api.example.com.evil"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_minimal),
        cmocka_unit_test(test_seed_minimal_without_id),
        cmocka_unit_test(test_seed_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_entity_defaults),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_null_means_absent),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_proxy_timeout_forms),
        cmocka_unit_test(test_max_body_size),
        cmocka_unit_test(test_url_or_targets),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_route_paths),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_header_ops),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_security_lists),
        cmocka_unit_test(test_rate_limit_conf),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_validate_cross_entity),
        cmocka_unit_test(test_validate_hand_built),
        cmocka_unit_test(test_proxy_limits),
        cmocka_unit_test(test_route_websocket),
        cmocka_unit_test(test_canonical_round_trip),
        cmocka_unit_test(test_canonical_is_independent_of_input_form),
        cmocka_unit_test(test_entity_decoders),
        cmocka_unit_test(test_parse_text),
        cmocka_unit_test(test_many_routes),
        cmocka_unit_test(test_count_limits),
        cmocka_unit_test(test_auth_options),
        cmocka_unit_test(test_rate_limit_redis_and_table_settings),
        cmocka_unit_test(test_traffic_control_keys),
        cmocka_unit_test(test_request_id_header),
        cmocka_unit_test(test_route_allow_encoded_slashes),
        cmocka_unit_test(test_security_findings_and_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
