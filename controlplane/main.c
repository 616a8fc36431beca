/* main.c - flexgate-ctl: the control plane's command line.
 *
 * Sub-commands are a table (name, options, runner), one entry each. `import` and `export`
 * work on the database directly (one transaction; a running `serve` on the same database
 * notices the new version within a second and pushes it). `serve` runs the admin API and the publisher on their own threads while the
 * main thread waits in sigwait() for SIGTERM/SIGINT: signals are blocked before any thread
 * starts, so no handler ever runs inside a library call, and shutdown is plain sequential
 * code (API, then publisher, then database). Exit status: 0 ok, 1 failure, 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_api.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_proto.h"
#include "lockout.h"
#include "migrations.h"
#include "paths.h"
#include "publisher.h"
#include "store.h"
#include "store_import.h"
#include "token.h"
#include "yamlio.h"

#ifndef FG_VERSION
#define FG_VERSION "0.0.0"
#endif

#define CTL_DEFAULT_SOCKET "unix:./var/flexgate.sock"
#define CTL_DEFAULT_LOG_LEVEL "info"
#define EXIT_USAGE 2
#define CTL_CLI_ACTOR "import:cli"

typedef struct ctl_opts {
    const char *db;
    const char *admin_listen;
    const char *socket;
    const char *log_level;
    const char *ui_dir;
    const char *mode;  /* import: replace | merge */
    const char *out;   /* export: output file, NULL = stdout */
    const char *file;  /* import: the positional FILE */
    bool dry_run;      /* import --dry-run */
    const char *dp_listen[PUB_MAX_TCP_LISTENERS]; /* --dp-listen, repeatable */
    size_t n_dp_listen;
    const char *dp_tls_ca, *dp_tls_cert, *dp_tls_key;
    const char *dp_secret_file;  /* serve: NULL = $FLEXGATE_DP_SECRET or dp.secret by the db */
    bool admin_insecure_bind;    /* serve: allow a non-loopback admin address without TLS */
    const char *admin_tls_cert, *admin_tls_key; /* serve: HTTPS for the admin API */
    const char *lockout_failures, *lockout_window_ms; /* serve: text; checked by parse_opts */
    uint32_t lockout_failures_n, lockout_window_ms_n; /* their values; 0 = the defaults */
} ctl_opts_t;

typedef enum opt_id {
    OPT_DB, OPT_ADMIN_LISTEN, OPT_SOCKET, OPT_LOG_LEVEL, OPT_UI_DIR, OPT_MODE, OPT_OUT,
    OPT_DRY_RUN, OPT_DP_LISTEN, OPT_DP_TLS_CA, OPT_DP_TLS_CERT, OPT_DP_TLS_KEY,
    OPT_DP_SECRET_FILE, OPT_ADMIN_INSECURE_BIND, OPT_ADMIN_TLS_CERT, OPT_ADMIN_TLS_KEY,
    OPT_LOCKOUT_FAILURES, OPT_LOCKOUT_WINDOW,
} opt_id_t;

typedef struct opt_spec {
    const char *name; /* without the leading "--" */
    opt_id_t id;
} opt_spec_t;

typedef struct command {
    const char *name;
    const char *usage;
    const opt_spec_t *opts; /* terminated by a NULL name */
    int (*run)(const ctl_opts_t *o);
    const char *positional; /* "FILE" when the command takes one argument, else NULL */
} command_t;

/* ---- serve ---------------------------------------------------------------------------- */

static int fail(const char *what, const fg_error_t *err)
{
    fg_log(FG_LOG_ERROR, what, "field", err->field[0] ? err->field : NULL, "error",
           err->message, NULL);
    return EXIT_FAILURE;
}

static int open_migrated(const char *db, store_t **st, int *applied, fg_error_t *err)
{
    int rc = store_open(db, st, err);
    if (rc)
        return rc;
    if ((rc = store_migrate(*st, applied, err))) {
        store_close(*st);
        *st = NULL;
    }
    return rc;
}

static int wait_for_stop_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}

/* The data plane secret: $FLEXGATE_DP_SECRET, --dp-secret-file, or dp.secret beside the
 * database, generated on first start. Only where it was saved is told, never the value. */
