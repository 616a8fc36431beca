/* store_import.c - a whole configuration applied as one store mutation (see store_import.h).
 *
 * Everything happens inside one store_mutate transaction, so what is compared against is
 * exactly what is committed on: read the current configuration from its snapshot, decode the
 * file, plan the new entity lists (replace or merge), assemble and validate the resulting
 * configuration ONCE in memory (errors mapped back to the file's paths), then write only the
 * rows that differ. store_mutate then rebuilds and stores the snapshot as for every change.
 * Work is linear in the number of entities: lookups by name go through hash maps, and the
 * resulting tree refers to the entity trees instead of copying them. */
#include "store_import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_config.h"
#include "fg_log.h"

#define IMPORT_SUMMARY_MAX 240
#define IMPORT_N_SECTIONS 5

static const char *const sections[IMPORT_N_SECTIONS] = {"proxy", "security", "rateLimit",
                                                         "logging", "metrics"};

/* ---- string -> index map (keys borrowed; they must outlive the map) ------------------- */

typedef struct strmap_slot {
    const char *key;
    long val;
} strmap_slot_t;

typedef struct strmap {
    strmap_slot_t *slots;
    size_t cap, n;
} strmap_t;

static size_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 29));
}

static long strmap_get(const strmap_t *m, const char *key)
{
    if (!m->cap || !key)
        return -1;
    for (size_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].key)
            return -1;
        if (strcmp(m->slots[i].key, key) == 0)
            return m->slots[i].val;
    }
}

static int strmap_put(strmap_t *m, const char *key, long val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        strmap_slot_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].key)
                continue;
            size_t j = str_hash(m->slots[i].key) & (cap - 1);
            while (slots[j].key)
                j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].key)
        m->n++;
    m->slots[i] = (strmap_slot_t){key, val};
    return 0;
}

