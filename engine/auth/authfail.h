/* authfail.h — failed authentications per source address: the audit rows they cost and the
 * throttle that refuses an address that keeps failing.
 *
 * Anonymous traffic must not make the audit log grow without bound, nor cost a database
 * read per guess for ever. So, per engine process (one table shared by its apply loops,
 * under a lock; in memory, because a flood must cost no write of its own and the throttle
 * must answer before any database work):
 *
 * - Audit rows. Failures are grouped by source: the caller's address and the user the
 *   refused credential names (0 for an unknown key or session, so guessing stays one group
 *   per address; a real user's expired key, or a key used outside its allowed_ips, keeps a
 *   group of its own and is never hidden by a flood of guesses). A group writes at most one
 *   `auth_fail` row per Security.auth_fail_log_window seconds; a row stands for every
 *   failure of its group since the group's previous row and says how many in its change
 *   text, `failures () => (N)`. The first failure after a quiet window writes its row at
 *   once, with the key and the reason as before; the failures after it are counted, and
 *   their count goes into the group's next row, written by the first failure after the
 *   window, or, if none comes, by whichever apply loop looks first once the window has
 *   ended (ab_authfail_due). Window 0, or Security.log_each_individual_auth_fail, writes a
 *   row per refused credential of a batch, as before.
 * - Throttle. An address whose failures reach Security.auth_fail_throttle_amount within
 *   Security.auth_fail_throttle_period seconds (counted from its first failure of the
 *   period) is refused, every command, until that period ends: `unavailable` with
 *   retry_after, decided in phase one from this table alone. Commands from other addresses
 *   do not wait for it. An unknown address ("": a Kafka record) is never throttled: it
 *   would stop every Kafka client at once.
 *
 * Rows are queued into the batch's audit queue inside its transaction (ab_authfail_account)
 * and the table changes at once, so two loops never both write a group's row for one
 * window; when the transaction does not commit, ab_authfail_revert puts the counts back, so
 * the retry (or the next row) carries them and nothing is counted twice.
 *
 * The table holds at most max_sources groups (beyond that, new sources share one overflow
 * group, which is logged like any other and never throttled), and forgets a group once its
 * window and throttle period have passed with nothing left to write. */
#ifndef AB_AUTHFAIL_H
#define AB_AUTHFAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit.h"
#include "wire/errors.h"

/* Groups one engine tracks; each costs at most about 600 bytes. */
#define AB_AUTHFAIL_SOURCES 16384

typedef struct ab_authfail ab_authfail;

/* The limits, from the settings (Security.auth_fail_*). */
typedef struct {
    int64_t window_ms; /* one row per group per window; 0: a row per refused credential */
    int64_t amount;    /* failures per period that throttle an address; 0: no throttle */
    int64_t period_ms; /* the throttle's period */
} ab_authfail_limits;

/* The limits as the settings cache holds them now. */
void ab_authfail_limits_now(ab_authfail_limits *lim);

/* A table for at most max_sources groups (plus the overflow group). Caller owns it; the
 * apply loops of one engine share it. NULL when out of memory. */
ab_authfail *ab_authfail_new(size_t max_sources);
void ab_authfail_destroy(ab_authfail **f);

/* Phase one: may the address ip be served now? Returns 0, or -1 with *err = unavailable,
 * retry_after = the seconds (at least 1) until its throttle period ends. Costs one atomic
 * read while no address is throttled. f may be NULL (never throttled). */
int ab_authfail_throttled(ab_authfail *f, const char *ip, int64_t now_ms, ab_error *err);

/* One refused credential of a batch. Strings are borrowed for the call. */
typedef struct {
    const char *ip;    /* the commands' source address; "" when unknown */
    uint32_t user_id;  /* the user the credential names; 0 when it names nobody */
    const char *email; /* that user's e-mail, or "" */
    const char *title; /* its own row's title: the key (start…end) and why it was refused */
    uint32_t count;    /* commands of the batch it refused */
} ab_authfail_note;

/* What one ab_authfail_account changed, so that ab_authfail_revert can undo it. */
typedef struct ab_authfail_undo ab_authfail_undo;
ab_authfail_undo *ab_authfail_undo_new(void);
void ab_authfail_undo_destroy(ab_authfail_undo **u);

/* Inside a batch's transaction, before its audit rows are flushed: count the batch's n
 * refused credentials against their groups and addresses, queue into audit the rows that
 * are due (theirs, and at most once a second, those of every group whose window ended
 * with failures not yet in a row), and record in *undo what changed (it is emptied
 * first). Returns 0, or -1 when out of memory (nothing changed). */
int ab_authfail_account(ab_authfail *f, const ab_authfail_limits *lim,
                        const ab_authfail_note *notes, size_t n, int64_t now_ms, ab_audit *audit,
                        ab_authfail_undo *undo);

/* At a clean stop: as ab_authfail_account with no failures, but every group's failures not
 * yet in a row get their row now, whatever its window (the table dies with the process). */
int ab_authfail_flush(ab_authfail *f, const ab_authfail_limits *lim, int64_t now_ms,
                      ab_audit *audit, ab_authfail_undo *undo);

/* The transaction of the last ab_authfail_account did not commit: give back what it took
 * (its rows' counts wait for the next row; its failures no longer count). Empties undo. */
void ab_authfail_revert(ab_authfail *f, ab_authfail_undo *undo);

/* Should an idle loop open a transaction (which re-reads the settings) and call
 * ab_authfail_account with no notes? Yes when a row waits for the end of its window, and
 * once a second while an address is throttled (its block may have ended, or the throttle
 * been turned off, even by adminctl --local). */
bool ab_authfail_due(ab_authfail *f, int64_t now_ms);

#endif
