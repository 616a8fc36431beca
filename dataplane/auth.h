/* auth.h - API-key authentication of requests: plain keys and HMAC-SHA256 signed requests.
 *
 * A generation carries one auth_table_t, built once from security.auth: an open-addressing
 * hash table of the keys' SHA-256 digests (and, for keys with `hmac: true`, of their names),
 * each key's route scope as sorted route indexes, and the 401 challenge text. Per request,
 * auth_check() reads the credential, hashes it with SHA-256, finds the digest in O(1),
 * compares digests with CRYPTO_memcmp, and checks disabled / expiresAt / route scope. The
 * request path allocates nothing: digests are computed on the stack with OpenSSL's plain
 * SHA-256 functions (EVP allocates a context per digest), and a signed request's body digest
 * state lives in the request arena.
 *
 * Credentials, per route mode (`auth: required | optional | none`):
 *   - the key in the configured header (security.auth.header, default X-API-Key), or, with
 *     security.auth.bearer, in `Authorization: Bearer <key>`;
 *   - a signature: `Authorization: HMAC-SHA256 keyName="<name>", signature="<hex>"` over
 *     "METHOD\nrequest-target\nDate\nContent-Digest", keyed with the key's SHA-256 as 64
 *     lowercase hex characters (the snapshot holds only digests; a client that has the key
 *     can compute its digest). Date must be an IMF-fixdate within hmacClockSkewMs of the
 *     data plane's clock; a signature is accepted once (a bounded per-process cache); a body
 *     must come with `Content-Digest: sha-256=:<base64>:`, which the data plane checks
 *     while the body streams up: the upstream is sent everything but the body's completion
 *     (the last byte of a Content-Length body, the final chunk of a chunked one) until the
 *     digest matched, and a mismatch ends the request (401) with the upstream connection
 *     closed, so an upstream never receives a complete request whose body was altered.
 * The credential headers are never forwarded upstream on routes that check keys; the
 * client's copy of the identity header is dropped on every route, and the authenticated
 * key's name is sent in it instead. A key's text or digest never appears in a log line, a
 * metric label or an error body. */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_config.h"
#include "fg_error.h"
#include "fg_hash.h"

struct dp_request;

/* ---- limits (named; docs/configuration.md lists them) ---------------------------------- */
#define AUTH_KEY_MAX_LEN 512            /* bytes of a presented key; longer: 401 unhashed */
#define AUTH_REPLAY_CACHE_MAX 262144    /* signatures remembered per data plane (about 9 MB
                                           of address space; pages used as entries are) */
#define AUTH_CHALLENGE_MAX 512          /* bytes of the WWW-Authenticate lines of a 401 */
#define AUTH_REALM "flexgate"
#define AUTH_HMAC_SCHEME "HMAC-SHA256"

/** One key of the table. `conf` points into the generation's config. */
typedef struct auth_key {
    const fg_api_key_t *conf;
    unsigned char digest[FG_SHA256_LEN]; /* raw SHA-256 of the key */
    size_t name_len;
    uint32_t *routes;     /* sorted indexes into config->routes it may use (owned) */
    uint32_t n_routes;
    bool all_routes;      /* the key names no route: every route */
} auth_key_t;

typedef struct auth_table auth_table_t;

/** Build the table of `cfg` (validated). The table borrows `cfg`'s strings: free it before
 *  the config. NULL with err on ENOMEM. */
auth_table_t *auth_table_build(const fg_config_t *cfg, fg_error_t *err);

/** Release a table. NULL is accepted. */
void auth_table_free(auth_table_t *t);

/** The key whose raw SHA-256 is `digest`, compared in constant time; NULL when none. */
const auth_key_t *auth_find_digest(const auth_table_t *t,
                                   const unsigned char digest[FG_SHA256_LEN]);

/** The `hmac: true` key named `name` (`len` bytes); NULL when none. */
const auth_key_t *auth_find_name(const auth_table_t *t, const char *name, size_t len);

/** May key `k` use route number `route_index` at wall time `now_ms`? 0 yes; 401 when it is
 *  disabled or expired; 403 when it is valid but not scoped to that route. */
int auth_key_admits(const auth_key_t *k, uint32_t route_index, uint64_t now_ms);

/** The `WWW-Authenticate: ...\r\n` lines a 401 carries (static for the table's life). */
const char *auth_challenge(const auth_table_t *t);

/** Admission step of proxy_start(): marks the credential headers and the client's identity
 *  header as not forwarded, checks the credential the route asks for, sets r->key_name, and
 *  for a signed request with a body arms the body digest check. 0 to admit, else the HTTP
 *  status to finish with (401, 403, 500). Bumps the auth counters. */
int auth_check(struct dp_request *r);

/** Body bytes of a signed request (r->auth_body set): hashes them and returns how many of
 *  the `len` to forward now (one fewer for the last byte of a Content-Length body). */
size_t auth_body_feed(struct dp_request *r, const char *at, size_t len);

/** The body of a signed request is complete: 0 when its digest matches Content-Digest (a
 *  held-back byte is then queued to the upstream), else the status to finish with (401). */
int auth_body_end(struct dp_request *r);

/** Bytes auth_identity_write() adds to the upstream head (0 without an authenticated key). */
size_t auth_identity_size(const struct dp_request *r);

/** Write `<identityHeader>: <key name>\r\n` at `p` when the request has an authenticated
 *  key; returns the position after it. */
char *auth_identity_write(const struct dp_request *r, char *p);

/* ---- pieces exposed for tests ---------------------------------------------------------- */

/** Parse an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into epoch ms. 0 or -EINVAL. */
int auth_parse_imf_date(const char *s, size_t n, uint64_t *out_ms);

/** Parse the parameters after "HMAC-SHA256 ": keyName="..." (quoted-string, at most
 *  FG_NAME_MAX_LEN bytes unescaped into `name`, FG_NAME_MAX_LEN + 1 bytes) and signature="<64
 *  hex>" (into `sig`). 0 or -EINVAL. */
int auth_parse_signature(const char *s, size_t n, char *name, size_t *name_len,
                         unsigned char sig[FG_SHA256_LEN]);

/** HMAC-SHA256 of the signing string with the key's hex digest as secret. */
void auth_hmac_sign(const auth_key_t *k, const char *method, const char *target,
                    size_t target_len, const char *date, size_t date_len, const char *digest,
                    size_t digest_len, unsigned char out[FG_SHA256_LEN]);

/** Remember signature `sig` until `expires_ms` (wall). 0 when new, -EEXIST when seen and
 *  not expired, -ENOSPC when the cache is full of live entries, -ENOMEM. */
int auth_replay_remember(const unsigned char sig[FG_SHA256_LEN], uint64_t now_ms,
                         uint64_t expires_ms);

/** Map the replay cache in memory the workers forked after this call share (the master
 *  calls it before forking), so a replay is refused whichever worker it reaches. 0 or
 *  -errno: then each process keeps its own, mapped at its first signed request. */
int auth_replay_shared_init(void);

/** Drop this process's view of the replay cache (tests; process exit). */
void auth_replay_reset(void);

#endif
