/* guard.c - SSRF guard, upstream allow-list, path normalisation and header hygiene (see
 * guard.h for what each control does and what it costs).
 *
 * Per generation: the blocked set (defaults + blockedIPs) and trusted-proxy set as fg_cidr
 * sets, one "refused" byte per upstream target when allowedHosts is set, and per route with
 * header ops the precomputed `add` text and the names to drop. All of it lives in one arena
 * (plus the two sets) and dies with the generation. The connect hook reads the *current*
 * generation's blocked set, so a request that started before a swap is still held to the
 * newest policy when it connects. */
#include "guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_cidr.h"
#include "fg_log.h"
#include "fg_time.h"
#include "generation.h"
#include "metrics.h"
#include "proxy.h"
#include "tls.h"

#define GUARD_ARENA_CHUNK 4096 /* per-generation tables: most configs fit one chunk */

/* Names a route's ops drop from one message: removed names and the names it adds (an add
 * replaces). `bloom` has one bit per (first letter, length) pair present, so most fields are
 * passed over with one AND. */
typedef struct name_set {
    const char **names;
    uint32_t *lens;
    size_t n;
    uint64_t bloom;
} name_set_t;

typedef struct route_ops {
    name_set_t req_drop, resp_drop;
    const char *req_add, *resp_add; /* "Name: value\r\n"... */
    size_t req_add_len, resp_add_len;
} route_ops_t;

struct dp_guard {
    fg_arena_t *arena;
    const fg_config_t *cfg;     /* borrowed: the generation's */
    fg_cidr_set_t *blocked;     /* defaults + security.blockedIPs */
    fg_cidr_set_t *trusted;     /* security.trustedProxies, NULL when empty */
    uint32_t *target_base;      /* [n_upstreams] first index in target_refused; NULL: no list */
    uint8_t *target_refused;    /* [all targets] host outside allowedHosts */
    uint8_t *upstream_refused;  /* [n_upstreams] every target refused: the route's answer is
                                   403 whoever asks, so it is given before auth */
    route_ops_t **route_ops;    /* [n_routes], NULL when no route has header ops */
};

/* ---- rate-limited refusal logs --------------------------------------------------------- */

typedef struct log_limit {
    uint64_t next_ms;
    uint64_t suppressed;
} log_limit_t;

static log_limit_t log_ssrf, log_host, log_path, log_resp;

/* Whether to log now; `suppressed` receives the count of lines skipped since the last one. */
static bool log_due(log_limit_t *l, char suppressed[24])
{
    uint64_t now = fg_now_ms();
    if (now < l->next_ms) {
        l->suppressed++;
        return false;
    }
    snprintf(suppressed, 24, "%llu", (unsigned long long)l->suppressed);
    l->suppressed = 0;
    l->next_ms = now + GUARD_LOG_INTERVAL_MS;
    return true;
}

/* ---- building --------------------------------------------------------------------------- */

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
}

static uint64_t name_bit(const char *name, size_t len)
{
    return 1ull << ((lower((unsigned char)name[0]) + len * 7) & 63);
}

static int name_set_build(fg_arena_t *a, name_set_t *s, const fg_header_ops_t *ops)
{
    size_t cap = ops->n_remove + ops->n_add;
    if (cap == 0)
        return 0;
    s->names = fg_arena_alloc(a, cap * sizeof *s->names);
    s->lens = fg_arena_alloc(a, cap * sizeof *s->lens);
    if (!s->names || !s->lens)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        const char *n = i < ops->n_remove ? ops->remove[i] : ops->add[i - ops->n_remove].name;
        size_t len = strlen(n);
        if (len == 0)
            continue;
        s->names[s->n] = n;
        s->lens[s->n++] = (uint32_t)len;
        s->bloom |= name_bit(n, len);
    }
    return 0;
}

/* The `add` fields as one block of text. Names the gateway itself owns on that message
 * (framing, hop-by-hop, Host and the forwarding fields on requests) are left out: the gateway
 * writes those, and a second copy would make the message ambiguous. */
