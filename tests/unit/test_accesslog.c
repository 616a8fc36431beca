/* test_accesslog.c - unit tests for dataplane/accesslog.c and dataplane/trace.c: the line's
 * fields, escaping that no request byte can break out of, truncation that keeps a line
 * valid JSON, sampling and level, the non-blocking sink (a stalled pipe drops and counts,
 * never blocks), and the request id / traceparent rules. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "../../dataplane/accesslog.c"

typedef struct fixture {
    dp_conn_t conn;
    fg_route_t route;
    fg_upstream_t upstream;
    fg_target_t target;
    http1_head_t head;
    char head_buf[256];
} fixture_t;

/* A finished GET /orders/7 through route "orders" to upstream "backend". */
static dp_request_t *request_new(fixture_t *f)
{
    static dp_request_t r;
    memset(f, 0, sizeof *f);
    memset(&r, 0, sizeof r);
    strcpy(f->conn.peer_ip, "192.0.2.7");
    f->conn.peer_ip_len = 9;
    f->route.id = "orders";
    f->upstream.name = "backend";
    f->target.url = "http://10.0.0.1:8080";
    f->head.method = HTTP_GET;
    f->head.buf = f->head_buf;
    r.conn = &f->conn;
    r.head = &f->head;
    r.route = &f->route;
    r.upstream = &f->upstream;
    r.target = &f->target;
    r.path = "/orders/7";
    r.path_len = 9;
    r.resp_body_bytes = 512;
    r.req_body_bytes = 3;
    r.attempts = 2;
    r.key_name = "mobile-app";
    r.trace.start_us = 1000;
    r.trace.upstream_us = 1234;
    strcpy(r.trace.request_id, "rid-1");
    r.trace.request_id_len = 5;
    r.trace.ratelimit = DP_OUTCOME_ALLOWED;
    return &r;
}

static cJSON *parse_line(const char *line, size_t len)
{
    assert_true(len > 2);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    char *copy = strndup(line, len);
    cJSON *j = cJSON_Parse(copy);
    if (!j)
        fprintf(stderr, "not JSON: %s", copy);
    free(copy);
    assert_non_null(j);
    return j;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_fields(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    char line[DP_ACCESSLOG_LINE_MAX];
    size_t n = accesslog_format(line, sizeof line, r, 201, 1000 + 12345);
    cJSON *j = parse_line(line, n);
    assert_string_equal(str(j, "level"), "info");
    assert_string_equal(str(j, "msg"), "request");
    assert_string_equal(str(j, "request_id"), "rid-1");
    assert_string_equal(str(j, "method"), "GET");
    assert_string_equal(str(j, "path"), "/orders/7");
    assert_string_equal(str(j, "route"), "orders");
    assert_string_equal(str(j, "upstream"), "backend");
    assert_string_equal(str(j, "target"), "http://10.0.0.1:8080");
    assert_string_equal(str(j, "client_ip"), "192.0.2.7");
    assert_string_equal(str(j, "key_name"), "mobile-app");
    assert_string_equal(str(j, "ratelimit"), "allowed");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "breaker")); /* not consulted */
    assert_int_equal((int)num(j, "status"), 201);
    assert_true(num(j, "duration_ms") > 12.344 && num(j, "duration_ms") < 12.346);
    assert_true(num(j, "upstream_ms") > 1.233 && num(j, "upstream_ms") < 1.235);
    assert_int_equal((int)num(j, "bytes_in"), 3);
    assert_int_equal((int)num(j, "bytes_out"), 512);
    assert_int_equal((int)num(j, "retries"), 2);
    assert_int_equal(strlen(str(j, "ts")), FG_RFC3339_LEN);
    cJSON_Delete(j);
    n = accesslog_format(line, sizeof line, r, 502, 1000);
    j = parse_line(line, n);
    assert_string_equal(str(j, "level"), "warn");
    cJSON_Delete(j);
}

/* Whatever bytes a path holds, the line stays one JSON object whose path decodes back. */
static void test_escaping(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    static const char evil[] = "/a\"b\\c\nd\r{\"x\":1}\x01\x1b[31m\x7f\xff\xc3\xa9";
    char line[DP_ACCESSLOG_LINE_MAX];
    r->path = evil;
    r->path_len = sizeof evil - 1;
    size_t n = accesslog_format(line, sizeof line, r, 200, 1000);
    for (size_t i = 0; i < n - 1; i++)
        assert_true((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
    cJSON *j = parse_line(line, n);
    assert_string_equal(str(j, "path"),
                        "/a\"b\\c\nd\r{\"x\":1}\x01\x1b[31m\x7f\xef\xbf\xbd\xc3\xa9");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "x"));
    cJSON_Delete(j);
}

