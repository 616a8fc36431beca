/* proxy.h - the request state machine, and the client connection it runs on.
 *
 * server.c owns client connections (dp_conn_t): accept, reading and parsing requests, keep-alive
 * and pipelining, the header and idle timeouts, closing. proxy.c owns what happens to a request
 * once its head is parsed (dp_request_t): route, pick a target, get a pooled or new upstream
 * connection, forward the head and stream the body up, parse and stream the response down,
 * and finish. A connection runs one request at a time: later pipelined requests wait, unparsed,
 * in the input buffer. The request is embedded in its connection, so serving a request
 * allocates nothing but arena space (reset per request) and what libevent allocates for I/O.
 *
 * Phases of a request (dp_request_t.phase), each with its timeout, all on one timer:
 *   NONE     - not in the proxy (the connection is idle or reading a head)
 *   CONNECT  - waiting for an upstream connection: proxy.timeout.connect (504); or, with
 *              `backoff` set, waiting out a retry's backoff before the next dispatch
 *   EXCHANGE - head sent; body going up and/or response coming down: the upstream's `timeout`
 *              bounds any silence - waiting for the response head (504) or between body
 *              bytes (504 before the response, a cut connection after); a client that stops
 *              sending its body or reading the response for as long gets 408 / is cut
 *   TUNNEL   - after a 101 to an upgrade the route allows: bytes both ways, idle timeout
 * Over every phase runs the whole-request deadline: the route's `timeout`, else
 * proxy.timeout.request (504, or a cut connection once the response has started). Each cause
 * has its own counter in dp_server_stats_t.
 * A failed attempt may be retried on another target (upstream `retries`, retry.h) while no
 * response byte reached the client and no body byte went up; each attempt's outcome feeds its
 * target's breaker and health (balancer.h).
 * Every way out ends in proxy_finish(r, status): it writes the JSON error when no response byte
 * was sent yet (or marks the connection for closing when one was), releases the upstream
 * connection (back to its pool only after a clean exchange), the generation and the timer,
 * and hands the connection back to server.c. Nothing else ends a request.
 *
 * Backpressure: body bytes are forwarded as they are parsed; when the destination's output
 * passes DP_HIGH_WATERMARK the source stops being read until the destination drains below
 * DP_LOW_WATERMARK (bufferevent write watermark callbacks). Writes are first attempted
 * directly (proxy_bev_flush) and only handed to libevent's write event when the socket
 * would block, which saves two epoll_ctl calls per response. */
#ifndef DP_PROXY_H
#define DP_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "balancer.h"
#include "fg_arena.h"
#include "generation.h"
#include "http1.h"
#include "reader.h"
#include "server.h"
#include "trace.h"
#include "upstream.h"

/* ---- limits and timeouts (named; defaults) --------------------------------------------- */
#define DP_HIGH_WATERMARK (64 * 1024)      /* pause the source above this many queued bytes */
#define DP_LOW_WATERMARK (16 * 1024)       /* resume it once the destination is below this */
#define DP_CLIENT_READ_MAX (64 * 1024)     /* client input buffered before reading stops */
#define DP_SHED_MAX 256                    /* connections being refused (503) at once */
#define DP_SHED_LINGER_MS 1000u            /* how long a refused connection is drained */
#define DP_RETRY_AFTER_S 1                 /* Retry-After of the 503 past maxConnections */
#define DP_LINGER_TIMEOUT_MS 2000u         /* lingering close: how long to drain a closer */
#define DP_DISCARD_BODY_MAX (64 * 1024)    /* unread body dropped to keep a connection alive */
#define DP_REQUEST_ARENA_CHUNK 8192        /* request arena chunk: a typical request fits */
#define DP_ARENA_FREELIST_MAX 256          /* request arenas kept for reuse (idle conns hold none) */
#define DP_CONN_FREELIST_MAX 1024          /* connection structs kept for reuse */
#define DP_ACCEPT_PAUSE_MS 100u            /* accept paused this long when out of descriptors */

/* Why a connection is not parsing its input (dp_conn_t.hold bits). */
enum {
    DP_HOLD_UPSTREAM = 1u << 0,     /* the body waits for an upstream connection */
    DP_HOLD_BACKPRESSURE = 1u << 1, /* the upstream's output is over the high watermark */
};

typedef enum dp_conn_state {
    DP_CONN_IDLE = 0, /* waiting for the first byte of a request (idle timer) */
    DP_CONN_HEAD,     /* reading a request head (header timer) */
    DP_CONN_REQUEST,  /* a request is in the proxy (request timer) */
    DP_CONN_DISCARD,  /* response sent; dropping the rest of a small request body */
    DP_CONN_TUNNEL,   /* after a 101: bytes relayed both ways by proxy.c, no parsing */
    DP_CONN_CLOSING,  /* flushing the last response, then a lingering close */
} dp_conn_state_t;

