/* test_proto.c - unit tests for proto/fg_proto.c: every message round trips; missing and
 * mistyped fields are refused with the field named; a snapshot is verified all the way
 * (config decode, validator, checksum over the canonical text). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fg_config.h"
#include "fg_hash.h"
#include "fg_proto.h"

static char *sq(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* ---- HELLO ---------------------------------------------------------------------------- */

static void test_hello_round_trip(void **state)
{
    (void)state;
    fg_hello_t in = {.pid = 4242, .protocol = FG_PROTOCOL_VERSION, .applied_version = 17};
    strcpy(in.dp_id, "web-1-4242");
    strcpy(in.hostname, "web-1");
    strcpy(in.software_version, "0.1.0");
    char *text = fg_hello_encode(&in);
    assert_non_null(text);
    fg_hello_t out;
    fg_error_t err;
    assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), 0);
    assert_string_equal(out.dp_id, "web-1-4242");
    assert_string_equal(out.hostname, "web-1");
    assert_string_equal(out.software_version, "0.1.0");
    assert_int_equal(out.pid, 4242);
    assert_int_equal(out.protocol, 1);
    assert_int_equal(out.applied_version, 17);
    free(text);
}

static void expect_hello_error(const char *sq_json, const char *field)
{
    char *text = sq(sq_json);
    fg_hello_t out;
    fg_error_t err;
    int rc = fg_hello_decode(text, strlen(text), &out, &err);
    free(text);
    if (rc != -EINVAL)
        fail_msg("HELLO %s: rc %d", sq_json, rc);
    if (strcmp(err.field, field) != 0)
        fail_msg("HELLO %s: field '%s' (%s), expected '%s'", sq_json, err.field, err.message,
                 field);
}

#define HELLO_OK "'dp_id':'a','hostname':'h','pid':1,'software_version':'v','protocol':1"

static void test_hello_refused(void **state)
{
    (void)state;
    expect_hello_error("{'hostname':'h','pid':1,'software_version':'v','protocol':1,"
                       "'applied_version':0}", "dp_id");
    expect_hello_error("{" HELLO_OK "}", "applied_version");
    expect_hello_error("{" HELLO_OK ",'applied_version':'0'}", "applied_version");
    expect_hello_error("{" HELLO_OK ",'applied_version':1.5}", "applied_version");
    expect_hello_error("{" HELLO_OK ",'applied_version':-1}", "applied_version");
    expect_hello_error("{" HELLO_OK ",'applied_version':9007199254740993}", "applied_version");
    expect_hello_error("{'dp_id':'','hostname':'h','pid':1,'software_version':'v','protocol':1,"
                       "'applied_version':0}", "dp_id");
    expect_hello_error("{'dp_id':7,'hostname':'h','pid':1,'software_version':'v','protocol':1,"
                       "'applied_version':0}", "dp_id");
    expect_hello_error("{'dp_id':'a','hostname':'h','pid':'1','software_version':'v',"
                       "'protocol':1,'applied_version':0}", "pid");
    expect_hello_error("{'dp_id':'a','hostname':'h','pid':1,'software_version':'v',"
                       "'protocol':0,'applied_version':0}", "protocol");
    expect_hello_error("{'dp_id':'a','hostname':'h','pid':1,'software_version':'v',"
                       "'applied_version':0}", "protocol");
    expect_hello_error("[]", "");
    expect_hello_error("{'dp_id':", "");
    expect_hello_error("{" HELLO_OK ",'applied_version':0} x", "");

    /* Too long for its buffer. */
    char json[600];
    char id[FG_ID_MAX + 1];
    memset(id, 'x', FG_ID_MAX);
    id[FG_ID_MAX] = '\0';
    snprintf(json, sizeof(json),
             "{'dp_id':'%s','hostname':'h','pid':1,'software_version':'v','protocol':1,"
             "'applied_version':0}", id);
    expect_hello_error(json, "dp_id");
    id[FG_ID_MAX - 1] = '\0'; /* the longest that fits */
    snprintf(json, sizeof(json),
             "{'dp_id':'%s','hostname':'h','pid':1,'software_version':'v','protocol':1,"
             "'applied_version':0,'labels':{'zone':'a'}}", id);
    char *text = sq(json);
    fg_hello_t out;
    fg_error_t err;
    /* ...and unknown keys are ignored. */
    assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(strlen(out.dp_id), FG_ID_MAX - 1);
    free(text);

    /* Another protocol version decodes: deciding what to do about it is the caller's job. */
    text = sq("{" HELLO_OK ",'applied_version':0}");
    text[strstr(text, "\"protocol\":1") - text + 11] = '2';
    assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(out.protocol, 2);
    free(text);
}

