/* authkey.c — authkeys (MISP's AuthKeys, getAuthkey and Authkey): user.authkey and
 * authkey.add/list/view/edit/delete.
 *
 * A key is 40 random letters and digits (ab_authkey_new: getrandom, no modulo bias). Only
 * its HMAC-SHA-256 digest under the server secret and its first and last four characters
 * are stored; the raw key is in exactly one reply (the one that created it), and the apply
 * loop stores that reply for the command id with the key masked (ctx->secret_at/len). No
 * audit row, event or log line ever holds more than the first and last four characters.
 *
 * Who may: the catalog gives every command the "auth" permission (the role may use keys);
 * each handler then narrows it to the key's owner with ab_may_act_on_user — your own keys,
 * an org admin those of the organisation's users who are not site admins, a site admin
 * anyone's.
 *
 * Revocation deletes the row: ab_authenticate reads the key inside each batch's
 * transaction, so the next command presenting it is refused, on every engine. Expiry and
 * allowed_ips are checked there too (engine/auth/identity.c). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/handlers.h"
#include "auth/identity.h"
#include "wire/iprange.h"
#include "auth/secret.h"

#define EMAIL_MAX_BYTES   1024
#define COMMENT_MAX_BYTES 4004 /* 1000 characters of up to 4 bytes, and the NUL */
#define IPS_MAX           32
#define IPS_MAX_BYTES     (IPS_MAX * (AB_CIDR_TEXT_MAX + 3) + 3)
#define DAY_MS            86400000LL
#define DAYS_MAX          36500
#define STARS             "********************************" /* 32: the hidden middle */

/* The user a key belongs to (or is to belong to). */
typedef struct {
    int64_t id, org_id;
    bool site_admin, disabled, can_auth;
    char email[EMAIL_MAX_BYTES];
    char role[256];
} s_owner;

typedef struct {
    int64_t id, expiration, created;
    bool has_expiration, expired, read_only;
    char start[5], end[5];
    char allowed_ips[IPS_MAX_BYTES]; /* the stored JSON array; "" when none */
    char comment[COMMENT_MAX_BYTES];
    bool has_comment;
    s_owner owner;
} s_key;

/* What add and edit were asked to set. */
typedef struct {
    bool set_expiration, has_expiration;
    int64_t expiration;
    bool set_read_only, read_only;
    bool set_ips;
    char ips[IPS_MAX_BYTES]; /* canonical JSON array; "" = no limit */
    bool set_comment;
    char comment[COMMENT_MAX_BYTES]; /* "" = none */
} s_opts;

/* Unix milliseconds into DATETIME(3) without FROM_UNIXTIME, and expirations read as the
 * DATETIME's text (s_datetime_ms): MariaDB 10.11's FROM_UNIXTIME and UNIX_TIMESTAMP stop at
 * 2038, and an expiry may lie beyond. The session runs in UTC. */
#define FROM_MS "TIMESTAMPADD(MICROSECOND, ? * 1000, '1970-01-01')"

#define KEY_COLS                                                                                   \
    "k.id, k.user_id, u.email, u.org_id, r.perm_site_admin, u.disabled, r.perm_auth, r.name, "     \
    "k.authkey_start, k.authkey_end, k.expiration, k.expiration IS NOT NULL, "                     \
    "k.expiration IS NOT NULL AND k.expiration < UTC_TIMESTAMP(3), k.read_only, "                  \
    "k.allowed_ips, k.comment, " AB_SQL_MS("k.created")
#define KEY_FROM                                                                                   \
    " FROM auth_keys k JOIN users u ON u.id = k.user_id JOIN roles r ON r.id = u.role_id"

static void s_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int s_clip(size_t len)
{
    return (int)(len > 100 ? 100 : len);
}

static int s_oom(ab_error *err)
{
    return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
}

/* --- reading -------------------------------------------------------------------------- */

/* A DATETIME(3) as the connector gives it ("2099-12-31 00:00:00.000", UTC) in unix ms; 0
 * for NULL or a value that does not read. */
