/* fg_secret.c - read, create and compare secrets kept in files (see fg_secret.h). */
#include "fg_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_hash.h"

/* Strip the trailing newline (and any whitespace) an editor or `echo` leaves behind. */
static size_t trim_right(char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                     s[n - 1] == '\t'))
        s[--n] = '\0';
    return n;
}

int fg_secret_read_file(const char *path, char *out, size_t out_len, bool *too_open,
                        fg_error_t *err)
{
    struct stat sb;
    if (too_open)
        *too_open = false;
    if (!path || !out || out_len < 2)
        return fg_error_setc(err, -EINVAL, NULL, "no secret file or buffer");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fg_error_setc(err, -e, NULL, "cannot open %s: %s", path, strerror(e));
    }
    int rc = 0;
    if (too_open && fstat(fd, &sb) == 0)
        *too_open = (sb.st_mode & 077) != 0;
    /* One byte more than fits, so a secret that is too long is told apart from one that
     * fills the buffer exactly. */
    char buf[4096];
    size_t want = out_len < sizeof buf ? out_len : sizeof buf - 1;
    ssize_t n = read(fd, buf, want);
    if (n < 0) {
        rc = fg_error_setc(err, -errno, NULL, "cannot read %s: %s", path, strerror(errno));
        goto fail_fd;
    }
    buf[n] = '\0';
    size_t len = trim_right(buf, (size_t)n);
    if (len == 0)
        rc = fg_error_setc(err, -EINVAL, NULL, "secret file %s is empty", path);
    else if (len >= out_len)
        rc = fg_error_setc(err, -EINVAL, NULL, "secret in %s is longer than %zu characters",
                           path, out_len - 1);
    else if (strlen(buf) != len || strcspn(buf, " \t\r\n") != len)
        rc = fg_error_setc(err, -EINVAL, NULL, "secret file %s holds more than one line",
                           path);
    else
        memcpy(out, buf, len + 1);
    memset(buf, 0, sizeof buf);
fail_fd:
    close(fd);
    return rc;
}

/* O_EXCL: if another process wins the race, the caller reads what it wrote instead. */
int fg_secret_create_file(const char *path, char *out, size_t out_len, fg_error_t *err)
{
    char value[2 * FG_SECRET_RANDOM_BYTES + 2];
    if (out_len < 2 * FG_SECRET_RANDOM_BYTES + 1)
        return fg_error_setc(err, -EINVAL, NULL, "secret buffer too small");
    if (fg_random_hex(value, FG_SECRET_RANDOM_BYTES) < 0)
        return fg_error_setc(err, -EIO, NULL, "no randomness for a new secret");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  FG_SECRET_FILE_MODE);
    if (fd < 0) {
        int e = errno;
        if (e != EEXIST)
            fg_error_setc(err, -e, NULL, "cannot create %s: %s", path, strerror(e));
        return -e;
    }
    size_t len = strlen(value);
    value[len] = '\n';
    int rc = 0;
    if (write(fd, value, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0)
        rc = fg_error_setc(err, -EIO, NULL, "cannot write %s: %s", path, strerror(errno));
    close(fd);
    value[len] = '\0';
    if (rc)
        unlink(path);
    else
        memcpy(out, value, len + 1);
    memset(value, 0, sizeof value);
    return rc;
}

bool fg_secret_equal(const char *want, const char *given, size_t given_len)
{
    char a[FG_SHA256_HEX_LEN + 1], b[FG_SHA256_HEX_LEN + 1];
    if (!want || !given || !*want || given_len == 0)
        return false;
    /* Comparing digests hides the secret's length as well as its bytes. */
    fg_sha256_hex(want, strlen(want), a);
    fg_sha256_hex(given, given_len, b);
    return fg_ct_memcmp(a, b, FG_SHA256_HEX_LEN) == 0;
}
