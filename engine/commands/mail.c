/* mail.c — the mail commands (issue 6): `contact` enqueues a mail-out job with its
 * recipients, `mail.test` sends one signed message at once, `mail.status` shows a
 * mail-out's recipients. The sending itself is engine/mail/mail.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "mail/gpgkey.h"
#include "core/handlers.h"
#include "auth/identity.h"
#include "jobs/jobs.h"
#include "mail/mail.h"
#include "core/settings_cache.h"

#define ADDR_MAX 255

/* --- contact ---------------------------------------------------------------------------- */

static int s_subject(ab_ctx *ctx, const char **subject, size_t *len, ab_error *err)
{
    *subject = ab_arg_str(ctx, "subject", len);
    if (!*subject)
        return ab_fail(err, AB_E_INVALID, "subject", "give the subject (one line of text)");
    if (!ab_mime_header_text_ok(*subject, *len))
        return ab_fail(err, AB_E_INVALID, "subject",
                       "the subject must be one line of text: no line breaks or control "
                       "characters");
    return 0;
}

/* The one user of --user: id and address, by e-mail address or id. */
static int s_find_user(ab_ctx *ctx, const char *ref, size_t len, uint32_t *id, uint32_t *org,
                       bool *site_admin, char *email, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, ref, len);
    ab_rows rows = {0};
    const char *sql = ab_ref_is_id(ref, len)
                          ? "SELECT u.id, u.email, u.org_id, r.perm_site_admin FROM users u "
                            "JOIN roles r ON r.id = u.role_id WHERE u.id = ?"
                          : "SELECT u.id, u.email, u.org_id, r.perm_site_admin FROM users u "
                            "JOIN roles r ON r.id = u.role_id WHERE u.email = ?";
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int found = ab_rows_next(&rows);
    if (found == 1) {
        *id = (uint32_t)ab_rows_int(&rows, 0);
        snprintf(email, ADDR_MAX + 1, "%s", ab_rows_str(&rows, 1, NULL));
        *org = (uint32_t)ab_rows_int(&rows, 2);
        *site_admin = ab_rows_int(&rows, 3) != 0;
    }
    ab_rows_close(&rows);
    if (found != 1)
        return ab_user_not_found(ctx->who, ref, len, err);
    if (!ab_mime_address_ok(email))
        return ab_fail(err, AB_E_INVALID, "user",
                       "the address of user %u (%s) cannot be mailed: correct it with adminctl "
                       "user edit",
                       *id, email);
    return 0;
}

/* The job's payload {kind, subject, message}; the caller destroys it. */
static void s_payload(msgpack_sbuffer *sb, const char *kind, const char *subject, size_t slen,
                      const char *message, size_t mlen)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    ab_pack_kv_cstr(&pk, "kind", kind);
    ab_pack_kv_str(&pk, "subject", subject, slen);
    ab_pack_kv_str(&pk, "message", message, mlen);
}

/* The recipients rows of job id: the one user, or every enabled user. */
static int s_add_recipients(ab_ctx *ctx, uint64_t job, uint32_t user, const char *email,
                            uint64_t *count, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)job);
    if (email) {
        ab_param_int(&p, user);
        ab_param_cstr(&p, email);
        return ab_db_run(ctx->db,
                         "INSERT INTO email_recipients (job_id, user_id, email, date_created, "
                         "date_modified) VALUES (?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                         &p, NULL, count, err);
    }
    return ab_db_run(ctx->db,
                     "INSERT INTO email_recipients (job_id, user_id, email, date_created, "
                     "date_modified) SELECT ?, id, email, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) "
                     "FROM users WHERE disabled = 0 ORDER BY id",
                     &p, NULL, count, err);
}

