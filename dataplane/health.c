/* health.c - passive outlier ejection and active HTTP checks (see health.h).
 *
 * An active check is a tiny HTTP/1.1 client of its own: one request with `Connection: close`,
 * and only the status line of the answer is read. It borrows upstream.c's connect (DNS, TLS,
 * address fallback) so a check reaches the target exactly the way requests do. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "balancer.h"
#include "fg_log.h"
#include "fg_time.h"
#include "metrics.h"
#include "upstream.h"

struct hc_probe {
    bal_target_t *t;          /* the target it checks (the table outlives the probe) */
    struct event *timer;      /* next check, or the running check's timeout; owned */
    up_pool_t *pool;          /* the target's pool (process lifetime) */
    up_conn_t *conn;          /* the running check's connection, owned while set */
    char *path;               /* owned copy of healthCheck.path */
    uint32_t interval_ms, timeout_ms, unhealthy, healthy;
    bool in_flight;
};

static struct event_base *hc_base;

void health_init(struct event_base *base)
{
    hc_base = base;
}

/* ---- passive --------------------------------------------------------------------------- */

bool health_up(const health_t *h, uint64_t now)
{
    return !h->active_down && now >= h->ejected_until_ms;
}

bool health_record(health_t *h, const fg_health_check_t *conf, bool ok, uint64_t now)
{
    if (conf->consecutive_failures == 0)
        return false;
    if (ok) {
        h->consecutive_failures = 0;
        if (h->ejections && now >= h->ejected_until_ms + conf->eject_ms)
            h->ejections = 0;
        return false;
    }
    if (now < h->ejected_until_ms)
        return false; /* an attempt that started before the ejection */
    if (++h->consecutive_failures < conf->consecutive_failures)
        return false;
    uint32_t factor = 1;
    for (uint32_t i = 0; i < h->ejections && factor < HEALTH_EJECT_MAX_FACTOR; i++)
        factor *= 2;
    h->ejected_until_ms = now + (uint64_t)conf->eject_ms * factor;
    h->ejections++;
    h->consecutive_failures = conf->consecutive_failures - 1; /* probation once back */
    metrics_counters()->health_transitions++;
    return true;
}

/* ---- active ---------------------------------------------------------------------------- */

static void on_probe_timer(evutil_socket_t fd, short what, void *arg);

