/* api_keys.c - /api/v1/keys: the API keys data planes check (security.auth.keys).
 *
 * A key's plaintext exists in exactly one place: the 201 body of the POST that generated it.
 * The store (and every snapshot) holds only its SHA-256, so reads show the key's settings
 * and a short fingerprint of the digest, never the key. Bodies go through the shared key
 * codec (fg_api_key_decode), so REST, YAML import and snapshots accept the same fields:
 * `name`, `routes`, `disabled`, `expiresAt`, `hmac`, and `key` -- which on POST is optional
 * (absent: the server generates one) and lets an operator bring an existing key over (hashed the
 * same way; 64 lowercase hex characters are taken as an already-hashed digest, as in YAML).
 * On PUT an absent `key` keeps the stored digest, a present one rotates it. Buffers that held
 * a plaintext key (request text, decoded body, the 201 response) are wiped before they are
 * freed, so a later heap read or core dump is less likely to find one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fg_arena.h"
#include "fg_config.h"
#include "fg_hash.h"

#define KEY_PREFIX "fgk_"          /* recognisable in logs, configs and secret scanners */
#define KEY_RANDOM_BYTES 32        /* 256 bits */
#define KEY_TEXT_MAX 64            /* prefix + base64url of 32 bytes (43) + NUL */
#define KEY_FINGERPRINT_LEN 12     /* hex digits of the digest shown on reads */