/* Where the client parser stopped (dp_conn_t.paused). */
typedef enum dp_pause {
    DP_PAUSE_NONE = 0,
    DP_PAUSE_HEAD, /* after the head: the body stays unread until the proxy lets it flow */
    DP_PAUSE_END,  /* after the message: the next request waits for this one to finish */
} dp_pause_t;

typedef enum dp_req_phase {
    DP_REQ_NONE = 0,
    DP_REQ_CONNECT,
    DP_REQ_EXCHANGE,
    DP_REQ_TUNNEL,
} dp_req_phase_t;

struct dp_conn;

typedef struct dp_request {
    struct dp_conn *conn;
    dp_req_phase_t phase;
    struct event *timer;          /* owned; created with the connection struct; lazy: may
                                     stay pending after the request, finding nothing due */
    uint64_t timer_armed_ms;      /* when `timer` fires, 0 when not pending */
    uint64_t start_ms;            /* head parsed (fg_now_ms) */
    uint64_t last_io_ms;          /* last upstream or body progress (EXCHANGE) */
    uint32_t io_timeout_ms;       /* EXCHANGE inactivity limit (the upstream's timeout) */
    uint64_t deadline_ms;         /* whole-request deadline (route timeout), 0 = none */
    uint64_t phase_due_ms;        /* CONNECT: when the connect times out */
    dp_generation_t *gen;         /* held from head to finish */
    const fg_route_t *route;
    const fg_upstream_t *upstream;
    const fg_target_t *target;
    const char *key_name;         /* the authenticated API key's name (auth.c), or NULL: the
                                     upstream identity header and the rate-limit identity */
    struct auth_body *auth_body;  /* a signed request's body digest check (auth.c; arena) */
    uint32_t attempts;            /* upstream attempts after the first (retries) */
    dp_trace_t trace;             /* request id, trace context, timings (trace.h, issue 7) */
    up_pool_t *pool;
    up_conn_t *up;                /* owned while set */
    http1_head_t *head;           /* client's head (in the client parser, arena memory) */
    const char *path;             /* normalised path, no query (head buffer or arena): what the
                                     client asked for, as routed and logged */
    size_t path_len;
    size_t path_strip;            /* leading bytes of `path` the route's stripPrefix keeps
                                     from the upstream */
    const char *query;            /* after '?', or NULL */
    size_t query_len;
    http1_parser_t resp;          /* upstream response parser */
    uint64_t max_body;            /* proxy.max_body_size, 0 = unlimited */
    uint64_t req_body_bytes;      /* request body bytes read (and forwarded) */
    uint64_t resp_in_bytes;       /* raw bytes read from the upstream */
    uint64_t resp_body_bytes;     /* response body bytes sent to the client */
    int status;                   /* final status sent to the client, 0 before */
    bool up_reused;               /* the upstream connection came from the pool */
    bool retried;                 /* the one keep-alive-race retry was used */
    bool req_done;                /* the whole request message was read and forwarded */
    bool resp_started;            /* the final response head went to the client */
    bool resp_done;               /* ...and its last byte */
    bool resp_chunked;            /* re-chunking the response body for the client */
    bool resp_close;              /* the client connection closes after this response */
    bool up_keep_alive;           /* the upstream allows reusing its connection */
    bool up_paused;               /* upstream reading stopped for client backpressure */
    bool sent_continue;           /* we answered Expect: 100-continue ourselves */
    bool upgrade;                 /* an Upgrade the route allows: forwarded, 101 tunnelled */
    bool client_paused;           /* TUNNEL: client reading stopped for upstream backpressure */
    const char *extra_headers;    /* header lines ("Name: value\r\n"...) added to the response
                                     this request gets, error or proxied (ratelimit.c's
                                     RateLimit-*), arena memory; NULL = none */
    uint32_t extra_headers_len;
    const char *error_message;    /* JSON-escaped text replacing the error's default message
                                     (the 429's configured `message`), arena memory, or NULL */
    uint32_t rl_wait;             /* ratelimit.c: pending Redis decision slot + 1, 0 = none */
    /* traffic control (issue 6): balancer.c, retry.c, overload.c */
    const struct bal_upstream *bu; /* the upstream being balanced (its fallback after every
                                      breaker refused) */
    uint64_t tried[BAL_TRIED_WORDS]; /* target indexes of bu this request tried */
    const struct error_def *refusal; /* the 503 of a traffic-control refusal, or NULL */
    uint32_t retry_delay_ms;      /* backoff of the retry decided in on_resp_head */
    uint16_t target_index;        /* bu's target of the current attempt, while `picked` */
    bool picked;                  /* an attempt's target is chosen and its outcome due */
    bool backoff;                 /* CONNECT phase: waiting to retry, not connecting yet */
    bool pending;                 /* counted by overload.c until the request ends */
    bool retry_response;          /* the response head was a 5xx to retry, not relayed */
    bool peer_trusted;            /* the client is in security.trustedProxies (guard.c) */
} dp_request_t;

