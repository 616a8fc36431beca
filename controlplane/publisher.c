/* publisher.c - the snapshot server: data plane connections, pushes and the registry.
 *
 * One thread, one event_base. The newest stored snapshot is encoded once into a refcounted
 * payload and handed to every connection's output buffer by reference, so pushing a 10 MB
 * config to N data planes costs one encode and no copies. The registry of data planes is the
 * only state another thread reads (GET /api/v1/dataplanes); it is guarded by `mu`, held only
 * for field copies, never across I/O. A connection object exists from accept to close; a
 * registry record exists from the first HELLO with its dp_id until it has been disconnected
 * for PUB_FORGET_AFTER_MS, so a reconnecting data plane keeps its NACK memory. */
#include "publisher.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/err.h>

#include "fg_frame.h"
#include "ctl_metrics.h"
#include "fg_log.h"
#include "fg_proto.h"
#include "fg_secret.h"
#include "fg_time.h"
#include "fg_tls.h"
#include "store.h"

#define PUB_UNIX_PREFIX "unix:"
#define PUB_TCP_PREFIX "tcp://"
#define PUB_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)
#define PUB_TICKS_PER_PING 5u /* liveness is checked this many times per ping interval */
#define PUB_ADDR_MAX 280      /* "tcp://HOST:PORT" as given */
#define PUB_PEER_MAX 64       /* a peer's address as text, "[v6]:port" */
#define PUB_LINGER_MS 1000u   /* a refused TLS peer gets this long to read our alert */
#define PUB_LINGER_READ 4096  /* bytes discarded per wakeup while lingering */

/* A SNAPSHOT frame payload shared by every connection it is queued on. Touched only by the
 * publisher thread (or by publisher_stop after that thread has exited). */
typedef struct pub_payload {
    int refs;
    int64_t version;
    char *data;
    size_t len;
} pub_payload_t;

typedef struct pub_conn pub_conn_t;

/* A refused TLS connection's socket, kept open briefly so the peer reads our alert. */
typedef struct pub_linger {
    publisher_t *pub;
    evutil_socket_t fd; /* owned: a dup of the connection's socket */
    struct event *ev;   /* owned: read-and-drop until EOF or PUB_LINGER_MS */
    struct pub_linger *prev, *next;
} pub_linger_t;

/* A data plane's record. Every field except `conn` is guarded by publisher.mu; `conn` is
 * only touched by the publisher thread. */
typedef struct pub_dp {
    char id[FG_ID_MAX];
    char hostname[FG_HOSTNAME_MAX];
    int64_t pid;
    char software_version[FG_SOFTWARE_VERSION_MAX];
    int protocol;
    bool protocol_refused;       /* last_error holds why its protocol was refused */
    bool connected;
    uint64_t connected_since_ms; /* wall clock */
    uint64_t last_seen_ms;       /* wall clock: last frame received */
    uint64_t disconnected_ms;    /* wall clock, 0 while connected */
    int64_t applied_version;
    int64_t nacked_version;      /* never re-sent; 0 = none */
    char last_error[FG_PROTO_ERROR_MAX];
    fg_label_t labels[FG_LABELS_MAX]; /* from its last HELLO */
    size_t n_labels;
    int64_t requests;            /* requests it reported finished (PING/PONG); -1 = none yet */
    uint64_t requests_at_ms;     /* monotonic: when `requests` arrived */
    double requests_per_s;       /* between its last two reports; -1 = fewer than two */
    pub_conn_t *conn;
    struct pub_dp *next;
} pub_dp_t;

struct pub_conn {
    publisher_t *pub;
    struct bufferevent *bev;
    pub_dp_t *dp;          /* NULL until HELLO */
    uint64_t last_recv_ms; /* monotonic */
    uint64_t last_ping_ms; /* monotonic */
    int64_t sent_version;  /* last SNAPSHOT queued on this connection */
    bool closing;          /* told it is refused: closed once that is written */
    const char *close_reason; /* static text: why it is closed once the refusal is out */
    bool tls;              /* accepted on a tcp:// listener */
    bool tls_up;           /* its handshake completed (the client certificate verified) */
    char peer[PUB_PEER_MAX];                  /* "unix", or the TCP peer's address */
    char peer_subject[FG_TLS_SUBJECT_MAX];    /* tls: the client certificate's subject */
    pub_conn_t *prev, *next;
};

struct publisher {
    char listen[PUB_PATH_MAX + 16];
    char socket_path[PUB_PATH_MAX];
    ino_t socket_ino;
    char *db_path;
    uint32_t max_payload, ping_ms, silence_ms, coalesce_ms, poll_ms;
    char dp_secret[FG_HELLO_SECRET_MAX]; /* "" = none required; wiped by free_resources */

    store_t *store;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *tcp_listeners[PUB_MAX_TCP_LISTENERS];
    char tcp_addrs[PUB_MAX_TCP_LISTENERS][PUB_ADDR_MAX];
    size_t n_tcp;
    SSL_CTX *tls_ctx;           /* mutual TLS for the tcp:// listeners; NULL without them */
    pub_linger_t *lingering;    /* refused TLS sockets being closed gracefully */
    size_t n_lingering;
    struct event *notify_ev, *coalesce_ev, *tick_ev, *stop_ev;
    pthread_t thread;
    bool thread_started;

    pub_payload_t *latest;      /* publisher thread */
    int64_t latest_version;     /* atomic: read by other threads */
    uint64_t last_poll_ms;
    pub_conn_t *conns;
    size_t n_conns;

    pthread_mutex_t mu; /* guards dps, n_dps and the records' fields */
    pub_dp_t *dps;
    size_t n_dps;
};

static void conn_close(pub_conn_t *c, const char *reason);
static void on_conn_event(struct bufferevent *bev, short what, void *arg);

/* ---- small helpers -------------------------------------------------------------------- */

