/* test_frame.c - unit tests for proto/fg_frame.c: the 5-byte header is big-endian length
 * then type, lengths above the maximum are refused before the type is looked at, and unknown
 * types are refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fg_frame.h"

static void test_encode_is_big_endian(void **state)
{
    (void)state;
    uint8_t h[FG_FRAME_HEADER_SIZE];
    fg_frame_header_encode(h, FG_MSG_SNAPSHOT, 0x01020304u);
    const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x02};
    assert_memory_equal(h, want, sizeof(want));

    fg_frame_header_encode(h, FG_MSG_PING, 22);
    const uint8_t ping[] = {0x00, 0x00, 0x00, 0x16, 0x05};
    assert_memory_equal(h, ping, sizeof(ping));

    fg_frame_header_encode(h, FG_MSG_PONG, 0xffffffffu);
    const uint8_t big[] = {0xff, 0xff, 0xff, 0xff, 0x06};
    assert_memory_equal(h, big, sizeof(big));
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    const uint32_t lens[] = {0, 1, 255, 256, 65536, FG_FRAME_MAX_PAYLOAD_DEFAULT};
    for (int t = FG_MSG_HELLO; t <= FG_MSG_PONG; t++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            uint8_t h[FG_FRAME_HEADER_SIZE];
            fg_msg_type_t type = 0;
            uint32_t len = 1234;
            fg_frame_header_encode(h, (fg_msg_type_t)t, lens[i]);
            assert_int_equal(fg_frame_header_decode(h, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len),
                             0);
            assert_int_equal(type, t);
            assert_int_equal(len, lens[i]);
        }
    }
}

static void test_decode_known_bytes(void **state)
{
    (void)state;
    const uint8_t h[] = {0x00, 0x00, 0x01, 0x00, 0x03};
    fg_msg_type_t type;
    uint32_t len;
    assert_int_equal(fg_frame_header_decode(h, 1024, &type, &len), 0);
    assert_int_equal(type, FG_MSG_ACK);
    assert_int_equal(len, 256);
}

static void test_max_size(void **state)
{
    (void)state;
    uint8_t h[FG_FRAME_HEADER_SIZE];
    fg_msg_type_t type = FG_MSG_HELLO;
    uint32_t len = 7;

    fg_frame_header_encode(h, FG_MSG_SNAPSHOT, 1000);
    assert_int_equal(fg_frame_header_decode(h, 1000, &type, &len), 0);
    assert_int_equal(len, 1000);
    assert_int_equal(fg_frame_header_decode(h, 999, &type, &len), -EMSGSIZE);

    fg_frame_header_encode(h, FG_MSG_SNAPSHOT, FG_FRAME_MAX_PAYLOAD_DEFAULT + 1);
    len = 7;
    assert_int_equal(fg_frame_header_decode(h, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len),
                     -EMSGSIZE);
    assert_int_equal(len, 7); /* outputs untouched on error */

    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(fg_frame_header_decode(huge, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len),
                     -EMSGSIZE);
    /* An oversize frame of an unknown type is refused for its size. */
    const uint8_t both[] = {0xff, 0x00, 0x00, 0x00, 0x63};
    assert_int_equal(fg_frame_header_decode(both, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len),
                     -EMSGSIZE);
}

static void test_unknown_type(void **state)
{
    (void)state;
    const uint8_t bad_types[] = {0, 7, 8, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(bad_types); i++) {
        uint8_t h[] = {0, 0, 0, 2, bad_types[i]};
        fg_msg_type_t type = FG_MSG_HELLO;
        uint32_t len = 9;
        assert_int_equal(fg_frame_header_decode(h, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len),
                         -EPROTO);
        assert_int_equal(type, FG_MSG_HELLO);
        assert_int_equal(len, 9);
    }
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(fg_msg_type_name(FG_MSG_HELLO), "HELLO");
    assert_string_equal(fg_msg_type_name(FG_MSG_SNAPSHOT), "SNAPSHOT");
    assert_string_equal(fg_msg_type_name(FG_MSG_ACK), "ACK");
    assert_string_equal(fg_msg_type_name(FG_MSG_NACK), "NACK");
    assert_string_equal(fg_msg_type_name(FG_MSG_PING), "PING");
    assert_string_equal(fg_msg_type_name(FG_MSG_PONG), "PONG");
    assert_string_equal(fg_msg_type_name(0), "UNKNOWN");
    assert_string_equal(fg_msg_type_name(7), "UNKNOWN");
    assert_string_equal(fg_msg_type_name(-1), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_is_big_endian), cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_decode_known_bytes),   cmocka_unit_test(test_max_size),
        cmocka_unit_test(test_unknown_type),         cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
