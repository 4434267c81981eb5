/* seal.h — sealing small secrets at rest: AES-256-GCM under a key derived from the server
 * secret for one purpose, with associated data that binds the sealed value to its place.
 *
 * The key for a purpose is HMAC-SHA-256(server secret, purpose label), so values sealed for
 * one purpose (settings, OTP seeds, …) never open for another. The associated data (a
 * setting's name, a user's id) is authenticated but not stored: a sealed value copied to
 * another place does not open there. Format: "enc:v1:" + base64(12-byte nonce, ciphertext,
 * 16-byte tag), a fresh random nonce each time.
 *
 * Nothing here logs; buffers that held clear text or keys are wiped before they are freed. */
#ifndef AB_SEAL_H
#define AB_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "auth/secret.h"

#define AB_SEAL_PREFIX "enc:v1:"

/* Purpose labels in use (a new purpose = a new label; never reuse one). */
#define AB_SEAL_PURPOSE_SETTINGS "adminbus settings v1"
#define AB_SEAL_PURPOSE_OTP      "adminbus otp v1"

/* Seal plen bytes of plain (plen may be 0; plain may then be NULL) for purpose, bound to
 * aad (alen bytes; may be empty). Returns the sealed text (caller frees), or NULL on failure
 * (bad arguments, out of memory, no randomness). */
char *ab_seal(const ab_secret *key, const char *purpose, const void *aad, size_t alen,
              const void *plain, size_t plen);

/* Open sealed text made by ab_seal with the same key, purpose and aad. Returns the clear
 * bytes (caller frees; followed by a NUL that *plen does not count, so text comes back as a
 * C string), or NULL when it is not sealed text, is damaged, or does not open (another key,
 * purpose or aad). plen may be NULL. */
uint8_t *ab_unseal(const ab_secret *key, const char *purpose, const void *aad, size_t alen,
                   const char *sealed, size_t *plen);

/* Wipe and free a clear buffer of len bytes (NULL is fine). */
void ab_seal_free(void *p, size_t len);

#endif
