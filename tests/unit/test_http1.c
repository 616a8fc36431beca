/* test_http1.c - the llhttp glue (dataplane/http1.c) without sockets: the request head
 * scanner, the framing checks that back llhttp's lenient flags, head limits, header
 * classification, and that every verdict is the same however the input is split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fg_arena.h"
#include "http1.h"

#define BODY_MAX 4096
#define HEADS_MAX 8

typedef struct rec {
    int heads, completes;
    char body[BODY_MAX];
    size_t body_len;
    http1_head_t head[HEADS_MAX]; /* copies (their buffers live in the arena) */
    char url[HEADS_MAX][64];
} rec_t;

static int rec_head(void *ctx, http1_head_t *h)
{
    rec_t *r = ctx;
    if (r->heads < HEADS_MAX) {
        r->head[r->heads] = *h;
        size_t n = h->url_len < 63 ? h->url_len : 63;
        memcpy(r->url[r->heads], h->buf + h->url_off, n);
        r->url[r->heads][n] = '\0';
    }
    r->heads++;
    return HTTP1_CB_OK;
}

static int rec_body(void *ctx, const char *at, size_t len)
{
    rec_t *r = ctx;
    assert_true(r->body_len + len <= BODY_MAX);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int rec_complete(void *ctx)
{
    ((rec_t *)ctx)->completes++;
    return HTTP1_CB_OK;
}

static const http1_callbacks_t cbs = {rec_head, rec_body, rec_complete};

typedef struct fixture {
    fg_arena_t *arena;
    http1_parser_t p;
    rec_t rec;
} fixture_t;

static fixture_t fx;

static void fx_init(void)
{
    if (fx.arena)
        fg_arena_free(fx.arena);
    memset(&fx, 0, sizeof fx);
    fx.arena = fg_arena_new(8192);
    assert_non_null(fx.arena);
    http1_parser_init(&fx.p, HTTP_REQUEST, &cbs, &fx.rec, fx.arena);
}

/* Feed `s` in pieces of `step` bytes (0 = all at once); the result of the last call, or the
 * first error. */
static http1_result_t feed(const char *s, size_t len, size_t step)
{
    fx_init();
    size_t off = 0;
    http1_result_t rc = HTTP1_OK;
    if (step == 0)
        step = len;
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        rc = http1_parser_execute(&fx.p, s + off, n, &used);
        if (rc == HTTP1_ERROR)
            return rc;
        assert_int_equal(rc, HTTP1_OK); /* these callbacks never pause */
        assert_int_equal(used, n);
        off += n;
    }
    return rc;
}

#define FEED(lit, step) feed((lit), sizeof(lit) - 1, (step))

/* Refused with `status` whether fed whole or a byte at a time. */
static void expect_refused(const char *req, size_t len, int status)
{
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        http1_result_t rc = feed(req, len, steps[i]);
        if (rc != HTTP1_ERROR || fx.p.error_status != status)
            fail_msg("step %zu: want error %d, got rc %d status %d (%s) for:\n%.*s", steps[i],
                     status, (int)rc, fx.p.error_status,
                     fx.p.error_reason ? fx.p.error_reason : "-", (int)len, req);
        assert_int_equal(fx.rec.completes, 0);
    }
}

#define REFUSED(lit, status) expect_refused((lit), sizeof(lit) - 1, (status))
#define H "POST / HTTP/1.1\r\nHost: x\r\n"

static void test_valid_request_every_split(void **state)
{
    (void)state;
    static const char req[] = H "Transfer-Encoding: gzip, chunked\r\nX-A: a\t \xa0 b\r\n\r\n"
                                "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nT: x\r\n\r\n";
    for (size_t step = 0; step < 40; step++) {
        if (FEED(req, step) != HTTP1_OK)
            fail_msg("step %zu: error %d (%s)", step, fx.p.error_status, fx.p.error_reason);
        assert_int_equal(fx.rec.heads, 1);
        assert_int_equal(fx.rec.completes, 1);
        assert_int_equal(fx.rec.body_len, 11);
        assert_memory_equal(fx.rec.body, "hello world", 11);
        const http1_head_t *h = &fx.rec.head[0];
        assert_int_equal(h->framing, HTTP1_BODY_CHUNKED);
        assert_true(h->te_codings); /* gzip is forwarded */
        assert_int_equal(h->n_headers, 3);
    }
}

