/* mail.h — outgoing mail (issue 6): the sending configuration read from the settings, the
 * composition of one message (headers, text, PGP/MIME), and the `email` job that works
 * through a mail-out's recipients (table email_recipients, migration 0010).
 *
 * The engine never sends mail while applying commands, except `mail.test` (one message, on
 * request, to show the SMTP outcome at once): mail-outs are jobs on the `email` queue. */
#ifndef AB_MAIL_H
#define AB_MAIL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "wire/errors.h"
#include "jobs/jobs.h"
#include "mail/mail_gpg.h"
#include "mail/mime.h"
#include "auth/secret.h"
#include "mail/smtp.h"

/* What sending needs, from the settings (call ab_settings_sync first). Strings are owned. */
typedef struct {
    char *from;      /* MISP.email */
    char *from_name; /* MISP.email_from_name */
    char *org;       /* MISP.org: the subject prefix [ORG MISP] and the signature */
    char *contact;   /* MISP.contact: quoted in the signature when set */
    char *baseurl;   /* MISP.baseurl */
    char *gpg_home, *gpg_email, *gpg_binary, *gpg_password;
    bool disabled;            /* MISP.disable_emailing */
    bool only_encrypted;      /* GnuPG.onlyencrypted */
    bool sign;                /* the instance signs: GnuPG.sign, and GnuPG.homedir and
                               * GnuPG.email set; else the text part goes unsigned */
    const char *unsigned_why; /* NULL when sign, else why not ("GnuPG.sign is false", …) */
    bool obscure;             /* GnuPG.obscure_subject: encrypted mail gets a neutral subject */
    char *smtp_host, *smtp_user, *smtp_password;
    ab_smtp_conf smtp; /* points into the strings above */
} ab_mail_conf;

/* Read the configuration; secrets (GnuPG.password, Email.password) are opened with key.
 * Returns 0, or -1 with *err: invalid, field = the setting to fix (MISP.email unset,
 * a secret sealed under another server key). Free with ab_mail_conf_free. */
int ab_mail_conf_load(ab_mail_conf *c, const ab_secret *key, ab_error *err);
void ab_mail_conf_free(ab_mail_conf *c);

/* The subject of encrypted messages under GnuPG.obscure_subject. */
#define AB_MAIL_OBSCURED_SUBJECT "Encrypted message"

/* One message to compose. */
typedef struct {
    uint64_t job_id;     /* with to (or id_key), decides the Message-ID */
    const char *to;      /* a checked address */
    const char *id_key;  /* NULL: to; else what stands for it in the Message-ID */
    const char *subject; /* UTF-8, no CR/LF (refused by the commands; encoded anyway) */
    const char *body;    /* UTF-8 text */
    const char *gpgkey;  /* the recipient's armoured public key, or NULL: signed only */
    size_t gpgkey_len;
    int64_t now_ms; /* the Date header */
} ab_mail_msg;

/* Compose m into out: headers (From, To, Subject "[ORG MISP] …", Date, Message-ID,
 * MIME-Version) and a body signed with the instance key (when c->sign), encrypted to gpgkey
 * when given.
 * message_id receives the Message-ID. Returns 0, or -1 with *err (invalid field gpgkey:
 * the recipient's key cannot be used — nothing is composed, never clear text). */
int ab_mail_compose(const ab_mail_conf *c, ab_mail_gpg *g, const ab_mail_msg *m, ab_mime_buf *out,
                    char *message_id, size_t idlen, ab_error *err);

/* The two halves of ab_mail_compose, so that a mail-out signs its text once: the
 * multipart/signed entity of body (with the host organisation's signature below it; the
 * bare text part when the instance does not sign: !c->sign), and
 * a whole message from it (headers, then the entity, or the entity encrypted to m->gpgkey;
 * m->body is not used). Return 0 or -1 with *err as ab_mail_compose. */
int ab_mail_sign_text(const ab_mail_conf *c, ab_mail_gpg *g, const char *body, ab_mime_buf *out,
                      ab_error *err);
int ab_mail_assemble(const ab_mail_conf *c, ab_mail_gpg *g, const ab_mail_msg *m,
                     const ab_mime_buf *signed_entity, ab_mime_buf *out, char *message_id,
                     size_t idlen, ab_error *err);

/* The placeholders of MISP's texts (MISP.passwordResetText, MISP.newUserText): NULL
 * values become "". */
typedef struct {
    const char *password, *username, *misp, *org, *contact;
} ab_mail_fill;

/* Append tmpl to out with $password, $username, $misp, $org and $contact filled in and
 * MISP's literal "\n" as line breaks (the settings' texts are written that way). */
void ab_mail_fill_text(const char *tmpl, const ab_mail_fill *v, ab_mime_buf *out);

/* Open GnuPG as c says: the instance's signing key when c->sign, else a context that only
 * encrypts (no instance key needed). Returns 0 or -1 with *err. */
int ab_mail_gpg_from_conf(const ab_mail_conf *c, ab_mail_gpg **g, ab_error *err);

/* The `email` job: its arguments and handler (see docs/architecture.md, "E-mail"). */
#define AB_MAIL_JOB_NARGS 3
extern const ab_arg ab_mail_job_args[AB_MAIL_JOB_NARGS];
int ab_mail_job(ab_job_run *run, const msgpack_object *args, ab_error *err);

#endif
