/* mail_gpg.c — PGP/MIME signing and encryption of outgoing mail (see mail_gpg.h). */
#include "mail/mail_gpg.h"
#include "mail/gpgme_util.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <gpgme.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ab_mail_gpg {
    gpgme_ctx_t ctx;
    gpgme_key_t key;
    char *binary;
    char *passphrase;
};

/* A context on home with armoured output and the loopback pinentry. */
static gpgme_error_t s_ctx(gpgme_ctx_t *out, const char *binary, const char *home, char *pw)
{
    gpgme_error_t e = ab_gpgme_context(out, binary, home, pw);
    if (!e)
        gpgme_set_armor(*out, 1);
    return e;
}

/* The first secret key of email in the context's home that can sign. */
static int s_find_signer(ab_mail_gpg *g, const char *home, const char *email, ab_error *err)
{
    gpgme_key_t k = NULL;
    const char *why = NULL;
    gpgme_error_t e = gpgme_op_keylist_start(g->ctx, email, 1);
    while (!e && !(e = gpgme_op_keylist_next(g->ctx, &k))) {
        const char *u = ab_gpgme_key_unusable(k, true);
        if (!u && !g->key) {
            g->key = k;
            continue;
        }
        why = why ? why : u;
        gpgme_key_unref(k);
    }
    gpgme_op_keylist_end(g->ctx);
    if (e && gpg_err_code(e) != GPG_ERR_EOF)
        return ab_fail(err, AB_E_INTERNAL, "GnuPG.homedir", "listing the keys in %s failed: %s",
                       home, gpgme_strerror(e));
    if (!g->key && why)
        return ab_fail(err, AB_E_INVALID, "GnuPG.email",
                       "the instance's secret key for %s in %s %s", email, home, why);
    if (!g->key)
        return ab_fail(err, AB_E_INVALID, "GnuPG.email",
                       "%s has no secret key for %s: import it (gpg --homedir %s --import KEY.asc) "
                       "or set GnuPG.email to the address of the instance's key",
                       home, email, home);
    return 0;
}

int ab_mail_gpg_open(ab_mail_gpg **out, const char *binary, const char *home, const char *email,
                     const char *passphrase, ab_error *err)
{
    *out = NULL;
    if (!home || !*home || !email || !*email)
        return ab_fail(err, AB_E_INVALID, !home || !*home ? "GnuPG.homedir" : "GnuPG.email",
                       "GnuPG.homedir and GnuPG.email must be set to sign with the instance's "
                       "key");
    ab_mail_gpg *g = calloc(1, sizeof *g);
    if (!g)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    g->binary = binary ? strdup(binary) : NULL;
    g->passphrase = strdup(passphrase ? passphrase : "");
    gpgme_error_t e =
        g->passphrase ? s_ctx(&g->ctx, binary, home, g->passphrase) : gpg_error(GPG_ERR_ENOMEM);
    if (e) {
        ab_mail_gpg_close(&g);
        return ab_fail(err, AB_E_INTERNAL, "GnuPG.binary", "GnuPG cannot be used: %s",
                       gpgme_strerror(e));
    }
    if (s_find_signer(g, home, email, err) < 0) {
        ab_mail_gpg_close(&g);
        return -1;
    }
    *out = g;
    return 0;
}

int ab_mail_gpg_open_unsigned(ab_mail_gpg **out, const char *binary, ab_error *err)
{
    /* no context of its own: each encryption makes one in its throw-away home */
    ab_mail_gpg *g = *out = calloc(1, sizeof *g);
    if (g && binary && !(g->binary = strdup(binary)))
        ab_mail_gpg_close(out);
    return *out ? 0 : ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
}

void ab_mail_gpg_close(ab_mail_gpg **gp)
{
    ab_mail_gpg *g = gp ? *gp : NULL;
    if (!g)
        return;
    if (g->key)
        gpgme_key_unref(g->key);
    if (g->ctx)
        gpgme_release(g->ctx);
    if (g->passphrase) {
        memset(g->passphrase, 0, strlen(g->passphrase));
        free(g->passphrase);
    }
    free(g->binary);
    free(g);
    *gp = NULL;
}

const char *ab_mail_gpg_signer(const ab_mail_gpg *g)
{
    return g && g->key && g->key->fpr ? g->key->fpr : "";
}

