/* mail.c — the sending configuration, message composition and the `email` job (mail.h). */
#include "mail/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/audit.h"
#include "wire/config.h"
#include "wire/envelope.h"
#include "wire/log.h"
#include "auth/password.h"
#include "auth/seal.h"
#include "auth/session.h"
#include "core/settings_cache.h"

#define CHUNK         64 /* recipients read at a time */
#define ERROR_MAX     1000
#define MSGID_MAX     300
#define TEST_TIMEOUT  10 /* seconds: mail.test runs inside an apply loop */
#define EMAIL_ADDRMAX 255

/* --- configuration ---------------------------------------------------------------------- */

static void s_wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

void ab_mail_conf_free(ab_mail_conf *c)
{
    free(c->from);
    free(c->from_name);
    free(c->org);
    free(c->contact);
    free(c->baseurl);
    free(c->gpg_home);
    free(c->gpg_email);
    free(c->gpg_binary);
    s_wipe_free(c->gpg_password);
    free(c->smtp_host);
    free(c->smtp_user);
    s_wipe_free(c->smtp_password);
    *c = (ab_mail_conf){0};
}

/* As MISP, GnuPG.sign false sends unsigned. An instance without a key (GnuPG.homedir or
 * GnuPG.email unset) sends unsigned too, rather than nothing (diagnostics says so); a key
 * that is set but cannot sign fails the mail: that is a fault to fix, not to hide. */
static const char *s_unsigned_why(const ab_mail_conf *c)
{
    bool home = c->gpg_home && *c->gpg_home, email = c->gpg_email && *c->gpg_email;
    if (!ab_settings_bool("GnuPG.sign"))
        return "GnuPG.sign is false";
    return home && email     ? NULL
           : !home && !email ? "GnuPG.homedir and GnuPG.email are not set"
           : !home           ? "GnuPG.homedir is not set"
                             : "GnuPG.email is not set";
}

int ab_mail_conf_load(ab_mail_conf *c, const ab_secret *key, ab_error *err)
{
    *c = (ab_mail_conf){0};
    c->from = ab_settings_get("MISP.email");
    c->from_name = ab_settings_get("MISP.email_from_name");
    c->org = ab_settings_get("MISP.org");
    c->contact = ab_settings_get("MISP.contact");
    c->baseurl = ab_settings_get("MISP.baseurl");
    c->gpg_home = ab_settings_get("GnuPG.homedir");
    c->gpg_email = ab_settings_get("GnuPG.email");
    c->gpg_binary = ab_settings_get("GnuPG.binary");
    c->disabled = ab_settings_bool("MISP.disable_emailing");
    c->only_encrypted = ab_settings_bool("GnuPG.onlyencrypted");
    c->unsigned_why = s_unsigned_why(c);
    c->sign = !c->unsigned_why;
    c->obscure = ab_settings_bool("GnuPG.obscure_subject");
    c->smtp_host = ab_settings_get("Email.host");
    c->smtp_user = ab_settings_get("Email.username");
    char *tls = ab_settings_get("Email.tls");
    int mode = ab_smtp_tls_from_name(tls);
    free(tls);
    c->smtp = (ab_smtp_conf){
        .host = c->smtp_host ? c->smtp_host : "localhost",
        .port = (int)ab_settings_int("Email.port", 25),
        .tls = mode < 0 ? AB_SMTP_TLS_STARTTLS : (ab_smtp_tls)mode,
        .tls_verify = ab_settings_bool("Email.tls_verify"),
        .username = c->smtp_user,
        .timeout_s = (long)ab_settings_int("Email.timeout", 30),
    };
    if (!key || ab_settings_secret("GnuPG.password", key, &c->gpg_password) < 0 ||
        ab_settings_secret("Email.password", key, &c->smtp_password) < 0) {
        ab_mail_conf_free(c);
        return ab_fail(err, AB_E_INVALID, "GnuPG.password",
                       "GnuPG.password or Email.password cannot be opened with this server's "
                       "secret: set them again (adminctl setting set NAME VALUE)");
    }
    c->smtp.password = c->smtp_password;
    if (!c->from || !ab_mime_address_ok(c->from)) {
        ab_mail_conf_free(c);
        return ab_fail(err, AB_E_INVALID, "MISP.email",
                       "MISP.email (the sender of every e-mail) is not set to an address we can "
                       "send from: adminctl setting set MISP.email ADDRESS");
    }
    c->smtp.helo_domain = strchr(c->from, '@') + 1;
    return 0;
}

