/* trace.c - request ids and W3C trace context (see trace.h).
 *
 * Ids are made from a per-process random seed (OpenSSL, once per worker) and a counter run
 * through splitmix64's finaliser, a bijection: unique per process, unpredictable enough for
 * correlation (they are not secrets), and a few dozen instructions per request. */
#include "trace.h"

#include <string.h>
#include <time.h>

#include "fg_hash.h"
#include "metrics.h"

static struct {
    bool seeded;
    uint64_t prefix;  /* first half of generated request ids and trace ids */
    uint64_t key;     /* mixed into the counter */
    uint64_t counter;
    char id_prefix[16];    /* hex of prefix: the first half of every generated request id */
    char trace_prefix[16]; /* and of every trace id we start (a different half) */
    char header[DP_TRACE_HEADER_MAX + 1];
    size_t header_len;
} tr = {.header = DP_TRACE_HEADER_DEFAULT, .header_len = sizeof(DP_TRACE_HEADER_DEFAULT) - 1};

uint64_t trace_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void hex64(char *out, uint64_t v)
{
    static const char pairs[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                                "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                                "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
                                "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                                "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (int i = 14; i >= 0; i -= 2, v >>= 8)
        memcpy(out + i, pairs + (v & 0xff) * 2, 2);
}

int trace_init(void)
{
    uint64_t seed[2];
    int rc = fg_random_bytes(seed, sizeof seed);
    if (rc < 0) {
        /* Still unique per process: the address-space layout and the clock. */
        seed[0] = (uint64_t)(uintptr_t)&seed ^ trace_now_us();
        seed[1] = seed[0] * 0x9e3779b97f4a7c15u;
    }
    tr.prefix = seed[0];
    tr.key = seed[1];
    hex64(tr.id_prefix, tr.prefix);
    hex64(tr.trace_prefix, tr.prefix ^ 0x5bd1e9955bd1e995u);
    tr.counter = 0;
    tr.seeded = true;
    return rc;
}

void trace_set_header(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > DP_TRACE_HEADER_MAX) {
        name = DP_TRACE_HEADER_DEFAULT;
        n = sizeof(DP_TRACE_HEADER_DEFAULT) - 1;
    }
    memcpy(tr.header, name, n);
    tr.header[n] = '\0';
    tr.header_len = n;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t next_id(void)
{
    if (!tr.seeded)
        trace_init();
    return mix(tr.key + ++tr.counter);
}

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '=' || c == '/' ||
           c == '@';
}

static bool lower_hex(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        nonzero |= c != '0';
    }
    return nonzero;
}

/* "VV-<32 hex trace id>-<16 hex parent id>-<2 hex flags>": version ff is invalid, 00 is
 * exactly 55 bytes, a later version may append "-..." fields we ignore. */
static bool hex_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool traceparent_parse(dp_trace_t *t, const char *s, size_t n)
{
    bool v00 = s[0] == '0' && s[1] == '0';
    if (n < 55 || (v00 && n != 55) || (n > 55 && s[55] != '-'))
        return false;
    if (!hex_char(s[0]) || !hex_char(s[1]) || (s[0] == 'f' && s[1] == 'f'))
        return false;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-' || !hex_char(s[53]) || !hex_char(s[54]))
        return false;
    if (!lower_hex(s + 3, DP_TRACE_ID_LEN) || !lower_hex(s + 36, DP_TRACE_SPAN_LEN))
        return false; /* also refuses the all-zero ids */
    char f0 = s[53], f1 = s[54];
    memcpy(t->trace_id, s + 3, DP_TRACE_ID_LEN);
    t->trace_id[DP_TRACE_ID_LEN] = '\0';
    memcpy(t->parent_id, s + 36, DP_TRACE_SPAN_LEN);
    t->parent_id[DP_TRACE_SPAN_LEN] = '\0';
    t->flags[0] = f0;
    t->flags[1] = f1;
    t->flags[2] = '\0';
    return true;
}

void trace_ensure_id(dp_trace_t *t)
{
    if (t->request_id_len)
        return;
    uint64_t id = next_id(); /* seeds tr on first use */
    memcpy(t->request_id, tr.id_prefix, 16);
    hex64(t->request_id + 16, id);
    t->request_id[32] = '\0';
    t->request_id_len = 32;
    t->id_generated = true;
    metrics_counters()->request_ids_generated++;
}

