/* ctl_metrics.c - the control plane's counters, /metrics and /health/deep (see
 * ctl_metrics.h).
 *
 * Everything here is process-global: the control plane is one process. The exposition is
 * built into one heap buffer per scrape; the data-plane figures come from the publisher's
 * registry document (publisher_dataplanes_json), so the publisher needs no new interface. */
#include "ctl_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg_prom.h"
#include "publisher.h"
#include "store.h"

#define CTL_PUBLISH_BUCKETS 10
#define CTL_METRICS_BODY_INIT 8192

static const uint64_t publish_bucket_us[CTL_PUBLISH_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000, 30000000,
};
static const char *const publish_bucket_le[CTL_PUBLISH_BUCKETS] = {
    "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "5", "30",
};

/* Methods kept as label values; anything else a client sends is "OTHER". */
static const char *const known_methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                            "OPTIONS"};
#define N_METHODS (sizeof known_methods / sizeof known_methods[0])

typedef struct admin_series {
    char endpoint[CTL_METRICS_ENDPOINT_MAX];
    uint8_t method; /* index in known_methods, N_METHODS = OTHER */
    uint16_t status;
    uint64_t count;
} admin_series_t;

static struct {
    pthread_mutex_t mu; /* guards `series` and `n_series` */
    admin_series_t series[CTL_METRICS_SERIES_MAX];
    size_t n_series;
    uint64_t overflow;
    uint64_t publish_buckets[CTL_PUBLISH_BUCKETS + 1];
    uint64_t publish_count, publish_sum_us;
} cm = {.mu = PTHREAD_MUTEX_INITIALIZER};

uint64_t ctl_metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint8_t method_index(const char *m)
{
    for (uint8_t i = 0; i < N_METHODS; i++)
        if (m && strcmp(m, known_methods[i]) == 0)
            return i;
    return N_METHODS;
}

void ctl_metrics_admin_request(const char *route, bool item, const char *action,
                               const char *method, int status)
{
    char endpoint[CTL_METRICS_ENDPOINT_MAX];
    uint8_t mi = method_index(method);
    uint16_t st = status >= 100 && status <= 599 ? (uint16_t)status : 0;

    snprintf(endpoint, sizeof endpoint, "%s%s%s%s", route ? route : "(unmatched)",
             item ? "/{id}" : "", action ? "/" : "", action ? action : "");
    pthread_mutex_lock(&cm.mu);
    size_t i = 0;
    for (; i < cm.n_series; i++) {
        admin_series_t *s = &cm.series[i];
        if (s->method == mi && s->status == st && strcmp(s->endpoint, endpoint) == 0)
            break;
    }
    if (i == cm.n_series && cm.n_series < CTL_METRICS_SERIES_MAX) {
        admin_series_t *s = &cm.series[cm.n_series++];
        memcpy(s->endpoint, endpoint, sizeof endpoint);
        s->method = mi;
        s->status = st;
    }
    if (i < cm.n_series)
        cm.series[i].count++;
    else
        cm.overflow++;
    pthread_mutex_unlock(&cm.mu);
}

