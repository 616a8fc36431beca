/* api.h - what the admin API's handler files share (admin_api.c, api_entities.c,
 * api_keys.c, api_settings.c, api_snapshots.c, api_dataplanes.c, api_ui.c): the request
 * record and the reply helpers.
 *
 * A handler gets a request whose route, method and body are known and whose token has been
 * checked; it replies exactly once through an api_reply_* call, which queues the response
 * and records the status for the access log. Replies are JSON unless said otherwise. */
#ifndef CTL_API_H
#define CTL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "admin_api.h"
#include "fg_error.h"

#define API_PATH_LOG_MAX 256 /* request path kept for the access log */
#define API_PREFIX "/api/v1/"
#define API_ACTOR "api:admin" /* snapshot history: who made a change through this API */
#define API_SUMMARY_MAX 160    /* snapshot history: the summary line of one change */

typedef struct api_req api_req_t;
typedef enum MHD_Result (*api_handler_fn)(api_req_t *req);

struct api_req {
    admin_api_t *api;
    store_t *store;
    publisher_t *publisher;
    const char *ui_dir;
    struct MHD_Connection *conn;
    const char *method;    /* "GET", "POST", ... (MHD's string) */
    const char *url;       /* the decoded path (MHD's string, valid for the request) */
    const char *item;      /* the {name}/{id} segment, or NULL for a collection */
    const char *action;    /* the segment after {item} ("rollback"), or NULL */
    api_handler_fn handler;
    char *body;            /* malloc'd, NUL-terminated; NULL when empty */
    size_t body_len;
    size_t body_cap;
    bool body_too_large;
    bool replied;
    int status;            /* of the reply, for the access log */
    uint64_t start_ms;     /* monotonic */
    char path[API_PATH_LOG_MAX];
    char item_buf[API_PATH_LOG_MAX]; /* `item` when an action follows it */
    /* headers to add to the next reply; 0 / NULL = none */
    int64_t reply_version;  /* X-Config-Version */
    int64_t reply_revision; /* ETag: "<revision>" */
    char reply_location[FG_ERROR_FIELD_MAX + 32];
    uint32_t reply_retry_after_s; /* Retry-After on a 429; 0 = none */
    char client[64];        /* the client's address, for logs ("" = unknown) */
    const char *endpoint;   /* the route table's path that matched, for /metrics (issue 7) */
};

/* ---- replies (each queues the response; returns what the MHD handler returns) ---------- */

/** Reply `status` with `body` (consumed, may be NULL for an empty body). */
enum MHD_Result api_reply_json(api_req_t *req, unsigned status, cJSON *body);

/** Reply `status` with already-serialised JSON text `text` (`len` bytes, copied). */
enum MHD_Result api_reply_text(api_req_t *req, unsigned status, const char *text, size_t len);

/** Queue `resp` (consumed; NULL gives MHD_NO) with the common headers plus the pending
 *  X-Config-Version/ETag/Location; `content_type` may be NULL. */
enum MHD_Result api_reply_response(api_req_t *req, unsigned status,
                                   struct MHD_Response *resp, const char *content_type);

/** Reply `status` with no body (204). */
enum MHD_Result api_reply_empty(api_req_t *req, unsigned status);

/** {"error":{"code","message","field"}}; `field` NULL or "" is omitted. */
enum MHD_Result api_reply_error(api_req_t *req, unsigned status, const char *code,
                                const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** Reply for a failed store call: -ENOENT 404, -EEXIST 409, -EBUSY 409 in_use, -ESTALE 412,
 *  -EINVAL 422 (err.field), -EAGAIN 503, anything else 500. */
enum MHD_Result api_reply_store_error(api_req_t *req, int rc, const fg_error_t *err);

/** 405 with an Allow header. */
enum MHD_Result api_reply_method_not_allowed(api_req_t *req, const char *allow);

/* ---- request helpers ------------------------------------------------------------------ */

/** Parse the body as one JSON object. NULL after replying 400 when it is empty, malformed,
 *  or not an object. Caller owns the tree. */
cJSON *api_parse_body(api_req_t *req);

/** The If-Match header as a revision: 0 when absent or "*"; -1 after replying 400 when it
 *  is not a revision ETag. */
int64_t api_if_match(api_req_t *req);

/** After a committed mutation: tell the publisher. */
void api_committed(api_req_t *req, int64_t version);

/** Query parameter `name` as an integer in [min, max]: 1 with *out set, 0 when absent
 *  (*out untouched), -1 after replying 400 naming the parameter. */
int api_query_int(api_req_t *req, const char *name, int64_t min, int64_t max, int64_t *out);

/** Strip `prefix` + "." (or "[") from the front of err->field, so a field the whole-config
 *  validator named ("logging.level") is named relative to the REST body ("level"). */
void api_field_relative(fg_error_t *err, const char *prefix);

/* ---- handlers ------------------------------------------------------------------------- */
enum MHD_Result api_upstreams(api_req_t *req);  /* /api/v1/upstreams[/{name}] */
enum MHD_Result api_routes(api_req_t *req);     /* /api/v1/routes[/{id}] */
enum MHD_Result api_keys(api_req_t *req);       /* /api/v1/keys[/{name}] */
enum MHD_Result api_settings(api_req_t *req);   /* /api/v1/settings[/{section}] */
enum MHD_Result api_snapshots(api_req_t *req);  /* /api/v1/snapshots[/{v}[/rollback]] */
enum MHD_Result api_dataplanes(api_req_t *req); /* /api/v1/dataplanes */
enum MHD_Result api_health_live(api_req_t *req);
enum MHD_Result api_health_ready(api_req_t *req);
enum MHD_Result api_ui(api_req_t *req);         /* /ui/... static files */

#endif