static int load_dp_secret(const ctl_opts_t *o, token_t *secret, fg_error_t *err)
{
    char path[TOKEN_PATH_MAX];
    int rc = 0;
    if (o->dp_secret_file)
        snprintf(path, sizeof path, "%s", o->dp_secret_file);
    else
        rc = token_path_beside(o->db, DP_SECRET_FILE_NAME, path, sizeof path, err);
    if (rc || (rc = token_load_file(DP_SECRET_ENV, path, secret, err)))
        return rc;
    if (strlen(secret->value) >= FG_HELLO_SECRET_MAX)
        return fg_error_setc(err, -EINVAL, "dp-secret-file", "the data plane secret is longer "
                             "than %d characters", FG_HELLO_SECRET_MAX - 1);
    if (secret->source == TOKEN_GENERATED)
        fg_log(FG_LOG_INFO, "data plane secret generated: give this file to flexgate-dp "
               "--dp-secret-file", "path", secret->path, NULL);
    return 0;
}

static int run_serve(const ctl_opts_t *o)
{
    fg_error_t err;
    store_t *st = NULL;
    publisher_t *pub = NULL;
    admin_api_t *api = NULL;
    token_t token, dp_secret;
    int status = EXIT_FAILURE;
    sigset_t stop;

    /* Block before any thread exists, so every thread inherits the mask and the signals
     * are only ever taken by sigwait below. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    fg_error_clear(&err);
    memset(&dp_secret, 0, sizeof dp_secret);
    /* A refused admin address is a usage problem: said before anything is created. */
    if (admin_api_check_listen(o->admin_listen, o->admin_tls_cert != NULL,
                               o->admin_insecure_bind, &err))
        return fail("cannot start the admin API", &err);
    if (open_migrated(o->db, &st, NULL, &err))
        return fail("cannot open the database", &err);
    if (token_load(o->db, &token, &err)) {
        status = fail("cannot load the admin token", &err);
        goto fail_store;
    }
    if (load_dp_secret(o, &dp_secret, &err)) {
        status = fail("cannot load the data plane secret", &err);
        goto fail_store;
    }
    if (token.source == TOKEN_GENERATED) {
        /* To a terminal only: a redirected stdout is a log file, and the token stays out of
         * logs. The file holds it either way. */
        if (isatty(STDOUT_FILENO))
            printf("admin token: %s (saved to %s)\n", token.value, token.path);
        else
            printf("admin token generated and saved to %s (mode 0600)\n", token.path);
        fflush(stdout);
    }
    const publisher_conf_t pconf = {.listen = o->socket, .db_path = o->db,
                                    .tcp_listen = o->dp_listen,
                                    .n_tcp_listen = o->n_dp_listen, .tls_ca = o->dp_tls_ca,
                                    .tls_cert = o->dp_tls_cert, .tls_key = o->dp_tls_key,
                                    .dp_secret = dp_secret.value};
    if (publisher_start(&pconf, &pub, &err)) {
        status = fail("cannot start the snapshot publisher", &err);
        goto fail_store;
    }
    const admin_api_conf_t aconf = {.listen = o->admin_listen, .store = st,
                                    .publisher = pub, .token = &token, .ui_dir = o->ui_dir,
                                    .insecure_bind = o->admin_insecure_bind,
                                    .tls_cert = o->admin_tls_cert,
                                    .tls_key = o->admin_tls_key,
                                    .lockout_failures = o->lockout_failures_n,
                                    .lockout_window_ms = o->lockout_window_ms_n};
    if (admin_api_start(&aconf, &api, &err)) {
        status = fail("cannot start the admin API", &err);
        goto fail_pub;
    }
    fg_log(FG_LOG_INFO, "flexgate-ctl ready", "version", FG_VERSION, "db", o->db,
           "token_source", token.source == TOKEN_FROM_ENV ? "env"
                           : token.source == TOKEN_GENERATED ? "generated" : "file", NULL);

    int sig = wait_for_stop_signal(&stop);
    fg_log(FG_LOG_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
           NULL);
    admin_api_stop(api);
    status = EXIT_SUCCESS;
fail_pub:
    publisher_stop(pub);
fail_store:
    store_close(st);
    explicit_bzero(&token, sizeof token);
    explicit_bzero(&dp_secret, sizeof dp_secret);
    return status;
}

