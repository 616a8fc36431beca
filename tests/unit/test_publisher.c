/* test_publisher.c - the snapshot publisher against a scripted data plane.
 *
 * A real publisher thread serves a Unix socket in a temp directory over a real migrated
 * store; the test plays the data plane with a plain blocking socket and the proto codecs,
 * and changes the config through a second store connection followed by publisher_notify,
 * as the admin API does. Waits are bounded by receive deadlines, never sleeps. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fg_log.h"
#include "common/fg_time.h"
#include "controlplane/publisher.h"
#include "controlplane/store.h"
#include "proto/fg_frame.h"
#include "proto/fg_proto.h"

#define WAIT_MS 3000 /* generous bound for anything that should happen at once */
#define PING_MS 1000     /* ping interval of most tests: silence (3 s) never hits them */
#define FAST_PING_MS 100 /* for the liveness test */
#define QUIET_MS 300     /* how long "no snapshot comes" is watched for */

typedef struct fixture {
    char dir[64];
    char db[128];
    char sock[100];
    store_t *writer; /* the admin API's role */
    publisher_t *pub;
} fixture_t;

typedef struct frame {
    fg_msg_type_t type;
    char *payload; /* NUL-terminated */
    uint32_t len;
} frame_t;

static const store_change_t change = {.summary = "test", .actor = "unit"};
static bool answer_pings = true;
static int64_t dp_applied; /* what the scripted data plane serves: sent in its PONGs */

static int setup_with_ping(void **state, uint32_t ping_ms)
{
    fixture_t *f = calloc(1, sizeof *f);
    fg_error_t err;
    snprintf(f->dir, sizeof f->dir, "/tmp/fg-test-pub-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/fg.db", f->dir);
    snprintf(f->sock, sizeof f->sock, "%s/ctl.sock", f->dir);
    assert_int_equal(store_open(f->db, &f->writer, &err), 0);
    assert_int_equal(store_migrate(f->writer, NULL, &err), 0);
    char listen[160];
    snprintf(listen, sizeof listen, "unix:%s", f->sock);
    /* Polling off (an hour), so every push in these tests comes from publisher_notify. */
    publisher_conf_t conf = {.listen = listen, .db_path = f->db, .ping_interval_ms = ping_ms,
                             .poll_interval_ms = 3600000};
    if (publisher_start(&conf, &f->pub, &err))
        fail_msg("publisher_start: %s", err.message);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with_ping(state, PING_MS);
}