/* The bytes of d (owned by gpgme) copied into out. */
static void s_take(gpgme_data_t d, ab_mime_buf *out)
{
    size_t n = 0;
    char *p = gpgme_data_release_and_get_mem(d, &n);
    ab_mime_buf_add(out, p, n);
    if (p) {
        memset(p, 0, n);
        gpgme_free(p);
    }
}

/* A detached armoured signature of part into sig; micalg receives "pgp-<hash>". */
static int s_detached(ab_mail_gpg *g, const char *part, size_t len, ab_mime_buf *sig, char *micalg,
                      size_t mlen, ab_error *err)
{
    gpgme_data_t in = NULL, out = NULL;
    gpgme_signers_clear(g->ctx);
    gpgme_error_t e = gpgme_signers_add(g->ctx, g->key);
    if (!e)
        e = gpgme_data_new_from_mem(&in, part, len, 0);
    if (!e)
        e = gpgme_data_new(&out);
    if (!e)
        e = gpgme_op_sign(g->ctx, in, out, GPGME_SIG_MODE_DETACH);
    gpgme_data_release(in);
    gpgme_sign_result_t r = e ? NULL : gpgme_op_sign_result(g->ctx);
    if (!e && (!r || !r->signatures))
        e = gpg_error(GPG_ERR_GENERAL);
    if (e) {
        gpgme_data_release(out);
        gpgme_error_t code = gpg_err_code(e);
        if (code == GPG_ERR_BAD_PASSPHRASE || code == GPG_ERR_NO_PASSPHRASE ||
            code == GPG_ERR_CANCELED)
            return ab_fail(err, AB_E_INVALID, "GnuPG.password",
                           "GnuPG.password does not unlock the instance's key %s: adminctl "
                           "setting set GnuPG.password PASSPHRASE",
                           ab_mail_gpg_signer(g));
        return ab_fail(err, AB_E_INTERNAL, NULL, "signing with the instance's key %s failed: %s",
                       ab_mail_gpg_signer(g), gpgme_strerror(e));
    }
    const char *h = gpgme_hash_algo_name(r->signatures->hash_algo);
    int n = snprintf(micalg, mlen, "pgp-%s", h ? h : "sha256");
    for (int i = 0; i < n && (size_t)i < mlen; i++)
        micalg[i] = (char)tolower((unsigned char)micalg[i]);
    s_take(out, sig);
    return 0;
}

int ab_mail_gpg_sign(ab_mail_gpg *g, const char *part, size_t part_len, ab_mime_buf *out,
                     ab_error *err)
{
    ab_mime_buf sig = {0};
    char micalg[32], boundary[40];
    if (!g->key)
        return ab_fail(err, AB_E_INTERNAL, NULL, "this GnuPG context has no signing key");
    if (s_detached(g, part, part_len, &sig, micalg, sizeof micalg, err) < 0)
        return -1;
    if (ab_mime_boundary(boundary) < 0) {
        ab_mime_buf_free(&sig);
        return ab_fail(err, AB_E_INTERNAL, NULL, "no randomness for a MIME boundary");
    }
    ab_mime_signed(out, boundary, micalg, part, part_len, sig.data, sig.len);
    ab_mime_buf_free(&sig);
    return out->oom ? ab_fail(err, AB_E_INTERNAL, NULL, "out of memory") : 0;
}

/* --- the recipient's key, in a throw-away home ---------------------------------------- */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A fresh GnuPG home under tmp_root (0700), its path in home[len]. */
static int s_tmp_home(const char *tmp_root, char *home, size_t len, ab_error *err)
{
    const char *root = tmp_root && *tmp_root ? tmp_root : getenv("TMPDIR");
    snprintf(home, len, "%s/adminbus-mailgpg-XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(home))
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot make a temporary GnuPG home in %s: %s",
                       root && *root ? root : "/tmp", strerror(errno));
    return 0;
}

