/* gpgkey.c — see gpgkey.h.
 *
 * GnuPG itself reads the key (gpgme_op_keylist_from_data: `gpg --import --import-options
 * show-only`), so every packet format, algorithm and expiry rule is GnuPG's, not ours. It
 * runs in a fresh GnuPG home under $ADMINBUS_HOME/tmp: listing needs a home, and the
 * engine user's own keyring (if any) must neither be read nor changed. Nothing is imported.
 * Messages never quote the key text. */
#include "mail/gpgkey.h"
#include "mail/gpgme_util.h"

#include <errno.h>
#include <ftw.h>
#include <gpgme.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define FIELD "gpgkey"

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* A fresh 0700 folder root/gpgkey-XXXXXX in out. */
static int s_make_home(const char *tmp_root, char *out, size_t cap, ab_error *err)
{
    const char *root = tmp_root;
    if (!root || !*root)
        root = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (mkdir(root, 0700) < 0 && errno != EEXIST)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot create %.120s: %s", root, strerror(errno));
    if ((size_t)snprintf(out, cap, "%s/gpgkey-XXXXXX", root) >= cap || !mkdtemp(out))
        return ab_fail(err, AB_E_INTERNAL, NULL,
                       "cannot create a temporary GnuPG home under %.120s: %s", root,
                       strerror(errno));
    return 0;
}

static void s_date(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%d", &tm) == 0)
        snprintf(out, cap, "an unknown date");
}

static bool s_usable(const struct _gpgme_subkey *s)
{
    return s->can_encrypt && !s->revoked && !s->expired && !s->disabled && !s->invalid;
}

/* Why key k cannot take mail for its user, or 0 when it can. */
static int s_judge(gpgme_key_t k, ab_error *err)
{
    const char *fpr = k->fpr ? k->fpr : "?";
    char day[32];
    if (k->revoked)
        return ab_fail(err, AB_E_INVALID, FIELD, "the key %s is revoked: give a current key", fpr);
    if (k->expired) {
        s_date(k->subkeys ? k->subkeys->expires : 0, day, sizeof day);
        return ab_fail(err, AB_E_INVALID, FIELD,
                       "the key %s expired on %s: extend it (gpg --quick-set-expire) and export "
                       "it again, or give another key",
                       fpr, day);
    }
    if (k->disabled || k->invalid)
        return ab_fail(err, AB_E_INVALID, FIELD, "GnuPG cannot use the key %s (invalid)", fpr);
    const struct _gpgme_subkey *enc = NULL;
    for (gpgme_subkey_t s = k->subkeys; s; s = s->next) {
        if (s_usable(s))
            return 0;
        if (s->can_encrypt && !enc)
            enc = s;
    }
    if (!enc)
        return ab_fail(err, AB_E_INVALID, FIELD,
                       "the key %s cannot encrypt (it can only sign): add an encryption subkey "
                       "(gpg --quick-add-key %s default encr) and export it again",
                       fpr, fpr);
    if (enc->revoked)
        return ab_fail(err, AB_E_INVALID, FIELD,
                       "the encryption subkey of %s is revoked: add a new one and export the key "
                       "again",
                       fpr);
    s_date(enc->expires, day, sizeof day);
    return ab_fail(err, AB_E_INVALID, FIELD,
                   "the encryption subkey of %s expired on %s: extend it (gpg --quick-set-expire) "
                   "and export the key again",
                   fpr, day);
}

/* List the keys in data with gpg in home; the first in *first, the count in *n. */
static int s_list(const char *home, gpgme_data_t data, gpgme_key_t *first, int *n, ab_error *err)
{
    gpgme_ctx_t g = NULL;
    gpgme_error_t e = gpgme_new(&g);
    if (!e)
        e = gpgme_set_protocol(g, GPGME_PROTOCOL_OpenPGP);
    if (!e)
        e = gpgme_ctx_set_engine_info(g, GPGME_PROTOCOL_OpenPGP, NULL, home);
    if (!e)
        e = gpgme_op_keylist_from_data_start(g, data, 0);
    gpgme_key_t k = NULL;
    while (!e && !(e = gpgme_op_keylist_next(g, &k))) {
        if (++*n == 1)
            *first = k;
        else
            gpgme_key_unref(k);
    }
    int rc = 0;
    if (e && gpgme_err_code(e) != GPG_ERR_EOF && *n == 0)
        rc = ab_fail(err, AB_E_INVALID, FIELD,
                     "GnuPG cannot read the key (%s): give an ASCII-armoured public key "
                     "(gpg --armor --export ID)",
                     gpgme_strerror(e));
    if (g) {
        gpgme_op_keylist_end(g);
        gpgme_release(g);
    }
    return rc;
}

