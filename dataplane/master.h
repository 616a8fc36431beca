/* master.h - the data plane's master process: forks --workers N workers and keeps them
 * running.
 *
 * Each worker is a complete, single-threaded data plane (its own event loop, listeners bound
 * with SO_REUSEPORT, its own subscription to the control plane). The master holds no sockets
 * and no event loop; it only forks, reaps, restarts and forwards signals:
 *
 * - start-up: every worker must report ready (through `ready_fd`) before the master calls
 *   itself started; a worker that exits before reporting ready during start-up fails the
 *   whole start (exit 1), so a bad address or certificate is an error, not a restart loop;
 * - a worker that dies later is restarted at once, unless its slot restarted
 *   MASTER_RESTART_BURST times within MASTER_RESTART_WINDOW_MS: then the restart waits
 *   MASTER_RESTART_DELAY_MS, so a worker that crashes at start cannot make the master spin;
 * - SIGTERM/SIGINT are forwarded to every worker (each drains its in-flight requests); the
 *   master exits 0 once all have exited, killing those still alive after
 *   `drain_timeout_ms` + MASTER_KILL_GRACE_MS. A second signal is forwarded again (a worker
 *   exits at once on a second signal);
 * - SIGHUP re-opens the master's log file (fg_log_reopen) and is forwarded to the workers.
 *
 * Workers die with the master (PR_SET_PDEATHSIG = SIGTERM), so killing the master with
 * SIGKILL leaves no orphan serving traffic after its drain. */
#ifndef DP_MASTER_H
#define DP_MASTER_H

#include <stdint.h>

#define MASTER_WORKERS_MAX 256
#define MASTER_RESTART_BURST 5          /* restarts of one slot allowed within the window... */
#define MASTER_RESTART_WINDOW_MS 10000u /* ...before restarts are delayed */
#define MASTER_RESTART_DELAY_MS 1000u   /* the delay then */
#define MASTER_START_TIMEOUT_MS 30000u  /* longest wait for the first workers to be ready */
#define MASTER_KILL_GRACE_MS 2000u      /* past the drain timeout, stragglers get SIGKILL */

/** Runs in the forked worker: `index` 0..N-1; write one byte to `ready_fd` (then close it)
 *  once serving. Returns the worker's exit code. */
typedef int (*master_worker_fn)(unsigned index, int ready_fd, void *arg);

typedef struct master_conf {
    unsigned workers;          /* 1..MASTER_WORKERS_MAX */
    master_worker_fn run;
    void *arg;
    uint32_t drain_timeout_ms; /* the workers' drain timeout */
} master_conf_t;

/** Fork the workers and supervise them until shut down. Returns the master's exit code: 0
 *  after a signalled shutdown, 1 when the workers could not be started. */
int master_run(const master_conf_t *conf);

#endif