typedef struct dp_conn {
    dp_server_t *server;
    struct dp_conn *prev, *next;  /* server's list of open connections (or the free list) */
    struct bufferevent *bev;
    dp_reader_t rd;               /* reads bev's socket (reader.h) */
    struct event *timer;          /* idle / header / linger timer; owned */
    fg_arena_t *arena;            /* request arena: taken from the server's pool when a request
                                     begins, reset and returned when the connection goes idle */
    http1_parser_t parser;        /* client requests */
    size_t pinned;                /* input bytes at the front holding the current request's
                                     borrowed head (http1_head_borrowed): kept, unparsed,
                                     until the request is done or its body is read */
    dp_request_t req;             /* the current request */
    dp_conn_state_t state;
    dp_pause_t paused;
    unsigned hold;                /* DP_HOLD_* bits */
    bool in_process;              /* inside the parse loop: nested callers only flag work */
    bool reprocess;
    bool dead;                    /* closed: free when the outermost frame unwinds */
    bool client_eof;              /* the client half-closed */
    bool client_error;            /* the client connection failed: close without ceremony */
    bool lingering;               /* our FIN is sent; draining the client until it closes */
    bool unread;                  /* closing with client bytes unread: linger, don't RST */
    uint8_t timer_kind;           /* which of server.c's timeouts is running (lazy timer) */
    uint64_t timer_due_ms;        /* when that timeout expires (fg_now_ms) */
    uint64_t timer_armed_ms;      /* when `timer` fires, 0 when not pending */
    char peer_ip[INET6_ADDRSTRLEN];
    uint8_t peer_ip_len;
} dp_conn_t;

/* ---- proxy.c: called by server.c ------------------------------------------------------- */

/** Create the request's resources (timer) with its connection struct. 0 or -ENOMEM. */
int proxy_request_setup(dp_request_t *r, dp_conn_t *c, struct event_base *base);

/** Free what proxy_request_setup made. */
void proxy_request_teardown(dp_request_t *r);

/** The head of a request is parsed (client parser paused at DP_PAUSE_HEAD). The proxy either
 *  finishes the request at once or lets the body flow (server_conn_unhold) when its upstream
 *  is ready. */
void proxy_start(dp_request_t *r);

/** The request passed admission (limits, auth, rate limit): pick a target and connect. Called
 *  by proxy_start(), or later by a module that decided asynchronously (a Redis rate-limit
 *  answer), while the request is still the connection's current one. */
void proxy_admit(dp_request_t *r);

/** The client input under the request's head is about to be released: copy the head into the
 *  request arena (http1_head_detach) and move the request's pointers into it. 0 or -ENOMEM.
 *  Modules must not keep pointers into r->head->buf of their own past proxy_admit(). */
int proxy_request_detach_head(dp_request_t *r);

/** Body bytes from the client parser callback; forwards them. 0, or -1 with the parser's
 *  error_status set (413). Must not finish the request (it runs inside llhttp). */
int proxy_request_body(dp_request_t *r, const char *at, size_t len);

/** A parse batch ended: flush what was forwarded and apply backpressure. */
void proxy_request_flush(dp_request_t *r);

/** The request message is complete (outside parser callbacks). */
void proxy_request_end(dp_request_t *r);

/** The client's output drained below DP_LOW_WATERMARK. */
void proxy_client_drained(dp_request_t *r);

/** TUNNEL: client bytes arrived; relay them upstream. */
void proxy_tunnel_client_input(dp_request_t *r);

/** The client connection failed or closed while its request body was still due. */
void proxy_client_gone(dp_request_t *r);

/** The one exit of a request. `status` 0: the response completed; otherwise the HTTP status of
 *  the failure (400, 404, 408, 413, 431, 502, 503, 504, ...) or 499 (client went away). */
void proxy_finish(dp_request_t *r, int status);

/** Write a bufferevent's pending output now; hand the rest to libevent if the socket is full. */
void proxy_bev_flush(struct bufferevent *bev);

/* ---- server.c: called by proxy.c ------------------------------------------------------- */

/** Stop / resume parsing the client's input for `why` (DP_HOLD_*). Unholding may parse buffered
 *  input before returning (never re-entrantly). */
void server_conn_hold(dp_conn_t *c, unsigned why);
void server_conn_unhold(dp_conn_t *c, unsigned why);

/** The connection becomes a tunnel (after a 101): its input goes to proxy.c unparsed. 0, or
 *  -ENOMEM when the request head could not be kept. */
int server_conn_tunnel(dp_conn_t *c);

/** Flush the client's output (proxy_bev_flush on the client bufferevent). */
void server_conn_flush(dp_conn_t *c);

/** The counters of the connection's server (proxy.c counts timeouts and refusals there). */
dp_server_stats_t *server_conn_stats(dp_conn_t *c);

/** False when the server is draining: every response should close its connection. */
bool server_conn_may_keep_alive(const dp_conn_t *c);

/** Called by proxy_finish only: the request is over; the connection goes on to the next
 *  request (`keep_alive`) or closes after flushing its output. */
void server_conn_request_done(dp_conn_t *c, bool keep_alive);

#endif