void trace_begin(dp_trace_t *t, http1_head_t *h)
{
    int n_id = 0, n_tp = 0;
    const http1_header_t *id = NULL, *tp = NULL;
    http1_header_t *ts[4];
    int n_ts = 0;

    t->start_us = trace_now_us();
    for (uint32_t i = 0; i < h->n_headers; i++) {
        http1_header_t *hd = &h->headers[i];
        const char *name = HTTP1_NAME(h, hd);
        if (hd->name_len == tr.header_len && http1_caseeq(name, hd->name_len, tr.header,
                                                          tr.header_len)) {
            hd->flags |= HTTP1_HF_REQ_REWRITE;
            id = hd;
            n_id++;
        } else if (hd->name_len == 11 && http1_caseeq(name, 11, "traceparent", 11)) {
            hd->flags |= HTTP1_HF_REQ_REWRITE;
            tp = hd;
            n_tp++;
        } else if (hd->name_len == 10 && http1_caseeq(name, 10, "tracestate", 10) &&
                   n_ts < (int)(sizeof ts / sizeof ts[0])) {
            ts[n_ts++] = hd;
        }
    }

    if (n_id == 1 && id->value_len > 0 && id->value_len <= DP_TRACE_REQUEST_ID_MAX) {
        const char *v = HTTP1_VALUE(h, id);
        size_t i = 0;
        while (i < id->value_len && id_char((unsigned char)v[i]))
            i++;
        if (i == id->value_len) {
            memcpy(t->request_id, v, i);
            t->request_id[i] = '\0';
            t->request_id_len = (uint8_t)i;
        }
    }
    trace_ensure_id(t);

    if (!(n_tp == 1 && traceparent_parse(t, HTTP1_VALUE(h, tp), tp->value_len))) {
        uint64_t half = next_id();
        memcpy(t->trace_id, tr.trace_prefix, 16);
        hex64(t->trace_id + 16, half);
        t->trace_id[DP_TRACE_ID_LEN] = '\0';
        t->parent_id[0] = '\0';
        memcpy(t->flags, "00", 3);
        t->trace_started = true;
        metrics_counters()->traces_started++;
        for (int i = 0; i < n_ts; i++) /* its state belongs to a trace we could not read */
            ts[i]->flags |= HTTP1_HF_REQ_REWRITE;
    }
    uint64_t span = next_id();
    hex64(t->span_id, span ? span : 1);
    t->span_id[DP_TRACE_SPAN_LEN] = '\0';
}

#define PUT(p, s, n) (memcpy((p), (s), (n)), (p) += (n))
#define PUTS(p, lit) PUT(p, lit, sizeof(lit) - 1)

size_t trace_request_len(const dp_trace_t *t)
{
    return tr.header_len + 4 + t->request_id_len + sizeof("traceparent: 00---00\r\n") +
           DP_TRACE_ID_LEN + DP_TRACE_SPAN_LEN;
}

char *trace_write_request(const dp_trace_t *t, char *p)
{
    PUT(p, tr.header, tr.header_len);
    PUTS(p, ": ");
    PUT(p, t->request_id, t->request_id_len);
    PUTS(p, "\r\ntraceparent: 00-");
    PUT(p, t->trace_id, DP_TRACE_ID_LEN);
    *p++ = '-';
    PUT(p, t->span_id, DP_TRACE_SPAN_LEN);
    *p++ = '-';
    PUT(p, t->flags, 2);
    PUTS(p, "\r\n");
    return p;
}

size_t trace_response_len(const dp_trace_t *t)
{
    return tr.header_len + 4 + t->request_id_len;
}

char *trace_write_response(const dp_trace_t *t, char *p)
{
    if (!t->request_id_len)
        return p;
    PUT(p, tr.header, tr.header_len);
    PUTS(p, ": ");
    PUT(p, t->request_id, t->request_id_len);
    PUTS(p, "\r\n");
    return p;
}

bool trace_is_id_header(const http1_head_t *h, const http1_header_t *hd)
{
    return hd->name_len == tr.header_len &&
           http1_caseeq(HTTP1_NAME(h, hd), hd->name_len, tr.header, tr.header_len);
}
