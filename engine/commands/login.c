/* login.c — logins (the manual's "Logging of failed authentication attempts" and MISP's
 * clearBruteforce, UserIP, IPUser): auth.login, auth.logout, bruteforce.clear, user.ips,
 * user.by_ip.
 *
 * auth.login is the one public command: the apply loop runs it with no identity. It checks,
 * in this order: the brute-force record (SecureAuth.amount live rows for this address and
 * e-mail refuse the login, whatever the password, and say how long to wait), the e-mail and
 * password (an unknown e-mail still costs a yescrypt verify against a dummy hash, and gets
 * the same answer as a wrong password), the disabled flag, the OTP when the user has one
 * (TOTP with replay refusal, HOTP advancing its counter; the row is read FOR UPDATE so two
 * logins cannot use one code). Success makes a session (session.h), sets last_login,
 * rehashes a password whose hash is outdated, records the address (user_login_ips) and is
 * audited as login.
 *
 * A failure must leave traces although the command fails and its savepoint is rolled back:
 * the handler sets ctx->after_failure (s_login_failed) and the apply loop calls it after
 * the rollback, in the batch's transaction, so the brute-force row and the login_fail audit
 * row commit with the batch while nothing else of the attempt does. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/handlers.h"
#include "auth/identity.h"
#include "auth/otp.h"
#include "auth/password.h"
#include "auth/session.h"
#include "core/settings_cache.h"

#define EMAIL_MAX_BYTES 1024

/* Why a login failed (ctx->note[1]); the audit row says it, the client only learns what it
 * may (the same words for an unknown e-mail and a wrong password). */
typedef enum {
    R_UNKNOWN_EMAIL = 1,
    R_WRONG_PASSWORD,
    R_DISABLED,
    R_OTP_MISSING,
    R_OTP_WRONG,
    R_OTP_REPLAYED,
    R_BLOCKED,
} s_reason;

static const char *s_reason_text(int64_t r)
{
    switch (r) {
    case R_UNKNOWN_EMAIL:
        return "unknown e-mail";
    case R_WRONG_PASSWORD:
        return "wrong password";
    case R_DISABLED:
        return "the user is disabled";
    case R_OTP_MISSING:
        return "no one-time code given";
    case R_OTP_WRONG:
        return "wrong one-time code";
    case R_OTP_REPLAYED:
        return "replayed one-time code";
    case R_BLOCKED:
        return "blocked by brute-force protection";
    default:
        return "refused";
    }
}

/* Failures that are guesses (of a password or a code) count against SecureAuth.amount. */
static bool s_counts(int64_t r)
{
    return r == R_UNKNOWN_EMAIL || r == R_WRONG_PASSWORD || r == R_OTP_WRONG || r == R_OTP_REPLAYED;
}

typedef struct {
    int64_t id;
    char email[EMAIL_MAX_BYTES];
    char org[EMAIL_MAX_BYTES];
    char *hash; /* users.password, owned */
    bool disabled, change_pw;
    char *sealed; /* users.totp, owned; NULL: no OTP */
    bool hotp;
    uint64_t counter;
    int64_t last_step;
} s_login_user;

static void s_user_free(s_login_user *u)
{
    ab_password_free(u->hash);
    free(u->sealed);
    u->hash = u->sealed = NULL;
}

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* --- failures ------------------------------------------------------------------------- */

static int s_audit_as(ab_ctx *ctx, uint32_t user_id, const char *email, const char *org,
                      const char *action, const char *title)
{
    ab_actor actor = {user_id, email, org, ctx->ip};
    if (ab_audit_add(ctx->audit, &actor, "User", user_id, action, title, NULL) < 0)
        return -1;
    return ab_events_audit(ctx->events, ctx->now_ms, "User", user_id, action, user_id);
}