/* The one recipient row of a future user: no user id, the key given with the command. */
static int s_add_future(ab_ctx *ctx, uint64_t job, const char *email, const ab_gpgkey_arg *key,
                        uint64_t *count, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)job);
    ab_param_cstr(&p, email);
    ab_param_str(&p, key->armour, key->armour ? key->len : 0);
    return ab_db_run(ctx->db,
                     "INSERT INTO email_recipients (job_id, user_id, email, gpgkey, date_created, "
                     "date_modified) VALUES (?, NULL, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                     &p, NULL, count, err);
}

/* Enqueue an email job of kind (payload {kind, subject, message}) for the one user (email),
 * every enabled user (email NULL) or a future user (future: email and the key given, if
 * any), audited and announced; the reply names the job. */
static int s_enqueue_to(ab_ctx *ctx, const char *kind, const char *subject, size_t slen,
                        const char *message, size_t mlen, uint32_t user_id, const char *email,
                        const ab_gpgkey_arg *future, msgpack_packer *pk, ab_error *err)
{
    const ab_job_type *t = ab_job_type_find("email", 5);
    if (!t)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no job type email in this build");
    msgpack_sbuffer payload;
    s_payload(&payload, kind, subject, slen, message, mlen);
    char input[300];
    snprintf(input, sizeof input, "%s subject=%.*s to=%s%s%s", kind, (int)(slen > 200 ? 200 : slen),
             subject, email ? email : "all users", future ? " (not a user)" : "",
             future && future->armour ? " key=" : "");
    if (future && future->armour)
        snprintf(input + strlen(input), sizeof input - strlen(input), "%s", future->fpr);
    uint64_t id = 0, count = 0;
    int rc = ab_job_enqueue_for(ctx, t, &payload, input, &id, err);
    if (rc < 0 || (future ? s_add_future(ctx, id, email, future, &count, err)
                          : s_add_recipients(ctx, id, user_id, email, &count, err)) < 0)
        return -1;
    char extra[64];
    snprintf(extra, sizeof extra, "recipients () => (%llu)", (unsigned long long)count);
    if (ab_job_queued_reply(ctx, pk, id, t, input, extra, 1, err) < 0)
        return -1;
    ab_pack_kv_int(pk, "recipients", (int64_t)count);
    return 0;
}

static int s_enqueue(ab_ctx *ctx, const char *kind, const char *subject, size_t slen,
                     const char *message, size_t mlen, uint32_t user_id, const char *email,
                     msgpack_packer *pk, ab_error *err)
{
    return s_enqueue_to(ctx, kind, subject, slen, message, mlen, user_id, email, NULL, pk, err);
}

/* --future ADDRESS: an address that can be mailed and is nobody's account yet. */
static int s_future_address(ab_ctx *ctx, const char *a, size_t len, char *email, ab_error *err)
{
    snprintf(email, ADDR_MAX + 1, "%.*s", (int)(len > ADDR_MAX ? ADDR_MAX : len), a);
    if (len > ADDR_MAX || strlen(email) != len || !ab_mime_address_ok(email))
        return ab_fail(err, AB_E_INVALID, "future",
                       "future must be one plain e-mail address (local@domain, no spaces, "
                       "quotes, brackets or line breaks)");
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, email);
    int64_t users = 0;
    if (ab_db_scalar(ctx->db, "SELECT COUNT(*) FROM users WHERE email = ?", &p, &users, err) < 0)
        return -1;
    if (users)
        return ab_fail(err, AB_E_CONFLICT, "future",
                       "%s is a user already: write with adminctl contact --user %s (their own "
                       "key is used)",
                       email, email);
    return 0;
}

/* The welcome text for a future user: MISP.newUserText filled in now (the job sends it as
 * it is); there is no account, so no password: $password says so. Caller frees. */