/* A path far over the limits: the line is cut at DP_ACCESSLOG_PATH_MAX and stays valid. */
static void test_truncation(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    size_t big = DP_ACCESSLOG_LINE_MAX * 2;
    char *path = malloc(big);
    memset(path, '\x01', big); /* 6 bytes each once escaped */
    path[0] = '/';
    r->path = path;
    r->path_len = big;
    char line[DP_ACCESSLOG_LINE_MAX];
    size_t n = accesslog_format(line, sizeof line, r, 200, 1000);
    assert_true(n <= DP_ACCESSLOG_LINE_MAX);
    cJSON *j = parse_line(line, n);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
    assert_true(strlen(str(j, "path")) <= DP_ACCESSLOG_PATH_MAX);
    cJSON_Delete(j);
    /* Even a buffer too small for most fields gives a whole object. */
    n = accesslog_format(line, 300, r, 200, 1000);
    assert_true(n <= 300);
    j = parse_line(line, n);
    cJSON_Delete(j);
    free(path);
}

/* The access log running on its own event base, its sink (fd 2) pointed at a pipe. */
typedef struct pipe_sink {
    struct event_base *base;
    int saved; /* the real fd 2, put back by pipe_sink_stop */
    int rd;    /* the pipe's read end */
} pipe_sink_t;

static void pipe_sink_open(pipe_sink_t *k, uint64_t success_rate)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    k->saved = dup(2);
    dup2(fds[1], 2);
    close(fds[1]);
    k->rd = fds[0];
    k->base = event_base_new();
    assert_int_equal(accesslog_start(k->base, 0), 0);
    fg_logging_conf_t conf = {.level = "info", .success_rate = success_rate, .error_rate = 1};
    accesslog_configure(&conf);
}

/* Stop the log (flushing what it holds) and give fd 2 back; the read end stays open. */
static void pipe_sink_stop(pipe_sink_t *k)
{
    accesslog_stop();
    dup2(k->saved, 2);
    close(k->saved);
}

static void pipe_sink_close(pipe_sink_t *k)
{
    close(k->rd);
    event_base_free(k->base);
}

static size_t count_lines(int fd)
{
    char buf[65536];
    size_t lines = 0;
    ssize_t n;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    return lines;
}

static void test_sampling_and_level(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    pipe_sink_t k;
    pipe_sink_open(&k, 0);
    dp_counters_t *c = metrics_counters();
    uint64_t out0 = c->accesslog_sampled_out, lines0 = c->accesslog_lines;
    for (int i = 0; i < 10; i++)
        accesslog_request(r, 200, 2000);
    for (int i = 0; i < 4; i++)
        accesslog_request(r, 503, 2000);
    assert_int_equal((int)(c->accesslog_sampled_out - out0), 10);
    assert_int_equal((int)(c->accesslog_lines - lines0), 4);
    fg_logging_conf_t conf = {.level = "error", .success_rate = 0, .error_rate = 1};
    accesslog_configure(&conf); /* above every access line */
    accesslog_request(r, 500, 2000);
    assert_int_equal((int)(c->accesslog_lines - lines0), 4);
    pipe_sink_stop(&k);
    assert_int_equal((int)count_lines(k.rd), 4);
    pipe_sink_close(&k);
}

/* Nobody reads the pipe: once it and the buffer are full, lines are dropped and counted,
 * and accesslog_request never waits. What reached the pipe is whole lines. */
static void test_stalled_sink(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    pipe_sink_t k;
    pipe_sink_open(&k, 1);
    dp_counters_t *c = metrics_counters();
    uint64_t drop0 = c->accesslog_dropped, lines0 = c->accesslog_lines;
    unsigned n = 4000; /* ~1.3 MB of lines against 64 KiB of pipe and 64 KiB of buffer */
    for (unsigned i = 0; i < n; i++)
        accesslog_request(r, 200, 2000);
    uint64_t dropped = c->accesslog_dropped - drop0, written = c->accesslog_lines - lines0;
    assert_true(dropped > 0);
    assert_int_equal((int)(dropped + written), (int)n);
    /* Drain, then let the rest out: every line that was not dropped arrives whole. */
    size_t got = count_lines(k.rd);
    pipe_sink_stop(&k);
    got += count_lines(k.rd);
    assert_int_equal((int)got, (int)written);
    pipe_sink_close(&k);
}