/* The after-failure hook: the brute-force row (for guesses) and the login_fail audit row. */
static int s_login_failed(ab_ctx *ctx, const ab_error *failed, ab_error *err)
{
    (void)failed;
    size_t len = 0;
    const char *email = ab_arg_str(ctx, "email", &len);
    /* The whole address (at most 255 characters, 1,020 bytes): a cut one would count
     * against another login, or end inside a character. */
    char who[EMAIL_MAX_BYTES];
    snprintf(who, sizeof who, "%.*s", (int)len, email ? email : "");
    int64_t reason = ctx->note[1];
    if (s_counts(reason)) {
        ab_params p;
        ab_params_init(&p);
        ab_param_cstr(&p, ctx->ip);
        ab_param_cstr(&p, who);
        ab_param_int(&p, ab_settings_int("SecureAuth.expire", 300));
        if (ab_db_run(ctx->db,
                      "INSERT INTO bruteforces (ip, username, expire) "
                      "VALUES (?, ?, UTC_TIMESTAMP(3) + INTERVAL ? SECOND)",
                      &p, NULL, NULL, err) < 0)
            return -1;
    }
    char title[1200];
    snprintf(title, sizeof title, "Failed login attempt using username %s (%s)", who,
             s_reason_text(reason));
    if (s_audit_as(ctx, (uint32_t)ctx->note[0], who, "SYSTEM", "login_fail", title) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return 0;
}

/* Fail the login for reason (the hook records it) with the client's message. */
static int s_refuse(ab_ctx *ctx, int64_t user_id, s_reason reason, ab_error *err)
{
    ctx->after_failure = s_login_failed;
    ctx->note[0] = user_id;
    ctx->note[1] = reason;
    switch (reason) {
    case R_DISABLED:
        return ab_fail(err, AB_E_UNAUTHENTICATED, "email",
                       "this account is disabled: ask an administrator");
    case R_OTP_MISSING:
        return ab_fail(err, AB_E_UNAUTHENTICATED, "otp",
                       "this account needs a one-time code: pass otp (adminctl auth login "
                       "--otp CODE)");
    case R_OTP_WRONG:
        return ab_fail(err, AB_E_UNAUTHENTICATED, "otp", "the one-time code is not valid");
    case R_OTP_REPLAYED:
        return ab_fail(err, AB_E_UNAUTHENTICATED, "otp",
                       "this one-time code was already used: wait for the next one");
    default:
        return ab_fail(err, AB_E_UNAUTHENTICATED, NULL, "wrong e-mail or password");
    }
}

/* --- brute force ---------------------------------------------------------------------- */

/* 0 when this address and e-mail may try; else -1 with *err saying how long to wait. */
static int s_check_bruteforce(ab_ctx *ctx, const char *email, size_t len, ab_error *err)
{
    int64_t amount = ab_settings_int("SecureAuth.amount", 5), live = 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, email, len);
    ab_param_cstr(&p, ctx->ip);
    if (ab_db_scalar(ctx->db,
                     "SELECT COUNT(*) FROM bruteforces WHERE username = ? AND ip = ? AND "
                     "expire > UTC_TIMESTAMP(3)",
                     &p, &live, err) < 0)
        return -1;
    if (live < amount)
        return 0;
    /* Logins open again when fewer than amount rows are live: when the row at position
     * live - amount (oldest first) expires. */
    int64_t wait = 1;
    ab_params_init(&p);
    ab_param_str(&p, email, len);
    ab_param_cstr(&p, ctx->ip);
    ab_param_int(&p, live - amount);
    if (ab_db_scalar(ctx->db,
                     "SELECT CEIL(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), expire) / 1000000) "
                     "FROM bruteforces WHERE username = ? AND ip = ? AND "
                     "expire > UTC_TIMESTAMP(3) ORDER BY expire LIMIT 1 OFFSET ?",
                     &p, &wait, err) < 0)
        return -1;
    if (wait < 1)
        wait = 1;
    ctx->after_failure = s_login_failed;
    ctx->note[0] = 0;
    ctx->note[1] = R_BLOCKED;
    ab_fail(err, AB_E_UNAUTHENTICATED, "email",
            "too many failed logins for this account from this address (SecureAuth.amount = "
            "%lld within SecureAuth.expire): wait %lld seconds (about %lld minutes), or ask an "
            "administrator to run bruteforce clear",
            (long long)amount, (long long)wait, (long long)((wait + 59) / 60));
    err->retry_after = (int)(wait > 86400 * 30 ? 86400 * 30 : wait);
    return -1;
}