/* ---- ACK / NACK / PING ---------------------------------------------------------------- */

static void test_hello_labels(void **state)
{
    fg_hello_t in = {.pid = 1, .protocol = FG_PROTOCOL_VERSION}, out;
    fg_error_t err;
    (void)state;
    snprintf(in.dp_id, sizeof in.dp_id, "dp");
    snprintf(in.hostname, sizeof in.hostname, "h");
    snprintf(in.software_version, sizeof in.software_version, "1");
    assert_int_equal(fg_label_parse("zone=eu-1", &in.labels[0], &err), 0);
    assert_int_equal(fg_label_parse("k8s.io/node=", &in.labels[1], &err), 0); /* empty value */
    in.n_labels = 2;
    char *p = fg_hello_encode(&in);
    assert_non_null(strstr(p, "\"labels\":{\"zone\":\"eu-1\",\"k8s.io/node\":\"\"}"));
    assert_int_equal(fg_hello_decode(p, strlen(p), &out, &err), 0);
    free(p);
    assert_int_equal(out.n_labels, 2);
    assert_string_equal(out.labels[0].key, "zone");
    assert_string_equal(out.labels[0].value, "eu-1");
    assert_string_equal(out.labels[1].key, "k8s.io/node");
    assert_string_equal(out.labels[1].value, "");

    /* Optional: a HELLO from before labels decodes with none. */
    static const char old[] = "{\"dp_id\":\"a\",\"hostname\":\"h\",\"pid\":1,"
                              "\"software_version\":\"1\",\"protocol\":1,\"applied_version\":0}";
    assert_int_equal(fg_hello_decode(old, sizeof old - 1, &out, &err), 0);
    assert_int_equal(out.n_labels, 0);

    /* Refused: wrong types, bad keys, control characters, duplicates, too many. */
    static const char *const bad[] = {
        "\"labels\":[]", "\"labels\":{\"a\":1}", "\"labels\":{\"\":\"x\"}",
        "\"labels\":{\"a b\":\"x\"}", "\"labels\":{\"a\":\"x\\ny\"}",
        "\"labels\":{\"a\":\"x\",\"a\":\"y\"}",
        "\"labels\":{\"a\":\"x\",\"b\":\"x\",\"c\":\"x\",\"d\":\"x\",\"e\":\"x\",\"f\":\"x\","
        "\"g\":\"x\",\"h\":\"x\",\"i\":\"x\",\"j\":\"x\",\"k\":\"x\",\"l\":\"x\",\"m\":\"x\","
        "\"n\":\"x\",\"o\":\"x\",\"p\":\"x\",\"q\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{\"dp_id\":\"a\",\"hostname\":\"h\",\"pid\":1,"
                 "\"software_version\":\"1\",\"protocol\":1,\"applied_version\":0,%s}", bad[i]);
        if (fg_hello_decode(text, strlen(text), &out, &err) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_string_equal(err.field, "labels");
    }
    static const char *const bad_args[] = {"novalue", "=x", "a b=c", "a=\x01"};
    fg_label_t l;
    for (size_t i = 0; i < sizeof bad_args / sizeof bad_args[0]; i++)
        assert_int_equal(fg_label_parse(bad_args[i], &l, &err), -EINVAL);
    char long_key[80];
    memset(long_key, 'k', 70);
    memcpy(long_key + 70, "=v", 3);
    assert_int_equal(fg_label_parse(long_key, &l, &err), -EINVAL);
}

