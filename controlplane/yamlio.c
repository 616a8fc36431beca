/* yamlio.c - YAML <-> cJSON with source positions (see yamlio.h for what is accepted).
 *
 * The loader is driven by libyaml's event parser rather than its document loader because
 * only events carry what we must refuse (anchors, aliases, explicit tags, the style that
 * tells a quoted "123" from a plain 123), and because building the tree ourselves lets every
 * limit (depth, node count) stop the parse the moment it is crossed, before libyaml has
 * buffered a hostile document. Positions live in a side table keyed by node address, so the
 * tree handed to the config decoder is a plain cJSON tree. */
#include "yamlio.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define YAMLIO_CORE_TAG "tag:yaml.org,2002:"
#define YAMLIO_PATH_MAX FG_ERROR_FIELD_MAX

/* ---- a small open-addressing table: node -> mark, and (mapping, key) -> seen ----------- */

typedef struct slot {
    const void *node;  /* NULL = empty */
    const char *key;   /* for the key set; NULL in the mark table */
    yamlio_mark_t mark;
} slot_t;

typedef struct table {
    slot_t *slots; /* malloc'd, cap is a power of two */
    size_t cap, n;
} table_t;

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t slot_hash(const void *node, const char *key)
{
    uint64_t h = mix((uint64_t)(uintptr_t)node);
    for (const unsigned char *p = (const unsigned char *)key; p && *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return mix(h);
}

static bool slot_matches(const slot_t *s, const void *node, const char *key)
{
    if (s->node != node)
        return false;
    return key ? s->key && strcmp(s->key, key) == 0 : s->key == NULL;
}

static slot_t *table_find(const table_t *t, const void *node, const char *key)
{
    if (!t->cap)
        return NULL;
    for (size_t i = slot_hash(node, key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot_t *s = &t->slots[i];
        if (!s->node)
            return NULL;
        if (slot_matches(s, node, key))
            return s;
    }
}

static int table_grow(table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        const slot_t *s = &t->slots[i];
        if (!s->node)
            continue;
        size_t j = slot_hash(s->node, s->key) & (cap - 1);
        while (slots[j].node)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* `key` must outlive the table (it points into the tree). */
static int table_put(table_t *t, const void *node, const char *key, yamlio_mark_t mark)
{
    if ((t->n + 1) * 2 > t->cap && table_grow(t) != 0)
        return -ENOMEM;
    size_t i = slot_hash(node, key) & (t->cap - 1);
    while (t->slots[i].node && !slot_matches(&t->slots[i], node, key))
        i = (i + 1) & (t->cap - 1);
    if (!t->slots[i].node)
        t->n++;
    t->slots[i] = (slot_t){.node = node, .key = key, .mark = mark};
    return 0;
}

static void table_free(table_t *t)
{
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---- scalars: the core schema --------------------------------------------------------- */

typedef enum scalar_kind {
    SK_STRING,
    SK_NULL,
    SK_TRUE,
    SK_FALSE,
    SK_INT,
    SK_FLOAT,
    SK_NONFINITE, /* .inf / .nan: valid YAML, but JSON cannot carry it */
} scalar_kind_t;

static bool all_in(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

static bool one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static bool is_core_float(const char *s)
{
    size_t digits = 0;
    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        size_t frac = 0;
        while (*s >= '0' && *s <= '9')
            s++, frac++;
        if (digits == 0 && frac == 0)
            return false;
    } else if (digits == 0) {
        return false;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* Digits in `base` after a 2-character prefix, accumulated in a double: exact up to 2^53,
 * and anything larger is out of every range the model has anyway. */
static double parse_radix(const char *s, int base)
{
    double v = 0;
    for (s += 2; *s; s++) {
        int d = *s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10;
        v = v * base + d;
    }
    return v;
}

/* What a plain scalar means under the YAML 1.2 core schema; numbers go to *num. */
static scalar_kind_t resolve_plain(const char *s, double *num)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const specials[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                           "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN",
                                           NULL};
    double dummy;
    if (!num)
        num = &dummy;
    if (one_of(s, nulls))
        return SK_NULL;
    if (one_of(s, trues))
        return SK_TRUE;
    if (one_of(s, falses))
        return SK_FALSE;
    if (one_of(s, specials))
        return SK_NONFINITE;
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    if (all_in(d, "0123456789")) {
        *num = strtod(s, NULL);
        return isfinite(*num) ? SK_INT : SK_NONFINITE;
    }
    if (s[0] == '0' && s[1] == 'o' && all_in(s + 2, "01234567")) {
        *num = parse_radix(s, 8);
        return isfinite(*num) ? SK_INT : SK_NONFINITE;
    }
    if (s[0] == '0' && s[1] == 'x' && all_in(s + 2, "0123456789abcdefABCDEF")) {
        *num = parse_radix(s, 16);
        return isfinite(*num) ? SK_INT : SK_NONFINITE;
    }
    if (is_core_float(s)) {
        *num = strtod(s, NULL);
        return isfinite(*num) ? SK_FLOAT : SK_NONFINITE;
    }
    return SK_STRING;
}

/* ---- the loader ----------------------------------------------------------------------- */

struct yamlio_doc {
    cJSON *root;
    table_t marks; /* node -> mark */
};

typedef struct frame {
    cJSON *node;      /* the mapping or sequence being filled */
    bool is_map;
    const char *name; /* this container's key in its parent mapping (tree-owned), or NULL */
    size_t n;         /* children so far */
    char *key;        /* mapping: the key read, waiting for its value (malloc'd) */
    yamlio_mark_t key_mark;
} frame_t;

typedef struct loader {
    yaml_parser_t parser;
    yamlio_doc_t *doc;
    table_t seen_keys; /* (mapping, key) pairs */
    frame_t stack[YAMLIO_MAX_DEPTH];
    int depth;
    size_t nodes;
    int documents;
    fg_error_t *err;
    yamlio_mark_t *at;
} loader_t;

static yamlio_mark_t mark_of(yaml_mark_t m)
{
    return (yamlio_mark_t){.line = (unsigned)m.line + 1, .column = (unsigned)m.column + 1};
}

/* The JSON path of the next child of the innermost container (or "" for the root). */
static void current_path(const loader_t *l, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < l->depth && off < len; i++) {
        const frame_t *f = &l->stack[i];
        const char *child = i + 1 < l->depth ? l->stack[i + 1].name : f->key;
        int w;
        if (f->is_map && !child)
            break;
        if (f->is_map)
            w = snprintf(out + off, len - off, "%s%s", off ? "." : "", child ? child : "");
        else
            w = snprintf(out + off, len - off, "[%zu]", i + 1 < l->depth ? f->n - 1 : f->n);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int load_fail(loader_t *l, int code, yaml_mark_t where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int load_fail(loader_t *l, int code, yaml_mark_t where, const char *fmt, ...)
{
    char msg[FG_ERROR_MESSAGE_MAX], path[YAMLIO_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    current_path(l, path, sizeof path);
    if (l->at)
        *l->at = mark_of(where);
    return fg_error_setc(l->err, code, path, "%s", msg);
}

static int load_oom(loader_t *l, yaml_mark_t where)
{
    return load_fail(l, -ENOMEM, where, "out of memory");
}

/* Anchors would only be useful with aliases, and aliases are how a few bytes become a
 * billion nodes: neither is accepted. */
static int check_anchor(loader_t *l, const yaml_char_t *anchor, yaml_mark_t where)
{
    if (anchor)
        return load_fail(l, -EINVAL, where, "anchors (&%s) and aliases are not supported",
                         (const char *)anchor);
    return 0;
}

/* A container's explicit tag must be the core one of its kind (or the non-specific "!"). */
static int check_container_tag(loader_t *l, const yaml_char_t *tag, const char *kind,
                               yaml_mark_t where)
{
    if (!tag || strcmp((const char *)tag, "!") == 0)
        return 0;
    if (strncmp((const char *)tag, YAMLIO_CORE_TAG, strlen(YAMLIO_CORE_TAG)) == 0 &&
        strcmp((const char *)tag + strlen(YAMLIO_CORE_TAG), kind) == 0)
        return 0;
    return load_fail(l, -EINVAL, where, "tag '%s' is not supported here", (const char *)tag);
}

static int count_node(loader_t *l, yaml_mark_t where)
{
    if (++l->nodes > YAMLIO_MAX_NODES)
        return load_fail(l, -E2BIG, where, "more than %u nodes in the document",
                         YAMLIO_MAX_NODES);
    return 0;
}

/* The JSON value of a scalar event, or NULL after load_fail. */
static cJSON *scalar_value(loader_t *l, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *core = NULL;
    double num = 0;
    scalar_kind_t kind;

    if (strlen(text) != ev->data.scalar.length) {
        load_fail(l, -EINVAL, ev->start_mark, "a scalar may not contain a NUL character");
        return NULL;
    }
    if (tag && strcmp(tag, "!") != 0) {
        static const char *const scalar_tags[] = {"str", "int", "float", "bool", "null", NULL};
        core = strncmp(tag, YAMLIO_CORE_TAG, strlen(YAMLIO_CORE_TAG)) == 0
                   ? tag + strlen(YAMLIO_CORE_TAG) : NULL;
        if (!core || !one_of(core, scalar_tags)) {
            load_fail(l, -EINVAL, ev->start_mark, "tag '%s' is not supported", tag);
            return NULL;
        }
    }
    if ((tag && !core) || (core && strcmp(core, "str") == 0) ||
        (!tag && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE))
        kind = SK_STRING;
    else
        kind = resolve_plain(text, &num);

    if (core && strcmp(core, "str") != 0) {
        bool ok = (strcmp(core, "int") == 0 && kind == SK_INT) ||
                  (strcmp(core, "float") == 0 && (kind == SK_INT || kind == SK_FLOAT)) ||
                  (strcmp(core, "bool") == 0 && (kind == SK_TRUE || kind == SK_FALSE)) ||
                  (strcmp(core, "null") == 0 && kind == SK_NULL);
        if (!ok) {
            load_fail(l, -EINVAL, ev->start_mark, "'%s' is not a valid !!%s", text, core);
            return NULL;
        }
    }
    cJSON *v = NULL;
    switch (kind) {
    case SK_STRING: v = cJSON_CreateString(text); break;
    case SK_NULL: v = cJSON_CreateNull(); break;
    case SK_TRUE: v = cJSON_CreateTrue(); break;
    case SK_FALSE: v = cJSON_CreateFalse(); break;
    case SK_INT:
    case SK_FLOAT: v = cJSON_CreateNumber(num); break;
    case SK_NONFINITE:
        load_fail(l, -EINVAL, ev->start_mark, "'%s' is not a finite number", text);
        return NULL;
    }
    if (!v)
        load_oom(l, ev->start_mark);
    return v;
}

/* Put `item` (consumed) where the innermost container expects its next child. */
static int attach(loader_t *l, cJSON *item, yaml_mark_t where)
{
    yamlio_mark_t mark = mark_of(where);
    if (l->depth == 0) {
        if (l->doc->root) { /* cannot happen: the parser gives one root per document */
            cJSON_Delete(item);
            return load_fail(l, -EINVAL, where, "more than one root node");
        }
        l->doc->root = item;
    } else {
        frame_t *f = &l->stack[l->depth - 1];
        if (f->is_map) {
            mark = f->key_mark;
            if (!cJSON_AddItemToObject(f->node, f->key, item)) {
                cJSON_Delete(item);
                return load_oom(l, where);
            }
            free(f->key);
            f->key = NULL;
            if (table_put(&l->seen_keys, f->node, item->string, mark) != 0)
                return load_oom(l, where);
        } else if (!cJSON_AddItemToArray(f->node, item)) {
            cJSON_Delete(item);
            return load_oom(l, where);
        }
        f->n++;
    }
    return table_put(&l->doc->marks, item, NULL, mark) == 0 ? 0 : load_oom(l, where);
}

/* A scalar in key position of a mapping: remember it until its value arrives. */
static int take_key(loader_t *l, frame_t *f, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (strlen(text) != ev->data.scalar.length)
        return load_fail(l, -EINVAL, ev->start_mark, "a key may not contain a NUL character");
    if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YAMLIO_CORE_TAG "str") != 0)
        return load_fail(l, -EINVAL, ev->start_mark, "mapping keys must be strings");
    if (table_find(&l->seen_keys, f->node, text)) {
        yamlio_mark_t first = table_find(&l->seen_keys, f->node, text)->mark;
        f->key = strdup(text); /* so the error path names the key */
        return load_fail(l, -EINVAL, ev->start_mark,
                         "duplicate key '%s' (first at line %u, column %u)", text, first.line,
                         first.column);
    }
    if (!(f->key = strdup(text)))
        return load_oom(l, ev->start_mark);
    f->key_mark = mark_of(ev->start_mark);
    return 0;
}

static int on_scalar(loader_t *l, const yaml_event_t *ev)
{
    int rc;
    if ((rc = check_anchor(l, ev->data.scalar.anchor, ev->start_mark)) ||
        (rc = count_node(l, ev->start_mark)))
        return rc;
    if (l->depth > 0) {
        frame_t *f = &l->stack[l->depth - 1];
        if (f->is_map && !f->key)
            return take_key(l, f, ev);
    }
    cJSON *v = scalar_value(l, ev);
    return v ? attach(l, v, ev->start_mark) : -EINVAL;
}

static int on_container_start(loader_t *l, const yaml_event_t *ev, bool is_map)
{
    const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor
                                       : ev->data.sequence_start.anchor;
    const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    int rc;
    if ((rc = check_anchor(l, anchor, ev->start_mark)) ||
        (rc = check_container_tag(l, tag, is_map ? "map" : "seq", ev->start_mark)) ||
        (rc = count_node(l, ev->start_mark)))
        return rc;
    if (l->depth > 0 && l->stack[l->depth - 1].is_map && !l->stack[l->depth - 1].key)
        return load_fail(l, -EINVAL, ev->start_mark, "mapping keys must be scalars");
    if (l->depth >= YAMLIO_MAX_DEPTH)
        return load_fail(l, -E2BIG, ev->start_mark, "nested deeper than %d levels",
                         YAMLIO_MAX_DEPTH);
    cJSON *c = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!c)
        return load_oom(l, ev->start_mark);
    const char *name = l->depth > 0 && l->stack[l->depth - 1].is_map ? "" : NULL;
    if ((rc = attach(l, c, ev->start_mark)))
        return rc;
    l->stack[l->depth++] = (frame_t){.node = c, .is_map = is_map,
                                     .name = name ? c->string : NULL};
    return 0;
}

static int on_event(loader_t *l, const yaml_event_t *ev, bool *done)
{
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++l->documents > 1)
            return load_fail(l, -EINVAL, ev->start_mark,
                             "only one YAML document is accepted (found a second '---')");
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    case YAML_ALIAS_EVENT:
        return load_fail(l, -EINVAL, ev->start_mark,
                         "aliases (*%s) and anchors are not supported",
                         (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        return on_scalar(l, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_container_start(l, ev, false);
    case YAML_MAPPING_START_EVENT:
        return on_container_start(l, ev, true);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (l->depth > 0) {
            l->depth--;
            free(l->stack[l->depth].key);
            l->stack[l->depth].key = NULL;
        }
        return 0;
    }
    return 0;
}

static int parser_fail(loader_t *l)
{
    const yaml_parser_t *p = &l->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return fg_error_setc(l->err, -ENOMEM, NULL, "out of memory");
    if (l->at)
        *l->at = mark_of(p->problem_mark);
    char path[YAMLIO_PATH_MAX];
    current_path(l, path, sizeof path);
    return fg_error_setc(l->err, -EINVAL, path, "malformed YAML: %s%s%s",
                         p->problem ? p->problem : "syntax error",
                         p->context ? " " : "", p->context ? p->context : "");
}

static void loader_clear(loader_t *l)
{
    for (int i = 0; i < YAMLIO_MAX_DEPTH; i++)
        free(l->stack[i].key);
    table_free(&l->seen_keys);
    yaml_parser_delete(&l->parser);
}

int yamlio_load(const char *text, size_t len, yamlio_doc_t **out, fg_error_t *err,
                yamlio_mark_t *at)
{
    loader_t *l;
    bool done = false;
    int rc = 0;

    *out = NULL;
    fg_error_clear(err);
    if (at)
        *at = (yamlio_mark_t){0, 0};
    if (len > YAMLIO_MAX_INPUT_BYTES)
        return fg_error_setc(err, -E2BIG, NULL, "document larger than %u bytes",
                             YAMLIO_MAX_INPUT_BYTES);
    if (!(l = calloc(1, sizeof *l)) || !(l->doc = calloc(1, sizeof *l->doc))) {
        free(l);
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    }
    l->err = err;
    l->at = at;
    if (!yaml_parser_initialize(&l->parser)) {
        free(l->doc);
        free(l);
        return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    }
    yaml_parser_set_input_string(&l->parser, (const unsigned char *)text, len);
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&l->parser, &ev)) {
            rc = parser_fail(l);
            break;
        }
        rc = on_event(l, &ev, &done);
        yaml_event_delete(&ev);
    }
    if (rc == 0 && !l->doc->root)
        rc = fg_error_set(err, NULL, "the document is empty");
    if (rc == 0)
        *out = l->doc;
    else
        yamlio_doc_free(l->doc);
    loader_clear(l);
    free(l);
    return rc;
}

const cJSON *yamlio_root(const yamlio_doc_t *doc)
{
    return doc ? doc->root : NULL;
}

void yamlio_doc_free(yamlio_doc_t *doc)
{
    if (!doc)
        return;
    cJSON_Delete(doc->root);
    table_free(&doc->marks);
    free(doc);
}

/* ---- locating a JSON path ------------------------------------------------------------- */

/* The member of `obj` whose key is the longest prefix of `path` that ends at a component
 * boundary: keys may themselves hold '.' (header names), so a plain split would miss. */
static const cJSON *member_prefix(const cJSON *obj, const char *path, size_t *used)
{
    const cJSON *best = NULL;
    size_t best_len = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        size_t n = c->string ? strlen(c->string) : 0;
        if (n > 0 && n >= best_len && strncmp(path, c->string, n) == 0 &&
            (path[n] == '\0' || path[n] == '.' || path[n] == '[')) {
            best = c;
            best_len = n;
        }
    }
    *used = best_len;
    return best;
}

yamlio_mark_t yamlio_locate(const yamlio_doc_t *doc, const char *path)
{
    yamlio_mark_t none = {0, 0};
    if (!doc || !doc->root)
        return none;
    const cJSON *node = doc->root;
    const char *p = path ? path : "";
    while (*p) {
        const cJSON *next = NULL;
        if (*p == '[' && cJSON_IsArray(node)) {
            char *end = NULL;
            unsigned long i = strtoul(p + 1, &end, 10);
            if (!end || *end != ']')
                break;
            const cJSON *c = node->child;
            for (unsigned long k = 0; c && k < i; k++)
                c = c->next;
            next = c;
            p = end + 1;
        } else if (cJSON_IsObject(node)) {
            size_t used = 0;
            if (*p == '.')
                p++;
            next = member_prefix(node, p, &used);
            p += used;
        }
        if (!next)
            break;
        node = next;
    }
    const slot_t *s = table_find(&doc->marks, node, NULL);
    return s ? s->mark : none;
}

/* ---- the emitter ---------------------------------------------------------------------- */

typedef struct outbuf {
    char *data;
    size_t len, cap;
    bool oom;
} outbuf_t;

static bool out_append(outbuf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return false;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return true;
}

static int on_emit_write(void *data, unsigned char *buffer, size_t size)
{
    return out_append(data, buffer, size) ? 1 : 0;
}

/* The shortest text strtod reads back as exactly `v`. */
static void format_number(double v, char *buf, size_t len)
{
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
        /* below 2^53 in magnitude: an exact integer */
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* A string that a plain scalar would turn into something else must be quoted. So must the
 * YAML 1.1 booleans (yes, no, on, off...), for readers that still follow 1.1. */
static bool needs_quotes(const char *s)
{
    static const char *const yaml11[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No",
                                         "NO", "on", "On", "ON", "off", "Off", "OFF", NULL};
    return resolve_plain(s, NULL) != SK_STRING || one_of(s, yaml11);
}

typedef struct emit_ctx {
    yaml_emitter_t emitter;
    fg_error_t *err;
} emit_ctx_t;

static int emit(emit_ctx_t *e, yaml_event_t *ev)
{
    if (!yaml_emitter_emit(&e->emitter, ev))
        return fg_error_setc(e->err, e->emitter.error == YAML_MEMORY_ERROR ? -ENOMEM : -EIO,
                             NULL, "YAML emitter: %s",
                             e->emitter.problem ? e->emitter.problem : "failed");
    return 0;
}

static int emit_scalar(emit_ctx_t *e, const char *text, bool is_string)
{
    yaml_event_t ev;
    bool quote = is_string && needs_quotes(text);
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
                                      !quote, is_string,
                                      quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                            : YAML_ANY_SCALAR_STYLE))
        return fg_error_setc(e->err, -ENOMEM, NULL, "out of memory");
    return emit(e, &ev);
}

static int emit_node(emit_ctx_t *e, const cJSON *n, int depth)
{
    yaml_event_t ev;
    char num[40];
    int rc;
    if (depth > YAMLIO_MAX_DEPTH)
        return fg_error_set(e->err, NULL, "tree nested deeper than %d levels",
                            YAMLIO_MAX_DEPTH);
    if (cJSON_IsString(n))
        return emit_scalar(e, n->valuestring ? n->valuestring : "", true);
    if (cJSON_IsNumber(n)) {
        if (!isfinite(n->valuedouble))
            return fg_error_set(e->err, NULL, "not a finite number");
        format_number(n->valuedouble, num, sizeof num);
        return emit_scalar(e, num, false);
    }
    if (cJSON_IsBool(n))
        return emit_scalar(e, cJSON_IsTrue(n) ? "true" : "false", false);
    if (cJSON_IsNull(n))
        return emit_scalar(e, "null", false);
    bool is_map = cJSON_IsObject(n);
    if (!is_map && !cJSON_IsArray(n))
        return fg_error_set(e->err, NULL, "cannot write a raw JSON node as YAML");
    /* Empty collections only have a flow form ({} / []). */
    int style = n->child ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE;
    if (is_map ? !yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                      (yaml_mapping_style_t)style)
               : !yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                       n->child ? YAML_BLOCK_SEQUENCE_STYLE
                                                                : YAML_FLOW_SEQUENCE_STYLE))
        return fg_error_setc(e->err, -ENOMEM, NULL, "out of memory");
    if ((rc = emit(e, &ev)))
        return rc;
    for (const cJSON *c = n->child; c; c = c->next) {
        if (is_map && (rc = emit_scalar(e, c->string ? c->string : "", true)))
            return rc;
        if ((rc = emit_node(e, c, depth + 1)))
            return rc;
    }
    if (is_map ? !yaml_mapping_end_event_initialize(&ev)
               : !yaml_sequence_end_event_initialize(&ev))
        return fg_error_setc(e->err, -ENOMEM, NULL, "out of memory");
    return emit(e, &ev);
}