static int64_t s_datetime_ms(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (!text || sscanf(text, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                        &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void s_key_from_row(const ab_rows *rows, s_key *k)
{
    memset(k, 0, sizeof *k);
    k->id = ab_rows_int(rows, 0);
    k->owner.id = ab_rows_int(rows, 1);
    s_copy(k->owner.email, sizeof k->owner.email, ab_rows_str(rows, 2, NULL));
    k->owner.org_id = ab_rows_int(rows, 3);
    k->owner.site_admin = ab_rows_int(rows, 4) != 0;
    k->owner.disabled = ab_rows_int(rows, 5) != 0;
    k->owner.can_auth = ab_rows_int(rows, 6) != 0;
    s_copy(k->owner.role, sizeof k->owner.role, ab_rows_str(rows, 7, NULL));
    s_copy(k->start, sizeof k->start, ab_rows_str(rows, 8, NULL));
    s_copy(k->end, sizeof k->end, ab_rows_str(rows, 9, NULL));
    k->expiration = s_datetime_ms(ab_rows_str(rows, 10, NULL));
    k->has_expiration = ab_rows_int(rows, 11) != 0;
    k->expired = ab_rows_int(rows, 12) != 0;
    k->read_only = ab_rows_int(rows, 13) != 0;
    s_copy(k->allowed_ips, sizeof k->allowed_ips, ab_rows_str(rows, 14, NULL));
    const char *comment = ab_rows_str(rows, 15, NULL);
    k->has_comment = comment != NULL;
    s_copy(k->comment, sizeof k->comment, comment);
    k->created = ab_rows_int(rows, 16);
}

static int s_key_not_found(long long id, ab_error *err)
{
    return ab_fail(err, AB_E_NOT_FOUND, "authkey_id",
                   "no authkey has the id %lld (authkey list shows them)", id);
}

/* The key named by the authkey_id argument, locked FOR UPDATE when for_update, and the
 * check that the caller may manage its owner's keys. */
static int s_load_key(ab_ctx *ctx, bool for_update, s_key *k, ab_error *err)
{
    int64_t id = ab_arg_int(ctx, "authkey_id", 0);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, id);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    for_update ? "SELECT " KEY_COLS KEY_FROM " WHERE k.id = ? FOR UPDATE"
                               : "SELECT " KEY_COLS KEY_FROM " WHERE k.id = ?",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_key_from_row(&rows, k);
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return s_key_not_found(id, err);
    if (ab_may_act_on_user(ctx->cmd, ctx->who, (uint32_t)k->owner.id, (uint32_t)k->owner.org_id,
                           k->owner.site_admin, err) == 0)
        return 0;
    /* A key of a user out of the caller's reach is answered as a missing one, so that key
     * ids cannot be probed either. */
    return err->code == AB_E_NOT_FOUND ? s_key_not_found(id, err) : -1;
}

/* The user the "user" argument names (id or e-mail), with lock appended to the query ("",
 * " LOCK IN SHARE MODE": user.delete cannot remove it under a new key, " FOR UPDATE":
 * concurrent resets of one user run one after the other), and the check that the caller
 * may manage its keys. */
static int s_find_owner(ab_ctx *ctx, const char *lock, s_owner *o, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "user", &len);
    ab_params p;
    ab_params_init(&p);
    bool by_id = ab_ref_is_id(ref, len);
    ab_param_ref(&p, ref, len);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT u.id, u.email, u.org_id, r.perm_site_admin, u.disabled, r.perm_auth, r.name "
             "FROM users u JOIN roles r ON r.id = u.role_id WHERE u.%s = ?%s",
             by_id ? "id" : "email", lock);
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        memset(o, 0, sizeof *o);
        o->id = ab_rows_int(&rows, 0);
        s_copy(o->email, sizeof o->email, ab_rows_str(&rows, 1, NULL));
        o->org_id = ab_rows_int(&rows, 2);
        o->site_admin = ab_rows_int(&rows, 3) != 0;
        o->disabled = ab_rows_int(&rows, 4) != 0;
        o->can_auth = ab_rows_int(&rows, 5) != 0;
        s_copy(o->role, sizeof o->role, ab_rows_str(&rows, 6, NULL));
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_user_not_found(ctx->who, ref, len, err);
    return ab_may_act_on_user(ctx->cmd, ctx->who, (uint32_t)o->id, (uint32_t)o->org_id,
                              o->site_admin, err);
}

