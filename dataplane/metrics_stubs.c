/* metrics_stubs.c - TEMPORARY stand-ins, removed at merge: the traffic branch defines
 * breaker_foreach/health_foreach and the ratelimit branch ratelimit_redis_state. They exist
 * here only so the observe branch links on its own: no breakers, no health checks, Redis
 * disabled. */
#include <stdbool.h>
#include <stddef.h>

void breaker_foreach(void (*fn)(const char *upstream, const char *target, int state, void *arg),
                     void *arg);
void health_foreach(void (*fn)(const char *upstream, const char *target, bool up, void *arg),
                    void *arg);
const char *ratelimit_redis_state(void);

void breaker_foreach(void (*fn)(const char *upstream, const char *target, int state, void *arg),
                     void *arg)
{
    (void)fn, (void)arg;
}

void health_foreach(void (*fn)(const char *upstream, const char *target, bool up, void *arg),
                    void *arg)
{
    (void)fn, (void)arg;
}

const char *ratelimit_redis_state(void)
{
    return "disabled";
}
