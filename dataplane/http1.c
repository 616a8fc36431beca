/* http1.c - llhttp glue: head accumulation, header classification, serialisation helpers.
 *
 * Cost model: a head that arrives within one execute call (nearly all of them) is not copied:
 * it is described by offsets into the caller's input, which the caller keeps (http1.h). Only a
 * head split across calls is copied, raw, into the message arena as its pieces arrive. Header
 * names are classified with one length-indexed table probe. Nothing is allocated per header;
 * the header array (and a split head's copy) grow by doubling inside the arena, which the
 * owner resets once per message. */
#include "http1.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"

/* ---- header token table ---------------------------------------------------------------- */

typedef struct token_def {
    const char *name; /* lowercase */
    uint8_t len;
    uint8_t token;
    uint8_t flags;
} token_def_t;

/* Sorted by length so a lookup scans only the names of the right length. RFC 9110 §7.6.1 for
 * the hop-by-hop set; Proxy-Connection and Keep-Alive are the pre-standard ones every proxy
 * also strips. */
static const token_def_t token_defs[] = {
    {"te", 2, HTTP1_H_TE, HTTP1_HF_HOP},
    {"host", 4, HTTP1_H_HOST, HTTP1_HF_REQ_REWRITE},
    {"expect", 6, HTTP1_H_EXPECT, HTTP1_HF_REQ_REWRITE}, /* the gateway answers 100-continue */
    {"server", 6, HTTP1_H_SERVER, HTTP1_HF_RESP_STRIP}, /* upstream software: not disclosed */
    {"trailer", 7, HTTP1_H_TRAILER, HTTP1_HF_HOP},
    {"upgrade", 7, HTTP1_H_UPGRADE, HTTP1_HF_HOP},
    {"forwarded", 9, HTTP1_H_FORWARDED, HTTP1_HF_REQ_REWRITE},
    {"x-real-ip", 9, HTTP1_H_X_REAL_IP, HTTP1_HF_REQ_REWRITE},
    {"connection", 10, HTTP1_H_CONNECTION, HTTP1_HF_HOP},
    {"keep-alive", 10, HTTP1_H_KEEP_ALIVE, HTTP1_HF_HOP},
    {"x-powered-by", 12, HTTP1_H_X_POWERED_BY, HTTP1_HF_RESP_STRIP},
    {"content-length", 14, HTTP1_H_CONTENT_LENGTH, HTTP1_HF_FRAMING},
    {"x-forwarded-for", 15, HTTP1_H_X_FORWARDED_FOR, HTTP1_HF_REQ_REWRITE},
    {"proxy-connection", 16, HTTP1_H_PROXY_CONNECTION, HTTP1_HF_HOP},
    {"x-forwarded-host", 16, HTTP1_H_X_FORWARDED_HOST, HTTP1_HF_REQ_REWRITE},
    {"transfer-encoding", 17, HTTP1_H_TRANSFER_ENCODING, HTTP1_HF_HOP | HTTP1_HF_FRAMING},
    {"x-forwarded-proto", 17, HTTP1_H_X_FORWARDED_PROTO, HTTP1_HF_REQ_REWRITE},
    {"proxy-authenticate", 18, HTTP1_H_PROXY_AUTHENTICATE, HTTP1_HF_HOP},
    {"proxy-authorization", 19, HTTP1_H_PROXY_AUTHORIZATION, HTTP1_HF_HOP},
};
#define TOKEN_MAX_LEN 19
#define N_TOKEN_DEFS (sizeof token_defs / sizeof token_defs[0])

/* by_len[n] = {first index, count} of the names of length n. */
static uint8_t token_by_len[TOKEN_MAX_LEN + 1][2];
static uint8_t token_flags_of[HTTP1_H__COUNT];
static bool tokens_ready;

/* A name of up to 24 bytes as three words: bytes [0,8), [8,16) and the last 8 (narrower loads
 * for names under 8 bytes), so two names of the same length compare in three word compares
 * instead of a byte loop. The words of the token names and their case masks are built once. */
#define KEY_WORDS 3
_Static_assert(TOKEN_MAX_LEN <= 8 * KEY_WORDS, "token names must fit the key words");
typedef struct token_key {
    uint64_t w[KEY_WORDS];    /* the lowercase name */
    uint64_t fold[KEY_WORDS]; /* 0x20 where the name has a letter: case is folded there only */
} token_key_t;
static token_key_t token_keys[N_TOKEN_DEFS];

static inline void key_load(const char *s, size_t len, uint64_t w[KEY_WORDS])
{
    w[0] = w[1] = w[2] = 0;
    if (len >= 8) {
        memcpy(&w[0], s, 8);
        if (len >= 16)
            memcpy(&w[1], s + 8, 8);
        memcpy(&w[2], s + len - 8, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        w[0] = a;
        w[2] = b;
    } else if (len >= 2) {
        uint16_t a, b;
        memcpy(&a, s, 2);
        memcpy(&b, s + len - 2, 2);
        w[0] = a;
        w[2] = b;
    } else if (len == 1) {
        w[0] = (unsigned char)s[0];
    }
}

/* ASCII lowercase without locale lookups. */
static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
}

