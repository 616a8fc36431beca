/* fuzz_http1.c - libFuzzer target for the data plane's request head handling: the http1.c
 * parser (head scanner, llhttp, framing checks) on requests and responses, and guard.c's path
 * normalisation of every request-target it accepts.
 *
 * Input: any bytes, parsed as a stream of requests, whole and split in two at a point the
 * first byte chooses, then as a stream of responses. Aborts when:
 *   - the two splittings disagree (heads seen, refused or not): a verdict must not depend on
 *     how the bytes arrived (which status a request with two faults is refused with may:
 *     the scanner sees a whole buffer before llhttp reads any of it);
 *   - an accepted request head holds a field value with a control byte (tab aside), or a
 *     field name that is not a token: header hygiene let through what it must refuse;
 *   - a response field that is not marked HTTP1_HF_DROP has such bytes: the proxy would
 *     forward a field that can split the response;
 *   - a normalised path does not start with '/', still holds "//", a dot segment, %00, an
 *     escape of an unreserved character or lower-case hex, or normalising it again changes
 *     it or copies it (the fast path must recognise its own output). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/guard.h"
#include "dataplane/http1.h"

#define FUZZ_HEADS_MAX 16 /* heads checked per input (the rest are only parsed) */

typedef struct seen {
    int heads;
    bool response;
    fg_arena_t *arena; /* for normalised paths */
} seen_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool unsafe_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

static bool unsafe_name(const char *v, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)v[i]))
            return true;
    return false;
}

static bool hexdig(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void check_normalised(fg_arena_t *arena, const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        abort();
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/' && i + 1 < n && p[i + 1] == '/')
            abort();
        if (p[i] == '/' && i + 1 < n && p[i + 1] == '.' &&
            (i + 2 == n || p[i + 2] == '/' ||
             (p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/'))))
            abort();
        if (p[i] == '%') {
            if (i + 2 >= n || !hexdig(p[i + 1]) || !hexdig(p[i + 2]))
                abort(); /* malformed, or lower-case hex */
            int v = (p[i + 1] <= '9' ? p[i + 1] - '0' : p[i + 1] - 'A' + 10) * 16 +
                    (p[i + 2] <= '9' ? p[i + 2] - '0' : p[i + 2] - 'A' + 10);
            bool unreserved = (v >= '0' && v <= '9') || (v >= 'A' && v <= 'Z') ||
                              (v >= 'a' && v <= 'z') || v == '-' || v == '.' || v == '_' ||
                              v == '~';
            if (v == 0 || unreserved)
                abort();
        }
    }
    const char *q = p;
    size_t m = n;
    unsigned flags = 0;
    if (guard_path_normalize(arena, &q, &m, &flags) != 0 || q != p || m != n)
        abort(); /* not a fixed point of the fast path */
}

static void check_path(seen_t *s, const http1_head_t *h)
{
    const char *u = h->buf + h->url_off;
    size_t n = h->url_len;
    if (n == 0 || u[0] != '/')
        return; /* absolute-form and the rest: proxy.c strips or refuses them first */
    const char *q = memchr(u, '?', n);
    if (q)
        n = (size_t)(q - u);
    const char *hash = memchr(u, '#', n);
    if (hash)
        n = (size_t)(hash - u);
    const char *p = u;
    unsigned flags = 0;
    if (guard_path_normalize(s->arena, &p, &n, &flags) == 0)
        check_normalised(s->arena, p, n);
}

static int on_head(void *ctx, http1_head_t *h)
{
    seen_t *s = ctx;
    if (s->heads++ >= FUZZ_HEADS_MAX)
        return HTTP1_CB_OK;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        bool bad = unsafe_value(HTTP1_VALUE(h, hd), hd->value_len) ||
                   unsafe_name(HTTP1_NAME(h, hd), hd->name_len);
        if (bad && (!s->response || !(hd->flags & HTTP1_HF_DROP))) {
            fprintf(stderr, "unsafe header field %u passed (%s)\n", i,
                    s->response ? "response" : "request");
            abort();
        }
    }
    if (!s->response)
        check_path(s, h);
    return HTTP1_CB_OK;
}

static int on_body(void *ctx, const char *at, size_t len)
{
    (void)ctx;
    (void)at;
    (void)len;
    return 0;
}

static const http1_callbacks_t cbs = {on_head, on_body, NULL};

/* Parse `data` as one stream, fed in two pieces at `split`. Returns the error status (0 when
 * none) and the heads seen. */
static int parse(const uint8_t *data, size_t size, size_t split, bool response, int *heads)
{
    fg_arena_t *arena = fg_arena_new(0);
    if (!arena)
        abort();
    seen_t s = {.response = response, .arena = arena};
    http1_parser_t p;
    http1_parser_init(&p, response ? HTTP_RESPONSE : HTTP_REQUEST, &cbs, &s, arena);
    size_t off = 0, ends[2] = {split, size};
    int status = 0;
    for (int piece = 0; piece < 2 && !status; piece++) {
        while (off < ends[piece]) {
            size_t used = 0;
            http1_result_t rc = http1_parser_execute(&p, (const char *)data + off,
                                                     ends[piece] - off, &used);
            off += used;
            if (rc == HTTP1_ERROR) {
                status = p.error_status ? p.error_status : 400;
                break;
            }
            if (rc == HTTP1_PAUSED)
                http1_parser_resume(&p);
            else
                break;
        }
    }
    *heads = s.heads;
    fg_arena_free(arena);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t split = size > 1 ? 1 + data[0] % (size - 1) : 1;
    int heads_whole, heads_split;
    int st_whole = parse(data, size, size, false, &heads_whole);
    int st_split = parse(data, size, split, false, &heads_split);
    if ((st_whole != 0) != (st_split != 0) || heads_whole != heads_split) {
        fprintf(stderr, "split at %zu changes the verdict: %d/%d heads, status %d/%d\n", split,
                heads_whole, heads_split, st_whole, st_split);
        abort();
    }
    int heads;
    (void)parse(data, size, split, true, &heads);
    return 0;
}