static const char *i64s(int64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

static pub_payload_t *payload_ref(pub_payload_t *p)
{
    if (p)
        p->refs++;
    return p;
}

static void payload_unref(pub_payload_t *p)
{
    if (p && --p->refs == 0) {
        free(p->data);
        free(p);
    }
}

static void on_payload_sent(const void *data, size_t len, void *arg)
{
    payload_unref(arg);
}

/* Queue a frame whose payload is copied (the small messages). */
static int conn_send(pub_conn_t *c, fg_msg_type_t type, const char *payload)
{
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    size_t len = payload ? strlen(payload) : 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    fg_frame_header_encode(hdr, type, (uint32_t)len);
    if (evbuffer_add(out, hdr, sizeof hdr) < 0 || (len && evbuffer_add(out, payload, len) < 0))
        return -ENOMEM;
    return 0;
}

static void conn_send_ping(pub_conn_t *c, fg_msg_type_t type)
{
    fg_ping_t ping = {.requests = -1,
                      .applied_version = __atomic_load_n(&c->pub->latest_version,
                                                         __ATOMIC_RELAXED)};
    char *payload = fg_ping_encode(&ping);
    if (!payload || conn_send(c, type, payload) < 0)
        fg_log(FG_LOG_ERROR, "cannot queue frame", "type", fg_msg_type_name(type), NULL);
    free(payload);
    if (type == FG_MSG_PING)
        c->last_ping_ms = fg_now_ms();
}

/* ---- pushing snapshots ---------------------------------------------------------------- */

/* Queue the latest snapshot on `c` unless the data plane has it, refused it, or already has
 * it on the way. Returns -1 when the connection had to be closed. */
static int conn_push(pub_conn_t *c)
{
    publisher_t *pub = c->pub;
    pub_payload_t *p = pub->latest;
    char vbuf[24];
    if (!c->dp || !p || p->version == c->sent_version)
        return 0;
    pthread_mutex_lock(&pub->mu);
    bool compatible = c->dp->protocol == FG_PROTOCOL_VERSION;
    bool wanted = p->version != c->dp->applied_version && p->version != c->dp->nacked_version;
    pthread_mutex_unlock(&pub->mu);
    if (!compatible || !wanted)
        return 0;

    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) > PUB_MAX_OUTPUT_BYTES) {
        conn_close(c, "peer is not reading its snapshots");
        return -1;
    }
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    fg_frame_header_encode(hdr, FG_MSG_SNAPSHOT, (uint32_t)p->len);
    if (evbuffer_add(out, hdr, sizeof hdr) < 0 ||
        evbuffer_add_reference(out, p->data, p->len, on_payload_sent, payload_ref(p)) < 0) {
        conn_close(c, "out of memory queueing a snapshot");
        return -1;
    }
    c->sent_version = p->version;
    fg_log(FG_LOG_DEBUG, "snapshot sent", "dp_id", c->dp->id, "version", i64s(p->version, vbuf),
           NULL);
    return 0;
}

/* Push the current snapshot to every connection but `skip` (NULL: all). conn_push may close
 * and free the connection it is given, so the next pointer is read first. */
static void push_all_except(publisher_t *pub, pub_conn_t *skip)
{
    pub_conn_t *next;
    for (pub_conn_t *c = pub->conns; c; c = next) {
        next = c->next;
        if (c != skip)
            conn_push(c);
    }
}

/* Load the newest stored snapshot if it is not the one we hold. True when it changed. */
static bool load_latest(publisher_t *pub)
{
    fg_error_t err;
    int64_t version = 0;
    store_snapshot_t snap;
    char vbuf[24];

    pub->last_poll_ms = fg_now_ms();
    if (store_version(pub->store, &version, &err) < 0) {
        fg_log(FG_LOG_ERROR, "cannot read config version", "error", err.message, NULL);
        return false;
    }
    if (pub->latest && pub->latest->version == version)
        return false;
    if (store_snapshot_latest(pub->store, &snap, &err) < 0) {
        fg_log(FG_LOG_ERROR, "cannot read latest snapshot", "error", err.message, NULL);
        return false;
    }
    pub_payload_t *p = calloc(1, sizeof *p);
    if (p)
        p->data = fg_snapshot_encode(snap.version, snap.checksum, snap.created_at, snap.config);
    if (!p || !p->data) {
        free(p);
        store_snapshot_clear(&snap);
        fg_log(FG_LOG_ERROR, "cannot encode snapshot", "error", "out of memory", NULL);
        return false;
    }
    p->refs = 1;
    p->version = snap.version;
    p->len = strlen(p->data);
    store_snapshot_clear(&snap);
    if (p->len > pub->max_payload) {
        fg_log(FG_LOG_ERROR, "snapshot exceeds the frame payload limit, not sent", "version",
               i64s(p->version, vbuf), NULL);
        payload_unref(p);
        return false;
    }
    payload_unref(pub->latest);
    pub->latest = p;
    __atomic_store_n(&pub->latest_version, p->version, __ATOMIC_RELAXED);
    fg_log(FG_LOG_DEBUG, "snapshot loaded", "version", i64s(p->version, vbuf), NULL);
    return true;
}

/* Load the newest stored snapshot if it is not the one we hold, then push it to everyone. */
static void refresh_latest(publisher_t *pub)
{
    uint64_t t0 = ctl_metrics_now_us();
    if (load_latest(pub)) {
        push_all_except(pub, NULL);
        ctl_metrics_publish(ctl_metrics_now_us() - t0); /* issue 7 */
    }
}

/* ---- the registry --------------------------------------------------------------------- */