static void tokens_init(void)
{
    for (size_t i = 0; i < N_TOKEN_DEFS; i++) {
        const token_def_t *d = &token_defs[i];
        char fold[TOKEN_MAX_LEN];
        if (token_by_len[d->len][1] == 0)
            token_by_len[d->len][0] = (uint8_t)i;
        token_by_len[d->len][1]++;
        token_flags_of[d->token] = d->flags;
        for (size_t j = 0; j < d->len; j++)
            fold[j] = (d->name[j] >= 'a' && d->name[j] <= 'z') ? 0x20 : 0;
        key_load(d->name, d->len, token_keys[i].w);
        key_load(fold, d->len, token_keys[i].fold);
    }
    tokens_ready = true;
}

bool http1_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* OR-ing 0x20 into a byte where the token has a letter maps exactly the two cases of that
 * letter onto it; elsewhere ('-') bytes compare as they are. */
http1_token_t http1_token_lookup(const char *name, size_t len)
{
    if (!tokens_ready)
        tokens_init();
    if (len > TOKEN_MAX_LEN || token_by_len[len][1] == 0)
        return HTTP1_H_OTHER;
    uint64_t w[KEY_WORDS];
    key_load(name, len, w);
    unsigned first = token_by_len[len][0];
    for (unsigned i = first; i < first + token_by_len[len][1]; i++) {
        const token_key_t *k = &token_keys[i];
        if (((w[0] | k->fold[0]) == k->w[0]) & ((w[1] | k->fold[1]) == k->w[1]) &
            ((w[2] | k->fold[2]) == k->w[2]))
            return (http1_token_t)token_defs[i].token;
    }
    return HTTP1_H_OTHER;
}

/* ---- head accumulation ----------------------------------------------------------------- */

#define PARSER(ll) ((http1_parser_t *)(ll)->data)

static int fail(http1_parser_t *p, int status, const char *reason)
{
    if (p->error_status == 0) {
        p->error_status = status;
        p->error_reason = reason;
    }
    llhttp_set_error_reason(&p->ll, reason);
    return -1;
}

/* Head bytes are addressed by raw offsets: bytes from the head's first span (the request-target,
 * the reason phrase, or the first field name when those are empty), separators and CRLFs
 * included, so a head that arrived in one piece can be used where it lies. `anchor` is a
 * pointer into the running execute call's input whose raw offset is `anchor_off`. */
static inline uint32_t raw_off(const http1_parser_t *p, const char *at)
{
    return p->anchor_off + (uint32_t)(at - p->anchor);
}

/* Room for `need` raw bytes in the arena copy. The old buffer stays in the arena until the
 * message ends: cheaper than tracking. */
static int copy_reserve(http1_parser_t *p, uint32_t need)
{
    if (need <= p->cap)
        return 0;
    size_t cap = p->cap ? p->cap : HTTP1_HEAD_BUF_INIT;
    while (cap < need)
        cap *= 2;
    if (cap > p->max_head_size)
        cap = p->max_head_size > need ? p->max_head_size : need;
    char *nb = fg_arena_alloc(p->arena, cap);
    if (!nb)
        return fail(p, 500, "out of memory");
    if (p->copied)
        memcpy(nb, p->head.buf, p->copied);
    p->head.buf = nb;
    p->cap = (uint32_t)cap;
    return 0;
}

/* Bring the arena copy up to raw offset `upto`, reading from the current input. */
static int copy_upto(http1_parser_t *p, uint32_t upto)
{
    if (upto <= p->copied)
        return 0;
    if (copy_reserve(p, upto) < 0)
        return -1;
    memcpy(p->head.buf + p->copied, p->anchor + (p->copied - p->anchor_off), upto - p->copied);
    p->copied = upto;
    return 0;
}

/* Stop borrowing: the head so far moves into the arena, and later bytes are appended as they
 * come. Needed when a head outlives the execute call that began it, or must be edited. */
static int head_to_copy(http1_parser_t *p, uint32_t upto)
{
    if (p->borrowed) {
        p->borrowed = false;
        p->head.buf = NULL;
        p->cap = p->copied = 0;
    }
    return copy_upto(p, upto);
}

/* A span of the head: the first one anchors it; each one extends it. */
static int head_span(http1_parser_t *p, const char *at, size_t n)
{
    if (!p->started) {
        p->started = p->borrowed = true;
        p->anchor = at;
        p->anchor_off = 0;
        p->head.buf = (char *)at; /* read-only use while borrowed */
    }
    uint32_t off = raw_off(p, at);
    if ((size_t)off + n > p->max_head_size) {
        fail(p, 431, "head too large");
        return HPE_USER; /* data callbacks report errors as HPE_USER */
    }
    if (!p->span_open) {
        p->span_off = off;
        p->span_open = true;
    }
    p->len = off + (uint32_t)n;
    if (!p->borrowed && copy_upto(p, p->len) < 0)
        return HPE_USER;
    return 0;
}