/* ---- trace.c -------------------------------------------------------------------------- */

/* A request head with the given header lines ("name", "value", ...). */
static void head_with(http1_head_t *h, char *buf, http1_header_t *hdrs, int n, ...)
{
    va_list ap;
    uint32_t off = 0;
    memset(h, 0, sizeof *h);
    h->buf = buf;
    h->headers = hdrs;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *), *value = va_arg(ap, const char *);
        memset(&hdrs[i], 0, sizeof hdrs[i]);
        hdrs[i].name_off = off;
        hdrs[i].name_len = (uint32_t)strlen(name);
        memcpy(buf + off, name, strlen(name));
        off += hdrs[i].name_len;
        hdrs[i].value_off = off;
        hdrs[i].value_len = (uint32_t)strlen(value);
        memcpy(buf + off, value, strlen(value));
        off += hdrs[i].value_len;
    }
    va_end(ap);
    h->n_headers = (uint32_t)n;
}

static void test_trace_rules(void **state)
{
    (void)state;
    http1_head_t h;
    http1_header_t hdrs[4];
    char buf[512];
    dp_trace_t t;

    trace_set_header(NULL);
    memset(&t, 0, sizeof t);
    head_with(&h, buf, hdrs, 3, "X-Request-Id", "abc-1", "traceparent",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "a=b");
    trace_begin(&t, &h);
    assert_string_equal(t.request_id, "abc-1");
    assert_false(t.id_generated);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_string_equal(t.flags, "01");
    assert_string_not_equal(t.span_id, "00f067aa0ba902b7");
    /* The client's copies are not forwarded as they came; tracestate is. */
    assert_true(hdrs[0].flags & HTTP1_HF_REQ_REWRITE);
    assert_true(hdrs[1].flags & HTTP1_HF_REQ_REWRITE);
    assert_false(hdrs[2].flags & HTTP1_HF_REQ_REWRITE);
    char out[512];
    char *end = trace_write_request(&t, out);
    assert_true((size_t)(end - out) <= trace_request_len(&t));
    *end = '\0';
    char want[256];
    snprintf(want, sizeof want, "X-Request-ID: abc-1\r\ntraceparent: 00-"
             "4bf92f3577b34da6a3ce929d0e0e4736-%s-01\r\n", t.span_id);
    assert_string_equal(out, want);

    /* Invalid ones: a generated id, a new trace, tracestate dropped. */
    static const char *const bad_tp[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* long for 00 */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper case */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
    };
    for (size_t i = 0; i < sizeof bad_tp / sizeof bad_tp[0]; i++) {
        memset(&t, 0, sizeof t);
        head_with(&h, buf, hdrs, 3, "x-request-id", "bad id", "traceparent", bad_tp[i],
                  "tracestate", "a=b");
        trace_begin(&t, &h);
        assert_true(t.id_generated);
        assert_int_equal(t.request_id_len, 32);
        assert_true(t.trace_started);
        assert_string_equal(t.flags, "00");
        assert_string_equal(t.parent_id, "");
        assert_true(hdrs[2].flags & HTTP1_HF_REQ_REWRITE);
    }
    /* Generated ids never repeat within a process. */
    char seen[64][DP_TRACE_REQUEST_ID_MAX + 1];
    for (int i = 0; i < 64; i++) {
        memset(&t, 0, sizeof t);
        head_with(&h, buf, hdrs, 0);
        trace_begin(&t, &h);
        strcpy(seen[i], t.request_id);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(seen[k], seen[i]);
    }
    /* A configured header name. */
    trace_set_header("X-Correlation-ID");
    memset(&t, 0, sizeof t);
    head_with(&h, buf, hdrs, 1, "x-correlation-id", "corr-9");
    trace_begin(&t, &h);
    assert_string_equal(t.request_id, "corr-9");
    end = trace_write_response(&t, out);
    *end = '\0';
    assert_string_equal(out, "X-Correlation-ID: corr-9\r\n");
    trace_set_header(NULL);
}

