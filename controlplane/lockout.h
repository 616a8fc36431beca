/* lockout.h - failed admin-token attempts per client address, and the lockout that follows.
 *
 * A client address that presents a wrong bearer token LOCKOUT_MAX_FAILURES times within
 * LOCKOUT_WINDOW_MS is refused (429, Retry-After) until that window ends, whatever token it
 * sends meanwhile, so guessing is capped at LOCKOUT_MAX_FAILURES tries per window per
 * address. IPv6 clients are counted per /64 (one host usually owns a whole /64), IPv4-mapped
 * IPv6 as IPv4. Memory is bounded: a fixed table of LOCKOUT_TABLE_SIZE addresses; when it is
 * full the entry whose window started first is forgotten. Lookups scan the table: a few
 * microseconds, on the admin plane only. Not thread-safe: the admin API uses it from its one
 * thread. */
#ifndef CTL_LOCKOUT_H
#define CTL_LOCKOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define LOCKOUT_MAX_FAILURES 10u    /* wrong tokens from one address per window ... */
#define LOCKOUT_WINDOW_MS 60000u    /* ... before it is refused until the window ends */
#define LOCKOUT_TABLE_SIZE 1024u    /* client addresses tracked at once */
#define LOCKOUT_FAILURES_MAX 1000u  /* largest --admin-lockout-failures */
#define LOCKOUT_WINDOW_MIN_MS 1000u /* --admin-lockout-window-ms bounds: 1 s ... */
#define LOCKOUT_WINDOW_MAX_MS 86400000u /* ... 1 day */

/** A client address as counted: 16 bytes (IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64). */
typedef struct lockout_key {
    uint8_t b[16];
} lockout_key_t;

typedef struct lockout_entry {
    lockout_key_t key;
    uint64_t window_start_ms; /* monotonic; first failure of the current window */
    uint32_t failures;        /* in the current window; 0 = free slot */
} lockout_entry_t;

typedef struct lockout {
    lockout_entry_t entries[LOCKOUT_TABLE_SIZE];
    uint32_t max_failures; /* 0 = LOCKOUT_MAX_FAILURES */
    uint32_t window_ms;    /* 0 = LOCKOUT_WINDOW_MS */
} lockout_t;

/** The key for a client socket address (AF_INET or AF_INET6; anything else is all zeros,
 *  one shared key). */
void lockout_key_from(const struct sockaddr *sa, lockout_key_t *out);

/** 0 when `key` may try a token now, else the whole seconds until it may (>= 1). */
uint32_t lockout_blocked(const lockout_t *l, const lockout_key_t *key, uint64_t now_ms);

/** Count a wrong token from `key`; returns the failures in its current window. */
uint32_t lockout_fail(lockout_t *l, const lockout_key_t *key, uint64_t now_ms);

/** A right token from `key`: forget its failures. */
void lockout_success(lockout_t *l, const lockout_key_t *key);

#endif