/* --- the user ------------------------------------------------------------------------- */

/* The user with this e-mail, locked (its OTP step or counter changes with the login).
 * Returns 1 found, 0 none, -1 error. */
static int s_load_user(ab_ctx *ctx, const char *email, size_t len, s_login_user *u, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, email, len);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT u.id, u.email, o.name, u.password, u.disabled, u.change_pw, u.totp, "
                    "u.otp_kind, u.hotp_counter, u.totp_last_step FROM users u "
                    "JOIN organisations o ON o.id = u.org_id WHERE u.email = ? FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        memset(u, 0, sizeof *u);
        u->id = ab_rows_int(&rows, 0);
        s_copy(u->email, sizeof u->email, ab_rows_str(&rows, 1, NULL));
        s_copy(u->org, sizeof u->org, ab_rows_str(&rows, 2, NULL));
        u->hash = s_dup(ab_rows_str(&rows, 3, NULL));
        u->disabled = ab_rows_int(&rows, 4) != 0;
        u->change_pw = ab_rows_int(&rows, 5) != 0;
        u->sealed = s_dup(ab_rows_str(&rows, 6, NULL));
        const char *kind = ab_rows_str(&rows, 7, NULL);
        u->hotp = kind && !strcmp(kind, "hotp");
        u->counter = (uint64_t)ab_rows_int(&rows, 8);
        u->last_step = ab_rows_int(&rows, 9);
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    return rc;
}

static pthread_once_t s_dummy_once = PTHREAD_ONCE_INIT;
static char *s_dummy_hash;

static void s_make_dummy(void)
{
    char word[33];
    if (ab_random_bytes(word, 32) == 0) {
        for (int i = 0; i < 32; i++)
            word[i] = (char)('a' + (unsigned char)word[i] % 26);
        word[32] = '\0';
        ab_password_hash(word, 0, &s_dummy_hash);
    }
}

/* Spend what a real verify costs, so that an unknown e-mail cannot be told by timing. */
static void s_verify_dummy(const char *password)
{
    pthread_once(&s_dummy_once, s_make_dummy);
    if (s_dummy_hash)
        (void)ab_password_verify(password, s_dummy_hash);
}

/* --- OTP ------------------------------------------------------------------------------ */

/* Check the code against u's seed. Returns 0 with u->counter / u->last_step advanced, -1
 * with *reason (or *err for a fault). */
static int s_check_otp(ab_ctx *ctx, s_login_user *u, const char *code, size_t len, s_reason *reason,
                       ab_error *err)
{
    *reason = 0;
    if (!code) {
        *reason = R_OTP_MISSING;
        return -1;
    }
    char digits[AB_OTP_DIGITS_MAX + 2];
    snprintf(digits, sizeof digits, "%.*s",
             (int)(len < sizeof digits - 1 ? len : sizeof digits - 1), code);
    uint8_t *seed = NULL;
    size_t slen = 0;
    if (!ctx->engine || !ctx->engine->secret ||
        ab_otp_unseal(ctx->engine->secret, (uint64_t)u->id, u->sealed, &seed, &slen) < 0)
        return ab_fail(err, AB_E_INTERNAL, "otp",
                       "the user's OTP seed does not open with this server's secret: delete "
                       "the OTP (otp delete) and enrol again");
    ab_otp_result r;
    if (u->hotp) {
        uint64_t next = 0;
        r = ab_otp_hotp_verify(seed, slen, u->counter, digits, AB_OTP_DIGITS, AB_OTP_HOTP_WINDOW,
                               &next);
        if (r == AB_OTP_OK)
            u->counter = next;
    } else {
        int64_t step = 0;
        r = ab_otp_totp_verify(seed, slen, time(NULL), digits, AB_OTP_DIGITS, AB_OTP_TOTP_WINDOW,
                               u->last_step, &step);
        if (r == AB_OTP_OK)
            u->last_step = step;
    }
    ab_otp_free(seed, slen);
    memset(digits, 0, sizeof digits);
    if (r == AB_OTP_OK)
        return 0;
    if (r == AB_OTP_FAILED)
        return ab_fail(err, AB_E_INTERNAL, "otp", "the one-time code could not be checked");
    *reason = r == AB_OTP_REPLAYED ? R_OTP_REPLAYED : R_OTP_WRONG;
    return -1;
}

