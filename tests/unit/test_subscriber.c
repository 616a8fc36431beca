/* test_subscriber.c - the snapshot client against a scripted control plane in this process.
 *
 * Each test listens on a Unix socket in a fresh temporary directory, starts a subscriber on
 * a real event_base, and plays the control plane by hand with real frames built by
 * fg_frame/fg_proto: it reads what the data plane sends and answers. The event loop is
 * pumped in short slices until the expected frame arrives or a deadline passes, so nothing
 * waits on a fixed sleep. Includes subscriber.c to check backoff state directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dataplane/subscriber.c"

#define DEADLINE_MS 5000u
#define PUMP_SLICE_US 5000

static const char *const config_v1 =
    "{\"upstreams\":[{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"}],"
    "\"routes\":[{\"id\":\"r1\",\"path\":\"/a/*\",\"upstream\":\"alpha\"}]}";
static const char *const config_v2 =
    "{\"upstreams\":[{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"},"
    "{\"name\":\"beta\",\"url\":\"http://127.0.0.1:9002\"}],"
    "\"routes\":[{\"id\":\"r1\",\"path\":\"/a/*\",\"upstream\":\"alpha\"},"
    "{\"id\":\"r2\",\"path\":\"/b\",\"upstream\":\"beta\"}]}";

typedef struct fixture {
    char dir[64];
    char path[96];
    int listen_fd;
    int peer_fd; /* the accepted data plane connection, -1 when none */
    struct event_base *base;
    dp_subscriber_t *sub;
    unsigned applied_calls;
    uint8_t rbuf[1 << 16];
    size_t rlen;
} fixture_t;

typedef struct frame {
    fg_msg_type_t type;
    char *payload; /* NUL-terminated, free() */
    uint32_t len;
} frame_t;

/* ---- the fake control plane ------------------------------------------------------------ */

static void pump(fixture_t *f)
{
    struct timeval tv = {0, PUMP_SLICE_US};
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
}

static void on_applied(void *arg, const dp_generation_t *g, const char *payload, size_t len)
{
    fixture_t *f = arg;
    assert_non_null(g);
    assert_true(len > 0 && payload[0] == '{');
    f->applied_calls++;
}

