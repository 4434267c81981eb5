/* user.c — users (the manual's "Users"): add, list, view, edit, disable, enable, delete,
 * change-pw.
 *
 * Who may (the catalog's permission column, then the scoping here): site administrators act
 * on anyone; org admins (perm_admin) only inside their own organisation — they list its
 * users, add users to it, act on its users who are not site admins (ab_may_act_on_user),
 * never move a user out of it, and never give a role that makes a site admin or has a
 * permission their own role lacks (ab_may_grant_role); change-pw is also open to every user
 * for their own account.
 *
 * A user has an e-mail (unique, case-insensitively through the column's collation), an
 * organisation, a role (the default role when none is given, read with a shared lock (MariaDB: LOCK
 * IN SHARE MODE) so that role.delete, which locks it FOR UPDATE, cannot remove it under a new
 * member), alert flags, a NIDS SID offset (MISP's random default in 1000000..9999900 when none is
 * given) and a password stored only as its yescrypt hash (engine/auth/password.h). A password given
 * is checked against the policy of the settings catalog; none given on add or change-pw makes a
 * temporary one that is returned once in the reply (the stored copy of the reply, kept for
 * command ids, has it masked) and sets change_pw. No password or hash ever reaches an audit
 * row, an event, a log line or another reply: the audit says password (*****) => (*****).
 *
 * Disabling is preferred to deleting. Deleting a user deletes its authkeys with it (MISP
 * does the same) and keeps its audit rows, which carry the e-mail as text. Disabling or
 * deleting the last enabled site administrator who can use an authkey, or changing that
 * user's role to one that is not such, is a conflict; so is deleting yourself. Every change
 * is audited as model User, title "User (id): email". */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/gpgkey.h"
#include "core/handlers.h"
#include "auth/identity.h"
#include "auth/password.h"
#include "auth/session.h"
#include "auth/secret.h"

#define EMAIL_MAX_BYTES 1024 /* 255 characters of up to 4 bytes, and the NUL */
#define NAME_MAX_BYTES  1024
/* MISP's random default NIDS SID offset (User::beforeValidate: mt_rand(1000000, 9999900)). */
#define NIDS_SID_MIN 1000000
#define NIDS_SID_MAX 9999900

typedef struct {
    int64_t id, org_id, role_id, nids_sid, last_login, created, modified;
    bool has_last_login, autoalert, contactalert, termsaccepted, change_pw, disabled;
    bool admin;      /* the role is site admin and may use authkeys */
    bool site_admin; /* the role is site admin (org admins may not act on the user) */
    char email[EMAIL_MAX_BYTES];
    char org[NAME_MAX_BYTES];
    char role[NAME_MAX_BYTES];
    char gpg_fpr[AB_GPGKEY_FPR_MAX]; /* "" when the user has no GnuPG key */
} s_user;

#define LAST_LOGIN_MS AB_SQL_MS("u.last_login")
#define CREATED_MS    AB_SQL_MS("u.date_created")
#define MODIFIED_MS   AB_SQL_MS("u.date_modified")
#define USER_COLS                                                                                  \
    "u.id, u.email, u.org_id, o.name, u.role_id, r.name, u.autoalert, u.contactalert, "            \
    "u.nids_sid, u.termsaccepted, u.change_pw, u.disabled, " LAST_LOGIN_MS                         \
    ", u.last_login IS NOT NULL, " CREATED_MS ", " MODIFIED_MS                                     \
    ", r.perm_site_admin = 1 AND r.perm_auth = 1, r.perm_site_admin = 1, u.gpgkey_fingerprint"
#define USER_FROM                                                                                  \
    " FROM users u JOIN organisations o ON o.id = u.org_id JOIN roles r ON r.id = u.role_id"
/* A role to give: id, name, site admin with authkeys, level, flags (s_find_role). */
#define ROLE_SELECT                                                                                \
    "SELECT r.id, r.name, r.perm_site_admin = 1 AND r.perm_auth = 1, " AB_ROLE_LEVEL_SQL           \
    ", " AB_ROLE_FLAGS_SQL " FROM roles r "

