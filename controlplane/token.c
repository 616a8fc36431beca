/* token.c - the admin token: environment, token file, or a new random one (see token.h). */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg_hash.h"
#include "fg_log.h"

/* Strip the trailing newline (and any whitespace) an editor or `echo` leaves behind. */
static size_t trim_right(char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                     s[n - 1] == '\t'))
        s[--n] = '\0';
    return n;
}

static int token_path_for(const char *db_path, char *out, size_t len, fg_error_t *err)
{
    char copy[TOKEN_PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", db_path) >= (int)sizeof copy)
        return fg_error_setc(err, -ENAMETOOLONG, NULL, "database path too long");
    if (snprintf(out, len, "%s/%s", dirname(copy), TOKEN_FILE_NAME) >= (int)len)
        return fg_error_setc(err, -ENAMETOOLONG, NULL, "token path too long");
    return 0;
}

static int read_token_file(token_t *tok, fg_error_t *err)
{
    struct stat sb;
    int fd = open(tok->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
        fg_log(FG_LOG_WARN, "admin token file is accessible to group or others",
               "path", tok->path, NULL);
    ssize_t n = read(fd, tok->value, TOKEN_MAX_LEN);
    if (n < 0) {
        rc = fg_error_setc(err, -errno, NULL, "cannot read %s: %s", tok->path, strerror(errno));
        goto fail_fd;
    }
    tok->value[n] = '\0';
    if (trim_right(tok->value, (size_t)n) == 0)
        rc = fg_error_setc(err, -EINVAL, NULL, "token file %s is empty", tok->path);
    else if (strlen(tok->value) != strcspn(tok->value, " \t\r\n"))
        rc = fg_error_setc(err, -EINVAL, NULL, "token file %s holds more than one line",
                           tok->path);
fail_fd:
    close(fd);
    return rc;
}

/* O_EXCL: if another process wins the race, we read what it wrote instead. */
static int write_token_file(token_t *tok, fg_error_t *err)
{
    if (fg_random_hex(tok->value, TOKEN_RANDOM_BYTES) < 0)
        return fg_error_setc(err, -EIO, NULL, "no randomness for the admin token");
    int fd = open(tok->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    char line[TOKEN_MAX_LEN + 2];
    int len = snprintf(line, sizeof line, "%s\n", tok->value);
    int rc = 0;
    if (write(fd, line, (size_t)len) != len || fsync(fd) != 0)
        rc = fg_error_setc(err, -EIO, NULL, "cannot write %s: %s", tok->path, strerror(errno));
    close(fd);
    if (rc)
        unlink(tok->path);
    return rc;
}

int token_load(const char *db_path, token_t *out, fg_error_t *err)
{
    memset(out, 0, sizeof *out);
    const char *env = getenv(TOKEN_ENV);
    if (env && *env) {
        if (strlen(env) > TOKEN_MAX_LEN)
            return fg_error_setc(err, -EINVAL, NULL, "%s is longer than %d characters",
                                 TOKEN_ENV, TOKEN_MAX_LEN);
        snprintf(out->value, sizeof out->value, "%s", env);
        out->source = TOKEN_FROM_ENV;
        return 0;
    }
    int rc = token_path_for(db_path, out->path, sizeof out->path, err);
    if (rc)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = read_token_file(out, err);
        if (rc != -ENOENT) {
            out->source = TOKEN_FROM_FILE;
            if (rc && err && !err->message[0])
                fg_error_setc(err, rc, NULL, "cannot open %s: %s", out->path, strerror(-rc));
            return rc;
        }
        rc = write_token_file(out, err);
        if (rc != -EEXIST) {
            out->source = TOKEN_GENERATED;
            if (rc && err && !err->message[0])
                fg_error_setc(err, rc, NULL, "cannot create %s: %s", out->path, strerror(-rc));
            return rc;
        }
    }
    return fg_error_setc(err, -EIO, NULL, "cannot settle on a token file at %s", out->path);
}

bool token_check(const token_t *tok, const char *authorization)
{
    static const char scheme[] = "Bearer ";
    char want[FG_SHA256_HEX_LEN + 1], got[FG_SHA256_HEX_LEN + 1];
    if (!tok || !authorization || strncasecmp(authorization, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *given = authorization + sizeof scheme - 1;
    while (*given == ' ')
        given++;
    size_t n = strlen(given);
    while (n > 0 && (given[n - 1] == ' ' || given[n - 1] == '\t'))
        n--;
    /* Comparing digests hides the token's length as well as its bytes. */
    fg_sha256_hex(tok->value, strlen(tok->value), want);
    fg_sha256_hex(given, n, got);
    return fg_ct_memcmp(want, got, FG_SHA256_HEX_LEN) == 0;
}