static pub_dp_t *registry_find(publisher_t *pub, const char *id)
{
    for (pub_dp_t *d = pub->dps; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

/* Drop disconnected records older than `older_than_ms` (wall); with `one`, only the oldest
 * disconnected record regardless of age (making room). Caller holds mu. */
static void registry_prune(publisher_t *pub, uint64_t older_than_ms, bool one)
{
    pub_dp_t **victim = NULL;
    for (pub_dp_t **pp = &pub->dps; *pp;) {
        pub_dp_t *d = *pp;
        if (d->connected) {
            pp = &d->next;
        } else if (one) {
            if (!victim || d->disconnected_ms < (*victim)->disconnected_ms)
                victim = pp;
            pp = &d->next;
        } else if (d->disconnected_ms < older_than_ms) {
            *pp = d->next;
            free(d);
            pub->n_dps--;
        } else {
            pp = &d->next;
        }
    }
    if (victim) {
        pub_dp_t *d = *victim;
        *victim = d->next;
        free(d);
        pub->n_dps--;
    }
}

/* Find or create the record for a HELLO and fill it in. Caller holds mu. NULL when full. */
static pub_dp_t *registry_hello(publisher_t *pub, const fg_hello_t *h, pub_conn_t *c,
                                pub_conn_t **displaced)
{
    pub_dp_t *d = registry_find(pub, h->dp_id);
    if (!d) {
        if (pub->n_dps >= PUB_MAX_DATAPLANES)
            registry_prune(pub, 0, true);
        if (pub->n_dps >= PUB_MAX_DATAPLANES || !(d = calloc(1, sizeof *d)))
            return NULL;
        snprintf(d->id, sizeof d->id, "%s", h->dp_id);
        d->next = pub->dps;
        pub->dps = d;
        pub->n_dps++;
    }
    *displaced = d->conn != c ? d->conn : NULL;
    uint64_t now = fg_wall_ms();
    snprintf(d->hostname, sizeof d->hostname, "%s", h->hostname);
    snprintf(d->software_version, sizeof d->software_version, "%s", h->software_version);
    d->pid = h->pid;
    d->protocol = h->protocol;
    d->connected = true;
    d->connected_since_ms = now;
    d->last_seen_ms = now;
    d->disconnected_ms = 0;
    d->applied_version = h->applied_version;
    d->n_labels = h->n_labels < FG_LABELS_MAX ? h->n_labels : FG_LABELS_MAX;
    memcpy(d->labels, h->labels, d->n_labels * sizeof d->labels[0]);
    if (h->protocol == FG_PROTOCOL_VERSION && d->protocol_refused)
        d->last_error[0] = '\0'; /* the refusal no longer applies */
    d->protocol_refused = h->protocol != FG_PROTOCOL_VERSION;
    d->requests = -1; /* a new connection may be a new process: its counts start again */
    d->requests_per_s = -1;
    d->conn = c;
    return d;
}

/* An incompatible data plane is told so and disconnected (it retries rarely), so its
 * protocol, not its connection, decides its status. */
static const char *dp_status(const pub_dp_t *d, int64_t current)
{
    if (d->protocol != FG_PROTOCOL_VERSION)
        return "incompatible";
    if (!d->connected)
        return "disconnected";
    if (d->applied_version == current)
        return "in_sync";
    if (d->nacked_version == current)
        return "nacked";
    return "behind";
}

static cJSON *time_or_null(uint64_t ms)
{
    char ts[FG_RFC3339_LEN + 1];
    if (!ms)
        return cJSON_CreateNull();
    fg_rfc3339(ms, ts);
    return cJSON_CreateString(ts);
}

static cJSON *dp_json(const pub_dp_t *d, int64_t current)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "hostname", d->hostname);
    cJSON_AddNumberToObject(o, "pid", (double)d->pid);
    cJSON_AddStringToObject(o, "software_version", d->software_version);
    cJSON_AddNumberToObject(o, "protocol", d->protocol);
    cJSON *labels = cJSON_AddObjectToObject(o, "labels");
    for (size_t i = 0; labels && i < d->n_labels; i++)
        cJSON_AddStringToObject(labels, d->labels[i].key, d->labels[i].value);
    cJSON_AddBoolToObject(o, "connected", d->connected);
    cJSON_AddItemToObject(o, "connected_since", time_or_null(d->connected ?
                                                             d->connected_since_ms : 0));
    cJSON_AddItemToObject(o, "last_seen", time_or_null(d->last_seen_ms));
    cJSON_AddNumberToObject(o, "applied_version", (double)d->applied_version);
    cJSON_AddNumberToObject(o, "lag", (double)(current > d->applied_version ?
                                               current - d->applied_version : 0));
    cJSON_AddStringToObject(o, "status", dp_status(d, current));
    if (d->requests >= 0)
        cJSON_AddNumberToObject(o, "requests_total", (double)d->requests);
    else
        cJSON_AddNullToObject(o, "requests_total");
    if (d->requests_per_s >= 0 && d->connected)
        cJSON_AddNumberToObject(o, "requests_per_second",
                                (double)(int64_t)(d->requests_per_s * 10.0 + 0.5) / 10.0);
    else
        cJSON_AddNullToObject(o, "requests_per_second");
    if (d->nacked_version)
        cJSON_AddNumberToObject(o, "nacked_version", (double)d->nacked_version);
    else
        cJSON_AddNullToObject(o, "nacked_version");
    if (d->last_error[0])
        cJSON_AddStringToObject(o, "last_error", d->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    return o;
}

static int cmp_dp_id(const void *a, const void *b)
{
    return strcmp((*(pub_dp_t *const *)a)->id, (*(pub_dp_t *const *)b)->id);
}

cJSON *publisher_dataplanes_json(publisher_t *pub, int64_t current_version)
{
    cJSON *items = cJSON_CreateArray();
    if (!pub || !items)
        return items;
    pthread_mutex_lock(&pub->mu);
    pub_dp_t **sorted = calloc(pub->n_dps ? pub->n_dps : 1, sizeof *sorted);
    size_t n = 0;
    for (pub_dp_t *d = pub->dps; d && sorted; d = d->next)
        sorted[n++] = d;
    if (sorted)
        qsort(sorted, n, sizeof *sorted, cmp_dp_id);
    for (size_t i = 0; i < n; i++) {
        cJSON *item = dp_json(sorted[i], current_version);
        if (item)
            cJSON_AddItemToArray(items, item);
    }
    pthread_mutex_unlock(&pub->mu);
    free(sorted);
    return items;
}

/* ---- incoming frames ------------------------------------------------------------------ */

static void on_conn_flushed(struct bufferevent *bev, void *arg)
{
    pub_conn_t *c = arg;
    conn_close(c, c->close_reason);
}

/* Queue the refusal `payload` (a NACK), read nothing more, and close once it is written. */
static void conn_refuse(pub_conn_t *c, char *payload, const char *reason)
{
    if (!payload || conn_send(c, FG_MSG_NACK, payload) < 0) {
        free(payload);
        conn_close(c, "out of memory refusing a data plane");
        return;
    }
    free(payload);
    c->closing = true;
    c->close_reason = reason;
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, on_conn_flushed, on_conn_event, c);
}

/* PROTOCOL.md §4.6: a NACK of version 0 tells the data plane why it gets no snapshots, then
 * the connection is closed once that frame is written; the data plane retries rarely. Its
 * record stays, listed as incompatible with the reason. */
static void tell_incompatible(pub_conn_t *c, int protocol)
{
    char vbuf[24];
    fg_ack_t why;
    fg_error_t err;
    fg_log(FG_LOG_WARN, "data plane speaks another protocol version, not sending it "
                        "snapshots", "dp_id", c->dp->id, "protocol", i64s(protocol, vbuf), NULL);
    char *payload = fg_incompatible_encode(protocol);
    if (payload && fg_ack_decode(payload, strlen(payload), &why, &err) == 0) {
        pthread_mutex_lock(&c->pub->mu);
        snprintf(c->dp->last_error, sizeof c->dp->last_error, "%s", why.error);
        pthread_mutex_unlock(&c->pub->mu);
    }
    conn_refuse(c, payload, "incompatible protocol: told so, closed");
}