/* --- packing -------------------------------------------------------------------------- */

/* Call fn for each range of a stored allowed_ips value (["a","b"]). */
static size_t s_each_range(const char *ips, void (*fn)(const char *s, size_t len, void *arg),
                           void *arg)
{
    size_t n = 0;
    for (const char *p = ips; (p = strchr(p, '"')) != NULL;) {
        const char *end = strchr(p + 1, '"');
        if (!end)
            break;
        if (fn)
            fn(p + 1, (size_t)(end - p - 1), arg);
        n++;
        p = end + 1;
    }
    return n;
}

static void s_pack_range(const char *s, size_t len, void *pk)
{
    ab_pack_str(pk, s, len);
}

static void s_pack_ips(msgpack_packer *pk, const char *ips)
{
    ab_pack_cstr(pk, "allowed_ips");
    size_t n = s_each_range(ips, NULL, NULL);
    if (n == 0) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_array(pk, (uint32_t)n);
    s_each_range(ips, s_pack_range, pk);
}

/* A key as replies show it (never the key: its first and last four characters); extra map
 * entries follow when extra > 0. */
static void s_pack_key(msgpack_packer *pk, const s_key *k, uint32_t extra)
{
    msgpack_pack_map(pk, 11 + extra);
    ab_pack_kv_int(pk, "id", k->id);
    ab_pack_kv_int(pk, "user_id", k->owner.id);
    ab_pack_kv_cstr(pk, "email", k->owner.email);
    ab_pack_kv_cstr(pk, "authkey_start", k->start);
    ab_pack_kv_cstr(pk, "authkey_end", k->end);
    if (k->has_expiration)
        ab_pack_kv_int(pk, "expiration", k->expiration);
    else
        ab_pack_kv_cstr(pk, "expiration", NULL);
    ab_pack_kv_bool(pk, "expired", k->expired);
    ab_pack_kv_bool(pk, "read_only", k->read_only);
    s_pack_ips(pk, k->allowed_ips);
    ab_pack_kv_cstr(pk, "comment", k->has_comment ? k->comment : NULL);
    ab_pack_kv_int(pk, "created", k->created);
}

static void s_pack_key_row(msgpack_packer *pk, const ab_rows *row, const void *arg)
{
    (void)arg;
    s_key k;
    s_key_from_row(row, &k);
    s_pack_key(pk, &k, 0);
}

/* Pack the raw key as the entry "authkey" and tell the apply loop where its bytes are, so
 * that the stored copy of the reply (for repeats of the command id) has them masked. */
static void s_pack_raw(ab_ctx *ctx, msgpack_packer *pk, const char *raw)
{
    ab_pack_kv_str(pk, "authkey", raw, AB_AUTHKEY_LEN);
    const msgpack_sbuffer *buf = pk->data;
    ctx->secret_len = AB_AUTHKEY_LEN;
    ctx->secret_at = buf->size - AB_AUTHKEY_LEN;
}

/* Why a new key of o will not work yet, or NULL. */
static const char *s_unusable(const s_owner *o)
{
    if (o->disabled)
        return "the user is disabled: the key works once the user is enabled again";
    if (!o->can_auth)
        return "the user's role may not use authkeys: the key works once the role has the "
               "auth permission";
    return NULL;
}

/* --- arguments ------------------------------------------------------------------------ */

/* Read a time "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS][Z]" (UTC) into *ms. Returns 0 or -1. */
static int s_parse_time(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &m) != 2 || m != 5)
            return -1;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &tm.tm_sec, &m) != 1 || m != 2)
                return -1;
            p += 3;
        }
        if (*p == 'Z')
            p++;
    }
    if (*p != '\0' || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
        return -1;
    struct tm want = tm;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != want.tm_mday ||
        back.tm_mon != want.tm_mon - 1)
        return -1; /* 2027-02-30 and the like */
    *ms = (int64_t)t * 1000;
    return 0;
}

