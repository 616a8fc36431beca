/* token.c - the admin token and the data plane secret: environment, a file, or a new random
 * one written to that file (see token.h). */
#include "token.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_log.h"
#include "fg_secret.h"

int token_path_beside(const char *db_path, const char *name, char *out, size_t len,
                      fg_error_t *err)
{
    char copy[TOKEN_PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", db_path) >= (int)sizeof copy)
        return fg_error_setc(err, -ENAMETOOLONG, NULL, "database path too long");
    if (snprintf(out, len, "%s/%s", dirname(copy), name) >= (int)len)
        return fg_error_setc(err, -ENAMETOOLONG, NULL, "%s path too long", name);
    return 0;
}

int token_load_file(const char *env_name, const char *path, token_t *out, fg_error_t *err)
{
    memset(out, 0, sizeof *out);
    const char *env = env_name ? getenv(env_name) : NULL;
    if (env && *env) {
        if (strlen(env) > TOKEN_MAX_LEN)
            return fg_error_setc(err, -EINVAL, NULL, "%s is longer than %d characters",
                                 env_name, TOKEN_MAX_LEN);
        snprintf(out->value, sizeof out->value, "%s", env);
        out->source = TOKEN_FROM_ENV;
        return 0;
    }
    if (snprintf(out->path, sizeof out->path, "%s", path) >= (int)sizeof out->path)
        return fg_error_setc(err, -ENAMETOOLONG, NULL, "secret file path too long");
    for (int attempt = 0; attempt < 2; attempt++) {
        bool too_open = false;
        fg_error_clear(err);
        int rc = fg_secret_read_file(out->path, out->value, sizeof out->value, &too_open, err);
        if (rc != -ENOENT) {
            out->source = TOKEN_FROM_FILE;
            if (too_open)
                fg_log(FG_LOG_WARN, "secret file is accessible to group or others", "path",
                       out->path, NULL);
            return rc;
        }
        fg_error_clear(err);
        rc = fg_secret_create_file(out->path, out->value, sizeof out->value, err);
        if (rc != -EEXIST) {
            out->source = TOKEN_GENERATED;
            return rc;
        }
    }
    return fg_error_setc(err, -EIO, NULL, "cannot settle on a secret file at %s", out->path);
}

int token_load(const char *db_path, token_t *out, fg_error_t *err)
{
    char path[TOKEN_PATH_MAX];
    memset(out, 0, sizeof *out);
    const char *env = getenv(TOKEN_ENV);
    int rc = env && *env ? 0 : token_path_beside(db_path, TOKEN_FILE_NAME, path, sizeof path,
                                                 err);
    return rc ? rc : token_load_file(TOKEN_ENV, path, out, err);
}

bool token_check(const token_t *tok, const char *authorization)
{
    static const char scheme[] = "Bearer ";
    if (!tok || !authorization || strncasecmp(authorization, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *given = authorization + sizeof scheme - 1;
    while (*given == ' ')
        given++;
    size_t n = strlen(given);
    while (n > 0 && (given[n - 1] == ' ' || given[n - 1] == '\t'))
        n--;
    return fg_secret_equal(tok->value, given, n);
}