static void strmap_free(strmap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* err->field = "<path>[<index>]<rest>"; a path too long is cut (it is for people). */
static void set_indexed_field(fg_error_t *err, const char *path, long index, const char *rest)
{
    char field[FG_ERROR_FIELD_MAX];
    snprintf(field, sizeof field, "%s", rest);
    if (snprintf(err->field, sizeof err->field, "%s[%ld]%s", path, index, field) < 0)
        err->field[0] = '\0';
}

/* ---- entity lists --------------------------------------------------------------------- */

typedef struct ent {
    const char *key;  /* name / id (borrowed from a config) */
    const char *ref;  /* route: upstream; key: digest; upstream: NULL */
    char *spec;       /* canonical JSON text; owned by the list it was made in */
    cJSON *json;      /* the same as a tree; owned likewise */
    long file_index;  /* position in the file's array, -1 = kept from the store */
    long old_index;   /* position in the stored list, -1 = new */
} ent_t;

typedef struct ent_list {
    ent_t *items;
    size_t n;
    bool owns; /* false for a plan: items borrow from the old and file lists */
} ent_list_t;

typedef struct kind_desc {
    store_kind_t kind;
    const char *path;  /* array path in a config */
    const char *label; /* diff key */
} kind_desc_t;

enum { K_UPSTREAMS, K_ROUTES, K_KEYS, K_COUNT };
static const kind_desc_t kinds[K_COUNT] = {
    [K_UPSTREAMS] = {STORE_UPSTREAMS, "upstreams", "upstreams"},
    [K_ROUTES] = {STORE_ROUTES, "routes", "routes"},
    [K_KEYS] = {STORE_KEYS, "security.auth.keys", "keys"},
};

static void ent_list_free(ent_list_t *l)
{
    if (l->owns)
        for (size_t i = 0; i < l->n; i++) {
            free(l->items[i].spec);
            cJSON_Delete(l->items[i].json);
        }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static size_t kind_count(const fg_config_t *c, int k)
{
    return k == K_UPSTREAMS ? c->n_upstreams : k == K_ROUTES ? c->n_routes
                                                              : c->security.auth.n_keys;
}

/* Encode entity i of kind k of `c` into `e`. */
static int ent_make(const fg_config_t *c, int k, size_t i, ent_t *e)
{
    switch (k) {
    case K_UPSTREAMS:
        e->key = c->upstreams[i].name;
        e->json = fg_upstream_encode(&c->upstreams[i]);
        break;
    case K_ROUTES:
        e->key = c->routes[i].id;
        e->ref = c->routes[i].upstream;
        e->json = fg_route_encode(&c->routes[i]);
        break;
    default:
        e->key = c->security.auth.keys[i].name;
        e->ref = c->security.auth.keys[i].key_sha256;
        e->json = fg_api_key_encode(&c->security.auth.keys[i]);
        break;
    }
    e->spec = e->json ? cJSON_PrintUnformatted(e->json) : NULL;
    return e->spec ? 0 : -ENOMEM;
}

static int ent_list_make(const fg_config_t *c, int k, bool from_file, ent_list_t *out)
{
    size_t n = kind_count(c, k);
    out->owns = true;
    out->n = 0;
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (!out->items)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ent_t *e = &out->items[i];
        e->file_index = from_file ? (long)i : -1;
        e->old_index = from_file ? -1 : (long)i;
        out->n++;
        if (ent_make(c, k, i, e))
            return -ENOMEM;
    }
    return 0;
}

static int index_list(const ent_list_t *l, strmap_t *m)
{
    for (size_t i = 0; i < l->n; i++)
        if (strmap_put(m, l->items[i].key, (long)i))
            return -ENOMEM;
    return 0;
}

/* ---- the import context --------------------------------------------------------------- */

typedef struct import_ctx {
    /* in */
    const cJSON *file;
    store_import_mode_t mode;
    bool dry_run;
    /* working state, all released by ctx_clear */
    cJSON *file_copy;            /* the file with route ids filled in */
    fg_config_t *old_cfg, *file_cfg, *empty_cfg, *new_cfg;
    cJSON *old_tree, *file_tree, *empty_tree; /* canonical trees, for the settings sections */
    ent_list_t old[K_COUNT], in_file[K_COUNT], plan[K_COUNT];
    strmap_t old_map[K_COUNT], file_map[K_COUNT];
    size_t keep_routes;          /* routes plan[0..keep) keep their rows and positions */
    cJSON *new_section[IMPORT_N_SECTIONS];   /* borrowed from a canonical tree */
    cJSON *security;             /* the new security section: references + planned keys */
    char *old_text[IMPORT_N_SECTIONS], *new_text[IMPORT_N_SECTIONS];
    cJSON *new_tree;
    /* out */
    store_import_result_t *res;
    char summary[IMPORT_SUMMARY_MAX];
} import_ctx_t;

static void ctx_clear(import_ctx_t *c)
{
    cJSON_Delete(c->new_tree);
    for (int i = 0; i < IMPORT_N_SECTIONS; i++) {
        free(c->old_text[i]);
        free(c->new_text[i]);
    }
    cJSON_Delete(c->security);
    for (int k = 0; k < K_COUNT; k++) {
        ent_list_free(&c->plan[k]);
        ent_list_free(&c->old[k]);
        ent_list_free(&c->in_file[k]);
        strmap_free(&c->old_map[k]);
        strmap_free(&c->file_map[k]);
    }
    cJSON_Delete(c->old_tree);
    cJSON_Delete(c->file_tree);
    cJSON_Delete(c->empty_tree);
    fg_config_free(c->old_cfg);
    fg_config_free(c->file_cfg);
    fg_config_free(c->empty_cfg);
    fg_config_free(c->new_cfg);
    cJSON_Delete(c->file_copy);
}

static int oom(fg_error_t *err)
{
    return fg_error_setc(err, -ENOMEM, NULL, "out of memory");
}

/* The configuration the import is computed against: the newest snapshot, read inside the
 * transaction, so nothing can commit in between. */
static int load_current(store_t *st, import_ctx_t *c, fg_error_t *err)
{
    store_snapshot_t snap;
    int rc = store_snapshot_latest(st, &snap, err);
    if (rc)
        return rc;
    c->res->from_version = snap.version;
    cJSON *tree = cJSON_ParseWithLength(snap.config, snap.config_len);
    store_snapshot_clear(&snap);
    if (!tree)
        return fg_error_setc(err, -EIO, NULL, "the stored snapshot is not valid JSON");
    rc = fg_config_decode(tree, &c->old_cfg, err);
    cJSON_Delete(tree);
    if (rc)
        return rc == -ENOMEM ? rc : fg_error_setc(err, -EIO, NULL, "the stored snapshot does "
                                                  "not decode: %s: %s", err->field,
                                                  err->message);
    return 0;
}

/* ---- route ids for routes without one ------------------------------------------------- */

/* Present and not null: even a wrongly typed id is left for the decoder to refuse. */
static bool route_id_given(const cJSON *route)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(route, "id");
    return id && !cJSON_IsNull(id);
}