/* The running execute call ends inside a head: its bytes are about to be released by the
 * caller, so what the head has so far is copied (the rare, split head). */
static int head_carry(http1_parser_t *p)
{
    if (!p->in_head || !p->started)
        return 0;
    uint32_t end = raw_off(p, p->exec_end);
    if (end > p->max_head_size)
        return fail(p, 431, "head too large");
    return head_to_copy(p, end);
}

static int on_message_begin(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    bool skip = p->skip_body;
    p->crlf_due = 0;
    memset(&p->head, 0, sizeof p->head);
    p->head.host = -1;
    p->len = p->cap = p->copied = p->hdr_cap = p->span_off = 0;
    p->started = p->borrowed = p->span_open = p->head_borrowed = false;
    p->in_head = true;
    p->skip_body = skip;
    p->head.headers = fg_arena_alloc(p->arena, HTTP1_HEADERS_INIT * sizeof(http1_header_t));
    if (!p->head.headers)
        return fail(p, 500, "out of memory");
    p->hdr_cap = HTTP1_HEADERS_INIT;
    return 0;
}

/* A request head span that lies past the end of head our scanner found means llhttp and the
 * scanner disagree about the message boundary: never let that through. */
static bool span_past_scan(const http1_parser_t *p, const char *at)
{
    return p->ll.type == HTTP_REQUEST && p->in_head && !p->scan_active &&
           (p->scan_end == NULL || at >= p->scan_end);
}

static int on_span(llhttp_t *ll, const char *at, size_t n)
{
    http1_parser_t *p = PARSER(ll);
    if (span_past_scan(p, at)) {
        fail(p, 400, "head boundary mismatch");
        return HPE_USER;
    }
    if (!p->in_head)
        return 0; /* trailer fields: dropped */
    return head_span(p, at, n);
}

/* llhttp (loose build) accepts obsolete line folding: it hands the continuation line over as
 * another span of the same value, minus the CRLF. In requests the head scanner refuses folds
 * before llhttp runs; this is the second line of defence: a value's spans must be contiguous
 * (llhttp's lenient value state may split a value in place) or split only where one execute
 * call's input ended and the next began. In responses the fold's CRLF is overwritten with
 * spaces in the arena copy, which RFC 9112 §5.2 allows. */
static int on_value_span(llhttp_t *ll, const char *at, size_t n)
{
    http1_parser_t *p = PARSER(ll);
    if (span_past_scan(p, at)) {
        fail(p, 400, "head boundary mismatch");
        return HPE_USER;
    }
    if (!p->in_head)
        return 0; /* trailer fields: dropped (the body is re-chunked without them) */
    bool fold = p->value_spans++ > 0 && at != p->span_end &&
                !(at == p->exec_start && p->span_at_end);
    if (fold && ll->type == HTTP_REQUEST) {
        fail(p, 400, "obsolete line folding");
        return HPE_USER;
    }
    uint32_t gap = p->len;
    p->span_at_end = at + n == p->exec_end;
    p->span_end = at + n;
    if (fold && head_to_copy(p, p->len) < 0)
        return HPE_USER;
    int rc = head_span(p, at, n);
    if (rc == 0 && fold)
        memset(p->head.buf + gap, ' ', raw_off(p, at) - gap);
    return rc;
}

/* The span that a *_complete callback closes: [*off, *off + *len), empty when none came. */
static void span_take(http1_parser_t *p, uint32_t *off, uint32_t *len)
{
    *off = p->span_open ? p->span_off : p->len;
    *len = p->span_open ? p->len - p->span_off : 0;
    p->span_open = false;
}

static int on_url_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    span_take(p, &p->head.url_off, &p->head.url_len);
    return 0;
}

static int on_status_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    span_take(p, &p->head.reason_off, &p->head.reason_len);
    return 0;
}

static int on_field_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    if (!p->in_head)
        return 0;
    http1_head_t *h = &p->head;
    if (h->n_headers >= p->max_headers)
        return fail(p, 431, "too many headers");
    if (h->n_headers == p->hdr_cap) {
        uint32_t cap = p->hdr_cap * 2;
        http1_header_t *nh = fg_arena_alloc(p->arena, cap * sizeof *nh);
        if (!nh)
            return fail(p, 500, "out of memory");
        memcpy(nh, h->headers, h->n_headers * sizeof *nh);
        h->headers = nh;
        p->hdr_cap = cap;
    }
    http1_header_t *hd = &h->headers[h->n_headers++];
    span_take(p, &hd->name_off, &hd->name_len);
    hd->value_off = p->len;
    hd->value_len = 0;
    hd->token = HTTP1_H_OTHER;
    hd->flags = 0;
    p->value_spans = 0;
    return 0;
}

/* ---- request framing checks (what the lenient flags relax, re-checked) ----------------- */

/* RFC 9110 §5.6.2 tchar: DIGIT, ALPHA and these, as a table (every response field name is
 * checked byte by byte). */