static void test_pipelined_requests_without_pausing(void **state)
{
    (void)state;
    static const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                              "\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t step = 0; step < 10; step++) {
        assert_int_equal(FEED(req, step), HTTP1_OK);
        assert_int_equal(fx.rec.completes, 3);
        assert_string_equal(fx.rec.url[0], "/a");
        assert_string_equal(fx.rec.url[1], "/b");
        assert_string_equal(fx.rec.url[2], "/c");
        assert_int_equal(fx.rec.body_len, 3);
    }
    /* The scanner runs on every pipelined head, not just the first. */
    for (size_t step = 0; step < 5; step++) {
        assert_int_equal(FEED("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /b HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", step),
                         HTTP1_ERROR);
        assert_int_equal(fx.p.error_status, 400);
        assert_int_equal(fx.rec.completes, 1);
    }
}

static void test_line_structure_refused(void **state)
{
    (void)state;
    REFUSED(H "X-A: a\rContent-Length: 5\r\n\r\nhello", 400);      /* bare CR in a value */
    REFUSED(H "X-A: a\r\rContent-Length: 0\r\n\r\n", 400);         /* CR CR */
    REFUSED(H "X-A: a\nContent-Length: 0\r\n\r\n", 400);           /* bare LF */
    REFUSED(H "Content-Length: 0\n\n", 400);                       /* LF LF ends nothing */
    REFUSED("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400);            /* CR in the request line */
    REFUSED(H "X-A: a\x00" "b\r\n\r\n", 400);                     /* NUL */
    REFUSED(H "X-A: a\r\n b\r\n\r\n", 400);                        /* obs-fold */
    REFUSED(H "X-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400);            /* space before 1st field */
    REFUSED(H "Content-Length : 5\r\n\r\nhello", 400);             /* space before colon */
    REFUSED(H "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400);
    REFUSED(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400);
}

static void test_framing_refused(void **state)
{
    (void)state;
    REFUSED(H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400);
    REFUSED(H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    REFUSED(H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400);
    REFUSED(H "Content-Length: 5,5\r\n\r\n", 400);
    REFUSED(H "Content-Length: 5\x01\r\n\r\n", 400);
    REFUSED(H "Content-Length: 18446744073709551616\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked, gzip\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: gzip\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\x01\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: \xa0" "chunked\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked;x=1\r\n\r\n", 400);
    REFUSED("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REFUSED(H "Transfer_Encoding: chunked\r\n\r\n", 400);
    REFUSED(H "Content_Length: 5\r\n\r\n", 400);
    REFUSED(H "Transfer---Encoding: chunked\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: foo, chunked\r\n\r\n", 501);
    REFUSED("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    REFUSED("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
}

static void test_chunk_framing_refused(void **state)
{
    (void)state;
    REFUSED(H "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n", 400);
    REFUSED(H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400);
}

static void test_lenient_but_safe(void **state)
{
    (void)state;
    /* Obs-text and tabs in an ordinary value are kept (RFC 9110 §5.5); control bytes are
     * refused (issue 5, header hygiene: see test_guard.c). */
    assert_int_equal(FEED("GET / HTTP/1.1\r\nHost: x\r\nX-A: v\t\xe9\x80\r\n\r\n", 0),
                     HTTP1_OK);
    assert_int_equal(fx.rec.completes, 1);
    const http1_head_t *h = &fx.rec.head[0];
    assert_int_equal(h->headers[1].value_len, 4);
    /* HTTP/1.2 reads as 1.1. */
    assert_int_equal(FEED("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 0), HTTP1_OK);
    assert_int_equal(fx.rec.head[0].minor, 1);
    /* Empty lines before a request line are skipped (RFC 9112 §2.2). */
    assert_int_equal(FEED("\r\n\r\nGET /z HTTP/1.1\r\nHost: x\r\n\r\n", 1), HTTP1_OK);
    assert_string_equal(fx.rec.url[0], "/z");
    /* Identical chunked framing via several codings on several lines. */
    assert_int_equal(FEED(H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "0\r\n\r\n", 3),
                     HTTP1_OK);
    assert_int_equal(fx.rec.head[0].framing, HTTP1_BODY_CHUNKED);
    assert_int_equal(fx.rec.head[0].n_te, 2);
}

static void test_limits(void **state)
{
    (void)state;
    char req[8192];
    /* maxHeaders: exactly the limit is fine, one more is 431. */
    for (uint32_t extra = 0; extra <= 1; extra++) {
        int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (uint32_t i = 0; i < 9 + extra; i++)
            n += snprintf(req + n, sizeof req - (size_t)n, "X-%u: v\r\n", i);
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
        fx_init();
        http1_parser_set_limits(&fx.p, 0, 10);
        size_t used;
        http1_result_t rc = http1_parser_execute(&fx.p, req, (size_t)n, &used);
        if (extra == 0) {
            assert_int_equal(rc, HTTP1_OK);
            assert_int_equal(fx.rec.completes, 1);
        } else {
            assert_int_equal(rc, HTTP1_ERROR);
            assert_int_equal(fx.p.error_status, 431);
        }
    }
    /* maxHeaderSize: a long request line or a long header section is 431. */
    int n = snprintf(req, sizeof req, "GET /%02000d HTTP/1.1\r\nHost: x\r\n\r\n", 7);
    fx_init();
    http1_parser_set_limits(&fx.p, 1024, 0);
    size_t used;
    assert_int_equal(http1_parser_execute(&fx.p, req, (size_t)n, &used), HTTP1_ERROR);
    assert_int_equal(fx.p.error_status, 431);
    n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %02000d\r\n\r\n", 7);
    fx_init();
    http1_parser_set_limits(&fx.p, 1024, 0);
    assert_int_equal(http1_parser_execute(&fx.p, req, (size_t)n, &used), HTTP1_ERROR);
    assert_int_equal(fx.p.error_status, 431);
    /* The default limits. */
    fx_init();
    assert_int_equal(fx.p.max_head_size, HTTP1_MAX_HEAD_SIZE);
    assert_int_equal(fx.p.max_headers, HTTP1_MAX_HEADERS);
}

static void test_hop_by_hop_and_upgrade(void **state)
{
    (void)state;
    assert_int_equal(FEED("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Priv\r\n"
                          "Upgrade: websocket\r\nX-Priv: 1\r\nX-Pub: 2\r\nKeep-Alive: 5\r\n"
                          "TE: trailers\r\n\r\n",
                          0),
                     HTTP1_OK);
    const http1_head_t *h = &fx.rec.head[0];
    assert_true(h->upgrade);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        bool pub = http1_caseeq(HTTP1_NAME(h, hd), hd->name_len, "X-Pub", 5);
        bool host = hd->token == HTTP1_H_HOST;
        if (pub || host)
            assert_false(hd->flags & HTTP1_HF_HOP);
        else
            assert_true(hd->flags & HTTP1_HF_HOP);
    }
    /* Upgrade without Connection: upgrade is not an upgrade request. */
    assert_int_equal(FEED("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 0),
                     HTTP1_OK);
    assert_false(fx.rec.head[0].upgrade);
}

static int teardown(void **state)
{
    (void)state;
    fg_arena_free(fx.arena);
    fx.arena = NULL;
    return 0;
}

/* ---- where the head lives: borrowed from the input, or copied when split ---------------- */

typedef struct head_rec {
    char text[512];    /* "URL|name=value|name=value|..." as read in the callback */
    bool borrowed;
    const char *buf;
} head_rec_t;

static void head_text(const http1_head_t *h, char *out, size_t cap, bool response)
{
    int n = response ? snprintf(out, cap, "%d %.*s", h->status, (int)h->reason_len,
                                h->buf + h->reason_off)
                     : snprintf(out, cap, "%.*s", (int)h->url_len, h->buf + h->url_off);
    for (uint32_t i = 0; i < h->n_headers && n > 0 && (size_t)n < cap; i++) {
        const http1_header_t *hd = &h->headers[i];
        n += snprintf(out + n, cap - (size_t)n, "|%.*s=%.*s", (int)hd->name_len,
                      HTTP1_NAME(h, hd), (int)hd->value_len, HTTP1_VALUE(h, hd));
    }
}

static int head_rec_cb(void *ctx, http1_head_t *h)
{
    head_rec_t *hr = ctx;
    http1_parser_t *p = (http1_parser_t *)((char *)h - offsetof(http1_parser_t, head));
    head_text(h, hr->text, sizeof hr->text, p->ll.type == HTTP_RESPONSE);
    hr->borrowed = http1_head_borrowed(p);
    hr->buf = h->buf;
    return HTTP1_CB_OK;
}

static const http1_callbacks_t head_cbs = {head_rec_cb, NULL, NULL};

/* Parse `msg` (`type`) split at `cut` (0 = whole) into two execute calls over separate
 * buffers, as two reads would; the callback's view of the head goes into `hr`. */
static void parse_cut(llhttp_type_t type, const char *msg, size_t cut, head_rec_t *hr,
                      char *a, char *b)
{
    size_t len = strlen(msg);
    if (cut == 0)
        cut = len;
    memcpy(a, msg, cut);
    memcpy(b, msg + cut, len - cut);
    fx_init();
    memset(hr, 0, sizeof *hr);
    http1_parser_init(&fx.p, type, &head_cbs, hr, fx.arena);
    size_t used;
    assert_int_equal(http1_parser_execute(&fx.p, a, cut, &used), HTTP1_OK);
    if (len > cut) {
        memset(a, 'X', cut); /* the first read's buffer is gone once it was consumed */
        assert_int_equal(http1_parser_execute(&fx.p, b, len - cut, &used), HTTP1_OK);
    }
}

static void test_head_borrowed_or_copied(void **state)
{
    (void)state;
    static const char req[] = "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n"
                              "X-Pad:  a b \t\r\nAccept: */*\r\n\r\n";
    static const char want[] = "/p?q=1|Host=example.com|X-Empty=|X-Pad=a b|Accept=*/*";
    char a[sizeof req], b[sizeof req];
    head_rec_t hr;

    /* Whole: no copy, the head is the input. */
    parse_cut(HTTP_REQUEST, req, 0, &hr, a, b);
    assert_string_equal(hr.text, want);
    assert_true(hr.borrowed);
    assert_true(hr.buf >= a && hr.buf < a + sizeof req);

    /* Split in the method: the head proper arrives whole in the second read. Split anywhere
     * after: copied into the arena. The same fields either way. */
    size_t head_len = sizeof req - 1;
    for (size_t cut = 1; cut < head_len; cut++) {
        parse_cut(HTTP_REQUEST, req, cut, &hr, a, b);
        if (strcmp(hr.text, want) != 0)
            fail_msg("cut %zu: %s", cut, hr.text);
        if (cut <= 4) {
            assert_true(hr.borrowed);
            assert_true(hr.buf >= b && hr.buf < b + sizeof req);
            continue;
        }
        assert_false(hr.borrowed);
        assert_false(hr.buf >= a && hr.buf < a + sizeof req);
        assert_false(hr.buf >= b && hr.buf < b + sizeof req);
    }
}

static void test_head_detach(void **state)
{
    (void)state;
    static const char req[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok";
    char a[sizeof req], b[sizeof req];
    head_rec_t hr;
    parse_cut(HTTP_REQUEST, req, 0, &hr, a, b);
    assert_true(http1_head_borrowed(&fx.p));
    const char *old;
    assert_int_equal(http1_head_detach(&fx.p, &old), 0);
    assert_ptr_equal(old, hr.buf);
    assert_false(http1_head_borrowed(&fx.p));
    memset(a, 'X', sizeof a); /* the input is released */
    char text[512];
    head_text(&fx.p.head, text, sizeof text, false);
    assert_string_equal(text, "/x|Host=h|Content-Length=2");
    /* Detaching an arena head is a no-op. */
    const char *now = fx.p.head.buf;
    assert_int_equal(http1_head_detach(&fx.p, &old), 0);
    assert_ptr_equal(fx.p.head.buf, now);
}

static void test_response_fold_becomes_spaces(void **state)
{
    (void)state;
    static const char resp[] = "HTTP/1.1 200 Fine\r\nX-Fold: one\r\n two\r\nContent-Length: 0"
                               "\r\n\r\n";
    char a[sizeof resp], b[sizeof resp];
    head_rec_t hr;
    for (size_t cut = 0; cut < sizeof resp - 1; cut++) {
        parse_cut(HTTP_RESPONSE, resp, cut, &hr, a, b);
        if (strcmp(hr.text, "200 Fine|X-Fold=one    two|Content-Length=0") != 0 &&
            strcmp(hr.text, "200 Fine|X-Fold=one   two|Content-Length=0") != 0)
            fail_msg("cut %zu: %s", cut, hr.text);
        assert_null(memchr(hr.text, '\r', strlen(hr.text)));
    }
}

/* The scanner skips clean bytes a word at a time: a control byte must be caught at every
 * offset within and across those words, in a request (refused) and in a response (the field
 * is dropped), and the bytes around it that are not control bytes must pass. */
static int resp_rec_cb(void *ctx, http1_head_t *h)
{
    *(http1_head_t *)ctx = *h;
    return HTTP1_CB_OK;
}

/* prefix + value[0..len) + suffix into out (value may hold NUL); the length. */
static size_t build_msg(char *out, const char *prefix, const char *value, size_t len,
                        const char *suffix)
{
    size_t a = strlen(prefix), c = strlen(suffix);
    memcpy(out, prefix, a);
    memcpy(out + a, value, len);
    memcpy(out + a + len, suffix, c);
    return a + len + c;
}

static void test_control_byte_at_every_offset(void **state)
{
    (void)state;
    static const unsigned char bad[] = {0x00, 0x01, 0x0b, 0x1f, 0x7f};
    for (size_t b = 0; b < sizeof bad; b++) {
        for (size_t at = 0; at < 24; at++) {
            char value[25];
            memset(value, 'v', 24);
            value[12] = ' ';
            value[20] = (char)0xe9; /* obs-text: not a control byte */
            value[at] = (char)bad[b];
            value[24] = '\0';
            char msg[128];
            size_t n = build_msg(msg, "GET / HTTP/1.1\r\nHost: x\r\nX-V: a", value, 24,
                                 "z\r\n\r\n");
            expect_refused(msg, n, 400);

            n = build_msg(msg, "HTTP/1.1 200 OK\r\nX-V: a", value, 24,
                          "z\r\nContent-Length: 0\r\n\r\n");
            http1_head_t h;
            memset(&h, 0, sizeof h);
            static const http1_callbacks_t rcb = {resp_rec_cb, NULL, NULL};
            fx_init();
            http1_parser_init(&fx.p, HTTP_RESPONSE, &rcb, &h, fx.arena);
            size_t used;
            assert_int_equal(http1_parser_execute(&fx.p, msg, n, &used), HTTP1_OK);
            assert_int_equal(h.n_headers, 2);
            if (!(h.headers[0].flags & HTTP1_HF_DROP))
                fail_msg("byte 0x%02x at %zu not dropped from the response", bad[b], at);
            assert_false(h.headers[1].flags & HTTP1_HF_DROP);
        }
    }
    /* Tab, space and obs-text at every offset are fine in a request value. */
    for (size_t at = 0; at < 24; at++) {
        char msg[128];
        char value[25];
        memset(value, 'v', 24);
        value[at] = "\t \xff"[at % 3];
        value[24] = '\0';
        int n = snprintf(msg, sizeof msg, "GET / HTTP/1.1\r\nHost: x\r\nX-V: a%sz\r\n\r\n", value);
        if (feed(msg, (size_t)n, 0) != HTTP1_OK)
            fail_msg("offset %zu refused: %s", at, fx.p.error_reason);
        assert_int_equal(fx.rec.completes, 1);
    }
}

/* Header names are classified whatever their case, and near misses are not tokens. */
static void test_token_lookup(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        http1_token_t want;
    } cases[] = {
        {"te", HTTP1_H_TE},
        {"TE", HTTP1_H_TE},
        {"Host", HTTP1_H_HOST},
        {"hOST", HTTP1_H_HOST},
        {"Hosu", HTTP1_H_OTHER},
        {"Hos", HTTP1_H_OTHER},
        {"Expect", HTTP1_H_EXPECT},
        {"Server", HTTP1_H_SERVER},
        {"Trailer", HTTP1_H_TRAILER},
        {"Upgrade", HTTP1_H_UPGRADE},
        {"Forwarded", HTTP1_H_FORWARDED},
        {"X-Real-IP", HTTP1_H_X_REAL_IP},
        {"X-Real_IP", HTTP1_H_OTHER},
        {"Connection", HTTP1_H_CONNECTION},
        {"Keep-Alive", HTTP1_H_KEEP_ALIVE},
        {"X-Powered-By", HTTP1_H_X_POWERED_BY},
        {"Content-Length", HTTP1_H_CONTENT_LENGTH},
        {"CONTENT-LENGTH", HTTP1_H_CONTENT_LENGTH},
        {"content-lengtH", HTTP1_H_CONTENT_LENGTH},
        {"Content_Length", HTTP1_H_OTHER},
        {"Content\rLength", HTTP1_H_OTHER},
        {"Content-Lengti", HTTP1_H_OTHER},
        {"Dontent-Length", HTTP1_H_OTHER},
        {"X-Forwarded-For", HTTP1_H_X_FORWARDED_FOR},
        {"Proxy-Connection", HTTP1_H_PROXY_CONNECTION},
        {"X-Forwarded-Host", HTTP1_H_X_FORWARDED_HOST},
        {"Transfer-Encoding", HTTP1_H_TRANSFER_ENCODING},
        {"transfer-encodinG", HTTP1_H_TRANSFER_ENCODING},
        {"Transfer-Encodin", HTTP1_H_OTHER},
        {"X-Forwarded-Proto", HTTP1_H_X_FORWARDED_PROTO},
        {"Proxy-Authenticate", HTTP1_H_PROXY_AUTHENTICATE},
        {"Proxy-Authorization", HTTP1_H_PROXY_AUTHORIZATION},
        {"Proxy-Authorizatioo", HTTP1_H_OTHER},
        {"Proxy-Authorizations", HTTP1_H_OTHER},
        {"", HTTP1_H_OTHER},
        {"x", HTTP1_H_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http1_token_t t = http1_token_lookup(cases[i].name, strlen(cases[i].name));
        if (t != cases[i].want)
            fail_msg("%s: got %d want %d", cases[i].name, (int)t, (int)cases[i].want);
    }
    /* Every byte position folds only letters: '-' and '\r' (0x2d, 0x0d) stay apart. */
    char name[] = "Content-Length";
    name[7] = '\r';
    assert_int_equal(http1_token_lookup(name, 14), HTTP1_H_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_request_every_split),
        cmocka_unit_test(test_pipelined_requests_without_pausing),
        cmocka_unit_test(test_line_structure_refused),
        cmocka_unit_test(test_framing_refused),
        cmocka_unit_test(test_chunk_framing_refused),
        cmocka_unit_test(test_lenient_but_safe),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_hop_by_hop_and_upgrade),
        cmocka_unit_test(test_head_borrowed_or_copied),
        cmocka_unit_test(test_head_detach),
        cmocka_unit_test(test_response_fold_becomes_spaces),
        cmocka_unit_test(test_control_byte_at_every_offset),
        cmocka_unit_test(test_token_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