static void accept_peer(fixture_t *f)
{
    uint64_t deadline = fg_now_ms() + DEADLINE_MS;

    if (f->peer_fd >= 0)
        close(f->peer_fd);
    f->peer_fd = -1;
    f->rlen = 0;
    while (f->peer_fd < 0) {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        if (fg_now_ms() > deadline)
            fail_msg("the data plane did not connect");
        pump(f);
        if (poll(&p, 1, 0) == 1)
            f->peer_fd = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
}

/* Returns 1 with a frame, 0 on EOF from the data plane. */
static int read_frame(fixture_t *f, frame_t *out)
{
    uint64_t deadline = fg_now_ms() + DEADLINE_MS;

    for (;;) {
        if (f->rlen >= FG_FRAME_HEADER_SIZE) {
            uint32_t plen;
            assert_int_equal(fg_frame_header_decode(f->rbuf, sizeof(f->rbuf), &out->type, &plen),
                             0);
            if (f->rlen >= FG_FRAME_HEADER_SIZE + plen) {
                out->payload = malloc(plen + 1);
                memcpy(out->payload, f->rbuf + FG_FRAME_HEADER_SIZE, plen);
                out->payload[plen] = '\0';
                out->len = plen;
                f->rlen -= FG_FRAME_HEADER_SIZE + plen;
                memmove(f->rbuf, f->rbuf + FG_FRAME_HEADER_SIZE + plen, f->rlen);
                return 1;
            }
        }
        if (fg_now_ms() > deadline)
            fail_msg("no frame from the data plane");
        pump(f);
        ssize_t n = recv(f->peer_fd, f->rbuf + f->rlen, sizeof(f->rbuf) - f->rlen, 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return 0;
        if (n > 0)
            f->rlen += (size_t)n;
    }
}

/* The next frame of `type`, skipping the data plane's periodic PINGs. */
static frame_t expect_frame(fixture_t *f, fg_msg_type_t type)
{
    frame_t fr;
    for (;;) {
        if (!read_frame(f, &fr))
            fail_msg("connection closed while waiting for %s", fg_msg_type_name((int)type));
        if (fr.type == type)
            return fr;
        if (fr.type != FG_MSG_PING)
            fail_msg("expected %s, got %s: %s", fg_msg_type_name((int)type),
                     fg_msg_type_name((int)fr.type), fr.payload);
        free(fr.payload);
    }
}

static void expect_eof(fixture_t *f)
{
    frame_t fr;
    while (read_frame(f, &fr)) {
        if (fr.type != FG_MSG_PING && fr.type != FG_MSG_PONG)
            fail_msg("expected the connection to close, got %s", fg_msg_type_name((int)fr.type));
        free(fr.payload);
    }
}

static void send_raw(fixture_t *f, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t deadline = fg_now_ms() + DEADLINE_MS;

    while (len > 0) {
        ssize_t n = send(f->peer_fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN)
            fail_msg("send: %s", strerror(errno));
        if (fg_now_ms() > deadline)
            fail_msg("send timed out");
        pump(f);
    }
}

static void send_frame(fixture_t *f, fg_msg_type_t type, char *payload /* freed */)
{
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    size_t len = strlen(payload);

    fg_frame_header_encode(hdr, type, (uint32_t)len);
    send_raw(f, hdr, sizeof(hdr));
    send_raw(f, payload, len);
    free(payload);
}

/* A SNAPSHOT of `json` (decoded without validation, so a broken config can be shipped with
 * a correct checksum); `bad_checksum` ships a wrong one instead. */
static char *make_snapshot(const char *json, int64_t version, int bad_checksum, char *sum_out)
{
    cJSON *tree = cJSON_Parse(json);
    fg_config_t *cfg = NULL;
    fg_error_t err;
    char sum[FG_SHA256_HEX_LEN + 1], *canonical, *payload;

    assert_non_null(tree);
    assert_int_equal(fg_config_decode(tree, &cfg, &err), 0);
    cJSON_Delete(tree);
    canonical = fg_config_canonical(cfg);
    assert_non_null(canonical);
    fg_sha256_hex(canonical, strlen(canonical), sum);
    if (bad_checksum)
        memset(sum, '0', FG_SHA256_HEX_LEN);
    if (sum_out)
        memcpy(sum_out, sum, sizeof(sum));
    payload = fg_snapshot_encode(version, sum, "2026-11-25T19:43:28.123Z", canonical);
    assert_non_null(payload);
    free(canonical);
    fg_config_free(cfg);
    return payload;
}

static fg_ack_t expect_ack(fixture_t *f, fg_msg_type_t type)
{
    frame_t fr = expect_frame(f, type);
    fg_ack_t a;
    fg_error_t err;

    memset(&a, 0, sizeof(a));
    if (fg_ack_decode(fr.payload, fr.len, &a, &err) < 0)
        fail_msg("bad %s payload %s: %s", fg_msg_type_name((int)type), fr.payload, err.message);
    free(fr.payload);
    return a;
}

/* Accept the data plane and read its greeting: HELLO then the PING that asks for a first
 * answer. Returns the HELLO. */
static fg_hello_t greet(fixture_t *f)
{
    frame_t fr;
    fg_hello_t h;
    fg_error_t err;

    accept_peer(f);
    fr = expect_frame(f, FG_MSG_HELLO);
    memset(&h, 0, sizeof(h));
    if (fg_hello_decode(fr.payload, fr.len, &h, &err) < 0)
        fail_msg("bad HELLO %s: %s", fr.payload, err.message);
    free(fr.payload);
    fr = expect_frame(f, FG_MSG_PING);
    free(fr.payload);
    return h;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_true(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static fixture_t *fixture_new(uint32_t ping_interval_ms, uint32_t max_payload)
{
    fixture_t *f = calloc(1, sizeof(*f));
    dp_subscriber_conf_t conf;
    char control[160];
    fg_error_t err;

    assert_non_null(f);
    f->peer_fd = -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fg-subXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
    f->listen_fd = listen_unix(f->path);

    f->base = event_base_new();
    assert_non_null(f->base);
    snprintf(control, sizeof(control), "unix:%s", f->path);
    memset(&conf, 0, sizeof(conf));
    conf.control = control;
    conf.dp_id = "dp-test";
    conf.hostname = "testhost";
    conf.ping_interval_ms = ping_interval_ms;
    conf.max_payload = max_payload;
    conf.backoff_min_ms = 10;
    conf.backoff_max_ms = 40;
    conf.on_applied = on_applied;
    conf.on_applied_arg = f;
    f->sub = subscriber_start(f->base, &conf, &err);
    if (!f->sub)
        fail_msg("subscriber_start: %s", err.message);
    return f;
}

static int setup(void **state)
{
    *state = fixture_new(0, 0);
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    subscriber_free(f->sub);
    event_base_free(f->base);
    if (f->peer_fd >= 0)
        close(f->peer_fd);
    close(f->listen_fd);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    generation_shutdown();
    return 0;
}

/* Apply v<version> of `json` and check the ACK. */
static void apply(fixture_t *f, const char *json, int64_t version)
{
    fg_ack_t a;

    send_frame(f, FG_MSG_SNAPSHOT, make_snapshot(json, version, 0, NULL));
    a = expect_ack(f, FG_MSG_ACK);
    assert_int_equal(a.version, version);
    assert_non_null(generation_current());
    assert_int_equal(generation_current()->version, version);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_address_parsing(void **state)
{
    dp_control_addr_t a;
    fg_error_t err;

    (void)state;
    assert_int_equal(subscriber_parse_address("unix:/run/fg.sock", &a, &err), 0);
    assert_int_equal(a.kind, DP_CONTROL_UNIX);
    assert_string_equal(a.path, "/run/fg.sock");
    assert_int_equal(subscriber_parse_address("tcp://ctl.example:7000", &a, &err), 0);
    assert_int_equal(a.kind, DP_CONTROL_TCP);
    assert_string_equal(a.host, "ctl.example");
    assert_int_equal(a.port, 7000);
    assert_int_equal(subscriber_parse_address("tcp://[::1]:7000", &a, &err), 0);
    assert_string_equal(a.host, "::1");
    assert_true(subscriber_parse_address("unix:", &a, &err) < 0);
    assert_true(subscriber_parse_address("tcp://host", &a, &err) < 0);
    assert_true(subscriber_parse_address("tcp://host:0", &a, &err) < 0);
    assert_true(subscriber_parse_address("tcp://host:70000", &a, &err) < 0);
    assert_true(subscriber_parse_address("tcp://::1:7000", &a, &err) < 0);
    assert_true(subscriber_parse_address("http://x:1", &a, &err) < 0);
    assert_true(subscriber_parse_address(NULL, &a, &err) < 0);
}

static void test_tcp_needs_tls_files(void **state)
{
    struct event_base *base = event_base_new();
    dp_subscriber_conf_t conf = {.control = "tcp://127.0.0.1:7000", .dp_id = "x"};
    fg_error_t err;

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_null(subscriber_start(base, &conf, &err));
    assert_non_null(strstr(err.message, "mutual TLS needs"));
    conf.control_ca = "/nonexistent/ca.crt";
    conf.control_cert = "/nonexistent/dp.crt";
    conf.control_key = "/nonexistent/dp.key";
    assert_null(subscriber_start(base, &conf, &err));
    assert_non_null(strstr(err.message, "/nonexistent/dp.crt"));
    event_base_free(base);
}

static void test_hello_snapshot_ack(void **state)
{
    fixture_t *f = *state;
    fg_hello_t h = greet(f);
    dp_subscriber_state_t st;

    assert_string_equal(h.dp_id, "dp-test");
    assert_string_equal(h.hostname, "testhost");
    assert_int_equal(h.pid, getpid());
    assert_int_equal(h.protocol, FG_PROTOCOL_VERSION);
    assert_string_equal(h.software_version, FG_VERSION);
    assert_int_equal(h.applied_version, 0);

    subscriber_state(f->sub, &st);
    assert_false(st.connected); /* nothing heard from the control plane yet */
    apply(f, config_v1, 3);
    subscriber_state(f->sub, &st);
    assert_true(st.connected);
    assert_int_equal(st.applied_version, 3);
    assert_int_equal(st.snapshots_applied, 1);
    assert_true(st.last_apply_ms > 0);
    assert_int_equal(f->applied_calls, 1);
    assert_int_equal(generation_current()->config->n_routes, 1);
}

static void test_bad_checksum_nacked_old_kept(void **state)
{
    fixture_t *f = *state;
    dp_generation_t *before;
    fg_ack_t a;
    dp_subscriber_state_t st;

    greet(f);
    apply(f, config_v1, 3);
    before = generation_current();
    send_frame(f, FG_MSG_SNAPSHOT, make_snapshot(config_v2, 4, 1, NULL));
    a = expect_ack(f, FG_MSG_NACK);
    assert_int_equal(a.version, 4);
    assert_true(a.error[0] != '\0');
    assert_ptr_equal(generation_current(), before);
    subscriber_state(f->sub, &st);
    assert_int_equal(st.applied_version, 3);
    assert_int_equal(st.snapshots_rejected, 1);
    assert_string_equal(st.last_error, a.error);
    assert_true(st.connected); /* a bad snapshot is not a broken connection */
    /* and the next good version still applies */
    apply(f, config_v2, 5);
}

static void test_invalid_config_nacked_with_field(void **state)
{
    fixture_t *f = *state;
    const char *broken = "{\"upstreams\":[{\"name\":\"alpha\",\"url\":\"http://127.0.0.1:9001\"}],"
                         "\"routes\":[{\"id\":\"r1\",\"path\":\"/a/*\",\"upstream\":\"nope\"}]}";
    fg_ack_t a;

    greet(f);
    apply(f, config_v1, 3);
    send_frame(f, FG_MSG_SNAPSHOT, make_snapshot(broken, 6, 0, NULL));
    a = expect_ack(f, FG_MSG_NACK);
    assert_int_equal(a.version, 6);
    assert_non_null(strstr(a.error, "upstream"));
    assert_int_equal(generation_current()->version, 3);
}

static void test_garbage_snapshot_nacked_version_zero(void **state)
{
    fixture_t *f = *state;
    fg_ack_t a;

    greet(f);
    send_frame(f, FG_MSG_SNAPSHOT, strdup("this is not json"));
    a = expect_ack(f, FG_MSG_NACK);
    assert_int_equal(a.version, 0);
    assert_null(generation_current());
    /* the version is echoed when the JSON says it, even if the rest is wrong */
    send_frame(f, FG_MSG_SNAPSHOT, strdup("{\"version\":12,\"checksum\":5}"));
    a = expect_ack(f, FG_MSG_NACK);
    assert_int_equal(a.version, 12);
}

static void test_repeat_is_idempotent_lower_version_applies(void **state)
{
    fixture_t *f = *state;
    dp_generation_t *g3;
    fg_ack_t a;

    greet(f);
    apply(f, config_v1, 3);
    g3 = generation_current();
    /* the same version and checksum again: ACKed, not rebuilt */
    send_frame(f, FG_MSG_SNAPSHOT, make_snapshot(config_v1, 3, 0, NULL));
    a = expect_ack(f, FG_MSG_ACK);
    assert_int_equal(a.version, 3);
    assert_ptr_equal(generation_current(), g3);
    assert_int_equal(f->applied_calls, 1);
    /* a control plane restored from backup counts lower: it is still the authority */
    apply(f, config_v2, 2);
    assert_int_equal(generation_current()->config->n_routes, 2);
    assert_int_equal(f->applied_calls, 2);
}

static void test_ping_answered_with_applied_version(void **state)
{
    fixture_t *f = *state;
    fg_ping_t p = {.applied_version = 99};
    frame_t fr;
    fg_ping_t got;
    fg_error_t err;

    greet(f);
    apply(f, config_v1, 7);
    send_frame(f, FG_MSG_PING, fg_ping_encode(&p));
    fr = expect_frame(f, FG_MSG_PONG);
    assert_int_equal(fg_ping_decode(fr.payload, fr.len, &got, &err), 0);
    assert_int_equal(got.applied_version, 7);
    free(fr.payload);
}

static void test_oversized_frame_drops_and_reconnects(void **state)
{
    fixture_t *f = fixture_new(0, 32768);
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    fg_hello_t h;
    dp_subscriber_state_t st;

    *state = f;
    greet(f);
    apply(f, config_v1, 8);
    fg_frame_header_encode(hdr, FG_MSG_SNAPSHOT, 32769);
    send_raw(f, hdr, sizeof(hdr));
    expect_eof(f);
    subscriber_state(f->sub, &st);
    assert_false(st.connected);
    assert_non_null(strstr(st.last_error, "frame"));
    /* it comes back on its own, saying what it runs, and keeps serving meanwhile */
    h = greet(f);
    assert_int_equal(h.applied_version, 8);
    assert_int_equal(generation_current()->version, 8);
}

static void test_unknown_type_drops(void **state)
{
    fixture_t *f = *state;
    uint8_t hdr[FG_FRAME_HEADER_SIZE] = {0, 0, 0, 2, 77};

    greet(f);
    send_raw(f, hdr, sizeof(hdr));
    send_raw(f, "{}", 2);
    expect_eof(f);
    greet(f);
}

static void test_malformed_ping_drops(void **state)
{
    fixture_t *f = *state;

    greet(f);
    apply(f, config_v1, 2);
    send_frame(f, FG_MSG_PING, strdup("{\"applied_version\":\"two\"}"));
    expect_eof(f);
    assert_int_equal(greet(f).applied_version, 2);
}

static void test_refusal_from_ctl_hangs_up_and_retries_late(void **state)
{
    fixture_t *f = *state;
    fg_ack_t refusal = {.version = 0};
    dp_subscriber_state_t st;

    greet(f);
    apply(f, config_v1, 2);
    snprintf(refusal.error, sizeof(refusal.error), "protocol 1 not supported");
    send_frame(f, FG_MSG_NACK, fg_ack_encode(&refusal, 1));
    /* it hangs up, keeps its config, says why, and asks again only after a long pause */
    expect_eof(f);
    subscriber_state(f->sub, &st);
    assert_false(st.connected);
    assert_non_null(strstr(st.last_error, "protocol 1 not supported"));
    assert_int_equal(generation_current()->version, 2);
    assert_true(evtimer_pending(f->sub->retry_timer, NULL));
    assert_true(f->sub->retry_delay_ms >= DP_SUB_REFUSED_RETRY_MS / 2);
    assert_true(f->sub->retry_delay_ms <= DP_SUB_REFUSED_RETRY_MS);
    assert_false(f->sub->refused); /* only this one retry is late */
    evtimer_del(f->sub->retry_timer);
    sub_connect(f->sub);
    assert_int_equal(greet(f).applied_version, 2);
}

static void test_silent_peer_dropped(void **state)
{
    fixture_t *f = fixture_new(30, 0);
    uint64_t t0;
    frame_t fr;

    *state = f;
    greet(f);
    send_frame(f, FG_MSG_PONG, strdup("{\"applied_version\":0}"));
    t0 = fg_now_ms();
    /* from now on say nothing: after 3 intervals the data plane gives up on us */
    while (read_frame(f, &fr)) {
        assert_int_equal(fr.type, FG_MSG_PING);
        free(fr.payload);
    }
    assert_true(fg_now_ms() - t0 >= 3 * 30 - 5);
    greet(f);
}

static void test_refused_before_connect_and_backoff(void **state)
{
    fixture_t *f = *state;
    uint32_t bounds[8];

    /* No one listening: every attempt fails; the bound doubles to its cap. */
    close(f->listen_fd);
    unlink(f->path);
    f->listen_fd = -1;
    f->sub->backoff_ms = f->sub->backoff_min_ms;
    for (int i = 0; i < 8; i++) {
        evtimer_del(f->sub->retry_timer);
        bounds[i] = f->sub->backoff_ms;
        sub_connect(f->sub);
        assert_int_equal(f->sub->phase, SUB_IDLE);
    }
    assert_int_equal(bounds[0], 10);
    assert_int_equal(bounds[1], 20);
    assert_int_equal(bounds[2], 40);
    assert_int_equal(bounds[7], 40);
    assert_true(f->sub->failures >= 8);
    assert_non_null(strstr(f->sub->st.last_error, "connect"));
    /* re-listen: the next attempt gets in and a session resets the bound */
    f->listen_fd = listen_unix(f->path);
    greet(f);
    apply(f, config_v1, 1);
    assert_int_equal(f->sub->backoff_ms, 10);
    assert_int_equal(f->sub->failures, 0);
}

static void test_retry_delay_within_bound(void **state)
{
    fixture_t *f = *state;

    for (int i = 0; i < 1000; i++) {
        uint32_t bound = 1 + (uint32_t)(i % 50);
        uint32_t d = (uint32_t)(sub_random(f->sub) % ((uint64_t)bound + 1));
        assert_true(d <= bound);
    }
}

static void test_stop_closes_and_does_not_reconnect(void **state)
{
    fixture_t *f = *state;
    dp_subscriber_state_t st;

    greet(f);
    apply(f, config_v1, 4);
    subscriber_stop(f->sub);
    expect_eof(f);
    subscriber_state(f->sub, &st);
    assert_false(st.connected);
    assert_int_equal(st.applied_version, 4); /* the config stays */
    for (int i = 0; i < 20; i++)
        pump(f);
    {
        struct pollfd p = {.fd = f->listen_fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_parsing),
        cmocka_unit_test(test_tcp_needs_tls_files),
        cmocka_unit_test_setup_teardown(test_hello_snapshot_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_checksum_nacked_old_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_config_nacked_with_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_snapshot_nacked_version_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repeat_is_idempotent_lower_version_applies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ping_answered_with_applied_version, setup,
                                        teardown),
        cmocka_unit_test_teardown(test_oversized_frame_drops_and_reconnects, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_ping_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_from_ctl_hangs_up_and_retries_late, setup,
                                        teardown),
        cmocka_unit_test_teardown(test_silent_peer_dropped, teardown),
        cmocka_unit_test_setup_teardown(test_refused_before_connect_and_backoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_delay_within_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_closes_and_does_not_reconnect, setup,
                                        teardown),
    };
    fg_log_init("dp", FG_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
