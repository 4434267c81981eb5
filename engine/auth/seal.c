/* seal.c — see seal.h. */
#include "auth/seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_LEN 12
#define TAG_LEN   16

static void s_key(const ab_secret *key, const char *purpose, uint8_t out[AB_DIGEST_LEN])
{
    ab_secret_digest(key, purpose, strlen(purpose), out);
}

void ab_seal_free(void *p, size_t len)
{
    if (p)
        OPENSSL_cleanse(p, len);
    free(p);
}

char *ab_seal(const ab_secret *key, const char *purpose, const void *aad, size_t alen,
              const void *plain, size_t plen)
{
    if (!key || !purpose || (alen && !aad) || (plen && !plain) || plen > INT_MAX / 2 ||
        alen > INT_MAX)
        return NULL;
    size_t blen = NONCE_LEN + plen + TAG_LEN;
    uint8_t k[AB_DIGEST_LEN];
    uint8_t *buf = malloc(blen);
    char *out = malloc(sizeof AB_SEAL_PREFIX + (blen + 2) / 3 * 4 + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = buf && out && c && ab_random_bytes(buf, NONCE_LEN) == 0;
    s_key(key, purpose, k);
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, k, buf) == 1 &&
         (alen == 0 || EVP_EncryptUpdate(c, NULL, &len, aad, (int)alen) == 1) &&
         (plen == 0 || EVP_EncryptUpdate(c, buf + NONCE_LEN, &len, plain, (int)plen) == 1) &&
         EVP_EncryptFinal_ex(c, buf + NONCE_LEN + (plen ? len : 0), &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + plen) == 1;
    if (ok) {
        memcpy(out, AB_SEAL_PREFIX, sizeof AB_SEAL_PREFIX - 1);
        EVP_EncodeBlock((uint8_t *)out + sizeof AB_SEAL_PREFIX - 1, buf, (int)blen);
    }
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    ab_seal_free(buf, buf ? blen : 0);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

uint8_t *ab_unseal(const ab_secret *key, const char *purpose, const void *aad, size_t alen,
                   const char *sealed, size_t *plen)
{
    size_t prefix = sizeof AB_SEAL_PREFIX - 1;
    if (plen)
        *plen = 0;
    if (!key || !purpose || (alen && !aad) || alen > INT_MAX || !sealed ||
        strncmp(sealed, AB_SEAL_PREFIX, prefix) != 0)
        return NULL;
    const char *b64 = sealed + prefix;
    size_t b64len = strlen(b64);
    if (b64len % 4 != 0 || b64len > INT_MAX)
        return NULL;
    uint8_t *buf = malloc(b64len / 4 * 3 + 1);
    if (!buf)
        return NULL;
    int n = EVP_DecodeBlock(buf, (const uint8_t *)b64, (int)b64len);
    if (n >= 0) /* EVP_DecodeBlock counts the padding as bytes */
        n -= (b64len >= 1 && b64[b64len - 1] == '=') + (b64len >= 2 && b64[b64len - 2] == '=');
    if (n < NONCE_LEN + TAG_LEN) {
        free(buf);
        return NULL;
    }
    int clen = n - NONCE_LEN - TAG_LEN, len = 0;
    uint8_t *out = malloc((size_t)clen + 1);
    uint8_t k[AB_DIGEST_LEN];
    s_key(key, purpose, k);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = out && c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, k, buf) == 1 &&
             (alen == 0 || EVP_DecryptUpdate(c, NULL, &len, aad, (int)alen) == 1) &&
             (clen == 0 || EVP_DecryptUpdate(c, out, &len, buf + NONCE_LEN, clen) == 1) &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, buf + NONCE_LEN + clen) == 1 &&
             EVP_DecryptFinal_ex(c, out + (clen ? len : 0), &len) == 1;
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    free(buf);
    if (!ok) {
        ab_seal_free(out, out ? (size_t)clen + 1 : 0);
        return NULL;
    }
    out[clen] = '\0';
    if (plen)
        *plen = (size_t)clen;
    return out;
}