#define T1(c) [c] = true
static const bool tchar_table[256] = {
    T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'),
    T1('.'), T1('^'), T1('_'), T1('`'), T1('|'), T1('~'),
    T1('0'), T1('1'), T1('2'), T1('3'), T1('4'), T1('5'), T1('6'), T1('7'), T1('8'), T1('9'),
    T1('A'), T1('B'), T1('C'), T1('D'), T1('E'), T1('F'), T1('G'), T1('H'), T1('I'), T1('J'),
    T1('K'), T1('L'), T1('M'), T1('N'), T1('O'), T1('P'), T1('Q'), T1('R'), T1('S'), T1('T'),
    T1('U'), T1('V'), T1('W'), T1('X'), T1('Y'), T1('Z'),
    T1('a'), T1('b'), T1('c'), T1('d'), T1('e'), T1('f'), T1('g'), T1('h'), T1('i'), T1('j'),
    T1('k'), T1('l'), T1('m'), T1('n'), T1('o'), T1('p'), T1('q'), T1('r'), T1('s'), T1('t'),
    T1('u'), T1('v'), T1('w'), T1('x'), T1('y'), T1('z'),
};
#undef T1

static inline bool is_tchar(unsigned char c)
{
    return tchar_table[c];
}

/* The name reduced to lowercase letters equals `want`: "Transfer_Encoding" looks like
 * "transferencoding" to a lax upstream that maps '_' to '-' or ignores punctuation. */
static bool name_lookalike(const char *name, size_t len, const char *want)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = lower((unsigned char)name[i]);
        if (c < 'a' || c > 'z')
            continue;
        if (want[w] != (char)c)
            return false;
        w++;
    }
    return want[w] == '\0';
}

/* Transfer codings we know the names of (RFC 9110 §8.4.1, RFC 9112 §7). Any other coding
 * before the final chunked is answered 501, as RFC 9112 §6.1 suggests. */
static bool known_coding(const char *t, size_t n)
{
    static const char *const names[] = {"chunked", "gzip", "x-gzip", "deflate", "compress",
                                        "x-compress", "identity"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (http1_caseeq(t, n, names[i], strlen(names[i])))
            return true;
    return false;
}

/* One Transfer-Encoding field value: a comma list of plain codings (no parameters). */
static int check_transfer_encoding(http1_parser_t *p, http1_head_t *h, const char *v, size_t n)
{
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            for (size_t k = a; k < b; k++)
                if (!is_tchar((unsigned char)v[k]))
                    return fail(p, 400, "bad Transfer-Encoding");
            bool chunked = http1_caseeq(v + a, b - a, "chunked", 7);
            if (chunked)
                h->n_chunked++;
            else if (!known_coding(v + a, b - a))
                return fail(p, 501, "unknown transfer coding");
            else
                h->te_codings = true;
            h->te_last_chunked = chunked;
        }
        i = j + 1;
    }
    return 0;
}

static int check_request_field(http1_parser_t *p, http1_head_t *h, const http1_header_t *hd)
{
    const char *v = HTTP1_VALUE(h, hd);
    switch (hd->token) {
    case HTTP1_H_CONTENT_LENGTH:
        if (++h->n_cl > 1)
            return fail(p, 400, "more than one Content-Length");
        if (hd->value_len == 0 || hd->value_len > 19)
            return fail(p, 400, "bad Content-Length");
        for (uint32_t i = 0; i < hd->value_len; i++)
            if (v[i] < '0' || v[i] > '9')
                return fail(p, 400, "bad Content-Length");
        return 0;
    case HTTP1_H_TRANSFER_ENCODING:
        h->n_te++;
        return check_transfer_encoding(p, h, v, hd->value_len);
    case HTTP1_H_OTHER: {
        const char *name = HTTP1_NAME(h, hd);
        unsigned char c0 = lower((unsigned char)name[0]);
        if ((c0 == 'c' && name_lookalike(name, hd->name_len, "contentlength")) ||
            (c0 == 't' && name_lookalike(name, hd->name_len, "transferencoding")))
            return fail(p, 400, "field name resembling a framing header");
        return 0;
    }
    default:
        return 0;
    }
}

/* Cross-field framing rules, once the head is complete (RFC 9112 §6.1, §6.3). */
static int check_request_framing(http1_parser_t *p, const http1_head_t *h)
{
    if (h->major != 1)
        return fail(p, 505, "HTTP version not supported");
    if (h->n_te == 0)
        return 0;
    if (h->n_cl > 0)
        return fail(p, 400, "both Content-Length and Transfer-Encoding");
    if (h->minor == 0)
        return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!h->te_last_chunked || h->n_chunked != 1)
        return fail(p, 400, "Transfer-Encoding must end in one chunked");
    return 0;
}

/* A response field the proxy must not pass on: a name that is not a token (llhttp lets
 * `X Y` through) or a value with NUL or control bytes (tab aside), which a client could read
 * as the end of the field or of the head. */