int ab_mail_gpg_from_conf(const ab_mail_conf *c, ab_mail_gpg **g, ab_error *err)
{
    if (!c->sign)
        return ab_mail_gpg_open_unsigned(g, c->gpg_binary, err);
    return ab_mail_gpg_open(g, c->gpg_binary, c->gpg_home, c->gpg_email, c->gpg_password, err);
}

/* --- composition ------------------------------------------------------------------------ */

/* The text as sent: the message, then the host organisation's signature. */
static void s_body(const ab_mail_conf *c, const char *body, ab_mime_buf *out)
{
    ab_mime_buf_adds(out, body);
    ab_mime_buf_adds(out, "\n\n-- \n");
    ab_mime_buf_printf(out, "%s\n", c->org && *c->org ? c->org : "MISP");
    if (c->baseurl && *c->baseurl)
        ab_mime_buf_printf(out, "%s\n", c->baseurl);
    if (c->contact && *c->contact)
        ab_mime_buf_printf(out, "Support: %s\n", c->contact);
}

static void s_headers(const ab_mail_conf *c, const ab_mail_msg *m, const char *msgid,
                      ab_mime_buf *out, ab_error *err, int *rc)
{
    *rc = ab_mime_header_address(out, "From", c->from_name, c->from, "MISP.email", err);
    if (*rc == 0)
        *rc = ab_mime_header_address(out, "To", NULL, m->to, "to", err);
    if (*rc < 0)
        return;
    ab_mime_buf subject = {0};
    /* GnuPG.obscure_subject: the subject travels in clear, so an encrypted message says
     * nothing of its content there. */
    const char *text = c->obscure && m->gpgkey ? AB_MAIL_OBSCURED_SUBJECT : m->subject;
    if (c->org && *c->org)
        ab_mime_buf_printf(&subject, "[%s MISP] %s", c->org, text);
    else
        ab_mime_buf_printf(&subject, "[MISP] %s", text);
    ab_mime_header_text(out, "Subject", subject.data ? subject.data : "", subject.len);
    ab_mime_buf_free(&subject);
    char date[64];
    ab_mime_date(m->now_ms, date, sizeof date);
    ab_mime_buf_printf(out, "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", date, msgid);
}

int ab_mail_sign_text(const ab_mail_conf *c, ab_mail_gpg *g, const char *body, ab_mime_buf *out,
                      ab_error *err)
{
    ab_mime_buf text = {0}, part = {0};
    s_body(c, body, &text);
    ab_mime_text_part(&part, text.data, text.len);
    int rc = 0;
    if (text.oom || part.oom)
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    else if (c->sign)
        rc = ab_mail_gpg_sign(g, part.data, part.len, out, err);
    else /* unsigned: the text part as it is (still encrypted to a user's key) */
        ab_mime_buf_add(out, part.data, part.len);
    ab_mime_buf_free(&text);
    ab_mime_buf_free(&part);
    return rc;
}

int ab_mail_assemble(const ab_mail_conf *c, ab_mail_gpg *g, const ab_mail_msg *m,
                     const ab_mime_buf *signed_entity, ab_mime_buf *out, char *message_id,
                     size_t idlen, ab_error *err)
{
    ab_mime_message_id(m->job_id, m->id_key ? m->id_key : m->to, strchr(c->from, '@') + 1,
                       message_id, idlen);
    ab_mime_buf encrypted = {0};
    int rc = m->gpgkey ? ab_mail_gpg_encrypt(g, NULL, m->gpgkey, m->gpgkey_len, signed_entity->data,
                                             signed_entity->len, &encrypted, err)
                       : 0;
    if (rc == 0)
        s_headers(c, m, message_id, out, err, &rc);
    if (rc == 0 && m->gpgkey)
        ab_mime_buf_add(out, encrypted.data, encrypted.len);
    else if (rc == 0)
        ab_mime_buf_add(out, signed_entity->data, signed_entity->len);
    ab_mime_buf_free(&encrypted);
    if (rc == 0 && out->oom)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return rc;
}

int ab_mail_compose(const ab_mail_conf *c, ab_mail_gpg *g, const ab_mail_msg *m, ab_mime_buf *out,
                    char *message_id, size_t idlen, ab_error *err)
{
    ab_mime_buf entity = {0};
    int rc = ab_mail_sign_text(c, g, m->body, &entity, err);
    if (rc == 0)
        rc = ab_mail_assemble(c, g, m, &entity, out, message_id, idlen, err);
    ab_mime_buf_free(&entity);
    return rc;
}