static int setup_fast_ping(void **state)
{
    return setup_with_ping(state, FAST_PING_MS);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char path[160];
    publisher_stop(f->pub);
    store_close(f->writer);
    assert_int_equal(access(f->sock, F_OK), -1); /* the socket file is removed */
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- the scripted data plane ---------------------------------------------------------- */

static int dp_connect(fixture_t *f)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Header and payload in ONE send: the publisher may close as soon as it has read a header
 * it refuses (a PING before HELLO), and a second send would then race that close (EPIPE). */
static void dp_send_raw(int fd, fg_msg_type_t type, const char *payload)
{
    size_t len = strlen(payload);
    uint8_t *frame = malloc(FG_FRAME_HEADER_SIZE + len); /* owned here, freed below */
    assert_non_null(frame);
    fg_frame_header_encode(frame, type, (uint32_t)len);
    memcpy(frame + FG_FRAME_HEADER_SIZE, payload, len);
    ssize_t sent = send(fd, frame, FG_FRAME_HEADER_SIZE + len, MSG_NOSIGNAL);
    free(frame);
    assert_int_equal(sent, (ssize_t)(FG_FRAME_HEADER_SIZE + len));
}

static void dp_hello(int fd, const char *id, int protocol, int64_t applied)
{
    fg_hello_t h = {.pid = 42, .protocol = protocol, .applied_version = applied};
    snprintf(h.dp_id, sizeof h.dp_id, "%s", id);
    snprintf(h.hostname, sizeof h.hostname, "test-host");
    snprintf(h.software_version, sizeof h.software_version, "0.1.0");
    char *p = fg_hello_encode(&h);
    dp_applied = applied;
    dp_send_raw(fd, FG_MSG_HELLO, p);
    free(p);
}

static void dp_ack(int fd, int64_t version, bool nack)
{
    fg_ack_t a = {.version = version};
    if (nack)
        snprintf(a.error, sizeof a.error, "config.routes[0].upstream: refused by test");
    char *p = fg_ack_encode(&a, nack);
    if (!nack)
        dp_applied = version;
    dp_send_raw(fd, nack ? FG_MSG_NACK : FG_MSG_ACK, p);
    free(p);
}


/* Read exactly n bytes before `deadline`; 0, or -1 on EOF/error, -2 on timeout. */
static int read_full(int fd, void *buf, size_t n, uint64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        uint64_t now = fg_now_ms();
        if (now >= deadline)
            return -2;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r == 0)
            return -2;
        ssize_t k = recv(fd, (char *)buf + got, n - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

/* The next frame, or -1 (closed) / -2 (nothing within timeout_ms). */
static int dp_recv(int fd, frame_t *out, int timeout_ms)
{
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    uint64_t deadline = fg_now_ms() + (uint64_t)timeout_ms;
    memset(out, 0, sizeof *out);
    int rc = read_full(fd, hdr, sizeof hdr, deadline);
    if (rc)
        return rc;
    assert_int_equal(fg_frame_header_decode(hdr, FG_FRAME_MAX_PAYLOAD_DEFAULT, &out->type,
                                            &out->len), 0);
    out->payload = calloc(1, out->len + 1);
    rc = read_full(fd, out->payload, out->len, deadline + WAIT_MS);
    if (rc == 0 && out->type == FG_MSG_PING && answer_pings) { /* as a real data plane does */
        fg_ping_t pong = {.applied_version = dp_applied};
        char *p = fg_ping_encode(&pong);
        /* The publisher may ping and then close at once (it replaced or refused us): then the
         * PONG meets a closed socket, as a real data plane's would, and the caller's next
         * read finds the close. Only that failure is tolerated. */
        size_t len = strlen(p);
        uint8_t frame[FG_FRAME_HEADER_SIZE + 256];
        assert_true(len <= 256);
        fg_frame_header_encode(frame, FG_MSG_PONG, (uint32_t)len);
        memcpy(frame + FG_FRAME_HEADER_SIZE, p, len);
        ssize_t sent = send(fd, frame, FG_FRAME_HEADER_SIZE + len, MSG_NOSIGNAL);
        if (sent < 0 && errno != EPIPE && errno != ECONNRESET)
            fail_msg("PONG: %s", strerror(errno));
        free(p);
    }
    return rc;
}

/* Skip PINGs and PONGs; return the next other frame (asserting one comes). */
static void dp_expect(int fd, fg_msg_type_t type, frame_t *out)
{
    for (;;) {
        int rc = dp_recv(fd, out, WAIT_MS);
        if (rc)
            fail_msg("expected %s, got %s", fg_msg_type_name(type),
                     rc == -1 ? "connection closed" : "nothing");
        if (out->type != FG_MSG_PING && out->type != FG_MSG_PONG)
            break;
        free(out->payload);
    }
    assert_string_equal(fg_msg_type_name(out->type), fg_msg_type_name(type));
}

static int64_t expect_snapshot(int fd)
{
    frame_t fr;
    fg_snapshot_t snap;
    fg_error_t err;
    dp_expect(fd, FG_MSG_SNAPSHOT, &fr);
    memset(&snap, 0, sizeof snap);
    if (fg_snapshot_decode(fr.payload, fr.len, &snap, &err))
        fail_msg("snapshot does not verify: %s: %s", err.field, err.message);
    int64_t v = snap.version;
    fg_snapshot_clear(&snap);
    free(fr.payload);
    return v;
}

/* No SNAPSHOT may arrive while `frames` other frames (pings) go by, or within the window. */
static void expect_no_snapshot(int fd, int window_ms)
{
    frame_t fr;
    uint64_t deadline = fg_now_ms() + (uint64_t)window_ms;
    while (fg_now_ms() < deadline) {
        int rc = dp_recv(fd, &fr, (int)(deadline - fg_now_ms()) + 1);
        if (rc == -2)
            return;
        assert_int_equal(rc, 0);
        if (fr.type == FG_MSG_SNAPSHOT)
            fail_msg("unexpected SNAPSHOT");
        free(fr.payload);
    }
}

static void expect_closed(int fd)
{
    frame_t fr;
    for (;;) {
        int rc = dp_recv(fd, &fr, WAIT_MS);
        if (rc == -1)
            return;
        if (rc == -2)
            fail_msg("connection was not closed");
        free(fr.payload);
    }
}

/* ---- helpers on the control side ------------------------------------------------------ */

static int64_t commit_upstream_quietly(fixture_t *f, const char *name)
{
    char spec[128];
    fg_error_t err;
    store_result_t res;
    snprintf(spec, sizeof spec, "{\"name\":\"%s\",\"url\":\"http://127.0.0.1:9\"}", name);
    store_entity_t e = {.key = name, .spec = spec};
    assert_int_equal(store_create(f->writer, STORE_UPSTREAMS, &e, &change, &res, &err), 0);
    return res.version;
}

static int64_t commit_upstream(fixture_t *f, const char *name)
{
    int64_t v = commit_upstream_quietly(f, name);
    publisher_notify(f->pub);
    return v;
}

/* Poll the registry until `id` shows `status` (and `applied`, when >= 0). */
static void wait_status(fixture_t *f, const char *id, const char *status, int64_t applied)
{
    int64_t current = 0;
    fg_error_t err;
    uint64_t deadline = fg_now_ms() + WAIT_MS;
    char *last = NULL;
    while (fg_now_ms() < deadline) {
        assert_int_equal(store_version(f->writer, &current, &err), 0);
        cJSON *items = publisher_dataplanes_json(f->pub, current);
        cJSON *item;
        cJSON_ArrayForEach(item, items) {
            const cJSON *jid = cJSON_GetObjectItem(item, "id");
            if (!cJSON_IsString(jid) || strcmp(jid->valuestring, id) != 0)
                continue;
            const char *st = cJSON_GetObjectItem(item, "status")->valuestring;
            double av = cJSON_GetObjectItem(item, "applied_version")->valuedouble;
            if (strcmp(st, status) == 0 && (applied < 0 || (int64_t)av == applied)) {
                cJSON_Delete(items);
                free(last);
                return;
            }
        }
        free(last);
        last = cJSON_PrintUnformatted(items);
        cJSON_Delete(items);
        struct pollfd none;
        poll(&none, 0, 5); /* a short pause between polls of the registry */
    }
    fail_msg("data plane %s never reached %s; registry: %s", id, status, last ? last : "");
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_hello_gets_current_snapshot_and_ack_is_recorded(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 0);
    assert_int_equal(expect_snapshot(fd), 1);
    wait_status(f, "dp-1", "behind", 0);
    dp_ack(fd, 1, false);
    wait_status(f, "dp-1", "in_sync", 1);
    close(fd);
    wait_status(f, "dp-1", "disconnected", 1);
}

static void test_in_sync_hello_gets_ping_not_snapshot(void **state)
{
    fixture_t *f = *state;
    frame_t fr;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 1);
    assert_int_equal(dp_recv(fd, &fr, WAIT_MS), 0);
    assert_int_equal(fr.type, FG_MSG_PING); /* the session is up at once */
    free(fr.payload);
    expect_no_snapshot(fd, QUIET_MS);
    wait_status(f, "dp-1", "in_sync", 1);
    close(fd);
}

static void test_new_version_is_pushed(void **state)
{
    fixture_t *f = *state;
    int a = dp_connect(f), b = dp_connect(f);
    dp_hello(a, "dp-a", FG_PROTOCOL_VERSION, 1);
    dp_hello(b, "dp-b", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-a", "in_sync", 1);
    wait_status(f, "dp-b", "in_sync", 1);
    int64_t v = commit_upstream(f, "backend");
    assert_int_equal(expect_snapshot(a), v);
    assert_int_equal(expect_snapshot(b), v);
    dp_ack(a, v, false);
    dp_ack(b, v, false);
    wait_status(f, "dp-a", "in_sync", v);
    wait_status(f, "dp-b", "in_sync", v);
    close(a);
    close(b);
}

static void test_burst_is_coalesced(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-1", "in_sync", 1);
    int64_t last = 0;
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "u%d", i);
        last = commit_upstream_quietly(f, name);
    }
    for (int i = 0; i < 20; i++) /* a burst of notifications from another thread */
        publisher_notify(f->pub);
    assert_int_equal(expect_snapshot(fd), last); /* one push, of the latest version */
    expect_no_snapshot(fd, QUIET_MS);
    close(fd);
}

