/* identity.h — who is calling (authentication by authkey) and whether they may run a
 * command (the single authorisation hook every command passes through). */
#ifndef AB_IDENTITY_H
#define AB_IDENTITY_H

#include "engine.h"
#include "secret.h"

/* Look up the user an authkey belongs to, by its keyed digest (one indexed read).
 * Returns 0 with *who filled; or -1 with *err: unauthenticated (unknown, malformed,
 * expired key, disabled user, role without the auth permission) — in that case
 * *fail_title receives the audit title naming the key tried, never the key itself — or
 * unavailable/internal for database faults. */
int ab_authenticate(ab_db *db, const ab_secret *secret, const char *key, size_t len,
                    ab_identity *who, char *fail_title, size_t title_len, uint32_t *fail_user,
                    ab_error *err);

/* The authorisation hook: may who run cmd? Returns 0, or -1 with *err = forbidden.
 * Until roles arrive (issue 5), site administrators may run everything and other users
 * only the commands that need no permission. */
int ab_authorise(const ab_command *cmd, const ab_identity *who, ab_error *err);

/* *n = the enabled users whose role makes them site administrators able to use a key —
 * those left to run the instance — leaving out the role skip_role and the user skip_user
 * (0: none). Role and user commands refuse what would make it 0. */
int ab_other_site_admins(ab_db *db, int64_t skip_role, int64_t skip_user, int64_t *n,
                         ab_error *err);

#endif