/* The expiration argument: never, days from now, a date or a time (see the catalog). */
static int s_parse_expiration(const ab_ctx *ctx, s_opts *o, ab_error *err)
{
    size_t len = 0;
    const char *s = ab_arg_str(ctx, "expiration", &len);
    if (!s)
        return 0;
    char buf[40];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), s);
    o->set_expiration = true;
    if (strcmp(buf, "never") == 0)
        return 0;
    o->has_expiration = true;
    if (ab_all_digits(buf, strlen(buf))) {
        long days = strlen(buf) <= 5 ? strtol(buf, NULL, 10) : 0;
        if (days < 1 || days > DAYS_MAX)
            return ab_fail(err, AB_E_INVALID, "expiration",
                           "expiration in days must be 1 to %d, not %s", DAYS_MAX, buf);
        o->expiration = ctx->now_ms + days * DAY_MS;
        return 0;
    }
    if (s_parse_time(buf, &o->expiration) < 0)
        return ab_fail(err, AB_E_INVALID, "expiration",
                       "'%s' is not an expiration: give days (30), a date (2027-01-31), a UTC "
                       "time (2027-01-31T18:00:00Z) or never",
                       buf);
    if (o->expiration <= ctx->now_ms)
        return ab_fail(err, AB_E_INVALID, "expiration",
                       "%s is in the past: a key must expire in the future", buf);
    if (o->expiration > ctx->now_ms + DAYS_MAX * DAY_MS)
        return ab_fail(err, AB_E_INVALID, "expiration", "%s is more than %d days away", buf,
                       DAYS_MAX);
    return 0;
}

/* allowed_ips: each entry an address or range, kept in canonical form (host bits cleared),
 * duplicates once; any_ip removes the limit. */
static int s_parse_ips(const ab_ctx *ctx, s_opts *o, ab_error *err)
{
    const msgpack_object *v = ctx->args ? ab_map_get(ctx->args, "allowed_ips") : NULL;
    bool any = ab_arg_bool(ctx, "any_ip", false);
    if (v && any)
        return ab_fail(err, AB_E_INVALID, "any_ip",
                       "any_ip removes the address limit: give it or allowed_ips, not both");
    o->set_ips = v != NULL || any;
    o->ips[0] = '\0';
    if (!v || v->via.array.size == 0)
        return 0;
    size_t used = (size_t)snprintf(o->ips, sizeof o->ips, "[");
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        ab_cidr r;
        const char *why = "";
        if (ab_cidr_parse(e->via.str.ptr, e->via.str.size, &r, &why) < 0)
            return ab_fail(err, AB_E_INVALID, "allowed_ips", "allowed_ips: '%.*s': %s",
                           s_clip(e->via.str.size), e->via.str.ptr, why);
        char text[AB_CIDR_TEXT_MAX], quoted[AB_CIDR_TEXT_MAX + 3];
        ab_cidr_format(&r, text);
        snprintf(quoted, sizeof quoted, "\"%s\"", text);
        if (strstr(o->ips, quoted))
            continue; /* 10.1.2.3/8 and 10.0.0.0/8 are one range */
        used += (size_t)snprintf(o->ips + used, sizeof o->ips - used, "%s%s", used > 1 ? "," : "",
                                 quoted);
    }
    snprintf(o->ips + used, sizeof o->ips - used, "]");
    return 0;
}

static int s_parse_opts(const ab_ctx *ctx, s_opts *o, ab_error *err)
{
    memset(o, 0, sizeof *o);
    if (s_parse_expiration(ctx, o, err) < 0 || s_parse_ips(ctx, o, err) < 0)
        return -1;
    o->set_read_only = ab_arg_has(ctx, "read_only");
    o->read_only = ab_arg_bool(ctx, "read_only", false);
    size_t len = 0;
    const char *comment = ab_arg_str(ctx, "comment", &len);
    o->set_comment = comment != NULL;
    if (comment && memchr(comment, '\0', len))
        return ab_fail(err, AB_E_INVALID, "comment", "comment has a NUL byte");
    if (comment)
        snprintf(o->comment, sizeof o->comment, "%.*s", (int)len, comment);
    return 0;
}