/* --- the email job ---------------------------------------------------------------------- */

static const char *const s_kinds[] = {"contact", "password_reset", "welcome", NULL};

const ab_arg ab_mail_job_args[AB_MAIL_JOB_NARGS] = {
    {"kind", AB_ARG_ENUM, true, false, 0, 0, s_kinds,
     "What the mail-out is: contact (adminctl contact), password_reset or welcome (adminctl "
     "user reset-password: a new temporary password set when the message is sent)",
     0},
    {"subject", AB_ARG_STR, true, false, 1, 255, NULL, "The subject, without line breaks", 0},
    {"message", AB_ARG_STR, true, false, 1, 65535, NULL,
     "The text of the message (password_reset, welcome: with $password, $username, $misp, "
     "$org, $contact)",
     0},
};

typedef struct {
    ab_job_run *run;
    ab_db *db;
    ab_mail_conf conf;
    ab_mail_gpg *gpg;
    char *subject, *message;
    bool with_password;        /* password_reset, welcome: a temporary password each */
    bool welcome;              /* (for the audit title) */
    ab_secret key;             /* seals the temporary passwords of messages in flight */
    ab_mime_buf signed_entity; /* contact: the text, signed once for every recipient */
    bool last_attempt;
    ab_actor actor; /* who asked for the mail-out, for the audit rows */
    char actor_email[EMAIL_ADDRMAX + 1], actor_org[256];
    int64_t total, finished, sent, failed, retrying;
} s_job;

typedef struct {
    uint64_t id;
    bool was_retrying; /* its state when read: the counts move as it changes */
    uint32_t user_id;
    char email[EMAIL_ADDRMAX + 1];
    char *gpgkey;
    size_t gpgkey_len;
    char *sealed;     /* the temporary password of an earlier attempt, sealed; or NULL */
    bool user_exists; /* the user is still there */
} s_rcpt;

static char *s_arg_dup(const msgpack_object *args, const char *name)
{
    const msgpack_object *v = ab_map_get(args, name);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return NULL;
    return strndup(v->via.str.ptr, v->via.str.size);
}

/* The server secret of this home (the job does not see the worker's flags: home comes from
 * the environment and adminbus.conf, as for the backup job). */
static int s_secret(ab_secret *key, ab_error *err)
{
    ab_config cfg;
    char msg[256], name[] = "adminbus-worker", *argv[] = {name, NULL};
    int argc = 1, rc = ab_config_load(&cfg, &argc, argv, msg, sizeof msg);
    if (rc == 0)
        rc = ab_secret_load(cfg.home, key, msg, sizeof msg);
    ab_config_free(&cfg);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot read the server secret: %s", msg);
    return 0;
}

/* Who enqueued the job (the actor of the audit rows of the messages), and whether this is
 * its last attempt (a temporary failure then fails the recipient). */
static int s_load_job(s_job *j, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(j->run));
    ab_rows rows = {0};
    if (ab_db_query(j->db,
                    "SELECT j.max_attempts, u.id, u.email, o.name FROM jobs j LEFT JOIN users u ON "
                    "u.id = j.created_by LEFT JOIN organisations o ON o.id = u.org_id WHERE "
                    "j.id = ?",
                    &p, &rows, err) < 0)
        return -1;
    snprintf(j->actor_org, sizeof j->actor_org, "SYSTEM");
    if (ab_rows_next(&rows) == 1) {
        const char *e = ab_rows_str(&rows, 2, NULL), *o = ab_rows_str(&rows, 3, NULL);
        j->last_attempt = ab_job_attempt(j->run) >= ab_rows_int(&rows, 0);
        j->actor.user_id = (uint32_t)ab_rows_int(&rows, 1);
        snprintf(j->actor_email, sizeof j->actor_email, "%s", e ? e : "");
        if (o)
            snprintf(j->actor_org, sizeof j->actor_org, "%s", o);
    }
    ab_rows_close(&rows);
    j->actor.email = j->actor_email;
    j->actor.org = j->actor_org;
    return 0;
}

static int s_count(s_job *j, const char *states, int64_t *out, ab_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM email_recipients WHERE job_id = ?%s", states);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(j->run));
    return ab_db_scalar(j->db, sql, &p, out, err);
}