static void test_nacked_version_is_never_resent(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-1", "in_sync", 1);
    int64_t v = commit_upstream(f, "backend");
    assert_int_equal(expect_snapshot(fd), v);
    dp_ack(fd, v, true);
    wait_status(f, "dp-1", "nacked", 1);

    /* Not on a PING, not after a reconnect with the same dp_id. */
    dp_send_raw(fd, FG_MSG_PING, "{\"applied_version\":1}");
    expect_no_snapshot(fd, QUIET_MS);
    close(fd);
    fd = dp_connect(f);
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 1);
    expect_no_snapshot(fd, QUIET_MS);
    wait_status(f, "dp-1", "nacked", 1);

    /* The next version is sent as usual. */
    int64_t v2 = commit_upstream(f, "other");
    assert_int_equal(expect_snapshot(fd), v2);
    dp_ack(fd, v2, false);
    wait_status(f, "dp-1", "in_sync", v2);

    cJSON *items = publisher_dataplanes_json(f->pub, v2);
    const cJSON *err = cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "last_error");
    assert_true(cJSON_IsString(err));
    assert_non_null(strstr(err->valuestring, "refused by test"));
    cJSON_Delete(items);
    close(fd);
}

/* The registry item of data plane `id` (a copy the caller deletes), or NULL. */
static cJSON *registry_item(fixture_t *f, const char *id)
{
    int64_t current = 0;
    fg_error_t err;
    assert_int_equal(store_version(f->writer, &current, &err), 0);
    cJSON *items = publisher_dataplanes_json(f->pub, current), *item, *found = NULL;
    cJSON_ArrayForEach(item, items) {
        const cJSON *jid = cJSON_GetObjectItem(item, "id");
        if (cJSON_IsString(jid) && strcmp(jid->valuestring, id) == 0)
            found = cJSON_Duplicate(item, true);
    }
    cJSON_Delete(items);
    return found;
}

