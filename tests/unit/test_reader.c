/* test_reader.c - dataplane/reader.c over a real socket pair and a real event loop: bytes
 * arrive in the bufferevent's input through its own read callback, reading stops at the cap
 * and resumes when the owner drains, small and bulk reads both land intact and in order, and
 * EOF and errors reach the event callback with reading stopped. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "reader.h"

#define PAYLOAD (300 * 1024) /* several chunks, and more than the socket buffers hold */

typedef struct fixture {
    struct event_base *base;
    struct bufferevent *bev;
    dp_reader_t rd;
    int peer; /* the other end of the socket pair */
    int reads;
    short events;
    int err; /* errno as the event callback saw it */
    size_t drain_at; /* the read callback drains the input once it holds this much (0: never) */
    unsigned char *got;
    size_t got_len;
} fixture_t;

static void on_read(struct bufferevent *bev, void *arg)
{
    fixture_t *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    f->reads++;
    if (f->drain_at && evbuffer_get_length(in) >= f->drain_at) {
        size_t n = evbuffer_get_length(in);
        evbuffer_remove(in, f->got + f->got_len, n);
        f->got_len += n;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    ((fixture_t *)arg)->events = what;
    ((fixture_t *)arg)->err = EVUTIL_SOCKET_ERROR();
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
    f->base = event_base_new();
    f->bev = bufferevent_socket_new(f->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(f->bev);
    bufferevent_setcb(f->bev, on_read, NULL, on_event, f);
    f->peer = sv[1];
    f->got = malloc(PAYLOAD);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    reader_release(&f->rd);
    bufferevent_free(f->bev);
    if (f->peer >= 0)
        close(f->peer);
    event_base_free(f->base);
    free(f->got);
    free(f);
    return 0;
}

/* Run the loop until `done` or a bounded number of passes. */
static void run_until(fixture_t *f, bool (*done)(fixture_t *))
{
    for (int i = 0; i < 10000 && !done(f); i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static size_t input_len(fixture_t *f)
{
    return evbuffer_get_length(bufferevent_get_input(f->bev));
}

static bool got_some(fixture_t *f) { return f->reads > 0; }
static bool got_event(fixture_t *f) { return f->events != 0; }

static void test_small_read_arrives_through_the_read_callback(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 0, 0), 0);
    assert_false(reader_enabled(&f->rd));
    assert_int_equal(write(f->peer, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    run_until(f, got_some);
    assert_int_equal(f->reads, 0); /* not enabled: nothing read */
    reader_enable(&f->rd);
    assert_true(reader_enabled(&f->rd));
    run_until(f, got_some);
    assert_int_equal(input_len(f), 18);
    char buf[18];
    evbuffer_copyout(bufferevent_get_input(f->bev), buf, 18);
    assert_memory_equal(buf, "GET / HTTP/1.1\r\n\r\n", 18);
}

/* Writes everything in `data` to the peer while running the loop, until the reader has it. */
static void pump(fixture_t *f, const unsigned char *data, size_t len, size_t want_total)
{
    size_t off = 0;
    for (int i = 0; i < 200000 && f->got_len + input_len(f) < want_total; i++) {
        if (off < len) {
            ssize_t n = send(f->peer, data + off, len - off, MSG_DONTWAIT);
            if (n > 0)
                off += (size_t)n;
        }
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

static void test_bulk_reads_keep_order(void **state)
{
    fixture_t *f = *state;
    unsigned char *data = malloc(PAYLOAD);
    for (size_t i = 0; i < PAYLOAD; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 0, 64 * 1024), 0);
    reader_enable(&f->rd);
    f->drain_at = 1; /* the owner takes everything at each read */
    pump(f, data, PAYLOAD, PAYLOAD);
    assert_int_equal(f->got_len, PAYLOAD);
    assert_memory_equal(f->got, data, PAYLOAD);
    free(data);
}

static bool at_cap_and_quiet(fixture_t *f)
{
    return f->rd.full;
}

static void test_cap_stops_and_drain_resumes(void **state)
{
    fixture_t *f = *state;
    const size_t cap = 32 * 1024;
    unsigned char *data = malloc(PAYLOAD);
    for (size_t i = 0; i < PAYLOAD; i++)
        data[i] = (unsigned char)(i ^ (i >> 8));
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, cap, 0), 0);
    reader_enable(&f->rd);
    size_t off = 0;
    /* The owner does not drain: the input stops at the cap however much the peer sends. */
    for (int i = 0; i < 100000 && !at_cap_and_quiet(f); i++) {
        ssize_t n = send(f->peer, data + off, PAYLOAD - off, MSG_DONTWAIT);
        if (n > 0)
            off += (size_t)n;
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_true(f->rd.full);
    assert_true(input_len(f) <= cap);
    assert_true(input_len(f) >= cap - 16 * 1024);
    int reads = f->reads;
    for (int i = 0; i < 50; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(f->reads, reads); /* stopped: no more reads while full */
    assert_true(input_len(f) <= cap);

    /* Draining below the cap resumes reading, and every byte arrives in order. */
    size_t n = input_len(f);
    evbuffer_remove(bufferevent_get_input(f->bev), f->got, n);
    f->got_len = n;
    assert_false(f->rd.full);
    f->drain_at = 1;
    pump(f, data + off, PAYLOAD - off, PAYLOAD);
    assert_int_equal(f->got_len, PAYLOAD);
    assert_memory_equal(f->got, data, PAYLOAD);

    free(data);
}

static void test_disable_while_full(void **state)
{
    fixture_t *f = *state;
    static char data[8192];
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 4096, 0), 0);
    reader_enable(&f->rd);
    assert_int_equal(write(f->peer, data, sizeof data), (ssize_t)sizeof data);
    for (int i = 0; i < 1000 && !f->rd.full; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(f->rd.full);
    assert_int_equal(input_len(f), 4096);
    reader_disable(&f->rd); /* the drain callback goes with it */
    assert_false(f->rd.full);
    evbuffer_drain(bufferevent_get_input(f->bev), 4096);
    for (int i = 0; i < 50; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(input_len(f), 0); /* disabled: draining did not resume it */
    reader_enable(&f->rd);
    for (int i = 0; i < 1000 && input_len(f) < 4096; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(input_len(f), 4096);
}

static void test_disable_stops_reading(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 0, 0), 0);
    reader_enable(&f->rd);
    reader_disable(&f->rd);
    assert_false(reader_enabled(&f->rd));
    assert_int_equal(write(f->peer, "abc", 3), 3);
    for (int i = 0; i < 50; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(f->reads, 0);
    assert_int_equal(input_len(f), 0);
    reader_enable(&f->rd);
    run_until(f, got_some);
    assert_int_equal(input_len(f), 3);
}

static void test_eof_reaches_the_event_callback(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 0, 0), 0);
    reader_enable(&f->rd);
    assert_int_equal(write(f->peer, "last", 4), 4);
    close(f->peer);
    f->peer = -1;
    run_until(f, got_event);
    assert_int_equal(f->events, BEV_EVENT_READING | BEV_EVENT_EOF);
    assert_int_equal(input_len(f), 4); /* the bytes before the FIN were delivered first */
    assert_false(reader_enabled(&f->rd));
}

static void test_error_reaches_the_event_callback(void **state)
{
    fixture_t *f = *state;
    /* A TCP reset: connect over loopback, then close with SO_LINGER 0. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof a), 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    close(lfd);
    evutil_make_socket_nonblocking(cfd);
    bufferevent_free(f->bev);
    f->bev = bufferevent_socket_new(f->base, cfd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(f->bev, on_read, NULL, on_event, f);
    assert_int_equal(reader_bind(&f->rd, f->base, f->bev, 0, 0), 0);
    reader_enable(&f->rd);
    struct linger lg = {1, 0};
    setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(sfd);
    run_until(f, got_event);
    assert_int_equal(f->events, BEV_EVENT_READING | BEV_EVENT_ERROR);
    assert_int_equal(f->err, ECONNRESET);
    assert_false(reader_enabled(&f->rd));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_read_arrives_through_the_read_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bulk_reads_keep_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_stops_and_drain_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_while_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_stops_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_reaches_the_event_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reaches_the_event_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
