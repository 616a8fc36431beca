/* upstream.c - per-target keep-alive pools, non-blocking connects, evdns resolution.
 *
 * Pools live in one process-wide hash table keyed by (tls, host, port) and are never freed
 * before upstream_shutdown(): their number is bounded by the targets ever configured, and
 * keeping them is what lets idle connections survive a generation swap. Idle connections are
 * a LIFO list so the warmest one is reused first and the surplus ages out at the tail. While
 * idle, a connection's bufferevent belongs to this module (read enabled, to notice the peer
 * closing); once handed out, its callbacks are cleared and the caller owns it.
 *
 * Idle timeouts cost nothing per request: a connection only records when it went idle, and
 * one sweep timer (every UP_SWEEP_INTERVAL_MS, armed only while something is idle) closes the
 * stale tail of each pool that has idle connections. Per-bufferevent timeouts would instead
 * delete and re-add the read event (two epoll_ctl calls) on every take and release. */
#include "upstream.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/util.h>

#include "fg_log.h"
#include "fg_time.h"
#include "metrics.h"
#include "tls.h"

#define POOL_BUCKETS_INIT 64
#define UP_SWEEP_INTERVAL_MS 1000u /* idle-timeout resolution */

typedef enum addr_state {
    ADDR_NONE = 0,  /* never resolved, or the cached answer expired */
    ADDR_RESOLVING, /* an evdns lookup is in flight */
    ADDR_OK,        /* addrs[] valid (literals forever, names until ttl_ms, then refreshed) */
    ADDR_FAILED,    /* the last lookup failed; the next connect retries it */
} addr_state_t;

typedef enum conn_state {
    UC_RESOLVING,  /* waiting in pool->waiters for an address */
    UC_CONNECTING, /* TCP handshake in progress */
    UC_BUSY,       /* owned by a caller */
    UC_IDLE,       /* in pool->idle */
} conn_state_t;

struct up_conn {
    up_pool_t *pool;
    struct bufferevent *bev;
    dp_reader_t rd; /* reads bev's socket once connected (reader.h) */
    TAILQ_ENTRY(up_conn) link; /* pool->idle or pool->waiters */
    conn_state_t state;
    int addr_index; /* address being tried / used */
    int attempts;   /* addresses tried by this connect */
    uint32_t addr_epoch; /* pool->addr_epoch when it connected */
    bool reused;
    uint64_t idle_since_ms;
    up_ready_cb cb;
    void *arg;
    struct sockaddr_storage addr; /* the address connected to (re-checked by the SSRF guard) */
};

TAILQ_HEAD(conn_list, up_conn);

struct up_pool {
    up_pool_t *hash_next;
    uint32_t hash;
    bool tls;
    uint16_t port;
    SSL_CTX *ssl_ctx;         /* https: borrowed from tls.c's cache; NULL when it failed */
    SSL_SESSION *tls_session; /* https: the latest session, offered for resumption; owned */
    uint32_t max_idle;        /* upstream keepalive.maxIdle */
    uint32_t idle_timeout_ms; /* upstream keepalive.idleTimeout */
    char *host;
    char *host_header; /* Host value sent upstream */
    size_t host_header_len;
    bool literal; /* host is an IP literal: addrs never expire */
    addr_state_t addr_state;
    uint64_t resolved_at_ms;
    bool in_resolve_call; /* inside evdns_getaddrinfo(): its callback must not dispatch */
    struct evdns_getaddrinfo_request *dns_req;
    uint32_t ttl_ms;      /* addrs[] are fresh for this long after resolved_at_ms */
    bool dns_name;        /* answered by a name server: refreshed with A/AAAA queries */
    bool refreshing;      /* a background refresh is in flight; addrs[] stay in use */
    bool refresh_failed;  /* the last refresh failed (logged once) */
    struct evdns_request *req_a, *req_aaaa; /* the refresh's queries, while in flight */
    struct sockaddr_storage fresh[UP_MAX_ADDRS]; /* the refresh's answer, being gathered */
    socklen_t fresh_lens[UP_MAX_ADDRS];
    int n_fresh, n_v4_fresh;
    uint32_t fresh_ttl_s;
    uint32_t addr_epoch;  /* bumped when a refresh changes addrs[]: older connections are not
                             pooled again */
    struct sockaddr_storage addrs[UP_MAX_ADDRS];
    socklen_t addr_lens[UP_MAX_ADDRS];
    int n_addrs;
    int addr_pref; /* index of the address that last connected */
    struct conn_list idle;
    size_t n_idle;
    TAILQ_ENTRY(up_pool) idle_link; /* in up.idle_pools while n_idle > 0 */
    struct conn_list waiters;
    uint64_t connects;
};