static int add_block(fg_arena_t *a, const fg_header_ops_t *ops, unsigned reserved,
                     const char *route_id, const char **out, size_t *out_len)
{
    size_t total = 0;
    for (size_t i = 0; i < ops->n_add; i++)
        total += strlen(ops->add[i].name) + strlen(ops->add[i].value) + 4;
    if (total == 0)
        return 0;
    char *b = fg_arena_alloc(a, total + 1), *p = b;
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < ops->n_add; i++) {
        const char *n = ops->add[i].name, *v = ops->add[i].value;
        size_t nl = strlen(n), vl = strlen(v);
        http1_token_t t = http1_token_lookup(n, nl);
        if (t != HTTP1_H_OTHER && (reserved & (1u << t))) {
            fg_log(FG_LOG_WARN, "route header op ignored: the gateway sets this field",
                   "route", route_id, "header", n, NULL);
            continue;
        }
        memcpy(p, n, nl);
        p += nl;
        memcpy(p, ": ", 2);
        p += 2;
        memcpy(p, v, vl);
        p += vl;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    *out = b;
    *out_len = (size_t)(p - b);
    return 0;
}

/* Token bits (1 << token) of the fields a route may not add. */
static unsigned reserved_tokens(bool request)
{
    unsigned bits = 0;
    for (unsigned t = 1; t < HTTP1_H__COUNT; t++) {
        bool framing_or_hop = t == HTTP1_H_CONNECTION || t == HTTP1_H_KEEP_ALIVE ||
                              t == HTTP1_H_PROXY_CONNECTION || t == HTTP1_H_TE ||
                              t == HTTP1_H_TRAILER || t == HTTP1_H_TRANSFER_ENCODING ||
                              t == HTTP1_H_UPGRADE || t == HTTP1_H_CONTENT_LENGTH ||
                              t == HTTP1_H_PROXY_AUTHORIZATION || t == HTTP1_H_PROXY_AUTHENTICATE;
        bool req_owned = t == HTTP1_H_HOST || t == HTTP1_H_X_FORWARDED_FOR ||
                         t == HTTP1_H_X_FORWARDED_PROTO || t == HTTP1_H_X_FORWARDED_HOST ||
                         t == HTTP1_H_FORWARDED || t == HTTP1_H_X_REAL_IP || t == HTTP1_H_EXPECT;
        if (framing_or_hop || (request && req_owned))
            bits |= 1u << t;
    }
    return bits;
}

static bool has_ops(const fg_route_t *rt)
{
    return rt->request_headers.n_add || rt->request_headers.n_remove ||
           rt->response_headers.n_add || rt->response_headers.n_remove;
}

static int build_route_ops(dp_guard_t *g)
{
    const fg_config_t *cfg = g->cfg;
    size_t with_ops = 0;
    for (size_t i = 0; i < cfg->n_routes; i++)
        with_ops += has_ops(&cfg->routes[i]);
    if (with_ops == 0)
        return 0;
    g->route_ops = fg_arena_calloc(g->arena, cfg->n_routes, sizeof *g->route_ops);
    if (!g->route_ops)
        return -ENOMEM;
    unsigned req_reserved = reserved_tokens(true), resp_reserved = reserved_tokens(false);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const fg_route_t *rt = &cfg->routes[i];
        if (!has_ops(rt))
            continue;
        route_ops_t *o = fg_arena_calloc(g->arena, 1, sizeof *o);
        if (!o || name_set_build(g->arena, &o->req_drop, &rt->request_headers) < 0 ||
            name_set_build(g->arena, &o->resp_drop, &rt->response_headers) < 0 ||
            add_block(g->arena, &rt->request_headers, req_reserved, rt->id, &o->req_add,
                      &o->req_add_len) < 0 ||
            add_block(g->arena, &rt->response_headers, resp_reserved, rt->id, &o->resp_add,
                      &o->resp_add_len) < 0)
            return -ENOMEM;
        g->route_ops[i] = o;
    }
    return 0;
}

