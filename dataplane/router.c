/* router.c - route matching on a trie of path segments.
 *
 * A path is split on '/' after its leading slash: "/a/b" is ["a","b"], "/a/" is ["a",""], "/"
 * is [""]. Each trie node is a sequence of segments; an exact route hangs its index on the node
 * of its whole path, a prefix route (a path ending in slash-star) on the node of the path
 * before that ending, so the catch-all hangs on the root. The trailing slash is significant for
 * exact routes ("/a" and "/a/" are different paths), while the prefix route of "/p" matches
 * "/p", "/p/" and everything below, and never "/px".
 *
 * Children are found through one open-addressing hash table keyed by (parent node, segment),
 * so a match costs one hash probe per request segment, independent of the number of routes;
 * each segment is scanned once, finding its end and hashing it in the same loop. The node
 * array and the edge table grow with the distinct path prefixes (many routes share "/api/v1"),
 * not with the sum of all paths' segments, and the edge table stays at most half full.
 * Matching walks down as far as the request path goes, tries the exact routes of the final
 * node when every segment was consumed, then the prefix routes from the deepest node up to the
 * root; on each node the routes keep config order, and the first whose methods and hosts
 * accept the request wins. A match allocates nothing and copies nothing.
 *
 * Ownership: the router points into the config's strings (segments, host patterns); the
 * config must outlive it. Built once per generation, never modified after router_build. */
#include "router.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct rnode {
    uint32_t parent;                 /* NONE for the root */
    uint32_t exact_first, exact_n;   /* range in refs[]: exact routes, config order */
    uint32_t prefix_first, prefix_n; /* range in refs[]: prefix routes, config order */
} rnode_t;

typedef struct redge {
    const char *seg; /* points into a route path in the config */
    uint32_t seg_len;
    uint32_t hash;
    uint32_t parent; /* NONE marks an empty slot */
    uint32_t child;
} redge_t;

struct dp_router {
    const fg_config_t *cfg;
    rnode_t *nodes;
    uint32_t n_nodes, nodes_cap;
    redge_t *edges;
    uint32_t edge_mask; /* table size - 1 (a power of two) */
    uint32_t *refs;     /* route indices */
};

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

/* FNV-1a, seeded with the parent so equal segments under different parents spread. */
static inline uint32_t seg_hash_seed(uint32_t parent)
{
    return FNV_OFFSET ^ (parent * 0x9e3779b1u);
}

