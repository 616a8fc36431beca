/* auth.c - API-key authentication: the per-generation key table and the per-request check
 * (see auth.h for the credential formats and what reaches the upstream).
 *
 * Cost: building is O(keys + key scopes * log routes); a request on an `auth: none` route
 * costs one pass over its header names comparing lengths (to drop a forged identity header);
 * a checked request adds one SHA-256 of the presented key and an expected O(1) probe, or for
 * a signed one four SHA-256 blocks of HMAC plus the replay cache's O(1) insert. */

/* The plain SHA256_* functions are deprecated in OpenSSL 3 in favour of EVP, but EVP allocates
 * a digest context on every init (measured: one malloc per digest even when the context is
 * reused), and the request path allocates nothing. They remain in every OpenSSL 3 release. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fg_log.h"
#include "fg_time.h"
#include "metrics.h"
#include "shm.h"
#include "proxy.h"

#define AUTH_SLOTS_MIN 16             /* smallest hash table: a config with a few keys */
#define SHA256_BLOCK 64               /* HMAC block size of SHA-256 */
#define IMF_DATE_LEN 29               /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define DIGEST_PREFIX "sha-256=:"
#define DIGEST_B64_LEN 44             /* base64 of 32 bytes, padded */
#define DIGEST_VALUE_LEN (sizeof(DIGEST_PREFIX) - 1 + DIGEST_B64_LEN + 1)
#define REPLAY_SIG_BYTES 16           /* signature bytes kept: 128 bits tell replays apart */

struct auth_table {
    auth_key_t *keys;
    size_t n_keys;
    uint32_t *by_digest;  /* slot: key index + 1, 0 = empty; owned */
    uint32_t *by_name;    /* `hmac: true` keys by name, same layout; NULL when none */
    size_t mask;          /* slots - 1 (a power of two, at least twice the keys) */
    const char *header;   /* security.auth.header */
    size_t header_len;
    const char *identity; /* security.auth.identityHeader */
    size_t identity_len;
    bool bearer;
    bool any_hmac;
    uint32_t skew_ms;
    char challenge[AUTH_CHALLENGE_MAX];
};

/* A signed request's body check, in the request arena (nothing to free). */
struct auth_body {
    SHA256_CTX sha;
    char want[DIGEST_VALUE_LEN]; /* the Content-Digest value: a copy, since the head's bytes
                                    are released once the body flows (proxy.h) */
    char held;        /* the last byte of a Content-Length body, not yet forwarded */
    bool holding;
};

/* ---- building -------------------------------------------------------------------------- */