TAILQ_HEAD(pool_list, up_pool);

/* What makes two pools different: the target, and how connections to it are made and kept. */
typedef struct pool_key {
    bool tls;
    const char *host;
    uint16_t port;
    SSL_CTX *ssl_ctx;
    uint32_t max_idle, idle_timeout_ms;
} pool_key_t;

static struct {
    struct event_base *base;
    struct evdns_base *dns;
    const char *resolv_conf;     /* --resolv-conf, or NULL for the system's */
    struct event *sweep;         /* idle-timeout sweep */
    bool sweep_armed;
    struct pool_list idle_pools; /* pools with idle connections */
    up_pool_t **buckets;
    size_t n_buckets, n_pools;
} up;

/* The SSRF guard's check (guard.c), run on every address before a socket is opened. */
static up_addr_check_fn addr_check;

static void conn_free(up_conn_t *c);
static int conn_start(up_conn_t *c);
static void on_connect_event(struct bufferevent *bev, short what, void *arg);
static void on_sweep(evutil_socket_t fd, short what, void *arg);

int upstream_init(struct event_base *base)
{
    if (up.base)
        return 0;
    up.buckets = calloc(POOL_BUCKETS_INIT, sizeof *up.buckets);
    up.sweep = evtimer_new(base, on_sweep, NULL);
    if (!up.buckets || !up.sweep) {
        free(up.buckets);
        if (up.sweep)
            event_free(up.sweep);
        memset(&up, 0, sizeof up);
        return -ENOMEM;
    }
    up.n_buckets = POOL_BUCKETS_INIT;
    up.base = base;
    TAILQ_INIT(&up.idle_pools);
    return 0;
}

/* ---- pool table ------------------------------------------------------------------------ */

static uint32_t pool_hash(bool tls, const char *host, uint16_t port)
{
    uint32_t h = 2166136261u ^ port ^ (tls ? 0x80000000u : 0u);
    for (const char *p = host; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    return h;
}

static int table_grow(void)
{
    size_t nb = up.n_buckets * 2;
    up_pool_t **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < up.n_buckets; i++) {
        up_pool_t *p = up.buckets[i];
        while (p) {
            up_pool_t *next = p->hash_next;
            p->hash_next = b[p->hash & (nb - 1)];
            b[p->hash & (nb - 1)] = p;
            p = next;
        }
    }
    free(up.buckets);
    up.buckets = b;
    up.n_buckets = nb;
    return 0;
}

/* IP literals need no lookup: parse them now, synchronously and without touching DNS. So does
 * "localhost" (RFC 6761: always the loopback addresses, never a query on the network); IPv4
 * first, and a refused connect moves on to ::1. */
static void pool_parse_literal(up_pool_t *p)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    static const char *const loopback[] = {"127.0.0.1", "::1"};
    const char *const *names = (const char *const[]){p->host};
    int n_names = 1;
    if (strcasecmp(p->host, "localhost") == 0) {
        names = loopback;
        n_names = 2;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)p->port);
    for (int i = 0; i < n_names && p->n_addrs < UP_MAX_ADDRS; i++) {
        struct addrinfo *res = NULL;
        if (getaddrinfo(names[i], port, &hints, &res) != 0 || !res)
            return;
        memcpy(&p->addrs[p->n_addrs], res->ai_addr, res->ai_addrlen);
        p->addr_lens[p->n_addrs++] = (socklen_t)res->ai_addrlen;
        freeaddrinfo(res);
    }
    p->literal = true;
    p->addr_state = ADDR_OK;
}