static void test_incompatible_protocol_is_told_not_fed(void **state)
{
    fixture_t *f = *state;
    frame_t fr;
    fg_ack_t nack;
    fg_error_t err;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-old", FG_PROTOCOL_VERSION + 1, 0);
    dp_expect(fd, FG_MSG_NACK, &fr);
    assert_int_equal(fg_ack_decode(fr.payload, fr.len, &nack, &err), 0);
    assert_int_equal(nack.version, 0);
    assert_non_null(strstr(nack.error, "protocol"));
    free(fr.payload);
    /* Told, then hung up on: never fed, not kept. */
    expect_closed(fd);
    close(fd);
    wait_status(f, "dp-old", "incompatible", 0);
    cJSON *item = registry_item(f, "dp-old");
    assert_non_null(item);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(item, "connected")));
    assert_non_null(strstr(cJSON_GetObjectItem(item, "last_error")->valuestring,
                           "not supported"));
    cJSON_Delete(item);

    /* The same id coming back with the right protocol is fed and loses the refusal. */
    commit_upstream(f, "backend");
    fd = dp_connect(f);
    dp_hello(fd, "dp-old", FG_PROTOCOL_VERSION, 0);
    int64_t v = expect_snapshot(fd);
    dp_ack(fd, v, false);
    wait_status(f, "dp-old", "in_sync", v);
    item = registry_item(f, "dp-old");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(item, "last_error")));
    cJSON_Delete(item);
    close(fd);
}

