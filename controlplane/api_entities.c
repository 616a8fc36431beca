/* api_entities.c - CRUD for the config entities of the admin API: upstreams and routes.
 *
 * Both follow one pattern, so one set of handlers serves them, parameterised by an
 * entity_desc_t: decode the body with the shared codec (422 naming the field), re-encode it
 * canonically, store that text in one store transaction (which validates the whole config),
 * answer with exactly what was stored. Lists are concatenated from the stored canonical
 * texts without re-parsing them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fg_arena.h"
#include "fg_config.h"


typedef struct entity_desc {
    store_kind_t kind;
    const char *collection; /* URL segment, for Location */
    const char *key_field;  /* "name" or "id" */
    /* Decode `body` and re-encode it canonically; *key and *ref point into `arena`. */
    int (*canonicalize)(const cJSON *body, fg_arena_t *arena, cJSON **canon, const char **key,
                        const char **ref, fg_error_t *err);
} entity_desc_t;

static int canonicalize_upstream(const cJSON *body, fg_arena_t *arena, cJSON **canon,
                                 const char **key, const char **ref, fg_error_t *err)
{
    fg_upstream_t u;
    memset(&u, 0, sizeof u);
    int rc = fg_upstream_decode(body, arena, "", &u, err);
    if (rc)
        return rc;
    *key = u.name;
    *ref = NULL;
    *canon = fg_upstream_encode(&u);
    return *canon ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

static int canonicalize_route(const cJSON *body, fg_arena_t *arena, cJSON **canon,
                              const char **key, const char **ref, fg_error_t *err)
{
    fg_route_t r;
    memset(&r, 0, sizeof r);
    int rc = fg_route_decode(body, arena, "", &r, err);
    if (rc)
        return rc;
    *key = r.id;
    *ref = r.upstream;
    *canon = fg_route_encode(&r);
    return *canon ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

static const entity_desc_t upstream_desc = {STORE_UPSTREAMS, "upstreams", "name",
                                            canonicalize_upstream};

static void add_warning(void *arg, const char *field, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "field", field) ||
        !cJSON_AddStringToObject(o, "message", message) || !cJSON_AddItemToArray(arg, o))
        cJSON_Delete(o);
}

/* Allow-list findings for the upstream just written (`canon`), against the stored security
 * settings: a `warnings` array in the reply (under security.strict the store refused it
 * already). NULL when there are none, or when they cannot be computed (the write stands;
 * the data plane enforces the rules either way). Caller owns the array. */
static cJSON *upstream_warnings(api_req_t *req, const cJSON *canon)
{
    fg_error_t err;
    store_row_t row;
    if (store_setting_get(req->store, "security", &row, &err) != 0)
        return NULL;
    cJSON *root = cJSON_CreateObject(), *sec = cJSON_Parse(row.spec), *list = NULL;
    store_row_clear(&row);
    fg_config_t *cfg = NULL;
    fg_arena_t *arena = fg_arena_new(0);
    fg_upstream_t u;
    memset(&u, 0, sizeof u);
    if (!root || !sec || !arena || !cJSON_AddItemToObject(root, "security", sec)) {
        cJSON_Delete(sec);
        goto done;
    }
    if (fg_config_decode(root, &cfg, &err) != 0 ||
        fg_upstream_decode(canon, arena, "", &u, &err) != 0 || !(list = cJSON_CreateArray()))
        goto done;
    if (fg_upstream_security_check(&cfg->security, &u, "", add_warning, list) <= 0) {
        cJSON_Delete(list);
        list = NULL;
    }
done:
    fg_config_free(cfg);
    fg_arena_free(arena);
    cJSON_Delete(root);
    return list;
}
static const entity_desc_t route_desc = {STORE_ROUTES, "routes", "id", canonicalize_route};

/* ---- reads ---------------------------------------------------------------------------- */

static enum MHD_Result list_entities(api_req_t *req, const entity_desc_t *d)
{
    store_rows_t rows;
    fg_error_t err;
    int64_t version = 0;
    int rc = store_version(req->store, &version, &err);
    if (rc || (rc = store_list(req->store, d->kind, &rows, &err)))
        return api_reply_store_error(req, rc, &err);
    size_t len = 64;
    for (size_t i = 0; i < rows.n; i++)
        len += strlen(rows.items[i].spec) + 1;
    char *text = malloc(len);
    if (!text) {
        store_rows_clear(&rows);
        return api_reply_store_error(req, -ENOMEM, NULL);
    }
    size_t off = (size_t)sprintf(text, "{\"items\":[");
    for (size_t i = 0; i < rows.n; i++) {
        size_t n = strlen(rows.items[i].spec);
        if (i)
            text[off++] = ',';
        memcpy(text + off, rows.items[i].spec, n);
        off += n;
    }
    off += (size_t)snprintf(text + off, len - off, "],\"config_version\":%" PRId64 "}", version);
    store_rows_clear(&rows);
    req->reply_version = version;
    enum MHD_Result mrc = api_reply_text(req, MHD_HTTP_OK, text, off);
    free(text);
    return mrc;
}

