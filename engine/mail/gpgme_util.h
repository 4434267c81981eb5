/* gpgme_util.h — what every GnuPG user in the engine shares (backups, diagnostics, users'
 * keys, e-mail): gpgme's once-per-process start and the loopback pinentry callback. */
#ifndef AB_GPGME_UTIL_H
#define AB_GPGME_UTIL_H

#include <gpgme.h>
#include <stdbool.h>

/* Start gpgme (version check, locale) once per process; safe from any thread. */
void ab_gpgme_init(void);

/* A new OpenPGP context on GnuPG home home (NULL: GnuPG's default) run by binary (NULL: the
 * default gpg), with the loopback pinentry and ab_gpgme_passphrase handing it pw (NULL: an
 * empty passphrase). Starts gpgme if needed. Returns 0 with *out, or gpgme's error. */
gpgme_error_t ab_gpgme_context(gpgme_ctx_t *out, const char *binary, const char *home, char *pw);

/* Why key cannot do what is needed — sign (sign) or encrypt — or NULL when it can: "is
 * revoked", "has expired", "is disabled", "is invalid", or the missing capability. */
const char *ab_gpgme_key_unusable(gpgme_key_t key, bool sign);

/* A passphrase callback for GPGME_PINENTRY_MODE_LOOPBACK: hands hook (a NUL-terminated
 * passphrase, NULL: empty) to gpg; a second ask means it was wrong (bad passphrase). */
gpgme_error_t ab_gpgme_passphrase(void *hook, const char *uid_hint, const char *info, int bad,
                                  int fd);

#endif