/* Why the HELLO `h` may not subscribe, or NULL when it may. On the unix socket it must carry
 * the data plane secret; over tcp:// the client certificate verified in the handshake is the
 * credential, and a secret sent there anyway must still be the right one. */
static const char *hello_auth_problem(const pub_conn_t *c, const fg_hello_t *h)
{
    const publisher_t *pub = c->pub;
    if (!pub->dp_secret[0] || (c->tls && c->tls_up && !h->secret[0]))
        return NULL;
    if (!h->secret[0])
        return "HELLO carries no secret: start flexgate-dp with --dp-secret-file (the "
               "control plane's data plane secret)";
    if (!fg_secret_equal(pub->dp_secret, h->secret, strlen(h->secret)))
        return "wrong secret";
    return NULL;
}

/* A data plane that failed authentication is told why (PROTOCOL.md §4.7), logged with what
 * it claimed to be, kept out of the registry, and hung up on. Nothing else is sent to it. */
static void refuse_unauthenticated(pub_conn_t *c, const fg_hello_t *h, const char *why)
{
    char text[FG_PROTO_ERROR_MAX], pid[24];
    fg_log(FG_LOG_WARN, "refused a data plane: authentication failed", "peer", c->peer,
           "dp_id", h->dp_id, "hostname", h->hostname, "pid", i64s(h->pid, pid), "error",
           why, NULL);
    snprintf(text, sizeof text, "authentication failed: %s", why);
    conn_refuse(c, fg_refusal_encode(text), "refused: authentication failed");
}

static int on_hello(pub_conn_t *c, const char *payload, size_t len)
{
    publisher_t *pub = c->pub;
    fg_hello_t h;
    fg_error_t err;
    pub_conn_t *displaced = NULL;
    char v1[24], v2[24], v3[24];

    if (c->dp) {
        fg_log(FG_LOG_WARN, "second HELLO on one connection", "dp_id", c->dp->id, NULL);
        return -1;
    }
    memset(&h, 0, sizeof h);
    fg_error_clear(&err);
    if (fg_hello_decode(payload, len, &h, &err) < 0) {
        fg_log(FG_LOG_WARN, "bad HELLO", "field", err.field, "error", err.message, NULL);
        return -1;
    }
    if (!h.dp_id[0]) {
        fg_log(FG_LOG_WARN, "bad HELLO", "field", "dp_id", "error", "is empty", NULL);
        return -1;
    }
    const char *auth_problem = hello_auth_problem(c, &h);
    explicit_bzero(h.secret, sizeof h.secret);
    if (auth_problem) {
        refuse_unauthenticated(c, &h, auth_problem);
        return 1; /* closing: read nothing more from it */
    }
    pthread_mutex_lock(&pub->mu);
    pub_dp_t *d = registry_hello(pub, &h, c, &displaced);
    pthread_mutex_unlock(&pub->mu);
    if (!d) {
        fg_log(FG_LOG_ERROR, "data plane registry full", "dp_id", h.dp_id, NULL);
        return -1;
    }
    if (displaced) {
        displaced->dp = NULL; /* the record now belongs to this connection */
        conn_close(displaced, "replaced by a new connection with the same dp_id");
    }
    c->dp = d;
    fg_log(FG_LOG_INFO, "data plane connected", "dp_id", h.dp_id, "hostname", h.hostname,
           "pid", i64s(h.pid, v1), "software_version", h.software_version,
           "applied_version", i64s(h.applied_version, v2), "protocol", i64s(h.protocol, v3),
           NULL);
    if (h.protocol != FG_PROTOCOL_VERSION) {
        tell_incompatible(c, h.protocol);
        return 1; /* closing (or closed): read nothing more from it */
    }
    /* The cached snapshot lags a commit by up to the coalescing delay; a data plane that
     * says HELLO inside that window must still get the current version first, not an older
     * one followed by the new one. One indexed read per HELLO is cheap. The others get the
     * newer version too, now: the coalescing timer will find nothing new to push. */
    if (load_latest(pub))
        push_all_except(pub, c);
    if (conn_push(c) < 0)
        return 1; /* closed already */
    /* Answer at once, so the data plane knows the session is up even when it is in sync. */
    conn_send_ping(c, FG_MSG_PING);
    return 0;
}

static int on_ack(pub_conn_t *c, const char *payload, size_t len, bool nack)
{
    fg_ack_t a;
    fg_error_t err;
    char vbuf[24];
    if (fg_ack_decode(payload, len, &a, &err) < 0) {
        fg_log(FG_LOG_WARN, nack ? "bad NACK" : "bad ACK", "dp_id", c->dp->id, "field",
               err.field, "error", err.message, NULL);
        return -1;
    }
    pthread_mutex_lock(&c->pub->mu);
    if (nack) {
        c->dp->nacked_version = a.version;
        snprintf(c->dp->last_error, sizeof c->dp->last_error, "%s",
                 a.error[0] ? a.error : "refused without a reason");
    } else {
        c->dp->applied_version = a.version;
    }
    pthread_mutex_unlock(&c->pub->mu);
    if (nack)
        fg_log(FG_LOG_WARN, "data plane refused snapshot", "dp_id", c->dp->id, "version",
               i64s(a.version, vbuf), "error", a.error, NULL);
    else
        fg_log(FG_LOG_INFO, "data plane applied snapshot", "dp_id", c->dp->id, "version",
               i64s(a.version, vbuf), NULL);
    return conn_push(c) < 0 ? 1 : 0;
}

/* A data plane's request count arrived: its rate is the change since the previous count
 * (a count that went down is a restarted process: counted from zero). Under pub->mu. */
static void dp_note_requests(pub_dp_t *d, int64_t requests, uint64_t now_ms)
{
    if (d->requests >= 0 && now_ms > d->requests_at_ms) {
        int64_t delta = requests >= d->requests ? requests - d->requests : requests;
        d->requests_per_s = (double)delta * 1000.0 / (double)(now_ms - d->requests_at_ms);
    }
    d->requests = requests;
    d->requests_at_ms = now_ms;
}

