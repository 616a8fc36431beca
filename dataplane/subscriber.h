/* subscriber.h - the data plane's client of the control plane's snapshot protocol.
 *
 * The subscriber keeps one connection to flexgate-ctl (proto/PROTOCOL.md): it says HELLO,
 * applies every SNAPSHOT it is sent (decode + validate + checksum, build a generation, swap
 * it in) and answers ACK, or NACK while keeping the running generation; it exchanges
 * PING/PONG and drops a silent peer. When the connection fails it reconnects with capped
 * exponential backoff and full jitter; the current generation keeps serving meanwhile. It
 * lives on the process's event_base and never blocks it. */
#ifndef DP_SUBSCRIBER_H
#define DP_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "fg_error.h"
#include "fg_proto.h"
#include "generation.h"

#define DP_CONTROL_ADDR_MAX 256
#define DP_SUB_PING_INTERVAL_MS 5000u     /* PING period; also how often silence is checked */
#define DP_SUB_SILENCE_INTERVALS 3u       /* peer silent this many ping intervals is gone */
#define DP_SUB_BACKOFF_MIN_MS 100u        /* first reconnect delay bound */
#define DP_SUB_BACKOFF_MAX_MS 5000u       /* reconnect delay bound cap */
#define DP_SUB_WARN_INTERVAL_MS 60000u    /* repeat "cannot connect" at most this often */
#define DP_SUB_REFUSED_RETRY_MS 60000u    /* refused as incompatible: retry after 1/2..1 of this */
#define DP_SUB_MAX_SINGLE_READ (1u << 20) /* bytes read per wakeup: big snapshots, few calls */

typedef enum dp_control_kind {
    DP_CONTROL_UNIX = 0, /* "unix:PATH" */
    DP_CONTROL_TCP = 1,  /* "tcp://HOST:PORT", mutual TLS */
} dp_control_kind_t;

/** A parsed --control address. */
typedef struct dp_control_addr {
    dp_control_kind_t kind;
    char path[DP_CONTROL_ADDR_MAX]; /* unix: socket path */
    char host[DP_CONTROL_ADDR_MAX]; /* tcp: host name or address, IPv6 without brackets */
    uint16_t port;                  /* tcp */
} dp_control_addr_t;

/** Parse "unix:PATH" or "tcp://HOST:PORT" ("tcp://[::1]:7000"). 0, or -EINVAL with err.
 *  Syntax only: whether a kind is supported is subscriber_start's business. */
int subscriber_parse_address(const char *text, dp_control_addr_t *out, fg_error_t *err);

/** Called after a snapshot has been applied and installed as the current generation.
 *  `payload` is the SNAPSHOT frame's JSON (`len` bytes, not NUL-terminated), valid only
 *  during the call; `g` is borrowed. The hook for persisting the last snapshot (--cache). */
typedef void (*dp_subscriber_applied_cb)(void *arg, const dp_generation_t *g,
                                         const char *payload, size_t len);

typedef struct dp_subscriber_conf {
    const char *control;  /* --control text; parsed by subscriber_start */
    const char *control_ca;   /* tcp://: CA file for the control plane's certificate */
    const char *control_cert; /* tcp://: client certificate file (PEM) */
    const char *control_key;  /* tcp://: its private key file (PEM) */
    const char *dp_id;    /* sent in HELLO; copied */
    const char *hostname; /* sent in HELLO; copied */
    uint32_t max_payload; /* frame payload cap in bytes; 0 = FG_FRAME_MAX_PAYLOAD_DEFAULT */
    uint32_t ping_interval_ms;  /* 0 = DP_SUB_PING_INTERVAL_MS */
    uint32_t backoff_min_ms;    /* 0 = DP_SUB_BACKOFF_MIN_MS */
    uint32_t backoff_max_ms;    /* 0 = DP_SUB_BACKOFF_MAX_MS */
    const fg_label_t *labels;   /* sent in HELLO; copied (at most FG_LABELS_MAX) */
    size_t n_labels;
    dp_subscriber_applied_cb on_applied; /* optional */
    void *on_applied_arg;
    const char *secret;         /* the data plane secret sent in HELLO (--dp-secret-file);
                                 * copied; NULL or "" = none. Never logged. */
} dp_subscriber_conf_t;

typedef struct dp_subscriber dp_subscriber_t;

/** What the subscriber knows, for the status listener and logs. */
typedef struct dp_subscriber_state {
    bool connected;               /* a session is up: HELLO sent and the peer has answered */
    int64_t applied_version;      /* current generation's version, 0 before the first */
    uint64_t last_apply_ms;       /* wall ms of the last successful apply, 0 = never */
    uint64_t last_apply_duration_ms; /* decode + validate + build + swap of that apply */
    uint64_t connected_since_ms;  /* wall ms the current session came up, 0 = not connected */
    uint64_t last_error_ms;       /* wall ms of last_error, 0 = none */
    uint64_t snapshots_applied;   /* since start */
    uint64_t snapshots_rejected;  /* NACKed since start */
    uint64_t connects;            /* sessions established since start */
    bool config_from_cache;       /* the current generation came from --cache and the
                                   * control plane has not confirmed it yet */
    char last_error[FG_PROTO_ERROR_MAX]; /* last connection or snapshot error, "" = none */
} dp_subscriber_state_t;

/** Create the subscriber and schedule its first connection attempt on `base` (nothing
 *  happens before the loop runs). NULL with err for a bad address, a tcp:// address whose
 *  TLS files are missing or unusable, or ENOMEM. The caller frees it with
 *  subscriber_free. */
dp_subscriber_t *subscriber_start(struct event_base *base, const dp_subscriber_conf_t *conf,
                                  fg_error_t *err);

/** Close the connection and stop reconnecting (shutdown). The current generation stays. */
void subscriber_stop(dp_subscriber_t *s);

/** Say that the current generation was loaded from the --cache file (true), so
 *  /health/ready reports it as such until the control plane either sends a snapshot or
 *  confirms, in a PING or PONG, that its latest version is the one being served. */
void subscriber_set_config_from_cache(dp_subscriber_t *s, bool from_cache);

/** Fill `out` with the current state. */
void subscriber_state(const dp_subscriber_t *s, dp_subscriber_state_t *out);

/** Stop and release. NULL is accepted. */
void subscriber_free(dp_subscriber_t *s);

#endif