static int s_check_text(const char *armour, size_t len, ab_error *err)
{
    if (memmem(armour, len, "PRIVATE KEY BLOCK", 17))
        return ab_fail(err, AB_E_INVALID, FIELD,
                       "this is a secret key: never hand it out; give the public key (gpg "
                       "--armor --export ID)");
    if (!memmem(armour, len, "-----BEGIN PGP PUBLIC KEY BLOCK-----", 36))
        return ab_fail(err, AB_E_INVALID, FIELD,
                       "not an ASCII-armoured OpenPGP public key (no -----BEGIN PGP PUBLIC KEY "
                       "BLOCK----- line): export one with gpg --armor --export ID");
    return 0;
}

/* Does a valid user ID of k name address (case aside)? */
static int s_names(gpgme_key_t k, const char *address, ab_error *err)
{
    for (gpgme_user_id_t u = k->uids; u; u = u->next)
        if (!u->revoked && !u->invalid && u->email && strcasecmp(u->email, address) == 0)
            return 0;
    return ab_fail(err, AB_E_INVALID, FIELD,
                   "the key %s is not %s's: none of its user IDs names that address (the first "
                   "is %.80s)",
                   k->fpr ? k->fpr : "?", address, k->uids && k->uids->uid ? k->uids->uid : "none");
}

int ab_gpgkey_check(const char *tmp_root, const char *armour, size_t len,
                    char fpr[AB_GPGKEY_FPR_MAX], ab_error *err)
{
    return ab_gpgkey_check_for(tmp_root, armour, len, NULL, fpr, err);
}

int ab_gpgkey_check_for(const char *tmp_root, const char *armour, size_t len, const char *address,
                        char fpr[AB_GPGKEY_FPR_MAX], ab_error *err)
{
    fpr[0] = '\0';
    if (s_check_text(armour, len, err) < 0)
        return -1;
    ab_gpgme_init();
    if (gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP) != 0)
        return ab_fail(err, AB_E_INTERNAL, FIELD,
                       "cannot check the key: GnuPG (gpg) is not installed on the engine's host "
                       "(ops/deps installs it)");
    char home[4200];
    if (s_make_home(tmp_root, home, sizeof home, err) < 0)
        return -1;
    gpgme_data_t data = NULL;
    gpgme_key_t k = NULL;
    int n = 0, rc;
    if (gpgme_data_new_from_mem(&data, armour, len, 0) != 0)
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    else
        rc = s_list(home, data, &k, &n, err);
    if (rc == 0 && n == 0)
        rc = ab_fail(err, AB_E_INVALID, FIELD,
                     "GnuPG finds no public key in the text: give an ASCII-armoured public key "
                     "(gpg --armor --export ID)");
    else if (rc == 0 && n > 1)
        rc = ab_fail(err, AB_E_INVALID, FIELD,
                     "the text holds %d keys: give exactly one (gpg --armor --export ID)", n);
    else if (rc == 0 && k->secret)
        rc = ab_fail(err, AB_E_INVALID, FIELD,
                     "this is a secret key: never hand it out; give the public key");
    else if (rc == 0)
        rc = s_judge(k, err);
    if (rc == 0 && address)
        rc = s_names(k, address, err);
    if (rc == 0)
        snprintf(fpr, AB_GPGKEY_FPR_MAX, "%s", k->fpr ? k->fpr : "");
    if (k)
        gpgme_key_unref(k);
    gpgme_data_release(data);
    nftw(home, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int ab_gpgkey_from_args(ab_ctx *ctx, ab_gpgkey_arg *out, ab_error *err)
{
    memset(out, 0, sizeof *out);
    size_t len = 0;
    const char *text = ab_arg_str(ctx, FIELD, &len);
    if (!text)
        return 0;
    out->given = true;
    if (len == 0) /* empty: the key is removed */
        return 0;
    char root[4200];
    const char *home = ctx->engine ? ctx->engine->home : NULL;
    if (home)
        snprintf(root, sizeof root, "%s/tmp", home);
    if (ab_gpgkey_check(home ? root : NULL, text, len, out->fpr, err) < 0)
        return -1;
    out->armour = text;
    out->len = len;
    return 0;
}

int ab_gpgkey_same(ab_db *db, int64_t user_id, const ab_gpgkey_arg *k, bool *same, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, k->armour ? k->armour : "", k->armour ? k->len : 0);
    ab_param_int(&p, user_id);
    int64_t equal = 0;
    if (ab_db_scalar(db,
                     "SELECT CAST(COALESCE(gpgkey, '') AS BINARY) = CAST(? AS BINARY) FROM users "
                     "WHERE id = ?",
                     &p, &equal, err) < 0)
        return -1;
    *same = equal != 0;
    return 0;
}