static int on_ping(pub_conn_t *c, const char *payload, size_t len, bool pong)
{
    fg_ping_t p;
    fg_error_t err;
    if (fg_ping_decode(payload, len, &p, &err) < 0) {
        fg_log(FG_LOG_WARN, pong ? "bad PONG" : "bad PING", "dp_id", c->dp->id, "error",
               err.message, NULL);
        return -1;
    }
    pthread_mutex_lock(&c->pub->mu);
    c->dp->applied_version = p.applied_version;
    if (p.requests >= 0)
        dp_note_requests(c->dp, p.requests, fg_now_ms());
    pthread_mutex_unlock(&c->pub->mu);
    if (!pong)
        conn_send_ping(c, FG_MSG_PONG);
    return conn_push(c) < 0 ? 1 : 0;
}

/* One complete frame. Returns 0 to go on, -1 to close the connection, 1 when it is closed. */
static int on_frame(pub_conn_t *c, fg_msg_type_t type, const char *payload, size_t len)
{
    c->last_recv_ms = fg_now_ms();
    if (!c->dp && type != FG_MSG_HELLO) {
        fg_log(FG_LOG_WARN, "frame before HELLO", "type", fg_msg_type_name(type), NULL);
        return -1;
    }
    if (c->dp) {
        pthread_mutex_lock(&c->pub->mu);
        c->dp->last_seen_ms = fg_wall_ms();
        pthread_mutex_unlock(&c->pub->mu);
    }
    switch (type) {
    case FG_MSG_HELLO:
        return on_hello(c, payload, len);
    case FG_MSG_ACK:
    case FG_MSG_NACK:
        return on_ack(c, payload, len, type == FG_MSG_NACK);
    case FG_MSG_PING:
    case FG_MSG_PONG:
        return on_ping(c, payload, len, type == FG_MSG_PONG);
    case FG_MSG_SNAPSHOT:
        break;
    }
    fg_log(FG_LOG_WARN, "unexpected frame from data plane", "type", fg_msg_type_name(type),
           NULL);
    return -1;
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    pub_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hdr[FG_FRAME_HEADER_SIZE];
    fg_msg_type_t type;
    uint32_t len;

    while (evbuffer_get_length(in) >= FG_FRAME_HEADER_SIZE) {
        evbuffer_copyout(in, hdr, sizeof hdr);
        uint32_t cap = c->dp ? c->pub->max_payload : PUB_HELLO_MAX_PAYLOAD;
        if (fg_frame_header_decode(hdr, cap, &type, &len) < 0) {
            conn_close(c, "bad frame header (oversized or unknown type)");
            return;
        }
        if (evbuffer_get_length(in) < FG_FRAME_HEADER_SIZE + (size_t)len)
            return; /* called again when more arrives */
        evbuffer_drain(in, sizeof hdr);
        const char *payload = len ? (const char *)evbuffer_pullup(in, len) : "";
        if (!payload) {
            conn_close(c, "out of memory reading a frame");
            return;
        }
        int rc = on_frame(c, type, payload, len);
        if (rc > 0)
            return;
        if (rc < 0) {
            conn_close(c, "protocol error");
            return;
        }
        evbuffer_drain(in, len);
    }
}

/* A lingering close for a refused TLS peer. With TLS 1.3 the client finishes its side of the
 * handshake before we have judged its certificate, and sends its first frames at once;
 * closing a socket with those unread makes the kernel answer with a reset, which can reach
 * the peer before our alert and hide the reason from it. So the socket is kept (a dup of
 * it outlives the bufferevent), our side is shut for writing (FIN after the alert) and what
 * the peer still sends is read and dropped until it closes or PUB_LINGER_MS passes. */
static void linger_free(pub_linger_t *l)
{
    publisher_t *pub = l->pub;
    if (l->prev)
        l->prev->next = l->next;
    else
        pub->lingering = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pub->n_lingering--;
    event_free(l->ev);
    evutil_closesocket(l->fd);
    free(l);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    char sink[PUB_LINGER_READ];
    ssize_t n = 0;
    if (what & EV_READ)
        while ((n = recv(fd, sink, sizeof sink, 0)) > 0)
            ;
    if (!(what & EV_READ) || n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        linger_free(arg); /* timed out, peer closed, or broken */
}

static void conn_linger(pub_conn_t *c)
{
    publisher_t *pub = c->pub;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0 || pub->n_lingering >= PUB_MAX_CONNECTIONS)
        return; /* plain close: only the peer's error message suffers */
    pub_linger_t *l = calloc(1, sizeof *l); /* owned by pub->lingering until linger_free */
    if (!l)
        return;
    l->pub = pub;
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    l->ev = l->fd >= 0 ? event_new(pub->base, l->fd, EV_READ | EV_PERSIST, on_linger, l)
                       : NULL;
    struct timeval tv = {.tv_sec = PUB_LINGER_MS / 1000,
                         .tv_usec = (PUB_LINGER_MS % 1000) * 1000};
    if (!l->ev || event_add(l->ev, &tv) < 0) {
        if (l->ev)
            event_free(l->ev);
        if (l->fd >= 0)
            evutil_closesocket(l->fd);
        free(l);
        return;
    }
    shutdown(l->fd, SHUT_WR);
    l->next = pub->lingering;
    if (l->next)
        l->next->prev = l;
    pub->lingering = l;
    pub->n_lingering++;
}

/* The TLS handshake finished: the client certificate chained to our CA. */
static void conn_tls_up(pub_conn_t *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

    c->tls_up = true;
    fg_tls_peer_subject(ssl, c->peer_subject, sizeof c->peer_subject);
    fg_log(FG_LOG_INFO, "data plane TLS session established", "peer", c->peer,
           "subject", c->peer_subject, "tls_version", ssl ? SSL_get_version(ssl) : NULL,
           "cipher", ssl ? SSL_get_cipher_name(ssl) : NULL, NULL);
}