static int set_route_id(cJSON *route, const char *id)
{
    cJSON *s = cJSON_CreateString(id);
    if (!s)
        return -ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(route, "id"))
        return cJSON_ReplaceItemInObjectCaseSensitive(route, "id", s) ? 0 : -ENOMEM;
    return cJSON_AddItemToObject(route, "id", s) ? 0 : (cJSON_Delete(s), -ENOMEM);
}

/* A free "route-<n>", n counting up from `from`. `taken` and the stored ids are avoided. */
static int generate_route_id(const strmap_t *taken, const strmap_t *old_ids, size_t from,
                             char *out, size_t len)
{
    for (size_t n = from; n < from + FG_MAX_ROUTES + 2; n++) {
        snprintf(out, len, STORE_ROUTE_ID_PREFIX "%zu", n);
        if (strmap_get(taken, out) < 0 && strmap_get(old_ids, out) < 0)
            return 0;
    }
    return -EEXIST;
}

static int assign_route_ids(import_ctx_t *c, fg_error_t *err)
{
    cJSON *routes = cJSON_GetObjectItemCaseSensitive(c->file_copy, "routes");
    strmap_t taken = {0}, old_ids = {0}, first_by_path = {0};
    long *next_same = NULL;
    const fg_config_t *old = c->old_cfg;
    int rc = 0;
    if (!cJSON_IsArray(routes))
        return 0;
    /* old routes by path: first index, then a chain through next_same */
    next_same = calloc(old->n_routes ? old->n_routes : 1, sizeof *next_same);
    if (!next_same)
        return oom(err);
    for (size_t i = old->n_routes; i-- > 0;) {
        next_same[i] = strmap_get(&first_by_path, old->routes[i].path);
        if (strmap_put(&first_by_path, old->routes[i].path, (long)i) ||
            strmap_put(&old_ids, old->routes[i].id, (long)i))
            goto fail_oom;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        if (cJSON_IsString(id) && strmap_put(&taken, id->valuestring, 0))
            goto fail_oom;
    }
    size_t pos = 0;
    cJSON *route;
    cJSON_ArrayForEach(route, routes)
    {
        pos++;
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(route, "path");
        if (!cJSON_IsObject(route) || route_id_given(route))
            continue;
        char gen[FG_NAME_MAX_LEN + 1];
        const char *id = NULL;
        long i = cJSON_IsString(path) ? strmap_get(&first_by_path, path->valuestring) : -1;
        for (; i >= 0 && !id; i = next_same[i])
            if (strmap_get(&taken, old->routes[i].id) < 0)
                id = old->routes[i].id;
        if (!id && generate_route_id(&taken, &old_ids, pos, gen, sizeof gen) == 0)
            id = gen;
        if (!id) {
            rc = fg_error_setc(err, -EEXIST, NULL, "no free route id");
            goto out;
        }
        if (set_route_id(route, id))
            goto fail_oom;
        /* the tree's copy of the id outlives the map */
        if (strmap_put(&taken, cJSON_GetObjectItemCaseSensitive(route, "id")->valuestring, 0))
            goto fail_oom;
    }
    goto out;

fail_oom:
    rc = oom(err);
out:
    free(next_same);
    strmap_free(&taken);
    strmap_free(&old_ids);
    strmap_free(&first_by_path);
    return rc;
}

/* ---- planning ------------------------------------------------------------------------- */

/* A name given twice in the file is a conflict (409), said with both places. */
static int index_file(import_ctx_t *c, int k, fg_error_t *err)
{
    static const char *const field[K_COUNT] = {"name", "id", "name"};
    const ent_list_t *l = &c->in_file[k];
    for (size_t i = 0; i < l->n; i++) {
        long prev = strmap_get(&c->file_map[k], l->items[i].key);
        if (prev >= 0) {
            fg_error_setc(err, -EEXIST, NULL, "'%s' is given twice (also %s[%ld])",
                          l->items[i].key, kinds[k].path, prev);
            snprintf(err->field, sizeof err->field, "%s[%zu].%s", kinds[k].path, i, field[k]);
            return -EEXIST;
        }
        if (strmap_put(&c->file_map[k], l->items[i].key, (long)i))
            return oom(err);
    }
    return 0;
}

static int plan_push(ent_list_t *plan, const ent_t *e, long file_index, long old_index)
{
    ent_t *p = &plan->items[plan->n++];
    *p = *e;
    p->file_index = file_index;
    p->old_index = old_index;
    return 0;
}

