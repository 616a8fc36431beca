/* breaker.c - circuit breaker state machine (see breaker.h). */
#include "breaker.h"

#include <string.h>

#include "balancer.h"
#include "metrics.h"

void breaker_reset(breaker_t *b)
{
    memset(b, 0, sizeof *b);
    b->state = DP_BREAKER_CLOSED;
}

static void enter(breaker_t *b, int state, uint64_t now)
{
    b->state = state;
    b->changed_ms = now;
    b->trials = 0;
    b->successes = 0;
    if (state == DP_BREAKER_CLOSED) {
        /* A closed breaker starts over: the failures that opened it are history. */
        memset(b->epoch, 0, sizeof b->epoch);
        memset(b->total, 0, sizeof b->total);
        memset(b->failed, 0, sizeof b->failed);
    }
    metrics_counters()->breaker_transitions[state]++;
}

bool breaker_admits(breaker_t *b, const fg_breaker_conf_t *conf, uint64_t now)
{
    if (!conf->enabled || b->state == DP_BREAKER_CLOSED)
        return true;
    if (b->state == DP_BREAKER_OPEN) {
        if (now - b->changed_ms < conf->open_duration_ms)
            return false;
        enter(b, DP_BREAKER_HALF_OPEN, now);
    }
    if (b->trials >= conf->half_open_requests && now - b->changed_ms >= conf->open_duration_ms) {
        b->trials = 0; /* lost trials (clients that left): let new ones through */
        b->changed_ms = now;
    }
    return b->trials < conf->half_open_requests;
}

void breaker_take(breaker_t *b, const fg_breaker_conf_t *conf)
{
    if (conf->enabled && b->state == DP_BREAKER_HALF_OPEN)
        b->trials++;
}

void breaker_record(breaker_t *b, const fg_breaker_conf_t *conf, bool ok, uint64_t now)
{
    if (!conf->enabled)
        return;
    if (b->state == DP_BREAKER_HALF_OPEN) {
        if (!ok) {
            enter(b, DP_BREAKER_OPEN, now);
        } else if (++b->successes >= conf->success_threshold) {
            enter(b, DP_BREAKER_CLOSED, now);
        } else if (b->trials > 0) {
            b->trials--; /* this trial is over: room for the next */
        }
        return;
    }
    if (b->state == DP_BREAKER_OPEN)
        return; /* a request let through before it opened: already judged */
    uint64_t width = conf->window_ms / BREAKER_BUCKETS ? conf->window_ms / BREAKER_BUCKETS : 1;
    uint64_t ep = now / width + 1; /* +1: epoch 0 marks an unused bucket */
    size_t i = (size_t)(ep % BREAKER_BUCKETS);
    if (b->epoch[i] != ep) {
        b->epoch[i] = ep;
        b->total[i] = 0;
        b->failed[i] = 0;
    }
    b->total[i]++;
    if (!ok)
        b->failed[i]++;
    if (ok)
        return;
    uint64_t total = 0, failed = 0;
    for (size_t k = 0; k < BREAKER_BUCKETS; k++) {
        if (b->epoch[k] + BREAKER_BUCKETS > ep) { /* within the window */
            total += b->total[k];
            failed += b->failed[k];
        }
    }
    if (total >= conf->min_requests && failed * 100 >= (uint64_t)conf->failure_threshold * total)
        enter(b, DP_BREAKER_OPEN, now);
}

typedef struct foreach_ctx {
    void (*fn)(const char *, const char *, int, void *);
    void *arg;
} foreach_ctx_t;

static void each_target(const char *upstream, const char *target, bal_target_t *t, void *arg)
{
    foreach_ctx_t *ctx = arg;
    ctx->fn(upstream, target, t->breaker.state, ctx->arg);
}

void breaker_foreach(void (*fn)(const char *upstream, const char *target, int state, void *arg),
                     void *arg)
{
    foreach_ctx_t ctx = {fn, arg};
    balancer_foreach_target(each_target, &ctx);
}