static int s_counts(s_job *j, ab_error *err)
{
    if (s_count(j, "", &j->total, err) < 0 ||
        s_count(j, " AND state = 'sent'", &j->sent, err) < 0 ||
        s_count(j, " AND state = 'failed'", &j->failed, err) < 0 ||
        s_count(j, " AND state = 'retrying'", &j->retrying, err) < 0)
        return -1;
    j->finished = j->sent + j->failed;
    return 0;
}

static int s_progress(s_job *j)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Sent %lld of %lld (%lld failed, %lld to retry)", (long long)j->sent,
             (long long)j->total, (long long)j->failed, (long long)j->retrying);
    int pct = j->total ? (int)(j->finished * 100 / j->total) : 100;
    return ab_job_progress(j->run, pct > 99 && j->finished < j->total ? 99 : pct, msg);
}

/* Up to CHUNK unfinished recipients after id `after`, with their users' keys. */
static int s_next_chunk(s_job *j, uint64_t after, s_rcpt *out, int *n, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(j->run));
    ab_param_int(&p, (int64_t)after);
    ab_param_int(&p, CHUNK);
    ab_rows rows = {0};
    *n = 0;
    if (ab_db_query(j->db,
                    "SELECT r.id, r.user_id, r.email, COALESCE(r.gpgkey, u.gpgkey), "
                    "r.state = 'retrying', "
                    "r.secret_sealed, u.id IS NOT NULL FROM email_recipients r "
                    "LEFT JOIN users u ON u.id = r.user_id WHERE r.job_id = ? AND r.id > ? AND "
                    "r.state IN ('queued', 'sending', 'retrying') ORDER BY r.id LIMIT ?",
                    &p, &rows, err) < 0)
        return -1;
    while (*n < CHUNK && ab_rows_next(&rows) == 1) {
        s_rcpt *r = &out[(*n)++];
        size_t klen = 0;
        const char *email = ab_rows_str(&rows, 2, NULL), *key = ab_rows_str(&rows, 3, &klen);
        r->id = (uint64_t)ab_rows_int(&rows, 0);
        r->user_id = (uint32_t)ab_rows_int(&rows, 1);
        snprintf(r->email, sizeof r->email, "%s", email ? email : "");
        r->gpgkey = key && klen ? strndup(key, klen) : NULL;
        r->gpgkey_len = r->gpgkey ? klen : 0;
        r->was_retrying = ab_rows_int(&rows, 4) != 0;
        const char *sealed = ab_rows_str(&rows, 5, NULL);
        r->sealed = sealed ? strdup(sealed) : NULL;
        r->user_exists = ab_rows_int(&rows, 6) != 0;
    }
    ab_rows_close(&rows);
    return 0;
}

/* The reset's new password, which also ends every session of the user (whoever held one
 * may be the reason for the reset). */
static int s_set_password(s_job *j, const s_rcpt *r, const char *hash, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, hash);
    ab_param_int(&p, r->user_id);
    uint64_t ended = 0;
    return ab_db_run(j->db,
                     "UPDATE users SET password = ?, change_pw = 1, date_modified = "
                     "UTC_TIMESTAMP(3) WHERE id = ?",
                     &p, NULL, NULL, err) < 0
               ? -1
               : ab_session_end_others(j->db, r->user_id, 0, &ended, err);
}

/* Record the recipient's new state and commit it with the audit row (audit, if any) and
 * the user's new password (pw_hash, if any: a password message that was sent). A finished
 * row forgets its sealed password. */
static int s_record(s_job *j, const s_rcpt *r, const char *state, const char *msgid, bool enc,
                    int code, const char *error, ab_audit *audit, const char *pw_hash,
                    ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, state);
    ab_param_cstr(&p, msgid);
    ab_param_int(&p, enc);
    if (code > 0)
        ab_param_int(&p, code);
    else
        ab_param_str(&p, NULL, 0);
    ab_param_str(&p, error, error ? strnlen(error, ERROR_MAX) : 0);
    ab_param_cstr(&p, state);
    ab_param_int(&p, (int64_t)r->id);
    if (ab_db_run(j->db,
                  "UPDATE email_recipients SET state = ?, message_id = COALESCE(?, message_id), "
                  "encrypted = ?, smtp_code = ?, error = ?, date_modified = UTC_TIMESTAMP(3), "
                  "date_sent = IF(? = 'sent', UTC_TIMESTAMP(3), date_sent), secret_sealed = "
                  "IF(state IN ('sent', 'failed'), NULL, secret_sealed) WHERE id = ?",
                  &p, NULL, NULL, err) < 0 ||
        (pw_hash && s_set_password(j, r, pw_hash, err) < 0) ||
        (audit && ab_audit_flush(audit, j->db, err) < 0) || ab_db_exec(j->db, "COMMIT", err) < 0)
        return -1;
    /* The counts of the progress message, kept here rather than counted per recipient. */
    j->retrying += (strcmp(state, "retrying") == 0) - r->was_retrying;
    j->sent += strcmp(state, "sent") == 0;
    j->failed += strcmp(state, "failed") == 0;
    j->finished = j->sent + j->failed;
    return 0;
}

