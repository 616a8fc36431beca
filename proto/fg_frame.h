/* fg_frame.h - the snapshot protocol's framing (proto/PROTOCOL.md §2).
 *
 * A frame is a 5-byte header, `u32 big-endian payload length | u8 message type`, then the
 * payload: UTF-8 JSON. The codec is pure (no I/O, no allocation): a reader peeks at 5 bytes,
 * asks fg_frame_header_decode how long the payload is, and waits until it has all of it. */
#ifndef FG_FRAME_H
#define FG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FG_FRAME_HEADER_SIZE 5
#define FG_FRAME_MAX_PAYLOAD_DEFAULT (64u * 1024u * 1024u) /* 64 MiB */

typedef enum fg_msg_type {
    FG_MSG_HELLO = 1,    /* dp -> ctl */
    FG_MSG_SNAPSHOT = 2, /* ctl -> dp */
    FG_MSG_ACK = 3,      /* dp -> ctl */
    FG_MSG_NACK = 4,     /* dp -> ctl */
    FG_MSG_PING = 5,     /* both ways */
    FG_MSG_PONG = 6,     /* both ways */
} fg_msg_type_t;

/** Write the header for a frame of `type` carrying `payload_len` bytes. */
void fg_frame_header_encode(uint8_t out[FG_FRAME_HEADER_SIZE], fg_msg_type_t type,
                            uint32_t payload_len);

/** Read a header. Returns 0 with *type and *payload_len set; -EMSGSIZE when the length
 *  exceeds `max_payload`; -EPROTO for an unknown message type. Either error means the peer
 *  is broken: close the connection. */
int fg_frame_header_decode(const uint8_t in[FG_FRAME_HEADER_SIZE], uint32_t max_payload,
                           fg_msg_type_t *type, uint32_t *payload_len);

/** "HELLO", "SNAPSHOT", ...; "UNKNOWN" for anything else. */
const char *fg_msg_type_name(int type);

#endif