static void s_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void s_user_from_row(const ab_rows *rows, s_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = ab_rows_int(rows, 0);
    s_copy(u->email, sizeof u->email, ab_rows_str(rows, 1, NULL));
    u->org_id = ab_rows_int(rows, 2);
    s_copy(u->org, sizeof u->org, ab_rows_str(rows, 3, NULL));
    u->role_id = ab_rows_int(rows, 4);
    s_copy(u->role, sizeof u->role, ab_rows_str(rows, 5, NULL));
    u->autoalert = ab_rows_int(rows, 6) != 0;
    u->contactalert = ab_rows_int(rows, 7) != 0;
    u->nids_sid = ab_rows_int(rows, 8);
    u->termsaccepted = ab_rows_int(rows, 9) != 0;
    u->change_pw = ab_rows_int(rows, 10) != 0;
    u->disabled = ab_rows_int(rows, 11) != 0;
    u->last_login = ab_rows_int(rows, 12);
    u->has_last_login = ab_rows_int(rows, 13) != 0;
    u->created = ab_rows_int(rows, 14);
    u->modified = ab_rows_int(rows, 15);
    u->admin = ab_rows_int(rows, 16) != 0;
    u->site_admin = ab_rows_int(rows, 17) != 0;
    s_copy(u->gpg_fpr, sizeof u->gpg_fpr, ab_rows_str(rows, 18, NULL));
}

/* The user record; extra map entries (the one-time password) follow when extra > 0. */
static void s_pack_user(msgpack_packer *pk, const s_user *u, uint32_t extra)
{
    msgpack_pack_map(pk, 16 + extra);
    ab_pack_kv_int(pk, "id", u->id);
    ab_pack_kv_cstr(pk, "email", u->email);
    ab_pack_kv_int(pk, "org_id", u->org_id);
    ab_pack_kv_cstr(pk, "org", u->org);
    ab_pack_kv_int(pk, "role_id", u->role_id);
    ab_pack_kv_cstr(pk, "role", u->role);
    ab_pack_kv_bool(pk, "autoalert", u->autoalert);
    ab_pack_kv_bool(pk, "contactalert", u->contactalert);
    ab_pack_kv_int(pk, "nids_sid", u->nids_sid);
    ab_pack_kv_bool(pk, "termsaccepted", u->termsaccepted);
    ab_pack_kv_bool(pk, "change_pw", u->change_pw);
    ab_pack_kv_bool(pk, "disabled", u->disabled);
    if (u->has_last_login)
        ab_pack_kv_int(pk, "last_login", u->last_login);
    else
        ab_pack_kv_cstr(pk, "last_login", NULL);
    ab_pack_kv_int(pk, "created", u->created);
    ab_pack_kv_int(pk, "modified", u->modified);
    ab_pack_kv_cstr(pk, "gpgkey_fingerprint", u->gpg_fpr[0] ? u->gpg_fpr : NULL);
}

static int s_clip(size_t len)
{
    return (int)(len > 100 ? 100 : len);
}

/* Find the user the "user" argument names: an id (digits) or an e-mail. */
static int s_find(ab_ctx *ctx, bool for_update, s_user *out, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "user", &len);
    ab_params p;
    ab_params_init(&p);
    bool by_id = ab_ref_is_id(ref, len);
    ab_param_ref(&p, ref, len);
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT " USER_COLS USER_FROM " WHERE u.%s = ?%s",
             by_id ? "id" : "email", for_update ? " FOR UPDATE" : "");
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_user_from_row(&rows, out);
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_user_not_found(ctx->who, ref, len, err);
    return 0;
}

/* s_find, then whether the caller may run this command on that user (ab_may_act_on_user). */
static int s_find_allowed(ab_ctx *ctx, bool for_update, s_user *out, ab_error *err)
{
    if (s_find(ctx, for_update, out, err) < 0)
        return -1;
    return ab_may_act_on_user(ctx->cmd, ctx->who, (uint32_t)out->id, (uint32_t)out->org_id,
                              out->site_admin, err);
}