static void test_incompatible_notice(void **state)
{
    fg_ack_t a;
    fg_error_t err;
    (void)state;
    char *p = fg_incompatible_encode(FG_PROTOCOL_VERSION + 1);
    assert_non_null(p);
    /* An ordinary NACK of version 0 to any data plane, plus what ctl speaks. */
    assert_int_equal(fg_ack_decode(p, strlen(p), &a, &err), 0);
    assert_int_equal(a.version, 0);
    assert_non_null(strstr(a.error, "not supported"));
    assert_non_null(strstr(p, "\"protocol\":1"));
    free(p);
}

static void test_ack_nack_round_trip(void **state)
{
    (void)state;
    fg_ack_t in = {.version = 42};
    fg_ack_t out;
    fg_error_t err;

    char *text = fg_ack_encode(&in, 0);
    assert_string_equal(text, "{\"version\":42}");
    assert_int_equal(fg_ack_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(out.version, 42);
    assert_string_equal(out.error, "");
    free(text);

    strcpy(in.error, "config.routes[1].upstream: unknown upstream \"x\"");
    text = fg_ack_encode(&in, 1);
    assert_int_equal(fg_ack_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(out.version, 42);
    assert_string_equal(out.error, in.error);
    free(text);

    /* A long NACK reason is cut to fit, not refused. */
    char *long_json = malloc(4096);
    strcpy(long_json, "{\"version\":3,\"error\":\"");
    size_t n = strlen(long_json);
    memset(long_json + n, 'e', 2000);
    strcpy(long_json + n + 2000, "\"}");
    assert_int_equal(fg_ack_decode(long_json, strlen(long_json), &out, &err), 0);
    assert_int_equal(strlen(out.error), FG_PROTO_ERROR_MAX - 1);
    free(long_json);

    const char *bad[] = {"{}", "{\"version\":\"1\"}", "{\"version\":-1}", "{\"version\":0.5}",
                         "{\"version\":1,\"error\":5}", "[1]", ""};
    const char *fields[] = {"version", "version", "version", "version", "error", "", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fg_ack_decode(bad[i], strlen(bad[i]), &out, &err), -EINVAL);
        assert_string_equal(err.field, fields[i]);
    }
}

static void test_ping_round_trip(void **state)
{
    (void)state;
    fg_ping_t in = {.applied_version = 9007199254740991LL, .requests = 1234}, out;
    fg_error_t err;
    char *text = fg_ping_encode(&in);
    assert_int_equal(fg_ping_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(out.applied_version, 9007199254740991LL);
    assert_int_equal(out.requests, 1234);
    free(text);
    in.applied_version = 0;
    in.requests = -1; /* not sent: the control plane's pings */
    text = fg_ping_encode(&in);
    assert_string_equal(text, "{\"applied_version\":0}");
    assert_int_equal(fg_ping_decode(text, strlen(text), &out, &err), 0);
    assert_int_equal(out.requests, -1);
    free(text);
    assert_int_equal(fg_ping_decode("{\"applied_version\":1,\"requests\":-5}", 35, &out, &err),
                     -EINVAL);
    assert_string_equal(err.field, "requests");
    assert_int_equal(fg_ping_decode("{}", 2, &out, &err), -EINVAL);
    assert_string_equal(err.field, "applied_version");
    assert_int_equal(fg_ping_decode("{\"applied_version\":null}", 24, &out, &err), -EINVAL);
    assert_int_equal(fg_ping_decode(NULL, 0, &out, &err), -EINVAL);
}

/* ---- SNAPSHOT ------------------------------------------------------------------------- */

static const char config_sq[] =
    "{'upstreams':[{'name':'backend','url':'http://127.0.0.1:8081','timeout':5000}],"
    " 'routes':[{'id':'users','path':'/api/users/*','upstream':'backend','auth':'none'},"
    "           {'id':'all','path':'/*','upstream':'backend'}]}";

/* A snapshot payload for `config_text` (real JSON) with the right checksum. */
static char *make_snapshot(int64_t version, const char *config_text, char *checksum_out)
{
    fg_config_t *cfg = NULL;
    fg_error_t err;
    assert_int_equal(fg_config_parse(config_text, strlen(config_text), &cfg, &err), 0);
    char *canon = fg_config_canonical(cfg);
    char sum[FG_SHA256_HEX_LEN + 1];
    fg_sha256_hex(canon, strlen(canon), sum);
    if (checksum_out)
        strcpy(checksum_out, sum);
    char *payload = fg_snapshot_encode(version, sum, "2026-11-25T19:43:28.123Z", canon);
    assert_non_null(payload);
    /* The canonical text is embedded verbatim. */
    assert_non_null(strstr(payload, canon));
    free(canon);
    fg_config_free(cfg);
    return payload;
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    char *cfg_text = sq(config_sq);
    char sum[FG_SHA256_HEX_LEN + 1];
    char *payload = make_snapshot(7, cfg_text, sum);
    fg_snapshot_t s;
    fg_error_t err;
    int rc = fg_snapshot_decode(payload, strlen(payload), &s, &err);
    if (rc != 0)
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(s.version, 7);
    assert_string_equal(s.checksum, sum);
    assert_string_equal(s.created_at, "2026-11-25T19:43:28.123Z");
    assert_non_null(s.config);
    assert_int_equal(s.config->n_routes, 2);
    assert_string_equal(s.config->routes[0].id, "users");
    assert_int_equal(strncmp(payload, "{\"version\":7,\"checksum\":\"", 25), 0);
    fg_snapshot_clear(&s);
    assert_null(s.config);
    fg_snapshot_clear(&s); /* twice is fine */
    fg_snapshot_clear(NULL);
    free(payload);
    free(cfg_text);
}

static void test_snapshot_bad_checksum(void **state)
{
    (void)state;
    char *cfg_text = sq(config_sq);
    char sum[FG_SHA256_HEX_LEN + 1];
    char *payload = make_snapshot(8, cfg_text, sum);
    /* Flip one hex digit of the checksum. */
    char *at = strstr(payload, sum);
    at[10] = at[10] == '0' ? '1' : '0';
    fg_snapshot_t s;
    fg_error_t err;
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EBADMSG);
    assert_string_equal(err.field, "checksum");
    assert_non_null(strstr(err.message, "checksum mismatch"));
    assert_null(s.config);
    assert_int_equal(s.version, 8); /* still known, so it can be NACKed */
    fg_snapshot_clear(&s);

    /* Uppercase hex is malformed, not merely wrong. */
    at[10] = at[10] == '0' ? '1' : '0';
    for (int i = 0; i < 64; i++)
        if (at[i] >= 'a' && at[i] <= 'f')
            at[i] = (char)(at[i] - 'a' + 'A');
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EINVAL);
    assert_string_equal(err.field, "checksum");
    free(payload);

    /* Changing the config after the checksum was taken is caught. */
    payload = make_snapshot(9, cfg_text, sum);
    char *port = strstr(payload, "\"timeout\":5000");
    assert_non_null(port);
    port[11] = '6';
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EBADMSG);
    free(payload);
    free(cfg_text);
}