static up_pool_t *pool_new(const pool_key_t *k, uint32_t h)
{
    bool tls = k->tls;
    const char *host = k->host;
    uint16_t port = k->port;
    up_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->hash = h;
    p->tls = tls;
    p->port = port;
    p->ssl_ctx = k->ssl_ctx;
    p->max_idle = k->max_idle;
    p->idle_timeout_ms = k->idle_timeout_ms;
    p->host = strdup(host);
    bool v6 = strchr(host, ':') != NULL;
    bool default_port = port == (tls ? 443 : 80);
    size_t cap = strlen(host) + 16;
    p->host_header = malloc(cap);
    if (!p->host || !p->host_header) {
        free(p->host);
        free(p->host_header);
        free(p);
        return NULL;
    }
    int n = snprintf(p->host_header, cap, v6 ? "[%s]" : "%s", host);
    if (!default_port)
        n += snprintf(p->host_header + n, cap - (size_t)n, ":%u", (unsigned)port);
    p->host_header_len = (size_t)n;
    TAILQ_INIT(&p->idle);
    TAILQ_INIT(&p->waiters);
    pool_parse_literal(p);
    return p;
}

static bool pool_matches(const up_pool_t *p, const pool_key_t *k, uint32_t h)
{
    return p->hash == h && p->port == k->port && p->tls == k->tls &&
           p->ssl_ctx == k->ssl_ctx && p->max_idle == k->max_idle &&
           p->idle_timeout_ms == k->idle_timeout_ms && strcmp(p->host, k->host) == 0;
}

up_pool_t *upstream_pool_get(const fg_upstream_t *u, const fg_url_t *url)
{
    if (!up.base || !u || !url || !url->host)
        return NULL;
    pool_key_t k = {.tls = url->tls, .host = url->host, .port = url->port,
                    .max_idle = u->keepalive.max_idle,
                    .idle_timeout_ms = u->keepalive.idle_timeout_ms};
    if (k.tls) {
        /* A context that cannot be built (unreadable CA file) leaves ssl_ctx NULL: the pool
         * exists, and each connect through it fails with the logged reason. */
        fg_error_t err;
        fg_error_clear(&err);
        int rc = tls_client_ctx(u, &k.ssl_ctx, &err);
        if (rc < 0 && rc != -EAGAIN) /* -EAGAIN: the same failure, logged moments ago */
            fg_log(FG_LOG_ERROR, "cannot set up TLS to the upstream", "upstream", u->name,
                   "error", err.message, NULL);
    }
    uint32_t h = pool_hash(k.tls, k.host, k.port);
    for (up_pool_t *p = up.buckets[h & (up.n_buckets - 1)]; p; p = p->hash_next)
        if (pool_matches(p, &k, h))
            return p;
    if (up.n_pools >= up.n_buckets && table_grow() < 0)
        return NULL;
    up_pool_t *p = pool_new(&k, h);
    if (!p)
        return NULL;
    p->hash_next = up.buckets[h & (up.n_buckets - 1)];
    up.buckets[h & (up.n_buckets - 1)] = p;
    up.n_pools++;
    return p;
}

const char *upstream_host_header(const up_pool_t *p, size_t *len)
{
    *len = p->host_header_len;
    return p->host_header;
}

size_t upstream_idle_count(const up_pool_t *p) { return p->n_idle; }
uint64_t upstream_connects(const up_pool_t *p) { return p->connects; }
struct bufferevent *upstream_bev(const up_conn_t *c) { return c->bev; }
dp_reader_t *upstream_reader(up_conn_t *c) { return &c->rd; }

/* ---- DNS ------------------------------------------------------------------------------- */

void upstream_set_resolv_conf(const char *path)
{
    up.resolv_conf = path;
}

static bool pool_addr_expired(const up_pool_t *p)
{
    return !p->literal && fg_now_ms() - p->resolved_at_ms >= p->ttl_ms;
}

static uint32_t ttl_bound_ms(uint64_t ms)
{
    return ms < UP_DNS_TTL_MIN_MS ? UP_DNS_TTL_MIN_MS
                                  : ms > UP_DNS_TTL_MAX_MS ? UP_DNS_TTL_MAX_MS : (uint32_t)ms;
}