static char *s_future_welcome(const char *email, ab_error *err)
{
    char *tmpl = ab_settings_get("MISP.newUserText");
    if (!tmpl) {
        ab_fail(err, AB_E_INVALID, "welcome",
                "MISP.newUserText is not set: set it, or give message");
        return NULL;
    }
    char *misp = ab_settings_get("MISP.baseurl"), *org = ab_settings_get("MISP.org"),
         *contact = ab_settings_get("MISP.contact");
    ab_mail_fill v = {"(none yet: it comes with your account)", email, misp, org, contact};
    ab_mime_buf out = {0};
    ab_mail_fill_text(tmpl, &v, &out);
    ab_mime_buf_add(&out, "", 1); /* the NUL */
    free(tmpl);
    free(misp);
    free(org);
    free(contact);
    if (out.oom) {
        ab_mime_buf_free(&out);
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    return out.data; /* ab_mime_buf owns malloc'd memory */
}

/* contact --future ADDRESS [--gpgkey-file KEY.asc] [--welcome]. */
static int s_contact_future(ab_ctx *ctx, const char *future, size_t flen, const char *subject,
                            size_t slen, const char *message, size_t mlen, bool welcome,
                            msgpack_packer *pk, ab_error *err)
{
    char email[ADDR_MAX + 1];
    ab_gpgkey_arg key;
    if (s_future_address(ctx, future, flen, email, err) < 0 ||
        ab_gpgkey_from_args(ctx, &key, err) < 0)
        return -1;
    char *text = NULL;
    if (!message && welcome) {
        if (!(text = s_future_welcome(email, err)))
            return -1;
        message = text;
        mlen = strlen(text);
    }
    if (!subject && welcome) {
        subject = "New user registration";
        slen = strlen(subject);
    }
    int rc = s_enqueue_to(ctx, "contact", subject, slen, message, mlen, 0, email, &key, pk, err);
    free(text);
    return rc;
}

int ab_contact(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t slen = 0, mlen = 0, ulen = 0, flen = 0, klen = 0;
    const char *subject = ab_arg_str(ctx, "subject", &slen);
    const char *message = ab_arg_str(ctx, "message", &mlen);
    const char *user = ab_arg_str(ctx, "user", &ulen), *future = ab_arg_str(ctx, "future", &flen);
    bool all = ab_arg_bool(ctx, "all", false), welcome = ab_arg_bool(ctx, "welcome", false);
    bool key = ab_arg_str(ctx, "gpgkey", &klen) != NULL;
    if ((user != NULL) + (future != NULL) + all != 1)
        return ab_fail(err, AB_E_INVALID,
                       future ? "future"
                       : all  ? "all"
                              : "user",
                       "give one of user (one user), all (every enabled user) or future (an "
                       "address that is not a user yet)");
    if (!future && (key || welcome))
        return ab_fail(err, AB_E_INVALID, key ? "gpgkey" : "welcome",
                       "%s goes with future only (users' keys are their own: adminctl user edit "
                       "--gpgkey-file; a user's welcome: adminctl user reset-password "
                       "--first-time)",
                       key ? "gpgkey" : "welcome");
    if ((subject || !welcome) && s_subject(ctx, &subject, &slen, err) < 0)
        return -1;
    if (!message && !welcome)
        return ab_fail(err, AB_E_INVALID, "message", "give the message (or, with future, welcome)");
    if (future)
        return s_contact_future(ctx, future, flen, subject, slen, message, mlen, welcome, pk, err);
    uint32_t user_id = 0, org_id = 0;
    bool site_admin = false;
    char email[ADDR_MAX + 1] = "";
    if (user && s_find_user(ctx, user, ulen, &user_id, &org_id, &site_admin, email, err) < 0)
        return -1;
    return s_enqueue(ctx, "contact", subject, slen, message, mlen, user_id, user ? email : NULL, pk,
                     err);
}

/* --- user.gpg_fetch --------------------------------------------------------------------- */

/* Enqueue the gpgkey_fetch job (mail_keyfetch.c): the network is not waited on here, inside
 * the command's transaction. */
int ab_user_gpg_fetch(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t ulen = 0;
    const char *user = ab_arg_str(ctx, "user", &ulen);
    uint32_t user_id = 0, org_id = 0;
    bool site_admin = false;
    char email[ADDR_MAX + 1] = "";
    if (s_find_user(ctx, user, ulen, &user_id, &org_id, &site_admin, email, err) < 0 ||
        ab_may_act_on_user(ctx->cmd, ctx->who, user_id, org_id, site_admin, err) < 0)
        return -1;
    if (ab_settings_bool("GnuPG.key_fetching_disabled"))
        return ab_fail(err, AB_E_CONFLICT, "GnuPG.key_fetching_disabled",
                       "key fetching is turned off (GnuPG.key_fetching_disabled is true): give "
                       "the key with adminctl user edit %s --gpgkey-file KEY.asc",
                       email);
    const ab_job_type *t = ab_job_type_find("gpgkey_fetch", 12);
    if (!t)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no job type gpgkey_fetch in this build");
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &payload, msgpack_sbuffer_write);
    msgpack_pack_map(&ppk, 2);
    ab_pack_kv_int(&ppk, "user_id", user_id);
    ab_pack_kv_cstr(&ppk, "email", email);
    char input[300];
    snprintf(input, sizeof input, "user=%u %s", user_id, email);
    uint64_t id = 0;
    int rc = ab_job_enqueue_for(ctx, t, &payload, input, &id, err);
    if (rc < 0 || ab_job_queued_reply(ctx, pk, id, t, input, NULL, 1, err) < 0)
        return -1;
    ab_pack_kv_cstr(pk, "user", email);
    return 0;
}