static void test_snapshot_invalid_config(void **state)
{
    (void)state;
    /* Well-formed JSON, correct checksum over what the sender meant, but a route whose
     * upstream does not exist: the validator refuses it and names the field. */
    char *payload = sq("{'version':5,'checksum':'" "0000000000000000000000000000000000000000000000000000000000000000"
                       "','created_at':'x','config':{'upstreams':[{'name':'a','url':'http://h'}],"
                       "'routes':[{'id':'r0','path':'/','upstream':'a'},"
                       "{'id':'r1','path':'/x','upstream':'nope'}]}}");
    fg_snapshot_t s;
    fg_error_t err;
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EINVAL);
    assert_string_equal(err.field, "config.routes[1].upstream");
    assert_non_null(strstr(err.message, "unknown upstream"));
    assert_int_equal(s.version, 5);
    assert_null(s.config);
    free(payload);

    /* A decode error (unknown key) inside config is named with its full path. */
    payload = sq("{'version':5,'checksum':'" "0000000000000000000000000000000000000000000000000000000000000000"
                 "','created_at':'x','config':{'routes':[{'path':'/','upstream':'a','rateLimt':{}}]}}");
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EINVAL);
    assert_string_equal(err.field, "config.routes[0].rateLimt");
    free(payload);

    payload = sq("{'version':5,'checksum':'" "0000000000000000000000000000000000000000000000000000000000000000"
                 "','created_at':'x','config':{'logging':{'level':'loud'}}}");
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EINVAL);
    assert_string_equal(err.field, "config.logging.level");
    free(payload);

    /* A top-level problem with the config object itself. */
    payload = sq("{'version':5,'checksum':'" "0000000000000000000000000000000000000000000000000000000000000000"
                 "','created_at':'x','config':{'bogus':1}}");
    assert_int_equal(fg_snapshot_decode(payload, strlen(payload), &s, &err), -EINVAL);
    assert_string_equal(err.field, "config.bogus");
    free(payload);
}