/* --- audit ---------------------------------------------------------------------------- */

static void s_time_text(int64_t ms, bool has, char *out, size_t len)
{
    if (!has) {
        snprintf(out, len, "never");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int s_audit_key(ab_ctx *ctx, const s_key *k, const char *action, const ab_change *c,
                       ab_error *err)
{
    char title[EMAIL_MAX_BYTES + 128];
    snprintf(title, sizeof title, "AuthKey (%lld): %s" STARS "%s (%s)", (long long)k->id, k->start,
             k->end, k->owner.email);
    if (ab_ctx_audit(ctx, "AuthKey", (uint64_t)k->id, action, title, ab_change_text(c)) < 0)
        return s_oom(err);
    return 0;
}

static void s_change_bool(ab_change *c, const char *field, const bool *old, bool now)
{
    ab_change_add(c, field, old ? (*old ? "1" : "0") : NULL, old ? 1 : 0, now ? "1" : "0", 1);
}

static void s_change_str(ab_change *c, const char *field, const char *old, const char *now)
{
    ab_change_add(c, field, old, old ? strlen(old) : 0, now, now ? strlen(now) : 0);
}

/* The change text of a new key: every field it was given. */
static void s_change_new(ab_change *c, const s_key *k)
{
    char v[64];
    snprintf(v, sizeof v, "%lld", (long long)k->owner.id);
    s_change_str(c, "user_id", NULL, v);
    if (k->has_expiration) {
        s_time_text(k->expiration, true, v, sizeof v);
        s_change_str(c, "expiration", NULL, v);
    }
    if (k->read_only)
        s_change_bool(c, "read_only", NULL, true);
    if (k->allowed_ips[0])
        s_change_str(c, "allowed_ips", NULL, k->allowed_ips);
    if (k->has_comment)
        s_change_str(c, "comment", NULL, k->comment);
}

/* --- writing -------------------------------------------------------------------------- */

/* Create a key for o as opts say; *k describes it, raw receives the key. */
static int s_insert(ab_ctx *ctx, const s_owner *o, const s_opts *opts, char raw[AB_AUTHKEY_LEN + 1],
                    s_key *k, ab_error *err)
{
    if (ab_authkey_new(raw) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no randomness available for a new key");
    uint8_t digest[AB_DIGEST_LEN];
    ab_secret_digest(ctx->engine->secret, raw, AB_AUTHKEY_LEN, digest);
    memset(k, 0, sizeof *k);
    k->owner = *o;
    memcpy(k->start, raw, 4);
    memcpy(k->end, raw + AB_AUTHKEY_LEN - 4, 4);
    k->has_expiration = opts->has_expiration;
    k->expiration = opts->expiration;
    k->read_only = opts->read_only;
    s_copy(k->allowed_ips, sizeof k->allowed_ips, opts->ips);
    k->has_comment = opts->comment[0] != '\0';
    s_copy(k->comment, sizeof k->comment, opts->comment);
    k->created = ctx->now_ms;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, o->id);
    ab_param_blob(&p, digest, sizeof digest);
    ab_param_str(&p, k->start, 4);
    ab_param_str(&p, k->end, 4);
    if (k->has_expiration)
        ab_param_int(&p, k->expiration);
    else
        ab_param_str(&p, NULL, 0);
    ab_param_int(&p, k->read_only);
    ab_param_cstr(&p, k->allowed_ips[0] ? k->allowed_ips : NULL);
    ab_param_cstr(&p, k->has_comment ? k->comment : NULL);
    ab_param_int(&p, ctx->now_ms);
    uint64_t id = 0;
    if (ab_db_run(ctx->db,
                  "INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, expiration, "
                  "read_only, allowed_ips, comment, created) VALUES (?, ?, ?, ?, " FROM_MS
                  ", ?, ?, ?, " FROM_MS ")",
                  &p, &id, NULL, err) < 0)
        return -1;
    k->id = (int64_t)id;
    return 0;
}

/* --- authkey.add ---------------------------------------------------------------------- */

int ab_authkey_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_owner o;
    s_opts opts;
    if (s_find_owner(ctx, " LOCK IN SHARE MODE", &o, err) < 0 || s_parse_opts(ctx, &opts, err) < 0)
        return -1;
    char raw[AB_AUTHKEY_LEN + 1];
    s_key k;
    if (s_insert(ctx, &o, &opts, raw, &k, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    s_change_new(&c, &k);
    int rc = s_audit_key(ctx, &k, "add", &c, err);
    ab_change_free(&c);
    if (rc == 0) {
        const char *warning = s_unusable(&o);
        s_pack_key(pk, &k, warning ? 2 : 1);
        if (warning)
            ab_pack_kv_cstr(pk, "warning", warning);
        s_pack_raw(ctx, pk, raw);
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

/* --- authkey.list / view -------------------------------------------------------------- */

int ab_authkey_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const ab_identity *who = ctx->who;
    ab_params p;
    ab_params_init(&p);
    const char *where;
    s_owner o;
    if (ab_arg_has(ctx, "user")) {
        if (s_find_owner(ctx, "", &o, err) < 0)
            return -1;
        where = " WHERE k.user_id = ?";
        ab_param_int(&p, o.id);
    } else if (who->site_admin) {
        where = " WHERE 1 = 1";
    } else if (who->flags & AB_RF_ADMIN) { /* own organisation, site admins' keys excepted */
        where = " WHERE u.org_id = ? AND (r.perm_site_admin = 0 OR u.id = ?)";
        ab_param_int(&p, who->org_id);
        ab_param_int(&p, who->user_id);
    } else {
        where = " WHERE k.user_id = ?";
        ab_param_int(&p, who->user_id);
    }
    ab_list_query q = {KEY_COLS, KEY_FROM, where, "k.id", &p, s_pack_key_row, NULL};
    return ab_pack_list(ctx, pk, &q, err);
}

int ab_authkey_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_key k;
    if (s_load_key(ctx, false, &k, err) < 0)
        return -1;
    s_pack_key(pk, &k, 0);
    return 0;
}

/* --- authkey.edit --------------------------------------------------------------------- */

/* Apply opts to *k, listing each real change in *c. */
static void s_apply_opts(s_key *k, const s_opts *o, ab_change *c)
{
    if (o->set_expiration && (o->has_expiration != k->has_expiration ||
                              (o->has_expiration && o->expiration != k->expiration))) {
        char was[64], now[64];
        s_time_text(k->expiration, k->has_expiration, was, sizeof was);
        s_time_text(o->expiration, o->has_expiration, now, sizeof now);
        s_change_str(c, "expiration", was, now);
        k->has_expiration = o->has_expiration;
        k->expiration = o->has_expiration ? o->expiration : 0;
        k->expired = false;
    }
    if (o->set_read_only && o->read_only != k->read_only) {
        bool was = k->read_only;
        s_change_bool(c, "read_only", &was, o->read_only);
        k->read_only = o->read_only;
    }
    if (o->set_ips && strcmp(o->ips, k->allowed_ips) != 0) {
        s_change_str(c, "allowed_ips", k->allowed_ips, o->ips);
        s_copy(k->allowed_ips, sizeof k->allowed_ips, o->ips);
    }
    if (o->set_comment && strcmp(o->comment, k->comment) != 0) {
        s_change_str(c, "comment", k->comment, o->comment);
        s_copy(k->comment, sizeof k->comment, o->comment);
        k->has_comment = o->comment[0] != '\0';
    }
}

int ab_authkey_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_key k;
    s_opts opts;
    if (s_load_key(ctx, true, &k, err) < 0 || s_parse_opts(ctx, &opts, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    s_apply_opts(&k, &opts, &c);
    int rc = 0;
    if (c.len > 0) { /* nothing changed: no write, no audit row */
        ab_params p;
        ab_params_init(&p);
        if (k.has_expiration)
            ab_param_int(&p, k.expiration);
        else
            ab_param_str(&p, NULL, 0);
        ab_param_int(&p, k.read_only);
        ab_param_cstr(&p, k.allowed_ips[0] ? k.allowed_ips : NULL);
        ab_param_cstr(&p, k.has_comment ? k.comment : NULL);
        ab_param_int(&p, k.id);
        rc = ab_db_run(ctx->db,
                       "UPDATE auth_keys SET expiration = " FROM_MS ", read_only = ?, "
                       "allowed_ips = ?, comment = ? WHERE id = ?",
                       &p, NULL, NULL, err);
        if (rc == 0)
            rc = s_audit_key(ctx, &k, "edit", &c, err);
    }
    ab_change_free(&c);
    if (rc == 0)
        s_pack_key(pk, &k, 0);
    return rc;
}

/* --- authkey.delete ------------------------------------------------------------------- */

/* Usable keys of enabled site administrators left (the break-glass warning). */
static int s_admin_keys_left(ab_ctx *ctx, int64_t *n, ab_error *err)
{
    return ab_db_scalar(ctx->db,
                        "SELECT COUNT(*)" KEY_FROM " WHERE r.perm_site_admin = 1 AND "
                        "r.perm_auth = 1 AND u.disabled = 0 AND (k.expiration IS NULL OR "
                        "k.expiration >= UTC_TIMESTAMP(3))",
                        NULL, n, err);
}

int ab_authkey_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_key k;
    if (s_load_key(ctx, true, &k, err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, k.id);
    if (ab_db_run(ctx->db, "DELETE FROM auth_keys WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)k.owner.id);
    s_change_str(&c, "user_id", v, NULL);
    int rc = s_audit_key(ctx, &k, "delete", &c, err);
    ab_change_free(&c);
    int64_t left = 1;
    bool was_admin_key = k.owner.site_admin && k.owner.can_auth && !k.owner.disabled && !k.expired;
    if (rc == 0 && was_admin_key)
        rc = s_admin_keys_left(ctx, &left, err);
    if (rc < 0)
        return -1;
    msgpack_pack_map(pk, left == 0 ? 7 : 6);
    ab_pack_kv_int(pk, "id", k.id);
    ab_pack_kv_int(pk, "user_id", k.owner.id);
    ab_pack_kv_cstr(pk, "email", k.owner.email);
    ab_pack_kv_cstr(pk, "authkey_start", k.start);
    ab_pack_kv_cstr(pk, "authkey_end", k.end);
    ab_pack_kv_bool(pk, "deleted", true);
    if (left == 0)
        ab_pack_kv_cstr(pk, "warning",
                        "no enabled site administrator has a usable authkey any more: on the "
                        "host, adminctl --local user authkey EMAIL --reset makes a new one");
    return 0;
}

/* --- user.authkey --------------------------------------------------------------------- */

static void s_pack_owner(msgpack_packer *pk, const s_owner *o)
{
    ab_pack_cstr(pk, "user");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "id", o->id);
    ab_pack_kv_cstr(pk, "email", o->email);
}

/* The keys of o (at most 1000, by id): a stored result for ab_rows_next. */
static int s_owner_keys(ab_ctx *ctx, const s_owner *o, bool for_update, ab_rows *rows,
                        ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, o->id);
    return ab_db_query(ctx->db,
                       for_update ? "SELECT " KEY_COLS KEY_FROM
                                    " WHERE k.user_id = ? ORDER BY k.id LIMIT 1000 FOR UPDATE"
                                  : "SELECT " KEY_COLS KEY_FROM
                                    " WHERE k.user_id = ? ORDER BY k.id LIMIT 1000",
                       &p, rows, err);
}

/* Without reset, for a user who has keys: list them and say how to get a new one. */
static int s_list_for_user(ab_ctx *ctx, const s_owner *o, int64_t count, msgpack_packer *pk,
                           ab_error *err)
{
    ab_rows rows;
    if (s_owner_keys(ctx, o, false, &rows, err) < 0)
        return -1;
    uint32_t n = (uint32_t)mysql_stmt_num_rows(rows.stmt);
    msgpack_pack_map(pk, 4);
    s_pack_owner(pk, o);
    ab_pack_kv_bool(pk, "created", false);
    ab_pack_cstr(pk, "keys");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n && ab_rows_next(&rows) == 1; i++)
        s_pack_key_row(pk, &rows, NULL);
    ab_rows_close(&rows);
    char msg[EMAIL_MAX_BYTES + 300];
    snprintf(msg, sizeof msg,
             "%s has %lld authkey(s); keys are stored only as digests and cannot be shown "
             "again: use --reset to revoke them and get a new one, or authkey add for another",
             o->email, (long long)count);
    ab_pack_kv_cstr(pk, "message", msg);
    return 0;
}

/* Revoke every key of o: one delete audit row each, and "abcd…wxyz, …" in revoked. */
static int s_revoke_all(ab_ctx *ctx, const s_owner *o, char *revoked, size_t cap, ab_error *err)
{
    ab_rows rows;
    if (s_owner_keys(ctx, o, true, &rows, err) < 0)
        return -1;
    s_key k;
    size_t used = 0;
    int rc = 0;
    revoked[0] = '\0';
    while (rc == 0 && ab_rows_next(&rows) == 1) {
        s_key_from_row(&rows, &k);
        used += (size_t)snprintf(revoked + used, cap - used, "%s%s…%s", used ? ", " : "", k.start,
                                 k.end);
        if (used >= cap)
            used = cap - 1;
        ab_change c;
        ab_change_init(&c);
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)o->id);
        s_change_str(&c, "user_id", v, NULL);
        rc = s_audit_key(ctx, &k, "delete", &c, err);
        ab_change_free(&c);
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, o->id);
    return ab_db_run(ctx->db, "DELETE FROM auth_keys WHERE user_id = ?", &p, NULL, NULL, err);
}

int ab_user_authkey(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_owner o;
    if (s_find_owner(ctx, " FOR UPDATE", &o, err) < 0)
        return -1;
    bool reset = ab_arg_bool(ctx, "reset", false);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, o.id);
    int64_t count = 0;
    if (ab_db_scalar(ctx->db, "SELECT COUNT(*) FROM auth_keys WHERE user_id = ?", &p, &count, err) <
        0)
        return -1;
    if (!reset && count > 0)
        return s_list_for_user(ctx, &o, count, pk, err);
    char revoked[2048] = "";
    if (reset && count > 0 && s_revoke_all(ctx, &o, revoked, sizeof revoked, err) < 0)
        return -1;
    s_opts opts;
    memset(&opts, 0, sizeof opts);
    snprintf(opts.comment, sizeof opts.comment, "%s",
             reset ? "Made by user authkey --reset" : "Made by user authkey");
    char raw[AB_AUTHKEY_LEN + 1];
    s_key k;
    if (s_insert(ctx, &o, &opts, raw, &k, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    s_change_new(&c, &k);
    int rc = s_audit_key(ctx, &k, "add", &c, err);
    ab_change_free(&c);
    if (rc == 0 && reset) { /* MISP's action for a reset, on the user */
        char title[EMAIL_MAX_BYTES + 64], now[16];
        snprintf(title, sizeof title, "User (%lld): %s", (long long)o.id, o.email);
        snprintf(now, sizeof now, "%s…%s", k.start, k.end);
        ab_change_init(&c);
        s_change_str(&c, "authkeys", revoked, now);
        if (ab_ctx_audit(ctx, "User", (uint64_t)o.id, "reset_auth_key", title, ab_change_text(&c)) <
            0)
            rc = s_oom(err);
        ab_change_free(&c);
    }
    if (rc == 0) {
        const char *warning = s_unusable(&o);
        msgpack_pack_map(pk, warning ? 6 : 5);
        s_pack_owner(pk, &o);
        ab_pack_kv_bool(pk, "created", true);
        ab_pack_kv_int(pk, "revoked", reset ? count : 0);
        ab_pack_cstr(pk, "key");
        s_pack_key(pk, &k, 0);
        if (warning)
            ab_pack_kv_cstr(pk, "warning", warning);
        s_pack_raw(ctx, pk, raw);
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}
