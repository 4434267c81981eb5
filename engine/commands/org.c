/* org.c — organisations (the manual's "Organisations"): add, edit, delete, view, list.
 * Names and uuids are unique (the database's unique keys decide, so two engines cannot
 * both win); the host organisation and organisations with users cannot be deleted. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "auth/secret.h"

#define ORG_COLS                                                                                   \
    "o.id, o.name, o.uuid, o.description, o.type, o.nationality, o.sector, o.created_by, "         \
    "COALESCE((SELECT c.email FROM users c WHERE c.id = o.created_by), ''), o.contacts, "          \
    "o.local, " AB_SQL_MS("o.date_created") ", " AB_SQL_MS(                                        \
        "o.date_modified") ", "                                                                    \
                           "(SELECT COUNT(*) FROM users u WHERE u.org_id = o.id)"

/* The text fields, in the order of ORG_COLS' text columns and of the UPDATE below. */
enum { F_NAME, F_UUID, F_DESCRIPTION, F_TYPE, F_NATIONALITY, F_SECTOR, F_CONTACTS, F_COUNT };
static const char *const s_field[F_COUNT] = {"name",        "uuid",   "description", "type",
                                             "nationality", "sector", "contacts"};
static const int s_col[F_COUNT] = {1, 2, 3, 4, 5, 6, 9};

typedef struct {
    int64_t id, created_by, date_created, date_modified, user_count;
    bool local;
    char *text[F_COUNT]; /* NULL = SQL NULL */
    char *created_by_email;
} s_org;

static void s_org_free(s_org *o)
{
    for (int f = 0; f < F_COUNT; f++)
        free(o->text[f]);
    free(o->created_by_email);
    memset(o, 0, sizeof *o);
}

static char *s_dup(const char *s, size_t len)
{
    if (!s)
        return NULL;
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static void s_org_from_row(const ab_rows *r, s_org *o)
{
    memset(o, 0, sizeof *o);
    o->id = ab_rows_int(r, 0);
    for (int f = 0; f < F_COUNT; f++) {
        size_t len = 0;
        const char *v = ab_rows_str(r, s_col[f], &len);
        o->text[f] = s_dup(v, len);
    }
    o->created_by = ab_rows_int(r, 7);
    size_t len = 0;
    const char *email = ab_rows_str(r, 8, &len);
    o->created_by_email = s_dup(email ? email : "", email ? len : 0);
    o->local = ab_rows_int(r, 10) != 0;
    o->date_created = ab_rows_int(r, 11);
    o->date_modified = ab_rows_int(r, 12);
    o->user_count = ab_rows_int(r, 13);
}

static void s_pack_org(msgpack_packer *pk, const s_org *o)
{
    msgpack_pack_map(pk, 14);
    ab_pack_kv_int(pk, "id", o->id);
    for (int f = 0; f < F_COUNT; f++)
        ab_pack_kv_cstr(pk, s_field[f], o->text[f]);
    ab_pack_kv_bool(pk, "local", o->local);
    ab_pack_kv_int(pk, "created_by", o->created_by);
    ab_pack_kv_cstr(pk, "created_by_email", o->created_by_email);
    ab_pack_kv_int(pk, "date_created", o->date_created);
    ab_pack_kv_int(pk, "date_modified", o->date_modified);
    ab_pack_kv_int(pk, "user_count", o->user_count);
}

/* Find the organisation the "org" argument names: an id, a uuid, or a name. */
static int s_find(ab_ctx *ctx, bool for_update, s_org *out, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "org", &len);
    char lower[37];
    ab_params p;
    ab_params_init(&p);
    const char *sql;
    if (ab_ref_is_id(ref, len)) {
        ab_param_int(&p, strtoll(ref, NULL, 10));
        sql = for_update ? "SELECT " ORG_COLS " FROM organisations o WHERE o.id = ? FOR UPDATE"
                         : "SELECT " ORG_COLS " FROM organisations o WHERE o.id = ?";
    } else if (ab_uuid_valid(ref, len)) {
        for (size_t i = 0; i < 36; i++)
            lower[i] = (char)tolower((unsigned char)ref[i]);
        ab_param_str(&p, lower, 36);
        sql = for_update ? "SELECT " ORG_COLS " FROM organisations o WHERE o.uuid = ? FOR UPDATE"
                         : "SELECT " ORG_COLS " FROM organisations o WHERE o.uuid = ?";
    } else {
        ab_param_str(&p, ref, len);
        sql = for_update ? "SELECT " ORG_COLS " FROM organisations o WHERE o.name = ? FOR UPDATE"
                         : "SELECT " ORG_COLS " FROM organisations o WHERE o.name = ?";
    }
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_org_from_row(&rows, out);
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "org",
                       "no organisation has the id, uuid or name '%.*s'",
                       (int)(len > 100 ? 100 : len), ref);
    return 0;
}

