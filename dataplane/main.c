/* main.c - flexgate-dp: command line, start-up, signals and graceful shutdown.
 *
 * The process is one event_base carrying three things: the status listener (health), the
 * proxy server (client traffic), and the subscriber (config from flexgate-ctl). Start-up
 * binds both listeners before anything else so a bad or taken address fails at once; the
 * subscriber then connects on the first loop iteration. Until a snapshot is applied the
 * proxy answers 503 and /health/ready says DOWN.
 *
 * SIGTERM/SIGINT start a drain: stop accepting, mark not-ready, close the control plane link,
 * and exit once in-flight connections are gone or DP_DRAIN_TIMEOUT_MS has passed. A second
 * signal exits at once. SIGHUP re-opens --log-file. Exit codes: 0 normal, 1 start-up
 * failure, 2 usage.
 *
 * With --workers N > 1 (the default is one per core) that process is a worker: the master
 * (master.c) forks N of them, each with the id <id>-wK, after loading the TLS certificates
 * once so a bad file fails before any fork. --workers 1 is the single process, no master. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "accesslog.h"
#include "cache.h"
#include "fg_error.h"
#include "fg_frame.h"
#include "fg_log.h"
#include "fg_proto.h"
#include "fg_secret.h"
#include "fg_time.h"
#include "generation.h"
#include "master.h"
#include "auth.h"
#include "ratelimit.h"
#include "metrics.h"
#include "server.h"
#include "status.h"
#include "subscriber.h"
#include "tls.h"
#include "upstream.h"
#include "trace.h"

#define DP_LISTEN_DEFAULT "127.0.0.1:8080"
#define DP_DRAIN_TIMEOUT_MS 5000u    /* longest wait for in-flight connections on SIGTERM */
#define DP_DRAIN_POLL_MS 50u         /* how often the drain checks for idle */
#define EXIT_STARTUP 1
#define EXIT_USAGE 2
#define DP_SECRET_ENV "FLEXGATE_DP_SECRET" /* the secret when --dp-secret-file is not given */

typedef struct dp_options {
    const char *control;
    const char *listen;
    const char *status_listen;
    const char *id;
    fg_log_level_t log_level;
    /* issue 3: TLS listener, workers, log file */
    const char *tls_listen;
    const char *tls_certs[TLS_MAX_CERTS], *tls_keys[TLS_MAX_CERTS];
    size_t n_tls_certs, n_tls_keys;
    long workers; /* -1 = not given: one per core */
    const char *log_file;
    fg_label_t labels[FG_LABELS_MAX];
    size_t n_labels;
    const char *control_ca;   /* tcp:// only: CA that signed the control plane's cert */
    const char *control_cert; /* tcp:// only: this data plane's client certificate */
    const char *control_key;  /* tcp:// only: its private key */
    const char *cache;        /* --cache FILE, NULL = none */
    const char *dp_secret_file; /* --dp-secret-file FILE, NULL = $FLEXGATE_DP_SECRET or none */
    char dp_secret[FG_HELLO_SECRET_MAX]; /* read at start (before any fork), "" = none */
} dp_options_t;

