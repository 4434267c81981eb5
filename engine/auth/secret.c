/* secret.c — see secret.h. */
#include "auth/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int ab_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int s_create(const char *path, ab_secret *out, char *errbuf, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        snprintf(errbuf, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    char hex[AB_SECRET_LEN * 2 + 2];
    if (ab_random_bytes(out->key, AB_SECRET_LEN) < 0) {
        close(fd);
        snprintf(errbuf, errlen, "no randomness available");
        return -1;
    }
    for (int i = 0; i < AB_SECRET_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", out->key[i]);
    hex[AB_SECRET_LEN * 2] = '\n';
    ssize_t w = write(fd, hex, AB_SECRET_LEN * 2 + 1);
    if (w != AB_SECRET_LEN * 2 + 1 || fsync(fd) != 0) {
        close(fd);
        snprintf(errbuf, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int ab_secret_load(const char *home, ab_secret *out, char *errbuf, size_t errlen)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/secrets", home);
    snprintf(path, sizeof path, "%s/server.key", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return s_create(path, out, errbuf, errlen);
        snprintf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char hex[AB_SECRET_LEN * 2 + 8] = "";
    size_t n = fread(hex, 1, sizeof hex - 1, f);
    fclose(f);
    if (n < AB_SECRET_LEN * 2 || s_hex_decode(hex, out->key, AB_SECRET_LEN) < 0) {
        snprintf(errbuf, errlen, "%s is damaged: expected 64 hex digits", path);
        return -1;
    }
    return 0;
}

void ab_secret_digest(const ab_secret *s, const void *data, size_t len, uint8_t out[AB_DIGEST_LEN])
{
    unsigned int outlen = AB_DIGEST_LEN;
    HMAC(EVP_sha256(), s->key, AB_SECRET_LEN, data, len, out, &outlen);
}

void ab_sha256_pair(const void *a, size_t alen, const void *b, size_t blen,
                    uint8_t out[AB_DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int outlen = AB_DIGEST_LEN;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, a, alen);
    if (b)
        EVP_DigestUpdate(ctx, b, blen);
    EVP_DigestFinal_ex(ctx, out, &outlen);
    EVP_MD_CTX_free(ctx);
}

int ab_uuid_v4(char out[37])
{
    uint8_t b[16];
    if (ab_random_bytes(b, sizeof b) < 0)
        return -1;
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int ab_authkey_new(char out[AB_AUTHKEY_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    int have = 0;
    while (have < AB_AUTHKEY_LEN) {
        uint8_t b[64];
        if (ab_random_bytes(b, sizeof b) < 0)
            return -1;
        for (size_t i = 0; i < sizeof b && have < AB_AUTHKEY_LEN; i++)
            if (b[i] < 248) /* 248 = 4 × 62: reject the rest so every character is equally likely */
                out[have++] = alphabet[b[i] % 62];
    }
    out[AB_AUTHKEY_LEN] = '\0';
    return 0;
}
