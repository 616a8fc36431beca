/* fg_proto.h - the snapshot protocol's messages (proto/PROTOCOL.md §3).
 *
 * Each message's payload is a JSON object. These functions turn the C structs into payload
 * text (caller frees with free()) and back, checking every field's type; a message with a
 * missing or mistyped field is refused with a reason in err. A SNAPSHOT is decoded all the
 * way: its config is parsed with the shared decoder and validator and its checksum is
 * recomputed over the canonical config text, so a data plane holding a decoded fg_snapshot_t
 * holds a configuration it may apply. */
#ifndef FG_PROTO_H
#define FG_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "fg_config.h"
#include "fg_error.h"
#include "fg_hash.h"

/* Snapshot format this build speaks. A HELLO announcing another one is told so and not fed. */
#define FG_PROTOCOL_VERSION 1
#define FG_ID_MAX 128
#define FG_HOSTNAME_MAX 256
#define FG_SOFTWARE_VERSION_MAX 64
#define FG_PROTO_ERROR_MAX 512
#define FG_LABELS_MAX 16       /* labels in one HELLO */
#define FG_LABEL_KEY_MAX 64    /* bytes incl. NUL: keys are 1..63 of [A-Za-z0-9._/-] */
#define FG_LABEL_VALUE_MAX 128 /* bytes incl. NUL: values are 0..127 bytes, no controls */
#define FG_HELLO_SECRET_MAX 256 /* bytes incl. NUL: the HELLO's shared secret, 1..255 bytes */

/** A data plane label ("zone" = "eu-1"), from `flexgate-dp --label k=v`. */
typedef struct fg_label {
    char key[FG_LABEL_KEY_MAX];
    char value[FG_LABEL_VALUE_MAX];
} fg_label_t;

typedef struct fg_hello {
    char dp_id[FG_ID_MAX];
    char hostname[FG_HOSTNAME_MAX];
    int64_t pid;
    char software_version[FG_SOFTWARE_VERSION_MAX];
    int protocol;              /* FG_PROTOCOL_VERSION of the sender */
    int64_t applied_version;   /* 0 when it has applied nothing */
    fg_label_t labels[FG_LABELS_MAX]; /* optional on the wire ("labels" object) */
    size_t n_labels;
    char secret[FG_HELLO_SECRET_MAX]; /* optional on the wire; "" = none sent. Never log it;
                                       * wipe it once checked. */
} fg_hello_t;

typedef struct fg_ack {
    int64_t version;
    char error[FG_PROTO_ERROR_MAX]; /* NACK only: why the snapshot was refused */
} fg_ack_t;

typedef struct fg_ping {
    int64_t applied_version;
    int64_t requests; /* requests the data plane process finished since it started, for the
                         control plane's request rates; -1 = not sent (the control plane's
                         pings, an older data plane) */
} fg_ping_t;

typedef struct fg_snapshot {
    int64_t version;
    char checksum[FG_SHA256_HEX_LEN + 1];
    char created_at[40];
    fg_config_t *config; /* owned: fg_snapshot_clear frees it */
} fg_snapshot_t;

/** Parse "key=value" into `out` with the HELLO's rules. 0, or -EINVAL with err. */
int fg_label_parse(const char *text, fg_label_t *out, fg_error_t *err);

char *fg_hello_encode(const fg_hello_t *m);
int fg_hello_decode(const char *payload, size_t len, fg_hello_t *out, fg_error_t *err);

/** The control plane's refusal of a HELLO whose `protocol` it does not speak (PROTOCOL.md
 *  §4.6): a NACK payload with version 0, the reason, and the protocol ctl speaks. */
char *fg_incompatible_encode(int their_protocol);

/** The control plane's refusal of a HELLO it will not serve for another reason (a missing or
 *  wrong secret, PROTOCOL.md §4.7): a NACK payload with version 0 and `why`. */
char *fg_refusal_encode(const char *why);

/** ACK and NACK share a body; NACK adds "error". */
char *fg_ack_encode(const fg_ack_t *m, int nack);
int fg_ack_decode(const char *payload, size_t len, fg_ack_t *out, fg_error_t *err);

char *fg_ping_encode(const fg_ping_t *m);
int fg_ping_decode(const char *payload, size_t len, fg_ping_t *out, fg_error_t *err);

/** Build a SNAPSHOT payload around `config_canonical` (fg_config_canonical's text, embedded
 *  verbatim so the checksum covers exactly those bytes). */
char *fg_snapshot_encode(int64_t version, const char *checksum, const char *created_at,
                         const char *config_canonical);

/** Decode, validate, and verify the checksum. On success `out->config` is owned by `out`.
 *  Returns -EINVAL (bad JSON/field/config) or -EBADMSG (checksum mismatch), err filled. */
int fg_snapshot_decode(const char *payload, size_t len, fg_snapshot_t *out, fg_error_t *err);

/** Free what fg_snapshot_decode allocated; safe on a zeroed or already-cleared struct. */
void fg_snapshot_clear(fg_snapshot_t *s);

#endif