/* Resolve the organisation (arg "org", id or name; shared lock) into *id and name. */
static int s_find_org(ab_ctx *ctx, int64_t *id, char *name, size_t cap, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "org", &len);
    ab_params p;
    ab_params_init(&p);
    bool by_id = ab_ref_is_id(ref, len);
    ab_param_ref(&p, ref, len);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    by_id ? "SELECT id, name FROM organisations WHERE id = ? LOCK IN SHARE MODE"
                          : "SELECT id, name FROM organisations WHERE name = ? LOCK IN SHARE MODE",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        *id = ab_rows_int(&rows, 0);
        s_copy(name, cap, ab_rows_str(&rows, 1, NULL));
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "org", "no organisation has the id or name '%.*s'",
                       s_clip(len), ref);
    /* Every use puts a user in, or looks for users of, the organisation: org admins only
     * their own. */
    return ab_may_act_in_org(ctx->cmd, ctx->who, (uint32_t)*id, "org", err);
}

/* Resolve the role to give (arg "role", id or name; or the default role when absent) with a
 * shared lock: role.delete locks it FOR UPDATE before it counts members. The caller must be
 * allowed to give it (ab_may_grant_role). */
static int s_find_role(ab_ctx *ctx, int64_t *id, char *name, size_t cap, bool *admin, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "role", &len);
    ab_params p;
    ab_params_init(&p);
    const char *sql = ROLE_SELECT "WHERE r.default_role = 1 ORDER BY r.id LIMIT 1 "
                                  "LOCK IN SHARE MODE";
    if (ref && ab_ref_is_id(ref, len)) {
        ab_param_int(&p, strtoll(ref, NULL, 10));
        sql = ROLE_SELECT "WHERE r.id = ? LOCK IN SHARE MODE";
    } else if (ref) {
        ab_param_str(&p, ref, len);
        sql = ROLE_SELECT "WHERE r.name = ? LOCK IN SHARE MODE";
    }
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    int level = 0;
    uint32_t flags = 0;
    if (rc == 1) {
        *id = ab_rows_int(&rows, 0);
        s_copy(name, cap, ab_rows_str(&rows, 1, NULL));
        *admin = ab_rows_int(&rows, 2) != 0;
        level = (int)ab_rows_int(&rows, 3);
        flags = (uint32_t)ab_rows_int(&rows, 4);
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0 && ref)
        return ab_fail(err, AB_E_NOT_FOUND, "role", "no role has the id or name '%.*s'",
                       s_clip(len), ref);
    if (rc == 0)
        return ab_fail(err, AB_E_CONFLICT, "role",
                       "no role is the default: give a role or set one (role set-default)");
    return ab_may_grant_role(ctx->cmd, ctx->who, name, level, flags, err);
}

/* A reasonable address check: one '@', a local part of 1..64 printable characters without
 * spaces, a domain of dot-separated labels (letters, digits, '-', or non-ASCII), at least
 * two of them, none empty or starting or ending with '-'. */
static int s_check_email(const char *s, size_t len, ab_error *err)
{
    const char *at = memchr(s, '@', len);
    const char *why = NULL;
    if (!at)
        why = "it has no '@'";
    else if (memchr(at + 1, '@', len - (size_t)(at - s) - 1))
        why = "it has more than one '@'";
    else if (at == s || at - s > 64)
        why = "the part before '@' must have 1 to 64 characters";
    for (const char *c = s; !why && c < at; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f || strchr("()<>,;:\\\"[]", *c))
            why = "the part before '@' has a space or a character addresses cannot have";
    if (!why && (s[0] == '.' || at[-1] == '.'))
        why = "the part before '@' cannot start or end with '.'";
    const char *d = at ? at + 1 : NULL, *end = s + len;
    size_t labels = 0;
    while (!why && d) {
        const char *dot = memchr(d, '.', (size_t)(end - d));
        const char *stop = dot ? dot : end;
        if (stop == d) {
            why = "the domain has an empty label";
            break;
        }
        if (*d == '-' || stop[-1] == '-')
            why = "a domain label cannot start or end with '-'";
        for (const char *c = d; !why && c < stop; c++)
            if (!(isalnum((unsigned char)*c) || *c == '-' || (unsigned char)*c >= 0x80))
                why = "the domain may only have letters, digits, '-' and '.'";
        labels++;
        d = dot ? dot + 1 : NULL;
    }
    if (!why && labels < 2)
        why = "the domain needs at least one '.'";
    if (why)
        return ab_fail(err, AB_E_INVALID, "email", "'%.*s' is not an e-mail address: %s",
                       s_clip(len), s, why);
    return 0;
}

