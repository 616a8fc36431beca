/* http1.h - HTTP/1.x message parsing (llhttp glue) and serialisation helpers.
 *
 * One http1_parser_t reads a stream of requests (client side) or responses (upstream side).
 * llhttp hands out spans that point into the caller's input. A head is kept as offsets into
 * one contiguous buffer, `head.buf`, the raw bytes from the head's first span on (separators
 * and CRLFs included). When the whole head arrived in the execute call that completed it,
 * `head.buf` IS the caller's input: no byte is copied, and the caller must keep that input
 * alive and unmoved while it uses the head (http1_head_borrowed), or detach the head first
 * (http1_head_detach). A head split across execute calls is copied into the message's arena
 * as its pieces arrive and stays put until the arena is reset. Bodies are never copied: each
 * body span goes straight to the owner's on_body callback.
 *
 * Header names are classified once, through a table, into tokens (Host, Connection,
 * Transfer-Encoding, ...) with flags saying whether the header is hop-by-hop or rewritten by
 * the proxy, so forwarding is a flag test per header rather than a chain of string compares.
 * Headers named by a Connection header are marked hop-by-hop when the head completes.
 *
 * Request smuggling policy (requests only; RFC 9112 §2.2, §5, §6): before llhttp sees a byte
 * of a request head, a small scanner of our own walks the raw bytes up to the blank line that
 * ends the head and refuses (400) a bare CR, a bare LF, a NUL or other control byte (tab
 * aside: issue 5's header hygiene), obsolete line folding or any line starting with
 * whitespace, and whitespace between a field name and its colon. So llhttp only ever parses
 * heads whose line structure is unambiguous, and the scanner and llhttp must agree on where
 * the head ends. A field name over HTTP1_MAX_NAME_SIZE or value over HTTP1_MAX_VALUE_SIZE is
 * refused (400). llhttp then runs with two lenient flags: header values may carry obs-text
 * (RFC 9110 §5.5; forwarded as received), and an HTTP/1.x version other than 1.0/1.1 is read
 * as 1.1. What those flags relax is re-checked here: Content-Length must be one run of digits
 * and given once; Transfer-Encoding must be a list of plain tokens ending in one `chunked`,
 * never next to Content-Length and never in an HTTP/1.0 request; a field name that differs
 * from either only by punctuation (`Transfer_Encoding`) is refused; the major version must be
 * 1 (505). Chunk sizes and everything else are llhttp's own strict checks.
 *
 * Responses (header hygiene): the same scanner runs over each response head in a milder mode
 * that refuses only a bare CR or LF (502: the line structure is ambiguous, so a field could be
 * split into two). llhttp reads response values leniently, so a field whose value carries NUL
 * or control bytes, or whose name is not a token (`X Y`), arrives whole and is marked
 * HTTP1_HF_DROP (counted in head.n_bad): the proxy drops it instead of sending bytes that
 * could split the response. Their framing is rebuilt for the client anyway.
 *
 * Callbacks must not free the parser or reset its arena: they return HTTP1_CB_PAUSE and let the
 * caller act after http1_parser_execute() returns. */
#ifndef DP_HTTP1_H
#define DP_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "fg_arena.h"

struct evbuffer;

/* ---- limits --------------------------------------------------------------------------- */
#define HTTP1_MAX_HEAD_SIZE (64 * 1024) /* default: request/status line + headers, bytes (431) */
#define HTTP1_MAX_HEADERS 100           /* default: header fields per message (431 beyond) */
#define HTTP1_HEAD_BUF_INIT 2048        /* first head buffer, grown by doubling */
#define HTTP1_HEADERS_INIT 32           /* first header array, grown by doubling */
#define HTTP1_MAX_NAME_SIZE 256         /* request header field name, bytes (400 beyond) */
#define HTTP1_MAX_VALUE_SIZE 8192       /* request header field value, bytes (400 beyond), as
                                           nginx's 8k header line buffer */

/* ---- header tokens -------------------------------------------------------------------- */
typedef enum http1_token {
    HTTP1_H_OTHER = 0,
    HTTP1_H_CONNECTION,
    HTTP1_H_KEEP_ALIVE,
    HTTP1_H_PROXY_CONNECTION,
    HTTP1_H_TE,
    HTTP1_H_TRAILER,
    HTTP1_H_TRANSFER_ENCODING,
    HTTP1_H_UPGRADE,
    HTTP1_H_PROXY_AUTHORIZATION,
    HTTP1_H_PROXY_AUTHENTICATE,
    HTTP1_H_HOST,
    HTTP1_H_CONTENT_LENGTH,
    HTTP1_H_X_FORWARDED_FOR,
    HTTP1_H_X_FORWARDED_PROTO,
    HTTP1_H_X_FORWARDED_HOST,
    HTTP1_H_EXPECT,
    HTTP1_H_FORWARDED,      /* request: replaced unless the peer is a trusted proxy (guard.c) */
    HTTP1_H_X_REAL_IP,      /* request: likewise */
    HTTP1_H_SERVER,         /* response: stripped (guard.c, header hygiene) */
    HTTP1_H_X_POWERED_BY,   /* response: stripped */
    HTTP1_H__COUNT,
} http1_token_t;