static int build_allow_list(dp_guard_t *g)
{
    const fg_config_t *cfg = g->cfg;
    const fg_security_conf_t *sec = &cfg->security;
    if (sec->n_allowed_hosts == 0 || cfg->n_upstreams == 0)
        return 0;
    size_t total = 0;
    for (size_t u = 0; u < cfg->n_upstreams; u++)
        total += cfg->upstreams[u].n_targets;
    g->target_base = fg_arena_alloc(g->arena, cfg->n_upstreams * sizeof *g->target_base);
    g->target_refused = fg_arena_calloc(g->arena, total ? total : 1, 1);
    g->upstream_refused = fg_arena_calloc(g->arena, cfg->n_upstreams, 1);
    if (!g->target_base || !g->target_refused || !g->upstream_refused)
        return -ENOMEM;
    size_t k = 0;
    for (size_t u = 0; u < cfg->n_upstreams; u++) {
        const fg_upstream_t *up = &cfg->upstreams[u];
        g->target_base[u] = (uint32_t)k;
        size_t refused = 0;
        for (size_t t = 0; t < up->n_targets; t++, k++) {
            g->target_refused[k] = !fg_host_allowed(sec->allowed_hosts, sec->n_allowed_hosts,
                                                    up->targets[t].parsed.host);
            refused += g->target_refused[k];
        }
        g->upstream_refused[u] = refused == up->n_targets;
    }
    return 0;
}

dp_guard_t *guard_build(const fg_config_t *cfg, fg_error_t *err)
{
    dp_guard_t *g = calloc(1, sizeof *g);
    if (!g)
        goto fail;
    g->cfg = cfg;
    g->arena = fg_arena_new(GUARD_ARENA_CHUNK);
    const fg_security_conf_t *sec = &cfg->security;
    g->blocked = fg_cidr_set_from_list(sec->blocked_ips, sec->n_blocked_ips, true);
    if (sec->n_trusted_proxies)
        g->trusted = fg_cidr_set_from_list(sec->trusted_proxies, sec->n_trusted_proxies,
                                           false);
    if (!g->arena || !g->blocked || (sec->n_trusted_proxies && !g->trusted) ||
        build_allow_list(g) < 0 || build_route_ops(g) < 0)
        goto fail;
    return g;
fail:
    guard_free(g);
    fg_error_setc(err, -ENOMEM, NULL, "out of memory building the security tables");
    return NULL;
}

void guard_free(dp_guard_t *g)
{
    if (!g)
        return;
    fg_cidr_set_free(g->blocked);
    fg_cidr_set_free(g->trusted);
    fg_arena_free(g->arena);
    free(g);
}

/* ---- paths ------------------------------------------------------------------------------ */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unreserved(unsigned char c)
{
    return (c >= '0' && c <= '9') || (unsigned)(lower(c) - 'a') < 26u || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* A slash that starts "//", "/./", "/../" or ends the path in "/." or "/..". */
static bool slash_needs_work(const char *p, size_t i, size_t n)
{
    if (i + 1 >= n)
        return false;
    if (p[i + 1] == '/')
        return true;
    if (p[i + 1] != '.')
        return false;
    if (i + 2 == n || p[i + 2] == '/')
        return true;
    return p[i + 2] == '.' && (i + 3 == n || p[i + 3] == '/');
}

/* Decode the escape at p[i] ('%' checked): -1 when malformed or %00. */
static int escape_at(const char *p, size_t i, size_t n)
{
    if (i + 2 >= n)
        return -1;
    int hi = hexval((unsigned char)p[i + 1]), lo = hexval((unsigned char)p[i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    int v = hi * 16 + lo;
    return v == 0 ? -1 : v;
}

/* %00 or a malformed escape: counted, logged (rate-limited; the path itself is not logged:
 * it is the client's), refused. */
static int path_refused(void)
{
    metrics_counters()->paths_refused++;
    char sup[24];
    if (log_due(&log_path, sup))
        fg_log(FG_LOG_WARN, "request refused: %00 or a malformed escape in the path", "rule",
               "request paths", "suppressed", sup, NULL);
    return -EINVAL;
}

int guard_path_normalize(fg_arena_t *arena, const char **pp, size_t *pn, unsigned *flags)
{
    const char *p = *pp;
    size_t n = *pn;
    bool work = false;
    /* The fast path: look for anything to change, without copying. Only '%', '\\' and '/'
     * can mean work; runs of other bytes are skipped in a tight loop. */
    static const bool path_special[256] = {['%'] = true, ['\\'] = true, ['/'] = true};
    for (size_t i = 0; i < n; i++) {
        while (i < n && !path_special[(unsigned char)p[i]])
            i++;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            int v = escape_at(p, i, n);
            if (v < 0)
                return path_refused();
            if (v == '/' || v == '\\')
                *flags |= GUARD_PATH_ENCODED_SLASH;
            if (unreserved((unsigned char)v) || (p[i + 1] >= 'a' && p[i + 1] <= 'f') ||
                (p[i + 2] >= 'a' && p[i + 2] <= 'f'))
                work = true;
            i += 2;
        } else if (c == '\\') {
            *flags |= GUARD_PATH_ENCODED_SLASH;
        } else if (c == '/' && slash_needs_work(p, i, n)) {
            work = true;
        }
    }
    if (!work)
        return 0;
    char *b = fg_arena_alloc(arena, n + 1);
    if (!b)
        return -ENOMEM;
    static const char hex[] = "0123456789ABCDEF";
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            b[m++] = p[i];
            continue;
        }
        int v = escape_at(p, i, n); /* valid: checked above */
        if (unreserved((unsigned char)v)) {
            b[m++] = (char)v;
        } else {
            b[m++] = '%';
            b[m++] = hex[v >> 4];
            b[m++] = hex[v & 15];
        }
        i += 2;
    }
    /* Dot segments and empty segments, in place: the write position never passes the read
     * position. Every segment starts at a '/' (origin-form paths start with one). */
    size_t o = 0, i = 0;
    while (i < m) {
        size_t j = i + 1;
        while (j < m && b[j] != '/')
            j++;
        const char *seg = b + i + 1;
        size_t sl = j - i - 1;
        bool last = j >= m;
        if (sl == 0 || (sl == 1 && seg[0] == '.')) {
            if (last)
                b[o++] = '/'; /* "/a/" and "/a/." keep their trailing slash */
        } else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && b[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            if (last)
                b[o++] = '/';
        } else {
            b[o++] = '/';
            memmove(b + o, seg, sl);
            o += sl;
        }
        i = j;
    }
    if (o == 0)
        b[o++] = '/';
    b[o] = '\0';
    *pp = b;
    *pn = o;
    return 0;
}