/* --- user.reset_password ------------------------------------------------------------------ */

int ab_user_reset_password(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t ulen = 0, mlen = 0;
    const char *user = ab_arg_str(ctx, "user", &ulen), *message = ab_arg_str(ctx, "message", &mlen);
    bool first = ab_arg_bool(ctx, "first_time", false);
    uint32_t user_id = 0, org_id = 0;
    bool site_admin = false;
    char email[ADDR_MAX + 1] = "";
    if (s_find_user(ctx, user, ulen, &user_id, &org_id, &site_admin, email, err) < 0 ||
        ab_may_act_on_user(ctx->cmd, ctx->who, user_id, org_id, site_admin, err) < 0)
        return -1;
    char *text = NULL;
    if (!message) { /* the setting's text, as it is now; the job fills in the placeholders */
        text = ab_settings_get(first ? "MISP.newUserText" : "MISP.passwordResetText");
        if (!text)
            return ab_fail(err, AB_E_INVALID, first ? "first_time" : "message",
                           "%s is not set: set it, or give message",
                           first ? "MISP.newUserText" : "MISP.passwordResetText");
        message = text;
        mlen = strlen(text);
    }
    const char *subject = first ? "New user registration" : "Password reset";
    int rc = s_enqueue(ctx, first ? "welcome" : "password_reset", subject, strlen(subject), message,
                       mlen, user_id, email, pk, err);
    free(text);
    return rc;
}

/* --- mail.test -------------------------------------------------------------------------- */

/* The gpgkey of the user with address to, if there is one (caller frees). */
static int s_user_key(ab_ctx *ctx, const char *to, uint32_t *user_id, char **key, size_t *klen,
                      ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, to);
    ab_rows rows = {0};
    *key = NULL;
    *user_id = 0;
    if (ab_db_query(ctx->db, "SELECT id, gpgkey FROM users WHERE email = ?", &p, &rows, err) < 0)
        return -1;
    if (ab_rows_next(&rows) == 1) {
        const char *k = ab_rows_str(&rows, 1, klen);
        *user_id = (uint32_t)ab_rows_int(&rows, 0);
        *key = k && *klen ? strndup(k, *klen) : NULL;
    }
    ab_rows_close(&rows);
    return 0;
}