static bool response_field_unsafe(const http1_parser_t *p, const http1_head_t *h,
                                  const http1_header_t *hd)
{
    const unsigned char *n = (const unsigned char *)HTTP1_NAME(h, hd);
    if (hd->name_len == 0)
        return true; /* ": v" -- llhttp lets an empty name through */
    if (hd->token == HTTP1_H_OTHER) /* a known name is letters and '-' */
        for (uint32_t i = 0; i < hd->name_len; i++)
            if (!is_tchar(n[i]))
                return true;
    if (!p->scan_ctl)
        return false; /* the scanner saw no control byte anywhere in this head */
    const unsigned char *v = (const unsigned char *)HTTP1_VALUE(h, hd);
    for (uint32_t i = 0; i < hd->value_len; i++)
        if ((v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
            return true;
    return false;
}

static int on_value_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    if (!p->in_head)
        return 0;
    http1_head_t *h = &p->head;
    http1_header_t *hd = &h->headers[h->n_headers - 1];
    uint32_t off, end;
    span_take(p, &off, &end);
    end += off;
    /* llhttp strips leading whitespace but hands trailing whitespace to us. */
    while (off < end && (h->buf[off] == ' ' || h->buf[off] == '\t'))
        off++;
    while (end > off && (h->buf[end - 1] == ' ' || h->buf[end - 1] == '\t'))
        end--;
    hd->value_off = off;
    hd->value_len = end - off;

    hd->token = (uint8_t)http1_token_lookup(h->buf + hd->name_off, hd->name_len);
    hd->flags = token_flags_of[hd->token];
    if (p->ll.type == HTTP_REQUEST) {
        if (hd->name_len > HTTP1_MAX_NAME_SIZE || hd->value_len > HTTP1_MAX_VALUE_SIZE) {
            metrics_counters()->headers_refused++;
            return fail(p, 400, "header field too large");
        }
        if (hd->name_len == 0) {
            metrics_counters()->headers_refused++;
            return fail(p, 400, "empty header field name");
        }
        int rc = check_request_field(p, h, hd);
        if (rc != 0)
            return rc;
    } else if (response_field_unsafe(p, h, hd)) {
        hd->flags |= HTTP1_HF_DROP;
        h->n_bad++;
    }
    if (hd->token == HTTP1_H_HOST) {
        if (h->host >= 0 && p->ll.type == HTTP_REQUEST)
            return fail(p, 400, "more than one Host header"); /* RFC 9112 §3.2 */
        h->host = (int32_t)(h->n_headers - 1);
    } else if (hd->token == HTTP1_H_EXPECT) {
        h->expect_continue = http1_caseeq(h->buf + hd->value_off, hd->value_len,
                                          "100-continue", 12);
    }
    return 0;
}

/* Mark every header named by a Connection header as hop-by-hop (RFC 9110 §7.6.1). */
static void mark_connection_options(http1_head_t *h)
{
    for (uint32_t i = 0; i < h->n_headers; i++) {
        if (h->headers[i].token != HTTP1_H_CONNECTION)
            continue;
        const char *v = HTTP1_VALUE(h, &h->headers[i]);
        const char *end = v + h->headers[i].value_len;
        while (v < end) {
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
            const char *t = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            size_t tl = (size_t)(v - t);
            if (http1_caseeq(t, tl, "upgrade", 7))
                h->upgrade = true; /* confirmed below only if an Upgrade field is present */
            if (tl == 0 || http1_caseeq(t, tl, "close", 5) ||
                http1_caseeq(t, tl, "keep-alive", 10) || http1_caseeq(t, tl, "upgrade", 7))
                continue; /* already hop-by-hop or a plain option */
            for (uint32_t j = 0; j < h->n_headers; j++)
                if (http1_caseeq(HTTP1_NAME(h, &h->headers[j]), h->headers[j].name_len, t, tl))
                    h->headers[j].flags |= HTTP1_HF_HOP;
        }
    }
    if (h->upgrade) {
        bool has_upgrade = false;
        for (uint32_t i = 0; i < h->n_headers && !has_upgrade; i++)
            has_upgrade = h->headers[i].token == HTTP1_H_UPGRADE && h->headers[i].value_len > 0;
        h->upgrade = has_upgrade;
    }
}

static int on_headers_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    http1_head_t *h = &p->head;
    p->in_head = false;
    p->head_borrowed = p->borrowed;
    h->major = ll->http_major;
    h->minor = ll->http_minor;
    h->keep_alive = llhttp_should_keep_alive(ll);
    bool no_body = false;
    if (ll->type == HTTP_REQUEST) {
        h->method = ll->method;
        if (p->scan_active)
            return fail(p, 400, "head boundary mismatch"); /* llhttp ended it, we did not */
        if (check_request_framing(p, h) != 0)
            return -1;
        if (h->minor > 1)
            h->minor = 1; /* HTTP/1.2 and later minors: read as 1.1 (RFC 9110 §2.5) */
        if (h->major == 1 && h->minor >= 1 && h->host < 0)
            return fail(p, 400, "missing Host header"); /* RFC 9112 §3.2 */
        /* Upgrades are not tunnelled (the Upgrade header is dropped as hop-by-hop), so keep
         * parsing the connection as HTTP/1.1 instead of letting llhttp stop for a new protocol.
         * CONNECT keeps its flag: the owner refuses it. */
        if (ll->method != HTTP_CONNECT)
            ll->upgrade = 0;
    } else {
        h->status = ll->status_code;
        no_body = p->skip_body || h->status / 100 == 1 || h->status == 204 || h->status == 304;
    }
    if (no_body) {
        h->framing = HTTP1_BODY_NONE;
    } else if (ll->flags & F_CHUNKED) {
        h->framing = HTTP1_BODY_CHUNKED;
    } else if (ll->flags & F_CONTENT_LENGTH) {
        h->framing = HTTP1_BODY_LENGTH;
        h->content_length = ll->content_length;
    } else if (ll->type == HTTP_RESPONSE && llhttp_message_needs_eof(ll)) {
        h->framing = HTTP1_BODY_EOF;
    } else {
        h->framing = HTTP1_BODY_NONE;
    }
    mark_connection_options(h);

    int rc = p->cb->on_head ? p->cb->on_head(p->ctx, h) : HTTP1_CB_OK;
    switch (rc) {
    case HTTP1_CB_OK:
        return no_body ? 1 : 0;
    case HTTP1_CB_SKIP_BODY:
        return 1;
    case HTTP1_CB_PAUSE:
        return HPE_PAUSED;
    default:
        return fail(p, 400, "refused by handler");
    }
}