/* Why a TLS connection failed, with OpenSSL's reason (the first queued error is the cause). */
static void conn_tls_failure(pub_conn_t *c, short what, char *out, size_t out_len)
{
    unsigned long code = 0, e;
    /* libevent queues SSL_get_error's result (a small number) before OpenSSL's own error
     * codes; only the latter name a reason. */
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (!code && ERR_GET_LIB(e) != 0)
            code = e;
    if (!code && (what & BEV_EVENT_EOF))
        snprintf(out, out_len, "connection closed by peer");
    else if (!code && EVUTIL_SOCKET_ERROR())
        snprintf(out, out_len, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else
        fg_tls_describe_failure(bufferevent_openssl_get_ssl(c->bev), code, out, out_len);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    pub_conn_t *c = arg;
    char reason[FG_PROTO_ERROR_MAX];
    char why[FG_PROTO_ERROR_MAX - 32];

    if (what & BEV_EVENT_CONNECTED) {
        conn_tls_up(c);
        return;
    }
    if (c->tls && !c->tls_up) {
        /* The one place a data plane with no certificate, or one from another CA, is
         * turned away: say who and why, once. */
        conn_tls_failure(c, what, why, sizeof why);
        fg_log(FG_LOG_WARN, "refused a data plane connection: TLS handshake failed", "peer",
               c->peer, "error", why, NULL);
        snprintf(reason, sizeof reason, "TLS handshake failed: %s", why);
        conn_linger(c);
    } else if (c->tls) {
        conn_tls_failure(c, what, why, sizeof why);
        snprintf(reason, sizeof reason, "%s", why);
    } else if (what & BEV_EVENT_EOF) {
        snprintf(reason, sizeof reason, "connection closed by peer");
    } else {
        snprintf(reason, sizeof reason, "connection error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    conn_close(c, reason);
}

/* ---- connections ---------------------------------------------------------------------- */

static void conn_close(pub_conn_t *c, const char *reason)
{
    publisher_t *pub = c->pub;
    if (c->dp) {
        pthread_mutex_lock(&pub->mu);
        c->dp->connected = false;
        c->dp->conn = NULL;
        c->dp->disconnected_ms = fg_wall_ms();
        pthread_mutex_unlock(&pub->mu);
        fg_log(FG_LOG_INFO, "data plane disconnected", "dp_id", c->dp->id, "reason", reason,
               NULL);
    } else {
        fg_log(FG_LOG_DEBUG, "connection closed before HELLO", "reason", reason, NULL);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        pub->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pub->n_conns--;
    bufferevent_free(c->bev);
    free(c);
}

/* A plain bufferevent for the Unix socket; for tcp://, one that runs the server side of the
 * TLS handshake first (BEV_EVENT_CONNECTED when it is done, an error when the client's
 * certificate is missing or refused). */
static struct bufferevent *conn_bev_new(publisher_t *pub, evutil_socket_t fd, bool tls)
{
    if (!tls)
        return bufferevent_socket_new(pub->base, fd, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(pub->tls_ctx); /* owned by the bufferevent from here */
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(pub->base, fd, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (bev)
        /* A peer that closes without close_notify has still said all it had to say: every
         * frame is length-prefixed, so a truncation cannot pass for a message. */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* "unix pid=N uid=N": who connected, for the log of a refused HELLO (the kernel's word,
 * SO_PEERCRED, not the HELLO's). */
static void describe_unix_peer(evutil_socket_t fd, char *out, size_t len)
{
    struct ucred cred;
    socklen_t n = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) == 0)
        snprintf(out, len, "unix pid=%ld uid=%ld", (long)cred.pid, (long)cred.uid);
}

static void conn_accept(publisher_t *pub, evutil_socket_t fd, const struct sockaddr *sa,
                        bool tls)
{
    if (pub->n_conns >= PUB_MAX_CONNECTIONS) {
        fg_log(FG_LOG_WARN, "too many data plane connections, refusing one", NULL);
        evutil_closesocket(fd);
        return;
    }
    if (tls) {
        /* Frames and handshake flights are small writes Nagle would hold for an ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    pub_conn_t *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? conn_bev_new(pub, fd, tls) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        fg_log(FG_LOG_ERROR, "cannot accept data plane", "error", "out of memory", NULL);
        return;
    }
    c->pub = pub;
    c->bev = bev;
    c->tls = tls;
    snprintf(c->peer, sizeof c->peer, "unix");
    if (!tls)
        describe_unix_peer(fd, c->peer, sizeof c->peer);
    if (tls && sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
        char host[INET6_ADDRSTRLEN] = "?";
        const void *a = sa->sa_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        unsigned port = ntohs(sa->sa_family == AF_INET
                                  ? ((const struct sockaddr_in *)sa)->sin_port
                                  : ((const struct sockaddr_in6 *)sa)->sin6_port);
        evutil_inet_ntop(sa->sa_family, a, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
                 host, port);
    }
    c->last_recv_ms = c->last_ping_ms = fg_now_ms();
    c->next = pub->conns;
    if (pub->conns)
        pub->conns->prev = c;
    pub->conns = c;
    pub->n_conns++;
    bufferevent_setcb(bev, on_conn_read, NULL, on_conn_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    conn_accept(arg, fd, sa, false);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    conn_accept(arg, fd, sa, true);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    fg_log(FG_LOG_ERROR, "accept failed on the snapshot socket", "error",
           evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), NULL);
}

/* ---- timers --------------------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    publisher_t *pub = arg;
    uint64_t now = fg_now_ms();
    pub_conn_t *next;
    for (pub_conn_t *c = pub->conns; c; c = next) {
        next = c->next;
        if (now - c->last_recv_ms >= pub->silence_ms)
            conn_close(c, "peer silent too long");
        else if (c->dp && !c->closing && now - c->last_ping_ms >= pub->ping_ms)
            conn_send_ping(c, FG_MSG_PING);
    }
    if (now - pub->last_poll_ms >= pub->poll_ms)
        refresh_latest(pub);
    uint64_t wall = fg_wall_ms();
    if (wall > PUB_FORGET_AFTER_MS) {
        pthread_mutex_lock(&pub->mu);
        registry_prune(pub, wall - PUB_FORGET_AFTER_MS, false);
        pthread_mutex_unlock(&pub->mu);
    }
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    publisher_t *pub = arg;
    struct timeval tv = {.tv_sec = pub->coalesce_ms / 1000,
                         .tv_usec = (pub->coalesce_ms % 1000) * 1000};
    if (!evtimer_pending(pub->coalesce_ev, NULL))
        evtimer_add(pub->coalesce_ev, &tv);
}

static void on_coalesced(evutil_socket_t fd, short what, void *arg)
{
    refresh_latest(arg);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(((publisher_t *)arg)->base);
}

/* ---- lifetime ------------------------------------------------------------------------- */

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void init_evthread(void)
{
    evthread_use_pthreads();
}

static void *run_loop(void *arg)
{
    publisher_t *pub = arg;
    /* Signals are main()'s business (sigwait); keep them off this thread. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    event_base_dispatch(pub->base);
    return NULL;
}

/* Replace a stale socket file, but never a live one or something that is not a socket. */
static int clear_stale_socket(const char *path, fg_error_t *err)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        return errno == ENOENT ? 0 : fg_error_setc(err, -errno, NULL, "cannot stat %s: %s",
                                                   path, strerror(errno));
    if (!S_ISSOCK(sb.st_mode))
        return fg_error_setc(err, -EEXIST, NULL, "%s exists and is not a socket", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fg_error_setc(err, -errno, NULL, "socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (live)
        return fg_error_setc(err, -EADDRINUSE, NULL, "%s: another control plane is listening",
                             path);
    if (unlink(path) < 0 && errno != ENOENT)
        return fg_error_setc(err, -errno, NULL, "cannot remove stale %s: %s", path,
                             strerror(errno));
    return 0;
}

static int bind_unix(publisher_t *pub, fg_error_t *err)
{
    const char *path = pub->listen + strlen(PUB_UNIX_PREFIX);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat sb;
    if (!*path || strlen(path) >= sizeof sa.sun_path)
        return fg_error_setc(err, -EINVAL, "socket", "unix socket path empty or longer than "
                                                     "%zu bytes", sizeof sa.sun_path - 1);
    int rc = clear_stale_socket(path, err);
    if (rc)
        return rc;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fg_error_setc(err, -errno, NULL, "socket: %s", strerror(errno));
    /* The umask closes the window between bind and chmod in which others could connect. */
    mode_t old = umask(0777 & ~PUB_SOCKET_MODE);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int bind_errno = errno;
    umask(old);
    if (rc < 0) {
        rc = fg_error_setc(err, -bind_errno, NULL, "cannot bind %s: %s", path,
                           strerror(bind_errno));
        goto fail_fd;
    }
    snprintf(pub->socket_path, sizeof pub->socket_path, "%s", path);
    if (chmod(path, PUB_SOCKET_MODE) < 0 || lstat(path, &sb) < 0) {
        rc = fg_error_setc(err, -errno, NULL, "cannot chmod %s: %s", path, strerror(errno));
        goto fail_fd;
    }
    pub->socket_ino = sb.st_ino;
    pub->listener = evconnlistener_new(pub->base, on_accept, pub,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                       PUB_LISTEN_BACKLOG, fd);
    if (!pub->listener) {
        rc = fg_error_setc(err, -errno ? -errno : -EIO, NULL, "cannot listen on %s", path);
        goto fail_fd;
    }
    evconnlistener_set_error_cb(pub->listener, on_accept_error);
    return 0;

fail_fd:
    close(fd);
    return rc;
}

static int bind_listener(publisher_t *pub, fg_error_t *err)
{
    if (strncmp(pub->listen, PUB_UNIX_PREFIX, strlen(PUB_UNIX_PREFIX)) == 0)
        return bind_unix(pub, err);
    if (strncmp(pub->listen, PUB_TCP_PREFIX, strlen(PUB_TCP_PREFIX)) == 0)
        return fg_error_setc(err, -EINVAL, "socket", "the socket is unix:PATH; tcp:// "
                                                     "addresses are tcp_listen (--dp-listen)");
    return fg_error_setc(err, -EINVAL, "socket", "expected unix:PATH, got '%s'", pub->listen);
}

/* "tcp://HOST:PORT" or "tcp://[V6]:PORT" into host and port text. */
static int split_tcp_address(const char *text, char *host, size_t host_len, char *port,
                             size_t port_len, fg_error_t *err)
{
    const char *hp = text + strlen(PUB_TCP_PREFIX), *colon, *h = hp;
    size_t n;
    if (strncmp(text, PUB_TCP_PREFIX, strlen(PUB_TCP_PREFIX)) != 0)
        return fg_error_setc(err, -EINVAL, "dp-listen", "expected tcp://HOST:PORT, got '%.200s'",
                             text);
    if (*hp == '[') {
        const char *close = strchr(hp, ']');
        if (!close || close[1] != ':')
            return fg_error_setc(err, -EINVAL, "dp-listen", "expected tcp://[IPV6]:PORT, got "
                                 "'%.200s'", text);
        h = hp + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon || memchr(hp, ':', (size_t)(colon - hp)))
            return fg_error_setc(err, -EINVAL, "dp-listen", "expected tcp://HOST:PORT, got "
                                 "'%.200s'", text);
        n = (size_t)(colon - hp);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (n == 0 || n >= host_len || colon[1] == '\0' || *end || p < 0 || p > 65535)
        return fg_error_setc(err, -EINVAL, "dp-listen", "bad host or port in '%.200s'", text);
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, port_len, "%ld", p);
    return 0;
}

/* One tcp:// listener; names are resolved here, once, at start-up. */
static int bind_tcp(publisher_t *pub, const char *text, fg_error_t *err)
{
    char host[256], port[8];
    struct evutil_addrinfo hints, *res = NULL;
    int rc = split_tcp_address(text, host, sizeof host, port, sizeof port, err);
    if (rc)
        return rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICSERV;
    if ((rc = evutil_getaddrinfo(host, port, &hints, &res)) != 0 || !res)
        return fg_error_setc(err, -EINVAL, "dp-listen", "cannot resolve '%.200s': %s", text,
                             rc ? evutil_gai_strerror(rc) : "no address");
    struct evconnlistener *l = evconnlistener_new_bind(
        pub->base, on_accept_tls, pub,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, PUB_LISTEN_BACKLOG,
        res->ai_addr, (int)res->ai_addrlen);
    int e = errno;
    evutil_freeaddrinfo(res);
    if (!l)
        return fg_error_setc(err, e ? -e : -EIO, "dp-listen", "cannot listen on %.200s: %s",
                             text, strerror(e ? e : EIO));
    evconnlistener_set_error_cb(l, on_accept_error);
    snprintf(pub->tcp_addrs[pub->n_tcp], sizeof pub->tcp_addrs[0], "%s", text);
    pub->tcp_listeners[pub->n_tcp++] = l;
    return 0;
}

/* The TLS context first, so a bad certificate is reported before any port is taken. */
static int bind_tcp_listeners(publisher_t *pub, const publisher_conf_t *conf, fg_error_t *err)
{
    if (conf->n_tcp_listen == 0)
        return 0;
    if (conf->n_tcp_listen > PUB_MAX_TCP_LISTENERS)
        return fg_error_setc(err, -EINVAL, "dp-listen", "at most %u tcp:// listen addresses",
                             PUB_MAX_TCP_LISTENERS);
    pub->tls_ctx = fg_tls_mutual_ctx(FG_TLS_SERVER, conf->tls_ca, conf->tls_cert,
                                     conf->tls_key, err);
    if (!pub->tls_ctx)
        return -EINVAL;
    for (size_t i = 0; i < conf->n_tcp_listen; i++) {
        int rc = bind_tcp(pub, conf->tcp_listen[i], err);
        if (rc)
            return rc;
    }
    return 0;
}

static int make_events(publisher_t *pub, fg_error_t *err)
{
    uint32_t tick_ms = pub->ping_ms / PUB_TICKS_PER_PING;
    if (tick_ms > pub->poll_ms)
        tick_ms = pub->poll_ms;
    if (tick_ms < 1)
        tick_ms = 1;
    struct timeval tick = {.tv_sec = tick_ms / 1000, .tv_usec = (tick_ms % 1000) * 1000};
    pub->notify_ev = event_new(pub->base, -1, 0, on_notify, pub);
    pub->coalesce_ev = evtimer_new(pub->base, on_coalesced, pub);
    pub->stop_ev = event_new(pub->base, -1, 0, on_stop, pub);
    pub->tick_ev = event_new(pub->base, -1, EV_PERSIST, on_tick, pub);
    if (!pub->notify_ev || !pub->coalesce_ev || !pub->stop_ev || !pub->tick_ev ||
        event_add(pub->tick_ev, &tick) < 0)
        return fg_error_setc(err, -ENOMEM, NULL, "cannot create publisher events");
    return 0;
}

static void free_resources(publisher_t *pub)
{
    while (pub->conns) {
        pub_conn_t *c = pub->conns;
        if (c->dp) {
            c->dp->conn = NULL;
            c->dp = NULL; /* shutting down: no per-connection log lines */
        }
        conn_close(c, "shutting down");
    }
    while (pub->lingering)
        linger_free(pub->lingering);
    if (pub->listener)
        evconnlistener_free(pub->listener);
    for (size_t i = 0; i < pub->n_tcp; i++)
        evconnlistener_free(pub->tcp_listeners[i]);
    if (pub->tls_ctx)
        SSL_CTX_free(pub->tls_ctx);
    if (pub->socket_path[0]) {
        struct stat sb;
        /* Only remove the file if it is still ours (not a successor's socket). */
        if (lstat(pub->socket_path, &sb) == 0 && sb.st_ino == pub->socket_ino)
            unlink(pub->socket_path);
    }
    if (pub->notify_ev)
        event_free(pub->notify_ev);
    if (pub->coalesce_ev)
        event_free(pub->coalesce_ev);
    if (pub->stop_ev)
        event_free(pub->stop_ev);
    if (pub->tick_ev)
        event_free(pub->tick_ev);
    if (pub->base)
        event_base_free(pub->base);
    payload_unref(pub->latest);
    for (pub_dp_t *d = pub->dps, *next; d; d = next) {
        next = d->next;
        free(d);
    }
    store_close(pub->store);
    pthread_mutex_destroy(&pub->mu);
    explicit_bzero(pub->dp_secret, sizeof pub->dp_secret);
    free(pub->db_path);
    free(pub);
}

int publisher_start(const publisher_conf_t *conf, publisher_t **out, fg_error_t *err)
{
    pthread_once(&evthread_once, init_evthread);
    publisher_t *pub = calloc(1, sizeof *pub);
    if (!pub)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&pub->mu, NULL);
    int rc;
    if (!conf->listen || snprintf(pub->listen, sizeof pub->listen, "%s", conf->listen) >=
                             (int)sizeof pub->listen) {
        free_resources(pub);
        return fg_error_setc(err, -EINVAL, "socket", "socket address missing or too long");
    }
    if (conf->dp_secret && snprintf(pub->dp_secret, sizeof pub->dp_secret, "%s",
                                    conf->dp_secret) >= (int)sizeof pub->dp_secret) {
        free_resources(pub);
        return fg_error_setc(err, -EINVAL, "dp-secret", "the data plane secret is longer "
                             "than %d bytes", FG_HELLO_SECRET_MAX - 1);
    }
    pub->db_path = strdup(conf->db_path ? conf->db_path : "");
    pub->max_payload = conf->max_payload ? conf->max_payload : FG_FRAME_MAX_PAYLOAD_DEFAULT;
    pub->ping_ms = conf->ping_interval_ms ? conf->ping_interval_ms : PUB_PING_INTERVAL_MS;
    pub->silence_ms = pub->ping_ms * (conf->silence_intervals ? conf->silence_intervals
                                                              : PUB_SILENCE_INTERVALS);
    pub->coalesce_ms = conf->coalesce_ms ? conf->coalesce_ms : PUB_COALESCE_MS;
    pub->poll_ms = conf->poll_interval_ms ? conf->poll_interval_ms : PUB_POLL_INTERVAL_MS;

    if (!pub->db_path) {
        rc = fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        goto fail_pub;
    }
    if ((rc = store_open(pub->db_path, &pub->store, err)))
        goto fail_pub;
    if (!(pub->base = event_base_new())) {
        rc = fg_error_setc(err, -ENOMEM, NULL, "cannot create event base");
        goto fail_pub;
    }
    if ((rc = make_events(pub, err)) || (rc = bind_listener(pub, err)) ||
        (rc = bind_tcp_listeners(pub, conf, err)))
        goto fail_pub;
    refresh_latest(pub);
    if ((rc = -pthread_create(&pub->thread, NULL, run_loop, pub))) {
        fg_error_setc(err, rc, NULL, "cannot start publisher thread: %s", strerror(-rc));
        goto fail_pub;
    }
    pub->thread_started = true;
    fg_log(FG_LOG_INFO, "snapshot publisher listening", "socket", pub->listen, NULL);
    for (size_t i = 0; i < pub->n_tcp; i++)
        fg_log(FG_LOG_INFO, "snapshot publisher listening", "socket", pub->tcp_addrs[i], "tls",
               "mutual", NULL);
    *out = pub;
    return 0;

fail_pub:
    free_resources(pub);
    return rc;
}

void publisher_notify(publisher_t *pub)
{
    if (pub && pub->notify_ev)
        event_active(pub->notify_ev, 0, 0);
}

int64_t publisher_version(const publisher_t *pub)
{
    return pub ? __atomic_load_n(&pub->latest_version, __ATOMIC_RELAXED) : 0;
}

void publisher_stop(publisher_t *pub)
{
    if (!pub)
        return;
    if (pub->thread_started) {
        /* An active event survives until the loop runs, unlike a loopbreak issued before
         * the thread reached event_base_dispatch. */
        event_active(pub->stop_ev, 0, 0);
        pthread_join(pub->thread, NULL);
    }
    free_resources(pub);
    fg_log(FG_LOG_INFO, "snapshot publisher stopped", NULL);
}
