/* fg_proto.c - the snapshot protocol's message bodies (PROTOCOL.md §3).
 *
 * Every payload is one JSON object. Decoders refuse a missing or mistyped field, ignore
 * keys they do not know (so a newer peer can add fields without breaking an older one),
 * and check integers the way the config decoder does: finite, integral, in range, and
 * below 2^53 so that every JSON implementation reads the same value.
 *
 * A SNAPSHOT is decoded all the way down: config decode, the shared validator, then the
 * checksum recomputed over the canonical text of the decoded model. Recomputing (rather
 * than hashing the received bytes) proves that both sides agree on the model itself, not
 * just on the bytes in transit. */
#include "fg_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_config_internal.h"
#include "fg_frame.h"

#define JSON_INT_MAX 9007199254740991.0 /* 2^53 - 1: the largest integer JSON keeps exact */

/* ---- decoding helpers ----------------------------------------------------------------- */

static int parse_object(const char *payload, size_t len, cJSON **out, fg_error_t *err)
{
    const char *end = NULL;
    *out = NULL;
    if (!payload)
        return fg_error_set(err, NULL, "empty payload");
    cJSON *json = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    if (!json)
        return fg_error_set(err, NULL, "malformed JSON near byte %zu",
                            end && end >= payload ? (size_t)(end - payload) : (size_t)0);
    for (const char *p = end; p < payload + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(json);
            return fg_error_set(err, NULL, "trailing data after JSON value at byte %zu",
                                (size_t)(p - payload));
        }
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return fg_error_set(err, NULL, "payload must be a JSON object");
    }
    *out = json;
    return 0;
}

static int get_int(const cJSON *obj, const char *key, double lo, double hi, int64_t *out,
                   fg_error_t *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it)
        return fg_error_set(err, key, "required");
    if (!cJSON_IsNumber(it) || !fg__double_is_integer(it->valuedouble))
        return fg_error_set(err, key, "must be an integer");
    if (it->valuedouble < lo || it->valuedouble > hi)
        return fg_error_set(err, key, "must be between %.0f and %.0f", lo, hi);
    *out = (int64_t)it->valuedouble;
    return 0;
}

/* Copy string `key` into `buf`; it must fit, and be non-empty unless `may_be_empty`. */
static int get_str(const cJSON *obj, const char *key, char *buf, size_t size, bool may_be_empty,
                   fg_error_t *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it)
        return fg_error_set(err, key, "required");
    if (!cJSON_IsString(it) || !it->valuestring)
        return fg_error_set(err, key, "must be a string");
    size_t n = strlen(it->valuestring);
    if (n == 0 && !may_be_empty)
        return fg_error_set(err, key, "must not be empty");
    if (n >= size)
        return fg_error_set(err, key, "must be at most %zu bytes", size - 1);
    memcpy(buf, it->valuestring, n + 1);
    return 0;
}

/* ---- encoding helpers ----------------------------------------------------------------- */

/* Printed with the canonical printer, not cJSON_PrintUnformatted: cJSON writes integers
 * above ~10^15 with 15 significant digits and so changes them, and versions must survive. */
