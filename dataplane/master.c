/* master.c - fork, supervise, restart and signal the data plane's workers (see master.h).
 *
 * The master is deliberately tiny: no event loop and no sockets of its own, so there is
 * nothing for it to share with a worker by accident. Signals are blocked and read from a
 * signalfd; one poll() waits for signals, worker readiness pipes and the next timer (a delayed
 * restart or the kill deadline), so the master never spins and never sleeps blindly.
 *
 * Why not bind in the master and pass the sockets down: with SO_REUSEPORT each worker has its
 * own accept queue, which the kernel balances (nginx's `reuseport`); a restarted worker simply
 * binds again. The price is that connections queued on a worker that crashes are reset. */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fg_log.h"
#include "fg_time.h"

typedef struct worker_slot {
    pid_t pid;                 /* 0 = not running */
    int ready_fd;              /* read end of the readiness pipe while starting, else -1 */
    bool ready;                /* has reported ready since its last fork */
    uint64_t restart_at_ms;    /* a delayed restart is due (0 = none) */
    uint64_t window_start_ms;  /* restart rate limit: the current window */
    unsigned window_restarts;
} worker_slot_t;

typedef struct master {
    const master_conf_t *conf;
    worker_slot_t slots[MASTER_WORKERS_MAX];
    int sigfd;
    sigset_t old_mask;
    bool starting;            /* the initial workers have not all reported ready */
    bool stopping;            /* SIGTERM/SIGINT received */
    uint64_t kill_at_ms;      /* stopping: SIGKILL stragglers after this */
    int exit_code;
} master_t;

static void log_slot(fg_log_level_t level, const char *msg, unsigned index, pid_t pid,
                     const char *k, const char *v)
{
    char idx[16], p[24];
    snprintf(idx, sizeof idx, "%u", index + 1);
    snprintf(p, sizeof p, "%ld", (long)pid);
    fg_log(level, msg, "worker", idx, "pid", p, k, v, NULL);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* In the child: drop what belongs to the master, then become a worker. Never returns. */
static void child_run(master_t *m, unsigned index, int ready_wr, pid_t master_pid)
{
    close(m->sigfd);
    for (unsigned i = 0; i < m->conf->workers; i++)
        close_fd(&m->slots[i].ready_fd);
    /* Die with the master: SIGTERM makes the worker drain rather than vanish. The check after
     * prctl closes the race with a master that died before it took effect. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(0);
    /* Until the worker's own handler is installed, a forwarded SIGHUP must not kill it. */
    signal(SIGHUP, SIG_IGN);
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
    _exit(m->conf->run(index, ready_wr, m->conf->arg));
}

static int slot_start(master_t *m, unsigned index)
{
    worker_slot_t *s = &m->slots[index];
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t master_pid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0) {
        close(p[0]);
        child_run(m, index, p[1], master_pid);
    }
    close(p[1]);
    s->pid = pid;
    s->ready_fd = p[0];
    s->ready = false;
    s->restart_at_ms = 0;
    log_slot(FG_LOG_INFO, "worker started", index, pid, NULL, NULL);
    return 0;
}

static unsigned running(const master_t *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->conf->workers; i++)
        n += m->slots[i].pid != 0;
    return n;
}

static void signal_all(master_t *m, int sig)
{
    for (unsigned i = 0; i < m->conf->workers; i++)
        if (m->slots[i].pid)
            kill(m->slots[i].pid, sig);
}

static void begin_stop(master_t *m, int sig, int exit_code)
{
    uint64_t now = fg_now_ms();
    if (!m->stopping) {
        m->stopping = true;
        m->exit_code = exit_code;
        m->kill_at_ms = now + m->conf->drain_timeout_ms + MASTER_KILL_GRACE_MS;
    }
    for (unsigned i = 0; i < m->conf->workers; i++)
        m->slots[i].restart_at_ms = 0; /* nothing is restarted any more */
    signal_all(m, sig);
}

/* Restart now, or later when this slot restarts too often. */
static void slot_schedule_restart(master_t *m, unsigned index)
{
    worker_slot_t *s = &m->slots[index];
    uint64_t now = fg_now_ms();
    if (now - s->window_start_ms > MASTER_RESTART_WINDOW_MS) {
        s->window_start_ms = now;
        s->window_restarts = 0;
    }
    if (++s->window_restarts > MASTER_RESTART_BURST) {
        s->restart_at_ms = now + MASTER_RESTART_DELAY_MS;
        log_slot(FG_LOG_WARN, "worker restarting too often: delaying its restart", index, 0,
                 NULL, NULL);
        return;
    }
    s->restart_at_ms = now; /* due at once: the main loop starts it */
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "status %d", status);
}

static void mark_ready(master_t *m, unsigned index)
{
    m->slots[index].ready = true;
    log_slot(FG_LOG_DEBUG, "worker ready", index, m->slots[index].pid, NULL, NULL);
    if (!m->starting)
        return;
    for (unsigned i = 0; i < m->conf->workers; i++)
        if (!m->slots[i].ready)
            return;
    m->starting = false;
    char n_workers[16];
    snprintf(n_workers, sizeof n_workers, "%u", m->conf->workers);
    fg_log(FG_LOG_INFO, "all workers ready", "workers", n_workers, NULL);
}

