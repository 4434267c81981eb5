/* session.h — sessions made by auth.login: the token, authenticating a command by its
 * session, what a restricted session may run, and the purge of ended sessions and
 * brute-force rows.
 *
 * A token is 64 hex characters (32 random bytes) shown once to the client; the database
 * keeps only its HMAC-SHA-256 under the server secret (sessions.digest), like authkeys, so
 * a session is checked with one indexed read and a reader of the table cannot use it. */
#ifndef AB_SESSION_H
#define AB_SESSION_H

#include "core/engine.h"
#include "jobs/jobs.h"
#include "auth/secret.h"

#define AB_SESSION_TOKEN_LEN 64
/* last_seen is written at most this often per session: the idle timeout is exact to a
 * minute, and a busy session costs one UPDATE a minute, not one per command. */
#define AB_SESSION_TOUCH_S 60

/* A new token: 64 lower-case hex characters, NUL-terminated. Returns 0 or -1. */
int ab_session_token_new(char out[AB_SESSION_TOKEN_LEN + 1]);

/* Authenticate a command by its session token: one read by digest joined to the user, its
 * organisation and role; refused when unknown, malformed, past its expiry or idle for longer
 * than Session.timeout, or when the user is disabled. last_seen is refreshed when older
 * than AB_SESSION_TOUCH_S. Returns 0 with *who (via AB_VIA_SESSION, must_change_pw,
 * must_enrol_otp); -1 with *err unauthenticated and *fail_title (naming the session by a
 * digest prefix, never the token) and *fail_user (0 when unknown); or -1 with *err
 * unavailable/internal for database faults. */
int ab_session_authenticate(ab_db *db, const ab_secret *secret, const char *token, size_t len,
                            ab_identity *who, char *fail_title, size_t title_len,
                            uint32_t *fail_user, ab_error *err);

/* May a restricted session (must_change_pw / must_enrol_otp) run cmd with args? A session
 * that must change its password runs only user.change_pw on its own user, auth.logout and
 * auth.whoami; one that must set up an OTP only otp.enrol on its own user, auth.logout and
 * auth.whoami. Anything else (and every other credential) passes. Returns 0 or -1 with
 * *err = forbidden saying what to do first. */
int ab_session_may_run(const ab_command *cmd, const msgpack_object *args, const ab_identity *who,
                       ab_error *err);

/* End every session of user_id except keep_id (0 keeps none): a changed password must not
 * leave a stolen session working. *n receives how many ended. Returns 0 or -1 with *err. */
int ab_session_end_others(ab_db *db, uint32_t user_id, uint64_t keep_id, uint64_t *n,
                          ab_error *err);

/* Job type logins.purge (no arguments): delete sessions past their expiry or idle timeout
 * and brute-force rows past their expiry, in chunks that commit on their own. */
int ab_logins_purge_job(ab_job_run *run, const msgpack_object *args, ab_error *err);

#endif