/* The new list of kind k. Routes in replace mode take the file's order; otherwise stored
 * entities keep their place (replaced in place when the file has them) and new ones follow
 * in file order. */
static int plan_kind(import_ctx_t *c, int k)
{
    const ent_list_t *old = &c->old[k], *file = &c->in_file[k];
    ent_list_t *plan = &c->plan[k];
    bool replace = c->mode == STORE_IMPORT_REPLACE;
    plan->owns = false;
    plan->items = calloc(old->n + file->n + 1, sizeof *plan->items);
    if (!plan->items)
        return -ENOMEM;
    if (replace && k == K_ROUTES) {
        for (size_t i = 0; i < file->n; i++)
            plan_push(plan, &file->items[i], (long)i,
                      strmap_get(&c->old_map[k], file->items[i].key));
        return 0;
    }
    for (size_t i = 0; i < old->n; i++) {
        long f = strmap_get(&c->file_map[k], old->items[i].key);
        if (f >= 0)
            plan_push(plan, &file->items[f], f, (long)i);
        else if (!replace)
            plan_push(plan, &old->items[i], -1, (long)i);
    }
    for (size_t i = 0; i < file->n; i++)
        if (strmap_get(&c->old_map[k], file->items[i].key) < 0)
            plan_push(plan, &file->items[i], (long)i, -1);
    return 0;
}

/* Rows keep their positions; inserted and moved rows go last. So the routes that can stay
 * where they are are the longest head of the plan that is stored and in stored order; the
 * rest are moved to the end (or inserted) one by one in plan order. */
static size_t routes_kept_head(const ent_list_t *plan)
{
    long last = -1;
    size_t k = 0;
    while (k < plan->n && plan->items[k].old_index > last)
        last = plan->items[k++].old_index;
    return k;
}

/* The settings section `i` of a canonical tree, as compact text; security without its keys
 * (they are rows of their own). */
static char *section_text(const cJSON *tree, int i)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(tree, sections[i]);
    if (!s)
        return strdup("{}");
    if (i != 1)
        return cJSON_PrintUnformatted(s);
    cJSON *copy = cJSON_Duplicate(s, false), *auth_copy = NULL;
    char *text = NULL;
    if (!copy)
        return NULL;
    for (const cJSON *m = s->child; m; m = m->next) {
        if (strcmp(m->string, "auth") != 0) {
            cJSON_AddItemReferenceToObject(copy, m->string, (cJSON *)m);
            continue;
        }
        auth_copy = cJSON_AddObjectToObject(copy, "auth");
        for (const cJSON *a = m->child; auth_copy && a; a = a->next)
            if (strcmp(a->string, "keys") != 0)
                cJSON_AddItemReferenceToObject(auth_copy, a->string, (cJSON *)a);
    }
    text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    return text;
}

static bool section_in_file(const cJSON *file, int i)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(file, sections[i]);
    return s && !cJSON_IsNull(s);
}

static int plan_settings(import_ctx_t *c)
{
    for (int i = 0; i < IMPORT_N_SECTIONS; i++) {
        const cJSON *src = section_in_file(c->file, i) ? c->file_tree
                           : c->mode == STORE_IMPORT_REPLACE ? c->empty_tree
                                                             : c->old_tree;
        c->old_text[i] = section_text(c->old_tree, i);
        c->new_text[i] = section_text(src, i);
        c->new_section[i] = (cJSON *)cJSON_GetObjectItemCaseSensitive(src, sections[i]);
        if (!c->old_text[i] || !c->new_text[i])
            return -ENOMEM;
    }
    return 0;
}

/* ---- the resulting configuration, checked before anything is written ------------------ */

static cJSON *ref_array(const ent_list_t *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < l->n; i++)
        if (!cJSON_AddItemReferenceToArray(a, l->items[i].json)) {
            cJSON_Delete(a);
            return NULL;
        }
    return a;
}

