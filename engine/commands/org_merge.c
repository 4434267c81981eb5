/* org_merge.c — org.merge (the manual's "Merge organisations", MISP's Organisation::orgMerge):
 * every user and every row that belongs to one organisation moves to another, then the
 * first is deleted, with one audit row (action merge) saying what moved.
 *
 * All of it runs inside the batch's transaction (the handler is AB_WRITES_MANY, so it has
 * its own SAVEPOINT): a failure, a lost connection or a killed engine leaves the old state
 * whole, and a commit leaves the new one whole. There is no half-merged state to repair.
 *
 * s_refs lists every column that points at an organisation. tests/e2e/test_org_merge.py
 * compares it (through the reply's "moved" map, which names each one) with the columns
 * called org, org_id, orgc_id or *_org_id that the database actually has, so a table added
 * later with such a column fails that test until it is listed here. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "auth/secret.h"

#define NAME_BYTES 1024 /* 255 characters of up to 4 bytes, and the NUL */

/* A column pointing at an organisation: by id, or by name (logs.org is MISP's text column
 * naming the acting user's organisation). The order is the order of the updates; the
 * audit log is last, as it is the largest table. */
static const struct {
    const char *column; /* table.column, as the reply and the audit row name it */
    const char *sql;    /* binds (new, old): the new id or name, then the old one */
    bool by_name;
} s_refs[] = {
    {"users.org_id", "UPDATE users SET org_id = ? WHERE org_id = ?", false},
    {"jobs.org_id", "UPDATE jobs SET org_id = ? WHERE org_id = ?", false},
    {"logs.org", "UPDATE logs SET org = ? WHERE org = ?", true},
};
#define NREFS (sizeof s_refs / sizeof s_refs[0])

typedef struct {
    int64_t id;
    char name[NAME_BYTES];
    char uuid[37];
} s_org;

static int s_clip(size_t len)
{
    return (int)(len > 100 ? 100 : len);
}

/* The organisation an argument names (id, uuid or name): its id, read without a lock. */
static int s_resolve(ab_ctx *ctx, const char *arg, int64_t *id, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, arg, &len);
    char lower[37];
    ab_params p;
    ab_params_init(&p);
    const char *sql = "SELECT id FROM organisations WHERE name = ?";
    if (ab_ref_is_id(ref, len)) {
        ab_param_int(&p, strtoll(ref, NULL, 10));
        sql = "SELECT id FROM organisations WHERE id = ?";
    } else if (ab_uuid_valid(ref, len)) {
        for (size_t i = 0; i < 36; i++)
            lower[i] = (char)tolower((unsigned char)ref[i]);
        ab_param_str(&p, lower, 36);
        sql = "SELECT id FROM organisations WHERE uuid = ?";
    } else {
        ab_param_str(&p, ref, len);
    }
    *id = 0;
    if (ab_db_scalar(ctx->db, sql, &p, id, err) < 0)
        return -1;
    if (*id == 0)
        return ab_fail(err, AB_E_NOT_FOUND, arg, "no organisation has the id, uuid or name '%.*s'",
                       s_clip(len), ref);
    return 0;
}

/* Lock both rows in id order (two merges in opposite directions cannot deadlock) and read
 * them again under the lock: one may have gone since it was resolved. */
static int s_lock_both(ab_ctx *ctx, s_org *from, s_org *into, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, from->id);
    ab_param_int(&p, into->id);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT id, name, uuid FROM organisations WHERE id IN (?, ?) ORDER BY id "
                    "FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int found = 0, rc;
    while ((rc = ab_rows_next(&rows)) == 1) {
        s_org *o = ab_rows_int(&rows, 0) == from->id ? from : into;
        snprintf(o->name, sizeof o->name, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(o->uuid, sizeof o->uuid, "%s", ab_rows_str(&rows, 2, NULL));
        found++;
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (found < 2)
        return ab_fail(err, AB_E_NOT_FOUND, from->name[0] ? "into" : "org",
                       "the organisation was deleted while the merge started; look again with "
                       "org list");
    return 0;
}

static int s_check_not_host(ab_ctx *ctx, const s_org *from, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, "host_org_id");
    int64_t host = 0;
    if (ab_db_scalar(ctx->db, "SELECT CAST(value AS SIGNED) FROM admin_settings WHERE setting = ?",
                     &p, &host, err) < 0)
        return -1;
    if (from->id == host)
        return ab_fail(err, AB_E_CONFLICT, "org",
                       "%s is the host organisation of this instance and cannot be merged away; "
                       "merge the other organisation into it instead",
                       from->name);
    return 0;
}

