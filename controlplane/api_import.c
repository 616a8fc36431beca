/* api_import.c - POST /api/v1/import and GET /api/v1/export (see api_import.h).
 *
 * The body is turned into a JSON tree (yamlio for YAML, cJSON for JSON), applied by
 * store_import as one transaction, and answered with the diff. Error replies add the line
 * and column of the offending node when the body was YAML, so a client can point at it. */
#include "api_import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_hash.h"
#include "store_import.h"

#define IMPORT_ACTOR "import:api"
#define EXPORT_CONTENT_TYPE "application/yaml; charset=utf-8"

typedef enum body_kind { BODY_YAML, BODY_JSON, BODY_UNSUPPORTED } body_kind_t;

/* The media type, without parameters, decides the parser; none at all means YAML. */
static body_kind_t body_kind(api_req_t *req)
{
    static const char *const yaml_types[] = {"application/yaml", "text/yaml",
                                             "application/x-yaml", "text/x-yaml", NULL};
    const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || !*ct)
        return BODY_YAML;
    size_t n = strcspn(ct, "; \t");
    for (const char *const *t = yaml_types; *t; t++)
        if (strlen(*t) == n && strncasecmp(ct, *t, n) == 0)
            return BODY_YAML;
    if (n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0)
        return BODY_JSON;
    return BODY_UNSUPPORTED;
}

/* {"error":{"code","message","field","line","column"}}; line 0 = no position. */
static enum MHD_Result reply_import_error(api_req_t *req, unsigned status, const char *code,
                                          const fg_error_t *err, yamlio_mark_t at)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    char message[FG_ERROR_FIELD_MAX + FG_ERROR_MESSAGE_MAX + 64];
    int off = 0;
    if (at.line)
        off = snprintf(message, sizeof message, "line %u, column %u: ", at.line, at.column);
    snprintf(message + off, sizeof message - (size_t)off, "%s%s%s", err->field,
             err->field[0] ? ": " : "", err->message);
    cJSON_AddStringToObject(e, "message", message);
    if (err->field[0])
        cJSON_AddStringToObject(e, "field", err->field);
    if (at.line) {
        cJSON_AddNumberToObject(e, "line", at.line);
        cJSON_AddNumberToObject(e, "column", at.column);
    }
    return api_reply_json(req, status, root);
}

static enum MHD_Result reply_store_failure(api_req_t *req, int rc, const fg_error_t *err,
                                           yamlio_mark_t at)
{
    switch (rc) {
    case -EINVAL:
        return reply_import_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "validation_failed", err,
                                  at);
    case -EEXIST:
        return reply_import_error(req, MHD_HTTP_CONFLICT, "already_exists", err, at);
    case -EBUSY:
        return reply_import_error(req, MHD_HTTP_CONFLICT, "in_use", err, at);
    default:
        return api_reply_store_error(req, rc, err);
    }
}

/* ?dry_run= true|1|false|0 (absent = false); ?mode= replace|merge. False after replying. */
static bool parse_query(api_req_t *req, store_import_mode_t *mode, bool *dry_run)
{
    const char *m = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "mode");
    const char *d = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "dry_run");
    if (store_import_mode_parse(m, mode) != 0) {
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "mode",
                        "mode must be replace or merge");
        return false;
    }
    if (!d || strcmp(d, "false") == 0 || strcmp(d, "0") == 0) {
        *dry_run = false;
    } else if (strcmp(d, "true") == 0 || strcmp(d, "1") == 0 || !*d) {
        *dry_run = true;
    } else {
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "dry_run",
                        "dry_run must be true or false");
        return false;
    }
    return true;
}