static void conn_fail(up_conn_t *c, int err)
{
    up_ready_cb cb = c->cb;
    void *arg = c->arg;
    conn_free(c);
    cb(NULL, err, arg);
}

/* Hand the new answer to every connection waiting for it. */
static void pool_dispatch_waiters(up_pool_t *p)
{
    up_conn_t *c;
    while ((c = TAILQ_FIRST(&p->waiters))) {
        TAILQ_REMOVE(&p->waiters, c, link);
        if (p->addr_state != ADDR_OK) {
            conn_fail(c, -EHOSTUNREACH);
            continue;
        }
        int rc = conn_start(c);
        if (rc < 0)
            conn_fail(c, rc);
    }
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    up_pool_t *p = arg;
    if (result == EVUTIL_EAI_CANCEL)
        return; /* shutdown: the pool is not to be touched */
    p->dns_req = NULL;
    if (result == 0 && res) {
        int n = 0;
        for (struct evutil_addrinfo *ai = res; ai && n < UP_MAX_ADDRS; ai = ai->ai_next) {
            if (ai->ai_addrlen > sizeof p->addrs[0])
                continue;
            memcpy(&p->addrs[n], ai->ai_addr, ai->ai_addrlen);
            p->addr_lens[n++] = (socklen_t)ai->ai_addrlen;
        }
        p->n_addrs = n;
        p->addr_pref = 0;
        p->addr_state = n ? ADDR_OK : ADDR_FAILED;
        p->resolved_at_ms = fg_now_ms();
        /* Answered on the spot: the hosts file (no TTL). Later: a name server, whose TTL the
         * first refresh learns. */
        p->dns_name = !p->in_resolve_call;
        p->ttl_ms = p->dns_name ? UP_DNS_TTL_MIN_MS : UP_DNS_TTL_MS;
        metrics_counters()->dns_resolutions++;
    } else {
        p->addr_state = ADDR_FAILED;
        fg_log(FG_LOG_WARN, "upstream name lookup failed", "host", p->host, "error",
               evutil_gai_strerror(result), NULL);
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (!p->in_resolve_call)
        pool_dispatch_waiters(p);
}

/* Both answers of a refresh are in: install the new addresses, or keep the old ones. */
static void pool_refresh_done(up_pool_t *p)
{
    p->refreshing = false;
    p->resolved_at_ms = fg_now_ms();
    if (p->n_fresh == 0) {
        if (!p->refresh_failed)
            fg_log(FG_LOG_WARN, "upstream name refresh failed; keeping its addresses", "host",
                   p->host, NULL);
        p->refresh_failed = true;
        p->ttl_ms = UP_DNS_TTL_MIN_MS;
        return;
    }
    p->refresh_failed = false;
    bool same = p->n_fresh == p->n_addrs;
    for (int i = 0; same && i < p->n_fresh; i++)
        same = p->fresh_lens[i] == p->addr_lens[i] &&
               memcmp(&p->fresh[i], &p->addrs[i], p->fresh_lens[i]) == 0;
    if (!same) {
        memcpy(p->addrs, p->fresh, sizeof p->addrs);
        memcpy(p->addr_lens, p->fresh_lens, sizeof p->addr_lens);
        p->n_addrs = p->n_fresh;
        p->addr_pref = 0;
        p->addr_epoch++;
        /* Idle connections lead to where the name used to point (busy ones are closed when
         * released). */
        up_conn_t *c;
        while ((c = TAILQ_FIRST(&p->idle)))
            conn_free(c);
    }
    p->ttl_ms = ttl_bound_ms((uint64_t)p->fresh_ttl_s * 1000u);
    metrics_counters()->dns_resolutions++;
}

/* One of the refresh's two answers (A or AAAA); IPv4 addresses go first, as getaddrinfo
 * orders them here. A failed query reports type 0: `type` says which query it was. */
static void refresh_answer(up_pool_t *p, int result, char type, int count, int ttl,
                           void *addresses)
{
    if (type == DNS_IPv4_A)
        p->req_a = NULL;
    else
        p->req_aaaa = NULL;
    if (result == DNS_ERR_NONE && count > 0) {
        if ((uint32_t)ttl < p->fresh_ttl_s)
            p->fresh_ttl_s = (uint32_t)ttl;
        for (int i = 0; i < count && p->n_fresh < UP_MAX_ADDRS; i++) {
            struct sockaddr_storage ss;
            socklen_t len;
            memset(&ss, 0, sizeof ss);
            if (type == DNS_IPv4_A) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
                sin->sin_family = AF_INET;
                sin->sin_port = htons(p->port);
                memcpy(&sin->sin_addr, (const char *)addresses + 4 * i, 4);
                len = sizeof *sin;
            } else if (type == DNS_IPv6_AAAA) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(p->port);
                memcpy(&sin6->sin6_addr, (const char *)addresses + 16 * i, 16);
                len = sizeof *sin6;
            } else {
                break;
            }
            /* A and AAAA answers arrive in either order: keep IPv4 first. */
            int at = type == DNS_IPv4_A ? p->n_v4_fresh++ : p->n_fresh;
            memmove(&p->fresh[at + 1], &p->fresh[at], (size_t)(p->n_fresh - at) * sizeof ss);
            memmove(&p->fresh_lens[at + 1], &p->fresh_lens[at],
                    (size_t)(p->n_fresh - at) * sizeof len);
            p->fresh[at] = ss;
            p->fresh_lens[at] = len;
            p->n_fresh++;
        }
    }
    if (!p->req_a && !p->req_aaaa)
        pool_refresh_done(p);
}