static void reap(master_t *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned i;
        for (i = 0; i < m->conf->workers && m->slots[i].pid != pid; i++)
            ;
        if (i == m->conf->workers)
            continue;
        worker_slot_t *s = &m->slots[i];
        char how[96], b;
        /* Its readiness byte may still sit unread in the pipe; the write end is closed now,
         * so this read cannot block. */
        if (s->ready_fd >= 0 && read(s->ready_fd, &b, 1) == 1)
            mark_ready(m, i);
        bool was_ready = s->ready;
        describe_status(status, how, sizeof how);
        s->pid = 0;
        close_fd(&s->ready_fd);
        if (m->stopping) {
            log_slot(FG_LOG_INFO, "worker exited", i, pid, "status", how);
            continue;
        }
        log_slot(FG_LOG_ERROR, "worker died", i, pid, "status", how);
        if (m->starting && !was_ready) {
            /* Start-up: its error (bad address, certificate) is in the log just above. */
            fg_log(FG_LOG_ERROR, "a worker failed to start: stopping", NULL);
            begin_stop(m, SIGTERM, 1);
            continue;
        }
        slot_schedule_restart(m, i);
    }
}

static void on_signal(master_t *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD: reap(m); break;
        case SIGHUP:
            if (fg_log_reopen() < 0)
                fg_log(FG_LOG_ERROR, "cannot reopen the log file", NULL);
            fg_log(FG_LOG_INFO, "SIGHUP: log reopened, forwarded to workers", NULL);
            signal_all(m, SIGHUP);
            break;
        case SIGTERM:
        case SIGINT:
            fg_log(FG_LOG_INFO, "master shutting down: forwarding to workers", "signal",
                   si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
            begin_stop(m, (int)si.ssi_signo, m->stopping ? m->exit_code : 0);
            break;
        default: break;
        }
    }
}

static void on_ready_pipe(master_t *m, unsigned index)
{
    worker_slot_t *s = &m->slots[index];
    char b;
    ssize_t n = read(s->ready_fd, &b, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    close_fd(&s->ready_fd); /* one byte = ready; EOF = it died before (reaped via SIGCHLD) */
    if (n == 1)
        mark_ready(m, index);
}

/* Start what is due; return the poll timeout until the next timer (-1: none). */
static int run_timers(master_t *m, uint64_t start_deadline)
{
    uint64_t now = fg_now_ms(), next = UINT64_MAX;
    if (m->stopping) {
        if (now >= m->kill_at_ms) {
            fg_log(FG_LOG_WARN, "workers still running after the drain: killing them", NULL);
            signal_all(m, SIGKILL);
            m->kill_at_ms = now + MASTER_KILL_GRACE_MS;
        }
        next = m->kill_at_ms;
    } else {
        if (m->starting && now >= start_deadline) {
            fg_log(FG_LOG_ERROR, "workers did not become ready in time: stopping", NULL);
            begin_stop(m, SIGTERM, 1);
            return 0;
        }
        if (m->starting)
            next = start_deadline;
        for (unsigned i = 0; i < m->conf->workers; i++) {
            worker_slot_t *s = &m->slots[i];
            if (!s->restart_at_ms || s->pid)
                continue;
            if (s->restart_at_ms <= now) {
                int rc = slot_start(m, i);
                if (rc < 0) {
                    log_slot(FG_LOG_ERROR, "cannot fork a worker", i, 0, "error",
                             strerror(-rc));
                    s->restart_at_ms = now + MASTER_RESTART_DELAY_MS;
                }
            }
            if (s->restart_at_ms && s->restart_at_ms < next)
                next = s->restart_at_ms;
        }
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now < 60000 ? next - now : 60000);
}

int master_run(const master_conf_t *conf)
{
    master_t m;
    struct pollfd pfds[1 + MASTER_WORKERS_MAX];
    unsigned owner[1 + MASTER_WORKERS_MAX];
    sigset_t mask;

    if (conf->workers < 1 || conf->workers > MASTER_WORKERS_MAX || !conf->run)
        return 1;
    memset(&m, 0, sizeof m);
    m.conf = conf;
    m.starting = true;
    for (unsigned i = 0; i < conf->workers; i++)
        m.slots[i].ready_fd = -1;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &m.old_mask);
    m.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m.sigfd < 0) {
        fg_log(FG_LOG_ERROR, "signalfd failed", "error", strerror(errno), NULL);
        return 1;
    }
    for (unsigned i = 0; i < conf->workers; i++) {
        int rc = slot_start(&m, i);
        if (rc < 0) {
            fg_log(FG_LOG_ERROR, "cannot fork a worker", "error", strerror(-rc), NULL);
            begin_stop(&m, SIGTERM, 1);
            break;
        }
    }
    uint64_t start_deadline = fg_now_ms() + MASTER_START_TIMEOUT_MS;
    while (!m.stopping || running(&m) > 0) {
        int timeout = run_timers(&m, start_deadline);
        nfds_t n = 0;
        pfds[n] = (struct pollfd){.fd = m.sigfd, .events = POLLIN};
        owner[n++] = 0;
        for (unsigned i = 0; i < conf->workers; i++) {
            if (m.slots[i].ready_fd < 0)
                continue;
            pfds[n] = (struct pollfd){.fd = m.slots[i].ready_fd, .events = POLLIN};
            owner[n++] = i;
        }
        if (poll(pfds, n, timeout) < 0 && errno != EINTR) {
            fg_log(FG_LOG_ERROR, "poll failed", "error", strerror(errno), NULL);
            begin_stop(&m, SIGTERM, 1);
            continue;
        }
        if (pfds[0].revents)
            on_signal(&m);
        for (nfds_t k = 1; k < n; k++)
            if (pfds[k].revents && m.slots[owner[k]].ready_fd == pfds[k].fd)
                on_ready_pipe(&m, owner[k]);
    }
    close(m.sigfd);
    sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
    fg_log(FG_LOG_INFO, "master stopped", NULL);
    return m.exit_code;
}