/* Mark the recipient as being sent (attempt counted) before the message leaves: a crash
 * after this leaves 'sending', and the next run sends again with the same Message-ID. */
static int s_mark_sending(s_job *j, const s_rcpt *r, const char *msgid, const char *sealed,
                          ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, msgid);
    ab_param_cstr(&p, sealed);
    ab_param_int(&p, (int64_t)r->id);
    if (ab_db_run(j->db,
                  "UPDATE email_recipients SET state = 'sending', attempts = attempts + 1, "
                  "message_id = ?, secret_sealed = COALESCE(?, secret_sealed), date_modified = "
                  "UTC_TIMESTAMP(3) WHERE id = ?",
                  &p, NULL, NULL, err) < 0)
        return -1;
    return ab_db_exec(j->db, "COMMIT", err);
}

/* The audit row of a message that left: to whom, the Message-ID, the SMTP reply; never the
 * text. */
static int s_audit_sent(s_job *j, const s_rcpt *r, const char *msgid, bool enc,
                        const ab_smtp_result *res, ab_audit *audit)
{
    char title[512], change[1024];
    snprintf(title, sizeof title, "Email to %s sent (job %llu)%s", r->email,
             (unsigned long long)ab_job_id(j->run), enc ? ", encrypted" : "");
    snprintf(change, sizeof change,
             "subject () => (%.200s), message_id () => (%s), smtp () => (%d %.200s)", j->subject,
             msgid, res->code, res->text);
    if (!j->with_password)
        return ab_audit_add(audit, &j->actor, "User", r->user_id, "admin_email", title, change);
    snprintf(title, sizeof title, "%s e-mail sent to %s (job %llu)%s",
             j->welcome ? "Welcome" : "Password reset", r->email,
             (unsigned long long)ab_job_id(j->run), enc ? ", encrypted" : "");
    snprintf(change, sizeof change,
             "password (*****) => (*****), change_pw () => (1), message_id () => (%s), smtp () "
             "=> (%d %.200s)",
             msgid, res->code, res->text);
    return ab_audit_add(audit, &j->actor, "User", r->user_id, "password_reset", title, change);
}

/* The admin's notice of a recipient that failed for good (the job goes on): an audit row
 * email_failed with the reason, in the transaction that records the failure. */
static ab_audit *s_audit_failed(s_job *j, const s_rcpt *r, const char *error)
{
    char title[512], change[1200];
    snprintf(title, sizeof title, "Email to %s not sent (job %llu): it failed for good", r->email,
             (unsigned long long)ab_job_id(j->run));
    snprintf(change, sizeof change, "subject () => (%.200s), error () => (%.900s)", j->subject,
             error);
    ab_audit *audit = ab_audit_new();
    if (audit &&
        ab_audit_add(audit, &j->actor, "User", r->user_id, "email_failed", title, change) < 0)
        ab_audit_destroy(&audit);
    return audit;
}

/* Record a recipient as failed for good, with the admin's notice. */
static int s_record_failed(s_job *j, const s_rcpt *r, const char *msgid, bool enc, int code,
                           const char *error, ab_error *err)
{
    ab_audit *audit = s_audit_failed(j, r, error);
    int rc = audit ? s_record(j, r, "failed", msgid, enc, code, error, audit, NULL, err)
                   : ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    ab_audit_destroy(&audit);
    return rc;
}

/* --- temporary passwords (password_reset, welcome) ------------------------------------ */

#define SEAL_PURPOSE "adminbus mail v1"

static int s_aad(const s_rcpt *r, char *aad, size_t len)
{
    return snprintf(aad, len, "email_recipient:%llu", (unsigned long long)r->id);
}