static void on_refresh_a(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    (void)type;
    if (result != DNS_ERR_CANCEL && result != DNS_ERR_SHUTDOWN) /* else: shutdown, hands off */
        refresh_answer(arg, result, DNS_IPv4_A, count, ttl, addresses);
}

static void on_refresh_aaaa(int result, char type, int count, int ttl, void *addresses,
                            void *arg)
{
    (void)type;
    if (result != DNS_ERR_CANCEL && result != DNS_ERR_SHUTDOWN)
        refresh_answer(arg, result, DNS_IPv6_AAAA, count, ttl, addresses);
}

static int dns_base(void);

/* Re-resolve in the background; connections go on using the current addresses. Names from
 * the hosts file go through getaddrinfo again (it answers on the spot). */
static void pool_refresh(up_pool_t *p)
{
    if (p->refreshing || dns_base() < 0)
        return;
    if (!p->dns_name) {
        struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                        .ai_protocol = IPPROTO_TCP};
        char port[8];
        snprintf(port, sizeof port, "%u", (unsigned)p->port);
        p->in_resolve_call = true;
        p->dns_req = evdns_getaddrinfo(up.dns, p->host, port, &hints, on_resolved, p);
        p->in_resolve_call = false;
        if (p->addr_state != ADDR_OK) { /* the hosts file lost it: keep what we had */
            p->addr_state = ADDR_OK;
            p->resolved_at_ms = fg_now_ms();
            p->ttl_ms = UP_DNS_TTL_MIN_MS;
        }
        return;
    }
    p->refreshing = true;
    p->n_fresh = 0;
    p->n_v4_fresh = 0;
    p->fresh_ttl_s = UINT32_MAX;
    p->req_a = evdns_base_resolve_ipv4(up.dns, p->host, 0, on_refresh_a, p);
    p->req_aaaa = evdns_base_resolve_ipv6(up.dns, p->host, 0, on_refresh_aaaa, p);
    if (!p->req_a && !p->req_aaaa)
        pool_refresh_done(p);
}