/* llhttp 8's default build skips the two bytes after a chunk's data without looking at them,
 * so "5\r\nhelloXX0\r\n\r\n" would parse: check them ourselves, across execute calls. */
static bool check_chunk_crlf(http1_parser_t *p, const char *at, size_t avail)
{
    for (size_t i = 0; i < avail && p->crlf_due > 0; i++, p->crlf_due--)
        if (at[i] != (p->crlf_due == 2 ? '\r' : '\n'))
            return false;
    return true;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    http1_parser_t *p = PARSER(ll);
    if ((ll->flags & F_CHUNKED) && ll->content_length == 0) {
        p->crlf_due = 2;
        if (!check_chunk_crlf(p, at + n, (size_t)(p->exec_end - (at + n)))) {
            fail(p, 400, "chunk data not followed by CRLF");
            return HPE_USER;
        }
    }
    if (p->cb->on_body && p->cb->on_body(p->ctx, at, n) != 0) {
        fail(p, 400, "body refused by handler");
        return HPE_USER;
    }
    return 0;
}

static void scan_reset(http1_parser_t *p)
{
    p->scan_active = true;
    p->scan_prev_cr = p->scan_started = p->scan_in_name = p->scan_ctl = false;
    p->scan_line_len = 0;
}

static int on_message_complete(llhttp_t *ll)
{
    http1_parser_t *p = PARSER(ll);
    p->msg_keep_alive = llhttp_should_keep_alive(ll);
    int rc = p->cb->on_complete ? p->cb->on_complete(p->ctx) : HTTP1_CB_OK;
    if (rc < 0)
        return fail(p, 400, "refused by handler");
    /* The next head (a request, or the final response after an interim one) must go through
     * the scanner before llhttp reads it: stop here even when the owner does not, and let
     * http1_parser_execute carry on. */
    scan_reset(p);
    if (rc != HTTP1_CB_PAUSE)
        p->scan_inner_pause = true;
    return HPE_PAUSED;
}

/* ---- the request head scanner ---------------------------------------------------------- */

static int scan_fail(http1_parser_t *p, const char *reason)
{
    fail(p, p->ll.type == HTTP_RESPONSE ? 502 : 400, reason);
    return -1;
}

/* The only bytes that can change the scanner's state inside a line (or refuse it: the
 * control bytes); every other byte just continues it. */
static const bool scan_special[256] = {
    [0] = true,    [1] = true,    [2] = true,    [3] = true,    [4] = true,    [5] = true,
    [6] = true,    [7] = true,    [8] = true,    ['\t'] = true, ['\n'] = true, [0x0b] = true,
    [0x0c] = true, ['\r'] = true, [0x0e] = true, [0x0f] = true, [0x10] = true, [0x11] = true,
    [0x12] = true, [0x13] = true, [0x14] = true, [0x15] = true, [0x16] = true, [0x17] = true,
    [0x18] = true, [0x19] = true, [0x1a] = true, [0x1b] = true, [0x1c] = true, [0x1d] = true,
    [0x1e] = true, [0x1f] = true, [' '] = true,  [':'] = true,  [0x7f] = true};

/* Walk raw head bytes. 0: the head goes on past `len`; 1: it ended, *end is the offset just
 * past its blank line; -1: refused (error_status set), *end is the bad byte. A response head
 * is only held to CRLF line endings (see http1.h). */
/* In a response head (and in a request line or field value) only line ends and control bytes
 * matter. */
