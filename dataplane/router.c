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
 * so a match costs one hash probe per request segment, independent of the number of routes.
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
    uint32_t n_nodes;
    redge_t *edges;
    uint32_t edge_mask; /* table size - 1 (a power of two) */
    uint32_t *refs;     /* route indices */
};

/* A route's placement while building: sorted by (node, kind, route) into refs[]. */
typedef struct rplace {
    uint32_t node;
    uint32_t kind; /* 0 exact, 1 prefix */
    uint32_t route;
} rplace_t;

static uint32_t seg_hash(uint32_t parent, const char *s, size_t n)
{
    /* FNV-1a, seeded with the parent so equal segments under different parents spread. */
    uint32_t h = 2166136261u ^ (parent * 0x9e3779b1u);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t edge_find(const dp_router_t *r, uint32_t parent, const char *s, size_t n)
{
    uint32_t h = seg_hash(parent, s, n);
    for (uint32_t i = h & r->edge_mask;; i = (i + 1) & r->edge_mask) {
        const redge_t *e = &r->edges[i];
        if (e->parent == NONE)
            return NONE;
        if (e->hash == h && e->parent == parent && e->seg_len == n && memcmp(e->seg, s, n) == 0)
            return e->child;
    }
}

static uint32_t edge_add(dp_router_t *r, uint32_t parent, const char *s, size_t n)
{
    uint32_t h = seg_hash(parent, s, n);
    uint32_t i = h & r->edge_mask;
    for (;; i = (i + 1) & r->edge_mask) {
        redge_t *e = &r->edges[i];
        if (e->parent == NONE)
            break;
        if (e->hash == h && e->parent == parent && e->seg_len == n && memcmp(e->seg, s, n) == 0)
            return e->child;
    }
    uint32_t child = r->n_nodes++;
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

/* The node for `path` (which starts with '/', or is ""), created as needed. */
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
        if (!slash)
            return node;
        s = slash + 1;
    }
}

static int cmp_place(const void *a, const void *b)
{
    const rplace_t *x = a, *y = b;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return x->route < y->route ? -1 : x->route > y->route;
}

static bool route_is_prefix(const fg_route_t *rt, size_t len)
{
    return rt->prefix || (len >= 2 && rt->path[len - 2] == '/' && rt->path[len - 1] == '*');
}

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
    if (total >= NONE / 2) {
        fg_error_setc(err, -E2BIG, "", "routes: too many path segments");
        return NULL;
    }
    uint32_t slots = 16;
    while (slots < 2 * total)
        slots *= 2;

    rplace_t *places = NULL;
    dp_router_t *r = calloc(1, sizeof *r);
    if (!r)
        goto fail_alloc;
    r->cfg = cfg;
    r->nodes = calloc(total, sizeof *r->nodes);
    r->edges = malloc(slots * sizeof *r->edges);
    r->refs = malloc((n_routes ? n_routes : 1) * sizeof *r->refs);
    places = malloc((n_routes ? n_routes : 1) * sizeof *places);
    if (!r->nodes || !r->edges || !r->refs || !places)
        goto fail_tables;
    for (uint32_t i = 0; i < slots; i++)
        r->edges[i].parent = NONE;
    r->edge_mask = slots - 1;
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
        places[i] = (rplace_t){.node = insert_path(r, rt->path, base), .kind = prefix,
                               .route = (uint32_t)i};
    }
    qsort(places, n_routes, sizeof *places, cmp_place);
    for (size_t i = 0; i < n_routes; i++) {
        rnode_t *nd = &r->nodes[places[i].node];
        r->refs[i] = places[i].route;
        if (places[i].kind == 0) {
            if (nd->exact_n++ == 0)
                nd->exact_first = (uint32_t)i;
        } else {
            if (nd->prefix_n++ == 0)
                nd->prefix_first = (uint32_t)i;
        }
    }
    free(places);
    return r;

fail_tables:
    free(places);
    router_free(r);
fail_alloc:
    fg_error_setc(err, -ENOMEM, "", "out of memory building the router");
    return NULL;
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
        const char *slash = memchr(s, '/', (size_t)(end - s));
        const char *seg_end = slash ? slash : end;
        uint32_t child = edge_find(r, node, s, (size_t)(seg_end - s));
        if (child == NONE) {
            whole = false;
            break;
        }
        node = child;
        if (!slash)
            break;
        s = slash + 1;
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