static uint64_t digest_hash(const unsigned char *d)
{
    uint64_t h; /* a SHA-256 is uniform already: its first bytes are the hash */
    memcpy(&h, d, sizeof h);
    return h;
}

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex_decode32(const char *s, unsigned char out[FG_SHA256_LEN])
{
    for (size_t i = 0; i < FG_SHA256_LEN; i++) {
        int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static const fg_route_t *sort_routes; /* qsort has no context argument; building is serial */

static int compare_route_index(const void *a, const void *b)
{
    return strcmp(sort_routes[*(const uint32_t *)a].id, sort_routes[*(const uint32_t *)b].id);
}

static int compare_id_to_index(const void *key, const void *elem)
{
    return strcmp((const char *)key, sort_routes[*(const uint32_t *)elem].id);
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A key's route ids become sorted route indexes, so the request path bsearches integers. An
 * id no route has is skipped: a key scoped only to missing routes may use none. */
static int build_scope(auth_key_t *k, const fg_config_t *cfg, const uint32_t *by_id)
{
    const fg_api_key_t *c = k->conf;
    k->all_routes = c->n_routes == 0;
    if (c->n_routes == 0)
        return 0;
    k->routes = malloc(c->n_routes * sizeof(*k->routes));
    if (!k->routes)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_routes; i++) {
        const uint32_t *hit = by_id ? bsearch(c->routes[i], by_id, cfg->n_routes,
                                              sizeof(*by_id), compare_id_to_index)
                                    : NULL;
        if (hit)
            k->routes[k->n_routes++] = *hit;
    }
    qsort(k->routes, k->n_routes, sizeof(*k->routes), compare_u32);
    return 0;
}

static void slot_insert(uint32_t *slots, size_t mask, uint64_t h, uint32_t value)
{
    size_t i = (size_t)h & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = value;
}

static void build_challenge(auth_table_t *t)
{
    int n = snprintf(t->challenge, sizeof t->challenge,
                     "WWW-Authenticate: ApiKey realm=\"" AUTH_REALM "\", header=\"%s\"\r\n%s%s",
                     t->header,
                     t->bearer ? "WWW-Authenticate: Bearer realm=\"" AUTH_REALM "\"\r\n" : "",
                     t->any_hmac ? "WWW-Authenticate: " AUTH_HMAC_SCHEME " realm=\"" AUTH_REALM
                                   "\", headers=\"(request-target) date content-digest\"\r\n"
                                 : "");
    if (n < 0 || (size_t)n >= sizeof t->challenge) /* a 256-byte header name still fits */
        snprintf(t->challenge, sizeof t->challenge,
                 "WWW-Authenticate: ApiKey realm=\"" AUTH_REALM "\"\r\n");
}

auth_table_t *auth_table_build(const fg_config_t *cfg, fg_error_t *err)
{
    const fg_auth_conf_t *a = &cfg->security.auth;
    uint32_t *by_id = NULL;
    auth_table_t *t = calloc(1, sizeof(*t));
    if (!t)
        goto fail_oom;
    t->header = a->header ? a->header : FG_DEFAULT_AUTH_HEADER;
    t->header_len = strlen(t->header);
    t->identity = a->identity_header ? a->identity_header : FG_DEFAULT_IDENTITY_HEADER;
    t->identity_len = strlen(t->identity);
    t->bearer = a->bearer;
    t->skew_ms = a->hmac_skew_ms ? a->hmac_skew_ms : FG_DEFAULT_HMAC_SKEW_MS;
    size_t slots = AUTH_SLOTS_MIN;
    while (slots < 2 * a->n_keys)
        slots <<= 1;
    t->mask = slots - 1;
    t->by_digest = calloc(slots, sizeof(*t->by_digest));
    t->keys = a->n_keys ? calloc(a->n_keys, sizeof(*t->keys)) : NULL;
    if (!t->by_digest || (a->n_keys && !t->keys))
        goto fail_oom;
    sort_routes = cfg->routes;
    if (cfg->n_routes) {
        if (!(by_id = malloc(cfg->n_routes * sizeof(*by_id))))
            goto fail_oom;
        for (size_t i = 0; i < cfg->n_routes; i++)
            by_id[i] = (uint32_t)i;
        qsort(by_id, cfg->n_routes, sizeof(*by_id), compare_route_index);
    }
    for (size_t i = 0; i < a->n_keys; i++) {
        auth_key_t *k = &t->keys[i];
        k->conf = &a->keys[i];
        k->name_len = strlen(k->conf->name);
        if (hex_decode32(k->conf->key_sha256, k->digest) != 0) {
            fg_error_set(err, "security.auth.keys", "key %zu has no valid digest", i);
            goto fail;
        }
        if (build_scope(k, cfg, by_id) != 0)
            goto fail_oom;
        t->n_keys++;
        slot_insert(t->by_digest, t->mask, digest_hash(k->digest), (uint32_t)i + 1);
        if (k->conf->hmac) {
            if (!t->by_name && !(t->by_name = calloc(slots, sizeof(*t->by_name))))
                goto fail_oom;
            slot_insert(t->by_name, t->mask, name_hash(k->conf->name, k->name_len),
                        (uint32_t)i + 1);
            t->any_hmac = true;
        }
    }
    free(by_id);
    build_challenge(t);
    return t;

fail_oom:
    fg_error_setc(err, -ENOMEM, NULL, "out of memory building the key table");
fail:
    free(by_id);
    auth_table_free(t);
    return NULL;
}

void auth_table_free(auth_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_keys; i++)
        free(t->keys[i].routes);
    free(t->keys);
    free(t->by_digest);
    free(t->by_name);
    free(t);
}

/* ---- lookups --------------------------------------------------------------------------- */

const auth_key_t *auth_find_digest(const auth_table_t *t,
                                   const unsigned char digest[FG_SHA256_LEN])
{
    for (size_t i = (size_t)digest_hash(digest) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t s = t->by_digest[i];
        if (!s)
            return NULL;
        const auth_key_t *k = &t->keys[s - 1];
        if (CRYPTO_memcmp(k->digest, digest, FG_SHA256_LEN) == 0)
            return k;
    }
}

const auth_key_t *auth_find_name(const auth_table_t *t, const char *name, size_t len)
{
    if (!t->by_name)
        return NULL;
    for (size_t i = (size_t)name_hash(name, len) & t->mask;; i = (i + 1) & t->mask) {
        uint32_t s = t->by_name[i];
        if (!s)
            return NULL;
        const auth_key_t *k = &t->keys[s - 1];
        if (k->name_len == len && memcmp(k->conf->name, name, len) == 0)
            return k;
    }
}

int auth_key_admits(const auth_key_t *k, uint32_t route_index, uint64_t now_ms)
{
    if (k->conf->disabled || (k->conf->expires_at_ms && now_ms >= k->conf->expires_at_ms))
        return 401;
    if (k->all_routes ||
        bsearch(&route_index, k->routes, k->n_routes, sizeof(*k->routes), compare_u32))
        return 0;
    return 403;
}

const char *auth_challenge(const auth_table_t *t)
{
    return t ? t->challenge : "";
}

/* ---- HMAC and its inputs --------------------------------------------------------------- */

typedef struct span {
    const char *p;
    size_t n;
} span_t;

/* One-shot SHA-256 on a stack context (OpenSSL's SHA256() goes through EVP_Q_digest: about
 * fifty allocations per call, measured). */
static void sha256_once(const void *data, size_t len, unsigned char out[FG_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

/* RFC 2104 over SHA-256 with stack contexts. */
static void hmac_sha256(const unsigned char *key, size_t key_len, const span_t *parts,
                        size_t n_parts, unsigned char out[FG_SHA256_LEN])
{
    unsigned char k0[SHA256_BLOCK] = {0}, pad[SHA256_BLOCK], inner[FG_SHA256_LEN];
    SHA256_CTX c;
    if (key_len > SHA256_BLOCK)
        sha256_once(key, key_len, k0);
    else
        memcpy(k0, key, key_len);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    for (size_t i = 0; i < n_parts; i++)
        SHA256_Update(&c, parts[i].p, parts[i].n);
    SHA256_Final(inner, &c);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof pad);
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(pad, sizeof pad);
}

void auth_hmac_sign(const auth_key_t *k, const char *method, const char *target,
                    size_t target_len, const char *date, size_t date_len, const char *digest,
                    size_t digest_len, unsigned char out[FG_SHA256_LEN])
{
    const span_t parts[] = {{method, strlen(method)}, {"\n", 1}, {target, target_len},
                            {"\n", 1},                {date, date_len}, {"\n", 1},
                            {digest, digest_len}};
    hmac_sha256((const unsigned char *)k->conf->key_sha256, FG_SHA256_HEX_LEN, parts,
                sizeof parts / sizeof parts[0], out);
}

static int two_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int auth_parse_imf_date(const char *s, size_t n, uint64_t *out_ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n != IMF_DATE_LEN || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4) != 0)
        return -EINVAL;
    int day = two_digits(s + 5), y1 = two_digits(s + 12), y2 = two_digits(s + 14);
    int hh = two_digits(s + 17), mm = two_digits(s + 20), ss = two_digits(s + 23);
    unsigned mon = 0;
    for (unsigned i = 0; i < 12; i++)
        if (memcmp(s + 8, months + 3 * i, 3) == 0)
            mon = i + 1;
    if (day < 1 || day > 31 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
        ss < 0 || ss > 60 || mon == 0 || y1 * 100 + y2 < 1970)
        return -EINVAL;
    int64_t days = days_from_civil(y1 * 100 + y2, mon, (unsigned)day);
    *out_ms = (uint64_t)(((days * 24 + hh) * 60 + mm) * 60 + ss) * 1000u;
    return 0;
}