/* Turn a unique-key violation into the conflict the user can act on. */
static int s_write_failed(ab_ctx *ctx, const s_org *o, ab_error *err)
{
    const char *key = ab_db_dup_key(ctx->db);
    if (strcmp(key, "organisations_name") == 0)
        return ab_fail(err, AB_E_CONFLICT, "name", "an organisation named '%s' already exists",
                       o->text[F_NAME]);
    if (strcmp(key, "organisations_uuid") == 0)
        return ab_fail(err, AB_E_CONFLICT, "uuid", "an organisation with uuid %s already exists",
                       o->text[F_UUID]);
    return -1; /* err already says what the database said */
}

static void s_title(char *out, size_t len, int64_t id, const char *name)
{
    snprintf(out, len, "Organisation (%lld): %s", (long long)id, name ? name : "");
}

/* Set the text fields from the arguments that are present; note each change. */
static void s_apply_args(ab_ctx *ctx, s_org *o, ab_change *change)
{
    for (int f = 0; f < F_COUNT; f++) {
        size_t len = 0;
        const char *v = ab_arg_str(ctx, s_field[f], &len);
        if (!v)
            continue;
        const char *old = o->text[f];
        if (old && strlen(old) == len && memcmp(old, v, len) == 0)
            continue;
        ab_change_add(change, s_field[f], old, old ? strlen(old) : 0, v, len);
        free(o->text[f]);
        o->text[f] = s_dup(v, len);
    }
    if (ab_arg_has(ctx, "local")) {
        bool local = ab_arg_bool(ctx, "local", true);
        if (local != o->local)
            ab_change_add(change, "local", o->local ? "1" : "0", 1, local ? "1" : "0", 1);
        o->local = local;
    }
}

static void s_bind_text(ab_params *p, const s_org *o, int f)
{
    ab_param_cstr(p, o->text[f]);
}

int ab_org_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_org o;
    memset(&o, 0, sizeof o);
    o.local = true;
    ab_change change;
    ab_change_init(&change);
    s_apply_args(ctx, &o, &change);
    char uuid[37];
    if (o.text[F_UUID]) { /* kept as given, in lower case as MISP stores it */
        for (char *c = o.text[F_UUID]; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    } else if (ab_uuid_v4(uuid) == 0) {
        o.text[F_UUID] = strdup(uuid);
        ab_change_add(&change, "uuid", NULL, 0, uuid, 36);
    }
    if (!ab_arg_has(ctx, "local"))
        ab_change_add(&change, "local", NULL, 0, "1", 1);
    o.created_by = ctx->who->user_id;
    o.created_by_email = strdup(ctx->who->email);
    o.date_created = o.date_modified = ctx->now_ms;
    ab_params p;
    ab_params_init(&p);
    for (int f = 0; f < F_COUNT; f++)
        s_bind_text(&p, &o, f);
    ab_param_int(&p, o.created_by);
    ab_param_int(&p, o.local);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, ctx->now_ms);
    uint64_t id = 0;
    int rc = ab_db_run(ctx->db,
                       "INSERT INTO organisations (name, uuid, description, type, nationality, "
                       "sector, contacts, created_by, local, date_created, date_modified) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), "
                       "FROM_UNIXTIME(? / 1000))",
                       &p, &id, NULL, err);
    if (rc < 0) {
        s_write_failed(ctx, &o, err);
    } else {
        o.id = (int64_t)id;
        char title[1400];
        s_title(title, sizeof title, o.id, o.text[F_NAME]);
        rc = ab_ctx_audit(ctx, "Organisation", id, "add", title, ab_change_text(&change));
        if (rc == 0)
            s_pack_org(pk, &o);
        else
            ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    ab_change_free(&change);
    s_org_free(&o);
    return rc;
}