/* The policy check of a given password (field password, the policy's reason). */
static int s_check_password(const char *pw, ab_error *err)
{
    ab_password_policy policy;
    if (ab_password_policy_from_settings(&policy) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    char msg[512];
    ab_password_problem pb = ab_password_check(&policy, pw, msg, sizeof msg);
    ab_password_policy_clear(&policy);
    if (pb != AB_PW_OK)
        return ab_fail(err, AB_E_INVALID, "password", "the password does not meet the policy: %s",
                       msg);
    return 0;
}

/* The password to store: the "password" argument checked against the policy, or a generated
 * one (*generated = true). Returns 0 with *plain (free with ab_password_free) and *hash
 * (free), or -1 with err. */
static int s_new_password(ab_ctx *ctx, char **plain, char **hash, bool *generated, ab_error *err)
{
    *plain = *hash = NULL;
    size_t len = 0;
    const char *given = ab_arg_str(ctx, "password", &len);
    *generated = given == NULL;
    if (given) {
        if (memchr(given, '\0', len))
            return ab_fail(err, AB_E_INVALID, "password", "the password has a NUL byte");
        *plain = malloc(len + 1);
        if (!*plain)
            return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        memcpy(*plain, given, len);
        (*plain)[len] = '\0';
        if (s_check_password(*plain, err) < 0) {
            ab_password_free(*plain);
            *plain = NULL;
            return -1;
        }
    } else {
        ab_password_policy policy;
        if (ab_password_policy_from_settings(&policy) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        int rc = ab_password_generate(&policy, plain);
        ab_password_policy_clear(&policy);
        if (rc < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "could not generate a password");
    }
    if (ab_password_hash(*plain, 0, hash) < 0) {
        ab_password_free(*plain);
        *plain = NULL;
        return ab_fail(err, AB_E_INTERNAL, NULL, "could not hash the password");
    }
    return 0;
}

/* Pack the one-time password as the reply's last entry and tell the apply loop where its
 * bytes are, so that the stored copy of the reply has them masked. */
static void s_pack_once(ab_ctx *ctx, msgpack_packer *pk, const char *pw)
{
    ab_pack_kv_cstr(pk, "password", pw);
    const msgpack_sbuffer *buf = pk->data;
    ctx->secret_len = strlen(pw);
    ctx->secret_at = buf->size - ctx->secret_len;
}

static int64_t s_random_sid(void)
{
    uint32_t r = 0;
    if (ab_random_bytes(&r, sizeof r) != 0)
        r = (uint32_t)rand();
    return NIDS_SID_MIN + (int64_t)(r % (NIDS_SID_MAX - NIDS_SID_MIN + 1));
}

static void s_title(char *out, size_t len, int64_t id, const char *email)
{
    snprintf(out, len, "User (%lld): %s", (long long)id, email);
}

static int s_audit(ab_ctx *ctx, const s_user *u, const char *action, const ab_change *c,
                   ab_error *err)
{
    char title[EMAIL_MAX_BYTES + 64];
    s_title(title, sizeof title, u->id, u->email);
    if (ab_ctx_audit(ctx, "User", (uint64_t)u->id, action, title, ab_change_text(c)) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return 0;
}

static void s_change_int(ab_change *c, const char *field, const int64_t *old, int64_t now)
{
    char a[32], b[32];
    int na = old ? snprintf(a, sizeof a, "%lld", (long long)*old) : 0;
    int nb = snprintf(b, sizeof b, "%lld", (long long)now);
    ab_change_add(c, field, old ? a : NULL, (size_t)na, b, (size_t)nb);
}

/* A deleted value: field (old) => (). */
static void s_change_old(ab_change *c, const char *field, int64_t old)
{
    char a[32];
    int n = snprintf(a, sizeof a, "%lld", (long long)old);
    ab_change_add(c, field, a, (size_t)n, NULL, 0);
}

/* Turn a unique-key violation into the conflict the user can act on. */
static int s_write_failed(ab_ctx *ctx, const char *email, ab_error *err)
{
    if (strcmp(ab_db_dup_key(ctx->db), "users_email") == 0)
        return ab_fail(err, AB_E_CONFLICT, "email", "a user with the e-mail '%s' already exists",
                       email);
    return -1;
}

/* Refuse what would leave no enabled site administrator with a usable key (what: "disable",
 * "delete", "change the role of"). */
static int s_check_last_admin(ab_ctx *ctx, const s_user *u, const char *what, ab_error *err)
{
    if (!u->admin || u->disabled)
        return 0;
    int64_t others = 0;
    if (ab_other_site_admins(ctx->db, 0, u->id, &others, err) < 0)
        return -1;
    if (others > 0)
        return 0;
    return ab_fail(err, AB_E_CONFLICT, "user",
                   "%s is the last enabled site administrator who can use an authkey: cannot %s "
                   "it",
                   u->email, what);
}

int ab_user_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_user u;
    memset(&u, 0, sizeof u);
    size_t len = 0;
    const char *email = ab_arg_str(ctx, "email", &len);
    if (s_check_email(email, len, err) < 0)
        return -1;
    snprintf(u.email, sizeof u.email, "%.*s", (int)len, email);
    if (s_find_org(ctx, &u.org_id, u.org, sizeof u.org, err) < 0 ||
        s_find_role(ctx, &u.role_id, u.role, sizeof u.role, &u.admin, err) < 0)
        return -1;
    u.autoalert = ab_arg_bool(ctx, "autoalert", true);
    u.contactalert = ab_arg_bool(ctx, "contactalert", false);
    u.disabled = ab_arg_bool(ctx, "disabled", false);
    u.nids_sid = ab_arg_has(ctx, "nids_sid") ? ab_arg_int(ctx, "nids_sid", 0) : s_random_sid();
    u.change_pw = !ab_arg_bool(ctx, "no_password_change", false);
    ab_gpgkey_arg key;
    if (ab_gpgkey_from_args(ctx, &key, err) < 0)
        return -1;
    s_copy(u.gpg_fpr, sizeof u.gpg_fpr, key.fpr);
    char *plain = NULL, *hash = NULL;
    bool generated = false;
    if (s_new_password(ctx, &plain, &hash, &generated, err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, u.email);
    ab_param_int(&p, u.org_id);
    ab_param_int(&p, u.role_id);
    ab_param_cstr(&p, hash);
    ab_param_int(&p, u.disabled);
    ab_param_int(&p, u.autoalert);
    ab_param_int(&p, u.contactalert);
    ab_param_int(&p, u.change_pw);
    ab_param_int(&p, u.nids_sid);
    ab_param_str(&p, key.armour, key.len);
    ab_param_cstr(&p, key.armour ? key.fpr : NULL);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, ctx->now_ms);
    uint64_t id = 0;
    int rc = ab_db_run(ctx->db,
                       "INSERT INTO users (email, org_id, role_id, password, disabled, autoalert, "
                       "contactalert, change_pw, nids_sid, gpgkey, gpgkey_fingerprint, "
                       "termsaccepted, date_created, date_modified) VALUES (?, ?, ?, ?, ?, ?, ?, "
                       "?, ?, ?, ?, 0, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000))",
                       &p, &id, NULL, err);
    ab_password_free(hash);
    if (rc < 0) {
        ab_password_free(plain);
        s_write_failed(ctx, u.email, err);
        return -1;
    }
    u.id = (int64_t)id;
    u.created = u.modified = ctx->now_ms;

    ab_change c;
    ab_change_init(&c);
    ab_change_add(&c, "email", NULL, 0, u.email, strlen(u.email));
    s_change_int(&c, "org_id", NULL, u.org_id);
    s_change_int(&c, "role_id", NULL, u.role_id);
    ab_change_add(&c, "password", NULL, 0, "*****", 5);
    s_change_int(&c, "autoalert", NULL, u.autoalert);
    s_change_int(&c, "contactalert", NULL, u.contactalert);
    s_change_int(&c, "nids_sid", NULL, u.nids_sid);
    s_change_int(&c, "change_pw", NULL, u.change_pw);
    s_change_int(&c, "disabled", NULL, u.disabled);
    if (key.armour) /* the key is named by its fingerprint */
        ab_change_add(&c, "gpgkey", NULL, 0, key.fpr, strlen(key.fpr));
    rc = s_audit(ctx, &u, "add", &c, err);
    ab_change_free(&c);
    if (rc == 0) {
        s_pack_user(pk, &u, generated ? 1 : 0);
        if (generated)
            s_pack_once(ctx, pk, plain);
    }
    ab_password_free(plain);
    return rc;
}

int ab_user_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_user u;
    if (s_find_allowed(ctx, false, &u, err) < 0)
        return -1;
    s_pack_user(pk, &u, 0);
    return 0;
}

static void s_pack_row(msgpack_packer *pk, const ab_rows *row, const void *arg)
{
    (void)arg;
    s_user u;
    s_user_from_row(row, &u);
    s_pack_user(pk, &u, 0);
}

int ab_user_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    char where[512] = " WHERE 1 = 1";
    ab_params p;
    ab_params_init(&p);
    /* Org admins see their own organisation's users (all of them, as MISP's admin index);
     * an org filter naming another organisation is refused rather than answered empty. */
    if (!ctx->who->site_admin) {
        int64_t org_id = 0;
        char org_name[NAME_MAX_BYTES];
        if (ab_arg_has(ctx, "org") && s_find_org(ctx, &org_id, org_name, sizeof org_name, err) < 0)
            return -1;
        strcat(where, " AND u.org_id = ?");
        ab_param_int(&p, ctx->who->org_id);
    }
    static const char *const refs[] = {"org", "role"};
    static const char *const alias[] = {"o", "r"};
    for (int i = 0; i < 2; i++) {
        size_t len = 0;
        const char *ref = ab_arg_str(ctx, refs[i], &len);
        if (!ref)
            continue;
        size_t n = strlen(where);
        if (ab_ref_is_id(ref, len)) {
            snprintf(where + n, sizeof where - n, " AND %s.id = ?", alias[i]);
            ab_param_int(&p, strtoll(ref, NULL, 10));
        } else {
            snprintf(where + n, sizeof where - n, " AND %s.name = ?", alias[i]);
            ab_param_str(&p, ref, len);
        }
    }
    if (ab_arg_has(ctx, "disabled")) {
        size_t n = strlen(where);
        snprintf(where + n, sizeof where - n, " AND u.disabled = ?");
        ab_param_int(&p, ab_arg_bool(ctx, "disabled", false));
    }
    ab_list_query q = {USER_COLS, USER_FROM, where, "u.id", &p, s_pack_row, NULL};
    return ab_pack_list(ctx, pk, &q, err);
}