static int dns_base(void)
{
    if (up.dns)
        return 0;
    if (up.resolv_conf) {
        up.dns = evdns_base_new(up.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!up.dns)
            return -ENOMEM;
        int rc = evdns_base_resolv_conf_parse(up.dns, DNS_OPTIONS_ALL, up.resolv_conf);
        if (rc != 0)
            fg_log(FG_LOG_ERROR, "cannot use the resolv.conf file", "file", up.resolv_conf, NULL);
        return 0;
    }
    /* Reads resolv.conf and the hosts file ("localhost" is answered from there). */
    up.dns = evdns_base_new(up.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!up.dns) {
        up.dns = evdns_base_new(up.base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (up.dns)
            evdns_base_load_hosts(up.dns, NULL);
    }
    return up.dns ? 0 : -ENOMEM;
}

static void pool_resolve(up_pool_t *p)
{
    if (dns_base() < 0) {
        p->addr_state = ADDR_FAILED;
        return;
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP};
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)p->port);
    p->addr_state = ADDR_RESOLVING;
    p->in_resolve_call = true;
    p->dns_req = evdns_getaddrinfo(up.dns, p->host, port, &hints, on_resolved, p);
    p->in_resolve_call = false;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_free(up_conn_t *c)
{
    if (c->state == UC_IDLE) {
        TAILQ_REMOVE(&c->pool->idle, c, link);
        if (--c->pool->n_idle == 0)
            TAILQ_REMOVE(&up.idle_pools, c->pool, idle_link);
    } else if (c->state == UC_RESOLVING) {
        TAILQ_REMOVE(&c->pool->waiters, c, link);
    }
    reader_release(&c->rd);
    if (c->bev) {
        tls_bev_close_notify(c->bev);
        bufferevent_free(c->bev); /* closes the socket (BEV_OPT_CLOSE_ON_FREE) */
    }
    free(c);
}

