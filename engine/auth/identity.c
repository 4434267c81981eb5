/* identity.c — see identity.h. */
#include "auth/identity.h"

#include <stdio.h>
#include <stdlib.h>

#include "wire/iprange.h"
#include <string.h>

static bool s_key_shape_ok(const char *key, size_t len)
{
    if (len != AB_AUTHKEY_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

/* How the log names a tried key: its first and last four characters (as MISP shows
 * keys) and a digest prefix to correlate attempts; never the key. */
static void s_describe_key(const char *key, size_t len, const uint8_t digest[AB_DIGEST_LEN],
                           char *out, size_t outlen)
{
    if (s_key_shape_ok(key, len))
        snprintf(out, outlen,
                 "Failed authentication using authkey %.4s…%.4s (digest %02x%02x%02x%02x)", key,
                 key + len - 4, digest[0], digest[1], digest[2], digest[3]);
    else
        snprintf(out, outlen,
                 "Failed authentication using a malformed authkey of %zu bytes (digest "
                 "%02x%02x%02x%02x)",
                 len, digest[0], digest[1], digest[2], digest[3]);
}

static void s_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Append ": reason" to the audit title of a refused key. */
static void s_title_reason(char *title, size_t title_len, const char *reason)
{
    size_t used = strlen(title);
    snprintf(title + used, title_len - used, ": %s", reason);
}

/* What authentication needs of one key's row: the identity, and what may refuse it. */
typedef struct {
    uint8_t digest[AB_DIGEST_LEN];
    ab_identity who;
    bool perm_auth, disabled, expired;
    char *allowed_ips; /* NULL: from anywhere */
} s_key_row;

struct ab_key_batch {
    s_key_row *rows;
    size_t nrows;
    uint8_t (*asked)[AB_DIGEST_LEN]; /* every digest read, found or not */
    size_t nasked;
};

/* Refuse a key that was found but may not be used now: *err says why (for the client),
 * and the audit title gets the reason appended (for the log). Returns 0 when it may be
 * used, -1 otherwise. */
static int s_refuse(const s_key_row *k, const char *ip, char *title, size_t title_len,
                    ab_error *err)
{
    const char *reason = NULL;
    if (k->disabled)
        reason = "the key's user is disabled";
    else if (k->expired)
        reason = "the authkey has expired";
    if (reason) {
        s_title_reason(title, title_len, reason);
        return ab_fail(err, AB_E_UNAUTHENTICATED, "auth", "%s", reason);
    }
    if (!ab_ip_allowed(k->allowed_ips, ip)) {
        s_title_reason(title, title_len, "used from an address outside its allowed_ips");
        return ab_fail(err, AB_E_UNAUTHENTICATED, "auth",
                       "the authkey may not be used from %s: it is limited to its allowed_ips",
                       ip && *ip ? ip : "an unknown address");
    }
    if (!k->perm_auth) {
        s_title_reason(title, title_len, "the user's role may not use authkeys");
        return ab_fail(err, AB_E_UNAUTHENTICATED, "auth",
                       "the user's role (%s) may not use authkeys", k->who.role_name);
    }
    return 0;
}

void ab_identity_from_row(const ab_rows *rows, ab_identity *who)
{
    memset(who, 0, sizeof *who);
    who->user_id = (uint32_t)ab_rows_int(rows, 0);
    s_copy(who->email, sizeof who->email, ab_rows_str(rows, 1, NULL));
    who->org_id = (uint32_t)ab_rows_int(rows, 2);
    s_copy(who->org_name, sizeof who->org_name, ab_rows_str(rows, 3, NULL));
    s_copy(who->org_uuid, sizeof who->org_uuid, ab_rows_str(rows, 4, NULL));
    who->role_id = (uint32_t)ab_rows_int(rows, 5);
    s_copy(who->role_name, sizeof who->role_name, ab_rows_str(rows, 6, NULL));
    who->site_admin = ab_rows_int(rows, 7) != 0;
}

/* The SELECT of key rows by digest; the WHERE clause follows. Columns: the identity's,
 * then 8 perm_auth, 9 disabled, 10 expired, 11 key id, 12 read-only, 13 level, 14 flags,
 * 15 allowed_ips, 16 digest. Expiry, allowed_ips and the role come with the key, so a
 * revoked, expired or narrowed key is refused by the very next batch. */
#define KEY_ROW_SELECT                                                                             \
    "SELECT " AB_IDENTITY_COLS ", r.perm_auth, u.disabled, "                                       \
    "k.expiration IS NOT NULL AND k.expiration < UTC_TIMESTAMP(3), "                               \
    "k.id, k.read_only, " AB_ROLE_LEVEL_SQL ", " AB_ROLE_FLAGS_SQL ", k.allowed_ips, k.digest "    \
    "FROM auth_keys k JOIN users u ON u.id = k.user_id "                                           \
    "JOIN organisations o ON o.id = u.org_id JOIN roles r ON r.id = u.role_id "

static int s_key_row_from(const ab_rows *rows, s_key_row *k)
{
    memset(k, 0, sizeof *k);
    ab_identity_from_row(rows, &k->who);
    k->who.via = AB_VIA_KEY;
    k->perm_auth = ab_rows_int(rows, 8) != 0;
    k->disabled = ab_rows_int(rows, 9) != 0;
    k->expired = ab_rows_int(rows, 10) != 0;
    k->who.key_id = (uint32_t)ab_rows_int(rows, 11);
    k->who.key_read_only = ab_rows_int(rows, 12) != 0;
    k->who.perm_level = (int)ab_rows_int(rows, 13);
    k->who.flags = (uint32_t)ab_rows_int(rows, 14);
    const char *ips = ab_rows_str(rows, 15, NULL);
    if (ips && !(k->allowed_ips = strdup(ips)))
        return -1;
    size_t dlen = 0;
    const char *d = ab_rows_str(rows, 16, &dlen);
    if (d && dlen == AB_DIGEST_LEN)
        memcpy(k->digest, d, AB_DIGEST_LEN);
    return 0;
}

/* One chunk of a batch read: up to KEY_CHUNK digests in one statement. To keep the
 * statement cache small the IN list has one of three sizes; the last digest fills the
 * rest. */
#define KEY_CHUNK 64
static int s_read_chunk(ab_db *db, ab_key_batch *b, size_t from, size_t n, ab_error *err)
{
    static const size_t sizes[] = {1, 8, KEY_CHUNK};
    size_t size = sizes[0];
    for (size_t i = 0; size < n; i++)
        size = sizes[i + 1];
    char sql[sizeof KEY_ROW_SELECT + 32 + 2 * KEY_CHUNK];
    int len = snprintf(sql, sizeof sql, "%sWHERE k.digest IN (?", KEY_ROW_SELECT);
    for (size_t i = 1; i < size; i++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ",?");
    snprintf(sql + len, sizeof sql - (size_t)len, ")");
    ab_params p;
    ab_params_init(&p);
    for (size_t i = 0; i < size; i++)
        ab_param_blob(&p, b->asked[from + (i < n ? i : n - 1)], AB_DIGEST_LEN);
    ab_rows rows;
    if (ab_db_query(db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = 0, more;
    while (rc == 0 && (more = ab_rows_next(&rows)) == 1)
        rc = s_key_row_from(&rows, &b->rows[b->nrows++]);
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return more < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

int ab_key_batch_read(ab_db *db, const ab_secret *secret, const char *const *keys,
                      const size_t *lens, size_t n, ab_key_batch **out, ab_error *err)
{
    ab_key_batch *b = calloc(1, sizeof *b);
    if (b && n > 0) {
        b->asked = calloc(n, sizeof *b->asked);
        b->rows = calloc(n, sizeof *b->rows);
    }
    if (!b || (n > 0 && (!b->asked || !b->rows))) {
        ab_key_batch_free(b);
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        if (s_key_shape_ok(keys[i], lens[i]))
            ab_secret_digest(secret, keys[i], lens[i], b->asked[b->nasked++]);
    for (size_t from = 0; from < b->nasked; from += KEY_CHUNK) {
        size_t chunk = b->nasked - from < KEY_CHUNK ? b->nasked - from : KEY_CHUNK;
        if (s_read_chunk(db, b, from, chunk, err) < 0) {
            ab_key_batch_free(b);
            return -1;
        }
    }
    *out = b;
    return 0;
}

void ab_key_batch_free(ab_key_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nrows; i++)
        free(b->rows[i].allowed_ips);
    free(b->rows);
    free(b->asked);
    free(b);
}

/* In a batch read: 1 with *row (found), 0 (read, not found), -1 (not read). */
static int s_batch_find(const ab_key_batch *b, const uint8_t digest[AB_DIGEST_LEN],
                        const s_key_row **row)
{
    if (!b)
        return -1;
    for (size_t i = 0; i < b->nrows; i++)
        if (memcmp(b->rows[i].digest, digest, AB_DIGEST_LEN) == 0) {
            *row = &b->rows[i];
            return 1;
        }
    for (size_t i = 0; i < b->nasked; i++)
        if (memcmp(b->asked[i], digest, AB_DIGEST_LEN) == 0)
            return 0;
    return -1;
}

/* One key's row by its own query: 1 (found, *k filled), 0 (none), -1 (*err). */
static int s_read_one(ab_db *db, const uint8_t digest[AB_DIGEST_LEN], s_key_row *k, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_blob(&p, digest, AB_DIGEST_LEN);
    ab_rows rows;
    if (ab_db_query(db, KEY_ROW_SELECT "WHERE k.digest = ?", &p, &rows, err) < 0)
        return -1;
    int found = ab_rows_next(&rows);
    if (found == 1 && s_key_row_from(&rows, k) < 0)
        found = -2;
    ab_rows_close(&rows);
    if (found < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL,
                       found == -2 ? "out of memory" : "database read failed");
    return found;
}

int ab_authenticate(ab_db *db, const ab_secret *secret, const ab_key_batch *pre, const char *key,
                    size_t len, const char *ip, ab_identity *who, char *fail_title,
                    size_t title_len, uint32_t *fail_user, ab_error *err)
{
    uint8_t digest[AB_DIGEST_LEN];
    ab_secret_digest(secret, key, len, digest);
    s_describe_key(key, len, digest, fail_title, title_len);
    *fail_user = 0;
    if (!s_key_shape_ok(key, len))
        return ab_fail(err, AB_E_UNAUTHENTICATED, "auth",
                       "the authkey is malformed: 40 letters and digits expected");
    const s_key_row *row = NULL;
    s_key_row own;
    memset(&own, 0, sizeof own);
    int found = s_batch_find(pre, digest, &row);
    if (found < 0) {
        found = s_read_one(db, digest, &own, err);
        if (found < 0)
            return -1;
        row = &own;
    }
    int rc;
    if (found == 0) {
        rc = ab_fail(err, AB_E_UNAUTHENTICATED, "auth", "the authkey is not valid");
    } else {
        *who = row->who;
        *fail_user = who->user_id;
        rc = s_refuse(row, ip, fail_title, title_len, err);
    }
    free(own.allowed_ips);
    return rc;
}

static uint32_t s_flag_needed(ab_permission perm)
{
    switch (perm) {
    case AB_PERM_AUTH:
        return AB_RF_AUTH;
    case AB_PERM_AUDIT:
        return AB_RF_AUDIT;
    case AB_PERM_ORG_ADMIN:
        return AB_RF_ADMIN;
    case AB_PERM_SITE_ADMIN:
        return AB_RF_SITE_ADMIN;
    default:
        return 0;
    }
}

int ab_authorise(const ab_command *cmd, const ab_identity *who, ab_error *err)
{
    if (who->key_read_only && cmd->writes)
        return ab_fail(err, AB_E_FORBIDDEN, "auth",
                       "%s's authkey is read-only and %s changes state; use a "
                       "read-write key",
                       who->email, cmd->type);
    uint32_t need = s_flag_needed(cmd->permission);
    if (need == 0 || who->site_admin || (who->flags & need) == need)
        return 0;
    return ab_fail(err, AB_E_FORBIDDEN, NULL, "%s needs the %s permission; %s has role %s",
                   cmd->type, ab_permission_name(cmd->permission), who->email, who->role_name);
}

/* What a caller who is not a site administrator hears about a user they cannot reach,
 * whether it exists or not. */
#define S_USER_HIDDEN                                                                              \
    "no such user among those you may manage (org admins: the users of their own "                 \
    "organisation; everyone else: their own account)"

int ab_user_not_found(const ab_identity *who, const char *ref, size_t len, ab_error *err)
{
    if (who && who->site_admin)
        return ab_fail(err, AB_E_NOT_FOUND, "user", "no user has the id or e-mail '%.*s'",
                       (int)(len > 100 ? 100 : len), ref);
    return ab_fail(err, AB_E_NOT_FOUND, "user", "%s", S_USER_HIDDEN);
}

int ab_may_act_on_user(const ab_command *cmd, const ab_identity *who, uint32_t user_id,
                       uint32_t org_id, bool target_site_admin, ab_error *err)
{
    if (who->site_admin)
        return 0;
    bool self_ok = cmd->permission == AB_PERM_SELF || cmd->permission == AB_PERM_AUTH;
    if (self_ok && user_id == who->user_id)
        return 0;
    bool org_admin = (who->flags & AB_RF_ADMIN) != 0;
    if (org_admin && org_id == who->org_id && !target_site_admin)
        return 0;
    if (org_admin && org_id == who->org_id)
        return ab_fail(err, AB_E_FORBIDDEN, "user",
                       "%s: user %u is a site administrator; only a site administrator may "
                       "do that",
                       cmd->type, user_id);
    return ab_fail(err, AB_E_NOT_FOUND, "user", "%s", S_USER_HIDDEN);
}

int ab_may_act_in_org(const ab_command *cmd, const ab_identity *who, uint32_t org_id,
                      const char *field, ab_error *err)
{
    if (who->site_admin || ((who->flags & AB_RF_ADMIN) && org_id == who->org_id))
        return 0;
    return ab_fail(err, AB_E_FORBIDDEN, field,
                   "%s: organisation %u is not yours; %s (role %s) manages the users of %s "
                   "only",
                   cmd->type, org_id, who->email, who->role_name, who->org_name);
}

/* The name of the lowest AB_RF_* bit set in flags (ab_role_perms is in bit order). */
static const char *s_flag_name(uint32_t flags)
{
    for (int i = 0; ab_role_perms[i]; i++)
        if (flags & (1u << i))
            return ab_role_perms[i];
    return "?";
}

int ab_may_grant_role(const ab_command *cmd, const ab_identity *who, const char *role, int level,
                      uint32_t flags, ab_error *err)
{
    if (who->site_admin)
        return 0;
    const char *why = NULL;
    if (flags & AB_RF_SITE_ADMIN)
        why = "it makes a site administrator";
    else if (level > who->perm_level)
        why = "its permission level is above yours";
    if (why)
        return ab_fail(err, AB_E_FORBIDDEN, "role", "%s: you may not give the role %s: %s",
                       cmd->type, role, why);
    uint32_t lacking = flags & ~who->flags;
    if (lacking)
        return ab_fail(err, AB_E_FORBIDDEN, "role",
                       "%s: you may not give the role %s: it has the permission %s, which your "
                       "role (%s) lacks",
                       cmd->type, role, s_flag_name(lacking), who->role_name);
    return 0;
}

int ab_other_site_admins(ab_db *db, int64_t skip_role, int64_t skip_user, int64_t *n, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, skip_role);
    ab_param_int(&p, skip_user);
    return ab_db_scalar(db,
                        "SELECT COUNT(*) FROM users u JOIN roles r ON r.id = u.role_id "
                        "WHERE r.perm_site_admin = 1 AND r.perm_auth = 1 AND u.disabled = 0 "
                        "AND r.id <> ? AND u.id <> ?",
                        &p, n, err);
}