/* The temporary password of this recipient: the one sealed by an earlier attempt (a
 * re-send carries the same password), else a new one, sealed into *sealed for
 * s_mark_sending. Returns 0 with *pw (free with ab_password_free), or -1 with *err. */
static int s_password(s_job *j, const s_rcpt *r, char **pw, char **sealed, ab_error *err)
{
    char aad[64];
    int alen = s_aad(r, aad, sizeof aad);
    *pw = NULL;
    *sealed = NULL;
    if (r->sealed) {
        size_t n = 0;
        uint8_t *clear = ab_unseal(&j->key, SEAL_PURPOSE, aad, (size_t)alen, r->sealed, &n);
        if (clear) {
            *pw = strndup((const char *)clear, n);
            ab_seal_free(clear, n);
            return *pw ? 0 : ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        }
        /* another server key: a new password (the old one never took effect) */
    }
    ab_password_policy policy;
    if (ab_password_policy_from_settings(&policy) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    int rc = ab_password_generate(&policy, pw);
    ab_password_policy_clear(&policy);
    if (rc < 0)
        return ab_fail(err, AB_E_INVALID, "Security.password_policy_complexity",
                       "no temporary password satisfies the password policy: check "
                       "Security.password_policy_complexity");
    *sealed = ab_seal(&j->key, SEAL_PURPOSE, aad, (size_t)alen, *pw, strlen(*pw));
    if (!*sealed) {
        ab_password_free(*pw);
        *pw = NULL;
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot seal the temporary password");
    }
    return 0;
}

void ab_mail_fill_text(const char *tmpl, const ab_mail_fill *v, ab_mime_buf *out)
{
    const struct {
        const char *name, *value;
    } vars[] = {{"$password", v->password},
                {"$username", v->username},
                {"$misp", v->misp},
                {"$org", v->org},
                {"$contact", v->contact}};
    for (const char *p = tmpl; *p;) {
        size_t i = 0, n = sizeof vars / sizeof vars[0];
        while (i < n && strncmp(p, vars[i].name, strlen(vars[i].name)) != 0)
            i++;
        if (i < n) {
            ab_mime_buf_adds(out, vars[i].value ? vars[i].value : "");
            p += strlen(vars[i].name);
        } else if (p[0] == '\\' && p[1] == 'n') {
            ab_mime_buf_adds(out, "\n");
            p += 2;
        } else {
            ab_mime_buf_add(out, p++, 1);
        }
    }
}

/* The text of a password message: the template with its placeholders filled in. */
static void s_expand(const s_job *j, const s_rcpt *r, const char *pw, ab_mime_buf *out)
{
    ab_mail_fill v = {pw, r->email, j->conf.baseurl, j->conf.org, j->conf.contact};
    ab_mail_fill_text(j->message, &v, out);
}

/* The whole message to r: contact messages reuse the job's signed text; password
 * messages are filled in and signed for each recipient. *err as ab_mail_assemble. */
static int s_build(s_job *j, const s_rcpt *r, const char *pw, ab_mime_buf *msg, char *msgid,
                   size_t idlen, ab_error *err)
{
    ab_mail_msg m = {ab_job_id(j->run), r->email,  NULL,          j->subject,
                     j->message,        r->gpgkey, r->gpgkey_len, (int64_t)time(NULL) * 1000};
    if (!pw)
        return ab_mail_assemble(&j->conf, j->gpg, &m, &j->signed_entity, msg, msgid, idlen, err);
    ab_mime_buf text = {0}, entity = {0};
    s_expand(j, r, pw, &text);
    int rc = text.oom ? ab_fail(err, AB_E_INTERNAL, NULL, "out of memory")
                      : ab_mail_sign_text(&j->conf, j->gpg, text.data, &entity, err);
    if (rc == 0)
        rc = ab_mail_assemble(&j->conf, j->gpg, &m, &entity, msg, msgid, idlen, err);
    ab_mime_buf_free(&text);
    ab_mime_buf_free(&entity);
    return rc;
}

/* Record what the server said: sent (with the audit row and, for a password message, the
 * new password's hash in the same transaction), failed or retrying. */
static int s_outcome(s_job *j, const s_rcpt *r, const char *pw, const char *msgid,
                     const ab_smtp_result *res, ab_error *err)
{
    bool enc = r->gpgkey != NULL;
    if (res->outcome == AB_SMTP_SENT) {
        char *hash = NULL;
        ab_audit *audit = ab_audit_new();
        int rc = !audit || s_audit_sent(j, r, msgid, enc, res, audit) < 0 ||
                         (pw && ab_password_hash(pw, 0, &hash) < 0)
                     ? ab_fail(err, AB_E_INTERNAL, NULL, "cannot hash the password or audit")
                     : s_record(j, r, "sent", NULL, enc, res->code, NULL, audit, hash, err);
        ab_audit_destroy(&audit);
        free(hash);
        return rc;
    }
    char error[ERROR_MAX];
    bool give_up = res->outcome == AB_SMTP_PERMANENT || j->last_attempt;
    snprintf(error, sizeof error, "%s%s",
             res->outcome == AB_SMTP_TEMPORARY && give_up ? "gave up after the last attempt: " : "",
             res->text);
    AB_INFO("email job %llu: %s: %s", (unsigned long long)ab_job_id(j->run), r->email, error);
    if (give_up)
        return s_record_failed(j, r, NULL, enc, res->code, error, err);
    return s_record(j, r, "retrying", NULL, enc, res->code, error, NULL, NULL, err);
}

/* A recipient that cannot get this message at all: why, or NULL. */
static const char *s_cannot_send(const s_job *j, const s_rcpt *r)
{
    if (j->with_password && !r->user_exists)
        return "not sent: the user no longer exists";
    if (j->conf.only_encrypted && !r->gpgkey)
        return "not sent: GnuPG.onlyencrypted is on and the user has no GnuPG key";
    return NULL;
}

/* Compose and send to one recipient, recording the outcome. Returns 0 (whatever the
 * outcome for that recipient), -1 when the job itself must stop (the instance's key or
 * settings, the database). */
static int s_send_one(s_job *j, const s_rcpt *r, ab_error *err)
{
    char msgid[MSGID_MAX], *pw = NULL, *sealed = NULL;
    ab_mime_message_id(ab_job_id(j->run), r->email, strchr(j->conf.from, '@') + 1, msgid,
                       sizeof msgid);
    const char *why = s_cannot_send(j, r);
    if (why)
        return s_record_failed(j, r, msgid, false, 0, why, err);
    if ((j->with_password && s_password(j, r, &pw, &sealed, err) < 0) ||
        s_mark_sending(j, r, msgid, sealed, err) < 0) {
        ab_password_free(pw);
        free(sealed);
        return -1;
    }
    free(sealed);
    ab_mime_buf msg = {0};
    ab_error cerr;
    int rc = 0;
    if (s_build(j, r, pw, &msg, msgid, sizeof msgid, &cerr) < 0) {
        bool recipients_own = cerr.code == AB_E_INVALID &&
                              (strcmp(cerr.field, "gpgkey") == 0 || strcmp(cerr.field, "to") == 0);
        rc = recipients_own /* else the instance's key or settings: the whole job stops */
                 ? s_record_failed(j, r, NULL, false, 0, cerr.message, err)
                 : ab_fail(err, cerr.code, cerr.field, "%s", cerr.message);
    } else {
        ab_smtp_result res;
        ab_smtp_send(&j->conf.smtp, j->conf.from, r->email, msg.data, msg.len, &res);
        rc = res.outcome == AB_SMTP_LOGIN /* no message can go: the job stops (not retried) */
                 ? ab_fail(err, AB_E_INVALID, "Email.password",
                           "the SMTP server refused our login: %d %.120s; nothing more was "
                           "sent: fix Email.username/Email.password, then adminctl job retry %llu",
                           res.code, res.text, (unsigned long long)ab_job_id(j->run))
                 : s_outcome(j, r, pw, msgid, &res, err);
    }
    ab_mime_buf_free(&msg);
    ab_password_free(pw);
    return rc;
}

static int s_run(s_job *j, ab_error *err)
{
    s_rcpt chunk[CHUNK];
    uint64_t after = 0;
    for (;;) {
        int n = 0;
        if (s_next_chunk(j, after, chunk, &n, err) < 0)
            return -1;
        if (n == 0)
            return 0;
        int rc = 0;
        for (int i = 0; i < n; i++) {
            if (rc == 0 && ab_job_should_stop(j->run))
                rc = ab_fail(err, AB_E_UNAVAILABLE, NULL, "stopped; the rest is sent later");
            if (rc == 0)
                rc = s_send_one(j, &chunk[i], err);
            if (rc == 0 && s_progress(j) < 0)
                rc = ab_fail(err, AB_E_UNAVAILABLE, NULL, "stopped; the rest is sent later");
            after = chunk[i].id;
            free(chunk[i].gpgkey);
            free(chunk[i].sealed);
        }
        if (rc < 0)
            return -1;
    }
}

/* MISP.disable_emailing: every recipient still to send is recorded as not sent. */
static int s_disabled(s_job *j, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(j->run));
    if (ab_db_run(j->db,
                  "UPDATE email_recipients SET state = 'failed', error = 'not sent: "
                  "MISP.disable_emailing is on', date_modified = UTC_TIMESTAMP(3) WHERE job_id = "
                  "? AND state IN ('queued', 'sending', 'retrying')",
                  &p, NULL, NULL, err) < 0)
        return -1;
    return ab_db_exec(j->db, "COMMIT", err);
}

