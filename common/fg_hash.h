/* fg_hash.h - digests (OpenSSL) and constant-time comparison.
 *
 * SHA-256 is what the snapshot checksum and stored API-key digests use; both travel as
 * 64 lowercase hex characters. */
#ifndef FG_HASH_H
#define FG_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FG_SHA256_LEN 32
#define FG_SHA256_HEX_LEN 64

/** Lowercase hex SHA-256 of `len` bytes at `data` into `out` (65 bytes, NUL-terminated). */
void fg_sha256_hex(const void *data, size_t len, char out[FG_SHA256_HEX_LEN + 1]);

/** Compare `len` bytes without an early exit: 0 when equal, non-zero otherwise. */
int fg_ct_memcmp(const void *a, const void *b, size_t len);

/** `len` cryptographically random bytes (OpenSSL RAND_bytes). 0 or -EIO. */
int fg_random_bytes(void *out, size_t len);

/** `nbytes` random bytes as lowercase hex into `out` (2*nbytes+1 bytes). 0 or -EIO. */
int fg_random_hex(char *out, size_t nbytes);

#endif