static enum MHD_Result reply_result(api_req_t *req, store_import_mode_t mode, bool dry_run,
                                    store_import_result_t *res)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "mode", mode == STORE_IMPORT_MERGE ? "merge" : "replace");
    cJSON_AddBoolToObject(root, "dry_run", dry_run);
    cJSON_AddNumberToObject(root, "from_version", (double)res->from_version);
    if (dry_run)
        cJSON_AddNullToObject(root, "version");
    else
        cJSON_AddNumberToObject(root, "version", (double)res->version);
    cJSON_AddStringToObject(root, "checksum", res->checksum);
    cJSON_AddNumberToObject(root, "changes", (double)res->n_changes);
    cJSON_AddItemToObject(root, "diff", res->diff);
    res->diff = NULL; /* now owned by root */
    cJSON_AddItemToObject(root, "warnings", res->warnings ? res->warnings
                                                          : cJSON_CreateArray());
    res->warnings = NULL;
    return api_reply_json(req, MHD_HTTP_OK, root);
}

/* A JSON body: parsed whole, trailing whitespace allowed. NULL after replying 400. */
static cJSON *parse_json_body(api_req_t *req)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, false);
    while (root && end && (size_t)(end - req->body) < req->body_len &&
           strchr(" \t\r\n", *end))
        end++;
    if (!root || (end && (size_t)(end - req->body) < req->body_len)) {
        cJSON_Delete(root);
        api_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid_json", NULL, "malformed JSON body");
        return NULL;
    }
    return root;
}

enum MHD_Result api_import(api_req_t *req)
{
    fg_error_t err;
    yamlio_mark_t at = {0, 0};
    yamlio_doc_t *doc = NULL;
    cJSON *json = NULL;
    store_import_mode_t mode;
    store_import_result_t res;
    bool dry_run = false;

    fg_error_clear(&err);
    body_kind_t kind = body_kind(req);
    if (kind == BODY_UNSUPPORTED)
        return api_reply_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                               NULL, "send application/yaml (or text/yaml, application/x-yaml, "
                               "application/json)");
    if (!parse_query(req, &mode, &dry_run))
        return MHD_YES;
    if (!req->body || req->body_len == 0)
        return api_reply_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", NULL,
                               "the body must hold a configuration");
    if (kind == BODY_JSON) {
        if (!(json = parse_json_body(req)))
            return MHD_YES;
    } else {
        int rc = yamlio_load(req->body, req->body_len, &doc, &err, &at);
        if (rc == -E2BIG)
            return reply_import_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                                      &err, at);
        if (rc)
            return rc == -ENOMEM ? api_reply_store_error(req, rc, &err)
                                 : reply_import_error(req, MHD_HTTP_BAD_REQUEST,
                                                      "invalid_yaml", &err, at);
    }
    int rc = store_import(req->store, doc ? yamlio_root(doc) : json, mode, dry_run,
                          IMPORT_ACTOR, &res, &err);
    enum MHD_Result mrc;
    if (rc) {
        mrc = reply_store_failure(req, rc, &err,
                                  doc && err.field[0] ? yamlio_locate(doc, err.field)
                                                      : (yamlio_mark_t){0, 0});
    } else {
        if (!dry_run)
            api_committed(req, res.version);
        mrc = reply_result(req, mode, dry_run, &res);
        store_import_result_clear(&res);
    }
    yamlio_doc_free(doc);
    cJSON_Delete(json);
    return mrc;
}

enum MHD_Result api_export(api_req_t *req)
{
    fg_error_t err;
    cJSON *tree = NULL;
    int64_t version = 0;
    char checksum[FG_SHA256_HEX_LEN + 1], header[256];
    size_t len = 0;
    int rc = store_export(req->store, &tree, &version, checksum, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    snprintf(header, sizeof header, "# FlexGate configuration, config version %" PRId64
             ", checksum %s\n", version, checksum);
    char *yaml = yamlio_dump(tree, header, &len, &err);
    cJSON_Delete(tree);
    if (!yaml)
        return api_reply_store_error(req, -EIO, &err);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, yaml,
                                                                MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(yaml);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "X-Config-Checksum", checksum);
    req->reply_version = version;
    return api_reply_response(req, MHD_HTTP_OK, resp, EXPORT_CONTENT_TYPE);
}