/* Header flags (http1_header_t.flags). */
enum {
    HTTP1_HF_HOP = 1u << 0,       /* hop-by-hop: never forwarded in either direction */
    HTTP1_HF_FRAMING = 1u << 1,   /* Content-Length / Transfer-Encoding: re-generated */
    HTTP1_HF_REQ_REWRITE = 1u << 2, /* Host, X-Forwarded-*, Forwarded, X-Real-IP, Expect:
                                       handled by the proxy */
    HTTP1_HF_RESP_STRIP = 1u << 3, /* Server, X-Powered-By: never sent to the client */
    HTTP1_HF_DROP = 1u << 4,       /* this message only: removed by a route's header ops, or
                                      a response field that could split the response */
};

/** One header field. Name and value are offsets into http1_head_t.buf (not terminated);
 *  the value has surrounding whitespace removed. */
typedef struct http1_header {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    uint8_t token; /* http1_token_t */
    uint8_t flags; /* HTTP1_HF_* */
} http1_header_t;

typedef enum http1_framing {
    HTTP1_BODY_NONE = 0, /* no body */
    HTTP1_BODY_LENGTH,   /* Content-Length bytes */
    HTTP1_BODY_CHUNKED,  /* chunked transfer coding */
    HTTP1_BODY_EOF,      /* response delimited by connection close */
} http1_framing_t;

/** A parsed message head. Everything is an offset into `buf`: the caller's input (see
 *  http1_head_borrowed) or the message's arena. */
typedef struct http1_head {
    char *buf;                 /* raw head bytes from the first span on; read-only */
    uint32_t url_off, url_len; /* request-target as received (requests) */
    uint32_t reason_off, reason_len; /* reason phrase (responses) */
    uint8_t method;            /* llhttp_method_t (requests) */
    uint16_t status;           /* status code (responses) */
    uint8_t major, minor;      /* HTTP version */
    http1_header_t *headers;
    uint32_t n_headers;
    int32_t host;              /* index of the Host header, or -1 */
    http1_framing_t framing;
    uint64_t content_length;   /* when framing == HTTP1_BODY_LENGTH */
    bool keep_alive;           /* llhttp's verdict for this message (version + Connection) */
    bool expect_continue;      /* Expect: 100-continue */
    bool upgrade;              /* request: Upgrade header and `Connection: upgrade` */
    bool te_codings;           /* Transfer-Encoding names codings besides the final chunked */
    uint8_t n_cl, n_te;        /* Content-Length / Transfer-Encoding fields seen */
    uint8_t n_chunked;         /* `chunked` codings seen across Transfer-Encoding fields */
    bool te_last_chunked;      /* the last coding listed is `chunked` */
    uint32_t n_bad;            /* response: fields marked HTTP1_HF_DROP because their name is
                                  not a token or their value holds NUL or control bytes */
} http1_head_t;

#define HTTP1_NAME(h, hd) ((h)->buf + (hd)->name_off)
#define HTTP1_VALUE(h, hd) ((h)->buf + (hd)->value_off)

/* Return values of the on_head / on_complete callbacks. */
enum {
    HTTP1_CB_OK = 0,      /* carry on */
    HTTP1_CB_SKIP_BODY = 1, /* on_head of a response: the message has no body (HEAD) */
    HTTP1_CB_PAUSE = 2,   /* stop; http1_parser_execute returns HTTP1_PAUSED */
    HTTP1_CB_ERROR = -1,  /* stop with an error (set http1_parser_t.error_status first) */
};

typedef struct http1_callbacks {
    /** The head is complete: `head` is valid until the arena is reset. */
    int (*on_head)(void *ctx, http1_head_t *head);
    /** Body bytes (chunk framing removed). `at` points into the caller's read buffer: copy
     *  or forward it before returning. Return 0 or HTTP1_CB_ERROR. */
    int (*on_body)(void *ctx, const char *at, size_t len);
    /** The message is complete (trailers, if any, were dropped). */
    int (*on_complete)(void *ctx);
} http1_callbacks_t;

typedef enum http1_result {
    HTTP1_OK = 0,     /* every byte consumed, want more */
    HTTP1_PAUSED = 1, /* a callback paused: `consumed` says where; call http1_parser_resume */
    HTTP1_ERROR = 2,  /* malformed or over a limit: see error_status; the stream is dead */
} http1_result_t;

