/* test_metrics.c - unit tests for dataplane/metrics.c: workers' slots in the shared mapping
 * summed by the scrape, counters kept across a worker restart, the bounded tables and their
 * overflow series, histogram buckets, and label escaping (common/fg_prom.c).
 *
 * Workers are real forked processes writing their own slot, as under the master. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "../../dataplane/metrics.c"

#define TEST_WORKERS 3

/* Run `fn(index, arg)` in a forked child attached to slot `index`, and wait for it. */
static void in_worker(unsigned index, void (*fn)(unsigned, void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        metrics_worker_attach(index);
        fn(index, arg);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static char *render(void)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(metrics_render(b), 0);
    size_t n = evbuffer_get_length(b);
    char *text = malloc(n + 1);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    return text;
}

/* The value of the sample line that starts with `series` ("name{labels}"), or -1. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void record_get_200(unsigned index, void *arg)
{
    unsigned n = *(unsigned *)arg + index; /* worker i records n + i requests */
    for (unsigned i = 0; i < n; i++)
        metrics_request("orders", HTTP_GET, 200, 1500, 10, 100, "backend", 1000);
    metrics_request(NULL, HTTP_POST, 404, 100, 0, 0, NULL, 0);
    metrics_counters()->ssrf_blocked += index + 1;
}

static void test_workers_are_summed(void **state)
{
    (void)state;
    unsigned base = 10;
    for (unsigned w = 0; w < TEST_WORKERS; w++)
        in_worker(w, record_get_200, &base);
    char *text = render();
    /* 10 + 11 + 12 requests, one 404 per worker, ssrf 1 + 2 + 3. */
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"GET\",route="
                                             "\"orders\",status=\"200\"}"), 33);
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"POST\",route="
                                             "\"(none)\",status=\"404\"}"), 3);
    assert_int_equal((int)sample_value(text, "flexgate_ssrf_blocked_total"), 6);
    assert_int_equal((int)sample_value(text, "http_request_duration_seconds_count"
                                             "{route=\"orders\"}"), 33);
    assert_int_equal((int)sample_value(text, "flexgate_sent_bytes_total{route=\"orders\"}"),
                     3300);
    assert_int_equal((int)sample_value(text, "flexgate_received_bytes_total"
                                             "{route=\"orders\"}"), 330);
    assert_int_equal((int)sample_value(text, "flexgate_upstream_response_seconds_count"
                                             "{upstream=\"backend\"}"), 33);
    assert_int_equal((int)sample_value(text, "flexgate_workers"), TEST_WORKERS);
    free(text);
}

static void set_cpu(unsigned index, void *arg)
{
    (void)index;
    own->mirror.cpu_us = *(uint64_t *)arg;
    own->mirror.server.connections_accepted = *(uint64_t *)arg;
    metrics_request("restart", HTTP_GET, 200, 10, 0, 0, NULL, 0);
}

/* A restarted worker (a new process on the same slot) starts its own CPU time and server
 * counters at zero: the predecessor's last values move into the base, so the sums only
 * grow; counters bumped in the slot simply continue. */
static void test_restart_keeps_sums_monotonic(void **state)
{
    (void)state;
    uint64_t first = 700000, second = 300000;
    in_worker(1, set_cpu, &first);
    in_worker(1, set_cpu, &second);
    char *text = render();
    /* slot 1 also holds test_workers_are_summed's figures: CPU was never set there. */
    assert_true(sample_value(text, "process_cpu_seconds_total") >= 1.0);
    assert_int_equal((int)sample_value(text, "flexgate_client_connections_total"), 1000000);
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"GET\",route="
                                             "\"restart\",status=\"200\"}"), 2);
    free(text);
}

static void record_many_routes(unsigned index, void *arg)
{
    (void)index;
    unsigned n = *(unsigned *)arg;
    char name[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof name, "route-%u", i);
        metrics_request(name, HTTP_GET, 201, 100, 0, 0, NULL, 0);
    }
}

/* More routes than the tables hold: the slot never grows past its size, and what does not
 * fit is counted under "(overflow)", so the totals stay exact. */
static void test_tables_are_bounded(void **state)
{
    (void)state;
    unsigned n = DP_METRICS_ROUTES_MAX + 200;
    in_worker(2, record_many_routes, &n);
    char *text = render();
    double total = 0, hist_total = 0;
    unsigned lines = 0;
    for (char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "http_requests_total{", 20) == 0 && strstr(p, "status=\"201\"") &&
            strstr(p, "status=\"201\"") < strchr(p, '\n')) {
            total += strtod(strchr(p, ' ') + 1, NULL);
            lines++;
        }
        if (strncmp(p, "http_request_duration_seconds_count{route=\"route-", 49) == 0 ||
            strncmp(p, "http_request_duration_seconds_count{route=\"(overflow)\"}", 55) == 0)
            hist_total += strtod(strchr(p, ' ') + 1, NULL);
    }
    assert_int_equal((int)total, (int)n);
    assert_true(lines <= DP_METRICS_SERIES_MAX + METRICS_STATUS_MAX);
    assert_int_equal((int)hist_total, (int)n);
    assert_true(sample_value(text, "http_request_duration_seconds_count"
                                   "{route=\"(overflow)\"}") > 0);
    free(text);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    hist_entry_t e;
    memset(&e, 0, sizeof e);
    hist_observe(&e, 400);      /* <= 0.0005 */
    hist_observe(&e, 500);      /* le is inclusive */
    hist_observe(&e, 501);      /* 0.001 */
    hist_observe(&e, 20000000); /* past 10 s: +Inf only */
    assert_int_equal((int)e.v[HIST_BUCKETS + 0], 2);
    assert_int_equal((int)e.v[HIST_BUCKETS + 1], 1);
    assert_int_equal((int)e.v[HIST_INF], 1);
    assert_int_equal((int)e.v[HIST_COUNT], 4);
    assert_int_equal((int)e.v[HIST_SUM_US], 20001401);
}