/* Send the composed test message and describe the outcome in the reply or *err. */
static int s_test_send(ab_ctx *ctx, ab_mail_conf *conf, const char *to, uint32_t user_id,
                       const ab_mime_buf *msg, const char *msgid, bool enc, msgpack_packer *pk,
                       ab_error *err)
{
    if (conf->smtp.timeout_s > 10)
        conf->smtp.timeout_s = 10; /* this runs inside an apply loop */
    ab_smtp_result res;
    ab_smtp_send(&conf->smtp, conf->from, to, msg->data, msg->len, &res);
    if (res.outcome == AB_SMTP_LOGIN)
        return ab_fail(err, AB_E_INVALID, "Email.password",
                       "the SMTP server %s:%d refused our login as '%.60s': %d %.120s; check "
                       "Email.username and Email.password",
                       conf->smtp.host, conf->smtp.port,
                       conf->smtp.username ? conf->smtp.username : "", res.code, res.text);
    if (res.outcome != AB_SMTP_SENT)
        return ab_fail(err, res.outcome == AB_SMTP_TEMPORARY ? AB_E_UNAVAILABLE : AB_E_INVALID,
                       res.outcome == AB_SMTP_TEMPORARY ? "Email.host" : "to",
                       "the SMTP server %s:%d did not take the message: %d %.160s", conf->smtp.host,
                       conf->smtp.port, res.code, res.text);
    char title[400], change[600];
    snprintf(title, sizeof title, "Test email to %s sent%s", to, enc ? ", encrypted" : "");
    snprintf(change, sizeof change, "message_id () => (%s), smtp () => (%d %.200s)", msgid,
             res.code, res.text);
    if (ab_ctx_audit(ctx, "User", user_id, "email", title, change) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, conf->sign ? 7 : 8);
    ab_pack_kv_cstr(pk, "to", to);
    ab_pack_kv_bool(pk, "sent", true);
    ab_pack_kv_int(pk, "code", res.code);
    ab_pack_kv_cstr(pk, "reply", res.text);
    ab_pack_kv_cstr(pk, "message_id", msgid);
    ab_pack_kv_bool(pk, "encrypted", enc);
    ab_pack_kv_bool(pk, "signed", conf->sign);
    if (!conf->sign)
        ab_pack_kv_cstr(pk, "unsigned", conf->unsigned_why);
    return 0;
}

/* A setting stands in the way (MISP.email unset, no instance key …): the instance's state,
 * not the command, is at fault — conflict, the field naming the setting to fix. */
static int s_setting_conflict(ab_error *err)
{
    if (err->code == AB_E_INVALID && strchr(err->field, '.'))
        err->code = AB_E_CONFLICT;
    return -1;
}

int ab_mail_test(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *arg = ab_arg_str(ctx, "to", &len);
    char to[ADDR_MAX + 1];
    snprintf(to, sizeof to, "%.*s", (int)(len > ADDR_MAX ? ADDR_MAX : len), arg);
    if (len > ADDR_MAX || !ab_mime_address_ok(to))
        return ab_fail(err, AB_E_INVALID, "to",
                       "not an address we can send to: local@domain, without spaces, quotes or "
                       "line breaks");
    ab_mail_conf conf;
    if (ab_mail_conf_load(&conf, ctx->engine->secret, err) < 0)
        return s_setting_conflict(err);
    ab_mail_gpg *gpg = NULL;
    uint32_t user_id = 0;
    char *key = NULL, msgid[300];
    size_t klen = 0;
    ab_mime_buf msg = {0};
    int rc = conf.disabled ? ab_fail(err, AB_E_CONFLICT, "MISP.disable_emailing",
                                     "e-mail is turned off (MISP.disable_emailing is true)")
                           : 0;
    if (rc == 0)
        rc = s_user_key(ctx, to, &user_id, &key, &klen, err);
    if (rc == 0 && ab_mail_gpg_from_conf(&conf, &gpg, err) < 0)
        rc = s_setting_conflict(err);
    if (rc == 0) {
        char body[300];
        snprintf(body, sizeof body,
                 "This is a test message from adminbus (adminctl mail test), %s%s%s.",
                 conf.sign ? "signed with the instance's GnuPG key" : "not signed: ",
                 conf.sign ? "" : conf.unsigned_why, key ? ", encrypted to your key" : "");
        /* job 0 and the time: each test message has its own Message-ID */
        char id_key[ADDR_MAX + 40];
        snprintf(id_key, sizeof id_key, "test:%lld:%s", (long long)ctx->now_ms, to);
        ab_mail_msg m = {0, to, id_key, "Test message", body, key, klen, ctx->now_ms};
        rc = ab_mail_compose(&conf, gpg, &m, &msg, msgid, sizeof msgid, err);
    }
    if (rc == 0)
        rc = s_test_send(ctx, &conf, to, user_id, &msg, msgid, key != NULL, pk, err);
    ab_mime_buf_free(&msg);
    free(key);
    ab_mail_gpg_close(&gpg);
    ab_mail_conf_free(&conf);
    return rc;
}

