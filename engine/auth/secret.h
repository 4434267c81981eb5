/* secret.h — the server secret (the HMAC key for authkey digests), digests, and random
 * identifiers (UUIDs, authkeys) drawn from the kernel's CSPRNG. */
#ifndef AB_SECRET_H
#define AB_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define AB_SECRET_LEN  32
#define AB_DIGEST_LEN  32
#define AB_AUTHKEY_LEN 40

typedef struct {
    uint8_t key[AB_SECRET_LEN];
} ab_secret;

/* Load $home/secrets/server.key, creating it (folder 0700, file 0600, 32 random bytes as
 * hex) when it does not exist. Returns 0, or -1 with a message in errbuf. */
int ab_secret_load(const char *home, ab_secret *out, char *errbuf, size_t errlen);

/* HMAC-SHA-256 of data under the server secret. */
void ab_secret_digest(const ab_secret *s, const void *data, size_t len, uint8_t out[AB_DIGEST_LEN]);

/* Plain SHA-256 of a and b concatenated (b may be NULL). */
void ab_sha256_pair(const void *a, size_t alen, const void *b, size_t blen,
                    uint8_t out[AB_DIGEST_LEN]);

/* Fill buf with len random bytes. Returns 0 or -1. */
int ab_random_bytes(void *buf, size_t len);

/* A random (version 4) UUID, lower case, NUL-terminated into out[37]. */
int ab_uuid_v4(char out[37]);

/* A new authkey: 40 characters from [0-9A-Za-z], NUL-terminated into out[41]. */
int ab_authkey_new(char out[AB_AUTHKEY_LEN + 1]);

#endif
