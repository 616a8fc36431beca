/* fg_frame.c - the 5-byte frame header of the snapshot protocol (PROTOCOL.md §2).
 *
 * Pure byte shuffling: no I/O and no allocation, so the same code serves the control
 * plane's blocking-free publisher, the data plane's libevent reader and the fuzzers. */
#include "fg_frame.h"

#include <errno.h>

void fg_frame_header_encode(uint8_t out[FG_FRAME_HEADER_SIZE], fg_msg_type_t type,
                            uint32_t payload_len)
{
    out[0] = (uint8_t)(payload_len >> 24);
    out[1] = (uint8_t)(payload_len >> 16);
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    out[4] = (uint8_t)type;
}

int fg_frame_header_decode(const uint8_t in[FG_FRAME_HEADER_SIZE], uint32_t max_payload,
                           fg_msg_type_t *type, uint32_t *payload_len)
{
    uint32_t len = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 |
                   (uint32_t)in[3];
    /* Length first: a peer that sends 4 GiB of garbage is refused before anything else. */
    if (len > max_payload)
        return -EMSGSIZE;
    if (in[4] < FG_MSG_HELLO || in[4] > FG_MSG_PONG)
        return -EPROTO;
    *type = (fg_msg_type_t)in[4];
    *payload_len = len;
    return 0;
}

const char *fg_msg_type_name(int type)
{
    switch (type) {
    case FG_MSG_HELLO:
        return "HELLO";
    case FG_MSG_SNAPSHOT:
        return "SNAPSHOT";
    case FG_MSG_ACK:
        return "ACK";
    case FG_MSG_NACK:
        return "NACK";
    case FG_MSG_PING:
        return "PING";
    case FG_MSG_PONG:
        return "PONG";
    default:
        return "UNKNOWN";
    }
}