/* ---- migrate, version ----------------------------------------------------------------- */

static int run_migrate(const ctl_opts_t *o)
{
    fg_error_t err;
    store_t *st = NULL;
    int applied = 0;
    int64_t version = 0;
    fg_error_clear(&err);
    if (open_migrated(o->db, &st, &applied, &err))
        return fail("migration failed", &err);
    int rc = store_version(st, &version, &err);
    store_close(st);
    if (rc)
        return fail("cannot read the config version", &err);
    printf("applied %d migration%s; schema %s; config version %" PRId64 "\n", applied,
           applied == 1 ? "" : "s",
           ctl_migrations_count ? ctl_migrations[ctl_migrations_count - 1].name : "none",
           version);
    return EXIT_SUCCESS;
}

static int run_version(const ctl_opts_t *o)
{
    printf("flexgate-ctl %s (snapshot protocol %d, schema %s)\n", FG_VERSION,
           FG_PROTOCOL_VERSION,
           ctl_migrations_count ? ctl_migrations[ctl_migrations_count - 1].name : "none");
    return EXIT_SUCCESS;
}

/* ---- import, export ------------------------------------------------------------------- */

/* Errors in a file are said the way compilers say them: FILE:LINE:COLUMN: field: what. */
static void print_file_error(const char *file, yamlio_mark_t at, const fg_error_t *err)
{
    if (at.line)
        fprintf(stderr, "flexgate-ctl import: %s:%u:%u: ", file, at.line, at.column);
    else
        fprintf(stderr, "flexgate-ctl import: %s: ", file);
    if (err->field[0])
        fprintf(stderr, "%s: ", err->field);
    fprintf(stderr, "%s\n", err->message);
}

/* The whole file, refused past YAMLIO_MAX_INPUT_BYTES without reading further. */
static char *read_file(const char *path, size_t *len, fg_error_t *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *buf = NULL;
    if (!f) {
        fg_error_set(err, NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap || !buf) {
            char *b = realloc(buf, cap = buf ? cap * 2 : cap);
            if (!b) {
                fg_error_setc(err, -ENOMEM, NULL, "out of memory");
                goto fail;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > YAMLIO_MAX_INPUT_BYTES) {
            fg_error_setc(err, -E2BIG, NULL, "file larger than %u bytes", YAMLIO_MAX_INPUT_BYTES);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fg_error_set(err, NULL, "read error: %s", strerror(errno));
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;

fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return NULL;
}

static void print_diff_counts(const cJSON *diff)
{
    static const char *const kinds[] = {"upstreams", "routes", "keys"};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(diff, kinds[i]);
        printf("  %-10s +%d added, ~%d changed, -%d removed\n", kinds[i],
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(k, "added")),
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(k, "changed")),
               cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(k, "removed")));
    }
    const cJSON *changed = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(diff, "settings"), "changed");
    printf("  %-10s", "settings");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, changed)
        printf("%s%s", n++ ? ", " : " ", c->valuestring);
    printf("%s\n", n ? " changed" : " unchanged");
}

/* Allow-list findings (security.allowedHosts / blockedIPs), one line each on stderr. */
static void print_warnings(const cJSON *warnings)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, warnings)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(w, "field");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(w, "message");
        fprintf(stderr, "flexgate-ctl import: warning: %s%s%s\n",
                cJSON_IsString(f) ? f->valuestring : "", cJSON_IsString(f) ? ": " : "",
                cJSON_IsString(m) ? m->valuestring : "");
    }
}