int ab_user_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_user old;
    if (s_find_allowed(ctx, true, &old, err) < 0)
        return -1;
    s_user u = old;
    size_t len = 0;
    const char *email = ab_arg_str(ctx, "email", &len);
    if (email) {
        if (s_check_email(email, len, err) < 0)
            return -1;
        snprintf(u.email, sizeof u.email, "%.*s", (int)len, email);
    }
    if (ab_arg_has(ctx, "org") && s_find_org(ctx, &u.org_id, u.org, sizeof u.org, err) < 0)
        return -1;
    if (ab_arg_has(ctx, "role")) {
        if (s_find_role(ctx, &u.role_id, u.role, sizeof u.role, &u.admin, err) < 0)
            return -1;
        if (!u.admin && s_check_last_admin(ctx, &old, "change the role of", err) < 0)
            return -1;
    }
    u.autoalert = ab_arg_bool(ctx, "autoalert", u.autoalert);
    u.contactalert = ab_arg_bool(ctx, "contactalert", u.contactalert);
    u.termsaccepted = ab_arg_bool(ctx, "termsaccepted", u.termsaccepted);
    u.nids_sid = ab_arg_int(ctx, "nids_sid", u.nids_sid);
    ab_gpgkey_arg key;
    bool same_key = true;
    if (ab_gpgkey_from_args(ctx, &key, err) < 0 ||
        (key.given && ab_gpgkey_same(ctx->db, u.id, &key, &same_key, err) < 0))
        return -1;
    if (!same_key)
        s_copy(u.gpg_fpr, sizeof u.gpg_fpr, key.fpr);

    ab_change c;
    ab_change_init(&c);
    if (strcmp(old.email, u.email) != 0)
        ab_change_add(&c, "email", old.email, strlen(old.email), u.email, strlen(u.email));
    static const char *const names[] = {"org_id",   "role_id",      "autoalert",
                                        "nids_sid", "contactalert", "termsaccepted"};
    const int64_t was[] = {old.org_id,   old.role_id,      old.autoalert,
                           old.nids_sid, old.contactalert, old.termsaccepted};
    const int64_t now[] = {u.org_id,   u.role_id,      u.autoalert,
                           u.nids_sid, u.contactalert, u.termsaccepted};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (was[i] != now[i])
            s_change_int(&c, names[i], &was[i], now[i]);
    if (!same_key) /* keys are named by their fingerprints */
        ab_change_add(&c, "gpgkey", old.gpg_fpr, strlen(old.gpg_fpr), u.gpg_fpr, strlen(u.gpg_fpr));
    int rc = 0;
    if (c.len > 0) { /* nothing changed: no write, no audit row */
        ab_params p;
        ab_params_init(&p);
        ab_param_cstr(&p, u.email);
        ab_param_int(&p, u.org_id);
        ab_param_int(&p, u.role_id);
        ab_param_int(&p, u.autoalert);
        ab_param_int(&p, u.contactalert);
        ab_param_int(&p, u.termsaccepted);
        ab_param_int(&p, u.nids_sid);
        ab_param_int(&p, !same_key);
        ab_param_str(&p, key.armour, key.len);
        ab_param_int(&p, !same_key);
        ab_param_cstr(&p, key.armour ? key.fpr : NULL);
        ab_param_int(&p, ctx->now_ms);
        ab_param_int(&p, u.id);
        rc = ab_db_run(ctx->db,
                       "UPDATE users SET email = ?, org_id = ?, role_id = ?, autoalert = ?, "
                       "contactalert = ?, termsaccepted = ?, nids_sid = ?, "
                       "gpgkey = IF(?, ?, gpgkey), gpgkey_fingerprint = IF(?, ?, "
                       "gpgkey_fingerprint), date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                       &p, NULL, NULL, err);
        if (rc < 0) {
            s_write_failed(ctx, u.email, err);
        } else {
            u.modified = ctx->now_ms;
            rc = s_audit(ctx, &u, "edit", &c, err);
        }
    }
    ab_change_free(&c);
    if (rc == 0)
        s_pack_user(pk, &u, 0);
    return rc;
}