static void on_connect_event(struct bufferevent *bev, short what, void *arg)
{
    up_conn_t *c = arg;
    up_pool_t *p = c->pool;
    if ((what & BEV_EVENT_CONNECTED) && reader_bind(&c->rd, up.base, bev, 0, UP_READ_MAX) < 0)
        what = BEV_EVENT_ERROR; /* out of memory: reported as a failed connect */
    if (what & BEV_EVENT_CONNECTED) {
        c->state = UC_BUSY;
        c->addr_epoch = p->addr_epoch;
        p->addr_pref = c->addr_index;
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        c->cb(c, 0, c->arg);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    if (err == 0 || err == EAGAIN || err == EINPROGRESS)
        err = ECONNREFUSED;
    if (p->tls) {
        char port[8];
        snprintf(port, sizeof port, "%u", (unsigned)p->port);
        fg_log(FG_LOG_WARN, "upstream TLS connection failed", "host", p->host, "port", port,
               "error", tls_bev_error(bev), NULL);
        err = EPROTO;
    }
    bufferevent_free(c->bev);
    c->bev = NULL;
    /* Next address of a multi-address name ("localhost" is ::1 and 127.0.0.1). */
    if (c->attempts < p->n_addrs) {
        c->addr_index = (c->addr_index + 1) % p->n_addrs;
        int rc = conn_start(c);
        if (rc == 0)
            return;
        err = -rc;
    }
    conn_fail(c, -err);
}

/* https: libevent opens the socket, and reports BEV_EVENT_CONNECTED only once the TLS
 * handshake (and certificate verification) succeeded. The output is written by libevent, so
 * EV_WRITE stays enabled (see tls_bev_is_tls()). 0 or -errno. */
static int conn_start_tls(up_conn_t *c, const struct sockaddr *sa, int salen)
{
    up_pool_t *p = c->pool;
    if (!p->ssl_ctx)
        return -EPROTO; /* the context failed to build; logged when the pool was made */
    c->bev = tls_client_bev(p->ssl_ctx, up.base, p->host, &p->tls_session);
    if (!c->bev)
        return -ENOMEM;
    bufferevent_setcb(c->bev, NULL, NULL, on_connect_event, c);
    c->state = UC_CONNECTING;
    if (bufferevent_socket_connect(c->bev, sa, salen) < 0) {
        int err = errno ? errno : ECONNREFUSED;
        bufferevent_free(c->bev);
        c->bev = NULL;
        return -err;
    }
    int one = 1, fd = bufferevent_getfd(c->bev);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p->connects++;
    return 0;
}

/* Move past the addresses the SSRF guard refuses, from c->addr_index on (each counts as an
 * attempt). 0, or -EACCES when none is left. */
static int conn_skip_refused(up_conn_t *c)
{
    up_pool_t *p = c->pool;
    while (addr_check && addr_check((const struct sockaddr *)&p->addrs[c->addr_index],
                                    p->host) < 0) {
        if (++c->attempts >= p->n_addrs)
            return -EACCES;
        c->addr_index = (c->addr_index + 1) % p->n_addrs;
    }
    return 0;
}

/* Open a socket to the next address to try and start the handshake. 0 or -errno. */
static int conn_start(up_conn_t *c)
{
    up_pool_t *p = c->pool;
    if (conn_skip_refused(c) < 0)
        return -EACCES;
    const struct sockaddr *sa = (const struct sockaddr *)&p->addrs[c->addr_index];
    memcpy(&c->addr, sa, p->addr_lens[c->addr_index]);
    c->attempts++;
    if (p->tls)
        return conn_start_tls(c, sa, (int)p->addr_lens[c->addr_index]);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = bufferevent_socket_new(up.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        return -ENOMEM;
    }
    /* Writes are flushed by the owner directly (see proxy_bev_flush): keep libevent's write
     * event off except while connecting, which libevent arms by itself. */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_setcb(c->bev, NULL, NULL, on_connect_event, c);
    c->state = UC_CONNECTING;
    if (bufferevent_socket_connect(c->bev, sa, (int)p->addr_lens[c->addr_index]) < 0) {
        int err = errno ? errno : ECONNREFUSED;
        bufferevent_free(c->bev);
        c->bev = NULL;
        return -err;
    }
    p->connects++;
    return 0;
}

up_conn_t *upstream_connect(up_pool_t *p, up_ready_cb cb, void *arg)
{
    up_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->pool = p;
    c->cb = cb;
    c->arg = arg;
    if (p->addr_state == ADDR_OK && pool_addr_expired(p))
        pool_refresh(p); /* in the background: the current addresses stay in use */
    if (p->addr_state != ADDR_OK) {
        c->state = UC_RESOLVING;
        TAILQ_INSERT_TAIL(&p->waiters, c, link);
        if (p->addr_state == ADDR_RESOLVING)
            return c;
        pool_resolve(p);
        if (p->addr_state == ADDR_RESOLVING)
            return c;
        /* Answered synchronously (hosts file, cache) or failed at once: we are the only
         * waiter, since no lookup was in flight. */
        TAILQ_REMOVE(&p->waiters, c, link);
        if (p->addr_state != ADDR_OK) {
            free(c);
            errno = EHOSTUNREACH;
            return NULL;
        }
    }
    c->addr_index = p->addr_pref < p->n_addrs ? p->addr_pref : 0;
    int rc = conn_start(c);
    if (rc < 0) {
        free(c);
        errno = -rc;
        return NULL;
    }
    return c;
}

void upstream_set_addr_check(up_addr_check_fn fn)
{
    addr_check = fn;
}

void upstream_recheck_idle(void)
{
    if (!up.base || !addr_check)
        return;
    up_pool_t *p = TAILQ_FIRST(&up.idle_pools);
    while (p) {
        up_pool_t *next = TAILQ_NEXT(p, idle_link); /* p may leave the list below */
        up_conn_t *c = TAILQ_FIRST(&p->idle);
        while (c) {
            up_conn_t *cn = TAILQ_NEXT(c, link);
            if (addr_check((const struct sockaddr *)&c->addr, p->host) < 0)
                conn_free(c);
            c = cn;
        }
        p = next;
    }
}

/* ---- the idle pool --------------------------------------------------------------------- */

static void sweep_arm(void)
{
    if (up.sweep_armed)
        return;
    struct timeval tv = {UP_SWEEP_INTERVAL_MS / 1000, (UP_SWEEP_INTERVAL_MS % 1000) * 1000};
    evtimer_add(up.sweep, &tv);
    up.sweep_armed = true;
}

/* Close the connections idle for longer than their pool's keepalive.idleTimeout: the tail of
 * each LIFO list. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    up.sweep_armed = false;
    uint64_t now = fg_now_ms();
    up_pool_t *p = TAILQ_FIRST(&up.idle_pools);
    while (p) {
        up_pool_t *next = TAILQ_NEXT(p, idle_link); /* p may leave the list below */
        up_conn_t *c;
        while ((c = TAILQ_LAST(&p->idle, conn_list)) &&
               now - c->idle_since_ms >= p->idle_timeout_ms)
            conn_free(c);
        p = next;
    }
    if (!TAILQ_EMPTY(&up.idle_pools))
        sweep_arm();
}

