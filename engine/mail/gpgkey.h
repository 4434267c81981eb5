/* gpgkey.h — checking a user's GnuPG public key (user.add / user.edit gpgkey): MISP takes
 * a key only if GnuPG can use it to encrypt mail to the user. */
#ifndef AB_GPGKEY_H
#define AB_GPGKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/engine.h"

#define AB_GPGKEY_FPR_MAX 65 /* a v4 fingerprint is 40 hex digits, a v5 one 64; and the NUL */

/* Check armour (len bytes): it must hold exactly one ASCII-armoured OpenPGP public key
 * (no secret key) that is neither expired nor revoked, with a (sub)key that can encrypt
 * and is itself neither expired nor revoked. GnuPG (through gpgme) reads it in a
 * throw-away GnuPG home made under tmp_root (created when missing; NULL: $TMPDIR or
 * /tmp) and removed afterwards: nothing is imported anywhere. On success fpr receives the
 * primary key's fingerprint (upper-case hex). Returns 0, or -1 with *err: invalid, field
 * "gpgkey", saying what is wrong and what to do; internal when GnuPG cannot run. */
int ab_gpgkey_check(const char *tmp_root, const char *armour, size_t len,
                    char fpr[AB_GPGKEY_FPR_MAX], ab_error *err);

/* ab_gpgkey_check, and then (address not NULL) that a valid user ID of the key names
 * address, case aside: for keys fetched from a key server, which are anyone's word that
 * the key is that person's. The error (invalid, field "gpgkey") names the key's first
 * user ID. */
int ab_gpgkey_check_for(const char *tmp_root, const char *armour, size_t len, const char *address,
                        char fpr[AB_GPGKEY_FPR_MAX], ab_error *err);

/* The gpgkey argument of a user command, checked. */
typedef struct {
    bool given;                  /* the argument is present */
    const char *armour;          /* its text; NULL when given empty (remove the key) */
    size_t len;                  /* bytes of armour */
    char fpr[AB_GPGKEY_FPR_MAX]; /* "" when armour is NULL */
} ab_gpgkey_arg;

/* Read and check ctx's "gpgkey" argument (see ab_gpgkey_check), using
 * $ADMINBUS_HOME/tmp for GnuPG's throw-away home. Absent: out->given false. Returns 0 or
 * -1 with *err. */
int ab_gpgkey_from_args(ab_ctx *ctx, ab_gpgkey_arg *out, ab_error *err);

/* *same = user user_id's stored key is exactly k's text, or both are none: an edit that
 * changes nothing. Returns 0 or -1 with *err. */
int ab_gpgkey_same(ab_db *db, int64_t user_id, const ab_gpgkey_arg *k, bool *same, ab_error *err);

#endif