typedef struct dp_app {
    struct event_base *base;
    dp_status_t *status;
    dp_server_t *server;
    dp_subscriber_t *subscriber;
    dp_cache_t *cache;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *drain_timer;
    uint64_t drain_deadline_ms; /* monotonic; 0 = not draining */
    tls_server_t *tls;          /* --tls-listen certificates, or NULL; owned */
    char id[FG_ID_MAX];
    char hostname[FG_HOSTNAME_MAX];
    unsigned worker;            /* 1..N under a master, 0 for the single process */
} dp_app_t;

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: flexgate-dp --control unix:PATH|tcp://HOST:PORT [options]\n"
            "\n"
            "FlexGate data plane: proxies HTTP/1.1 traffic with the configuration it receives\n"
            "from flexgate-ctl over the snapshot protocol.\n"
            "\n"
            "Options:\n"
            "  --control ADDR        control plane: unix:PATH, or tcp://HOST:PORT with mutual\n"
            "                        TLS (needs the three --control-* files below)\n"
            "  --control-ca FILE     tcp://: CA certificate(s) the control plane's certificate\n"
            "                        must chain to; its name must match HOST\n"
            "  --control-cert FILE   tcp://: this data plane's client certificate (PEM)\n"
            "  --control-key FILE    tcp://: its private key (PEM)\n"
            "  --dp-secret-file FILE the data plane secret the control plane requires in HELLO\n"
            "                        on unix: sockets (its dp.secret, or the file given to its\n"
            "                        --dp-secret-file); default $FLEXGATE_DP_SECRET\n"
            "  --cache FILE          keep the last applied snapshot in FILE (written atomically)\n"
            "                        and serve it at start-up while the control plane is away\n"
            "  --listen ADDR         client listener, HOST:PORT (default %s)\n"
            "  --status-listen ADDR  health listener, HOST:PORT (default %s)\n"
            "  --id NAME             data plane id shown by the control plane\n"
            "                        (default <hostname>-<pid>)\n"
            "  --log-level LEVEL     debug, info, warn or error (default info)\n"
            "  --tls-listen ADDR     also accept TLS (1.2+) on HOST:PORT; needs --tls-cert\n"
            "  --tls-cert FILE       PEM certificate chain for --tls-listen; repeat with\n"
            "                        --tls-key for more certificates, chosen by SNI (the\n"
            "                        first is the default)\n"
            "  --tls-key FILE        PEM private key of the --tls-cert in the same position\n"
            "  --workers N           worker processes sharing the ports (SO_REUSEPORT), each\n"
            "                        with its own status listener and control plane session\n"
            "                        (id <id>-w<K>); 1 runs a single process without a master;\n"
            "                        0 or absent: one per core\n"
            "  --log-file FILE       append the log to FILE instead of stderr; SIGHUP\n"
            "                        re-opens it (logrotate)\n"
            "  --label KEY=VALUE     shown by the control plane (repeatable, at most 16)\n"
            "  --resolv-conf FILE    name servers, search domains and hosts file for upstream\n"
            "                        names (resolv.conf format; default /etc/resolv.conf)\n"
            "  --help                show this help and exit\n"
            "  --version             print the version and exit\n",
            DP_LISTEN_DEFAULT, DP_STATUS_LISTEN_DEFAULT);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "flexgate-dp: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'flexgate-dp --help'.\n");
    return EXIT_USAGE;
}

/* The TLS, worker and log-file options (in enum order from OPT_TLS_LISTEN). 0, or -1 after
 * printing the usage error. */
static int parse_issue3_option(int which, const char *arg, dp_options_t *o)
{
    char *end;
    switch (which) {
    case 0: o->tls_listen = arg; return 0;
    case 1:
    case 2:
        if ((which == 1 ? o->n_tls_certs : o->n_tls_keys) >= TLS_MAX_CERTS) {
            usage_error("at most %d --tls-cert/--tls-key pairs", TLS_MAX_CERTS);
            return -1;
        }
        if (which == 1)
            o->tls_certs[o->n_tls_certs++] = arg;
        else
            o->tls_keys[o->n_tls_keys++] = arg;
        return 0;
    case 3:
        errno = 0;
        o->workers = strtol(arg, &end, 10);
        if (errno || end == arg || *end || o->workers < 0 || o->workers > MASTER_WORKERS_MAX) {
            usage_error("--workers: want 0..%d, got '%s'", MASTER_WORKERS_MAX, arg);
            return -1;
        }
        return 0;
    default: o->log_file = arg; return 0;
    }
}