/* Bytes fg_json_escape changes, and clean ones right next to them in value. */
static const unsigned char special_bytes[] = {0x00, 0x01, '\n', 0x1f, '"', '\\', 0x7f,
                                              0x80, 0xa9, 0xc3, 0xe2, 0xf4, 0xfe, 0xff};
static const char clean_bytes[] = " !#[]~a/0.-_%=Z";

/* The fast scan stops at the first byte that needs escaping, wherever it falls relative to
 * its 16- and 8-byte blocks, and never reads past the string (exact-size allocations: a
 * read past the end fails under ASan). */
static void test_clean_prefix(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 48; n++) {
        char *s = malloc(n ? n : 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
            s[i] = clean_bytes[i % (sizeof clean_bytes - 1)];
        assert_int_equal(clean_prefix(s, n), n);
        for (size_t p = 0; p < n; p++) {
            for (size_t b = 0; b < sizeof special_bytes; b++) {
                char keep = s[p];
                s[p] = (char)special_bytes[b];
                assert_int_equal(clean_prefix(s, n), p);
                if (p + 1 < n) { /* a second one later changes nothing */
                    char keep2 = s[n - 1];
                    s[n - 1] = '"';
                    assert_int_equal(clean_prefix(s, n), p);
                    s[n - 1] = keep2;
                }
                s[p] = keep;
            }
        }
        free(s);
    }
}

/* Every byte value at every position around the block boundaries: the path in the line is
 * exactly what fg_json_escape (the reference, and the checked instance) writes. */
static void test_escape_matches_reference(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    static const size_t positions[] = {0, 1, 6, 7, 8, 9, 14, 15, 16, 17, 23, 24, 31, 32, 33, 39};
    static const char *const seqs[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                       "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"};
    char path[41], line[DP_ACCESSLOG_LINE_MAX], esc[41 * 6 + 1], want[41 * 6 + 16];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
            size_t p = positions[pi];
            if (p >= len)
                continue;
            for (int c = -(int)(sizeof seqs / sizeof seqs[0]); c < 256; c++) {
                for (size_t i = 0; i < len; i++)
                    path[i] = clean_bytes[(i * 7) % (sizeof clean_bytes - 1)];
                if (c >= 0) {
                    path[p] = (char)c;
                } else { /* a UTF-8 sequence (valid or not) across the boundary */
                    const char *q = seqs[-c - 1];
                    for (size_t i = 0; q[i] && p + i < len; i++)
                        path[p + i] = q[i];
                }
                r->path = path;
                r->path_len = len;
                size_t used, e = fg_json_escape(esc, sizeof esc - 1, path, len, &used);
                assert_int_equal(used, len);
                esc[e] = '\0';
                snprintf(want, sizeof want, ",\"path\":\"%s\",", esc);
                size_t n = accesslog_format(line, sizeof line, r, 200, 1000);
                line[n] = '\0';
                if (!strstr(line, want))
                    fail_msg("len %zu pos %zu byte %d: %s", len, p, c, line);
            }
        }
    }
}

static void test_put_dec(void **state)
{
    (void)state;
    static const uint64_t values[] = {0, 1, 9, 10, 11, 42, 99, 100, 101, 200, 999, 1000,
                                      1001, 9999, 10000, 65535, 99999, 100000, 1234567,
                                      4294967295u, 4294967296u, 999999999999999999u,
                                      1000000000000000000u, 9999999999999999999u,
                                      10000000000000000000u, UINT64_MAX - 1, UINT64_MAX};
    char got[24], want[24];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        size_t n = put_dec(got, values[i]);
        got[n] = '\0';
        snprintf(want, sizeof want, "%" PRIu64, values[i]);
        assert_string_equal(got, want);
    }
    for (uint64_t v = 0, step = 1; v < 100000000000u; v += step, step = step * 3 / 2 + 1) {
        size_t n = put_dec(got, v);
        got[n] = '\0';
        snprintf(want, sizeof want, "%" PRIu64, v);
        assert_string_equal(got, want);
    }
}

/* The cached timestamp (seconds formatted once, milliseconds patched) is always what
 * fg_rfc3339 writes: across second and minute boundaries, backwards, and past the year
 * 9999 where fg_rfc3339 clamps (no patching a clamped string). */
