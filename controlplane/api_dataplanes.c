/* api_dataplanes.c - GET /api/v1/dataplanes and the admin listener's health endpoints.
 *
 * The data plane registry belongs to the publisher's thread; publisher_dataplanes_json
 * copies it under its lock, and each record's status is judged against the version read
 * here, so `config_version` and the statuses in one response agree. */
#include <inttypes.h>
#include <stdio.h>

#include "api.h"
#include "fg_time.h"

enum MHD_Result api_dataplanes(api_req_t *req)
{
    fg_error_t err;
    int64_t version = 0;
    int rc = store_version(req->store, &version, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    cJSON_AddItemToObject(root, "items", publisher_dataplanes_json(req->publisher, version));
    req->reply_version = version;
    return api_reply_json(req, MHD_HTTP_OK, root);
}

enum MHD_Result api_health_live(api_req_t *req)
{
    char ts[FG_RFC3339_LEN + 1];
    fg_rfc3339(fg_wall_ms(), ts);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", "UP");
    cJSON_AddStringToObject(root, "timestamp", ts);
    return api_reply_json(req, MHD_HTTP_OK, root);
}

/* Ready when the database answers and the publisher holds a snapshot to serve. */
enum MHD_Result api_health_ready(api_req_t *req)
{
    fg_error_t err;
    int64_t version = 0;
    bool db_up = store_version(req->store, &version, &err) == 0;
    bool pub_up = publisher_version(req->publisher) > 0;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", db_up && pub_up ? "UP" : "DOWN");
    cJSON *checks = cJSON_AddObjectToObject(root, "checks");
    cJSON_AddStringToObject(checks, "database", db_up ? "UP" : "DOWN");
    cJSON_AddStringToObject(checks, "publisher", pub_up ? "UP" : "DOWN");
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    return api_reply_json(req, db_up && pub_up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                          root);
}
