/* accesslog.h - one JSON line per request, written without blocking the event loop.
 *
 * A line: {"ts","level","msg":"request","request_id","trace_id","span_id","parent_id",
 * "method","path","route","upstream","target","status","duration_ms","upstream_ms",
 * "bytes_in","bytes_out","client_ip","key_name","retries","ratelimit","breaker",
 * "worker"}; ts (when the request finished) is RFC 3339 UTC with milliseconds; fields
 * without a value are left out.
 * Every string goes through fg_json_escape (control characters become \uXXXX, invalid
 * UTF-8 becomes U+FFFD), so request data can never forge or break a line. The API key
 * itself is never logged: only the key's configured name.
 *
 * Level: info below 500, warn from 500 (never error: that level is kept for the gateway's
 * own failures, and a 502 is as often the upstream's); lines below logging.level are left
 * out, so "warn" keeps only 5xx lines and "error" turns the access log off. Sampling: a status >= DP_ACCESSLOG_ERROR_STATUS is kept with probability
 * logging.sampling.errorRate (default 1: always), anything else with successRate.
 *
 * Sink: the process log's destination (stderr, or --log-file), through a descriptor of our
 * own opened non-blocking (/proc/self/fd/2, so O_NONBLOCK never touches the shared stderr
 * description). Lines collect in a DP_ACCESSLOG_BUFFER buffer, written when it passes half
 * full and every DP_ACCESSLOG_FLUSH_MS; on a pipe, writes are cut at line boundaries into
 * pieces of at most PIPE_BUF bytes, which the kernel never interleaves with other
 * workers' lines. A sink that does not take the bytes (EAGAIN, a full pipe) keeps them
 * buffered; a line that does not fit the buffer is dropped and counted
 * (flexgate_accesslog_dropped_lines_total), never waited for. */
#ifndef DP_ACCESSLOG_H
#define DP_ACCESSLOG_H

#include <event2/event.h>

#include "fg_config.h"
#include "proxy.h"

#define DP_ACCESSLOG_BUFFER (64 * 1024)   /* bytes of lines waiting for the sink */
#define DP_ACCESSLOG_LINE_MAX 4096        /* bytes of one line (= PIPE_BUF); longer is cut */
#define DP_ACCESSLOG_PATH_MAX 1024        /* bytes of the request path logged */
#define DP_ACCESSLOG_FLUSH_MS 200u        /* longest a line waits in the buffer */
#define DP_ACCESSLOG_ERROR_STATUS 500     /* statuses from here on are "errors" for sampling */
#define DP_ACCESSLOG_OVERLOAD_KEEP 16     /* while shedding (overload_active), successes are
                                             sampled at 1/16 of logging.sampling.successRate */

/** Open the sink (the current fd 2) and start the flush timer on `base`. 0 or a negative
 *  errno (the log then stays off). `worker` (1-based, 0 = single process) goes in lines. */
int accesslog_start(struct event_base *base, unsigned worker);

/** Re-open the sink after fd 2 was re-pointed (SIGHUP, --log-file rotation). */
int accesslog_reopen(void);

/** Apply a generation's logging settings (level, sampling). */
void accesslog_configure(const fg_logging_conf_t *conf);

/** Log one finished request (`status` is its final status). */
void accesslog_request(const dp_request_t *r, int status, uint64_t now_us);

/** Write what is buffered (blocking is acceptable here: shutdown) and close. */
void accesslog_stop(void);

/** Format one line into `out` (cap bytes, DP_ACCESSLOG_LINE_MAX is enough); returns its
 *  length, newline included. Exposed for the unit test. */
size_t accesslog_format(char *out, size_t cap, const dp_request_t *r, int status,
                        uint64_t now_us);

#endif