static const bool scan_special_resp[256] = {
    [0] = true,    [1] = true,    [2] = true,    [3] = true,    [4] = true,    [5] = true,
    [6] = true,    [7] = true,    [8] = true,    ['\n'] = true, [0x0b] = true, [0x0c] = true,
    ['\r'] = true, [0x0e] = true, [0x0f] = true, [0x10] = true, [0x11] = true, [0x12] = true,
    [0x13] = true, [0x14] = true, [0x15] = true, [0x16] = true, [0x17] = true, [0x18] = true,
    [0x19] = true, [0x1a] = true, [0x1b] = true, [0x1c] = true, [0x1d] = true, [0x1e] = true,
    [0x1f] = true, [0x7f] = true};

/* The bytes of the 8 in `w` that are below 0x20 or are 0x7f, as their high bits. Exact as to
 * whether there is one and which is the first in memory order on a little-endian machine (a
 * borrow only ever runs from a flagged byte to the bytes after it), not as to the others. */
static inline uint64_t word_ctl_mask(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t del = w ^ (ones * 0x7f);
    return (((w - ones * 0x20) & ~w) | ((del - ones) & ~del)) & highs;
}

/* From i, past every byte before the first control byte that lies in a whole word; the byte
 * loop after it finishes the job. */
static inline size_t skip_plain_words(const unsigned char *d, size_t i, size_t len)
{
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        uint64_t m = word_ctl_mask(w);
        if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            i += (size_t)__builtin_ctzll(m) / 8;
#endif
            break;
        }
        i += 8;
    }
    return i;
}

static int scan_head(http1_parser_t *p, const char *data, size_t len, size_t *end)
{
    const unsigned char *d = (const unsigned char *)data;
    bool resp = p->ll.type == HTTP_RESPONSE;
    for (size_t i = 0; i < len; i++) {
        /* Inside a line (scan_line_len only matters as zero or not), runs of ordinary bytes
         * change nothing: skip them a word, then a byte, at a time instead of a pass through
         * the state machine per byte. Past a request field name's colon (and on the start
         * line) only control bytes and the line end matter, as in a response. */
        if (p->scan_line_len != 0 && !p->scan_prev_cr) {
            const bool *special = scan_special;
            if (resp || !p->scan_in_name) {
                special = scan_special_resp;
                i = skip_plain_words(d, i, len);
            }
            while (i < len && !special[d[i]])
                i++;
            if (i == len)
                break;
        }
        unsigned char c = d[i];
        *end = i;
        if (c == '\r' && !p->scan_prev_cr && i + 1 < len) {
            /* A CRLF within this input (nearly every line end): both bytes in one step. */
            c = d[++i];
            *end = i;
            p->scan_prev_cr = true;
        }
        if (p->scan_prev_cr) {
            p->scan_prev_cr = false;
            if (c != '\n')
                return scan_fail(p, resp ? "bare CR in response head" : "bare CR in head");
            if (p->scan_line_len == 0 && p->scan_started) {
                *end = i + 1; /* the blank line: end of head */
                return 1;
            }
            /* Empty lines before the request line are skipped (RFC 9112 §2.2). */
            p->scan_in_name = p->scan_started;
            p->scan_line_len = 0;
            continue;
        }
        if (c == '\r') {
            p->scan_prev_cr = true;
            continue;
        }
        if (c == '\n')
            return scan_fail(p, resp ? "bare LF in response head" : "bare LF in head");
        if (resp) {
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                p->scan_ctl = true; /* its field is dropped (response_field_unsafe) */
            p->scan_started = true;
            p->scan_line_len++;
            continue;
        }
        if (c == 0)
            return scan_fail(p, "NUL in head");
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            metrics_counters()->headers_refused++;
            return scan_fail(p, "control character in head");
        }
        if (p->scan_line_len == 0) {
            if (c == ' ' || c == '\t')
                return scan_fail(p, p->scan_started ? "obsolete line folding"
                                                    : "whitespace before request line");
            p->scan_started = true;
        }
        if (p->scan_in_name) {
            if (c == ':')
                p->scan_in_name = false;
            else if (c == ' ' || c == '\t')
                return scan_fail(p, "whitespace before colon"); /* RFC 9112 §5.1 */
        }
        p->scan_line_len++;
    }
    *end = len;
    return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_span,
    .on_status = on_span,
    .on_header_field = on_span,
    .on_header_value = on_value_span,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_url_complete = on_url_complete,
    .on_status_complete = on_status_complete,
    .on_header_field_complete = on_field_complete,
    .on_header_value_complete = on_value_complete,
};

void http1_parser_init(http1_parser_t *p, llhttp_type_t type, const http1_callbacks_t *cb,
                       void *ctx, fg_arena_t *arena)
{
    if (!tokens_ready)
        tokens_init();
    memset(p, 0, sizeof *p);
    llhttp_init(&p->ll, type, &settings);
    p->ll.data = p;
    p->cb = cb;
    p->ctx = ctx;
    p->arena = arena;
    p->head.host = -1;
    p->max_head_size = HTTP1_MAX_HEAD_SIZE;
    p->max_headers = HTTP1_MAX_HEADERS;
    /* Control bytes and obs-text in values (refused in requests by the scanner, dropped
     * from responses), HTTP/1.x minors: see http1.h for what we check instead. */
    llhttp_set_lenient_headers(&p->ll, 1);
    if (type == HTTP_REQUEST)
        p->ll.lenient_flags |= LENIENT_VERSION;
    scan_reset(p);
}

