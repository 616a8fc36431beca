/* cache.c - the snapshot cache file and its writer thread (see cache.h).
 *
 * The writer thread owns the disk; the event loop only hands it a copy of the payload under
 * `mu`. There is at most one pending payload: a newer snapshot replaces one that has not been
 * started, because only the newest matters. The thread logs what it did, so a full disk shows
 * up in the log without the loop ever waiting on it. */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_log.h"
#include "fg_proto.h"

struct dp_cache {
    char path[DP_CACHE_PATH_MAX];
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    char *pending;      /* owned; NULL when nothing waits */
    size_t pending_len;
    int64_t pending_version;
    bool writing;       /* the thread is writing a payload it took */
    bool stopping;
};

/* ---- the file ------------------------------------------------------------------------- */

/* The directory of `path` ("." for a bare name), for the fsync that makes the rename
 * durable and for the start-up check. */
static void dir_of(const char *path, char *out, size_t out_len)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(out, out_len, ".");
    else if (slash == path)
        snprintf(out, out_len, "/");
    else
        snprintf(out, out_len, "%.*s", (int)(slash - path), path);
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    char dir[DP_CACHE_PATH_MAX];
    int fd, rc = 0;

    dir_of(path, dir, sizeof(dir));
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int cache_write_file(const char *path, const char *data, size_t len, fg_error_t *err)
{
    char tmp[DP_CACHE_PATH_MAX + sizeof(DP_CACHE_TMP_SUFFIX)];
    int fd, rc;

    if (!path || !*path || strlen(path) >= DP_CACHE_PATH_MAX)
        return fg_error_setc(err, -EINVAL, "cache", "cache path empty or too long");
    snprintf(tmp, sizeof(tmp), "%s%s", path, DP_CACHE_TMP_SUFFIX);
    /* mkstemp gives a name no other writer (another worker with the same --cache) uses,
     * and mode 0600. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return fg_error_setc(err, -errno, "cache", "cannot create %s: %s", tmp,
                             strerror(errno));
    if ((rc = write_all(fd, data, len)) < 0 || (fsync(fd) < 0 && (rc = -errno))) {
        fg_error_setc(err, rc, "cache", "cannot write %s: %s", tmp, strerror(-rc));
        goto fail_tmp;
    }
    if (fchmod(fd, DP_CACHE_MODE) < 0) {
        rc = fg_error_setc(err, -errno, "cache", "cannot chmod %s: %s", tmp, strerror(errno));
        goto fail_tmp;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = fg_error_setc(err, -errno, "cache", "cannot write %s: %s", tmp, strerror(errno));
        goto fail_tmp;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = fg_error_setc(err, -errno, "cache", "cannot rename %s to %s: %s", tmp, path,
                           strerror(errno));
        goto fail_tmp;
    }
    /* Without this the rename itself may not survive a power cut. */
    if ((rc = fsync_dir(path)) < 0)
        return fg_error_setc(err, rc, "cache", "cannot fsync the directory of %s: %s", path,
                             strerror(-rc));
    return 0;

fail_tmp:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int cache_read_file(const char *path, size_t max_len, char **out, size_t *out_len,
                    fg_error_t *err)
{
    struct stat sb;
    char *buf;
    size_t have = 0;
    int fd, rc;

    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fg_error_setc(err, -errno, "cache", "cannot open %s: %s", path,
                             strerror(errno));
    if (fstat(fd, &sb) < 0) {
        rc = fg_error_setc(err, -errno, "cache", "cannot stat %s: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = fg_error_setc(err, -EINVAL, "cache", "%s is not a regular file", path);
        goto fail_fd;
    }
    if ((uint64_t)sb.st_size > max_len) {
        rc = fg_error_setc(err, -EFBIG, "cache", "%s is %" PRIu64 " bytes, more than the %zu "
                           "a snapshot may have", path, (uint64_t)sb.st_size, max_len);
        goto fail_fd;
    }
    /* owned by the caller on success */
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        rc = fg_error_setc(err, -ENOMEM, "cache", "out of memory reading %s", path);
        goto fail_fd;
    }
    /* Reads up to the size fstat saw; a file that grew meanwhile is cut there, and then
     * fails verification rather than being trusted. */
    while (have < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + have, (size_t)sb.st_size - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = fg_error_setc(err, -errno, "cache", "cannot read %s: %s", path,
                               strerror(errno));
            free(buf);
            goto fail_fd;
        }
        if (r == 0)
            break;
        have += (size_t)r;
    }
    close(fd);
    buf[have] = '\0';
    *out = buf;
    *out_len = have;
    return 0;

fail_fd:
    close(fd);
    return rc;
}

