/* otp.c — the manual's "Administration of TOTP/HOTP": otp.enrol and otp.delete.
 *
 * Enrolment makes a 20-byte seed, stores it sealed (auth/otp.h: AES-256-GCM under a key derived
 * from the server secret, bound to the user id) in users.totp with the kind and a fresh
 * counter / last step, and returns the base32 secret and the otpauth:// URI once: the stored
 * copy of the reply (command ids) has both masked. A user with an OTP must delete it before
 * enrolling again, so a stolen session cannot silently replace a second factor.
 *
 * Deleting is for administrators (site admins, and org admins for their own organisation's
 * users), as in MISP, where users cannot remove their own second factor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "auth/identity.h"
#include "auth/otp.h"
#include "core/settings_cache.h"

typedef struct {
    int64_t id, org_id;
    bool site_admin, enrolled;
    char email[1024];
    char kind[8];
} s_target;

/* The user named by "user" (id or e-mail), locked. */
static int s_find(ab_ctx *ctx, s_target *t, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "user", &len);
    bool by_id = ab_ref_is_id(ref, len);
    ab_params p;
    ab_params_init(&p);
    ab_param_ref(&p, ref, len);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    by_id ? "SELECT u.id, u.org_id, r.perm_site_admin, u.totp IS NOT NULL, "
                            "u.email, u.otp_kind FROM users u JOIN roles r ON r.id = u.role_id "
                            "WHERE u.id = ? FOR UPDATE"
                          : "SELECT u.id, u.org_id, r.perm_site_admin, u.totp IS NOT NULL, "
                            "u.email, u.otp_kind FROM users u JOIN roles r ON r.id = u.role_id "
                            "WHERE u.email = ? FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        t->id = ab_rows_int(&rows, 0);
        t->org_id = ab_rows_int(&rows, 1);
        t->site_admin = ab_rows_int(&rows, 2) != 0;
        t->enrolled = ab_rows_int(&rows, 3) != 0;
        snprintf(t->email, sizeof t->email, "%s", ab_rows_str(&rows, 4, NULL));
        const char *kind = ab_rows_str(&rows, 5, NULL);
        snprintf(t->kind, sizeof t->kind, "%s", kind ? kind : "");
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_user_not_found(ctx->who, ref, len, err);
    return ab_may_act_on_user(ctx->cmd, ctx->who, (uint32_t)t->id, (uint32_t)t->org_id,
                              t->site_admin, err);
}

static int s_audit(ab_ctx *ctx, const s_target *t, const char *action, const char *old,
                   const char *now)
{
    char title[1200];
    snprintf(title, sizeof title, "User (%lld): %s", (long long)t->id, t->email);
    ab_change c;
    ab_change_init(&c);
    ab_change_add(&c, "otp", old, strlen(old), now, strlen(now));
    int rc = ab_ctx_audit(ctx, "User", (uint64_t)t->id, action, title, ab_change_text(&c));
    ab_change_free(&c);
    return rc;
}

/* Store the sealed seed; the base32 text and URI go to *b32 and *uri (caller frees). */
static int s_store_seed(ab_ctx *ctx, const s_target *t, bool hotp, char **b32, char **uri,
                        ab_error *err)
{
    uint8_t seed[AB_OTP_SECRET_LEN];
    if (ab_otp_secret_new(seed) < 0)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "no randomness for an OTP seed");
    char *sealed = ab_otp_seal(ctx->engine->secret, (uint64_t)t->id, seed, sizeof seed);
    *b32 = ab_otp_base32(seed, sizeof seed);
    memset(seed, 0, sizeof seed);
    char *issuer = ab_settings_get("Security.otp_issuer");
    *uri = *b32 ? ab_otp_uri(hotp ? AB_OTP_HOTP : AB_OTP_TOTP, issuer && *issuer ? issuer : "MISP",
                             t->email, *b32, 0)
                : NULL;
    free(issuer);
    int rc = 0;
    if (!sealed || !*b32 || !*uri) {
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "the OTP seed could not be prepared");
    } else {
        ab_params p;
        ab_params_init(&p);
        ab_param_cstr(&p, sealed);
        ab_param_cstr(&p, hotp ? "hotp" : "totp");
        ab_param_int(&p, ctx->now_ms);
        ab_param_int(&p, t->id);
        rc = ab_db_run(ctx->db,
                       "UPDATE users SET totp = ?, otp_kind = ?, hotp_counter = 0, "
                       "totp_last_step = -1, date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                       &p, NULL, NULL, err);
    }
    free(sealed);
    return rc;
}

static void s_wipe(char *s)
{
    if (s)
        ab_otp_free(s, strlen(s));
}

int ab_otp_enrol(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_target t;
    if (s_find(ctx, &t, err) < 0)
        return -1;
    if (t.enrolled)
        return ab_fail(err, AB_E_CONFLICT, "user",
                       "%s already has an OTP (%s): an administrator must run otp delete %s "
                       "before a new one can be enrolled",
                       t.email, t.kind, t.email);
    if (!ctx->engine || !ctx->engine->secret)
        return ab_fail(err, AB_E_INTERNAL, NULL, "this engine has no server secret");
    bool hotp = ab_arg_bool(ctx, "hotp", false);
    char *b32 = NULL, *uri = NULL;
    int rc = s_store_seed(ctx, &t, hotp, &b32, &uri, err);
    if (rc == 0 && s_audit(ctx, &t, "otp_enrol", "", hotp ? "hotp" : "totp") < 0)
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    if (rc == 0) {
        msgpack_pack_map(pk, 7);
        ab_pack_kv_int(pk, "user_id", t.id);
        ab_pack_kv_cstr(pk, "email", t.email);
        ab_pack_kv_cstr(pk, "kind", hotp ? "hotp" : "totp");
        ab_pack_kv_int(pk, "digits", AB_OTP_DIGITS);
        ab_pack_kv_int(pk, hotp ? "counter" : "period", hotp ? 0 : AB_OTP_PERIOD);
        /* The two secrets last: both are masked in the stored reply. */
        ab_pack_kv_cstr(pk, "secret", b32);
        const msgpack_sbuffer *buf = pk->data;
        ctx->secret_len = strlen(b32);
        ctx->secret_at = buf->size - ctx->secret_len;
        ab_pack_kv_cstr(pk, "uri", uri);
        ctx->secret2_len = strlen(uri);
        ctx->secret2_at = buf->size - ctx->secret2_len;
    }
    s_wipe(b32);
    s_wipe(uri);
    return rc;
}

int ab_otp_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_target t;
    if (s_find(ctx, &t, err) < 0)
        return -1;
    if (!t.enrolled)
        return ab_fail(err, AB_E_NOT_FOUND, "user", "%s has no OTP to delete", t.email);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, t.id);
    if (ab_db_run(ctx->db,
                  "UPDATE users SET totp = NULL, otp_kind = NULL, hotp_counter = 0, "
                  "totp_last_step = -1, date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                  &p, NULL, NULL, err) < 0)
        return -1;
    if (s_audit(ctx, &t, "otp_delete", t.kind, "") < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "user_id", t.id);
    ab_pack_kv_cstr(pk, "email", t.email);
    ab_pack_kv_cstr(pk, "deleted", t.kind);
    return 0;
}