/* ---- request ---------------------------------------------------------------------------- */

static const route_ops_t *ops_of(const dp_request_t *r)
{
    const dp_guard_t *g = r->gen->guard;
    return g->route_ops ? g->route_ops[r->route - g->cfg->routes] : NULL;
}

static bool name_in(const name_set_t *s, const char *name, size_t len)
{
    if (!(s->bloom & name_bit(name, len)))
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (http1_caseeq(name, len, s->names[i], s->lens[i]))
            return true;
    return false;
}

static void mark_drops(http1_head_t *h, const name_set_t *s)
{
    for (uint32_t i = 0; i < h->n_headers; i++) {
        http1_header_t *hd = &h->headers[i];
        if (hd->name_len && name_in(s, HTTP1_NAME(h, hd), hd->name_len))
            hd->flags |= HTTP1_HF_DROP;
    }
}

static bool peer_trusted(const dp_guard_t *g, const dp_conn_t *c)
{
    fg_ip_t ip;
    return g->trusted && fg_ip_parse(c->peer_ip, c->peer_ip_len, &ip) == 0 &&
           fg_cidr_set_match(g->trusted, &ip) != NULL;
}

static int host_refused(const dp_request_t *r, const char *host)
{
    metrics_counters()->hosts_refused++;
    char sup[24];
    if (log_due(&log_host, sup))
        fg_log(FG_LOG_WARN, "upstream refused: host outside security.allowedHosts", "route",
               r->route->id, "upstream", r->upstream->name, "host", host, "rule",
               "security.allowedHosts", "suppressed", sup, NULL);
    return 403;
}

int guard_request(dp_request_t *r, unsigned path_flags)
{
    const dp_guard_t *g = r->gen->guard;
    if ((path_flags & GUARD_PATH_ENCODED_SLASH) && !r->route->allow_encoded_slashes) {
        metrics_counters()->paths_refused++;
        char sup[24];
        if (log_due(&log_path, sup))
            fg_log(FG_LOG_WARN, "request refused: encoded slash in the path", "route",
                   r->route->id, "rule", "routes[].allowEncodedSlashes is false", "client",
                   r->conn->peer_ip, "suppressed", sup, NULL);
        return 400;
    }
    if (g->upstream_refused && g->upstream_refused[r->upstream - g->cfg->upstreams])
        return host_refused(r, r->upstream->targets[0].parsed.host);
    r->peer_trusted = peer_trusted(g, r->conn);
    const route_ops_t *o = ops_of(r);
    if (o && o->req_drop.n)
        mark_drops(r->head, &o->req_drop);
    return 0;
}