static char *print_and_delete(cJSON *o)
{
    char *text = o ? fg__json_canonical_print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static bool put_num(cJSON *o, const char *key, double v)
{
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

static bool put_str(cJSON *o, const char *key, const char *v)
{
    return cJSON_AddStringToObject(o, key, v ? v : "") != NULL;
}

/* ---- HELLO ---------------------------------------------------------------------------- */

static const char *label_key_problem(const char *k, size_t n)
{
    if (n == 0 || n >= FG_LABEL_KEY_MAX)
        return "label keys are 1 to 63 characters";
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return "label keys may hold only letters, digits and . _ - /";
    }
    return NULL;
}

static const char *label_value_problem(const char *v, size_t n)
{
    if (n >= FG_LABEL_VALUE_MAX)
        return "label values are at most 127 bytes";
    if (!fg__utf8_valid(v, n))
        return "label values must be UTF-8";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return "label values may not hold control characters";
    return NULL;
}

int fg_label_parse(const char *text, fg_label_t *out, fg_error_t *err)
{
    const char *eq = text ? strchr(text, '=') : NULL;
    const char *why;
    memset(out, 0, sizeof(*out));
    if (!eq)
        return fg_error_set(err, "label", "expected KEY=VALUE");
    size_t kn = (size_t)(eq - text), vn = strlen(eq + 1);
    if ((why = label_key_problem(text, kn)) || (why = label_value_problem(eq + 1, vn)))
        return fg_error_set(err, "label", "%s", why);
    memcpy(out->key, text, kn);
    memcpy(out->value, eq + 1, vn + 1);
    return 0;
}

static cJSON *labels_json(const fg_hello_t *m)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < m->n_labels && i < FG_LABELS_MAX; i++) {
        if (!cJSON_AddStringToObject(o, m->labels[i].key, m->labels[i].value)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* "labels" is optional (a data plane from before labels sends none); duplicates and more
 * than FG_LABELS_MAX entries are refused like any malformed field. */
static int get_labels(const cJSON *o, fg_hello_t *out, fg_error_t *err)
{
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels"), *it;
    const char *why;
    if (!labels)
        return 0;
    if (!cJSON_IsObject(labels))
        return fg_error_set(err, "labels", "must be an object of strings");
    cJSON_ArrayForEach(it, labels) {
        if (out->n_labels == FG_LABELS_MAX)
            return fg_error_set(err, "labels", "at most %d labels", FG_LABELS_MAX);
        if (!cJSON_IsString(it))
            return fg_error_set(err, "labels", "label '%.63s' must be a string", it->string);
        if ((why = label_key_problem(it->string, strlen(it->string))) ||
            (why = label_value_problem(it->valuestring, strlen(it->valuestring))))
            return fg_error_set(err, "labels", "%s", why);
        for (size_t i = 0; i < out->n_labels; i++)
            if (strcmp(out->labels[i].key, it->string) == 0)
                return fg_error_set(err, "labels", "label '%s' given twice", it->string);
        fg_label_t *l = &out->labels[out->n_labels++];
        snprintf(l->key, sizeof(l->key), "%s", it->string);
        snprintf(l->value, sizeof(l->value), "%s", it->valuestring);
    }
    return 0;
}

/* "secret" is optional: a data plane over mutual TLS is known by its certificate. The error
 * never quotes the value. */
static int get_secret(const cJSON *o, fg_hello_t *out, fg_error_t *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "secret");
    if (!it)
        return 0;
    if (!cJSON_IsString(it) || !it->valuestring)
        return fg_error_set(err, "secret", "must be a string");
    size_t n = strlen(it->valuestring);
    if (n == 0 || n >= sizeof(out->secret))
        return fg_error_set(err, "secret", "must be 1 to %zu bytes", sizeof(out->secret) - 1);
    memcpy(out->secret, it->valuestring, n + 1);
    return 0;
}

char *fg_hello_encode(const fg_hello_t *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(put_str(o, "dp_id", m->dp_id) && put_str(o, "hostname", m->hostname) &&
               put_num(o, "pid", (double)m->pid) &&
               put_str(o, "software_version", m->software_version) &&
               put_num(o, "protocol", m->protocol) &&
               put_num(o, "applied_version", (double)m->applied_version) &&
               cJSON_AddItemToObject(o, "labels", labels_json(m)) &&
               (!m->secret[0] || put_str(o, "secret", m->secret)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_delete(o);
}

int fg_hello_decode(const char *payload, size_t len, fg_hello_t *out, fg_error_t *err)
{
    cJSON *o;
    int64_t protocol = 0;
    int rc;

    fg_error_clear(err);
    memset(out, 0, sizeof(*out));
    if ((rc = parse_object(payload, len, &o, err)) != 0)
        return rc;
    if ((rc = get_str(o, "dp_id", out->dp_id, sizeof(out->dp_id), false, err)) == 0 &&
        (rc = get_str(o, "hostname", out->hostname, sizeof(out->hostname), false, err)) == 0 &&
        (rc = get_int(o, "pid", 0, JSON_INT_MAX, &out->pid, err)) == 0 &&
        (rc = get_str(o, "software_version", out->software_version,
                      sizeof(out->software_version), false, err)) == 0 &&
        (rc = get_int(o, "protocol", 1, 2147483647.0, &protocol, err)) == 0 &&
        (rc = get_int(o, "applied_version", 0, JSON_INT_MAX, &out->applied_version, err)) == 0 &&
        (rc = get_labels(o, out, err)) == 0 &&
        (rc = get_secret(o, out, err)) == 0)
        out->protocol = (int)protocol;
    cJSON_Delete(o);
    return rc;
}

/* ---- ACK / NACK ----------------------------------------------------------------------- */

char *fg_incompatible_encode(int their_protocol)
{
    fg_ack_t m = {.version = 0};
    snprintf(m.error, sizeof(m.error), "protocol %d not supported; this control plane "
             "speaks %d", their_protocol, FG_PROTOCOL_VERSION);
    cJSON *o = cJSON_CreateObject();
    if (o && !(put_num(o, "version", 0) && put_str(o, "error", m.error) &&
               put_num(o, "protocol", FG_PROTOCOL_VERSION))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_delete(o);
}

char *fg_refusal_encode(const char *why)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(put_num(o, "version", 0) && put_str(o, "error", why))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_delete(o);
}

char *fg_ack_encode(const fg_ack_t *m, int nack)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !(put_num(o, "version", (double)m->version) &&
               (!nack || put_str(o, "error", m->error)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_delete(o);
}

/* One decoder for both: "error" is read when present (a NACK) and left empty otherwise.
 * The caller knows from the frame type which one it got; a NACK without "error" still
 * says which version was refused. */
int fg_ack_decode(const char *payload, size_t len, fg_ack_t *out, fg_error_t *err)
{
    cJSON *o;
    int rc;

    fg_error_clear(err);
    memset(out, 0, sizeof(*out));
    if ((rc = parse_object(payload, len, &o, err)) != 0)
        return rc;
    rc = get_int(o, "version", 0, JSON_INT_MAX, &out->version, err);
    if (rc == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (e && !cJSON_IsString(e)) {
            rc = fg_error_set(err, "error", "must be a string");
        } else if (e) {
            /* A long reason is cut, not refused: the NACK itself must get through. */
            snprintf(out->error, sizeof(out->error), "%s", e->valuestring);
        }
    }
    cJSON_Delete(o);
    return rc;
}

/* ---- PING / PONG ---------------------------------------------------------------------- */

char *fg_ping_encode(const fg_ping_t *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o && (!put_num(o, "applied_version", (double)m->applied_version) ||
              (m->requests >= 0 && !put_num(o, "requests", (double)m->requests)))) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_and_delete(o);
}

int fg_ping_decode(const char *payload, size_t len, fg_ping_t *out, fg_error_t *err)
{
    cJSON *o;
    int rc;

    fg_error_clear(err);
    memset(out, 0, sizeof(*out));
    if ((rc = parse_object(payload, len, &o, err)) != 0)
        return rc;
    rc = get_int(o, "applied_version", 0, JSON_INT_MAX, &out->applied_version, err);
    out->requests = -1;
    if (rc == 0 && cJSON_GetObjectItemCaseSensitive(o, "requests"))
        rc = get_int(o, "requests", 0, JSON_INT_MAX, &out->requests, err);
    cJSON_Delete(o);
    return rc;
}

/* ---- SNAPSHOT ------------------------------------------------------------------------- */

char *fg_snapshot_encode(int64_t version, const char *checksum, const char *created_at,
                         const char *config_canonical)
{
    if (!checksum || !created_at || !config_canonical)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o || !put_num(o, "version", (double)version) || !put_str(o, "checksum", checksum) ||
        !put_str(o, "created_at", created_at)) {
        cJSON_Delete(o);
        return NULL;
    }
    char *head = print_and_delete(o);
    if (!head)
        return NULL;
    /* Splice the canonical text in verbatim: re-parsing and re-printing it could change the
     * bytes the checksum was computed over. */
    size_t head_len = strlen(head); /* ends in '}' */
    size_t cfg_len = strlen(config_canonical);
    static const char key[] = ",\"config\":";
    char *out = malloc(head_len - 1 + sizeof(key) - 1 + cfg_len + 2);
    if (out) {
        char *p = out;
        memcpy(p, head, head_len - 1), p += head_len - 1;
        memcpy(p, key, sizeof(key) - 1), p += sizeof(key) - 1;
        memcpy(p, config_canonical, cfg_len), p += cfg_len;
        *p++ = '}';
        *p = '\0';
    }
    free(head);
    return out;
}

static bool checksum_syntax_ok(const char *s)
{
    if (strlen(s) != FG_SHA256_HEX_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Errors from the config decoder name fields relative to the config; in a snapshot they sit
 * under "config". */
static void prefix_config_field(fg_error_t *err)
{
    static const char prefix[] = "config";
    char field[FG_ERROR_FIELD_MAX];
    if (!err)
        return;
    size_t n = strlen(err->field);
    size_t head = sizeof(prefix) - 1 + (n ? 1 : 0);
    if (n > sizeof(field) - 1 - head)
        n = sizeof(field) - 1 - head; /* truncated, as fg_error_set would */
    memcpy(field, prefix, sizeof(prefix) - 1);
    if (head > sizeof(prefix) - 1)
        field[sizeof(prefix) - 1] = '.';
    memcpy(field + head, err->field, n);
    field[head + n] = '\0';
    memcpy(err->field, field, sizeof(field));
}

int fg_snapshot_decode(const char *payload, size_t len, fg_snapshot_t *out, fg_error_t *err)
{
    cJSON *o;
    fg_config_t *cfg = NULL;
    char computed[FG_SHA256_HEX_LEN + 1];
    int rc;

    fg_error_clear(err);
    memset(out, 0, sizeof(*out));
    if ((rc = parse_object(payload, len, &o, err)) != 0)
        return rc;
    /* Version first, so that a refused snapshot can still be NACKed by number. */
    if ((rc = get_int(o, "version", 1, JSON_INT_MAX, &out->version, err)) != 0 ||
        (rc = get_str(o, "checksum", out->checksum, sizeof(out->checksum), false, err)) != 0 ||
        (rc = get_str(o, "created_at", out->created_at, sizeof(out->created_at), false, err)) !=
            0)
        goto fail_json;
    if (!checksum_syntax_ok(out->checksum)) {
        rc = fg_error_set(err, "checksum", "must be 64 lowercase hex characters");
        goto fail_json;
    }
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(o, "config");
    if (!config) {
        rc = fg_error_set(err, "config", "required");
        goto fail_json;
    }
    if (!cJSON_IsObject(config)) {
        rc = fg_error_set(err, "config", "must be an object");
        goto fail_json;
    }
    if ((rc = fg_config_decode(config, &cfg, err)) != 0) {
        prefix_config_field(err);
        goto fail_json;
    }
    cJSON_Delete(o);
    o = NULL;
    if ((rc = fg_config_validate(cfg, err)) != 0) {
        prefix_config_field(err);
        goto fail_config;
    }
    char *canonical = fg_config_canonical(cfg);
    if (!canonical) {
        rc = fg_error_setc(err, -ENOMEM, NULL, "out of memory");
        goto fail_config;
    }
    fg_sha256_hex(canonical, strlen(canonical), computed);
    free(canonical);
    if (fg_ct_memcmp(computed, out->checksum, FG_SHA256_HEX_LEN) != 0) {
        rc = fg_error_setc(err, -EBADMSG, "checksum",
                           "checksum mismatch: snapshot says %s, its config hashes to %s",
                           out->checksum, computed);
        goto fail_config;
    }
    out->config = cfg;
    return 0;

fail_config:
    fg_config_free(cfg);
fail_json:
    cJSON_Delete(o);
    return rc;
}

void fg_snapshot_clear(fg_snapshot_t *s)
{
    if (!s)
        return;
    fg_config_free(s->config);
    s->config = NULL;
}