/* base64url without padding (RFC 4648 §5): URL-, header- and shell-safe. */
static void base64url(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

static int key_generate(char out[KEY_TEXT_MAX], fg_error_t *err)
{
    unsigned char raw[KEY_RANDOM_BYTES];
    if (fg_random_bytes(raw, sizeof raw) != 0)
        return fg_error_setc(err, -EIO, NULL, "no randomness available to generate a key");
    memcpy(out, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    base64url(raw, sizeof raw, out + sizeof KEY_PREFIX - 1);
    return 0;
}

/* Names are labels ("Client A"); a '/' could never be addressed in a URL path. */
static bool key_name_addressable(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > FG_NAME_MAX_LEN)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/')
            return false;
    return true;
}

/* Location of a key: its name percent-encoded, since names may hold spaces and the like. */
static void location_of(const char *name, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = (size_t)snprintf(out, len, API_PREFIX "keys/");
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < len; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                     *p == '~';
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

/* A stored (canonical) key as the API shows it: without the digest, with a fingerprint. */
static cJSON *key_public(const char *spec)
{
    cJSON *o = cJSON_Parse(spec);
    if (!o)
        return NULL;
    cJSON *digest = cJSON_DetachItemFromObjectCaseSensitive(o, "key");
    char fp[KEY_FINGERPRINT_LEN + 1] = "";
    if (cJSON_IsString(digest))
        snprintf(fp, sizeof fp, "%s", digest->valuestring);
    cJSON_Delete(digest);
    cJSON_AddStringToObject(o, "fingerprint", fp);
    return o;
}

/* ---- reads ---------------------------------------------------------------------------- */

static enum MHD_Result list_keys(api_req_t *req)
{
    store_rows_t rows;
    fg_error_t err;
    int64_t version = 0;
    int rc = store_version(req->store, &version, &err);
    if (rc || (rc = store_list(req->store, STORE_KEYS, &rows, &err)))
        return api_reply_store_error(req, rc, &err);
    cJSON *root = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    for (size_t i = 0; items && i < rows.n; i++) {
        cJSON *k = key_public(rows.items[i].spec);
        if (k)
            cJSON_AddItemToArray(items, k);
    }
    cJSON_AddNumberToObject(root, "config_version", (double)version);
    store_rows_clear(&rows);
    req->reply_version = version;
    return api_reply_json(req, MHD_HTTP_OK, root);
}

static enum MHD_Result get_key(api_req_t *req)
{
    store_row_t row;
    fg_error_t err;
    int rc = store_get(req->store, STORE_KEYS, req->item, &row, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    req->reply_revision = row.revision;
    cJSON *k = key_public(row.spec);
    store_row_clear(&row);
    return k ? api_reply_json(req, MHD_HTTP_OK, k) : api_reply_store_error(req, -EIO, NULL);
}

/* ---- writes --------------------------------------------------------------------------- */

/* The request body held a plaintext key: clear it before the memory goes back to malloc. */
static void wipe_key(cJSON *body)
{
    cJSON *key = body ? cJSON_GetObjectItemCaseSensitive(body, "key") : NULL;
    if (cJSON_IsString(key) && key->valuestring)
        explicit_bzero(key->valuestring, strlen(key->valuestring));
}

/* The stored digest of key `name` into `out`. */
static int stored_digest(api_req_t *req, char out[FG_SHA256_HEX_LEN + 1], fg_error_t *err)
{
    store_row_t row;
    int rc = store_get(req->store, STORE_KEYS, req->item, &row, err);
    if (rc)
        return rc;
    cJSON *stored = cJSON_Parse(row.spec);
    cJSON *digest = stored ? cJSON_GetObjectItemCaseSensitive(stored, "key") : NULL;
    if (cJSON_IsString(digest) && strlen(digest->valuestring) == FG_SHA256_HEX_LEN)
        memcpy(out, digest->valuestring, FG_SHA256_HEX_LEN + 1);
    else
        rc = fg_error_setc(err, -EIO, NULL, "stored key '%s' has no digest", req->item);
    cJSON_Delete(stored);
    store_row_clear(&row);
    return rc;
}

/* Fill in what the body may leave out: on POST the name is required and the key generated
 * when absent (copied to `generated`); on PUT the name comes from the URL, an absent key
 * keeps the stored digest, and a `fingerprint` (as a GET answered it) is accepted when it
 * is the stored key's, so what GET returns can be PUT back. */
static int complete_body(api_req_t *req, cJSON *body, bool create, char *generated,
                         fg_error_t *err)
{
    char digest[FG_SHA256_HEX_LEN + 1];
    cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    cJSON *key = cJSON_GetObjectItemCaseSensitive(body, "key");
    if (create) {
        if (cJSON_IsString(name) && !key_name_addressable(name->valuestring))
            return fg_error_set(err, "name", "must be 1 to %d characters, no control "
                                "characters and no '/'", FG_NAME_MAX_LEN);
        if (key)
            return 0; /* the codec checks its type and hashes it */
        int rc = key_generate(generated, err);
        if (rc)
            return rc;
        return cJSON_AddStringToObject(body, "key", generated)
                   ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    }
    if (!name && !cJSON_AddStringToObject(body, "name", req->item))
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    if (name && (!cJSON_IsString(name) || strcmp(name->valuestring, req->item) != 0))
        return fg_error_set(err, "name", "must equal the name in the URL ('%s')", req->item);
    int rc = stored_digest(req, digest, err);
    if (rc)
        return rc;
    cJSON *fp = cJSON_GetObjectItemCaseSensitive(body, "fingerprint");
    if (fp) {
        if (!cJSON_IsString(fp) || strlen(fp->valuestring) != KEY_FINGERPRINT_LEN ||
            strncmp(fp->valuestring, digest, KEY_FINGERPRINT_LEN) != 0)
            return fg_error_set(err, "fingerprint", "is read-only: omit it, or send the one "
                                "GET returned");
        cJSON_DeleteItemFromObjectCaseSensitive(body, "fingerprint");
    }
    if (key)
        return 0;
    return cJSON_AddStringToObject(body, "key", digest)
               ? 0 : fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

/* MHD's free callback for a response holding a key: wiped once it has been sent. */
static void free_wiped(void *text)
{
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
}

/* 201 with `out` (consumed) plus the plaintext `key`; no copy of the key outlives it. */
static enum MHD_Result reply_with_secret(api_req_t *req, cJSON *out, const char *key)
{
    char *text = NULL;
    if (cJSON_AddStringToObject(out, "key", key))
        text = cJSON_PrintUnformatted(out);
    wipe_key(out);
    cJSON_Delete(out);
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer_with_free_callback(strlen(text), text,
                                                                  free_wiped)
             : NULL;
    if (!resp) {
        free_wiped(text);
        return api_reply_store_error(req, -ENOMEM, NULL);
    }
    return api_reply_response(req, MHD_HTTP_CREATED, resp, "application/json");
}

static enum MHD_Result write_key(api_req_t *req, bool create)
{
    fg_error_t err;
    fg_api_key_t k;
    char generated[KEY_TEXT_MAX] = "", summary[API_SUMMARY_MAX];
    char *text = NULL;
    cJSON *canon = NULL;
    store_result_t res = {0};
    int64_t if_revision = 0;
    enum MHD_Result mrc;

    fg_error_clear(&err);
    if (!create && (if_revision = api_if_match(req)) < 0)
        return MHD_YES; /* replied 400 */
    cJSON *body = api_parse_body(req);
    if (!body)
        return MHD_YES; /* replied 400 */
    fg_arena_t *arena = fg_arena_new(0);
    memset(&k, 0, sizeof k);
    int rc = arena ? 0 : fg_error_setc(&err, -ENOMEM, NULL, "out of memory");
    if (rc || (rc = complete_body(req, body, create, generated, &err)) ||
        (rc = fg_api_key_decode(body, arena, "", &k, &err)))
        goto fail_reply;
    if (!(canon = fg_api_key_encode(&k)) || !(text = cJSON_PrintUnformatted(canon))) {
        rc = fg_error_setc(&err, -ENOMEM, NULL, "out of memory");
        goto fail_reply;
    }
    snprintf(summary, sizeof summary, "key %s %s", k.name, create ? "created" : "updated");
    const store_entity_t e = {.key = k.name, .spec = text, .ref = k.key_sha256};
    const store_change_t chg = {.summary = summary, .actor = API_ACTOR};
    rc = create ? store_create(req->store, STORE_KEYS, &e, &chg, &res, &err)
                : store_replace(req->store, STORE_KEYS, &e, if_revision, &chg, &res, &err);
    if (rc)
        goto fail_reply;
    api_committed(req, res.version);
    req->reply_revision = res.revision;
    cJSON *out = key_public(text);
    if (create)
        location_of(k.name, req->reply_location, sizeof req->reply_location);
    if (out && generated[0]) /* the one and only time the plaintext is shown */
        mrc = reply_with_secret(req, out, generated);
    else
        mrc = out ? api_reply_json(req, create ? MHD_HTTP_CREATED : MHD_HTTP_OK, out)
                  : api_reply_store_error(req, -ENOMEM, NULL);
    goto done;

fail_reply:
    mrc = api_reply_store_error(req, rc, &err);
done:
    explicit_bzero(generated, sizeof generated);
    if (req->body) /* the request text itself may hold a caller-supplied key */
        explicit_bzero(req->body, req->body_len);
    wipe_key(body);
    free(text);
    cJSON_Delete(canon);
    cJSON_Delete(body);
    fg_arena_free(arena);
    return mrc;
}

static enum MHD_Result delete_key(api_req_t *req)
{
    fg_error_t err;
    store_result_t res = {0};
    char summary[API_SUMMARY_MAX];
    int64_t if_revision = api_if_match(req);
    if (if_revision < 0)
        return MHD_YES; /* replied 400 */
    snprintf(summary, sizeof summary, "key %s deleted", req->item);
    const store_change_t chg = {.summary = summary, .actor = API_ACTOR};
    int rc = store_delete(req->store, STORE_KEYS, req->item, if_revision, &chg, &res, &err);
    if (rc)
        return api_reply_store_error(req, rc, &err);
    api_committed(req, res.version);
    return api_reply_empty(req, MHD_HTTP_NO_CONTENT);
}

enum MHD_Result api_keys(api_req_t *req)
{
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!req->item)
        return get ? list_keys(req) : write_key(req, true);
    if (!key_name_addressable(req->item))
        return api_reply_error(req, MHD_HTTP_NOT_FOUND, "not_found", NULL, "no key named '%s'",
                               req->item);
    if (get)
        return get_key(req);
    if (strcmp(req->method, "PUT") == 0)
        return write_key(req, false);
    return delete_key(req);
}