#define SUM0 "0000000000000000000000000000000000000000000000000000000000000000"

static void expect_snapshot_error(const char *sq_json, const char *field)
{
    char *text = sq(sq_json);
    fg_snapshot_t s;
    fg_error_t err;
    int rc = fg_snapshot_decode(text, strlen(text), &s, &err);
    free(text);
    if (rc != -EINVAL)
        fail_msg("SNAPSHOT %s: rc %d", sq_json, rc);
    assert_null(s.config);
    if (strcmp(err.field, field) != 0)
        fail_msg("SNAPSHOT %s: field '%s' (%s), expected '%s'", sq_json, err.field, err.message,
                 field);
}

static void test_snapshot_fields_refused(void **state)
{
    (void)state;
    expect_snapshot_error("{'checksum':'" SUM0 "','created_at':'x','config':{}}", "version");
    expect_snapshot_error("{'version':0,'checksum':'" SUM0 "','created_at':'x','config':{}}",
                          "version");
    expect_snapshot_error("{'version':'1','checksum':'" SUM0 "','created_at':'x','config':{}}",
                          "version");
    expect_snapshot_error("{'version':1.25,'checksum':'" SUM0 "','created_at':'x','config':{}}",
                          "version");
    expect_snapshot_error("{'version':1,'created_at':'x','config':{}}", "checksum");
    expect_snapshot_error("{'version':1,'checksum':'abc','created_at':'x','config':{}}",
                          "checksum");
    expect_snapshot_error("{'version':1,'checksum':5,'created_at':'x','config':{}}", "checksum");
    expect_snapshot_error("{'version':1,'checksum':'" SUM0 "','config':{}}", "created_at");
    expect_snapshot_error("{'version':1,'checksum':'" SUM0 "','created_at':1,'config':{}}",
                          "created_at");
    expect_snapshot_error("{'version':1,'checksum':'" SUM0 "','created_at':'x'}", "config");
    expect_snapshot_error("{'version':1,'checksum':'" SUM0 "','created_at':'x','config':[]}",
                          "config");
    expect_snapshot_error("{'version':1,'checksum':'" SUM0 "','created_at':'x','config':'{}'}",
                          "config");
    expect_snapshot_error("not json", "");
    expect_snapshot_error("", "");
    expect_snapshot_error("[]", "");
}

static void test_snapshot_checksum_is_over_the_model(void **state)
{
    (void)state;
    /* A sender that writes the config in another (non-canonical) spelling but checksums the
     * canonical text of the same model is accepted: the data plane recomputes from what it
     * decoded. */
    char *cfg_text = sq(config_sq);
    char sum[FG_SHA256_HEX_LEN + 1];
    char *canonical_payload = make_snapshot(3, cfg_text, sum);
    free(canonical_payload);
    char *payload = malloc(strlen(cfg_text) + 256);
    sprintf(payload, "{\"config\": %s, \"created_at\": \"t\", \"checksum\": \"%s\", "
                     "\"version\": 3, \"extra\": true}",
            cfg_text, sum);
    fg_snapshot_t s;
    fg_error_t err;
    int rc = fg_snapshot_decode(payload, strlen(payload), &s, &err);
    if (rc != 0)
        fail_msg("%s: %s", err.field, err.message);
    assert_int_equal(s.version, 3);
    fg_snapshot_clear(&s);
    free(payload);
    free(cfg_text);
}