/* The audit's count of the sessions a change ended (none: not mentioned). */
static void s_change_ended(ab_change *c, uint64_t ended)
{
    if (ended == 0)
        return;
    char n[24];
    int len = snprintf(n, sizeof n, "%llu", (unsigned long long)ended);
    ab_change_add(c, "sessions_ended", "0", 1, n, (size_t)len);
}

static int s_set_disabled(ab_ctx *ctx, msgpack_packer *pk, bool disabled, ab_error *err)
{
    s_user u;
    if (s_find_allowed(ctx, true, &u, err) < 0)
        return -1;
    if (u.disabled == disabled) { /* already so: nothing to write or audit */
        s_pack_user(pk, &u, 0);
        return 0;
    }
    if (disabled && s_check_last_admin(ctx, &u, "disable", err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, disabled);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, u.id);
    if (ab_db_run(ctx->db,
                  "UPDATE users SET disabled = ?, date_modified = FROM_UNIXTIME(? / 1000) "
                  "WHERE id = ?",
                  &p, NULL, NULL, err) < 0)
        return -1;
    /* Disabling ends every session of the user, so that enabling again brings none back
     * (a stolen one included). Enabling ends any left from before the disable: a disabled
     * user cannot log in, so every session found then predates it. */
    uint64_t ended = 0;
    if (ab_session_end_others(ctx->db, u.id, 0, &ended, err) < 0)
        return -1;
    u.disabled = disabled;
    u.modified = ctx->now_ms;
    ab_change c;
    ab_change_init(&c);
    ab_change_add(&c, "disabled", disabled ? "0" : "1", 1, disabled ? "1" : "0", 1);
    s_change_ended(&c, ended);
    int rc = s_audit(ctx, &u, "edit", &c, err);
    ab_change_free(&c);
    if (rc == 0)
        s_pack_user(pk, &u, 0);
    return rc;
}