static int run_import(const ctl_opts_t *o)
{
    fg_error_t err;
    yamlio_mark_t at = {0, 0};
    yamlio_doc_t *doc = NULL;
    store_t *st = NULL;
    store_import_mode_t mode;
    store_import_result_t res = {0};
    size_t len = 0;
    int status = EXIT_FAILURE;

    fg_error_clear(&err);
    if (store_import_mode_parse(o->mode, &mode) != 0) {
        fprintf(stderr, "flexgate-ctl import: --mode must be replace or merge, not '%s'\n",
                o->mode);
        return EXIT_USAGE;
    }
    char *text = read_file(o->file, &len, &err);
    if (!text) {
        print_file_error(o->file, at, &err);
        return EXIT_FAILURE;
    }
    int rc = yamlio_load(text, len, &doc, &err, &at);
    free(text);
    if (rc) {
        print_file_error(o->file, at, &err);
        return EXIT_FAILURE;
    }
    if (open_migrated(o->db, &st, NULL, &err)) {
        status = fail("cannot open the database", &err);
        goto fail_doc;
    }
    rc = store_import(st, yamlio_root(doc), mode, o->dry_run, CTL_CLI_ACTOR, &res, &err);
    if (rc) {
        print_file_error(o->file, err.field[0] ? yamlio_locate(doc, err.field) : at, &err);
        goto fail_store;
    }
    if (o->dry_run) {
        printf("dry run: importing %s (%s) onto config version %" PRId64 " would change %zu "
               "item%s; checksum would be %s\n", o->file, o->mode, res.from_version,
               res.n_changes, res.n_changes == 1 ? "" : "s", res.checksum);
    } else {
        printf("imported %s (%s): config version %" PRId64 " (was %" PRId64 "), %zu change%s, "
               "checksum %s\n", o->file, o->mode, res.version, res.from_version,
               res.n_changes, res.n_changes == 1 ? "" : "s", res.checksum);
    }
    print_diff_counts(res.diff);
    print_warnings(res.warnings);
    status = EXIT_SUCCESS;
    store_import_result_clear(&res);
fail_store:
    store_close(st);
fail_doc:
    yamlio_doc_free(doc);
    return status;
}