static void test_label_escaping(void **state)
{
    (void)state;
    char out[64];
    fg_prom_label(out, sizeof out, "a\"b\\c\nd", 7);
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    fg_prom_label(out, 6, "abcdefgh", 8); /* cut short, still terminated */
    assert_true(strlen(out) < 6);
}

static void record_reused_names(unsigned index, void *arg)
{
    (void)index, (void)arg;
    char route[16], upstream[16];
    /* The same addresses with other contents, as when a generation is freed and its
     * memory holds the next one's names: the memo must not count under the old name. */
    for (int round = 0; round < 3; round++) {
        strcpy(route, "memo-a");
        strcpy(upstream, "memo-up-a");
        metrics_request(route, HTTP_GET, 200, 100, 1, 2, upstream, 50);
        metrics_request(route, HTTP_GET, 503, 100, 1, 2, upstream, 50);
        strcpy(route, "memo-b");
        strcpy(upstream, "memo-up-b");
        metrics_request(route, HTTP_GET, 200, 100, 1, 2, upstream, 50);
        strcpy(route, "memo-a2"); /* a longer name sharing the prefix */
        metrics_request(route, HTTP_PUT, 200, 100, 1, 2, NULL, 0);
    }
    /* A name at a new address finds its entries as before. */
    metrics_request("memo-a", HTTP_GET, 200, 100, 1, 2, "memo-up-a", 50);
}

/* The per-process memo of entries (keyed by the string's address) never counts a request
 * under another route, status, method or upstream. */
static void test_memo_follows_content(void **state)
{
    (void)state;
    in_worker(0, record_reused_names, NULL);
    char *text = render();
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"GET\",route="
                                             "\"memo-a\",status=\"200\"}"), 4);
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"GET\",route="
                                             "\"memo-a\",status=\"503\"}"), 3);
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"GET\",route="
                                             "\"memo-b\",status=\"200\"}"), 3);
    assert_int_equal((int)sample_value(text, "http_requests_total{method=\"PUT\",route="
                                             "\"memo-a2\",status=\"200\"}"), 3);
    assert_int_equal((int)sample_value(text, "http_request_duration_seconds_count"
                                             "{route=\"memo-a\"}"), 7);
    assert_int_equal((int)sample_value(text, "flexgate_sent_bytes_total{route=\"memo-b\"}"),
                     6);
    assert_int_equal((int)sample_value(text, "flexgate_upstream_response_seconds_count"
                                             "{upstream=\"memo-up-a\"}"), 7);
    assert_int_equal((int)sample_value(text, "flexgate_upstream_response_seconds_count"
                                             "{upstream=\"memo-up-b\"}"), 3);
    free(text);
}

static void apply_version_7(unsigned index, void *arg)
{
    (void)index, (void)arg;
    metrics_generation(7);
}

static void attach_only(unsigned index, void *arg)
{
    (void)index, (void)arg;
}

/* Readiness asks for the version every started worker applied: a worker that has started
 * (it listens on the shared ports) but has no config yet makes it 0. Slots never attached
 * do not count. Runs last: it leaves the slots attached. */
static void test_config_version_is_every_workers(void **state)
{
    (void)state;
    for (unsigned i = 0; i < TEST_WORKERS; i++) /* a clean start: no worker yet */
        shared->slots[i].pid = 0;
    assert_int_equal(metrics_config_version(), 0);
    in_worker(0, apply_version_7, NULL);
    assert_int_equal(metrics_config_version(), 7); /* workers 1, 2 not started */
    in_worker(1, attach_only, NULL);
    assert_int_equal(metrics_config_version(), 0); /* worker 1 listens without a config */
    in_worker(1, apply_version_7, NULL);
    in_worker(2, apply_version_7, NULL);
    assert_int_equal(metrics_config_version(), 7);
}

int main(void)
{
    /* Before the mapping: a process-local struct, never NULL. */
    assert_non_null(metrics_counters());
    if (metrics_shared_init(TEST_WORKERS) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_are_summed),
        cmocka_unit_test(test_restart_keeps_sums_monotonic),
        cmocka_unit_test(test_tables_are_bounded),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_memo_follows_content),
        cmocka_unit_test(test_config_version_is_every_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
