/* session.c — see session.h. */
#include "auth/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire/envelope.h"
#include "auth/identity.h"
#include "wire/log.h"
#include "core/settings_cache.h"

#define PURGE_CHUNK 1000

int ab_session_token_new(char out[AB_SESSION_TOKEN_LEN + 1])
{
    uint8_t raw[AB_SESSION_TOKEN_LEN / 2];
    if (ab_random_bytes(raw, sizeof raw) < 0)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    memset(raw, 0, sizeof raw);
    return 0;
}

static bool s_token_shape_ok(const char *t, size_t len)
{
    if (len != AB_SESSION_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

/* Idle limit in seconds: Session.timeout is in minutes (MISP's unit). */
static int64_t s_idle_s(void)
{
    return ab_settings_int("Session.timeout", 60) * 60;
}

#define SESSION_SQL                                                                                \
    "SELECT " AB_IDENTITY_COLS ", u.disabled, s.expires < UTC_TIMESTAMP(3), "                      \
    "s.last_seen < UTC_TIMESTAMP(3) - INTERVAL ? SECOND, "                                         \
    "s.last_seen < UTC_TIMESTAMP(3) - INTERVAL ? SECOND, s.id, u.change_pw, "                      \
    "u.totp IS NULL, " AB_ROLE_LEVEL_SQL ", " AB_ROLE_FLAGS_SQL " "                                \
    "FROM sessions s JOIN users u ON u.id = s.user_id "                                            \
    "JOIN organisations o ON o.id = u.org_id JOIN roles r ON r.id = u.role_id "                    \
    "WHERE s.digest = ?"

static void s_fill(const ab_rows *rows, ab_identity *who)
{
    ab_identity_from_row(rows, who);
    who->via = AB_VIA_SESSION;
    who->session_id = (uint64_t)ab_rows_int(rows, 12);
    who->must_change_pw = ab_rows_int(rows, 13) != 0;
    who->must_enrol_otp = ab_rows_int(rows, 14) != 0 && ab_settings_bool("Security.otp_required");
    who->perm_level = (int)ab_rows_int(rows, 15);
    who->flags = (uint32_t)ab_rows_int(rows, 16);
}

static int s_touch(ab_db *db, uint64_t id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)id);
    return ab_db_run(db, "UPDATE sessions SET last_seen = UTC_TIMESTAMP(3) WHERE id = ?", &p, NULL,
                     NULL, err);
}

int ab_session_authenticate(ab_db *db, const ab_secret *secret, const char *token, size_t len,
                            ab_identity *who, char *fail_title, size_t title_len,
                            uint32_t *fail_user, ab_error *err)
{
    uint8_t digest[AB_DIGEST_LEN];
    ab_secret_digest(secret, token, len, digest);
    snprintf(fail_title, title_len,
             "Failed authentication using a session (digest %02x%02x%02x%02x)", digest[0],
             digest[1], digest[2], digest[3]);
    *fail_user = 0;
    if (!s_token_shape_ok(token, len))
        return ab_fail(err, AB_E_UNAUTHENTICATED, "session",
                       "the session token is malformed: 64 hex digits expected");
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, s_idle_s());
    ab_param_int(&p, AB_SESSION_TOUCH_S);
    ab_param_blob(&p, digest, sizeof digest);
    ab_rows rows;
    if (ab_db_query(db, SESSION_SQL, &p, &rows, err) < 0)
        return -1;
    int found = ab_rows_next(&rows);
    int rc = 0;
    bool touch = false;
    if (found != 1) {
        rc = found < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed")
                       : ab_fail(err, AB_E_UNAUTHENTICATED, "session",
                                 "the session is not valid (ended by logout, or unknown): log "
                                 "in again");
    } else {
        s_fill(&rows, who);
        *fail_user = who->user_id;
        touch = ab_rows_int(&rows, 11) != 0;
        if (ab_rows_int(&rows, 8) != 0)
            rc = ab_fail(err, AB_E_UNAUTHENTICATED, "session", "the session's user is disabled");
        else if (ab_rows_int(&rows, 9) != 0)
            rc = ab_fail(err, AB_E_UNAUTHENTICATED, "session",
                         "the session has expired (Session.cookieTimeout): log in again");
        else if (ab_rows_int(&rows, 10) != 0)
            rc = ab_fail(err, AB_E_UNAUTHENTICATED, "session",
                         "the session ended after %lld minutes without use (Session.timeout): "
                         "log in again",
                         (long long)(s_idle_s() / 60));
    }
    ab_rows_close(&rows);
    if (rc == 0 && touch && s_touch(db, who->session_id, err) < 0)
        return -1;
    return rc;
}