static uint32_t seg_hash(uint32_t parent, const char *s, size_t n)
{
    uint32_t h = seg_hash_seed(parent);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Segments are short (a few bytes): an inline loop beats a call to memcmp. */
static inline bool seg_equal(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static inline bool edge_is(const redge_t *e, uint32_t h, uint32_t parent, const char *s,
                           size_t n)
{
    return e->hash == h && e->parent == parent && e->seg_len == n && seg_equal(e->seg, s, n);
}

static inline uint32_t edge_find(const dp_router_t *r, uint32_t parent, const char *s, size_t n,
                          uint32_t h)
{
    for (uint32_t i = h & r->edge_mask;; i = (i + 1) & r->edge_mask) {
        const redge_t *e = &r->edges[i];
        if (e->parent == NONE)
            return NONE;
        if (edge_is(e, h, parent, s, n))
            return e->child;
    }
}

/* Double the edge table (it is kept at most half full, so probes stay short). */
static int edges_grow(dp_router_t *r)
{
    uint32_t slots = (r->edge_mask + 1) * 2;
    redge_t *edges = malloc((size_t)slots * sizeof *edges);
    if (!edges)
        return -1;
    for (uint32_t i = 0; i < slots; i++)
        edges[i].parent = NONE;
    for (uint32_t i = 0; i <= r->edge_mask; i++) {
        const redge_t *e = &r->edges[i];
        if (e->parent == NONE)
            continue;
        uint32_t j = e->hash & (slots - 1);
        while (edges[j].parent != NONE)
            j = (j + 1) & (slots - 1);
        edges[j] = *e;
    }
    free(r->edges);
    r->edges = edges;
    r->edge_mask = slots - 1;
    return 0;
}

/* The child of `parent` for segment s, created if missing; NONE when out of memory. */
static uint32_t edge_add(dp_router_t *r, uint32_t parent, const char *s, size_t n)
{
    uint32_t h = seg_hash(parent, s, n);
    uint32_t child = edge_find(r, parent, s, n, h);
    if (child != NONE)
        return child;
    if (2 * (r->n_nodes + 1) > r->edge_mask + 1 && edges_grow(r) < 0)
        return NONE;
    if (r->n_nodes == r->nodes_cap) {
        uint32_t cap = r->nodes_cap * 2;
        rnode_t *nodes = realloc(r->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return NONE;
        r->nodes = nodes;
        r->nodes_cap = cap;
    }
    uint32_t i = h & r->edge_mask;
    while (r->edges[i].parent != NONE)
        i = (i + 1) & r->edge_mask;
    child = r->n_nodes++;
    r->nodes[child] = (rnode_t){.parent = parent};
    r->edges[i] = (redge_t){.seg = s, .seg_len = (uint32_t)n, .hash = h, .parent = parent,
                            .child = child};
    return child;
}

/* Segments of a path that starts with '/'; "" (the base of the catch-all) has none. */
static size_t count_segments(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        k += p[i] == '/';
    return k;
}

/* The node for `path` (which starts with '/', or is ""), created as needed; NONE when out
 * of memory. */
static uint32_t insert_path(dp_router_t *r, const char *path, size_t n)
{
    uint32_t node = 0;
    if (n == 0)
        return node;
    const char *s = path + 1, *end = path + n;
    for (;;) {
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *seg_end = slash ? slash : end;
        node = edge_add(r, node, s, (size_t)(seg_end - s));
        if (!slash || node == NONE)
            return node;
        s = slash + 1;
    }
}

static bool route_is_prefix(const fg_route_t *rt, size_t len)
{
    return rt->prefix || (len >= 2 && rt->path[len - 2] == '/' && rt->path[len - 1] == '*');
}

/* Initial table sizes: enough for a small config without growing; large ones double. */
#define ROUTER_NODES_INIT 64u
#define ROUTER_EDGES_INIT 128u /* a power of two */

dp_router_t *router_build(const fg_config_t *cfg, fg_error_t *err)
{
    size_t n_routes = cfg ? cfg->n_routes : 0;
    size_t total = 1;
    for (size_t i = 0; i < n_routes; i++) {
        const char *p = cfg->routes[i].path;
        if (!p || p[0] != '/') {
            fg_error_setc(err, -EINVAL, "", "routes[%zu].path: must start with '/'", i);
            return NULL;
        }
        total += count_segments(p, strlen(p));
    }
    /* Nodes are at most the segments of all paths; the table must stay indexable by u32. */
    if (total >= NONE / 4) {
        fg_error_setc(err, -E2BIG, "", "routes: too many path segments");
        return NULL;
    }

    /* keys[i] = 2 * node + kind (0 exact, 1 prefix) of route i, then a counting sort by key
     * puts refs[] in (node, kind, config order) order in O(routes + nodes). */
    uint32_t *keys = NULL, *cursor = NULL;
    dp_router_t *r = calloc(1, sizeof *r);
    if (!r)
        goto fail_alloc;
    r->cfg = cfg;
    r->nodes_cap = ROUTER_NODES_INIT;
    r->nodes = malloc(r->nodes_cap * sizeof *r->nodes);
    r->edges = malloc(ROUTER_EDGES_INIT * sizeof *r->edges);
    r->refs = malloc((n_routes ? n_routes : 1) * sizeof *r->refs);
    keys = malloc((n_routes ? n_routes : 1) * sizeof *keys);
    if (!r->nodes || !r->edges || !r->refs || !keys)
        goto fail_tables;
    for (uint32_t i = 0; i < ROUTER_EDGES_INIT; i++)
        r->edges[i].parent = NONE;
    r->edge_mask = ROUTER_EDGES_INIT - 1;
    r->nodes[0] = (rnode_t){.parent = NONE};
    r->n_nodes = 1;

    for (size_t i = 0; i < n_routes; i++) {
        const fg_route_t *rt = &cfg->routes[i];
        size_t len = strlen(rt->path);
        bool prefix = route_is_prefix(rt, len);
        size_t base = len;
        if (prefix && len >= 2 && rt->path[len - 2] == '/' && rt->path[len - 1] == '*')
            base = len - 2; /* the prefix route of "/api" hangs on "/api" */
        else if (prefix && rt->path[len - 1] == '*')
            base = len - 1;
        uint32_t node = insert_path(r, rt->path, base);
        if (node == NONE)
            goto fail_tables;
        keys[i] = 2 * node + prefix;
    }
    /* Give back what the doubling over-reserved; a failure here just keeps the larger block. */
    rnode_t *fit = realloc(r->nodes, r->n_nodes * sizeof *r->nodes);
    if (fit) {
        r->nodes = fit;
        r->nodes_cap = r->n_nodes;
    }

    cursor = calloc(2 * (size_t)r->n_nodes + 1, sizeof *cursor);
    if (!cursor)
        goto fail_tables;
    for (size_t i = 0; i < n_routes; i++)
        cursor[keys[i] + 1]++;
    for (uint32_t n = 0; n < r->n_nodes; n++) {
        rnode_t *nd = &r->nodes[n];
        nd->exact_n = cursor[2 * n + 1];
        nd->prefix_n = cursor[2 * n + 2];
    }
    for (size_t k = 1; k <= 2 * (size_t)r->n_nodes; k++)
        cursor[k] += cursor[k - 1]; /* cursor[key] = first slot of that key */
    for (uint32_t n = 0; n < r->n_nodes; n++) {
        r->nodes[n].exact_first = cursor[2 * n];
        r->nodes[n].prefix_first = cursor[2 * n + 1];
    }
    for (size_t i = 0; i < n_routes; i++)
        r->refs[cursor[keys[i]]++] = (uint32_t)i; /* ascending i: config order kept */
    free(cursor);
    free(keys);
    return r;

fail_tables:
    free(keys);
    router_free(r);
fail_alloc:
    fg_error_setc(err, -ENOMEM, "", "out of memory building the router");
    return NULL;
}

size_t router_memory(const dp_router_t *r)
{
    if (!r)
        return 0;
    return sizeof *r + (size_t)r->nodes_cap * sizeof *r->nodes +
           ((size_t)r->edge_mask + 1) * sizeof *r->edges +
           (r->cfg->n_routes ? r->cfg->n_routes : 1) * sizeof *r->refs;
}

static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

/* "api.example.com" exactly, or "*.example.com": any host ending in ".example.com" with at
 * least one character before it; "*" alone accepts every host. Case-insensitive. */
static bool host_matches(const char *pat, const char *host, size_t host_len)
{
    size_t pl = strlen(pat);
    if (pl >= 1 && pat[0] == '*') {
        if (pl == 1)
            return true;
        const char *suffix = pat + 1; /* ".example.com" */
        size_t sl = pl - 1;
        return host_len > sl && ascii_caseeq(host + host_len - sl, suffix, sl);
    }
    return pl == host_len && ascii_caseeq(pat, host, pl);
}

typedef struct match_req {
    const char *method;
    size_t method_len;
    unsigned method_bit; /* computed on first need */
    bool method_known;
    const char *host;
    size_t host_len;
} match_req_t;

static bool route_accepts(const fg_route_t *rt, match_req_t *m)
{
    if (rt->methods) {
        if (!m->method_known) {
            m->method_bit = fg_method_bit(m->method, m->method_len);
            m->method_known = true;
        }
        if (!(rt->methods & m->method_bit))
            return false;
    }
    if (rt->n_hosts) {
        if (!m->host || m->host_len == 0)
            return false;
        for (size_t i = 0; i < rt->n_hosts; i++)
            if (host_matches(rt->hosts[i], m->host, m->host_len))
                return true;
        return false;
    }
    return true;
}

static const fg_route_t *first_accepting(const dp_router_t *r, uint32_t first, uint32_t n,
                                         match_req_t *m)
{
    for (uint32_t i = 0; i < n; i++) {
        const fg_route_t *rt = &r->cfg->routes[r->refs[first + i]];
        if (route_accepts(rt, m))
            return rt;
    }
    return NULL;
}

const fg_route_t *router_match(const dp_router_t *r, const char *method, size_t method_len,
                               const char *host, size_t host_len, const char *path,
                               size_t path_len)
{
    if (!r || !path || path_len == 0 || path[0] != '/')
        return NULL;
    if (host && host_len && host[host_len - 1] == '.')
        host_len--; /* "example.com." is "example.com" */
    match_req_t m = {.method = method, .method_len = method_len, .host = host,
                     .host_len = host ? host_len : 0};

    uint32_t node = 0;
    bool whole = true;
    const char *s = path + 1, *end = path + path_len;
    for (;;) {
        /* One pass per segment: find its end and hash it together. */
        uint32_t h = seg_hash_seed(node);
        const char *p = s;
        while (p < end && *p != '/') {
            h ^= (unsigned char)*p++;
            h *= FNV_PRIME;
        }
        uint32_t child = edge_find(r, node, s, (size_t)(p - s), h);
        if (child == NONE) {
            whole = false;
            break;
        }
        node = child;
        if (p == end)
            break;
        s = p + 1;
    }
    const fg_route_t *rt;
    if (whole && r->nodes[node].exact_n &&
        (rt = first_accepting(r, r->nodes[node].exact_first, r->nodes[node].exact_n, &m)))
        return rt;
    for (uint32_t n = node; n != NONE; n = r->nodes[n].parent)
        if (r->nodes[n].prefix_n &&
            (rt = first_accepting(r, r->nodes[n].prefix_first, r->nodes[n].prefix_n, &m)))
            return rt;
    return NULL;
}

void router_free(dp_router_t *r)
{
    if (!r)
        return;
    free(r->nodes);
    free(r->edges);
    free(r->refs);
    free(r);
}