/* Returns -1 to go on, or the process's exit code. */
static int parse_options(int argc, char **argv, dp_options_t *o)
{
    enum { OPT_CONTROL = 256, OPT_LISTEN, OPT_STATUS, OPT_ID, OPT_LOG, OPT_HELP, OPT_VERSION,
           OPT_TLS_LISTEN, OPT_TLS_CERT, OPT_TLS_KEY, OPT_WORKERS, OPT_LOG_FILE,
           OPT_LABEL, OPT_CONTROL_CA, OPT_CONTROL_CERT, OPT_CONTROL_KEY,
           OPT_CACHE, OPT_DP_SECRET_FILE, OPT_RESOLV_CONF };
    static const struct option longopts[] = {
        {"control", required_argument, NULL, OPT_CONTROL},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"status-listen", required_argument, NULL, OPT_STATUS},
        {"id", required_argument, NULL, OPT_ID},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"label", required_argument, NULL, OPT_LABEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {"tls-listen", required_argument, NULL, OPT_TLS_LISTEN},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"control-ca", required_argument, NULL, OPT_CONTROL_CA},
        {"control-cert", required_argument, NULL, OPT_CONTROL_CERT},
        {"control-key", required_argument, NULL, OPT_CONTROL_KEY},
        {"cache", required_argument, NULL, OPT_CACHE},
        {"dp-secret-file", required_argument, NULL, OPT_DP_SECRET_FILE},
        {"resolv-conf", required_argument, NULL, OPT_RESOLV_CONF},
        {NULL, 0, NULL, 0},
    };
    dp_control_addr_t addr;
    fg_error_t err;
    int c;

    o->listen = DP_LISTEN_DEFAULT;
    o->status_listen = DP_STATUS_LISTEN_DEFAULT;
    o->log_level = FG_LOG_INFO;
    o->workers = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CONTROL: o->control = optarg; break;
        case OPT_LISTEN: o->listen = optarg; break;
        case OPT_STATUS: o->status_listen = optarg; break;
        case OPT_ID: o->id = optarg; break;
        case OPT_LOG:
            if (fg_log_level_parse(optarg, &o->log_level) < 0)
                return usage_error("--log-level: unknown level '%s'", optarg);
            break;
        case OPT_TLS_LISTEN:
        case OPT_TLS_CERT:
        case OPT_TLS_KEY:
        case OPT_WORKERS:
        case OPT_LOG_FILE:
            if (parse_issue3_option(c - OPT_TLS_LISTEN, optarg, o) < 0)
                return EXIT_USAGE;
            break;
        case OPT_LABEL:
            if (o->n_labels == FG_LABELS_MAX)
                return usage_error("--label: at most %d labels", FG_LABELS_MAX);
            if (fg_label_parse(optarg, &o->labels[o->n_labels], &err) < 0)
                return usage_error("--label '%s': %s", optarg, err.message);
            for (size_t i = 0; i < o->n_labels; i++)
                if (strcmp(o->labels[i].key, o->labels[o->n_labels].key) == 0)
                    return usage_error("--label: '%s' given twice", o->labels[i].key);
            o->n_labels++;
            break;
        case OPT_CONTROL_CA: o->control_ca = optarg; break;
        case OPT_CONTROL_CERT: o->control_cert = optarg; break;
        case OPT_CONTROL_KEY: o->control_key = optarg; break;
        case OPT_CACHE: o->cache = optarg; break;
        case OPT_DP_SECRET_FILE: o->dp_secret_file = optarg; break;
        case OPT_RESOLV_CONF: upstream_set_resolv_conf(optarg); break; /* argv outlives it */
        case 'h':
        case OPT_HELP: print_usage(stdout); return 0;
        case OPT_VERSION:
            printf("flexgate-dp %s (snapshot protocol %d)\n", FG_VERSION, FG_PROTOCOL_VERSION);
            return 0;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->control)
        return usage_error("--control is required (e.g. --control unix:./var/flexgate.sock)");
    if (subscriber_parse_address(o->control, &addr, &err) < 0)
        return usage_error("--control: %s", err.message);
    if (addr.kind == DP_CONTROL_TCP &&
        (!o->control_ca || !o->control_cert || !o->control_key))
        return usage_error("--control %s: tcp:// needs --control-ca, --control-cert and "
                           "--control-key (mutual TLS)", o->control);
    if (addr.kind == DP_CONTROL_UNIX && (o->control_ca || o->control_cert || o->control_key))
        return usage_error("--control-ca, --control-cert and --control-key are for tcp:// "
                           "control plane addresses");
    if (o->cache && !*o->cache)
        return usage_error("--cache needs a file name");
    if (o->dp_secret_file && !*o->dp_secret_file)
        return usage_error("--dp-secret-file needs a file name");
    if (o->id && (!*o->id || strlen(o->id) >= FG_ID_MAX))
        return usage_error("--id: must be 1..127 characters, got '%s'", o->id);
    if (o->n_tls_certs != o->n_tls_keys)
        return usage_error("give one --tls-key per --tls-cert (%zu certificates, %zu keys)",
                           o->n_tls_certs, o->n_tls_keys);
    if (o->tls_listen && !o->n_tls_certs)
        return usage_error("--tls-listen needs --tls-cert and --tls-key");
    if (!o->tls_listen && o->n_tls_certs)
        return usage_error("--tls-cert is only used with --tls-listen");
    return -1;
}