/* --- success -------------------------------------------------------------------------- */

/* last_login, the OTP state, and a new hash when the stored one is outdated. */
static int s_update_user(ab_ctx *ctx, const s_login_user *u, const char *password, ab_error *err)
{
    char *rehash = NULL;
    if (ab_password_needs_rehash(u->hash, 0) && ab_password_hash(password, 0, &rehash) < 0)
        rehash = NULL; /* keep the old hash; the next login tries again */
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)u->counter);
    ab_param_int(&p, u->last_step);
    ab_param_cstr(&p, rehash);
    ab_param_int(&p, u->id);
    int rc = ab_db_run(ctx->db,
                       "UPDATE users SET last_login = FROM_UNIXTIME(? / 1000), hotp_counter = ?, "
                       "totp_last_step = ?, password = COALESCE(?, password) WHERE id = ?",
                       &p, NULL, NULL, err);
    ab_password_free(rehash);
    return rc;
}

static int s_record_ip(ab_ctx *ctx, int64_t user_id, ab_error *err)
{
    if (!ctx->ip || !ctx->ip[0])
        return 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, user_id);
    ab_param_cstr(&p, ctx->ip);
    return ab_db_run(ctx->db,
                     "INSERT INTO user_login_ips (user_id, ip, first_seen, last_seen, logins) "
                     "VALUES (?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), 1) ON DUPLICATE KEY "
                     "UPDATE last_seen = VALUES(last_seen), logins = logins + 1",
                     &p, NULL, NULL, err);
}

/* Store the session's digest; *expires_ms receives its absolute end. */
static int s_open_session(ab_ctx *ctx, int64_t user_id, const char *token, int64_t *expires_ms,
                          ab_error *err)
{
    uint8_t digest[AB_DIGEST_LEN];
    ab_secret_digest(ctx->engine->secret, token, strlen(token), digest);
    *expires_ms = ctx->now_ms + ab_settings_int("Session.cookieTimeout", 10080) * 60000;
    ab_params p;
    ab_params_init(&p);
    ab_param_blob(&p, digest, sizeof digest);
    ab_param_int(&p, user_id);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, *expires_ms);
    ab_param_int(&p, ctx->now_ms);
    ab_param_cstr(&p, ctx->ip && ctx->ip[0] ? ctx->ip : NULL);
    return ab_db_run(ctx->db,
                     "INSERT INTO sessions (digest, user_id, created, expires, last_seen, ip) "
                     "VALUES (?, ?, FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000), "
                     "FROM_UNIXTIME(? / 1000), ?)",
                     &p, NULL, NULL, err);
}

static void s_pack_login(ab_ctx *ctx, msgpack_packer *pk, const s_login_user *u, const char *token,
                         int64_t expires_ms, bool must_enrol)
{
    msgpack_pack_map(pk, 7);
    ab_pack_kv_int(pk, "user_id", u->id);
    ab_pack_kv_cstr(pk, "email", u->email);
    ab_pack_kv_int(pk, "expires", expires_ms);
    ab_pack_kv_int(pk, "idle_timeout_minutes", ab_settings_int("Session.timeout", 60));
    ab_pack_kv_bool(pk, "must_change_password", u->change_pw);
    ab_pack_kv_bool(pk, "must_enrol_otp", must_enrol);
    ab_pack_kv_cstr(pk, "session", token); /* last: its bytes are masked when stored */
    const msgpack_sbuffer *buf = pk->data;
    ctx->secret_len = strlen(token);
    ctx->secret_at = buf->size - ctx->secret_len;
}