static void test_snapshot_encode_args(void **state)
{
    (void)state;
    assert_null(fg_snapshot_encode(1, NULL, "t", "{}"));
    assert_null(fg_snapshot_encode(1, SUM0, NULL, "{}"));
    assert_null(fg_snapshot_encode(1, SUM0, "t", NULL));
    char *p = fg_snapshot_encode(1, SUM0, "a\"b", "{}");
    assert_string_equal(p, "{\"version\":1,\"checksum\":\"" SUM0 "\",\"created_at\":\"a\\\"b\","
                           "\"config\":{}}");
    free(p);
}

/* ---- HELLO secret and the refusal (issue 5) ------------------------------------------- */

static void test_hello_secret_round_trip(void **state)
{
    (void)state;
    fg_hello_t in = {.pid = 1, .protocol = FG_PROTOCOL_VERSION};
    strcpy(in.dp_id, "dp");
    strcpy(in.hostname, "h");
    strcpy(in.software_version, "1");
    char *text = fg_hello_encode(&in);
    assert_non_null(text);
    assert_null(strstr(text, "secret")); /* none set: none sent */
    free(text);
    strcpy(in.secret, "s3cret \"quoted\"");
    text = fg_hello_encode(&in);
    assert_non_null(text);
    fg_hello_t out;
    fg_error_t err;
    assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), 0);
    assert_string_equal(out.secret, "s3cret \"quoted\"");
    free(text);
}

static void test_hello_secret_refused_when_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{'dp_id':'a','hostname':'h','pid':1,'software_version':'1','protocol':1,"
        "'applied_version':0,'secret':7}",
        "{'dp_id':'a','hostname':'h','pid':1,'software_version':'1','protocol':1,"
        "'applied_version':0,'secret':''}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = sq(bad[i]);
        fg_hello_t out;
        fg_error_t err;
        assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), -EINVAL);
        assert_string_equal(err.field, "secret");
        free(text);
    }
    /* Too long: 256 bytes; the error names the field, never the value. */
    char big[FG_HELLO_SECRET_MAX + 1], text[1024];
    memset(big, 'x', FG_HELLO_SECRET_MAX);
    big[FG_HELLO_SECRET_MAX] = '\0';
    snprintf(text, sizeof text, "{\"dp_id\":\"a\",\"hostname\":\"h\",\"pid\":1,"
             "\"software_version\":\"1\",\"protocol\":1,\"applied_version\":0,"
             "\"secret\":\"%s\"}", big);
    fg_hello_t out;
    fg_error_t err;
    assert_int_equal(fg_hello_decode(text, strlen(text), &out, &err), -EINVAL);
    assert_string_equal(err.field, "secret");
    assert_null(strstr(err.message, "xxxx"));
}

static void test_refusal_is_a_nack_of_version_zero(void **state)
{
    (void)state;
    char *text = fg_refusal_encode("authentication failed: wrong secret");
    assert_non_null(text);
    fg_ack_t a;
    fg_error_t err;
    assert_int_equal(fg_ack_decode(text, strlen(text), &a, &err), 0);
    assert_int_equal(a.version, 0);
    assert_string_equal(a.error, "authentication failed: wrong secret");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_hello_refused),
        cmocka_unit_test(test_hello_labels),
        cmocka_unit_test(test_incompatible_notice),
        cmocka_unit_test(test_ack_nack_round_trip),
        cmocka_unit_test(test_ping_round_trip),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_bad_checksum),
        cmocka_unit_test(test_snapshot_invalid_config),
        cmocka_unit_test(test_snapshot_fields_refused),
        cmocka_unit_test(test_snapshot_checksum_is_over_the_model),
        cmocka_unit_test(test_snapshot_encode_args),
        cmocka_unit_test(test_hello_secret_round_trip),
        cmocka_unit_test(test_hello_secret_refused_when_malformed),
        cmocka_unit_test(test_refusal_is_a_nack_of_version_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
