/* upstream.h - connections to upstream targets: per-target keep-alive pools, connect, DNS.
 *
 * A pool exists per target address (scheme, host, port) and connection settings (the https
 * client context, the upstream's keepalive limits) for the life of the process, not per
 * generation: two generations, or two upstreams naming the same target the same way, share its
 * idle connections, and a config swap never drops them. A pool holds at most keepalive.maxIdle
 * idle connections, most recently used first; an idle connection that becomes readable (an
 * unsolicited byte or the peer's FIN) or stays idle for keepalive.idleTimeout is closed.
 *
 * https targets: connections are TLS bufferevents (tls.h); the connect callback runs once the
 * handshake succeeded, with the certificate verified against the upstream's caFile and the
 * URL's host unless tlsVerify is false. A failed handshake is a failed connect (-EPROTO).
 *
 * Addresses: IP literals are parsed once when the pool is created; names are resolved with
 * evdns (never the blocking resolver). The first lookup goes through evdns_getaddrinfo (hosts
 * file, search domains, A and AAAA); connections that need an address wait in the pool until
 * it answers. A name answered from the hosts file is kept UP_DNS_TTL_MS; one answered by a
 * name server is re-resolved on the TTL of its records (A and AAAA queries, whose answers
 * carry it; the shortest TTL, bounded by UP_DNS_TTL_MIN_MS..UP_DNS_TTL_MAX_MS; the first
 * answer's TTL is unknown, so the first refresh comes after UP_DNS_TTL_MIN_MS). A refresh runs
 * in the background when a connect finds the addresses expired: connections keep using the old
 * addresses meanwhile, and a failed refresh keeps them (retried after UP_DNS_TTL_MIN_MS).
 * A connect tries each resolved address in turn before it reports failure, and the pool
 * remembers the address that worked.
 *
 * Ownership: a connection handed out by upstream_take_idle() or upstream_connect() belongs to
 * the caller until upstream_release(). Its bufferevent is the caller's to read and write (and
 * to set callbacks on) while it owns it. Connect callbacks are never invoked from inside
 * upstream_connect(). */
#ifndef DP_UPSTREAM_H
#define DP_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "reader.h"

#include "fg_config.h"

#define UP_DNS_TTL_MS 30000u              /* hosts-file names are re-resolved after this */
#define UP_DNS_TTL_MIN_MS 1000u           /* a DNS answer is kept at least this long */
#define UP_DNS_TTL_MAX_MS 300000u         /* ...and at most this long, whatever its TTL */
#define UP_MAX_ADDRS 8                    /* resolved addresses kept per target */
#define UP_READ_MAX (64 * 1024)           /* bytes read from an upstream per wakeup */

typedef struct up_pool up_pool_t;
typedef struct up_conn up_conn_t;

/** Connect outcome: err == 0, the connection is established and belongs to the caller; err < 0
 *  (negative errno), the attempt failed and `c` is already freed: forget it. */
typedef void (*up_ready_cb)(up_conn_t *c, int err, void *arg);

/** Bind the module to the process's event loop. Idempotent. 0 or -ENOMEM. */
int upstream_init(struct event_base *base);

/** Read name servers, search domains and the hosts file from `path` (resolv.conf format)
 *  instead of /etc/resolv.conf. Call before the first lookup; `path` must outlive the
 *  module (flexgate-dp --resolv-conf). */
void upstream_set_resolv_conf(const char *path);

/** Close every idle connection, cancel lookups, free every pool. Connections still owned by
 *  callers must have been released first. */
void upstream_shutdown(void);

/** The pool for target `url` of upstream `u` (its TLS settings and keepalive limits), created
 *  on first use. NULL on ENOMEM. */
up_pool_t *upstream_pool_get(const fg_upstream_t *u, const fg_url_t *url);

/** The most recently used idle connection of `p`, or NULL. It may have been closed by the peer
 *  a moment ago without the loop having noticed yet: callers retry such failures once. */
up_conn_t *upstream_take_idle(up_pool_t *p);

/** Start a new connection; `cb` runs once, later, unless the connection is released first.
 *  NULL with errno set when it cannot even be started (ENOMEM, no socket). */
up_conn_t *upstream_connect(up_pool_t *p, up_ready_cb cb, void *arg);

/** Give a connection back. `reusable`: the last exchange ended cleanly at a message boundary
 *  with nothing left in either buffer, so it may be pooled; otherwise (or when the pool is full
 *  or the loop is shutting down) it is closed. Releasing a connection still connecting or
 *  waiting for DNS cancels it. NULL is accepted. */
void upstream_release(up_conn_t *c, bool reusable);

/** The connection's bufferevent (NULL while it is still resolving). */
struct bufferevent *upstream_bev(const up_conn_t *c);

/** The reader of a connected connection's socket (reader.h): the owner enables and disables
 *  reading through it, never through the bufferevent. */
dp_reader_t *upstream_reader(up_conn_t *c);

/** The Host header value for the pool's target ("host", "host:port", "[v6]:port"). */
const char *upstream_host_header(const up_pool_t *p, size_t *len);

/** Decides whether an address may be connected to: 0, or a negative errno (-EACCES) to skip
 *  it. `host` is the target's host as configured. */
typedef int (*up_addr_check_fn)(const struct sockaddr *sa, const char *host);

/** Install the check every connect runs on each address before opening a socket (the SSRF
 *  guard, guard.c); an address it refuses is skipped, and a connect whose every address is
 *  refused fails with -EACCES. NULL removes it. */
void upstream_set_addr_check(up_addr_check_fn fn);

/** Run the check again on every idle pooled connection and close those it now refuses: call
 *  after the policy changed (a new generation). No-op before upstream_init(). */
void upstream_recheck_idle(void);

/** Idle connections currently pooled for `p` (tests, metrics). */
size_t upstream_idle_count(const up_pool_t *p);

/** Connections opened for `p` since start (tests, metrics). */
uint64_t upstream_connects(const up_pool_t *p);

/** Pools that exist and idle connections across them, for /metrics (issue 7). */
void upstream_pool_totals(size_t *pools, size_t *idle);

#endif