static size_t skip_ows(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

int auth_parse_signature(const char *s, size_t n, char *name, size_t *name_len,
                         unsigned char sig[FG_SHA256_LEN])
{
    bool have_name = false, have_sig = false;
    size_t i = skip_ows(s, 0, n);
    while (i < n) {
        size_t k = i;
        while (i < n && s[i] != '=')
            i++;
        if (i >= n)
            return -EINVAL;
        span_t param = {s + k, i - k};
        i++;
        char val[FG_NAME_MAX_LEN + 1];
        size_t vl = 0;
        if (i < n && s[i] == '"') { /* quoted-string, RFC 9110 §5.6.4 */
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && ++i >= n)
                    return -EINVAL;
                if (vl >= FG_NAME_MAX_LEN)
                    return -EINVAL;
                val[vl++] = s[i];
            }
            if (i >= n)
                return -EINVAL;
            i++;
        } else {
            while (i < n && s[i] != ',' && s[i] != ' ' && s[i] != '\t') {
                if (vl >= FG_NAME_MAX_LEN)
                    return -EINVAL;
                val[vl++] = s[i++];
            }
        }
        if (param.n == 7 && memcmp(param.p, "keyName", 7) == 0 && !have_name && vl > 0) {
            memcpy(name, val, vl);
            name[vl] = '\0';
            *name_len = vl;
            have_name = true;
        } else if (param.n == 9 && memcmp(param.p, "signature", 9) == 0 && !have_sig &&
                   vl == FG_SHA256_HEX_LEN && hex_decode32(val, sig) == 0) {
            have_sig = true;
        } else {
            return -EINVAL; /* unknown, repeated or malformed parameter */
        }
        i = skip_ows(s, i, n);
        if (i < n && s[i] != ',')
            return -EINVAL;
        if (i < n)
            i = skip_ows(s, i + 1, n);
    }
    return have_name && have_sig ? 0 : -EINVAL;
}