static void test_timestamp_cache(void **state)
{
    (void)state;
    static const uint64_t offsets[] = {1764100000000000u, /* 2025-11-25T19:46:40Z */
                                       ACCESSLOG_YEAR10000_S * 1000000u - 5000};
    static const uint64_t nows[] = {0, 998000, 998999, 999000, 999999, 1000000, 1000001,
                                    1001000, 1999000, 2000000, 500000, 500000, 501000,
                                    61000000, 61000999, 5000, 6000, 999000, 1};
    char want[FG_RFC3339_LEN + 1];
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        al.wall_offset_us = (int64_t)offsets[o];
        al.wall_offset_known = true;
        for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++) {
            fg_rfc3339((offsets[o] + nows[i]) / 1000, want);
            assert_string_equal(timestamp(nows[i]), want);
        }
    }
    al.wall_offset_known = false; /* measured again on the next line */
}

/* A line with every field at its longest, formatted into buffers of every size from small
 * to roomy (each allocated to exactly that size: a write past it fails under ASan): both
 * instances stay inside the buffer, every line is one JSON object, and the lines that were
 * not cut are the same line. */
static void test_worst_case_every_size(void **state)
{
    (void)state;
    fixture_t f;
    dp_request_t *r = request_new(&f);
    char route[FG_NAME_MAX_LEN + 1], upstream[FG_NAME_MAX_LEN + 1], key[FG_NAME_MAX_LEN + 1];
    char url[200], path[100];
    memset(route, 'r', FG_NAME_MAX_LEN);
    memset(upstream, 'u', FG_NAME_MAX_LEN);
    memset(key, '\x01', FG_NAME_MAX_LEN); /* 6 bytes each once escaped */
    route[FG_NAME_MAX_LEN] = upstream[FG_NAME_MAX_LEN] = key[FG_NAME_MAX_LEN] = '\0';
    memset(url, '\x1f', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    memset(path, '"', sizeof path);
    f.route.id = route;
    f.upstream.name = upstream;
    f.target.url = url;
    r->key_name = key;
    r->path = path;
    r->path_len = sizeof path;
    f.head.method = HTTP_GET_PARAMETER;
    strcpy(f.conn.peer_ip, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    f.conn.peer_ip_len = (uint8_t)strlen(f.conn.peer_ip);
    memset(r->trace.request_id, 'i', DP_TRACE_REQUEST_ID_MAX);
    r->trace.request_id[DP_TRACE_REQUEST_ID_MAX] = '\0';
    r->trace.request_id_len = DP_TRACE_REQUEST_ID_MAX;
    memset(r->trace.trace_id, 'a', DP_TRACE_ID_LEN);
    memset(r->trace.span_id, 'b', DP_TRACE_SPAN_LEN);
    memset(r->trace.parent_id, 'c', DP_TRACE_SPAN_LEN);
    r->trace.start_us = 1;
    r->trace.upstream_us = UINT64_MAX;
    r->trace.ratelimit = DP_OUTCOME_FALLBACK;
    r->trace.breaker = DP_OUTCOME_FALLBACK;
    r->req_body_bytes = r->resp_body_bytes = UINT64_MAX;
    r->attempts = UINT32_MAX;
    al.worker = UINT_MAX;
    char full[DP_ACCESSLOG_LINE_MAX];
    size_t full_len = accesslog_format(full, sizeof full, r, 599, UINT64_MAX);
    cJSON *j = parse_line(full, full_len);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "truncated"));
    cJSON_Delete(j);
    /* From the smallest buffer that holds the fields every line has (ts .. msg). */
    for (size_t cap = 128; cap <= DP_ACCESSLOG_LINE_MAX; cap++) {
        char *line = malloc(cap);
        assert_non_null(line);
        size_t n = accesslog_format(line, cap, r, 599, UINT64_MAX);
        assert_true(n <= cap);
        j = parse_line(line, n);
        if (!cJSON_GetObjectItemCaseSensitive(j, "truncated")) {
            assert_int_equal(n, full_len);
            assert_memory_equal(line, full, n);
        }
        cJSON_Delete(j);
        free(line);
    }
    al.worker = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_truncation),    cmocka_unit_test(test_sampling_and_level),
        cmocka_unit_test(test_stalled_sink),  cmocka_unit_test(test_trace_rules),
        cmocka_unit_test(test_clean_prefix),  cmocka_unit_test(test_escape_matches_reference),
        cmocka_unit_test(test_put_dec),       cmocka_unit_test(test_timestamp_cache),
        cmocka_unit_test(test_worst_case_every_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