static void test_hello_labels_are_listed(void **state)
{
    fixture_t *f = *state;
    fg_hello_t h = {.pid = 7, .protocol = FG_PROTOCOL_VERSION};
    fg_error_t err;
    snprintf(h.dp_id, sizeof h.dp_id, "dp-labelled");
    snprintf(h.hostname, sizeof h.hostname, "edge-1");
    snprintf(h.software_version, sizeof h.software_version, "9.9.9");
    assert_int_equal(fg_label_parse("zone=eu-west-1", &h.labels[0], &err), 0);
    assert_int_equal(fg_label_parse("tier=edge", &h.labels[1], &err), 0);
    h.n_labels = 2;
    int fd = dp_connect(f);
    char *p = fg_hello_encode(&h);
    dp_send_raw(fd, FG_MSG_HELLO, p);
    free(p);
    wait_status(f, "dp-labelled", "behind", -1);
    cJSON *item = registry_item(f, "dp-labelled");
    cJSON *labels = cJSON_GetObjectItem(item, "labels");
    assert_true(cJSON_IsObject(labels));
    assert_int_equal(cJSON_GetArraySize(labels), 2);
    assert_string_equal(cJSON_GetObjectItem(labels, "zone")->valuestring, "eu-west-1");
    assert_string_equal(cJSON_GetObjectItem(labels, "tier")->valuestring, "edge");
    assert_string_equal(cJSON_GetObjectItem(item, "hostname")->valuestring, "edge-1");
    assert_string_equal(cJSON_GetObjectItem(item, "software_version")->valuestring, "9.9.9");
    cJSON_Delete(item);
    close(fd);
}

/* requests_total of `id` once it equals `want` (before WAIT_MS); its item, owned. */
static cJSON *wait_requests(fixture_t *f, const char *id, double want)
{
    uint64_t deadline = fg_now_ms() + WAIT_MS;
    while (fg_now_ms() < deadline) {
        cJSON *item = registry_item(f, id);
        const cJSON *n = item ? cJSON_GetObjectItem(item, "requests_total") : NULL;
        if (cJSON_IsNumber(n) && n->valuedouble == want)
            return item;
        cJSON_Delete(item);
        poll(NULL, 0, 5);
    }
    fail_msg("%s never reported %.0f requests", id, want);
    return NULL;
}

/* A data plane's PINGs (and PONGs) carry its request count: the registry shows the count
 * and, from the second one on, the rate between the two. */
static void test_request_counts_become_rates(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f);
    dp_hello(fd, "dp-busy", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-busy", "in_sync", 1);
    cJSON *item = registry_item(f, "dp-busy");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(item, "requests_total")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(item, "requests_per_second")));
    cJSON_Delete(item);

    uint64_t t0 = fg_now_ms();
    dp_send_raw(fd, FG_MSG_PING, "{\"applied_version\":1,\"requests\":100}");
    item = wait_requests(f, "dp-busy", 100);
    uint64_t t1 = fg_now_ms(); /* the first report arrived before this */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(item, "requests_per_second"))); /* one report */
    cJSON_Delete(item);
    while (fg_now_ms() < t1 + 20) /* the rate is over time that passed: let some */
        poll(NULL, 0, 5);
    dp_send_raw(fd, FG_MSG_PING, "{\"applied_version\":1,\"requests\":300}");
    item = wait_requests(f, "dp-busy", 300);
    uint64_t elapsed = fg_now_ms() - t0;
    double rate = cJSON_GetObjectItem(item, "requests_per_second")->valuedouble;
    /* 200 requests between the reports: at least 20 ms apart, at most the time this took. */
    assert_true(rate <= 200 * 1000.0 / 20 + 0.1);
    assert_true(rate >= 200 * 1000.0 / (double)elapsed - 0.1);
    cJSON_Delete(item);
    close(fd);
}