/* "sha-256=:<base64>:" naming `md`? The value's shape was checked when the request began. */
static bool content_digest_matches(const char *value, const unsigned char md[FG_SHA256_LEN])
{
    unsigned char b64[DIGEST_B64_LEN + 1];
    EVP_EncodeBlock(b64, md, FG_SHA256_LEN);
    return memcmp(value + sizeof(DIGEST_PREFIX) - 1, b64, DIGEST_B64_LEN) == 0;
}

/* ---- replay cache ---------------------------------------------------------------------- */

/* Signatures in arrival order in a ring (oldest at `head`), indexed by hash chains through
 * `next`. Each entry lives until its Date leaves the skew window, after which the skew check
 * refuses the signature anyway. A full ring of live entries refuses new signed requests
 * rather than forget one that could then be replayed.
 *
 * The cache is one region (shm.h), shared by a data plane's workers when the master mapped it
 * before forking (auth_replay_shared_init): a replay is caught whichever worker it reaches.
 * Links are indexes. A worker that dies holding the lock may leave a chain half-linked, so
 * the one that takes the lock over re-links every entry of the ring: nothing is forgotten. */
typedef struct replay_entry {
    unsigned char sig[REPLAY_SIG_BYTES];
    uint64_t expires_ms;
    uint32_t next; /* entry index + 1 in the same chain, 0 = end */
} replay_entry_t;

typedef struct replay_cache {
    shm_lock_t lock;
    uint32_t head, count;
    uint64_t takeovers;                    /* locks taken from a dead holder (re-linked) */
    uint32_t bucket[AUTH_REPLAY_CACHE_MAX]; /* first entry index + 1 of each chain */
    replay_entry_t e[AUTH_REPLAY_CACHE_MAX];
} replay_cache_t;

static struct {
    replay_cache_t *c; /* the region; owned (shm_unmap), mapped at first use if not shared */
    bool shared;
    bool full_logged;
} replay;

#define REPLAY_MASK (AUTH_REPLAY_CACHE_MAX - 1)
_Static_assert((AUTH_REPLAY_CACHE_MAX & REPLAY_MASK) == 0, "a power of two");

static uint32_t replay_bucket(const unsigned char *sig)
{
    return (uint32_t)(digest_hash(sig) & REPLAY_MASK);
}

static void replay_link(replay_cache_t *c, uint32_t idx)
{
    uint32_t b = replay_bucket(c->e[idx].sig);
    c->e[idx].next = c->bucket[b];
    c->bucket[b] = idx + 1;
}

static void replay_unlink(replay_cache_t *c, uint32_t idx)
{
    uint32_t *link = &c->bucket[replay_bucket(c->e[idx].sig)];
    while (*link && *link != idx + 1)
        link = &c->e[*link - 1].next;
    if (*link)
        *link = c->e[idx].next;
}

/* Rebuild every chain from the ring (after a takeover). */
static void replay_relink(replay_cache_t *c)
{
    memset(c->bucket, 0, sizeof c->bucket);
    if (c->count > AUTH_REPLAY_CACHE_MAX)
        c->count = AUTH_REPLAY_CACHE_MAX;
    for (uint32_t k = 0; k < c->count; k++)
        replay_link(c, (c->head + k) & REPLAY_MASK);
}