int guard_target(dp_request_t *r)
{
    const dp_guard_t *g = r->gen->guard;
    if (!g->target_refused)
        return 0;
    size_t u = (size_t)(r->upstream - g->cfg->upstreams);
    size_t t = (size_t)(r->target - r->upstream->targets);
    return g->target_refused[g->target_base[u] + t] ? host_refused(r, r->target->parsed.host)
                                                     : 0;
}

/* The defaults, for connects made before any generation is applied (none today; health
 * checks may). Built once, kept for the life of the process. */
static const fg_cidr_set_t *default_blocked(void)
{
    static fg_cidr_set_t *set;
    if (!set)
        set = fg_cidr_set_from_list(NULL, 0, true);
    return set;
}

int guard_addr_check(const struct sockaddr *sa, const char *host)
{
    const dp_generation_t *gen = generation_current();
    const fg_cidr_set_t *blocked = gen && gen->guard ? gen->guard->blocked : default_blocked();
    fg_ip_t ip;
    if (fg_ip_from_sockaddr(sa, &ip) < 0)
        return -EACCES; /* not an IP address: nothing the config can have meant */
    const char *rule = fg_cidr_set_match_connect(blocked, &ip);
    if (!rule && blocked)
        return 0;
    metrics_counters()->ssrf_blocked++;
    char sup[24], addr[INET6_ADDRSTRLEN];
    if (log_due(&log_ssrf, sup)) {
        fg_ip_format(&ip, addr, sizeof addr);
        bool dflt = rule && strncmp(rule, "default:", 8) == 0;
        fg_log(FG_LOG_WARN, "upstream address blocked (SSRF guard)", "host", host, "address",
               addr, "rule", rule ? rule : "no blocked set (out of memory)", "field",
               dflt ? "default blocked ranges" : "security.blockedIPs", "suppressed", sup,
               NULL);
    }
    return -EACCES;
}

/* ---- forwarding fields ------------------------------------------------------------------- */

#define PUT(p, s, n) (memcpy((p), (s), (n)), (p) += (n))
#define PUTS(p, lit) PUT(p, lit, sizeof(lit) - 1)

static const http1_header_t *host_field(const http1_head_t *h)
{
    return h->host >= 0 && h->headers[h->host].value_len ? &h->headers[h->host] : NULL;
}

/* Bytes of every value of fields `t` joined with ", " (0 when none). */
static size_t joined_len(const http1_head_t *h, http1_token_t t)
{
    size_t n = 0;
    for (uint32_t i = 0; i < h->n_headers; i++)
        if (h->headers[i].token == t && h->headers[i].value_len &&
            !(h->headers[i].flags & HTTP1_HF_DROP))
            n += h->headers[i].value_len + 2;
    return n;
}

static char *put_joined(const http1_head_t *h, http1_token_t t, char *p)
{
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        if (hd->token != t || hd->value_len == 0 || (hd->flags & HTTP1_HF_DROP))
            continue;
        PUT(p, HTTP1_VALUE(h, hd), hd->value_len);
        PUTS(p, ", ");
    }
    return p;
}

size_t guard_request_headers_len(const dp_request_t *r)
{
    const http1_head_t *h = r->head;
    const http1_header_t *host = host_field(h);
    size_t peer = r->conn->peer_ip_len;
    size_t n = sizeof("X-Forwarded-For: \r\n") + peer + sizeof("X-Forwarded-Proto: https\r\n") +
               (host ? sizeof("X-Forwarded-Host: \r\n") + host->value_len : 0) +
               sizeof("X-Real-IP: \r\n") + peer;
    if (r->peer_trusted) {
        /* Kept from the trusted proxy: its chain, and its own fields, whole. */
        n += joined_len(h, HTTP1_H_X_FORWARDED_FOR);
        static const http1_token_t kept[] = {HTTP1_H_X_FORWARDED_PROTO, HTTP1_H_X_FORWARDED_HOST,
                                             HTTP1_H_X_REAL_IP, HTTP1_H_FORWARDED};
        for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++)
            for (uint32_t i = 0; i < h->n_headers; i++)
                if (h->headers[i].token == kept[k])
                    n += h->headers[i].name_len + h->headers[i].value_len + 4;
    }
    const route_ops_t *o = ops_of(r);
    return n + (o ? o->req_add_len : 0);
}

