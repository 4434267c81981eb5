/* mail_gpg.h — PGP/MIME for outgoing mail (issue 6) through gpgme: a message is signed
 * with the instance's key (GnuPG.homedir, GnuPG.email, GnuPG.password through a loopback
 * pinentry) when the instance signs (mail.h: ab_mail_conf.sign), and, for a user with a
 * key, the (signed) entity is then encrypted to that key (RFC 3156 §6.1: sign, then
 * encrypt the multipart/signed entity).
 *
 * The user's public key is read in a throw-away GnuPG home (removed afterwards): the
 * instance's keyring holds the instance's key and nothing a user gave us, and encrypting
 * needs no instance key at all. A recipient key that is expired, revoked, disabled or
 * cannot encrypt fails that message — there is no fall-back to clear text. */
#ifndef AB_MAIL_GPG_H
#define AB_MAIL_GPG_H

#include <stddef.h>

#include "wire/errors.h"
#include "mail/mime.h"

typedef struct ab_mail_gpg ab_mail_gpg;

/* Open the instance's signing context: gpg binary (NULL: gpgme's default), the home
 * folder, the address of the secret key that signs, its passphrase (NULL: none; copied).
 * The key must be there and able to sign. Returns 0 with *out (free with
 * ab_mail_gpg_close), or -1 with *err: invalid (field names the setting) saying what to
 * fix. */
int ab_mail_gpg_open(ab_mail_gpg **out, const char *binary, const char *home, const char *email,
                     const char *passphrase, ab_error *err);

/* Open a context that only encrypts (gpg binary, NULL: gpgme's default): the instance does
 * not sign. ab_mail_gpg_sign fails on it. Returns 0 with *out, or -1 with *err (out of
 * memory). */
int ab_mail_gpg_open_unsigned(ab_mail_gpg **out, const char *binary, ab_error *err);

/* Free the context and wipe the passphrase; *g becomes NULL; safe on NULL. */
void ab_mail_gpg_close(ab_mail_gpg **g);

/* The fingerprint of the signing key (upper-case hex); "" for a context that only
 * encrypts. */
const char *ab_mail_gpg_signer(const ab_mail_gpg *g);

/* Append to out the body of a signed message: the multipart/signed Content-Type header, the
 * blank line and the parts (mime.h ab_mime_signed), signing part (part_len bytes, a MIME
 * entity in canonical CRLF form, e.g. from ab_mime_text_part) with a detached armoured
 * signature. Returns 0, or -1 with *err (internal: GnuPG failed, with its reason; invalid
 * field GnuPG.password when the passphrase does not unlock the key). */
int ab_mail_gpg_sign(ab_mail_gpg *g, const char *part, size_t part_len, ab_mime_buf *out,
                     ab_error *err);

/* Append to out the body of an encrypted message: entity (a whole MIME entity, headers
 * included, such as what ab_mail_gpg_sign appends) encrypted to the single public key in
 * armour and wrapped as multipart/encrypted. The signing key is not used, so a mail-out
 * signs its text once and encrypts that for each recipient with a key. Errors as below. */
int ab_mail_gpg_encrypt(ab_mail_gpg *g, const char *tmp_root, const char *armour, size_t armour_len,
                        const char *entity, size_t entity_len, ab_mime_buf *out, ab_error *err);

/* Append to out the body of a signed and encrypted message: the part is signed as by
 * ab_mail_gpg_sign, and that multipart/signed entity is encrypted to the single public key
 * in armour (a user's gpgkey), wrapped as multipart/encrypted. tmp_root is where the
 * throw-away GnuPG home is made (NULL: $TMPDIR or /tmp). Returns 0, or -1 with *err:
 * invalid, field "gpgkey", when the key is not one usable key (expired, revoked, no
 * encryption subkey, not a key), saying which; internal for other GnuPG failures. Nothing
 * is appended on failure. */
int ab_mail_gpg_sign_encrypt(ab_mail_gpg *g, const char *tmp_root, const char *armour,
                             size_t armour_len, const char *part, size_t part_len, ab_mime_buf *out,
                             ab_error *err);

#endif