int auth_replay_shared_init(void)
{
    if (replay.shared)
        return 0;
    replay_cache_t *c = shm_map(sizeof *c, true);
    if (!c)
        return -errno;
    auth_replay_reset();
    replay.c = c;
    replay.shared = true;
    return 0;
}

void auth_replay_reset(void)
{
    shm_unmap(replay.c, sizeof *replay.c);
    memset(&replay, 0, sizeof replay);
}

static int replay_insert(replay_cache_t *c, const unsigned char *sig, uint64_t now_ms,
                         uint64_t expires_ms)
{
    while (c->count > 0 && c->e[c->head].expires_ms <= now_ms) {
        replay_unlink(c, c->head);
        c->head = (c->head + 1) & REPLAY_MASK;
        c->count--;
    }
    for (uint32_t j = c->bucket[replay_bucket(sig)]; j; j = c->e[j - 1].next)
        if (memcmp(c->e[j - 1].sig, sig, REPLAY_SIG_BYTES) == 0 &&
            c->e[j - 1].expires_ms > now_ms)
            return -EEXIST;
    if (c->count == AUTH_REPLAY_CACHE_MAX)
        return -ENOSPC;
    uint32_t idx = (c->head + c->count) & REPLAY_MASK;
    memcpy(c->e[idx].sig, sig, REPLAY_SIG_BYTES);
    c->e[idx].expires_ms = expires_ms;
    replay_link(c, idx);
    c->count++;
    return 0;
}

int auth_replay_remember(const unsigned char sig[FG_SHA256_LEN], uint64_t now_ms,
                         uint64_t expires_ms)
{
    if (!replay.c && !(replay.c = shm_map(sizeof *replay.c, false)))
        return -ENOMEM;
    replay_cache_t *c = replay.c;
    if (shm_lock(&c->lock)) {
        c->takeovers++;
        replay_relink(c);
    }
    int rc = replay_insert(c, sig, now_ms, expires_ms);
    shm_unlock(&c->lock);
    return rc;
}

/* ---- the request check ----------------------------------------------------------------- */

/* The headers auth_check looks at, found in one pass. */
typedef struct creds {
    const http1_header_t *key;    /* the key header, or Authorization: Bearer */
    const http1_header_t *signed_; /* Authorization: HMAC-SHA256 */
    const http1_header_t *date, *digest;
    unsigned n_creds, n_dates, n_digests;
} creds_t;

static bool value_has_scheme(const http1_head_t *h, const http1_header_t *hd, const char *scheme,
                             size_t len)
{
    return hd->value_len > len && http1_caseeq(HTTP1_VALUE(h, hd), len, scheme, len) &&
           HTTP1_VALUE(h, hd)[len] == ' ';
}

static void scan_headers(const auth_table_t *t, http1_head_t *h, bool checked, creds_t *c)
{
    memset(c, 0, sizeof *c);
    for (uint32_t i = 0; i < h->n_headers; i++) {
        http1_header_t *hd = &h->headers[i];
        const char *name = HTTP1_NAME(h, hd);
        if (hd->name_len == t->identity_len &&
            http1_caseeq(name, hd->name_len, t->identity, t->identity_len)) {
            hd->flags |= HTTP1_HF_REQ_REWRITE; /* a client cannot name itself */
            continue;
        }
        if (!checked)
            continue;
        if (hd->name_len == t->header_len &&
            http1_caseeq(name, hd->name_len, t->header, t->header_len)) {
            hd->flags |= HTTP1_HF_REQ_REWRITE;
            c->key = hd;
            c->n_creds++;
        } else if (http1_caseeq(name, hd->name_len, "Authorization", 13)) {
            if (t->bearer && value_has_scheme(h, hd, "Bearer", 6)) {
                hd->flags |= HTTP1_HF_REQ_REWRITE;
                c->key = hd;
                c->n_creds++;
            } else if (t->any_hmac && value_has_scheme(h, hd, AUTH_HMAC_SCHEME, 11)) {
                hd->flags |= HTTP1_HF_REQ_REWRITE;
                c->signed_ = hd;
                c->n_creds++;
            }
        } else if (t->any_hmac && http1_caseeq(name, hd->name_len, "Date", 4)) {
            c->date = hd;
            c->n_dates++;
        } else if (t->any_hmac && http1_caseeq(name, hd->name_len, "Content-Digest", 14)) {
            c->digest = hd;
            c->n_digests++;
        }
    }
}