/* "first carol@x: why" of the job's first failed recipient, for the job's last message. */
static int s_first_failure(s_job *j, char *out, size_t len, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(j->run));
    ab_rows rows = {0};
    if (ab_db_query(j->db,
                    "SELECT email, error FROM email_recipients WHERE job_id = ? AND state = "
                    "'failed' ORDER BY id LIMIT 1",
                    &p, &rows, err) < 0)
        return -1;
    if (ab_rows_next(&rows) == 1) {
        const char *e = ab_rows_str(&rows, 0, NULL), *why = ab_rows_str(&rows, 1, NULL);
        snprintf(out, len, "first %.100s: %.180s", e ? e : "?", why ? why : "?");
    }
    ab_rows_close(&rows);
    return 0;
}

static int s_finish(s_job *j, ab_error *err)
{
    if (s_counts(j, err) < 0)
        return -1;
    if (j->retrying > 0)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "%lld of %lld recipients wait for a retry (temporary failures; adminctl "
                       "mail status %llu)",
                       (long long)j->retrying, (long long)j->total,
                       (unsigned long long)ab_job_id(j->run));
    /* The job's message is at most 255 bytes: the counts and where to look come first,
     * then the first failure, cut if need be. */
    char msg[400], first[300] = "";
    if (j->failed && s_first_failure(j, first, sizeof first, err) < 0)
        return -1;
    int n = snprintf(msg, sizeof msg, "Sent %lld of %lld; %lld failed", (long long)j->sent,
                     (long long)j->total, (long long)j->failed);
    if (j->failed)
        snprintf(msg + n, sizeof msg - (size_t)n, " (adminctl mail status %llu): %s",
                 (unsigned long long)ab_job_id(j->run), first);
    ab_job_progress(j->run, 100, msg);
    return 0;
}