int ab_org_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_org o;
    if (s_find(ctx, true, &o, err) < 0)
        return -1;
    ab_change change;
    ab_change_init(&change);
    s_apply_args(ctx, &o, &change);
    int rc = 0;
    if (change.len > 0) { /* nothing changed: no write, no audit row */
        ab_params p;
        ab_params_init(&p);
        for (int f = 0; f < F_COUNT; f++)
            if (f != F_UUID)
                s_bind_text(&p, &o, f);
        ab_param_int(&p, o.local);
        ab_param_int(&p, ctx->now_ms);
        ab_param_int(&p, o.id);
        rc = ab_db_run(ctx->db,
                       "UPDATE organisations SET name = ?, description = ?, type = ?, "
                       "nationality = ?, sector = ?, contacts = ?, local = ?, "
                       "date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                       &p, NULL, NULL, err);
        if (rc < 0) {
            s_write_failed(ctx, &o, err);
        } else {
            o.date_modified = ctx->now_ms;
            char title[1400];
            s_title(title, sizeof title, o.id, o.text[F_NAME]);
            rc = ab_ctx_audit(ctx, "Organisation", (uint64_t)o.id, "edit", title,
                              ab_change_text(&change));
        }
    }
    if (rc == 0)
        s_pack_org(pk, &o);
    ab_change_free(&change);
    s_org_free(&o);
    return rc;
}

static int s_host_org_id(ab_ctx *ctx, int64_t *id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, "host_org_id");
    return ab_db_scalar(
        ctx->db, "SELECT CAST(value AS SIGNED) FROM admin_settings WHERE setting = ?", &p, id, err);
}

int ab_org_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_org o;
    if (s_find(ctx, true, &o, err) < 0)
        return -1;
    int64_t host = 0;
    int rc = s_host_org_id(ctx, &host, err);
    if (rc == 0 && o.id == host)
        rc = ab_fail(err, AB_E_CONFLICT, "org",
                     "%s is the host organisation of this instance and cannot be deleted",
                     o.text[F_NAME]);
    else if (rc == 0 && o.user_count > 0)
        rc = ab_fail(err, AB_E_CONFLICT, "org",
                     "%s still has %lld user(s): move or delete them first", o.text[F_NAME],
                     (long long)o.user_count);
    if (rc == 0) {
        ab_params p;
        ab_params_init(&p);
        ab_param_int(&p, o.id);
        rc = ab_db_run(ctx->db, "DELETE FROM organisations WHERE id = ?", &p, NULL, NULL, err);
    }
    if (rc == 0) {
        ab_change change;
        ab_change_init(&change);
        for (int f = 0; f < F_COUNT; f++)
            if (o.text[f] && *o.text[f])
                ab_change_add(&change, s_field[f], o.text[f], strlen(o.text[f]), NULL, 0);
        char title[1400];
        s_title(title, sizeof title, o.id, o.text[F_NAME]);
        rc = ab_ctx_audit(ctx, "Organisation", (uint64_t)o.id, "delete", title,
                          ab_change_text(&change));
        ab_change_free(&change);
    }
    if (rc == 0) {
        msgpack_pack_map(pk, 3);
        ab_pack_kv_int(pk, "id", o.id);
        ab_pack_kv_cstr(pk, "uuid", o.text[F_UUID]);
        ab_pack_kv_cstr(pk, "name", o.text[F_NAME]);
    }
    s_org_free(&o);
    return rc;
}

int ab_org_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_org o;
    if (s_find(ctx, false, &o, err) < 0)
        return -1;
    s_pack_org(pk, &o);
    s_org_free(&o);
    return 0;
}

/* The WHERE clause of a scope; the catalog allows only these values. */
static const char *s_scope_where(const char *scope, size_t len)
{
    if (!scope || (len == 5 && memcmp(scope, "local", 5) == 0))
        return " WHERE o.local = 1";
    if (len == 3 && memcmp(scope, "all", 3) == 0)
        return "";
    return " WHERE o.local = 0"; /* external, remote */
}

static void s_pack_org_row(msgpack_packer *pk, const ab_rows *row, const void *arg)
{
    (void)arg;
    s_org o;
    s_org_from_row(row, &o);
    s_pack_org(pk, &o);
    s_org_free(&o);
}

int ab_org_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t slen = 0;
    const char *scope = ab_arg_str(ctx, "scope", &slen);
    const char *where = s_scope_where(scope, slen);
    ab_list_query q = {ORG_COLS, " FROM organisations o", where, "o.name",
                       NULL,     s_pack_org_row,          NULL};
    return ab_pack_list(ctx, pk, &q, err);
}
