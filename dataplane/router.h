// router.h - route matching.
//
// A router is built once per generation from the config's routes and never changes. Paths are
// matched segment by segment in a trie, so the cost of a match grows with the number of path
// segments, not with the number of routes. A route's path is either exact ("/api/users") or a
// prefix ("/api/*", which matches "/api", "/api/" and everything below "/api/"; "/*" matches
// every path). The most specific match wins: an exact route over a prefix route, a longer
// prefix over a shorter one; among routes with the same path, the first in config order whose
// methods and hosts accept the request. (Line comments here: the patterns contain "/*".)
#ifndef DP_ROUTER_H
#define DP_ROUTER_H

#include <stddef.h>

#include "fg_config.h"
#include "fg_error.h"

typedef struct dp_router dp_router_t;

/** Build a router over cfg->routes. `cfg` must outlive the router (it points into it).
 *  NULL with err on failure (ENOMEM or a path the trie cannot hold). */
dp_router_t *router_build(const fg_config_t *cfg, fg_error_t *err);

/** The best route for a request, or NULL. `path` is the request path without the query
 *  string, already normalised; `host` is the Host header without port (may be NULL/0).
 *  Nothing is copied or allocated. */
const fg_route_t *router_match(const dp_router_t *r, const char *method, size_t method_len,
                               const char *host, size_t host_len, const char *path,
                               size_t path_len);

/** Bytes the router's own tables hold (not the config it points into); for reports. */
size_t router_memory(const dp_router_t *r);

/** Release the router. NULL is accepted. */
void router_free(dp_router_t *r);

#endif