/* Whether args' "user" names who (by id or e-mail). */
static bool s_names_self(const msgpack_object *args, const ab_identity *who)
{
    const msgpack_object *u = args ? ab_map_get(args, "user") : NULL;
    if (!u || u->type != MSGPACK_OBJECT_STR)
        return false;
    char ref[300];
    if (u->via.str.size >= sizeof ref)
        return false;
    memcpy(ref, u->via.str.ptr, u->via.str.size);
    ref[u->via.str.size] = '\0';
    if (ab_ref_is_id(ref, u->via.str.size))
        return strtoull(ref, NULL, 10) == who->user_id;
    return strcasecmp(ref, who->email) == 0;
}

int ab_session_may_run(const ab_command *cmd, const msgpack_object *args, const ab_identity *who,
                       ab_error *err)
{
    if (who->via != AB_VIA_SESSION || (!who->must_change_pw && !who->must_enrol_otp))
        return 0;
    if (!strcmp(cmd->type, "auth.logout") || !strcmp(cmd->type, "auth.whoami"))
        return 0;
    const char *needed = who->must_change_pw ? "user.change_pw" : "otp.enrol";
    if (!strcmp(cmd->type, needed) && s_names_self(args, who))
        return 0;
    if (who->must_change_pw)
        return ab_fail(err, AB_E_FORBIDDEN, "session",
                       "%s must change their password first: run user change-pw %s with this "
                       "session (only that, whoami and logout work until then)",
                       who->email, who->email);
    return ab_fail(err, AB_E_FORBIDDEN, "session",
                   "Security.otp_required is on and %s has no OTP yet: run otp enrol %s with this "
                   "session (only that, whoami and logout work until then)",
                   who->email, who->email);
}

/* Delete up to PURGE_CHUNK rows matching sql (with the idle seconds bound when idle >= 0),
 * commit, and repeat until none is left. *n receives the total. */
static int s_purge(ab_db *db, const char *sql, int64_t idle, uint64_t *n, ab_error *err)
{
    uint64_t got = 0;
    *n = 0;
    do {
        ab_params p;
        ab_params_init(&p);
        if (idle >= 0)
            ab_param_int(&p, idle);
        ab_param_int(&p, PURGE_CHUNK);
        if (ab_db_run(db, sql, &p, NULL, &got, err) < 0 || ab_db_exec(db, "COMMIT", err) < 0)
            return -1;
        *n += got;
    } while (got == PURGE_CHUNK);
    return 0;
}

int ab_session_end_others(ab_db *db, uint32_t user_id, uint64_t keep_id, uint64_t *n, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, user_id);
    ab_param_int(&p, (int64_t)keep_id);
    *n = 0;
    return ab_db_run(db, "DELETE FROM sessions WHERE user_id = ? AND id <> ?", &p, NULL, n, err);
}

int ab_logins_purge_job(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    (void)args;
    ab_db *db = ab_job_db(run);
    ab_error ignored;
    if (ab_settings_sync(db, &ignored) < 0)
        AB_WARN("logins.purge: cannot read the settings (%s); using what this worker knows",
                ignored.message);
    uint64_t sessions = 0, rows = 0;
    if (s_purge(db,
                "DELETE FROM sessions WHERE expires < UTC_TIMESTAMP(3) OR last_seen < "
                "UTC_TIMESTAMP(3) - INTERVAL ? SECOND LIMIT ?",
                s_idle_s(), &sessions, err) < 0 ||
        s_purge(db, "DELETE FROM bruteforces WHERE expire < UTC_TIMESTAMP(3) LIMIT ?", -1, &rows,
                err) < 0)
        return -1;
    char msg[128];
    snprintf(msg, sizeof msg, "Deleted %llu ended sessions and %llu expired brute-force rows",
             (unsigned long long)sessions, (unsigned long long)rows);
    return ab_job_progress(run, 100, msg) < 0
               ? ab_fail(err, AB_E_UNAVAILABLE, NULL, "stopped after the purge")
               : 0;
}
