/* fuzz_snapshot.c - libFuzzer target for what a data plane reads from its control plane:
 * frame headers and SNAPSHOT payloads (and, on the way, the other message decoders).
 *
 * Input: any bytes. The first 5 go through the frame header decoder; the whole input is then
 * offered to every message decoder. A snapshot that is accepted must hold a config whose
 * canonical text hashes to the snapshot's checksum and that passes the validator: anything
 * else means fg_snapshot_decode let an unverified config through, and aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/fg_frame.h"
#include "proto/fg_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fg_error_t err;

    if (size >= FG_FRAME_HEADER_SIZE) {
        fg_msg_type_t type;
        uint32_t len;
        (void)fg_frame_header_decode(data, FG_FRAME_MAX_PAYLOAD_DEFAULT, &type, &len);
    }

    fg_hello_t hello;
    fg_ack_t ack;
    fg_ping_t ping;
    (void)fg_hello_decode((const char *)data, size, &hello, &err);
    (void)fg_ack_decode((const char *)data, size, &ack, &err);
    (void)fg_ping_decode((const char *)data, size, &ping, &err);

    fg_snapshot_t snap;
    if (fg_snapshot_decode((const char *)data, size, &snap, &err) == 0) {
        char sum[FG_SHA256_HEX_LEN + 1];
        char *canon = fg_config_canonical(snap.config);
        if (!canon)
            abort();
        fg_sha256_hex(canon, strlen(canon), sum);
        if (strcmp(sum, snap.checksum) != 0 || fg_config_validate(snap.config, &err) != 0) {
            fprintf(stderr, "accepted a snapshot that does not verify\n");
            abort();
        }
        /* Re-encoding the accepted snapshot must be accepted too. */
        char *again = fg_snapshot_encode(snap.version, snap.checksum, snap.created_at, canon);
        fg_snapshot_t snap2;
        if (!again || fg_snapshot_decode(again, strlen(again), &snap2, &err) != 0) {
            fprintf(stderr, "re-encoded snapshot refused: %s: %s\n", err.field, err.message);
            abort();
        }
        fg_snapshot_clear(&snap2);
        free(again);
        free(canon);
    }
    fg_snapshot_clear(&snap);
    return 0;
}