static int refuse(const dp_request_t *r, int status, const char *why, uint64_t *counter)
{
    (*counter)++;
    if (fg_log_enabled(FG_LOG_DEBUG)) /* the reason and the route, never the credential */
        fg_log(FG_LOG_DEBUG, "auth refused", "route", r->route->id, "reason", why, NULL);
    return status;
}

/* 401 (disabled, expired) or 403 (not scoped), counted; 0 when the key may go on. */
static int admit_key(dp_request_t *r, const auth_key_t *k)
{
    uint32_t ri = (uint32_t)(r->route - r->gen->config->routes);
    int st = auth_key_admits(k, ri, fg_wall_ms());
    if (st == 401)
        return refuse(r, 401, k->conf->disabled ? "disabled key" : "expired key",
                      &metrics_counters()->auth_invalid);
    if (st == 403)
        return refuse(r, 403, "key not scoped to the route",
                      &metrics_counters()->auth_forbidden);
    r->key_name = k->conf->name;
    return 0;
}

static int check_key(dp_request_t *r, const auth_table_t *t, const http1_header_t *hd)
{
    const http1_head_t *h = r->head;
    const char *v = HTTP1_VALUE(h, hd);
    size_t n = hd->value_len;
    dp_counters_t *m = metrics_counters();
    if (hd->name_len != t->header_len || !http1_caseeq(HTTP1_NAME(h, hd), hd->name_len,
                                                       t->header, t->header_len)) {
        v += 7; /* "Bearer " */
        n -= 7;
        while (n && *v == ' ')
            v++, n--;
    }
    if (n == 0 || n > AUTH_KEY_MAX_LEN)
        return refuse(r, 401, "malformed key", &m->auth_invalid);
    unsigned char md[FG_SHA256_LEN];
    sha256_once(v, n, md);
    const auth_key_t *k = auth_find_digest(t, md);
    if (!k)
        return refuse(r, 401, "unknown key", &m->auth_invalid);
    if (k->conf->hmac) /* a signing key travels only as a signature */
        return refuse(r, 401, "signing key sent in clear", &m->auth_invalid);
    return admit_key(r, k);
}

static bool digest_value_valid(const char *v, size_t n)
{
    return n == DIGEST_VALUE_LEN && memcmp(v, DIGEST_PREFIX, sizeof(DIGEST_PREFIX) - 1) == 0 &&
           v[n - 1] == ':';
}

