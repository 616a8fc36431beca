/* api_snapshots.c - /api/v1/snapshots: the history of config versions, and rollback.
 *
 * Every committed version is a stored snapshot (store.h); the history lists them newest
 * first with who changed what, paginated by version (`?limit=&before=`), which stays stable
 * while new versions are added at the top. A single snapshot is answered with its config
 * spliced in verbatim, so the bytes shown are the bytes the checksum covers. Rollback is a
 * new version whose configuration equals the old one's (store_rollback), pushed like any
 * other change. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

#define SNAPSHOTS_PAGE_DEFAULT 50 /* ?limit= when absent; the maximum is STORE_HISTORY_PAGE_MAX */

/* Metadata of one snapshot (everything but the config). NULL on ENOMEM. */
static cJSON *snapshot_meta(const store_snapshot_t *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *changes = cJSON_Parse(s->changes ? s->changes : "[]");
    if (!o || !changes) {
        cJSON_Delete(o);
        cJSON_Delete(changes);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "version", (double)s->version);
    cJSON_AddStringToObject(o, "created_at", s->created_at);
    cJSON_AddStringToObject(o, "checksum", s->checksum);
    cJSON_AddStringToObject(o, "summary", s->summary ? s->summary : "");
    cJSON_AddStringToObject(o, "actor", s->actor ? s->actor : "");
    cJSON_AddItemToObject(o, "changes", changes);
    cJSON_AddNumberToObject(o, "changes_total", (double)s->changes_total);
    return o;
}

/* The item segment as a version: a positive decimal integer, else 0. */
static int64_t item_version(const char *item)
{
    char *end = NULL;
    if (!item || !(*item >= '1' && *item <= '9') || strlen(item) > 18)
        return 0;
    long long v = strtoll(item, &end, 10);
    return *end ? 0 : (int64_t)v;
}

static enum MHD_Result list_snapshots(api_req_t *req)
{
    fg_error_t err;
    store_snapshots_t page;
    int64_t limit = SNAPSHOTS_PAGE_DEFAULT, before = 0, version = 0;
    if (api_query_int(req, "limit", 1, STORE_HISTORY_PAGE_MAX, &limit) < 0 ||
        api_query_int(req, "before", 1, INT64_MAX / 2, &before) < 0)
        return MHD_YES; /* replied 400 */
    int rc = store_version(req->store, &version, &err);
    if (rc || (rc = store_snapshot_list(req->store, before, (size_t)limit, &page, &err)))
        return api_reply_store_error(req, rc, &err);
    cJSON *root = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    for (size_t i = 0; items && i < page.n; i++) {
        cJSON *m = snapshot_meta(&page.items[i]);
        if (m)
            cJSON_AddItemToArray(items, m);
    }
    if (page.more && page.n)
        cJSON_AddNumberToObject(root, "next_before", (double)page.items[page.n - 1].version);
    else
        cJSON_AddNullToObject(root, "next_before");
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    store_snapshots_clear(&page);
    req->reply_version = version;
    return api_reply_json(req, MHD_HTTP_OK, root);
}

static enum MHD_Result get_snapshot(api_req_t *req, int64_t v)
{
    fg_error_t err;
    store_snapshot_t snap;
    int rc = store_snapshot_get(req->store, v, &snap, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    cJSON *meta = snapshot_meta(&snap);
    char *head = meta ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    /* Splice the stored canonical text in: re-printing it could change its bytes. */
    static const char key[] = ",\"config\":";
    size_t head_len = head ? strlen(head) : 0;
    char *text = head ? malloc(head_len + sizeof key + snap.config_len + 1) : NULL;
    enum MHD_Result mrc;
    if (!text) {
        mrc = api_reply_store_error(req, -ENOMEM, NULL);
    } else {
        size_t off = head_len - 1; /* drop the closing '}' */
        memcpy(text, head, off);
        memcpy(text + off, key, sizeof key - 1);
        off += sizeof key - 1;
        memcpy(text + off, snap.config, snap.config_len);
        off += snap.config_len;
        text[off++] = '}';
        mrc = api_reply_text(req, MHD_HTTP_OK, text, off);
    }
    free(text);
    free(head);
    store_snapshot_clear(&snap);
    return mrc;
}

static enum MHD_Result rollback(api_req_t *req, int64_t v)
{
    fg_error_t err;
    store_result_t res = {0};
    store_snapshot_t snap;
    char summary[API_SUMMARY_MAX], actor[48];
    /* The body is optional and carries nothing; a malformed one is still refused. */
    if (req->body && req->body_len) {
        cJSON *body = api_parse_body(req);
        if (!body)
            return MHD_YES; /* replied 400 */
        bool empty = body->child == NULL;
        cJSON_Delete(body);
        if (!empty)
            return api_reply_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation_failed",
                                   NULL, "the rollback body must be empty or {}");
    }
    snprintf(actor, sizeof actor, "rollback:v%" PRId64, v);
    snprintf(summary, sizeof summary, "rollback to version %" PRId64 " by " API_ACTOR, v);
    const store_change_t chg = {.summary = summary, .actor = actor};
    int rc = store_rollback(req->store, v, &chg, &res, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    api_committed(req, res.version);
    if ((rc = store_snapshot_get(req->store, res.version, &snap, &err)))
        return api_reply_store_error(req, rc, &err);
    cJSON *meta = snapshot_meta(&snap);
    store_snapshot_clear(&snap);
    if (meta)
        cJSON_AddNumberToObject(meta, "rolled_back_to", (double)v);
    snprintf(req->reply_location, sizeof req->reply_location, API_PREFIX "snapshots/%" PRId64,
             res.version);
    return meta ? api_reply_json(req, MHD_HTTP_CREATED, meta)
                : api_reply_store_error(req, -ENOMEM, NULL);
}

enum MHD_Result api_snapshots(api_req_t *req)
{
    if (!req->item)
        return list_snapshots(req);
    int64_t v = item_version(req->item);
    if (v <= 0)
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                               "no snapshot '%s' (versions are positive integers)", req->item);
    return req->action ? rollback(req, v) : get_snapshot(req, v);
}
