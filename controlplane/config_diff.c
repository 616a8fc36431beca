/* config_diff.c - entity-by-entity difference of two configurations (see config_diff.h).
 *
 * Both texts are parsed and each entity printed compactly by the same printer, so equal
 * entities compare equal as text whatever produced them. Entities are sorted by name and
 * merged, so a 100,000-route config costs two sorts, not n^2 comparisons. */
#include "config_diff.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

typedef struct diff_entity {
    const char *name; /* borrowed from the tree */
    char *text;       /* compact print, malloc'd */
    size_t index;     /* position in its array, for the reorder check */
} diff_entity_t;

typedef struct diff_out {
    cJSON *array;
    size_t max;
    int64_t total;
} diff_out_t;

static const char *const settings_sections[] = {"proxy", "security", "rateLimit", "logging",
                                                "metrics"};

static int add_change(diff_out_t *o, const char *kind, const char *name, const char *op)
{
    o->total++;
    if ((size_t)cJSON_GetArraySize(o->array) >= o->max)
        return 0;
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "kind", kind) ||
        !cJSON_AddStringToObject(c, "name", name) || !cJSON_AddStringToObject(c, "op", op)) {
        cJSON_Delete(c);
        return -ENOMEM;
    }
    cJSON_AddItemToArray(o->array, c);
    return 0;
}

static int cmp_entity(const void *a, const void *b)
{
    return strcmp(((const diff_entity_t *)a)->name, ((const diff_entity_t *)b)->name);
}

static void entities_free(diff_entity_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].text);
    free(v);
}

/* The members of `array` that are objects with a string `key_field`, sorted by it. */
static int collect(const cJSON *array, const char *key_field, diff_entity_t **out, size_t *n)
{
    size_t cap = (size_t)cJSON_GetArraySize(array);
    *out = NULL;
    *n = 0;
    if (cap == 0)
        return 0;
    diff_entity_t *v = calloc(cap, sizeof *v);
    if (!v)
        return -ENOMEM;
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, array) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, key_field);
        if (!cJSON_IsString(k))
            continue;
        v[*n].name = k->valuestring;
        v[*n].index = i++;
        if (!(v[*n].text = cJSON_PrintUnformatted(it))) {
            entities_free(v, *n);
            return -ENOMEM;
        }
        (*n)++;
    }
    qsort(v, *n, sizeof *v, cmp_entity);
    *out = v;
    return 0;
}

typedef struct diff_pair {
    size_t old_index, new_index;
} diff_pair_t;

static int cmp_pair(const void *a, const void *b)
{
    size_t x = ((const diff_pair_t *)a)->old_index, y = ((const diff_pair_t *)b)->old_index;
    return x < y ? -1 : x > y;
}

/* True when the entities both versions have appear in another relative order. */
static bool order_changed(diff_pair_t *pairs, size_t n)
{
    qsort(pairs, n, sizeof *pairs, cmp_pair);
    for (size_t k = 1; k < n; k++)
        if (pairs[k].new_index < pairs[k - 1].new_index)
            return true;
    return false;
}

/* Merge two sorted lists into changes. With `pairs_out`, also record (old, new) positions of
 * the entities present in both (for the reorder check); caller frees *pairs_out. */
static int diff_kind(diff_out_t *o, const char *kind, const cJSON *old_arr,
                     const cJSON *new_arr, const char *key_field, diff_pair_t **pairs_out,
                     size_t *n_pairs)
{
    diff_entity_t *a = NULL, *b = NULL;
    diff_pair_t *pairs = NULL;
    size_t na = 0, nb = 0, i = 0, j = 0, np = 0;
    int rc = collect(old_arr, key_field, &a, &na);
    if (rc == 0)
        rc = collect(new_arr, key_field, &b, &nb);
    if (rc == 0 && pairs_out && na && !(pairs = calloc(na, sizeof *pairs)))
        rc = -ENOMEM;
    while (rc == 0 && (i < na || j < nb)) {
        int c = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i].name, b[j].name);
        if (c < 0) {
            rc = add_change(o, kind, a[i++].name, "deleted");
        } else if (c > 0) {
            rc = add_change(o, kind, b[j++].name, "created");
        } else {
            if (strcmp(a[i].text, b[j].text) != 0)
                rc = add_change(o, kind, b[j].name, "updated");
            if (pairs)
                pairs[np++] = (diff_pair_t){a[i].index, b[j].index};
            i++, j++;
        }
    }
    entities_free(a, na);
    entities_free(b, nb);
    if (pairs_out && rc == 0) {
        *pairs_out = pairs;
        *n_pairs = np;
    } else {
        free(pairs);
    }
    return rc;
}

static const cJSON *keys_of(const cJSON *cfg)
{
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(cfg, "security");
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sec, "auth"),
                                            "keys");
}

/* A settings section as text; security without auth.keys (keys are diffed one by one). */
static char *section_text(const cJSON *cfg, const char *section)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, section);
    if (!v)
        return strdup("");
    cJSON *copy = cJSON_Duplicate(v, true);
    if (!copy)
        return NULL;
    if (strcmp(section, "security") == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(copy, "auth"), "keys");
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    return text;
}

static int diff_settings(diff_out_t *o, const cJSON *old_cfg, const cJSON *new_cfg)
{
    for (size_t i = 0; i < sizeof settings_sections / sizeof settings_sections[0]; i++) {
        char *a = section_text(old_cfg, settings_sections[i]);
        char *b = section_text(new_cfg, settings_sections[i]);
        int rc = a && b ? 0 : -ENOMEM;
        /* An absent section is all defaults; an old empty config has none written. */
        if (rc == 0 && *a && *b && strcmp(a, b) != 0)
            rc = add_change(o, "settings", settings_sections[i], "updated");
        free(a);
        free(b);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_config(const char *text, cJSON **out, fg_error_t *err)
{
    *out = cJSON_Parse(text && *text ? text : "{}");
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return fg_error_set(err, NULL, "config text is not a JSON object");
    }
    return 0;
}

int config_diff(const char *old_text, const char *new_text, size_t max, char **out,
                int64_t *total, fg_error_t *err)
{
    cJSON *a = NULL, *b = NULL;
    diff_pair_t *pairs = NULL;
    size_t n_pairs = 0;
    diff_out_t o = {.array = cJSON_CreateArray(), .max = max};
    int rc = o.array ? 0 : -ENOMEM;
    *out = NULL;
    if (rc || (rc = parse_config(old_text, &a, err)) || (rc = parse_config(new_text, &b, err)))
        goto done;
    if ((rc = diff_kind(&o, "upstream", cJSON_GetObjectItemCaseSensitive(a, "upstreams"),
                        cJSON_GetObjectItemCaseSensitive(b, "upstreams"), "name", NULL,
                        NULL)) ||
        (rc = diff_kind(&o, "route", cJSON_GetObjectItemCaseSensitive(a, "routes"),
                        cJSON_GetObjectItemCaseSensitive(b, "routes"), "id", &pairs,
                        &n_pairs)) ||
        (rc = diff_kind(&o, "key", keys_of(a), keys_of(b), "name", NULL, NULL)) ||
        (rc = diff_settings(&o, a, b)))
        goto done;
    if (pairs && order_changed(pairs, n_pairs) && (rc = add_change(&o, "route", "*",
                                                                   "reordered")))
        goto done;
    if (!(*out = cJSON_PrintUnformatted(o.array)))
        rc = -ENOMEM;
    *total = o.total;
done:
    if (rc == -ENOMEM)
        fg_error_setc(err, rc, NULL, "out of memory");
    free(pairs);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(o.array);
    return rc;
}
