/* shm.h - memory the workers of one data plane share, and the lock that guards it.
 *
 * The master maps a region before it forks (shm_map with shared = true), so every worker, and
 * every worker it restarts later, sees the same pages; structures placed there link by index,
 * never by pointer. A single process maps the same layout privately and pays nothing else.
 * Regions are MAP_NORESERVE: address space is reserved up front and pages are used as they
 * are touched.
 *
 * The lock is a 32-bit word holding its holder's pid: a spinlock for critical sections of a
 * few hundred instructions (a rate-limit decision, a replay-cache insert). A worker killed
 * while holding it must not stall the others, so a waiter that finds the holder's pid gone
 * takes the lock over and says so: the caller then repairs or empties what the dead holder
 * may have left half-updated. */
#ifndef DP_SHM_H
#define DP_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_LOCK_SPINS 256 /* busy tries before yielding the CPU and checking the holder */

typedef _Atomic uint32_t shm_lock_t; /* 0 = free, else the holder's pid */

/** An anonymous region of `len` bytes, zeroed: shared with processes forked after this call,
 *  or this process's own. NULL with errno set. Unmap with shm_unmap. */
void *shm_map(size_t len, bool shared);

/** Give a region back (NULL is a no-op). */
void shm_unmap(void *p, size_t len);

/** Take the lock. True when it was taken over from a holder that died holding it. */
bool shm_lock(shm_lock_t *l);

/** Release the lock. */
void shm_unlock(shm_lock_t *l);

#endif