int ab_user_disable(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_set_disabled(ctx, pk, true, err);
}

int ab_user_enable(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_set_disabled(ctx, pk, false, err);
}

int ab_user_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_user u;
    if (s_find_allowed(ctx, true, &u, err) < 0)
        return -1;
    if (ctx->who && (int64_t)ctx->who->user_id == u.id)
        return ab_fail(err, AB_E_CONFLICT, "user",
                       "you cannot delete yourself (%s): ask another site administrator", u.email);
    if (s_check_last_admin(ctx, &u, "delete", err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, u.id);
    uint64_t keys = 0;
    if (ab_db_run(ctx->db, "DELETE FROM auth_keys WHERE user_id = ?", &p, NULL, &keys, err) < 0)
        return -1;
    ab_params_init(&p);
    ab_param_int(&p, u.id);
    if (ab_db_run(ctx->db, "DELETE FROM users WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    ab_change_add(&c, "email", u.email, strlen(u.email), NULL, 0);
    s_change_old(&c, "org_id", u.org_id);
    s_change_old(&c, "role_id", u.role_id);
    s_change_old(&c, "auth_keys", (int64_t)keys);
    int rc = s_audit(ctx, &u, "delete", &c, err);
    ab_change_free(&c);
    if (rc < 0)
        return -1;
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "id", u.id);
    ab_pack_kv_cstr(pk, "email", u.email);
    ab_pack_kv_int(pk, "auth_keys_deleted", (int64_t)keys);
    return 0;
}

int ab_user_change_pw(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_user u;
    if (s_find_allowed(ctx, true, &u, err) < 0)
        return -1;
    /* Users who set their own password (a session that had to change it) are done. */
    bool change_pw = !ab_arg_bool(ctx, "no_password_change", false) && u.id != ctx->who->user_id;
    char *plain = NULL, *hash = NULL;
    bool generated = false;
    if (s_new_password(ctx, &plain, &hash, &generated, err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, hash);
    ab_param_int(&p, change_pw);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, u.id);
    int rc = ab_db_run(ctx->db,
                       "UPDATE users SET password = ?, change_pw = ?, "
                       "date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                       &p, NULL, NULL, err);
    ab_password_free(hash);
    /* The caller's own session survives its own change; every other one of the user ends. */
    uint64_t keep = u.id == ctx->who->user_id ? ctx->who->session_id : 0, ended = 0;
    if (rc == 0)
        rc = ab_session_end_others(ctx->db, u.id, keep, &ended, err);
    if (rc == 0) {
        ab_change c;
        ab_change_init(&c);
        ab_change_add(&c, "password", "*****", 5, "*****", 5);
        s_change_ended(&c, ended);
        if (u.change_pw != change_pw)
            ab_change_add(&c, "change_pw", u.change_pw ? "1" : "0", 1, change_pw ? "1" : "0", 1);
        u.change_pw = change_pw;
        u.modified = ctx->now_ms;
        rc = s_audit(ctx, &u, "change_pw", &c, err);
        ab_change_free(&c);
    }
    if (rc == 0) {
        s_pack_user(pk, &u, generated ? 1 : 0);
        if (generated)
            s_pack_once(ctx, pk, plain);
    }
    ab_password_free(plain);
    return rc;
}
