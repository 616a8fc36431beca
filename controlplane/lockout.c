/* lockout.c - per-address counting of wrong admin tokens (see lockout.h). */
#include "lockout.h"

#include <netinet/in.h>
#include <string.h>

static uint32_t max_failures(const lockout_t *l)
{
    return l->max_failures ? l->max_failures : LOCKOUT_MAX_FAILURES;
}

static uint32_t window_ms(const lockout_t *l)
{
    return l->window_ms ? l->window_ms : LOCKOUT_WINDOW_MS;
}

void lockout_key_from(const struct sockaddr *sa, lockout_key_t *out)
{
    memset(out, 0, sizeof *out);
    if (sa && sa->sa_family == AF_INET) {
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, sizeof v4mapped) == 0)
            memcpy(out->b, a, 16);
        else
            memcpy(out->b, a, 8); /* the /64 */
    }
}

static lockout_entry_t *find(const lockout_t *l, const lockout_key_t *key)
{
    for (size_t i = 0; i < LOCKOUT_TABLE_SIZE; i++)
        if (l->entries[i].failures && memcmp(&l->entries[i].key, key, sizeof *key) == 0)
            return (lockout_entry_t *)&l->entries[i];
    return NULL;
}

static bool expired(const lockout_t *l, const lockout_entry_t *e, uint64_t now_ms)
{
    return now_ms - e->window_start_ms >= window_ms(l);
}

uint32_t lockout_blocked(const lockout_t *l, const lockout_key_t *key, uint64_t now_ms)
{
    const lockout_entry_t *e = find(l, key);
    if (!e || e->failures < max_failures(l) || expired(l, e, now_ms))
        return 0;
    uint64_t left = e->window_start_ms + window_ms(l) - now_ms;
    return (uint32_t)((left + 999) / 1000);
}

/* A free or expired slot, else the one whose window started first. */
static lockout_entry_t *victim(lockout_t *l, uint64_t now_ms)
{
    lockout_entry_t *oldest = &l->entries[0];
    for (size_t i = 0; i < LOCKOUT_TABLE_SIZE; i++) {
        lockout_entry_t *e = &l->entries[i];
        if (!e->failures || expired(l, e, now_ms))
            return e;
        if (e->window_start_ms < oldest->window_start_ms)
            oldest = e;
    }
    return oldest;
}

uint32_t lockout_fail(lockout_t *l, const lockout_key_t *key, uint64_t now_ms)
{
    lockout_entry_t *e = find(l, key);
    if (e && expired(l, e, now_ms))
        e->failures = 0; /* a new window */
    if (!e || !e->failures) {
        if (!e)
            e = victim(l, now_ms);
        e->key = *key;
        e->window_start_ms = now_ms;
        e->failures = 0;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    return e->failures;
}

void lockout_success(lockout_t *l, const lockout_key_t *key)
{
    lockout_entry_t *e = find(l, key);
    if (e)
        memset(e, 0, sizeof *e);
}