void ctl_metrics_publish(uint64_t us)
{
    size_t b = 0;
    while (b < CTL_PUBLISH_BUCKETS && us > publish_bucket_us[b])
        b++;
    __atomic_fetch_add(&cm.publish_buckets[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&cm.publish_count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&cm.publish_sum_us, us, __ATOMIC_RELAXED);
}

/* ---- exposition ------------------------------------------------------------------------ */

typedef struct text {
    char *p;
    size_t len, cap;
    bool failed;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->failed = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

static void family(text_t *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_admin(text_t *t)
{
    family(t, "flexgate_ctl_admin_requests_total", "counter",
           "Admin API requests, by endpoint template, method and status.");
    pthread_mutex_lock(&cm.mu);
    for (size_t i = 0; i < cm.n_series; i++) {
        const admin_series_t *s = &cm.series[i];
        char ep[CTL_METRICS_ENDPOINT_MAX * 2];
        fg_prom_label(ep, sizeof ep, s->endpoint, sizeof s->endpoint);
        put(t, "flexgate_ctl_admin_requests_total{endpoint=\"%s\",method=\"%s\",status=\"%u\"} "
            "%" PRIu64 "\n", ep, s->method < N_METHODS ? known_methods[s->method] : "OTHER",
            (unsigned)s->status, s->count);
    }
    if (cm.overflow)
        put(t, "flexgate_ctl_admin_requests_total{endpoint=\"(overflow)\",method=\"OTHER\","
            "status=\"0\"} %" PRIu64 "\n", cm.overflow);
    pthread_mutex_unlock(&cm.mu);
}

static void render_publish(text_t *t)
{
    uint64_t cum = 0;
    family(t, "flexgate_ctl_publish_duration_seconds", "histogram",
           "Time to load, encode and push a new config version to the data planes.");
    for (size_t b = 0; b <= CTL_PUBLISH_BUCKETS; b++) {
        cum += __atomic_load_n(&cm.publish_buckets[b], __ATOMIC_RELAXED);
        put(t, "flexgate_ctl_publish_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
            b < CTL_PUBLISH_BUCKETS ? publish_bucket_le[b] : "+Inf", cum);
    }
    uint64_t sum = __atomic_load_n(&cm.publish_sum_us, __ATOMIC_RELAXED);
    put(t, "flexgate_ctl_publish_duration_seconds_sum %" PRIu64 ".%06" PRIu64 "\n",
        sum / 1000000u, sum % 1000000u);
    put(t, "flexgate_ctl_publish_duration_seconds_count %" PRIu64 "\n",
        __atomic_load_n(&cm.publish_count, __ATOMIC_RELAXED));
}

/* Sync statuses publisher.c reports; data planes by status and each one's version. */
static void render_dataplanes(text_t *t, publisher_t *pub, int64_t version)
{
    static const char *const statuses[] = {"in_sync", "behind", "nacked", "disconnected",
                                           "incompatible"};
    uint64_t counts[sizeof statuses / sizeof statuses[0]] = {0};
    cJSON *items = pub ? publisher_dataplanes_json(pub, version) : NULL; /* an array */
    const cJSON *d;

    family(t, "flexgate_ctl_dataplane_config_version", "gauge",
           "Config version each known data plane has applied.");
    cJSON_ArrayForEach(d, items) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "status");
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(d, "applied_version");
        char lv[512];
        if (!cJSON_IsString(id) || !cJSON_IsString(st) || !cJSON_IsNumber(av))
            continue;
        for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
            counts[i] += strcmp(st->valuestring, statuses[i]) == 0;
        fg_prom_label(lv, sizeof lv, id->valuestring, strlen(id->valuestring));
        put(t, "flexgate_ctl_dataplane_config_version{dataplane=\"%s\"} %.0f\n", lv,
            av->valuedouble);
    }
    cJSON_Delete(items);
    family(t, "flexgate_ctl_dataplanes", "gauge", "Known data planes, by sync status.");
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        put(t, "flexgate_ctl_dataplanes{status=\"%s\"} %" PRIu64 "\n", statuses[i], counts[i]);
}

static void render_process(text_t *t)
{
    fg_proc_stats_t ps;
    fg_proc_stats(&ps);
    family(t, "process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
    put(t, "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n", ps.cpu_us / 1000000u,
        ps.cpu_us % 1000000u);
    family(t, "process_resident_memory_bytes", "gauge", "Resident memory, in bytes.");
    put(t, "process_resident_memory_bytes %" PRIu64 "\n", ps.rss_bytes);
    family(t, "process_open_fds", "gauge", "Open file descriptors.");
    put(t, "process_open_fds %" PRIu64 "\n", ps.open_fds);
}

enum MHD_Result api_metrics(api_req_t *req)
{
    static const char *const kinds[STORE_SQLITE_KINDS] = {"constraint", "busy", "other"};
    text_t t = {.p = malloc(CTL_METRICS_BODY_INIT), .cap = CTL_METRICS_BODY_INIT};
    fg_error_t err;
    int64_t version = 0;

    if (!t.p)
        return api_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                               "out of memory");
    t.p[0] = '\0';
    bool db_up = store_version(req->store, &version, &err) == 0;
    render_admin(&t);
    family(&t, "flexgate_ctl_config_version", "gauge", "Current config version in the store.");
    put(&t, "flexgate_ctl_config_version %" PRId64 "\n", db_up ? version : 0);
    render_dataplanes(&t, req->publisher, version);
    render_publish(&t);
    family(&t, "flexgate_ctl_sqlite_errors_total", "counter", "Failed SQLite calls, by kind.");
    for (int k = 0; k < STORE_SQLITE_KINDS; k++)
        put(&t, "flexgate_ctl_sqlite_errors_total{kind=\"%s\"} %" PRIu64 "\n", kinds[k],
            store_sqlite_errors((store_sqlite_kind_t)k));
    render_process(&t);
    if (t.failed) {
        free(t.p);
        return api_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
                               "out of memory");
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(t.len, t.p,
                                                                MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(t.p);
    return api_reply_response(req, MHD_HTTP_OK, resp,
                              "text/plain; version=0.0.4; charset=utf-8");
}

/* Deep: the database answers, the publisher holds a snapshot, and how every data plane
 * stands. Ready-or-not follows /health/ready; data planes out of sync make it DEGRADED
 * (200: the control plane itself works). */
enum MHD_Result api_health_deep(api_req_t *req)
{
    fg_error_t err;
    int64_t version = 0;
    bool db_up = store_version(req->store, &version, &err) == 0;
    bool pub_up = publisher_version(req->publisher) > 0;
    cJSON *root = cJSON_CreateObject();
    cJSON *checks = cJSON_AddObjectToObject(root, "checks");
    cJSON *items = publisher_dataplanes_json(req->publisher, version); /* an array */
    const cJSON *d;
    bool behind = false;

    cJSON_ArrayForEach(d, items) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "status");
        const cJSON *conn = cJSON_GetObjectItemCaseSensitive(d, "connected");
        behind |= cJSON_IsTrue(conn) && cJSON_IsString(st) &&
                  strcmp(st->valuestring, "in_sync") != 0;
    }
    cJSON_AddStringToObject(root, "status", !(db_up && pub_up) ? "DOWN"
                                            : behind ? "DEGRADED" : "UP");
    cJSON_AddStringToObject(checks, "database", db_up ? "UP" : "DOWN");
    cJSON_AddStringToObject(checks, "publisher", pub_up ? "UP" : "DOWN");
    cJSON_AddStringToObject(checks, "dataplanes", behind ? "DEGRADED" : "UP");
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    if (items)
        cJSON_AddItemToObject(root, "dataplanes", items);
    else
        cJSON_AddArrayToObject(root, "dataplanes");
    return api_reply_json(req, db_up && pub_up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                          root);
}