static int check_signed(dp_request_t *r, const auth_table_t *t, const creds_t *c)
{
    http1_head_t *h = r->head;
    dp_counters_t *m = metrics_counters();
    const char *v = HTTP1_VALUE(h, c->signed_) + sizeof(AUTH_HMAC_SCHEME);
    size_t n = c->signed_->value_len - sizeof(AUTH_HMAC_SCHEME);
    char name[FG_NAME_MAX_LEN + 1];
    size_t name_len = 0;
    unsigned char sig[FG_SHA256_LEN], want[FG_SHA256_LEN];
    if (auth_parse_signature(v, n, name, &name_len, sig) != 0)
        return refuse(r, 401, "malformed signature header", &m->auth_invalid);
    const auth_key_t *k = auth_find_name(t, name, name_len);
    if (!k)
        return refuse(r, 401, "unknown signing key", &m->auth_invalid);
    if (c->n_dates != 1 || c->n_digests > 1)
        return refuse(r, 401, "signed request needs one Date and at most one Content-Digest",
                      &m->auth_invalid);
    const char *digest = c->digest ? HTTP1_VALUE(h, c->digest) : "";
    size_t digest_len = c->digest ? c->digest->value_len : 0;
    bool body = h->framing != HTTP1_BODY_NONE;
    if ((body && !c->digest) || (c->digest && !digest_value_valid(digest, digest_len)))
        return refuse(r, 401, "signed request body needs Content-Digest: sha-256=:<base64>:",
                      &m->auth_invalid);
    auth_hmac_sign(k, llhttp_method_name((llhttp_method_t)h->method), h->buf + h->url_off,
                   h->url_len, HTTP1_VALUE(h, c->date), c->date->value_len, digest, digest_len,
                   want);
    if (CRYPTO_memcmp(want, sig, FG_SHA256_LEN) != 0)
        return refuse(r, 401, "bad signature", &m->auth_invalid);
    uint64_t now = fg_wall_ms(), date = 0;
    if (auth_parse_imf_date(HTTP1_VALUE(h, c->date), c->date->value_len, &date) != 0)
        return refuse(r, 401, "Date is not an IMF-fixdate", &m->auth_invalid);
    if (date + t->skew_ms < now || date > now + t->skew_ms)
        return refuse(r, 401, "Date outside the clock-skew window", &m->auth_replays);
    int rc = admit_key(r, k);
    if (rc != 0)
        return rc;
    r->key_name = NULL; /* until the replay and body checks pass */
    rc = auth_replay_remember(sig, now, date + t->skew_ms);
    if (rc == -EEXIST)
        return refuse(r, 401, "replayed signature", &m->auth_replays);
    if (rc == -ENOSPC) {
        if (!replay.full_logged) /* once per process: a flood must not flood the log too */
            fg_log(FG_LOG_WARN, "replay cache full: signed requests refused until entries expire",
                   "limit", "AUTH_REPLAY_CACHE_MAX", NULL);
        replay.full_logged = true;
        return refuse(r, 401, "replay cache full", &m->auth_replays);
    }
    if (rc != 0)
        return 500;
    if (body) {
        struct auth_body *b = fg_arena_alloc(r->conn->arena, sizeof(*b));
        if (!b)
            return 500;
        memset(b, 0, sizeof *b);
        SHA256_Init(&b->sha);
        memcpy(b->want, digest, DIGEST_VALUE_LEN);
        r->auth_body = b;
    } else if (c->digest) {
        unsigned char md[FG_SHA256_LEN];
        sha256_once("", 0, md);
        if (!content_digest_matches(digest, md))
            return refuse(r, 401, "Content-Digest does not match the body", &m->auth_invalid);
    }
    r->key_name = k->conf->name;
    return 0;
}

int auth_check(dp_request_t *r)
{
    const auth_table_t *t = r->gen->auth;
    fg_auth_mode_t mode = r->route->auth;
    creds_t c;
    scan_headers(t, r->head, mode != FG_AUTH_NONE, &c);
    if (mode == FG_AUTH_NONE)
        return 0;
    if (c.n_creds == 0)
        return mode == FG_AUTH_REQUIRED
                   ? refuse(r, 401, "no key", &metrics_counters()->auth_missing)
                   : 0;
    if (c.n_creds > 1)
        return refuse(r, 401, "more than one credential", &metrics_counters()->auth_invalid);
    return c.signed_ ? check_signed(r, t, &c) : check_key(r, t, c.key);
}

size_t auth_body_feed(dp_request_t *r, const char *at, size_t len)
{
    struct auth_body *b = r->auth_body;
    SHA256_Update(&b->sha, at, len);
    /* req_body_bytes already counts `at`: the last piece of a Content-Length body keeps its
     * last byte back, so the upstream cannot take the message as complete before the check. */
    if (len > 0 && r->head->framing == HTTP1_BODY_LENGTH &&
        r->req_body_bytes == r->head->content_length) {
        b->held = at[len - 1];
        b->holding = true;
        return len - 1;
    }
    return len;
}

int auth_body_end(dp_request_t *r)
{
    struct auth_body *b = r->auth_body;
    unsigned char md[FG_SHA256_LEN];
    r->auth_body = NULL;
    SHA256_Final(md, &b->sha);
    if (!content_digest_matches(b->want, md)) {
        r->key_name = NULL;
        return refuse(r, 401, "Content-Digest does not match the body",
                      &metrics_counters()->auth_invalid);
    }
    if (b->holding &&
        (!r->up || evbuffer_add(bufferevent_get_output(upstream_bev(r->up)), &b->held, 1) != 0))
        return 500;
    return 0;
}

size_t auth_identity_size(const dp_request_t *r)
{
    if (!r->key_name)
        return 0;
    return r->gen->auth->identity_len + strlen(r->key_name) + 4;
}

char *auth_identity_write(const dp_request_t *r, char *p)
{
    if (!r->key_name)
        return p;
    const auth_table_t *t = r->gen->auth;
    size_t n = strlen(r->key_name);
    memcpy(p, t->identity, t->identity_len);
    p += t->identity_len;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, r->key_name, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}
