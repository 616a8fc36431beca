/* guard.h - the data plane's request-path security controls (issue 5).
 *
 *   SSRF guard    every address the data plane is about to connect to (each resolved
 *                 address, every connect, and pooled connections again after a config swap)
 *                 is matched against the blocked ranges: the defaults (cloud metadata,
 *                 link-local; fg_cidr_set_add_defaults) plus security.blockedIPs. A blocked
 *                 address is never connected to: 403, counted, one log line naming the rule.
 *   allow-list    a target whose host is outside security.allowedHosts (when the list is not
 *                 empty) is refused before any connect: 403. Precomputed per generation.
 *   paths         the request path is normalised before routing and forwarded exactly as
 *                 matched (guard_path_normalize); encoded '/' and '\' are refused (400) unless
 *                 the route says allowEncodedSlashes.
 *   headers       X-Forwarded-For/-Host/-Proto, Forwarded and X-Real-IP from the client are
 *                 replaced by the gateway's own unless the peer is in security.trustedProxies
 *                 (then X-Forwarded-For is appended to and the others kept); the route's
 *                 requestHeaders/responseHeaders ops are applied; upstream response fields
 *                 that could split the response, Server and X-Powered-By are dropped.
 *
 * Client input never chooses a destination: the upstream host and port come from the config
 * only (Host, absolute-form targets and X-Forwarded-Host are never looked at for that).
 *
 * Cost: everything that depends on config is built once per generation (guard_build); a
 * request pays a flag test per control, plus, on routes with header ops, one pass over its
 * header fields with a 64-bit filter in front of the name compares. Nothing is allocated per
 * request: clean paths are not copied, a normalised one takes arena space. */
#ifndef DP_GUARD_H
#define DP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fg_arena.h"
#include "fg_config.h"
#include "fg_error.h"
#include "http1.h"

struct dp_request;

#define GUARD_LOG_INTERVAL_MS 1000u /* at most one refusal log line per kind per interval; the
                                       next line says how many were suppressed */

/* guard_path_normalize() flags. */
enum {
    GUARD_PATH_ENCODED_SLASH = 1u << 0, /* %2F or %5C (or a raw '\') is in the path */
};

typedef struct dp_guard dp_guard_t;

/** Build a generation's guard tables from a validated config (borrowed: it must outlive the
 *  guard, as a generation's config does). NULL with err on ENOMEM. */
dp_guard_t *guard_build(const fg_config_t *cfg, fg_error_t *err);

/** Free what guard_build made. NULL is accepted. */
void guard_free(dp_guard_t *g);

/** Normalise a request path (origin-form, no query) in place of (*path, *len): percent-decode
 *  the unreserved characters (ALPHA DIGIT - . _ ~), upper-case the hex of the escapes kept,
 *  merge duplicate slashes, remove dot segments (RFC 3986 §5.2.4). %2F, %5C and a raw '\'
 *  are kept as they are and reported in *flags. A path that needs none of this is returned
 *  untouched and uncopied; otherwise the result is in `arena`. 0; -EINVAL for %00 or a
 *  malformed escape (400); -ENOMEM. */
int guard_path_normalize(fg_arena_t *arena, const char **path, size_t *len, unsigned *flags);

/** After route match (hook order "limits and header hygiene"): refuse an encoded slash on a
 *  route without allowEncodedSlashes (400) and a route whose upstream has no target inside
 *  security.allowedHosts (403: no request could be served, so it is said before auth),
 *  decide whether the peer is a trusted proxy, mark the header fields the route removes. 0 or
 *  the HTTP status to finish with. */
int guard_request(struct dp_request *r, unsigned path_flags);

/** After target pick: 403 when the target's host is outside security.allowedHosts, else 0. */
int guard_target(struct dp_request *r);

/** The upstream module's connect hook (upstream_set_addr_check): 0, or -EACCES when `sa` is
 *  in a blocked range of the current generation (the defaults when none is applied yet).
 *  Counts and logs (rate-limited) the refusal, naming `host` and the rule. */
int guard_addr_check(const struct sockaddr *sa, const char *host);

/** Bytes guard_request_headers_put() writes for `r`. */
size_t guard_request_headers_len(const struct dp_request *r);

/** Write the forwarding fields (X-Forwarded-For/-Proto/-Host, X-Real-IP, and a trusted
 *  proxy's Forwarded) and the route's requestHeaders `add` fields, each ending in CRLF, at
 *  `p`; returns the end. */
char *guard_request_headers_put(const struct dp_request *r, char *p);

/** An upstream response head arrived: mark the fields the route removes, count and log
 *  (rate-limited) the fields http1.c marked as unsafe. */
void guard_response(struct dp_request *r, http1_head_t *rh);

/** The route's responseHeaders `add` fields ("Name: value\r\n"...), and their length. */
const char *guard_response_add(const struct dp_request *r, size_t *len);

#endif