/* ---- shutdown ----------------------------------------------------------------------- */

static void app_finish_drain(dp_app_t *app, const char *why)
{
    char left[24];

    snprintf(left, sizeof(left), "%zu",
             app->server ? server_active_connections(app->server) : (size_t)0);
    fg_log(FG_LOG_INFO, "drain finished", "reason", why, "connections_left", left, NULL);
    event_base_loopexit(app->base, NULL);
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    dp_app_t *app = arg;

    (void)fd;
    (void)what;
    if (!app->server || server_active_connections(app->server) == 0)
        app_finish_drain(app, "idle");
    else if (fg_now_ms() >= app->drain_deadline_ms)
        app_finish_drain(app, "timeout");
}

static void app_start_drain(dp_app_t *app, const char *signame)
{
    struct timeval poll = {.tv_sec = 0, .tv_usec = DP_DRAIN_POLL_MS * 1000};

    if (app->drain_deadline_ms) {
        fg_log(FG_LOG_WARN, "second signal during drain: exiting now", "signal", signame, NULL);
        event_base_loopexit(app->base, NULL);
        return;
    }
    fg_log(FG_LOG_INFO, "shutting down", "signal", signame, NULL);
    app->drain_deadline_ms = fg_now_ms() + DP_DRAIN_TIMEOUT_MS;
    if (app->status)
        status_set_draining(app->status, true);
    if (app->server)
        server_stop_accepting(app->server);
    subscriber_stop(app->subscriber);
    event_add(app->drain_timer, &poll);
    on_drain_timer(-1, 0, app); /* nothing in flight: exit without waiting a tick */
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    dp_app_t *app = arg;

    (void)what;
    if (sig == SIGHUP) {
        /* logrotate renamed the file: lines go to a new file of the configured name. */
        if (fg_log_reopen() < 0)
            fg_log(FG_LOG_ERROR, "SIGHUP: cannot reopen the log file", NULL);
        else
            fg_log(FG_LOG_INFO, "SIGHUP: log reopened", NULL);
        if (accesslog_reopen() < 0)
            fg_log(FG_LOG_ERROR, "SIGHUP: cannot reopen the access log", NULL);
        return;
    }
    app_start_drain(app, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* libevent's own warnings would otherwise be raw text in a JSON-lines log. */
static void on_libevent_log(int severity, const char *msg)
{
    fg_log_level_t level = severity == EVENT_LOG_DEBUG ? FG_LOG_DEBUG
                         : severity == EVENT_LOG_MSG   ? FG_LOG_INFO
                         : severity == EVENT_LOG_WARN  ? FG_LOG_WARN
                                                       : FG_LOG_ERROR;
    fg_log(level, "libevent", "detail", msg, NULL);
}

/* ---- start-up ----------------------------------------------------------------------- */

/* The subscriber's hook: every applied snapshot goes to the cache writer (a copy; the disk
 * work happens on the writer's thread). */
static void on_snapshot_applied(void *arg, const dp_generation_t *g, const char *payload,
                                size_t len)
{
    dp_app_t *app = arg;

    cache_save(app->cache, payload, len, g->version);
}

/* Serve the cached snapshot until the control plane says otherwise. It is verified like a
 * snapshot from the wire; one that fails is never served. Returns true when installed. */
static bool app_load_cache(const char *path)
{
    dp_generation_t *g;
    fg_error_t err;
    char v[24];

    fg_error_clear(&err);
    g = cache_load(path, FG_FRAME_MAX_PAYLOAD_DEFAULT, &err);
    if (!g) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            fg_log(FG_LOG_INFO, "no snapshot cache yet", "cache", path, NULL);
        else
            fg_log(FG_LOG_WARN, "ignoring the snapshot cache", "cache", path, "error",
                   err.message, NULL);
        return false;
    }
    snprintf(v, sizeof(v), "%lld", (long long)g->version);
    generation_install(g);
    fg_log(FG_LOG_INFO, "serving the cached snapshot until the control plane answers",
           "cache", path, "version", v, NULL);
    return true;
}

static int app_start(dp_app_t *app, const dp_options_t *o)
{
    dp_server_conf_t server_conf = {.listen = o->listen, .tls_listen = o->tls_listen,
                                    .tls = app->tls};
    dp_status_conf_t status_conf = {.listen = o->status_listen};
    dp_subscriber_conf_t sub_conf;
    fg_error_t err;

    fg_error_clear(&err);
    app->base = event_base_new();
    if (!app->base) {
        fg_log(FG_LOG_ERROR, "cannot create the event loop", NULL);
        return -1;
    }
    if (ratelimit_init(app->base) < 0) {
        fg_log(FG_LOG_ERROR, "cannot set up rate limiting", NULL);
        return -1;
    }
    app->status = status_start(app->base, &status_conf, &err);
    if (!app->status) {
        fg_log(FG_LOG_ERROR, "cannot start the status listener", "listen", o->status_listen,
               "error", err.message, NULL);
        return -1;
    }
    app->server = server_start(app->base, &server_conf, &err);
    if (!app->server) {
        fg_log(FG_LOG_ERROR, "cannot start the proxy listener", "listen", o->listen, "error",
               err.message, NULL);
        return -1;
    }
    /* Issue 7: ids unique to this process, gauges published, the access log's sink. */
    trace_init();
    if (metrics_start(app->base, app->server) < 0 || accesslog_start(app->base, app->worker) < 0) {
        fg_log(FG_LOG_ERROR, "cannot start the metrics or the access log", NULL);
        return -1;
    }
    bool from_cache = false;
    if (o->cache) {
        app->cache = cache_open(o->cache, &err);
        if (!app->cache) {
            fg_log(FG_LOG_ERROR, "cannot use the snapshot cache", "cache", o->cache, "error",
                   err.message, NULL);
            return -1;
        }
        from_cache = app_load_cache(o->cache);
    }
    memset(&sub_conf, 0, sizeof(sub_conf));
    sub_conf.control = o->control;
    sub_conf.control_ca = o->control_ca;
    sub_conf.control_cert = o->control_cert;
    sub_conf.control_key = o->control_key;
    sub_conf.dp_id = app->id;
    sub_conf.hostname = app->hostname;
    sub_conf.labels = o->labels;
    sub_conf.n_labels = o->n_labels;
    sub_conf.secret = o->dp_secret;
    if (app->cache) {
        sub_conf.on_applied = on_snapshot_applied;
        sub_conf.on_applied_arg = app;
    }
    app->subscriber = subscriber_start(app->base, &sub_conf, &err);
    if (!app->subscriber) {
        fg_log(FG_LOG_ERROR, "cannot start the control plane client", "control", o->control,
               "error", err.message, NULL);
        return -1;
    }
    subscriber_set_config_from_cache(app->subscriber, from_cache);
    status_set_subscriber(app->status, app->subscriber);

    app->sig_term = evsignal_new(app->base, SIGTERM, on_signal, app);
    app->sig_int = evsignal_new(app->base, SIGINT, on_signal, app);
    app->sig_hup = evsignal_new(app->base, SIGHUP, on_signal, app);
    app->drain_timer = event_new(app->base, -1, EV_PERSIST, on_drain_timer, app);
    if (!app->sig_term || !app->sig_int || !app->sig_hup || !app->drain_timer ||
        evsignal_add(app->sig_term, NULL) < 0 || evsignal_add(app->sig_int, NULL) < 0 ||
        evsignal_add(app->sig_hup, NULL) < 0) {
        fg_log(FG_LOG_ERROR, "cannot install signal handlers", NULL);
        return -1;
    }
    return 0;
}

static void app_free(dp_app_t *app)
{
    /* The subscriber and status only read the generation; the server's connections may
     * hold references to it, so they go first and the current slot last. */
    subscriber_free(app->subscriber);
    cache_close(app->cache); /* writes a snapshot still pending */
    accesslog_stop();        /* writes the lines still buffered */
    metrics_stop();
    status_free(app->status);
    server_free(app->server);
    ratelimit_shutdown(); /* after the server: no request is waiting on Redis any more */
    generation_shutdown();
    if (app->drain_timer)
        event_free(app->drain_timer);
    if (app->sig_term)
        event_free(app->sig_term);
    if (app->sig_int)
        event_free(app->sig_int);
    if (app->sig_hup)
        event_free(app->sig_hup);
    if (app->base)
        event_base_free(app->base);
    tls_server_free(app->tls);
    libevent_global_shutdown();
}

static void app_identify(dp_app_t *app, const dp_options_t *o)
{
    if (gethostname(app->hostname, sizeof(app->hostname)) < 0 || !app->hostname[0])
        snprintf(app->hostname, sizeof(app->hostname), "localhost");
    app->hostname[sizeof(app->hostname) - 1] = '\0';
    if (o->id)
        snprintf(app->id, sizeof(app->id), "%s", o->id);
    else
        snprintf(app->id, sizeof(app->id), "%.100s-%ld", app->hostname, (long)getpid());
}

/* One data plane: the whole process with --workers 1, else one forked worker. `ready_fd`
 * (-1 for none) gets one byte once everything is listening. */
static int run_data_plane(dp_app_t *app, const dp_options_t *o, int ready_fd)
{
    char pid[24];

    if (app_start(app, o) < 0) {
        app_free(app);
        return EXIT_STARTUP;
    }
    if (ready_fd >= 0) {
        (void)!write(ready_fd, "r", 1);
        close(ready_fd);
    }
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    fg_log(FG_LOG_INFO, "data plane started", "version", FG_VERSION, "id", app->id, "pid", pid,
           "listen", o->listen, "status_listen", o->status_listen, "control", o->control,
           "tls_listen", o->tls_listen, NULL);
    event_base_dispatch(app->base);
    fg_log(FG_LOG_INFO, "data plane stopped", "id", app->id, NULL);
    app_free(app);
    return 0;
}

typedef struct dp_worker_arg {
    const dp_options_t *opts;
    const dp_app_t *proto; /* identity and TLS contexts made before the fork */
} dp_worker_arg_t;

static int run_worker(unsigned index, int ready_fd, void *arg)
{
    const dp_worker_arg_t *w = arg;
    dp_app_t app;

    memset(&app, 0, sizeof(app));
    app.tls = w->proto->tls; /* the forked copy: this process's own */
    memcpy(app.hostname, w->proto->hostname, sizeof(app.hostname));
    snprintf(app.id, sizeof(app.id), "%.120s-w%u", w->proto->id, index + 1);
    app.worker = index + 1;
    metrics_worker_attach(index); /* the slot the master mapped before forking */
    return run_data_plane(&app, w->opts, ready_fd);
}

/* The secret for HELLO: --dp-secret-file, else $FLEXGATE_DP_SECRET, else none (a unix:
 * control plane will refuse us, so say so now). Read once, before any fork. 0 or -1. */
static int load_dp_secret(dp_options_t *o)
{
    const char *env = getenv(DP_SECRET_ENV);
    fg_error_t err;
    bool too_open = false;

    fg_error_clear(&err);
    if (o->dp_secret_file) {
        if (fg_secret_read_file(o->dp_secret_file, o->dp_secret, sizeof(o->dp_secret),
                                &too_open, &err) < 0) {
            fg_log(FG_LOG_ERROR, "cannot read the data plane secret", "error", err.message,
                   NULL);
            return -1;
        }
        if (too_open)
            fg_log(FG_LOG_WARN, "secret file is accessible to group or others", "path",
                   o->dp_secret_file, NULL);
    } else if (env && *env) {
        if (strlen(env) >= sizeof(o->dp_secret)) {
            fg_log(FG_LOG_ERROR, "cannot use the data plane secret", "error",
                   DP_SECRET_ENV " is longer than 255 bytes", NULL);
            return -1;
        }
        snprintf(o->dp_secret, sizeof(o->dp_secret), "%s", env);
    } else if (strncmp(o->control, "unix:", 5) == 0) {
        fg_log(FG_LOG_WARN, "no data plane secret (--dp-secret-file or " DP_SECRET_ENV "): "
               "the control plane will refuse this data plane", NULL);
    }
    return 0;
}

static unsigned default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : n > MASTER_WORKERS_MAX ? MASTER_WORKERS_MAX : (unsigned)n;
}