/* Write `text` to `path` through a temporary file and rename, so a reader never sees half. */
static int write_atomically(const char *path, const char *text, size_t len, fg_error_t *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return fg_error_set(err, NULL, "output path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return fg_error_set(err, NULL, "cannot create %s: %s", tmp, strerror(errno));
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fg_error_set(err, NULL, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static int run_export(const ctl_opts_t *o)
{
    fg_error_t err;
    store_t *st = NULL;
    cJSON *tree = NULL;
    int64_t version = 0;
    char checksum[FG_SHA256_HEX_LEN + 1], header[256];
    size_t len = 0;
    fg_error_clear(&err);
    if (open_migrated(o->db, &st, NULL, &err))
        return fail("cannot open the database", &err);
    int rc = store_export(st, &tree, &version, checksum, &err);
    store_close(st);
    if (rc)
        return fail("cannot read the configuration", &err);
    snprintf(header, sizeof header, "# FlexGate configuration exported by flexgate-ctl %s\n"
             "# config version %" PRId64 ", checksum %s\n", FG_VERSION, version, checksum);
    char *yaml = yamlio_dump(tree, header, &len, &err);
    cJSON_Delete(tree);
    if (!yaml)
        return fail("cannot write YAML", &err);
    if (o->out)
        rc = write_atomically(o->out, yaml, len, &err);
    else
        rc = fwrite(yaml, 1, len, stdout) == len && fflush(stdout) == 0
                 ? 0 : fg_error_set(&err, NULL, "cannot write to stdout");
    free(yaml);
    if (rc)
        return fail("export failed", &err);
    return EXIT_SUCCESS;
}

/* ---- the command table ---------------------------------------------------------------- */

static const opt_spec_t serve_opts[] = {
    {"db", OPT_DB}, {"admin-listen", OPT_ADMIN_LISTEN}, {"socket", OPT_SOCKET},
    {"log-level", OPT_LOG_LEVEL}, {"ui-dir", OPT_UI_DIR},
    {"dp-listen", OPT_DP_LISTEN}, {"dp-tls-ca", OPT_DP_TLS_CA},
    {"dp-tls-cert", OPT_DP_TLS_CERT}, {"dp-tls-key", OPT_DP_TLS_KEY},
    {"dp-secret-file", OPT_DP_SECRET_FILE}, {"admin-insecure-bind", OPT_ADMIN_INSECURE_BIND},
    {"admin-tls-cert", OPT_ADMIN_TLS_CERT}, {"admin-tls-key", OPT_ADMIN_TLS_KEY},
    {"admin-lockout-failures", OPT_LOCKOUT_FAILURES},
    {"admin-lockout-window-ms", OPT_LOCKOUT_WINDOW}, {NULL, 0},
};
static const opt_spec_t migrate_opts[] = {
    {"db", OPT_DB}, {"log-level", OPT_LOG_LEVEL}, {NULL, 0},
};
static const opt_spec_t import_opts[] = {
    {"db", OPT_DB}, {"mode", OPT_MODE}, {"dry-run", OPT_DRY_RUN},
    {"log-level", OPT_LOG_LEVEL}, {NULL, 0},
};
static const opt_spec_t export_opts[] = {
    {"db", OPT_DB}, {"out", OPT_OUT}, {"log-level", OPT_LOG_LEVEL}, {NULL, 0},
};
static const opt_spec_t no_opts[] = {{NULL, 0}};

static const command_t commands[] = {
    {"serve",
     "usage: flexgate-ctl serve --db PATH [--admin-listen HOST:PORT] [--socket unix:PATH]\n"
     "                          [--log-level debug|info|warn|error] [--ui-dir DIR]\n"
     "                          [--dp-listen tcp://HOST:PORT ... --dp-tls-ca FILE\n"
     "                           --dp-tls-cert FILE --dp-tls-key FILE]\n"
     "                          [--dp-secret-file FILE] [--admin-tls-cert FILE\n"
     "                           --admin-tls-key FILE] [--admin-insecure-bind]\n"
     "                          [--admin-lockout-failures N] [--admin-lockout-window-ms MS]\n"
     "\n"
     "Run the control plane: the admin REST API (default " ADMIN_DEFAULT_LISTEN ") and the\n"
     "snapshot publisher data planes connect to (default " CTL_DEFAULT_SOCKET ").\n"
     "--dp-listen (repeatable) also serves data planes on other hosts over TCP with mutual\n"
     "TLS: --dp-tls-cert/--dp-tls-key are the control plane's certificate and key, and a\n"
     "data plane must present a client certificate signed by a CA in --dp-tls-ca.\n"
     "Migrates the database first. The admin token is $" TOKEN_ENV ", or the file\n"
     TOKEN_FILE_NAME " beside the database, generated on first start (printed once when\n"
     "stdout is a terminal). A data plane on the unix socket must send the data plane\n"
     "secret in its HELLO: $" DP_SECRET_ENV ", or --dp-secret-file FILE, or the file\n"
     DP_SECRET_FILE_NAME " beside the database (a missing file is generated, mode 0600);\n"
     "give the same file to flexgate-dp --dp-secret-file.\n"
     "--admin-tls-cert/--admin-tls-key serve the admin API over HTTPS (TLS 1.2+). The admin\n"
     "API refuses a non-loopback --admin-listen without them unless --admin-insecure-bind\n"
     "is given (only behind a TLS-terminating proxy). A client address that sends\n"
     "--admin-lockout-failures wrong tokens (default 10) within --admin-lockout-window-ms\n"
     "(default 60000) gets 429 with Retry-After until that window ends.\n",
     serve_opts, run_serve, NULL},
    {"migrate",
     "usage: flexgate-ctl migrate --db PATH [--log-level LEVEL]\n"
     "\n"
     "Apply the schema migrations this binary carries that the database lacks, and create\n"
     "config version 1 (the empty configuration) on a new database. Safe to run twice.\n",
     migrate_opts, run_migrate, NULL},
    {"import",
     "usage: flexgate-ctl import FILE --db PATH [--mode replace|merge] [--dry-run]\n"
     "                           [--log-level LEVEL]\n"
     "\n"
     "Import a YAML (or JSON) configuration file, in the seed project's format, as ONE new\n"
     "config version: all of it or nothing. FILE '-' reads standard input.\n"
     "  --mode replace  (default) the file is the whole configuration: upstreams, routes and\n"
     "                  keys it lacks are removed, settings sections it lacks are reset\n"
     "  --mode merge    entities in the file replace those of the same name and new ones are\n"
     "                  added; settings sections in the file replace the stored ones\n"
     "  --dry-run       check everything and print what would change, change nothing\n"
     "Errors name FILE:LINE:COLUMN and the field. A running `flexgate-ctl serve` on the same\n"
     "database pushes the new version to its data planes within a second.\n",
     import_opts, run_import, "FILE"},
    {"export",
     "usage: flexgate-ctl export --db PATH [--out FILE] [--log-level LEVEL]\n"
     "\n"
     "Write the current configuration as YAML (to standard output, or atomically to FILE).\n"
     "Every field is written, defaults included; importing the output gives back the same\n"
     "configuration (the same checksum). API keys are written as their SHA-256 digests.\n",
     export_opts, run_export, NULL},
    {"version",
     "usage: flexgate-ctl version\n"
     "\n"
     "Print the software version, snapshot protocol version and newest schema migration.\n",
     no_opts, run_version, NULL},
};

static void print_usage(FILE *f)
{
    fprintf(f, "usage: flexgate-ctl <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].name);
    fprintf(f, "\n`flexgate-ctl <command> --help` describes each one.\n");
}

static const char **opt_slot(ctl_opts_t *o, opt_id_t id)
{
    switch (id) {
    case OPT_DB: return &o->db;
    case OPT_ADMIN_LISTEN: return &o->admin_listen;
    case OPT_SOCKET: return &o->socket;
    case OPT_LOG_LEVEL: return &o->log_level;
    case OPT_UI_DIR: return &o->ui_dir;
    case OPT_MODE: return &o->mode;
    case OPT_OUT: return &o->out;
    case OPT_DRY_RUN: return NULL;
    case OPT_DP_LISTEN: return &o->dp_listen[o->n_dp_listen];
    case OPT_DP_TLS_CA: return &o->dp_tls_ca;
    case OPT_DP_TLS_CERT: return &o->dp_tls_cert;
    case OPT_DP_TLS_KEY: return &o->dp_tls_key;
    case OPT_DP_SECRET_FILE: return &o->dp_secret_file;
    case OPT_ADMIN_INSECURE_BIND: return NULL;
    case OPT_ADMIN_TLS_CERT: return &o->admin_tls_cert;
    case OPT_ADMIN_TLS_KEY: return &o->admin_tls_key;
    case OPT_LOCKOUT_FAILURES: return &o->lockout_failures;
    case OPT_LOCKOUT_WINDOW: return &o->lockout_window_ms;
    }
    return NULL;
}

/* A numeric option's text (NULL: not given, *out stays 0) within [min, max]. 0, or -1 after
 * printing the usage error. */
static int parse_u32_opt(const command_t *cmd, const char *name, const char *text,
                         uint32_t min, uint32_t max, uint32_t *out)
{
    char *end = NULL;
    if (!text)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!(*text >= '0' && *text <= '9') || *end || errno || v < min || v > max) {
        fprintf(stderr, "flexgate-ctl %s: --%s must be an integer from %" PRIu32 " to %" PRIu32
                ", not '%s'\n", cmd->name, name, min, max, text);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* "--name VALUE" or "--name=VALUE"; anything else is a usage error. Returns 0, 1 after
 * printing help, or -1 after printing the error. */
static int parse_opts(const command_t *cmd, int argc, char **argv, ctl_opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(cmd->usage, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0 && cmd->positional && !o->file) {
            o->file = arg;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "flexgate-ctl %s: unexpected argument '%s'\n%s", cmd->name, arg,
                    cmd->usage);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_spec_t *spec = NULL;
        for (const opt_spec_t *s = cmd->opts; s->name && !spec; s++)
            if (strlen(s->name) == nlen && strncmp(s->name, name, nlen) == 0)
                spec = s;
        if (!spec) {
            fprintf(stderr, "flexgate-ctl %s: unknown option '%s'\n%s", cmd->name, arg,
                    cmd->usage);
            return -1;
        }
        if (spec->id == OPT_DRY_RUN || spec->id == OPT_ADMIN_INSECURE_BIND) { /* flags */
            if (eq) {
                fprintf(stderr, "flexgate-ctl %s: option '--%s' takes no value\n", cmd->name,
                        spec->name);
                return -1;
            }
            if (spec->id == OPT_DRY_RUN)
                o->dry_run = true;
            else
                o->admin_insecure_bind = true;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value || !*value) {
            fprintf(stderr, "flexgate-ctl %s: option '--%.*s' needs a value\n", cmd->name,
                    (int)nlen, name);
            return -1;
        }
        if (spec->id == OPT_DP_LISTEN && o->n_dp_listen >= PUB_MAX_TCP_LISTENERS) {
            fprintf(stderr, "flexgate-ctl %s: at most %u --dp-listen addresses\n", cmd->name,
                    PUB_MAX_TCP_LISTENERS);
            return -1;
        }
        *opt_slot(o, spec->id) = value;
        if (spec->id == OPT_DP_LISTEN)
            o->n_dp_listen++; /* the one repeatable option */
    }
    bool any_tls = o->dp_tls_ca || o->dp_tls_cert || o->dp_tls_key;
    bool all_tls = o->dp_tls_ca && o->dp_tls_cert && o->dp_tls_key;
    if ((o->n_dp_listen > 0 && !all_tls) || (o->n_dp_listen == 0 && any_tls)) {
        fprintf(stderr, "flexgate-ctl %s: --dp-listen needs --dp-tls-ca, --dp-tls-cert and "
                "--dp-tls-key, and they are only for --dp-listen\n%s", cmd->name, cmd->usage);
        return -1;
    }
    if (parse_u32_opt(cmd, "admin-lockout-failures", o->lockout_failures, 1,
                      LOCKOUT_FAILURES_MAX, &o->lockout_failures_n) < 0 ||
        parse_u32_opt(cmd, "admin-lockout-window-ms", o->lockout_window_ms,
                      LOCKOUT_WINDOW_MIN_MS, LOCKOUT_WINDOW_MAX_MS, &o->lockout_window_ms_n) < 0)
        return -1;
    if (!o->admin_tls_cert != !o->admin_tls_key) {
        fprintf(stderr, "flexgate-ctl %s: --admin-tls-cert and --admin-tls-key go together\n%s",
                cmd->name, cmd->usage);
        return -1;
    }
    return 0;
}

static bool has_opt(const command_t *cmd, opt_id_t id)
{
    for (const opt_spec_t *s = cmd->opts; s->name; s++)
        if (s->id == id)
            return true;
    return false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(argv[1], "--version") == 0)
        return run_version(NULL);
    const command_t *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0] && !cmd; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "flexgate-ctl: unknown command '%s'\n", argv[1]);
        print_usage(stderr);
        return EXIT_USAGE;
    }
    ctl_opts_t o = {.admin_listen = ADMIN_DEFAULT_LISTEN, .socket = CTL_DEFAULT_SOCKET,
                    .mode = "replace",
                    .log_level = CTL_DEFAULT_LOG_LEVEL,
                    .ui_dir = paths_default_ui_dir()};
    int rc = parse_opts(cmd, argc - 2, argv + 2, &o);
    if (rc)
        return rc > 0 ? EXIT_SUCCESS : EXIT_USAGE;
    if (cmd->positional && !o.file) {
        fprintf(stderr, "flexgate-ctl %s: %s is required\n%s", cmd->name, cmd->positional,
                cmd->usage);
        return EXIT_USAGE;
    }
    if (has_opt(cmd, OPT_DB) && !o.db) {
        fprintf(stderr, "flexgate-ctl %s: --db PATH is required\n%s", cmd->name, cmd->usage);
        return EXIT_USAGE;
    }
    fg_log_level_t level = FG_LOG_INFO;
    if (fg_log_level_parse(o.log_level, &level) < 0) {
        fprintf(stderr, "flexgate-ctl %s: bad --log-level '%s' (debug, info, warn, error)\n",
                cmd->name, o.log_level);
        return EXIT_USAGE;
    }
    fg_log_init("ctl", level);
    return cmd->run(&o);
}
