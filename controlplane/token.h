/* token.h - the control plane's secrets: the admin API's bearer token and the data plane
 * secret a HELLO must carry. Where they come from and how the token is checked.
 *
 * The token is FLEXGATE_ADMIN_TOKEN when that is set and non-empty; otherwise the file
 * `admin.token` beside the database, created on first start (TOKEN_RANDOM_BYTES random
 * bytes as lowercase hex, mode 0600, O_EXCL so two starts cannot race). The data plane
 * secret is FLEXGATE_DP_SECRET, or --dp-secret-file (default `dp.secret` beside the
 * database), created the same way. Nothing here logs a secret; the caller says where a
 * generated one was saved, never its value. */
#ifndef CTL_TOKEN_H
#define CTL_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "fg_error.h"

#define TOKEN_ENV "FLEXGATE_ADMIN_TOKEN"
#define TOKEN_FILE_NAME "admin.token"
#define DP_SECRET_ENV "FLEXGATE_DP_SECRET"
#define DP_SECRET_FILE_NAME "dp.secret"
#define TOKEN_RANDOM_BYTES 32 /* 64 hex characters */
#define TOKEN_MAX_LEN 512     /* longest token accepted from the env or the file */
#define TOKEN_PATH_MAX 4096

typedef enum token_source {
    TOKEN_FROM_ENV = 0,  /* FLEXGATE_ADMIN_TOKEN */
    TOKEN_FROM_FILE = 1, /* an existing admin.token */
    TOKEN_GENERATED = 2, /* admin.token written now: print it once */
} token_source_t;

typedef struct token {
    char value[TOKEN_MAX_LEN + 1];
    token_source_t source;
    char path[TOKEN_PATH_MAX]; /* the file read or written; "" for TOKEN_FROM_ENV */
} token_t;

/** Resolve the token for the database at `db_path` into `out`. 0, or -errno with err
 *  (unreadable or empty file, write failure, no randomness). */
int token_load(const char *db_path, token_t *out, fg_error_t *err);

/** `name` in the database's directory into `out`. 0, or -ENAMETOOLONG with err. */
int token_path_beside(const char *db_path, const char *name, char *out, size_t len,
                      fg_error_t *err);

/** Resolve a secret into `out`: $`env_name` when set and non-empty, else the file `path`,
 *  created with a new random value (mode 0600) when missing. 0, or -errno with err. */
int token_load_file(const char *env_name, const char *path, token_t *out, fg_error_t *err);

/** True when `authorization` (the header value, may be NULL) is "Bearer <token>" with the
 *  right token. Compares digests in constant time, so neither content nor length leaks. */
bool token_check(const token_t *tok, const char *authorization);

#endif