int main(int argc, char **argv)
{
    dp_options_t opts;
    dp_app_t app;
    fg_error_t err;
    int rc;

    memset(&opts, 0, sizeof(opts));
    memset(&app, 0, sizeof(app));
    rc = parse_options(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    fg_log_init("dp", opts.log_level);
    if (opts.log_file && (rc = fg_log_open(opts.log_file)) < 0) {
        fprintf(stderr, "flexgate-dp: --log-file %s: %s\n", opts.log_file, strerror(-rc));
        return EXIT_STARTUP;
    }
    event_set_log_callback(on_libevent_log);
    /* A peer that goes away mid-write must cost an EPIPE on that connection, not the
     * process. */
    signal(SIGPIPE, SIG_IGN);
    app_identify(&app, &opts);
    if (load_dp_secret(&opts) < 0)
        return EXIT_STARTUP;
    if (opts.tls_listen) {
        /* Loaded once, before any fork: a bad file fails the start with its name. */
        fg_error_clear(&err);
        app.tls = tls_server_new(opts.tls_certs, opts.tls_keys, opts.n_tls_certs, &err);
        if (!app.tls) {
            fg_log(FG_LOG_ERROR, "cannot load the TLS certificates", "error", err.message, NULL);
            return EXIT_STARTUP;
        }
    }

    unsigned workers = opts.workers > 0 ? (unsigned)opts.workers : default_workers();
    /* One metrics slot per worker, mapped before any fork so every worker sees them all. */
    if ((rc = metrics_shared_init(workers)) < 0) {
        fg_log(FG_LOG_ERROR, "cannot map the shared metrics", "error", strerror(-rc), NULL);
        return EXIT_STARTUP;
    }
    if (workers == 1) {
        metrics_worker_attach(0);
        return run_data_plane(&app, &opts, -1);
    }
    /* The workers' local rate-limit buckets, shared so each limit holds once per data plane. */
    if ((rc = ratelimit_shared_init()) < 0)
        fg_log(FG_LOG_WARN, "cannot map the shared rate-limit table: each worker keeps its own",
               "error", strerror(-rc), NULL);
    /* And the signatures seen, so a replay is caught whichever worker it reaches. */
    if ((rc = auth_replay_shared_init()) < 0)
        fg_log(FG_LOG_WARN, "cannot map the shared replay cache: each worker keeps its own",
               "error", strerror(-rc), NULL);
    dp_worker_arg_t warg = {.opts = &opts, .proto = &app};
    master_conf_t mconf = {.workers = workers, .run = run_worker, .arg = &warg,
                           .drain_timeout_ms = DP_DRAIN_TIMEOUT_MS};
    char n[16];
    snprintf(n, sizeof n, "%u", workers);
    fg_log(FG_LOG_INFO, "data plane master starting", "id", app.id, "workers", n, NULL);
    rc = master_run(&mconf);
    tls_server_free(app.tls);
    return rc;
}
