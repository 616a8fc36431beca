/* shm.c - shared regions and the pid spinlock (see shm.h). */
#include "shm.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

void *shm_map(size_t len, bool shared)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void shm_unmap(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

static bool pid_gone(uint32_t pid)
{
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

bool shm_lock(shm_lock_t *l)
{
    uint32_t me = (uint32_t)getpid();
    for (unsigned n = 1;; n++) {
        uint32_t free_word = 0;
        if (atomic_compare_exchange_weak_explicit(l, &free_word, me, memory_order_acquire,
                                                  memory_order_relaxed))
            return false;
        if (n % SHM_LOCK_SPINS != 0)
            continue;
        /* Our own pid as the holder is a dead worker's, reused by us: we never lock twice. */
        uint32_t owner = atomic_load_explicit(l, memory_order_relaxed);
        if (owner != 0 && (owner == me || pid_gone(owner)) &&
            atomic_compare_exchange_strong_explicit(l, &owner, me, memory_order_acquire,
                                                    memory_order_relaxed))
            return true;
        sched_yield();
    }
}

void shm_unlock(shm_lock_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}