void http1_parser_set_limits(http1_parser_t *p, uint32_t max_head_size, uint32_t max_headers)
{
    p->max_head_size = max_head_size ? max_head_size : HTTP1_MAX_HEAD_SIZE;
    p->max_headers = max_headers ? max_headers : HTTP1_MAX_HEADERS;
}

http1_result_t http1_parser_execute(http1_parser_t *p, const char *data, size_t len,
                                    size_t *consumed)
{
    if (!data)
        data = "";
    size_t off = 0;
    llhttp_errno_t e;
    for (;;) {
        const char *d = data + off;
        size_t n = len - off;
        p->scan_end = NULL;
        if (p->scan_active && n > 0 && llhttp_get_errno(&p->ll) == HPE_OK) {
            size_t end = 0;
            int s = scan_head(p, d, n, &end);
            if (s < 0) {
                *consumed = off + end;
                return HTTP1_ERROR;
            }
            if (s > 0) {
                p->scan_active = false;
                p->scan_end = d + end;
            }
        }
        if (p->crlf_due && !check_chunk_crlf(p, d, n)) {
            fail(p, 400, "chunk data not followed by CRLF");
            *consumed = off;
            return HTTP1_ERROR;
        }
        p->exec_start = d;
        p->exec_end = d + n;
        if (p->in_head && p->started) { /* a head split across calls: carried on in the copy */
            p->anchor = d;
            p->anchor_off = p->copied;
        }
        e = llhttp_execute(&p->ll, d, n);
        if (e == HPE_OK) {
            *consumed = len;
            return head_carry(p) == 0 ? HTTP1_OK : HTTP1_ERROR;
        }
        const char *pos = llhttp_get_error_pos(&p->ll);
        size_t used = (pos && pos >= d && pos <= d + n) ? (size_t)(pos - d) : n;
        if (e == HPE_PAUSED && p->scan_inner_pause) {
            /* Our own stop at a request's end: scan the next head, then parse on. */
            p->scan_inner_pause = false;
            llhttp_resume(&p->ll);
            off += used;
            if (off >= len) {
                *consumed = len;
                return HTTP1_OK;
            }
            continue;
        }
        *consumed = off + used;
        break;
    }
    if (e == HPE_PAUSED)
        return HTTP1_PAUSED;
    if (p->error_status == 0) {
        /* llhttp's own verdict: malformed syntax. On a response stream the owner maps any
         * error to 502. A non-chunked Transfer-Encoding on a request is refused here too. */
        p->error_status = 400;
        p->error_reason = llhttp_errno_name(e);
    }
    return HTTP1_ERROR;
}

void http1_parser_resume(http1_parser_t *p)
{
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
}

int http1_head_detach(http1_parser_t *p, const char **old_buf)
{
    *old_buf = p->head.buf;
    if (!p->head_borrowed)
        return 0;
    char *copy = fg_arena_alloc(p->arena, p->len ? p->len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, p->head.buf, p->len);
    p->head.buf = copy;
    p->head_borrowed = false;
    return 0;
}

http1_result_t http1_parser_finish(http1_parser_t *p)
{
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if (e == HPE_OK)
        return HTTP1_OK;
    if (e == HPE_PAUSED)
        return HTTP1_PAUSED;
    if (p->error_status == 0) {
        p->error_status = 400;
        p->error_reason = "message cut short by EOF";
    }
    return HTTP1_ERROR;
}

/* ---- serialisation --------------------------------------------------------------------- */

size_t http1_u64_to_dec(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t http1_chunk_header(size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

#define ERROR_BODY_MAX 8192 /* fits a configured 429 message (1024 bytes) JSON-escaped */

int http1_write_error(struct evbuffer *out, int status, const char *code, const char *message,
                      bool close)
{
    return http1_write_error_ex(out, status, code, message, NULL, 0, close);
}

int http1_write_error_ex(struct evbuffer *out, int status, const char *code,
                         const char *message, const char *extra, size_t extra_len, bool close)
{
    char body[ERROR_BODY_MAX];
    int blen = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                        code, message);
    if (blen < 0 || (size_t)blen >= sizeof body)
        return -EINVAL;
    if (evbuffer_add_printf(out,
                            "HTTP/1.1 %d %s\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %d\r\n"
                            "%.*s"
                            "%s"
                            "\r\n",
                            status, http1_reason(status), blen, (int)extra_len,
                            extra ? extra : "", close ? "Connection: close\r\n" : "") < 0)
        return -ENOMEM;
    if (evbuffer_add(out, body, (size_t)blen) != 0)
        return -ENOMEM;
    return 0;
}