/* --- mail.status ------------------------------------------------------------------------ */

/* A recipient still to send (r) of a mail-out (j) that has ended failed or cancelled gets
 * nothing unless the job is retried: mail.status shows it failed, with the job's reason.
 * The row itself keeps its state, so that `job retry` goes on where the job stopped. */
#define S_STOPPED                                                                                  \
    "(j.state IN ('failed', 'cancelled') AND r.state IN ('queued', 'sending', 'retrying'))"
#define S_STATE "IF(" S_STOPPED ", 'failed', r.state)"
#define S_ERROR                                                                                    \
    "IF(" S_STOPPED ", CONCAT('not sent: the mail-out ', IF(j.state = 'cancelled', 'was "          \
    "cancelled', CONCAT('failed: ', COALESCE(j.last_error, '?')))), r.error)"

static void s_pack_recipient(msgpack_packer *pk, const ab_rows *rows, const void *arg)
{
    (void)arg;
    static const char *const names[] = {"email",      "state",     "attempts", "encrypted",
                                        "message_id", "smtp_code", "error",    "date_sent"};
    msgpack_pack_map(pk, 8);
    for (int c = 0; c < 8; c++) {
        size_t len = 0;
        const char *v = ab_rows_str(rows, c, &len);
        if (c == 2 || c == 3 || (c == 5 && v))
            ab_pack_kv_int(pk, names[c], ab_rows_int(rows, c));
        else
            ab_pack_kv_str(pk, names[c], v, len);
    }
}

/* "counts" {state: n}, "job" {state, message} and "notice": what an admin must know of
 * the mail-out (recipients that failed for good), or nil. */
static int s_pack_summary(ab_ctx *ctx, msgpack_packer *pk, int64_t job, ab_error *err)
{
    static const char *const states[] = {"queued", "sending", "sent", "retrying", "failed"};
    int64_t count[5] = {0}, stopped = 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, job);
    ab_rows rows = {0};
    if (ab_db_query(ctx->db,
                    "SELECT " S_STATE ", COUNT(*), SUM(" S_STOPPED ") FROM email_recipients r "
                    "JOIN jobs j ON j.id = r.job_id WHERE r.job_id = ? GROUP BY 1",
                    &p, &rows, err) < 0)
        return -1;
    while (ab_rows_next(&rows) == 1)
        for (int i = 0; i < 5; i++)
            if (strcmp(ab_rows_str(&rows, 0, NULL), states[i]) == 0) {
                count[i] = ab_rows_int(&rows, 1);
                stopped += ab_rows_int(&rows, 2);
            }
    ab_rows_close(&rows);
    ab_pack_cstr(pk, "counts");
    msgpack_pack_map(pk, 5);
    for (int i = 0; i < 5; i++)
        ab_pack_kv_int(pk, states[i], count[i]);
    if (ab_db_query(ctx->db, "SELECT state, message FROM jobs WHERE id = ?", &p, &rows, err) < 0)
        return -1;
    ab_pack_cstr(pk, "job");
    msgpack_pack_map(pk, 2);
    if (ab_rows_next(&rows) == 1) {
        size_t ml = 0;
        const char *st = ab_rows_str(&rows, 0, NULL), *m = ab_rows_str(&rows, 1, &ml);
        ab_pack_kv_cstr(pk, "state", st ? st : "");
        ab_pack_kv_str(pk, "message", m, ml);
    } else {
        ab_pack_kv_cstr(pk, "state", "");
        ab_pack_kv_str(pk, "message", NULL, 0);
    }
    ab_rows_close(&rows);
    ab_pack_cstr(pk, "notice");
    if (count[4] == 0) {
        msgpack_pack_nil(pk);
        return 0;
    }
    char notice[600];
    int n = 0;
    if (count[4] > stopped)
        n = snprintf(notice, sizeof notice,
                     "%lld recipient(s) failed for good and were sent nothing (the error column "
                     "says why; audit: adminctl log search --action email_failed)",
                     (long long)(count[4] - stopped));
    if (stopped)
        snprintf(notice + n, sizeof notice - (size_t)n,
                 "%s%lld recipient(s) were sent nothing because the mail-out stopped (the error "
                 "column says why): fix that, then adminctl job retry %lld sends to them",
                 n ? "; " : "", (long long)stopped, (long long)job);
    ab_pack_cstr(pk, notice);
    return 0;
}

