/* api_settings.c - /api/v1/settings: the top-level settings sections of the configuration.
 *
 * Sections are `proxy`, `security` (without auth.keys: keys have their own resource),
 * `rateLimit`, `logging` and `metrics`, with the names and shapes of the YAML file. A PUT
 * replaces one whole section (absent fields take their defaults, as in YAML); it is decoded
 * by the shared config decoder as the section of an otherwise empty config, so the same
 * unknown-key, type and range rules apply, then committed in one store transaction that runs
 * the shared validator over the whole config. Errors name fields relative to the section
 * body ("sampling.errorRate"). Reads answer the canonical form: every field, defaults
 * written out. Each section has its own revision (ETag / If-Match). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fg_config.h"

/* Decode `value` as section `section` of an otherwise default config and return the
 * canonical section (caller owns); security loses auth.keys. err->field is relative to the
 * section. */
static int section_canonical(const char *section, const cJSON *value, cJSON **out,
                             fg_error_t *err)
{
    fg_config_t *cfg = NULL;
    *out = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *copy = cJSON_Duplicate(value, true);
    if (!root || !copy || !cJSON_AddItemToObject(root, section, copy)) {
        cJSON_Delete(copy);
        cJSON_Delete(root);
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    }
    int rc = fg_config_decode(root, &cfg, err);
    cJSON_Delete(root);
    if (rc) {
        api_field_relative(err, section);
        return rc;
    }
    cJSON *all = fg_config_encode(cfg);
    fg_config_free(cfg);
    cJSON *sec = all ? cJSON_DetachItemFromObjectCaseSensitive(all, section) : NULL;
    cJSON_Delete(all);
    if (!sec)
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    if (strcmp(section, "security") == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, "auth"),
                                                "keys");
    *out = sec;
    return 0;
}

/* The stored section in canonical form, and its revision. */
static int read_section(api_req_t *req, const char *section, cJSON **out, int64_t *revision,
                        fg_error_t *err)
{
    store_row_t row;
    int rc = store_setting_get(req->store, section, &row, err);
    if (rc)
        return rc;
    cJSON *value = cJSON_Parse(row.spec);
    *revision = row.revision;
    store_row_clear(&row);
    if (!value)
        return fg_error_setc(err, -EIO, NULL, "stored setting '%s' is not JSON", section);
    rc = section_canonical(section, value, out, err);
    cJSON_Delete(value);
    /* A stored section the decoder refuses was written by hand: the server's fault. */
    return rc == -EINVAL ? fg_error_setc(err, -EIO, NULL, "stored setting '%s' is invalid: "
                                         "%s: %s", section, err->field, err->message) : rc;
}

static enum MHD_Result list_settings(api_req_t *req)
{
    fg_error_t err;
    int64_t version = 0, revision = 0;
    int rc = store_version(req->store, &version, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    cJSON *root = cJSON_CreateObject();
    cJSON *settings = cJSON_AddObjectToObject(root, "settings");
    cJSON *revisions = cJSON_AddObjectToObject(root, "revisions");
    for (size_t i = 0; i < STORE_N_SETTINGS; i++) {
        cJSON *sec = NULL;
        if ((rc = read_section(req, store_settings_sections[i], &sec, &revision, &err))) {
            cJSON_Delete(root);
            return api_reply_store_error(req, rc, &err);
        }
        cJSON_AddItemToObject(settings, store_settings_sections[i], sec);
        cJSON_AddNumberToObject(revisions, store_settings_sections[i], (double)revision);
    }
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    req->reply_version = version;
    return api_reply_json(req, MHD_HTTP_OK, root);
}

static enum MHD_Result get_section(api_req_t *req)
{
    fg_error_t err;
    cJSON *sec = NULL;
    int64_t revision = 0;
    int rc = read_section(req, req->item, &sec, &revision, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    req->reply_revision = revision;
    return api_reply_json(req, MHD_HTTP_OK, sec);
}

static enum MHD_Result put_section(api_req_t *req)
{
    fg_error_t err;
    cJSON *canon = NULL;
    char *text = NULL, summary[API_SUMMARY_MAX];
    store_result_t res = {0};
    enum MHD_Result mrc;
    int64_t if_revision = api_if_match(req);
    if (if_revision < 0)
        return MHD_YES; /* replied 400 */
    cJSON *body = api_parse_body(req);
    if (!body)
        return MHD_YES; /* replied 400 */
    fg_error_clear(&err);
    int rc = 0;
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(body, "auth");
    if (strcmp(req->item, "security") == 0 && cJSON_IsObject(auth) &&
        cJSON_GetObjectItemCaseSensitive(auth, "keys")) {
        rc = fg_error_set(&err, "auth.keys", "API keys are managed at " API_PREFIX "keys");
        goto fail_reply;
    }
    if ((rc = section_canonical(req->item, body, &canon, &err)))
        goto fail_reply;
    if (!(text = cJSON_PrintUnformatted(canon))) {
        rc = fg_error_setc(&err, -ENOMEM, NULL, "out of memory");
        goto fail_reply;
    }
    snprintf(summary, sizeof summary, "settings %s updated", req->item);
    const store_change_t chg = {.summary = summary, .actor = API_ACTOR};
    rc = store_setting_put(req->store, req->item, text, if_revision, &chg, &res, &err);
    if (rc) {
        api_field_relative(&err, req->item); /* the whole-config validator's path */
        goto fail_reply;
    }
    api_committed(req, res.version);
    req->reply_revision = res.revision;
    mrc = api_reply_text(req, MHD_HTTP_OK, text, strlen(text));
    goto done;

fail_reply:
    mrc = api_reply_store_error(req, rc, &err);
done:
    free(text);
    cJSON_Delete(canon);
    cJSON_Delete(body);
    return mrc;
}

enum MHD_Result api_settings(api_req_t *req)
{
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!req->item)
        return list_settings(req);
    if (!store_setting_section_valid(req->item))
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL,
                               "no settings section '%s' (proxy, security, rateLimit, "
                               "logging, metrics)", req->item);
    return get ? get_section(req) : put_section(req);
}