/* An idle connection must stay silent: any byte is a protocol error, EOF or an error ends it.
 * Either way it is closed. */
static void on_idle_read(struct bufferevent *bev, void *arg)
{
    conn_free(arg);
}

static void on_idle_event(struct bufferevent *bev, short what, void *arg)
{
    conn_free(arg);
}

up_conn_t *upstream_take_idle(up_pool_t *p)
{
    if (!p->literal && p->addr_state == ADDR_OK && pool_addr_expired(p))
        pool_refresh(p); /* reused connections must not hide that the name expired */
    up_conn_t *c = TAILQ_FIRST(&p->idle);
    if (!c)
        return NULL;
    TAILQ_REMOVE(&p->idle, c, link);
    if (--p->n_idle == 0)
        TAILQ_REMOVE(&up.idle_pools, p, idle_link);
    c->state = UC_BUSY;
    c->reused = true;
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    return c;
}

void upstream_release(up_conn_t *c, bool reusable)
{
    if (!c)
        return;
    up_pool_t *p = c->pool;
    if (c->state != UC_BUSY || !reusable || p->n_idle >= p->max_idle ||
        c->addr_epoch != p->addr_epoch ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) != 0 ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) != 0) {
        conn_free(c);
        return;
    }
    c->state = UC_IDLE;
    c->idle_since_ms = fg_now_ms();
    /* Read stays enabled (it was, for the response): toggling it would cost epoll_ctl. Each
     * enable/disable call costs an event_add/event_del even when it changes nothing, so
     * only the changes are made. */
    bufferevent_setcb(c->bev, on_idle_read, NULL, on_idle_event, c);
    if (!p->tls && (bufferevent_get_enabled(c->bev) & EV_WRITE))
        bufferevent_disable(c->bev, EV_WRITE); /* output is empty: nothing to cancel */
    reader_enable(&c->rd);
    TAILQ_INSERT_HEAD(&p->idle, c, link);
    if (p->n_idle++ == 0)
        TAILQ_INSERT_TAIL(&up.idle_pools, p, idle_link);
    sweep_arm();
}

void upstream_shutdown(void)
{
    if (!up.base)
        return;
    for (size_t i = 0; i < up.n_buckets; i++) {
        up_pool_t *p = up.buckets[i];
        while (p) {
            up_pool_t *next = p->hash_next;
            up_conn_t *c;
            while ((c = TAILQ_FIRST(&p->idle)))
                conn_free(c);
            while ((c = TAILQ_FIRST(&p->waiters)))
                conn_free(c); /* owners were released first; nothing to tell */
            if (p->dns_req || p->req_a || p->req_aaaa) {
                /* The cancellation is reported through a deferred callback that still
                 * points at the pool: leave this one pool allocated rather than risk it. */
                if (p->dns_req)
                    evdns_getaddrinfo_cancel(p->dns_req);
                if (p->req_a)
                    evdns_cancel_request(up.dns, p->req_a);
                if (p->req_aaaa)
                    evdns_cancel_request(up.dns, p->req_aaaa);
                p = next;
                continue;
            }
            if (p->tls_session)
                SSL_SESSION_free(p->tls_session);
            free(p->host);
            free(p->host_header);
            free(p);
            p = next;
        }
    }
    free(up.buckets);
    if (up.sweep)
        event_free(up.sweep);
    if (up.dns)
        evdns_base_free(up.dns, 0);
    memset(&up, 0, sizeof up);
    tls_client_shutdown();
}

/* ---- metrics (issue 7) ------------------------------------------------------------------ */

void upstream_pool_totals(size_t *pools, size_t *idle)
{
    size_t n_idle = 0;
    up_pool_t *p;
    TAILQ_FOREACH(p, &up.idle_pools, idle_link)
        n_idle += p->n_idle;
    *pools = up.n_pools;
    *idle = n_idle;
}