static int s_login_ok(ab_ctx *ctx, msgpack_packer *pk, const s_login_user *u, const char *password,
                      ab_error *err)
{
    char token[AB_SESSION_TOKEN_LEN + 1];
    int64_t expires_ms = 0;
    if (ab_session_token_new(token) < 0)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "no randomness for a session token");
    char title[1200];
    snprintf(title, sizeof title, "Successful login by %s", u->email);
    int rc = s_open_session(ctx, u->id, token, &expires_ms, err);
    if (rc == 0)
        rc = s_update_user(ctx, u, password, err);
    if (rc == 0)
        rc = s_record_ip(ctx, u->id, err);
    if (rc == 0 && s_audit_as(ctx, (uint32_t)u->id, u->email, u->org, "login", title) < 0)
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    if (rc == 0)
        s_pack_login(ctx, pk, u, token, expires_ms,
                     !u->sealed && ab_settings_bool("Security.otp_required"));
    memset(token, 0, sizeof token);
    return rc;
}

/* --- auth.login ----------------------------------------------------------------------- */

/* Check password, disabled flag and OTP; 0 or -1 with *reason set (or *err for faults). */
static int s_authenticate(ab_ctx *ctx, s_login_user *u, const char *password, s_reason *reason,
                          ab_error *err)
{
    *reason = 0;
    if (!u->hash || !ab_password_verify(password, u->hash)) {
        *reason = R_WRONG_PASSWORD;
        return -1;
    }
    if (u->disabled) {
        *reason = R_DISABLED;
        return -1;
    }
    if (!u->sealed)
        return 0;
    size_t len = 0;
    const char *code = ab_arg_str(ctx, "otp", &len);
    return s_check_otp(ctx, u, code, len, reason, err);
}

int ab_auth_login(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t elen = 0, plen = 0;
    const char *email = ab_arg_str(ctx, "email", &elen);
    const char *pw = ab_arg_str(ctx, "password", &plen);
    if (!pw)
        return ab_fail(err, AB_E_INVALID, "password",
                       "password is required (adminctl auth login reads it from the terminal "
                       "or with --password-stdin)");
    if (!ctx->engine || !ctx->engine->secret)
        return ab_fail(err, AB_E_INTERNAL, NULL, "this engine has no server secret");
    if (s_check_bruteforce(ctx, email, elen, err) < 0)
        return -1;
    char password[AB_PASSWORD_MAX_BYTES + 2];
    snprintf(password, sizeof password, "%.*s",
             (int)(plen < sizeof password - 1 ? plen : sizeof password - 1), pw);
    s_login_user u;
    memset(&u, 0, sizeof u);
    int found = s_load_user(ctx, email, elen, &u, err), rc = -1;
    s_reason reason = 0;
    if (found == 0) {
        s_verify_dummy(password);
        rc = s_refuse(ctx, 0, R_UNKNOWN_EMAIL, err);
    } else if (found == 1) {
        if (s_authenticate(ctx, &u, password, &reason, err) < 0)
            rc = reason ? s_refuse(ctx, u.id, reason, err) : -1;
        else
            rc = s_login_ok(ctx, pk, &u, password, err);
    }
    memset(password, 0, sizeof password);
    s_user_free(&u);
    return rc;
}

/* --- auth.logout ---------------------------------------------------------------------- */

int ab_auth_logout(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    bool all = ab_arg_bool(ctx, "all", false);
    if (!all && ctx->who->via != AB_VIA_SESSION)
        return ab_fail(err, AB_E_INVALID, "all",
                       "this command did not come with a session, so there is none to end: "
                       "send it with the session, or pass all to end all of %s's sessions",
                       ctx->who->email);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, all ? (int64_t)ctx->who->user_id : (int64_t)ctx->who->session_id);
    uint64_t ended = 0;
    if (ab_db_run(ctx->db,
                  all ? "DELETE FROM sessions WHERE user_id = ?"
                      : "DELETE FROM sessions WHERE id = ?",
                  &p, NULL, &ended, err) < 0)
        return -1;
    char title[1200];
    snprintf(title, sizeof title, "Logout by %s (%llu session%s ended)", ctx->who->email,
             (unsigned long long)ended, ended == 1 ? "" : "s");
    if (ab_ctx_audit(ctx, "User", ctx->who->user_id, "logout", title, NULL) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "user_id", ctx->who->user_id);
    ab_pack_kv_int(pk, "ended", (int64_t)ended);
    return 0;
}