dp_generation_t *cache_load(const char *path, size_t max_len, fg_error_t *err)
{
    fg_snapshot_t snap;
    fg_error_t why;
    dp_generation_t *g;
    fg_config_t *cfg;
    char *data;
    size_t len;
    int rc;

    if (cache_read_file(path, max_len, &data, &len, err) < 0)
        return NULL;
    memset(&snap, 0, sizeof(snap));
    fg_error_clear(&why);
    rc = fg_snapshot_decode(data, len, &snap, &why);
    free(data);
    if (rc < 0) {
        fg_error_setc(err, rc, "cache", "%s is not a valid snapshot: %s%s%s", path, why.field,
                      why.field[0] ? ": " : "", why.message);
        fg_snapshot_clear(&snap);
        return NULL;
    }
    cfg = snap.config;
    snap.config = NULL; /* generation_create owns it from here, success or not */
    g = generation_create(cfg, snap.version, snap.checksum, &why);
    fg_snapshot_clear(&snap);
    if (!g)
        fg_error_setc(err, -EINVAL, "cache", "cannot build a configuration from %s: %s%s%s",
                      path, why.field, why.field[0] ? ": " : "", why.message);
    return g;
}

/* ---- the writer thread ---------------------------------------------------------------- */

static void write_one(dp_cache_t *c, const char *data, size_t len, int64_t version)
{
    fg_error_t err;
    char v[24];

    snprintf(v, sizeof(v), "%" PRId64, version);
    fg_error_clear(&err);
    if (cache_write_file(c->path, data, len, &err) < 0)
        fg_log(FG_LOG_WARN, "cannot write the snapshot cache; it keeps the previous snapshot",
               "cache", c->path, "version", v, "error", err.message, NULL);
    else
        fg_log(FG_LOG_DEBUG, "snapshot cached", "cache", c->path, "version", v, NULL);
}

static void *writer_main(void *arg)
{
    dp_cache_t *c = arg;
    sigset_t all;

    /* Signals belong to the event loop's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->pending && !c->stopping)
            pthread_cond_wait(&c->cond, &c->mu);
        if (!c->pending)
            break; /* stopping, nothing left */
        char *data = c->pending;
        size_t len = c->pending_len;
        int64_t version = c->pending_version;
        c->pending = NULL;
        c->writing = true;
        pthread_mutex_unlock(&c->mu);
        write_one(c, data, len, version);
        free(data);
        pthread_mutex_lock(&c->mu);
        c->writing = false;
        pthread_cond_broadcast(&c->cond); /* cache_flush waits for this */
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

dp_cache_t *cache_open(const char *path, fg_error_t *err)
{
    char dir[DP_CACHE_PATH_MAX];
    dp_cache_t *c;
    int rc;

    if (!path || !*path || strlen(path) >= DP_CACHE_PATH_MAX) {
        fg_error_setc(err, -EINVAL, "cache", "cache path empty or longer than %d bytes",
                      DP_CACHE_PATH_MAX - 1);
        return NULL;
    }
    dir_of(path, dir, sizeof(dir));
    if (access(dir, W_OK | X_OK) < 0) {
        fg_error_setc(err, -errno, "cache", "cannot write in %s: %s", dir, strerror(errno));
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        fg_error_setc(err, -ENOMEM, "cache", "out of memory");
        return NULL;
    }
    snprintf(c->path, sizeof(c->path), "%s", path);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    if ((rc = pthread_create(&c->thread, NULL, writer_main, c)) != 0) {
        fg_error_setc(err, -rc, "cache", "cannot start the cache writer: %s", strerror(rc));
        cache_close(c);
        return NULL;
    }
    c->thread_started = true;
    return c;
}

void cache_save(dp_cache_t *c, const char *payload, size_t len, int64_t version)
{
    char *copy;

    if (!c)
        return;
    copy = malloc(len ? len : 1); /* handed to the writer thread, which frees it */
    if (!copy) {
        fg_log(FG_LOG_WARN, "cannot queue the snapshot cache write", "error", "out of memory",
               NULL);
        return;
    }
    memcpy(copy, payload, len);
    pthread_mutex_lock(&c->mu);
    free(c->pending); /* superseded before it was started */
    c->pending = copy;
    c->pending_len = len;
    c->pending_version = version;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

void cache_flush(dp_cache_t *c)
{
    if (!c || !c->thread_started)
        return;
    pthread_mutex_lock(&c->mu);
    while (c->pending || c->writing)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

void cache_close(dp_cache_t *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL); /* it writes what is pending first */
    }
    free(c->pending);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