/* Point every column of s_refs at into instead of from; moved[i] = rows changed. */
static int s_move_rows(ab_ctx *ctx, const s_org *from, const s_org *into, uint64_t *moved,
                       ab_error *err)
{
    for (size_t i = 0; i < NREFS; i++) {
        ab_params p;
        ab_params_init(&p);
        if (s_refs[i].by_name) {
            ab_param_cstr(&p, into->name);
            ab_param_cstr(&p, from->name);
        } else {
            ab_param_int(&p, into->id);
            ab_param_int(&p, from->id);
        }
        moved[i] = 0;
        if (ab_db_run(ctx->db, s_refs[i].sql, &p, NULL, &moved[i], err) < 0)
            return -1;
    }
    return 0;
}

/* The audit row: MISP logs one `merge` row on the organisation merged away. */
static int s_audit(ab_ctx *ctx, const s_org *from, const s_org *into, const uint64_t *moved,
                   ab_error *err)
{
    char title[2 * NAME_BYTES + 128];
    snprintf(title, sizeof title, "Organisation (%lld): %s merged into %s (%lld)",
             (long long)from->id, from->name, into->name, (long long)into->id);
    ab_change c;
    ab_change_init(&c);
    char a[32], b[32];
    int na = snprintf(a, sizeof a, "%lld", (long long)from->id);
    int nb = snprintf(b, sizeof b, "%lld", (long long)into->id);
    ab_change_add(&c, "id", a, (size_t)na, b, (size_t)nb);
    ab_change_add(&c, "name", from->name, strlen(from->name), into->name, strlen(into->name));
    ab_change_add(&c, "uuid", from->uuid, strlen(from->uuid), into->uuid, strlen(into->uuid));
    for (size_t i = 0; i < NREFS; i++) { /* rows moved: "users.org_id () => (3)" */
        int n = snprintf(b, sizeof b, "%llu", (unsigned long long)moved[i]);
        ab_change_add(&c, s_refs[i].column, NULL, 0, b, (size_t)n);
    }
    int rc =
        ab_ctx_audit(ctx, "Organisation", (uint64_t)from->id, "merge", title, ab_change_text(&c));
    ab_change_free(&c);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    /* Rows this batch queued (this one included, when the caller belonged to the old
     * organisation) are inserted after the UPDATE of logs: rename them too. */
    if (ab_audit_rename_org(ctx->audit, from->name, into->name) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return 0;
}

static void s_pack_org(msgpack_packer *pk, const char *key, const s_org *o)
{
    ab_pack_cstr(pk, key);
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "id", o->id);
    ab_pack_kv_cstr(pk, "name", o->name);
    ab_pack_kv_cstr(pk, "uuid", o->uuid);
}

static void s_pack_result(msgpack_packer *pk, const s_org *from, const s_org *into,
                          const uint64_t *moved)
{
    msgpack_pack_map(pk, 3);
    s_pack_org(pk, "merged", from);
    s_pack_org(pk, "into", into);
    ab_pack_cstr(pk, "moved");
    msgpack_pack_map(pk, (uint32_t)NREFS);
    for (size_t i = 0; i < NREFS; i++)
        ab_pack_kv_int(pk, s_refs[i].column, (int64_t)moved[i]);
}

int ab_org_merge(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_org from, into;
    memset(&from, 0, sizeof from);
    memset(&into, 0, sizeof into);
    if (s_resolve(ctx, "org", &from.id, err) < 0 || s_resolve(ctx, "into", &into.id, err) < 0)
        return -1;
    if (from.id == into.id)
        return ab_fail(err, AB_E_INVALID, "into",
                       "an organisation cannot be merged into itself: name another one");
    uint64_t moved[NREFS];
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, from.id);
    if (s_lock_both(ctx, &from, &into, err) < 0 || s_check_not_host(ctx, &from, err) < 0 ||
        s_move_rows(ctx, &from, &into, moved, err) < 0 ||
        ab_db_run(ctx->db, "DELETE FROM organisations WHERE id = ?", &p, NULL, NULL, err) < 0 ||
        s_audit(ctx, &from, &into, moved, err) < 0)
        return -1;
    s_pack_result(pk, &from, &into, moved);
    return 0;
}