/* Import armour into c's (empty) home; exactly one public key; returns it in *key. */
static int s_import_one(gpgme_ctx_t c, const char *armour, size_t len, gpgme_key_t *key,
                        ab_error *err)
{
    gpgme_data_t d = NULL;
    gpgme_error_t e = gpgme_data_new_from_mem(&d, armour, len, 0);
    if (!e)
        e = gpgme_op_import(c, d);
    gpgme_data_release(d);
    gpgme_import_result_t r = e ? NULL : gpgme_op_import_result(c);
    if (e || !r)
        return ab_fail(err, AB_E_INVALID, "gpgkey", "the user's GnuPG key cannot be read: %s",
                       gpgme_strerror(e));
    if (r->imported != 1 || r->secret_read > 0 || !r->imports || !r->imports->fpr)
        return ab_fail(err, AB_E_INVALID, "gpgkey",
                       "the user's gpgkey must be exactly one OpenPGP public key (it holds %d "
                       "keys): set it again with adminctl user edit",
                       r->considered);
    e = gpgme_get_key(c, r->imports->fpr, key, 0);
    if (e)
        return ab_fail(err, AB_E_INTERNAL, NULL, "GnuPG lost the imported key: %s",
                       gpgme_strerror(e));
    return 0;
}

/* Encrypt plain to the key in armour, in a throw-away home; the armoured result in out. */
static int s_encrypt(ab_mail_gpg *g, const char *tmp_root, const char *armour, size_t alen,
                     const char *plain, size_t plen, ab_mime_buf *out, ab_error *err)
{
    char home[4096];
    if (s_tmp_home(tmp_root, home, sizeof home, err) < 0)
        return -1;
    gpgme_ctx_t c = NULL;
    gpgme_key_t key = NULL;
    gpgme_data_t in = NULL, cipher = NULL;
    int rc = -1;
    gpgme_error_t e = s_ctx(&c, g->binary, home, NULL);
    if (e) {
        ab_fail(err, AB_E_INTERNAL, NULL, "GnuPG cannot be used: %s", gpgme_strerror(e));
        goto done;
    }
    if (s_import_one(c, armour, alen, &key, err) < 0)
        goto done;
    const char *why = ab_gpgme_key_unusable(key, false);
    if (why) {
        ab_fail(err, AB_E_INVALID, "gpgkey",
                "the user's GnuPG key %s %s: nothing was sent (never in clear text); the user "
                "must set a valid key, or remove it",
                key->fpr ? key->fpr : "?", why);
        goto done;
    }
    gpgme_key_t keys[2] = {key, NULL};
    e = gpgme_data_new_from_mem(&in, plain, plen, 0);
    if (!e)
        e = gpgme_data_new(&cipher);
    if (!e)
        e = gpgme_op_encrypt(c, keys, GPGME_ENCRYPT_ALWAYS_TRUST, in, cipher);
    gpgme_encrypt_result_t r = e ? NULL : gpgme_op_encrypt_result(c);
    if (e || (r && r->invalid_recipients)) {
        ab_fail(err, AB_E_INVALID, "gpgkey",
                "encrypting to the user's GnuPG key %s failed: %s; nothing was sent",
                key->fpr ? key->fpr : "?",
                e ? gpgme_strerror(e) : gpgme_strerror(r->invalid_recipients->reason));
        goto done;
    }
    s_take(cipher, out);
    cipher = NULL;
    rc = 0;
done:
    gpgme_data_release(in);
    gpgme_data_release(cipher);
    if (key)
        gpgme_key_unref(key);
    gpgme_release(c);
    nftw(home, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int ab_mail_gpg_encrypt(ab_mail_gpg *g, const char *tmp_root, const char *armour, size_t armour_len,
                        const char *entity, size_t entity_len, ab_mime_buf *out, ab_error *err)
{
    ab_mime_buf cipher = {0};
    char boundary[40];
    int rc = s_encrypt(g, tmp_root, armour, armour_len, entity, entity_len, &cipher, err);
    if (rc == 0 && ab_mime_boundary(boundary) < 0)
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "no randomness for a MIME boundary");
    if (rc == 0)
        ab_mime_encrypted(out, boundary, cipher.data, cipher.len);
    ab_mime_buf_free(&cipher);
    if (rc == 0 && out->oom)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return rc;
}

int ab_mail_gpg_sign_encrypt(ab_mail_gpg *g, const char *tmp_root, const char *armour,
                             size_t armour_len, const char *part, size_t part_len, ab_mime_buf *out,
                             ab_error *err)
{
    /* The signed entity: its own Content-Type header, then the parts (RFC 3156 §6.1). */
    ab_mime_buf signed_entity = {0};
    int rc = ab_mail_gpg_sign(g, part, part_len, &signed_entity, err);
    if (rc == 0)
        rc = ab_mail_gpg_encrypt(g, tmp_root, armour, armour_len, signed_entity.data,
                                 signed_entity.len, out, err);
    ab_mime_buf_free(&signed_entity);
    return rc;
}