/* security = the chosen section with auth.keys replaced by the planned keys. */
static cJSON *assemble_security(import_ctx_t *c)
{
    const cJSON *s = c->new_section[1];
    cJSON *sec = cJSON_CreateObject(), *auth = NULL;
    if (!sec)
        return NULL;
    for (const cJSON *m = s ? s->child : NULL; m; m = m->next)
        if (strcmp(m->string, "auth") != 0)
            cJSON_AddItemReferenceToObject(sec, m->string, (cJSON *)m);
    const cJSON *a = s ? cJSON_GetObjectItemCaseSensitive(s, "auth") : NULL;
    if (!(auth = cJSON_AddObjectToObject(sec, "auth"))) {
        cJSON_Delete(sec);
        return NULL;
    }
    for (const cJSON *m = a ? a->child : NULL; m; m = m->next)
        if (strcmp(m->string, "keys") != 0)
            cJSON_AddItemReferenceToObject(auth, m->string, (cJSON *)m);
    cJSON *keys = ref_array(&c->plan[K_KEYS]);
    if (!keys || !cJSON_AddItemToObject(auth, "keys", keys)) {
        cJSON_Delete(keys);
        cJSON_Delete(sec);
        return NULL;
    }
    return sec;
}

/* "routes[7].upstream" in the planned config -> the same field in the file. */
static void map_error_to_file(const import_ctx_t *c, fg_error_t *err)
{
    for (int k = 0; k < K_COUNT; k++) {
        size_t n = strlen(kinds[k].path);
        if (strncmp(err->field, kinds[k].path, n) != 0 || err->field[n] != '[')
            continue;
        char *end = NULL;
        unsigned long i = strtoul(err->field + n + 1, &end, 10);
        if (!end || *end != ']' || i >= c->plan[k].n)
            return;
        const ent_t *e = &c->plan[k].items[i];
        if (e->file_index >= 0) {
            set_indexed_field(err, kinds[k].path, e->file_index, end + 1);
        } else {
            /* not in the file: the path goes into the message, and no field (so no line and
             * column in the file) is given */
            char msg[FG_ERROR_MESSAGE_MAX], field[FG_ERROR_FIELD_MAX];
            snprintf(msg, sizeof msg, "%s", err->message);
            snprintf(field, sizeof field, "%s", err->field);
            fg_error_set(err, NULL, "%.*s: %.*s (stored %s '%s', which the file does not "
                         "change)", 200, field, 200, msg, store_kind_noun(kinds[k].kind),
                         e->key);
        }
        return;
    }
}

typedef struct warn_ctx {
    const import_ctx_t *c;
    cJSON *list;
    bool oom;
} warn_ctx_t;

static void add_warning(void *arg, const char *field, const char *message)
{
    warn_ctx_t *w = arg;
    fg_error_t e;
    fg_error_clear(&e);
    fg_error_set(&e, field, "%s", message);
    map_error_to_file(w->c, &e); /* the file's path, as errors are named */
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "field", e.field) ||
        !cJSON_AddStringToObject(o, "message", e.message) || !cJSON_AddItemToArray(w->list, o)) {
        cJSON_Delete(o);
        w->oom = true;
    }
}

/* Allow-list findings on the config the import produces (security.strict made them errors
 * in fg_config_validate already). */
static int collect_warnings(import_ctx_t *c, fg_error_t *err)
{
    warn_ctx_t w = {.c = c, .list = cJSON_CreateArray()};
    cJSON_Delete(c->res->warnings); /* from an earlier try of the same transaction */
    c->res->warnings = w.list;
    if (!w.list || fg_config_security_check(c->new_cfg, add_warning, &w) < 0 || w.oom)
        return oom(err);
    return 0;
}