int ab_mail_status(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    int64_t job = ab_arg_int(ctx, "job", 0), limit = ab_arg_int(ctx, "limit", 100);
    int64_t page = ab_arg_int(ctx, "page", 1), is_email = 0, total = 0;
    size_t slen = 0;
    const char *state = ab_arg_str(ctx, "state", &slen);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, job);
    if (ab_db_scalar(ctx->db, "SELECT COUNT(*) FROM jobs WHERE id = ? AND job_type = 'email'", &p,
                     &is_email, err) < 0)
        return -1;
    if (!is_email)
        return ab_fail(err, AB_E_NOT_FOUND, "job", "no email job %lld", (long long)job);
    ab_params_init(&p);
    ab_param_int(&p, job);
    ab_param_str(&p, state, slen);
    ab_param_str(&p, state, slen);
    if (ab_db_scalar(ctx->db,
                     "SELECT COUNT(*) FROM email_recipients r JOIN jobs j ON j.id = r.job_id "
                     "WHERE r.job_id = ? AND (? IS NULL OR " S_STATE " = ?)",
                     &p, &total, err) < 0)
        return -1;
    ab_param_int(&p, limit);
    ab_param_int(&p, (page - 1) * limit);
    ab_rows rows = {0};
    if (ab_db_query(ctx->db,
                    "SELECT r.email, " S_STATE ", r.attempts, r.encrypted, r.message_id, "
                    "r.smtp_code, " S_ERROR ", DATE_FORMAT(r.date_sent, "
                    "'%Y-%m-%dT%H:%i:%s.%fZ') FROM email_recipients r JOIN jobs j ON j.id = "
                    "r.job_id WHERE r.job_id = ? AND (? IS NULL OR " S_STATE " = ?) ORDER BY "
                    "r.id LIMIT ? OFFSET ?",
                    &p, &rows, err) < 0)
        return -1;
    /* The page, then the admin's notice: the counts per state, the job's state and last
     * message, and a sentence when recipients failed for good. */
    msgpack_sbuffer items;
    msgpack_sbuffer_init(&items);
    msgpack_packer ipk;
    msgpack_packer_init(&ipk, &items, msgpack_sbuffer_write);
    uint32_t n = 0;
    while (ab_rows_next(&rows) == 1) {
        s_pack_recipient(&ipk, &rows, NULL);
        n++;
    }
    ab_rows_close(&rows);
    msgpack_pack_map(pk, 7);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, n);
    pk->callback(pk->data, items.data, items.size);
    msgpack_sbuffer_destroy(&items);
    ab_pack_kv_int(pk, "total", total);
    ab_pack_kv_int(pk, "page", page);
    ab_pack_kv_int(pk, "limit", limit);
    return s_pack_summary(ctx, pk, job, err);
}