/* --- bruteforce.clear ----------------------------------------------------------------- */

int ab_bruteforce_clear(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *email = ab_arg_str(ctx, "email", &len);
    ab_params p;
    ab_params_init(&p);
    if (email)
        ab_param_str(&p, email, len);
    uint64_t n = 0;
    if (ab_db_run(ctx->db,
                  email ? "DELETE FROM bruteforces WHERE username = ?" : "DELETE FROM bruteforces",
                  &p, NULL, &n, err) < 0)
        return -1;
    char title[600];
    if (email)
        snprintf(title, sizeof title, "Brute-force entries cleared for %.*s (%llu)",
                 (int)(len > 255 ? 255 : len), email, (unsigned long long)n);
    else
        snprintf(title, sizeof title, "All brute-force entries cleared (%llu)",
                 (unsigned long long)n);
    if (ab_ctx_audit(ctx, "Bruteforce", 0, "delete", title, NULL) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_str(pk, "email", email, len);
    ab_pack_kv_int(pk, "cleared", (int64_t)n);
    return 0;
}

/* --- user.ips / user.by_ip ------------------------------------------------------------ */

#define FIRST_MS AB_SQL_MS("l.first_seen")
#define LAST_MS  AB_SQL_MS("l.last_seen")

static int s_list_ips(ab_ctx *ctx, msgpack_packer *pk, const char *where, ab_params *p,
                      ab_error *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT l.user_id, u.email, l.ip, " FIRST_MS ", " LAST_MS ", l.logins "
             "FROM user_login_ips l JOIN users u ON u.id = l.user_id WHERE %s "
             "ORDER BY l.last_seen DESC LIMIT 1000",
             where);
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, p, &rows, err) < 0)
        return -1;
    uint32_t n = (uint32_t)mysql_stmt_num_rows(rows.stmt);
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n && ab_rows_next(&rows) == 1; i++) {
        msgpack_pack_map(pk, 6);
        ab_pack_kv_int(pk, "user_id", ab_rows_int(&rows, 0));
        ab_pack_kv_cstr(pk, "email", ab_rows_str(&rows, 1, NULL));
        ab_pack_kv_cstr(pk, "ip", ab_rows_str(&rows, 2, NULL));
        ab_pack_kv_int(pk, "first_seen", ab_rows_int(&rows, 3));
        ab_pack_kv_int(pk, "last_seen", ab_rows_int(&rows, 4));
        ab_pack_kv_int(pk, "logins", ab_rows_int(&rows, 5));
    }
    ab_rows_close(&rows);
    return 0;
}

int ab_user_ips(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "user", &len);
    bool by_id = ab_ref_is_id(ref, len);
    ab_params p;
    ab_params_init(&p);
    ab_param_ref(&p, ref, len);
    int64_t id = 0;
    if (ab_db_scalar(ctx->db,
                     by_id ? "SELECT id FROM users WHERE id = ?"
                           : "SELECT id FROM users WHERE email = ?",
                     &p, &id, err) < 0)
        return -1;
    if (id == 0)
        return ab_user_not_found(ctx->who, ref, len, err);
    ab_params_init(&p);
    ab_param_int(&p, id);
    return s_list_ips(ctx, pk, "l.user_id = ?", &p, err);
}

int ab_user_by_ip(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *ip = ab_arg_str(ctx, "ip", &len);
    char text[64];
    unsigned char bin[16];
    snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), ip);
    if (len > 45 || (inet_pton(AF_INET, text, bin) != 1 && inet_pton(AF_INET6, text, bin) != 1))
        return ab_fail(err, AB_E_INVALID, "ip", "'%s' is not an IPv4 or IPv6 address", text);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, text);
    return s_list_ips(ctx, pk, "l.ip = ?", &p, err);
}