/* A trusted proxy's own field `t`, if it sent one: written as received. */
static char *put_kept(const http1_head_t *h, http1_token_t t, char *p, bool *sent)
{
    *sent = false;
    for (uint32_t i = 0; i < h->n_headers; i++) {
        const http1_header_t *hd = &h->headers[i];
        if (hd->token != t || (hd->flags & HTTP1_HF_DROP))
            continue;
        PUT(p, HTTP1_NAME(h, hd), hd->name_len);
        PUTS(p, ": ");
        PUT(p, HTTP1_VALUE(h, hd), hd->value_len);
        PUTS(p, "\r\n");
        *sent = true;
    }
    return p;
}

char *guard_request_headers_put(const dp_request_t *r, char *p)
{
    const http1_head_t *h = r->head;
    const dp_conn_t *c = r->conn;
    bool trusted = r->peer_trusted, sent;
    PUTS(p, "X-Forwarded-For: ");
    if (trusted)
        p = put_joined(h, HTTP1_H_X_FORWARDED_FOR, p);
    PUT(p, c->peer_ip, c->peer_ip_len);
    PUTS(p, "\r\n");
    if (!trusted || (p = put_kept(h, HTTP1_H_X_FORWARDED_PROTO, p, &sent), !sent)) {
        if (tls_bev_is_tls(c->bev)) /* arrived on the TLS listener */
            PUTS(p, "X-Forwarded-Proto: https\r\n");
        else
            PUTS(p, "X-Forwarded-Proto: http\r\n");
    }
    const http1_header_t *host = host_field(h);
    if ((!trusted || (p = put_kept(h, HTTP1_H_X_FORWARDED_HOST, p, &sent), !sent)) && host) {
        PUTS(p, "X-Forwarded-Host: ");
        PUT(p, HTTP1_VALUE(h, host), host->value_len);
        PUTS(p, "\r\n");
    }
    if (!trusted || (p = put_kept(h, HTTP1_H_X_REAL_IP, p, &sent), !sent)) {
        PUTS(p, "X-Real-IP: ");
        PUT(p, c->peer_ip, c->peer_ip_len);
        PUTS(p, "\r\n");
    }
    if (trusted)
        p = put_kept(h, HTTP1_H_FORWARDED, p, &sent);
    const route_ops_t *o = ops_of(r);
    if (o && o->req_add_len)
        PUT(p, o->req_add, o->req_add_len);
    return p;
}

/* ---- response ---------------------------------------------------------------------------- */

void guard_response(dp_request_t *r, http1_head_t *rh)
{
    if (rh->n_bad) {
        metrics_counters()->resp_headers_dropped += rh->n_bad;
        char sup[24];
        if (log_due(&log_resp, sup)) {
            /* The first bad field's name, JSON-escaped by the logger (it may hold anything
             * but CR/LF), cut short: enough to find it upstream. */
            char name[64] = "";
            for (uint32_t i = 0; i < rh->n_headers; i++) {
                const http1_header_t *hd = &rh->headers[i];
                if (!(hd->flags & HTTP1_HF_DROP))
                    continue;
                size_t nl = hd->name_len < sizeof name - 1 ? hd->name_len : sizeof name - 1;
                memcpy(name, HTTP1_NAME(rh, hd), nl);
                name[nl] = '\0';
                for (size_t k = 0; k < nl; k++)
                    if (name[k] == '\0')
                        name[k] = '?';
                break;
            }
            fg_log(FG_LOG_WARN, "upstream response header dropped: could split the response",
                   "upstream", r->upstream->name, "header", name, "suppressed", sup, NULL);
        }
    }
    const route_ops_t *o = ops_of(r);
    if (o && o->resp_drop.n)
        mark_drops(rh, &o->resp_drop);
}

const char *guard_response_add(const dp_request_t *r, size_t *len)
{
    const route_ops_t *o = ops_of(r);
    *len = o ? o->resp_add_len : 0;
    return o ? o->resp_add : NULL;
}