static int check_result(import_ctx_t *c, fg_error_t *err)
{
    cJSON *root = cJSON_CreateObject();
    int rc = -ENOMEM;
    c->new_tree = root;
    if (!root)
        return oom(err);
    if (!(c->security = assemble_security(c)))
        return oom(err);
    for (int i = 0; i < IMPORT_N_SECTIONS; i++) {
        cJSON *section = i == 1 ? c->security : c->new_section[i];
        if (section && !cJSON_AddItemReferenceToObject(root, sections[i], section))
            return oom(err);
    }
    cJSON *ups = ref_array(&c->plan[K_UPSTREAMS]), *routes = ref_array(&c->plan[K_ROUTES]);
    if (!ups || !cJSON_AddItemToObject(root, "upstreams", ups) || !routes ||
        !cJSON_AddItemToObject(root, "routes", routes))
        return oom(err);
    if ((rc = fg_config_decode(root, &c->new_cfg, err)) ||
        (rc = fg_config_validate(c->new_cfg, err))) {
        map_error_to_file(c, err);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    char *text = fg_config_canonical(c->new_cfg);
    if (!text)
        return oom(err);
    fg_sha256_hex(text, strlen(text), c->res->checksum);
    free(text);
    return collect_warnings(c, err);
}

/* ---- the diff ------------------------------------------------------------------------- */

static bool ent_changed(const import_ctx_t *c, int k, const ent_t *e)
{
    return e->old_index >= 0 && e->file_index >= 0 &&
           strcmp(e->spec, c->old[k].items[e->old_index].spec) != 0;
}

static int diff_kind(import_ctx_t *c, int k, cJSON *diff)
{
    cJSON *o = cJSON_AddObjectToObject(diff, kinds[k].label);
    cJSON *added = cJSON_AddArrayToObject(o, "added");
    cJSON *changed = cJSON_AddArrayToObject(o, "changed");
    cJSON *removed = cJSON_AddArrayToObject(o, "removed");
    strmap_t in_plan = {0};
    int rc = 0;
    if (!o || !added || !changed || !removed)
        return -ENOMEM;
    for (size_t i = 0; i < c->plan[k].n && rc == 0; i++) {
        const ent_t *e = &c->plan[k].items[i];
        cJSON *to = e->old_index < 0 ? added : ent_changed(c, k, e) ? changed : NULL;
        if (to) {
            rc = cJSON_AddItemToArray(to, cJSON_CreateString(e->key)) ? 0 : -ENOMEM;
            c->res->n_changes++;
        }
        if (rc == 0 && e->old_index >= 0)
            rc = strmap_put(&in_plan, e->key, 0);
    }
    for (size_t i = 0; i < c->old[k].n && rc == 0; i++)
        if (strmap_get(&in_plan, c->old[k].items[i].key) < 0) {
            rc = cJSON_AddItemToArray(removed, cJSON_CreateString(c->old[k].items[i].key))
                     ? 0 : -ENOMEM;
            c->res->n_changes++;
        }
    if (rc == 0 && k == K_ROUTES && c->keep_routes < c->plan[k].n) {
        /* stored routes the file moves to take its order */
        bool moved = false;
        for (size_t i = c->keep_routes; i < c->plan[k].n; i++)
            moved = moved || c->plan[k].items[i].old_index >= 0;
        if (moved && !cJSON_AddTrueToObject(o, "reordered"))
            rc = -ENOMEM;
    }
    strmap_free(&in_plan);
    return rc;
}

static int make_diff(import_ctx_t *c)
{
    cJSON *diff = cJSON_CreateObject();
    c->res->diff = diff;
    if (!diff)
        return -ENOMEM;
    for (int k = 0; k < K_COUNT; k++)
        if (diff_kind(c, k, diff))
            return -ENOMEM;
    cJSON *set = cJSON_AddObjectToObject(diff, "settings");
    cJSON *changed = cJSON_AddArrayToObject(set, "changed");
    if (!changed)
        return -ENOMEM;
    for (int i = 0; i < IMPORT_N_SECTIONS; i++)
        if (strcmp(c->old_text[i], c->new_text[i]) != 0) {
            if (!cJSON_AddItemToArray(changed, cJSON_CreateString(sections[i])))
                return -ENOMEM;
            c->res->n_changes++;
        }
    return 0;
}

static size_t diff_count(const cJSON *diff, const char *kind, const char *what)
{
    return (size_t)cJSON_GetArraySize(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(diff, kind), what));
}

static void write_summary(import_ctx_t *c)
{
    const cJSON *d = c->res->diff;
    size_t off = (size_t)snprintf(c->summary, sizeof c->summary, "import (%s):",
                                  c->mode == STORE_IMPORT_MERGE ? "merge" : "replace");
    for (int k = 0; k < K_COUNT && off < sizeof c->summary; k++)
        off += (size_t)snprintf(c->summary + off, sizeof c->summary - off,
                                " %s +%zu ~%zu -%zu,", kinds[k].label,
                                diff_count(d, kinds[k].label, "added"),
                                diff_count(d, kinds[k].label, "changed"),
                                diff_count(d, kinds[k].label, "removed"));
    if (off < sizeof c->summary)
        snprintf(c->summary + off, sizeof c->summary - off, " settings ~%zu",
                 diff_count(d, "settings", "changed"));
}

/* ---- writing the rows ----------------------------------------------------------------- */

static store_entity_t entity_of(const ent_t *e)
{
    return (store_entity_t){.key = e->key, .spec = e->spec, .ref = e->ref};
}

static bool removed_from_plan(const import_ctx_t *c, int k, size_t old_i)
{
    long f = strmap_get(&c->file_map[k], c->old[k].items[old_i].key);
    return c->mode == STORE_IMPORT_REPLACE && f < 0;
}