static void timer_in(struct event *ev, uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

static void probe_release_conn(struct hc_probe *p)
{
    if (!p->conn)
        return;
    struct bufferevent *bev = upstream_bev(p->conn);
    if (bev)
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    upstream_release(p->conn, false);
    p->conn = NULL;
}

static void probe_result(struct hc_probe *p, bool ok)
{
    health_t *h = &p->t->health;
    probe_release_conn(p);
    p->in_flight = false;
    bool changed = false;
    if (ok) {
        h->checks_failed = 0;
        if (++h->checks_ok >= p->healthy && h->active_down) {
            h->active_down = false;
            changed = true;
        }
    } else {
        h->checks_ok = 0;
        if (++h->checks_failed >= p->unhealthy && !h->active_down) {
            h->active_down = true;
            changed = true;
        }
    }
    if (changed) {
        metrics_counters()->health_transitions++;
        fg_log(ok ? FG_LOG_INFO : FG_LOG_WARN,
               ok ? "health check: target up" : "health check: target down", "upstream",
               p->t->upstream, "target", p->t->url, NULL);
    }
    timer_in(p->timer, p->interval_ms);
}

/* 2xx and 3xx pass: "HTTP/1.1 200 ..." */
static void on_probe_read(struct bufferevent *bev, void *arg)
{
    struct hc_probe *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[HEALTH_STATUS_LINE_MAX];
    size_t n = evbuffer_get_length(in);
    if (n > sizeof line - 1)
        n = sizeof line - 1;
    evbuffer_copyout(in, line, n);
    line[n] = '\0';
    if (!strstr(line, "\r\n")) {
        if (n == sizeof line - 1)
            probe_result(p, false);
        return;
    }
    int status = 0;
    bool ok = strncmp(line, "HTTP/1.", 7) == 0 && sscanf(line + 8, " %3d", &status) == 1 &&
              status >= 200 && status < 400;
    probe_result(p, ok);
}

static void on_probe_event(struct bufferevent *bev, short what, void *arg)
{
    probe_result(arg, false); /* closed or failed before a status line */
}

static void on_probe_connected(up_conn_t *c, int err, void *arg)
{
    struct hc_probe *p = arg;
    if (err < 0) {
        p->conn = NULL; /* freed by upstream.c */
        probe_result(p, false);
        return;
    }
    size_t hl;
    const char *host = upstream_host_header(p->pool, &hl);
    struct bufferevent *bev = upstream_bev(c);
    bufferevent_setcb(bev, on_probe_read, NULL, on_probe_event, p);
    if (evbuffer_add_printf(bufferevent_get_output(bev),
                            "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: flexgate-health\r\n"
                            "Connection: close\r\n\r\n",
                            p->path, (int)hl, host) < 0) {
        probe_result(p, false);
        return;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hc_probe *p = arg;
    if (p->in_flight) { /* the check's timeout */
        probe_result(p, false);
        return;
    }
    p->in_flight = true;
    timer_in(p->timer, p->timeout_ms);
    p->conn = upstream_connect(p->pool, on_probe_connected, p);
    if (!p->conn) {
        evtimer_del(p->timer);
        probe_result(p, false);
    }
}

void health_stop(bal_target_t *t)
{
    struct hc_probe *p = t->health.probe;
    if (!p)
        return;
    probe_release_conn(p);
    event_free(p->timer);
    free(p->path);
    free(p);
    t->health.probe = NULL;
    t->health.active_down = false; /* nobody checks it any more: only passive health counts */
    t->health.checks_ok = t->health.checks_failed = 0;
}

int health_configure(bal_target_t *t, const fg_upstream_t *u, const fg_target_t *target)
{
    const fg_health_check_t *hc = &u->health_check;
    if (!hc->enabled || !hc_base) {
        health_stop(t);
        return 0;
    }
    struct hc_probe *p = t->health.probe;
    const char *path = hc->path ? hc->path : FG_DEFAULT_HC_PATH;
    char *copy = strdup(path); /* owned by the probe */
    up_pool_t *pool = upstream_pool_get(u, &target->parsed);
    if (!copy || !pool) {
        free(copy);
        return -ENOMEM;
    }
    if (!p) {
        p = calloc(1, sizeof *p); /* owned by t->health until health_stop */
        if (!p || !(p->timer = evtimer_new(hc_base, on_probe_timer, p))) {
            free(p);
            free(copy);
            return -ENOMEM;
        }
        p->t = t;
        t->health.probe = p;
        /* First check within the first interval, spread by target: checks of many targets
         * (and of many workers) do not all fire together, then or later. */
        uint32_t spread = (uint32_t)(((uintptr_t)t >> 4) * 2654435761u ^ (uint32_t)fg_now_ms());
        timer_in(p->timer, spread % (hc->interval_ms + 1));
    }
    free(p->path);
    p->path = copy;
    if (p->pool != pool && p->in_flight) {
        /* A check running through the old pool says nothing about the new settings: drop
         * it and check again now, rather than count its timeout as a failure. */
        probe_release_conn(p);
        p->in_flight = false;
        timer_in(p->timer, 0);
    }
    p->pool = pool;
    p->interval_ms = hc->interval_ms;
    p->timeout_ms = hc->timeout_ms;
    p->unhealthy = hc->unhealthy_threshold;
    p->healthy = hc->healthy_threshold;
    return 0;
}

typedef struct foreach_ctx {
    void (*fn)(const char *, const char *, bool, void *);
    void *arg;
    uint64_t now;
} foreach_ctx_t;

static void each_target(const char *upstream, const char *target, bal_target_t *t, void *arg)
{
    foreach_ctx_t *ctx = arg;
    ctx->fn(upstream, target, health_up(&t->health, ctx->now), ctx->arg);
}

void health_foreach(void (*fn)(const char *upstream, const char *target, bool up, void *arg),
                    void *arg)
{
    foreach_ctx_t ctx = {fn, arg, fg_now_ms()};
    balancer_foreach_target(each_target, &ctx);
}