typedef struct http1_parser {
    llhttp_t ll;
    const http1_callbacks_t *cb;
    void *ctx;
    fg_arena_t *arena;     /* borrowed: where split heads are copied; owner resets it per message */
    http1_head_t head;
    uint32_t len;          /* raw offset just past the last head span */
    uint32_t cap, copied;  /* arena copy: bytes allocated / raw bytes copied so far */
    uint32_t hdr_cap;      /* entries allocated in head.headers */
    uint32_t span_off;     /* raw offset where the open element (URL, name, value) began */
    const char *anchor;    /* a pointer into the running call's input ... */
    uint32_t anchor_off;   /* ... and its raw offset */
    bool started;          /* the head's first span was seen (anchor set) */
    bool borrowed;         /* head.buf points into the caller's input, not the arena */
    bool head_borrowed;    /* the completed head was borrowed (until detached) */
    bool span_open;        /* a span of the current element was seen */
    uint32_t value_spans;  /* spans seen for the current header value */
    bool span_at_end;      /* the last value span ended where its input ended */
    const char *span_end;  /* where the last value span ended (same execute call only) */
    const char *exec_start, *exec_end; /* input of the running execute call */
    bool in_head;          /* between message begin and headers complete */
    bool skip_body;        /* response to HEAD: no body whatever the headers say */
    bool msg_keep_alive;   /* keep-alive verdict captured at message complete */
    int error_status;      /* HTTP status to answer an error with (400, 413, 431, 502) */
    const char *error_reason; /* static text for logs */
    uint32_t max_head_size;   /* bytes of request line + headers (431 beyond) */
    uint32_t max_headers;     /* header fields (431 beyond) */
    /* Request head scanner (see the top of this file). */
    bool scan_active;      /* between the end of one request and the end of the next head */
    bool scan_prev_cr;     /* the last byte scanned was CR */
    bool scan_started;     /* a byte other than CR/LF of this message was seen */
    bool scan_in_name;     /* inside a header field name (before its colon) */
    bool scan_ctl;         /* a response head held a control byte (its fields are checked) */
    bool scan_inner_pause; /* llhttp paused at message end for the scanner, not the owner */
    uint32_t scan_line_len;  /* bytes on the current line, CR/LF excluded */
    const char *scan_end;    /* where the head ended in the running execute call, or NULL */
    uint8_t crlf_due;        /* bytes of a chunk's closing CRLF still to check (2, 1, 0) */
} http1_parser_t;

/** Initialise for HTTP_REQUEST or HTTP_RESPONSE. `arena` receives each message's head. */
void http1_parser_init(http1_parser_t *p, llhttp_type_t type, const http1_callbacks_t *cb,
                       void *ctx, fg_arena_t *arena);

/** Set the head limits (0 = the HTTP1_MAX_* default). Takes effect from the next head. */
void http1_parser_set_limits(http1_parser_t *p, uint32_t max_head_size, uint32_t max_headers);

/** Parse `len` bytes. `*consumed` is how many were used (all of them on HTTP1_OK). */
http1_result_t http1_parser_execute(http1_parser_t *p, const char *data, size_t len,
                                    size_t *consumed);

/** True when the completed head (after on_head) lies in the caller's input rather than in the
 *  arena: the bytes passed to the execute call that completed it, from that call's start up
 *  to `consumed`, must stay where they are while the head is used. */
static inline bool http1_head_borrowed(const http1_parser_t *p) { return p->head_borrowed; }

/** Copy a borrowed head into the arena so the caller may release its input; `*old_buf` is
 *  where it was, for rebasing pointers taken into it. A no-op for an arena head. 0 or
 *  -ENOMEM (the head stays borrowed). */
int http1_head_detach(http1_parser_t *p, const char **old_buf);

/** Resume after HTTP1_PAUSED. */
void http1_parser_resume(http1_parser_t *p);

/** The peer closed: completes an EOF-delimited response. HTTP1_OK/PAUSED, or HTTP1_ERROR
 *  when the message was cut short. */
http1_result_t http1_parser_finish(http1_parser_t *p);

/** Whether the last completed message allows another on the connection. */
static inline bool http1_parser_keep_alive(const http1_parser_t *p) { return p->msg_keep_alive; }

/** Token of a header name (case-insensitive), HTTP1_H_OTHER when it has none. */
http1_token_t http1_token_lookup(const char *name, size_t len);

/** Case-insensitive ASCII equality of two byte ranges. */
bool http1_caseeq(const char *a, size_t alen, const char *b, size_t blen);

/* ---- serialisation -------------------------------------------------------------------- */

/** Decimal digits of `v` into `out` (at least 20 bytes); returns the length. */
size_t http1_u64_to_dec(uint64_t v, char *out);

/** A chunk header for `len` bytes ("1a2b\r\n") into `out` (at least 18 bytes). */
size_t http1_chunk_header(size_t len, char *out);

/** Append a complete JSON error response:
 *  `{"error":{"code":"<code>","message":"<message>"}}`, Content-Type application/json,
 *  Content-Length, and `Connection: close` when `close` is true. `code` and `message` are
 *  trusted static strings: request data is never echoed. 0 or -ENOMEM. */
int http1_write_error(struct evbuffer *out, int status, const char *code, const char *message,
                      bool close);

/** http1_write_error with `extra_len` bytes of extra header lines (each ending in CRLF, may
 *  be NULL/0) and a `message` that may be configured text already JSON-escaped (the 429's). */
int http1_write_error_ex(struct evbuffer *out, int status, const char *code,
                         const char *message, const char *extra, size_t extra_len, bool close);

/** Standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *http1_reason(int status);

#endif