/* Upstreams to be removed may name each other as fallback, which store_tx_delete refuses;
 * their fallbacks are cleared first (the rows go away in the same transaction anyway). */
static int clear_removed_fallbacks(store_t *st, import_ctx_t *c, fg_error_t *err)
{
    const ent_list_t *old = &c->old[K_UPSTREAMS];
    for (size_t i = 0; i < old->n; i++) {
        if (!removed_from_plan(c, K_UPSTREAMS, i) ||
            !cJSON_GetObjectItemCaseSensitive(old->items[i].json, "fallback"))
            continue;
        cJSON *copy = cJSON_Duplicate(old->items[i].json, true);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "fallback");
        char *spec = copy ? cJSON_PrintUnformatted(copy) : NULL;
        cJSON_Delete(copy);
        if (!spec)
            return oom(err);
        const store_entity_t e = {.key = old->items[i].key, .spec = spec};
        int rc = store_tx_replace(st, STORE_UPSTREAMS, &e, 0, NULL, err);
        free(spec);
        if (rc)
            return rc;
    }
    return 0;
}

static int delete_removed(store_t *st, import_ctx_t *c, int k, fg_error_t *err)
{
    for (size_t i = 0; i < c->old[k].n; i++) {
        if (!removed_from_plan(c, k, i))
            continue;
        int rc = store_tx_delete(st, kinds[k].kind, c->old[k].items[i].key, 0, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Insert new entities, replace changed ones; stored routes from keep_routes on are moved
 * to the end in plan order (new ones are appended anyway), so routes end in the plan's
 * order with their rows, and revisions, intact. */
static int upsert(store_t *st, import_ctx_t *c, int k, fg_error_t *err)
{
    const ent_list_t *plan = &c->plan[k];
    size_t keep = k == K_ROUTES ? c->keep_routes : plan->n;
    for (size_t i = 0; i < plan->n; i++) {
        const ent_t *e = &plan->items[i];
        const store_entity_t se = entity_of(e);
        int rc = 0;
        if (e->old_index < 0)
            rc = store_tx_insert(st, kinds[k].kind, &se, NULL, err);
        else if (ent_changed(c, k, e))
            rc = store_tx_replace(st, kinds[k].kind, &se, 0, NULL, err);
        if (rc == 0 && e->old_index >= 0 && i >= keep)
            rc = store_tx_route_to_end(st, e->key, err);
        if (rc) {
            if (e->file_index >= 0 && !strchr(err->field, '[')) {
                char field[FG_ERROR_FIELD_MAX];
                if (snprintf(field, sizeof field, "%s%s", err->field[0] ? "." : "",
                             err->field) < 0) /* a cut path is fine: it is for people */
                    field[0] = '\0';
                set_indexed_field(err, kinds[k].path, e->file_index, field);
            }
            return rc;
        }
    }
    return 0;
}

static int write_rows(store_t *st, import_ctx_t *c, fg_error_t *err)
{
    int rc;
    /* routes that go first: they hold references to upstreams */
    if ((rc = delete_removed(st, c, K_ROUTES, err)) ||
        (rc = delete_removed(st, c, K_KEYS, err)) ||
        (rc = upsert(st, c, K_UPSTREAMS, err)) || (rc = upsert(st, c, K_ROUTES, err)) ||
        (rc = clear_removed_fallbacks(st, c, err)) ||
        (rc = delete_removed(st, c, K_UPSTREAMS, err)) || (rc = upsert(st, c, K_KEYS, err)))
        return rc;
    for (int i = 0; i < IMPORT_N_SECTIONS; i++) {
        if (strcmp(c->old_text[i], c->new_text[i]) == 0)
            continue;
        bool defaults = !section_in_file(c->file, i); /* replace mode, section absent */
        if ((rc = store_tx_setting_put(st, sections[i], defaults ? NULL : c->new_text[i], err)))
            return rc;
    }
    return 0;
}

/* ---- the transaction ------------------------------------------------------------------ */

static int decode_inputs(store_t *st, import_ctx_t *c, fg_error_t *err)
{
    int rc = load_current(st, c, err);
    if (rc)
        return rc;
    if (!(c->file_copy = cJSON_Duplicate(c->file, true)))
        return oom(err);
    if ((rc = assign_route_ids(c, err)))
        return rc;
    if ((rc = fg_config_decode(c->file_copy, &c->file_cfg, err)))
        return rc == -ENOMEM ? rc : -EINVAL;
    if (!(c->empty_cfg = fg_config_new_empty()) ||
        !(c->old_tree = fg_config_encode(c->old_cfg)) ||
        !(c->file_tree = fg_config_encode(c->file_cfg)) ||
        !(c->empty_tree = fg_config_encode(c->empty_cfg)))
        return oom(err);
    return 0;
}

static int on_import(store_t *st, void *arg, fg_error_t *err)
{
    import_ctx_t *c = arg;
    int rc = decode_inputs(st, c, err);
    if (rc)
        return rc;
    for (int k = 0; k < K_COUNT; k++) {
        if (ent_list_make(c->old_cfg, k, false, &c->old[k]) ||
            ent_list_make(c->file_cfg, k, true, &c->in_file[k]) ||
            index_list(&c->old[k], &c->old_map[k]))
            return oom(err);
        if ((rc = index_file(c, k, err)))
            return rc;
        if (plan_kind(c, k))
            return oom(err);
    }
    c->keep_routes = routes_kept_head(&c->plan[K_ROUTES]);
    if (plan_settings(c))
        return oom(err);
    if ((rc = check_result(c, err)))
        return rc;
    if (make_diff(c))
        return oom(err);
    write_summary(c);
    if (c->dry_run)
        return -ECANCELED; /* store_mutate rolls back; store_import reports success */
    return write_rows(st, c, err);
}

int store_import_mode_parse(const char *s, store_import_mode_t *out)
{
    if (!s || !*s || strcmp(s, "replace") == 0)
        *out = STORE_IMPORT_REPLACE;
    else if (strcmp(s, "merge") == 0)
        *out = STORE_IMPORT_MERGE;
    else
        return -EINVAL;
    return 0;
}

/* The snapshot store_mutate built from the rows must be the configuration planned in
 * memory (the one a dry run reports). A difference is a bug in the planning here: said
 * loudly, though the committed version itself is valid (store_mutate validated it), and
 * the committed checksum is what the caller is told. */
static void check_committed(store_t *st, store_import_result_t *res)
{
    store_snapshot_t snap;
    fg_error_t err;
    if (store_snapshot_get(st, res->version, &snap, &err) != 0)
        return;
    if (strcmp(snap.checksum, res->checksum) != 0)
        fg_log(FG_LOG_ERROR, "import: committed configuration differs from the planned one",
               "committed", snap.checksum, "planned", res->checksum, NULL);
    memcpy(res->checksum, snap.checksum, sizeof res->checksum); /* report what is true */
    store_snapshot_clear(&snap);
}

int store_import(store_t *st, const cJSON *file, store_import_mode_t mode, bool dry_run,
                 const char *actor, store_import_result_t *res, fg_error_t *err)
{
    import_ctx_t c;
    store_result_t r = {0};
    memset(res, 0, sizeof *res);
    memset(&c, 0, sizeof c);
    fg_error_clear(err);
    if (!cJSON_IsObject(file))
        return fg_error_set(err, "", "the file must hold a mapping (keys such as upstreams, "
                                     "routes) at its top level");
    c.file = file;
    c.mode = mode;
    c.dry_run = dry_run;
    c.res = res;
    snprintf(c.summary, sizeof c.summary, "import");
    const store_change_t chg = {.summary = c.summary, .actor = actor};
    int rc = store_mutate(st, on_import, &c, &chg, &r, err);
    if (dry_run && rc == -ECANCELED)
        rc = 0;
    ctx_clear(&c);
    if (rc) {
        store_import_result_clear(res);
        return rc;
    }
    res->version = dry_run ? 0 : r.version;
    if (!dry_run)
        check_committed(st, res);
    return 0;
}

void store_import_result_clear(store_import_result_t *res)
{
    if (!res)
        return;
    cJSON_Delete(res->diff);
    res->diff = NULL;
    cJSON_Delete(res->warnings);
    res->warnings = NULL;
}

int store_export(store_t *st, cJSON **tree, int64_t *version,
                 char checksum[FG_SHA256_HEX_LEN + 1], fg_error_t *err)
{
    store_snapshot_t snap;
    *tree = NULL;
    int rc = store_snapshot_latest(st, &snap, err);
    if (rc)
        return rc;
    *tree = cJSON_ParseWithLength(snap.config, snap.config_len);
    *version = snap.version;
    memcpy(checksum, snap.checksum, sizeof snap.checksum);
    store_snapshot_clear(&snap);
    return *tree ? 0 : fg_error_setc(err, -EIO, NULL, "the stored snapshot is not valid JSON");
}
