/* trace.h - request correlation: the request id and the W3C trace context of a request,
 * and the microsecond timings the access log and metrics report.
 *
 * Request id: the configured header (logging.requestIdHeader, default X-Request-ID) is
 * accepted when well-formed: 1..DP_TRACE_REQUEST_ID_MAX bytes of [A-Za-z0-9] and
 * "-_.:+=/@", one field only. Otherwise one is generated: 32 hex digits, a random
 * per-process prefix and a bijective mix of a per-process counter, so ids are unique per
 * process and worker without a syscall per request. The id goes upstream in the same
 * header and back to the client on the response.
 *
 * Trace context (https://www.w3.org/TR/trace-context/): a valid `traceparent` keeps its
 * trace id and flags; the hop gets a new span id of ours, which replaces the parent id sent
 * upstream, and `tracestate` passes unchanged. An absent or invalid traceparent starts a new
 * trace (random-looking trace id, flags 00) and a tracestate that came with an invalid one
 * is dropped, as the spec asks. The client's copies of these headers are never forwarded
 * as they came: the head's fields are flagged as rewritten and ours are written instead. */
#ifndef DP_TRACE_H
#define DP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_config.h"
#include "http1.h"

#define DP_TRACE_REQUEST_ID_MAX 128      /* bytes of an accepted request id */
#define DP_TRACE_HEADER_MAX FG_REQUEST_ID_HEADER_MAX_LEN /* bytes of its header's name */
#define DP_TRACE_HEADER_DEFAULT "X-Request-ID"
#define DP_TRACE_ID_LEN 32               /* hex digits of a trace id */
#define DP_TRACE_SPAN_LEN 16             /* hex digits of a span (parent) id */

/* What a module decided about a request, for the access log (0: not consulted). */
enum { DP_OUTCOME_NONE = 0, DP_OUTCOME_ALLOWED, DP_OUTCOME_LIMITED, DP_OUTCOME_OPEN,
       DP_OUTCOME_FALLBACK };

typedef struct dp_trace {
    uint64_t start_us;           /* head parsed (monotonic µs), 0 = never started */
    uint64_t dispatch_us;        /* target picked and connecting, 0 = never */
    uint64_t upstream_us;        /* dispatch to the upstream's response head, 0 = none */
    uint8_t ratelimit;           /* DP_OUTCOME_ALLOWED / LIMITED, set by the rate limiter */
    uint8_t breaker;             /* DP_OUTCOME_OPEN / FALLBACK, set by the circuit breaker */
    bool id_generated;
    bool trace_started;
    uint8_t request_id_len;
    char request_id[DP_TRACE_REQUEST_ID_MAX + 1];
    char trace_id[DP_TRACE_ID_LEN + 1];
    char parent_id[DP_TRACE_SPAN_LEN + 1]; /* the caller's span, "" when we started it */
    char span_id[DP_TRACE_SPAN_LEN + 1];   /* ours: the parent id the upstream sees */
    char flags[3];
} dp_trace_t;

/** Monotonic microseconds. */
uint64_t trace_now_us(void);

/** Seed this process's id generator (after fork: each worker its own). 0 or -EIO. */
int trace_init(void);

/** Use `name` (NULL: the default) as the request id header; too long or empty names fall
 *  back to the default. Applied with each generation. */
void trace_set_header(const char *name);

/** Read (and flag as rewritten) the request's id and trace headers; fill `t`. */
void trace_begin(dp_trace_t *t, http1_head_t *h);

/** Give `t` a generated request id if it has none (requests refused before their head). */
void trace_ensure_id(dp_trace_t *t);

/** Bytes trace_write_request() writes at most. */
size_t trace_request_len(const dp_trace_t *t);

/** The request id and traceparent header lines for the upstream, at `p`; returns the end. */
char *trace_write_request(const dp_trace_t *t, char *p);

/** Bytes trace_write_response() writes at most. */
size_t trace_response_len(const dp_trace_t *t);

/** The request id header line for the client, at `p`; returns the end. */
char *trace_write_response(const dp_trace_t *t, char *p);

/** Whether a response header of the upstream is the request id header (replaced by ours). */
bool trace_is_id_header(const http1_head_t *h, const http1_header_t *hd);

#endif