char *yamlio_dump(const cJSON *root, const char *header, size_t *len, fg_error_t *err)
{
    emit_ctx_t e = {.err = err};
    outbuf_t b = {0};
    yaml_event_t ev;
    int rc;

    fg_error_clear(err);
    if (header && !out_append(&b, header, strlen(header)))
        goto fail_oom;
    if (!yaml_emitter_initialize(&e.emitter))
        goto fail_oom;
    yaml_emitter_set_output(&e.emitter, on_emit_write, &b);
    yaml_emitter_set_unicode(&e.emitter, 1);
    yaml_emitter_set_indent(&e.emitter, 2);
    yaml_emitter_set_width(&e.emitter, -1); /* never fold long lines */
    rc = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ? emit(&e, &ev)
                                                                      : -ENOMEM;
    if (rc == 0)
        rc = yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ? emit(&e, &ev)
                                                                            : -ENOMEM;
    if (rc == 0)
        rc = emit_node(&e, root, 0);
    if (rc == 0)
        rc = yaml_document_end_event_initialize(&ev, 1) ? emit(&e, &ev) : -ENOMEM;
    if (rc == 0)
        rc = yaml_stream_end_event_initialize(&ev) ? emit(&e, &ev) : -ENOMEM;
    if (rc == 0 && !yaml_emitter_flush(&e.emitter))
        rc = -EIO;
    yaml_emitter_delete(&e.emitter);
    if (rc == 0 && b.oom)
        rc = -ENOMEM;
    if (rc) {
        if (rc == -ENOMEM || !err->message[0])
            fg_error_setc(err, rc, NULL, rc == -ENOMEM ? "out of memory" : "YAML emitter failed");
        free(b.data);
        return NULL;
    }
    if (!b.data && !out_append(&b, "", 0))
        goto fail_oom;
    if (len)
        *len = b.len;
    return b.data;

fail_oom:
    free(b.data);
    fg_error_setc(err, -ENOMEM, NULL, "out of memory");
    return NULL;
}