static enum MHD_Result get_entity(api_req_t *req, const entity_desc_t *d)
{
    store_row_t row;
    fg_error_t err;
    int rc = store_get(req->store, d->kind, req->item, &row, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    req->reply_revision = row.revision;
    enum MHD_Result mrc = api_reply_text(req, MHD_HTTP_OK, row.spec, strlen(row.spec));
    store_row_clear(&row);
    return mrc;
}

/* ---- writes --------------------------------------------------------------------------- */

/* On PUT the URL names the entity: the body may repeat the key but not contradict it. */
static int apply_url_key(api_req_t *req, const entity_desc_t *d, cJSON *body, fg_error_t *err)
{
    cJSON *k = cJSON_GetObjectItemCaseSensitive(body, d->key_field);
    if (!k)
        return cJSON_AddStringToObject(body, d->key_field, req->item)
                   ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    if (!cJSON_IsString(k) || strcmp(k->valuestring, req->item) != 0)
        return fg_error_set(err, d->key_field, "must equal the %s in the URL ('%s')",
                            d->key_field, req->item);
    return 0;
}

/* POST /routes without an id gets "route-<n>". */
static int apply_generated_id(api_req_t *req, const entity_desc_t *d, cJSON *body,
                              fg_error_t *err)
{
    char id[FG_NAME_MAX_LEN + 1];
    if (d->kind != STORE_ROUTES || cJSON_GetObjectItemCaseSensitive(body, d->key_field))
        return 0;
    int rc = store_route_next_id(req->store, id, sizeof id, err);
    if (rc)
        return rc;
    return cJSON_AddStringToObject(body, d->key_field, id)
               ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

static enum MHD_Result write_entity(api_req_t *req, const entity_desc_t *d, bool create)
{
    fg_error_t err;
    cJSON *canon = NULL;
    const char *key = NULL, *ref = NULL;
    char *text = NULL, summary[API_SUMMARY_MAX];
    store_result_t res = {0};
    enum MHD_Result mrc;
    int64_t if_revision = 0;

    fg_error_clear(&err);
    if (!create && (if_revision = api_if_match(req)) < 0)
        return MHD_YES; /* replied 400 */
    cJSON *body = api_parse_body(req);
    if (!body)
        return MHD_YES; /* replied 400 */
    fg_arena_t *arena = fg_arena_new(0);
    int rc = arena ? 0 : fg_error_setc(&err, -ENOMEM, NULL, "out of memory");
    if (rc || (rc = create ? apply_generated_id(req, d, body, &err)
                           : apply_url_key(req, d, body, &err)) ||
        (rc = d->canonicalize(body, arena, &canon, &key, &ref, &err)))
        goto fail_reply;
    if (!(text = cJSON_PrintUnformatted(canon))) {
        rc = fg_error_setc(&err, -ENOMEM, NULL, "out of memory");
        goto fail_reply;
    }
    snprintf(summary, sizeof summary, "%s %s %s", store_kind_noun(d->kind), key,
             create ? "created" : "updated");
    const store_entity_t e = {.key = key, .spec = text, .ref = ref};
    const store_change_t chg = {.summary = summary, .actor = API_ACTOR};
    rc = create ? store_create(req->store, d->kind, &e, &chg, &res, &err)
                : store_replace(req->store, d->kind, &e, if_revision, &chg, &res, &err);
    if (rc)
        goto fail_reply;
    api_committed(req, res.version);
    req->reply_revision = res.revision;
    if (create)
        snprintf(req->reply_location, sizeof req->reply_location, API_PREFIX "%s/%s",
                 d->collection, key);
    cJSON *warnings = d->kind == STORE_UPSTREAMS ? upstream_warnings(req, canon) : NULL;
    if (warnings) {
        char *with = cJSON_AddItemToObject(canon, "warnings", warnings)
                         ? cJSON_PrintUnformatted(canon) : (cJSON_Delete(warnings), NULL);
        if (with) {
            free(text);
            text = with;
        }
    }
    mrc = api_reply_text(req, create ? MHD_HTTP_CREATED : MHD_HTTP_OK, text, strlen(text));
    goto done;

fail_reply:
    mrc = api_reply_store_error(req, rc, &err);
done:
    free(text);
    cJSON_Delete(canon);
    cJSON_Delete(body);
    fg_arena_free(arena);
    return mrc;
}

static enum MHD_Result delete_entity(api_req_t *req, const entity_desc_t *d)
{
    fg_error_t err;
    store_result_t res = {0};
    char summary[API_SUMMARY_MAX];
    int64_t if_revision = api_if_match(req);
    if (if_revision < 0)
        return MHD_YES; /* replied 400 */
    snprintf(summary, sizeof summary, "%s %s deleted", store_kind_noun(d->kind), req->item);
    const store_change_t chg = {.summary = summary, .actor = API_ACTOR};
    int rc = store_delete(req->store, d->kind, req->item, if_revision, &chg, &res, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    api_committed(req, res.version);
    return api_reply_empty(req, MHD_HTTP_NO_CONTENT);
}

static enum MHD_Result serve_entity(api_req_t *req, const entity_desc_t *d)
{
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!req->item)
        return get ? list_entities(req, d) : write_entity(req, d, true);
    /* No entity can have an invalid name, so such a URL names nothing. */
    if (!fg_name_valid(req->item))
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no %s named '%s'",
                               store_kind_noun(d->kind), req->item);
    if (get)
        return get_entity(req, d);
    if (strcmp(req->method, "PUT") == 0)
        return write_entity(req, d, false);
    return delete_entity(req, d);
}

enum MHD_Result api_upstreams(api_req_t *req)
{
    return serve_entity(req, &upstream_desc);
}

enum MHD_Result api_routes(api_req_t *req)
{
    return serve_entity(req, &route_desc);
}
