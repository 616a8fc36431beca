/* fg_hash.c - SHA-256, constant-time comparison and randomness, all from OpenSSL. */
#include "fg_hash.h"

#include <errno.h>
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char hex_digits[] = "0123456789abcdef";

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

void fg_sha256_hex(const void *data, size_t len, char out[FG_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    /* EVP_Digest only fails on allocation failure inside OpenSSL; an all-zero digest can
     * never match a real checksum, so a failure is detected downstream rather than
     * silently accepted. */
    if (!EVP_Digest(data ? data : "", len, md, &md_len, EVP_sha256(), NULL) ||
        md_len != FG_SHA256_LEN) {
        for (size_t i = 0; i < FG_SHA256_HEX_LEN; i++)
            out[i] = '0';
        out[FG_SHA256_HEX_LEN] = '\0';
        return;
    }
    hex_encode(md, FG_SHA256_LEN, out);
}

int fg_ct_memcmp(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) != 0;
}

int fg_random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    /* RAND_bytes takes an int length. */
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, n) != 1)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fg_random_hex(char *out, size_t nbytes)
{
    unsigned char buf[256];
    size_t done = 0;

    while (done < nbytes) {
        size_t n = nbytes - done < sizeof(buf) ? nbytes - done : sizeof(buf);
        if (fg_random_bytes(buf, n) != 0) {
            out[0] = '\0';
            return -EIO;
        }
        hex_encode(buf, n, out + 2 * done);
        done += n;
    }
    out[2 * nbytes] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}