static void test_silent_peer_is_dropped(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f);
    answer_pings = false;
    dp_hello(fd, "dp-quiet", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-quiet", "in_sync", 1);
    uint64_t t0 = fg_now_ms();
    expect_closed(fd); /* we never answer: 3 ping intervals later we are gone */
    answer_pings = true;
    assert_true(fg_now_ms() - t0 >= 2 * FAST_PING_MS);
    wait_status(f, "dp-quiet", "disconnected", 1);
    close(fd);
}

static void test_protocol_errors_close(void **state)
{
    fixture_t *f = *state;
    int fd = dp_connect(f); /* first frame not a HELLO */
    dp_send_raw(fd, FG_MSG_PING, "{\"applied_version\":0}");
    expect_closed(fd);
    close(fd);

    fd = dp_connect(f); /* oversized length */
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    fg_frame_header_encode(hdr, FG_MSG_HELLO, FG_FRAME_MAX_PAYLOAD_DEFAULT + 1u);
    assert_int_equal(send(fd, hdr, sizeof hdr, MSG_NOSIGNAL), (ssize_t)sizeof hdr);
    expect_closed(fd);
    close(fd);

    fd = dp_connect(f); /* malformed HELLO */
    dp_send_raw(fd, FG_MSG_HELLO, "{\"dp_id\":1}");
    expect_closed(fd);
    close(fd);

    fd = dp_connect(f); /* a SNAPSHOT sent the wrong way */
    dp_hello(fd, "dp-1", FG_PROTOCOL_VERSION, 1);
    dp_send_raw(fd, FG_MSG_SNAPSHOT, "{}");
    expect_closed(fd);
    close(fd);
}

static void test_same_id_replaces_old_connection(void **state)
{
    fixture_t *f = *state;
    int a = dp_connect(f);
    dp_hello(a, "dp-1", FG_PROTOCOL_VERSION, 1);
    wait_status(f, "dp-1", "in_sync", 1);
    int b = dp_connect(f);
    dp_hello(b, "dp-1", FG_PROTOCOL_VERSION, 1);
    expect_closed(a);
    wait_status(f, "dp-1", "in_sync", 1);
    cJSON *items = publisher_dataplanes_json(f->pub, 1);
    assert_int_equal(cJSON_GetArraySize(items), 1);
    cJSON_Delete(items);
    close(a);
    close(b);
}

static void test_live_socket_is_not_stolen(void **state)
{
    fixture_t *f = *state;
    publisher_t *second = NULL;
    fg_error_t err;
    char listen[160];
    snprintf(listen, sizeof listen, "unix:%s", f->sock);
    publisher_conf_t conf = {.listen = listen, .db_path = f->db};
    assert_int_equal(publisher_start(&conf, &second, &err), -EADDRINUSE);
    assert_int_equal(access(f->sock, F_OK), 0);
}

int main(void)
{
    fg_log_init("test", FG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_gets_current_snapshot_and_ack_is_recorded,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_sync_hello_gets_ping_not_snapshot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_version_is_pushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_is_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nacked_version_is_never_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_labels_are_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_counts_become_rates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incompatible_protocol_is_told_not_fed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_silent_peer_is_dropped, setup_fast_ping,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_protocol_errors_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_id_replaces_old_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_socket_is_not_stolen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