int ab_mail_job(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    s_job j = {.run = run, .db = ab_job_db(run)};
    j.subject = s_arg_dup(args, "subject");
    j.message = s_arg_dup(args, "message");
    char *kind = s_arg_dup(args, "kind");
    j.with_password = kind && strcmp(kind, "contact") != 0;
    j.welcome = kind && strcmp(kind, "welcome") == 0;
    free(kind);
    int rc = !j.subject || !j.message
                 ? ab_fail(err, AB_E_INVALID, "args", "the job has no subject or message")
                 : 0;
    if (rc == 0)
        rc = ab_settings_sync(j.db, err);
    if (rc == 0)
        rc = s_secret(&j.key, err);
    if (rc == 0)
        rc = ab_mail_conf_load(&j.conf, &j.key, err);
    if (rc == 0)
        rc = s_load_job(&j, err);
    if (rc == 0 && j.conf.disabled)
        rc = s_disabled(&j, err);
    else if (rc == 0)
        rc = ab_mail_gpg_from_conf(&j.conf, &j.gpg, err);
    if (rc == 0 && !j.conf.disabled)
        rc = s_counts(&j, err);
    if (rc == 0 && !j.conf.disabled && !j.with_password)
        rc = ab_mail_sign_text(&j.conf, j.gpg, j.message, &j.signed_entity, err);
    if (rc == 0 && !j.conf.disabled)
        rc = s_run(&j, err);
    if (rc == 0)
        rc = s_finish(&j, err);
    memset(&j.key, 0, sizeof j.key);
    ab_mail_gpg_close(&j.gpg);
    ab_mail_conf_free(&j.conf);
    ab_mime_buf_free(&j.signed_entity);
    free(j.subject);
    s_wipe_free(j.message);
    return rc;
}
