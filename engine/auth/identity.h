/* identity.h — who is calling (authentication by authkey) and whether they may run a
 * command (the single authorisation hook every command passes through). */
#ifndef AB_IDENTITY_H
#define AB_IDENTITY_H

#include "core/engine.h"
#include "auth/secret.h"

/* Keys read ahead for a batch (ab_key_batch_read below). */
typedef struct ab_key_batch ab_key_batch;

/* Look up the user an authkey belongs to, by its keyed digest (one indexed read, or none
 * when pre, which may be NULL, holds the key's row), for a caller at address ip ("" when
 * unknown). Returns 0 with *who filled; or -1 with *err:
 * unauthenticated (unknown, malformed, expired key, a key whose allowed_ips exclude ip,
 * disabled user, role without the auth permission) — in that case *fail_title receives
 * the audit title naming the key tried (first and last four characters, never the key)
 * and why it was refused — or unavailable/internal for database faults. */
int ab_authenticate(ab_db *db, const ab_secret *secret, const ab_key_batch *pre, const char *key,
                    size_t len, const char *ip, ab_identity *who, char *fail_title,
                    size_t title_len, uint32_t *fail_user, ab_error *err);

/* The rows of many authkeys read ahead in a few statements (64 digests each), so a batch
 * of commands signed with different keys costs a few round trips, not one per key; pass
 * it to ab_authenticate, which reads a key it does not hold by itself. keys[i] are the raw
 * keys (lens[i] bytes); malformed ones are left out. Returns 0 with *out (free it with
 * ab_key_batch_free), or -1 with *err. */
int ab_key_batch_read(ab_db *db, const ab_secret *secret, const char *const *keys,
                      const size_t *lens, size_t n, ab_key_batch **out, ab_error *err);
void ab_key_batch_free(ab_key_batch *b);

/* The authorisation hook, the one place every command passes through: may who run cmd
 * at all? The catalog's permission column is the table (catalog.h): site admins pass
 * everything; others need the role flag the permission names; a read-only key runs only
 * commands that change nothing. Returns 0, or -1 with *err = forbidden. */
int ab_authorise(const ab_command *cmd, const ab_identity *who, ab_error *err);

/* The second half for commands on one user: may who run cmd on user user_id of
 * organisation org_id? Site admins: anyone. Org admins: users of their own organisation
 * who are not site admins. Anyone, for a "self" or "auth" command: themselves. Returns 0,
 * or -1 with *err (field "user"): forbidden for an org admin acting on a site admin of
 * their own organisation (user.list shows them that user anyway); otherwise the same
 * not_found a missing user gets (ab_user_not_found), so that nobody learns whether an
 * address or id exists outside what they may manage (MISP answers "Invalid user or not
 * authorised" alike). */
int ab_may_act_on_user(const ab_command *cmd, const ab_identity *who, uint32_t user_id,
                       uint32_t org_id, bool target_site_admin, ab_error *err);

/* The refusal for a user reference (id or e-mail, ref[0..len)) that names nobody: a site
 * administrator is told exactly that; anyone else gets the wording ab_may_act_on_user uses
 * for users outside their reach, so the two cannot be told apart. Returns -1. */
int ab_user_not_found(const ab_identity *who, const char *ref, size_t len, ab_error *err);

/* For commands that place a user in an organisation (user.add, user.edit's org, user.list's
 * org): may who act in organisation org_id? Site admins: any; org admins: their own. Returns
 * 0, or -1 with *err = forbidden naming field. */
int ab_may_act_in_org(const ab_command *cmd, const ab_identity *who, uint32_t org_id,
                      const char *field, ab_error *err);

/* May who give a user the role called role, of permission level level (0..3) and AB_RF_*
 * flags? Site admins: any role. Anyone else (org admins): not a site admin role, nor one
 * with a higher level or a flag their own role lacks — a stricter form of MISP's rule (no
 * site_admin, sync or regexp_access role from an org admin). Returns 0, or -1 with *err =
 * forbidden (field "role"). */
int ab_may_grant_role(const ab_command *cmd, const ab_identity *who, const char *role, int level,
                      uint32_t flags, ab_error *err);

/* The columns every credential's look-up starts with (users u, organisations o, roles r),
 * and what fills an identity from them: user, organisation, role, site admin. The caller
 * sets the rest (how, key or session, level, flags) from its own further columns. */
#define AB_IDENTITY_COLS "u.id, u.email, u.org_id, o.name, o.uuid, r.id, r.name, r.perm_site_admin"
void ab_identity_from_row(const ab_rows *rows, ab_identity *who);

/* SQL expressions over roles r: the permission level 0..3 and the AB_RF_* flags. */
#define AB_ROLE_LEVEL_SQL                                                                          \
    "CASE WHEN r.perm_add AND r.perm_modify AND r.perm_publish THEN 3 "                            \
    "WHEN r.perm_add AND r.perm_modify_org THEN 2 WHEN r.perm_add THEN 1 ELSE 0 END"
#define AB_ROLE_FLAGS_SQL                                                                          \
    "(r.perm_delegate | r.perm_sync << 1 | r.perm_admin << 2 | r.perm_audit << 3 | "               \
    "r.perm_auth << 4 | r.perm_site_admin << 5 | r.perm_regexp_access << 6 | "                     \
    "r.perm_tagger << 7 | r.perm_template << 8 | r.perm_sharing_group << 9 | "                     \
    "r.perm_tag_editor << 10)"

/* *n = the enabled users whose role makes them site administrators able to use a key —
 * those left to run the instance — leaving out the role skip_role and the user skip_user
 * (0: none). Role and user commands refuse what would make it 0. */
int ab_other_site_admins(ab_db *db, int64_t skip_role, int64_t skip_user, int64_t *n,
                         ab_error *err);

#endif
