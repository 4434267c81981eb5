/* role.c — roles (the manual's "Roles"): add, edit, delete, view, list, set-default.
 *
 * A role is MISP's row: four flags that make its permission level (perm_add, perm_modify,
 * perm_modify_org, perm_publish) and the extra flags perm_<name> for each name of
 * ab_role_perms (schemas/catalog.c), plus default_role. Names are unique (the database's
 * unique key decides). A role with users, or the default role, cannot be deleted; exactly
 * one role is the default after set-default. Every change is audited as model Role.
 *
 * delete and edit lock the role row (FOR UPDATE) before they check its users; whatever
 * gives a user a role (user.add, user.edit: the rest of issue 5) must read that role row
 * with a shared lock (FOR SHARE), so that a role cannot be deleted under a new member. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "auth/identity.h"

enum { L_ADD, L_MODIFY, L_MODIFY_ORG, L_PUBLISH, L_COUNT };
static const char *const s_level_col[L_COUNT] = {"perm_add", "perm_modify", "perm_modify_org",
                                                 "perm_publish"};

#define PERMS_MAX      16  /* room for ab_role_perms */
#define NAME_MAX_BYTES 401 /* 100 characters of up to 4 bytes, and the NUL */

typedef struct {
    int64_t id, created, modified, user_count;
    char name[NAME_MAX_BYTES];
    bool level[L_COUNT];
    bool perm[PERMS_MAX]; /* by index in ab_role_perms */
    bool is_default;
} s_role;

static size_t s_nperms(void)
{
    size_t n = 0;
    while (ab_role_perms[n])
        n++;
    return n < PERMS_MAX ? n : PERMS_MAX;
}

/* Index of perm name s (len bytes) in ab_role_perms, or -1. */
static int s_perm_index(const char *s, size_t len)
{
    for (size_t i = 0; i < s_nperms(); i++)
        if (strlen(ab_role_perms[i]) == len && memcmp(ab_role_perms[i], s, len) == 0)
            return (int)i;
    return -1;
}

static int s_level_index(const char *s, size_t len)
{
    for (int i = 0; ab_role_levels[i]; i++)
        if (strlen(ab_role_levels[i]) == len && memcmp(ab_role_levels[i], s, len) == 0)
            return i;
    return -1;
}

/* MISP's reading of the four flags (its Role virtual field "permission"): publish when
 * add, modify and publish are set; manage_org when add and modify_org are; manage_own
 * when add is; else read_only. */
static int s_level_of(const s_role *r)
{
    if (r->level[L_ADD] && r->level[L_MODIFY] && r->level[L_PUBLISH])
        return 3;
    if (r->level[L_ADD] && r->level[L_MODIFY_ORG])
        return 2;
    return r->level[L_ADD] ? 1 : 0;
}

/* The flags of level n (MISP's beforeSave): each level adds one flag to the one below. */
static void s_set_level(s_role *r, int n)
{
    r->level[L_ADD] = n >= 1;
    r->level[L_MODIFY] = n >= 1;
    r->level[L_MODIFY_ORG] = n >= 2;
    r->level[L_PUBLISH] = n >= 3;
}

/* The SELECT list: id, name, the four level flags, the extra flags, default_role,
 * created, modified, user count. Columns after the flags start at s_tail_col(). */
static void s_select_cols(char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "r.id, r.name");
    for (int i = 0; i < L_COUNT && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, ", r.%s", s_level_col[i]);
    for (size_t i = 0; i < s_nperms() && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, ", r.perm_%s", ab_role_perms[i]);
    if (n < len)
        snprintf(out + n, len - n,
                 ", r.default_role, " AB_SQL_MS("r.created") ", " AB_SQL_MS(
                     "r.modified") ", (SELECT COUNT(*) FROM users u WHERE u.role_id = r.id)");
}

static int s_tail_col(void)
{
    return 2 + L_COUNT + (int)s_nperms();
}

static void s_role_from_row(const ab_rows *rows, s_role *r)
{
    memset(r, 0, sizeof *r);
    r->id = ab_rows_int(rows, 0);
    const char *name = ab_rows_str(rows, 1, NULL);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    for (int i = 0; i < L_COUNT; i++)
        r->level[i] = ab_rows_int(rows, 2 + i) != 0;
    for (size_t i = 0; i < s_nperms(); i++)
        r->perm[i] = ab_rows_int(rows, 2 + L_COUNT + (int)i) != 0;
    int t = s_tail_col();
    r->is_default = ab_rows_int(rows, t) != 0;
    r->created = ab_rows_int(rows, t + 1);
    r->modified = ab_rows_int(rows, t + 2);
    r->user_count = ab_rows_int(rows, t + 3);
}

static void s_pack_role(msgpack_packer *pk, const s_role *r)
{
    msgpack_pack_map(pk, 8);
    ab_pack_kv_int(pk, "id", r->id);
    ab_pack_kv_cstr(pk, "name", r->name);
    ab_pack_kv_cstr(pk, "permission", ab_role_levels[s_level_of(r)]);
    uint32_t n = 0;
    for (size_t i = 0; i < s_nperms(); i++)
        n += r->perm[i];
    ab_pack_cstr(pk, "perms");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < s_nperms(); i++)
        if (r->perm[i])
            ab_pack_cstr(pk, ab_role_perms[i]);
    ab_pack_kv_bool(pk, "default_role", r->is_default);
    ab_pack_kv_int(pk, "user_count", r->user_count);
    ab_pack_kv_int(pk, "created", r->created);
    ab_pack_kv_int(pk, "modified", r->modified);
}

/* Find the role the "role" argument names: an id (digits) or a name. */
static int s_find(ab_ctx *ctx, bool for_update, s_role *out, ab_error *err)
{
    size_t len = 0;
    const char *ref = ab_arg_str(ctx, "role", &len);
    char cols[1024], sql[1400];
    s_select_cols(cols, sizeof cols);
    ab_params p;
    ab_params_init(&p);
    bool by_id = ab_ref_is_id(ref, len);
    ab_param_ref(&p, ref, len);
    snprintf(sql, sizeof sql, "SELECT %s FROM roles r WHERE r.%s = ?%s", cols,
             by_id ? "id" : "name", for_update ? " FOR UPDATE" : "");
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_role_from_row(&rows, out);
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "role", "no role has the id or name '%.*s'",
                       (int)(len > 100 ? 100 : len), ref);
    return 0;
}

static void s_title(char *out, size_t len, int64_t id, const char *name)
{
    snprintf(out, len, "Role (%lld): %s", (long long)id, name);
}

/* A name that is only digits would read as an id in every other command. */
static int s_check_name(const char *name, size_t len, ab_error *err)
{
    if (ab_all_digits(name, len))
        return ab_fail(err, AB_E_INVALID, "name",
                       "a role name cannot be only digits ('%.*s' would read as an id)", (int)len,
                       name);
    return 0;
}

/* Set (on = true) or clear the flags the string list argument arg names; note changes. */
static void s_apply_perms(ab_ctx *ctx, const char *arg, bool on, s_role *r, bool *touched)
{
    const msgpack_object *list = ctx->args ? ab_map_get(ctx->args, arg) : NULL;
    for (uint32_t i = 0; list && i < list->via.array.size; i++) { /* checked by the catalog */
        const msgpack_object *e = &list->via.array.ptr[i];
        int k = s_perm_index(e->via.str.ptr, e->via.str.size);
        if (k >= 0) {
            r->perm[k] = on;
            touched[k] = true;
        }
    }
}

/* The rules a role must keep (the manual: site admins are admins too; a sync user hands
 * its authkey to the remote instance, so its role needs auth). field is where the
 * contradiction came from: no_perms when it took the needed flag away, else perms. */
static int s_check_consistent(ab_ctx *ctx, const s_role *r, const bool *removed, ab_error *err)
{
    static const struct {
        const char *flag, *needs;
    } rules[] = {{"site_admin", "admin"}, {"sync", "auth"}};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        int f = s_perm_index(rules[i].flag, strlen(rules[i].flag));
        int n = s_perm_index(rules[i].needs, strlen(rules[i].needs));
        if (f < 0 || n < 0 || !r->perm[f] || r->perm[n])
            continue;
        const char *field =
            removed && removed[n] && ab_arg_has(ctx, "no_perms") ? "no_perms" : "perms";
        return ab_fail(err, AB_E_INVALID, field,
                       "a role with %s needs %s too (role '%s' would have %s without %s)",
                       rules[i].flag, rules[i].needs, r->name, rules[i].flag, rules[i].needs);
    }
    return 0;
}

static void s_flag_change(ab_change *c, const char *col, bool old, bool now, bool is_add)
{
    if (is_add ? now : old != now)
        ab_change_add(c, col, is_add ? NULL : old ? "1" : "0", is_add ? 0 : 1, now ? "1" : "0", 1);
}

/* The audit items of every flag that differs between a and b (add: every flag b sets). */
static void s_flag_changes(ab_change *c, const s_role *a, const s_role *b, bool is_add)
{
    for (int i = 0; i < L_COUNT; i++)
        s_flag_change(c, s_level_col[i], a->level[i], b->level[i], is_add);
    char col[64];
    for (size_t i = 0; i < s_nperms(); i++) {
        snprintf(col, sizeof col, "perm_%s", ab_role_perms[i]);
        s_flag_change(c, col, a->perm[i], b->perm[i], is_add);
    }
}

static void s_bind_flags(ab_params *p, const s_role *r)
{
    for (int i = 0; i < L_COUNT; i++)
        ab_param_int(p, r->level[i]);
    for (size_t i = 0; i < s_nperms(); i++)
        ab_param_int(p, r->perm[i]);
}

/* Turn a unique-key violation into the conflict the user can act on. */
static int s_write_failed(ab_ctx *ctx, const s_role *r, ab_error *err)
{
    if (strcmp(ab_db_dup_key(ctx->db), "roles_name") == 0)
        return ab_fail(err, AB_E_CONFLICT, "name", "a role named '%s' already exists", r->name);
    return -1; /* err already says what the database said */
}

int ab_role_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_role r;
    memset(&r, 0, sizeof r);
    size_t len = 0;
    const char *name = ab_arg_str(ctx, "name", &len);
    if (s_check_name(name, len, err) < 0)
        return -1;
    snprintf(r.name, sizeof r.name, "%.*s", (int)len, name);
    size_t plen = 0;
    const char *level = ab_arg_str(ctx, "permission", &plen);
    s_set_level(&r, level ? s_level_index(level, plen) : 0);
    bool touched[PERMS_MAX] = {false};
    s_apply_perms(ctx, "perms", true, &r, touched);
    if (s_check_consistent(ctx, &r, NULL, err) < 0)
        return -1;

    char cols[512] = "name", marks[128] = "?";
    size_t nc = strlen(cols), nm = strlen(marks);
    for (int i = 0; i < L_COUNT; i++) {
        nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", %s", s_level_col[i]);
        nm += (size_t)snprintf(marks + nm, sizeof marks - nm, ", ?");
    }
    for (size_t i = 0; i < s_nperms(); i++) {
        nc += (size_t)snprintf(cols + nc, sizeof cols - nc, ", perm_%s", ab_role_perms[i]);
        nm += (size_t)snprintf(marks + nm, sizeof marks - nm, ", ?");
    }
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO roles (%s, default_role, created, modified) VALUES (%s, 0, "
             "FROM_UNIXTIME(? / 1000), FROM_UNIXTIME(? / 1000))",
             cols, marks);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, r.name);
    s_bind_flags(&p, &r);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, ctx->now_ms);
    uint64_t id = 0;
    if (ab_db_run(ctx->db, sql, &p, &id, NULL, err) < 0) {
        s_write_failed(ctx, &r, err);
        return -1;
    }
    r.id = (int64_t)id;
    r.created = r.modified = ctx->now_ms;

    ab_change change;
    ab_change_init(&change);
    ab_change_add(&change, "name", NULL, 0, r.name, strlen(r.name));
    s_role none;
    memset(&none, 0, sizeof none);
    s_flag_changes(&change, &none, &r, true);
    char title[600];
    s_title(title, sizeof title, r.id, r.name);
    int rc = ab_ctx_audit(ctx, "Role", id, "add", title, ab_change_text(&change));
    ab_change_free(&change);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    s_pack_role(pk, &r);
    return 0;
}

/* Refuse an edit that would leave no enabled site administrator with a usable key. */
static int s_check_lockout(ab_ctx *ctx, const s_role *old, const s_role *now, ab_error *err)
{
    int sa = s_perm_index("site_admin", 10), auth = s_perm_index("auth", 4);
    bool was = old->perm[sa] && old->perm[auth], is = now->perm[sa] && now->perm[auth];
    if (!was || is || old->user_count == 0)
        return 0;
    int64_t others = 0;
    if (ab_other_site_admins(ctx->db, old->id, 0, &others, err) < 0)
        return -1;
    if (others > 0)
        return 0;
    return ab_fail(err, AB_E_CONFLICT, "no_perms",
                   "taking %s from role '%s' would leave no enabled site administrator who can "
                   "use an authkey",
                   now->perm[sa] ? "auth" : "site_admin", old->name);
}

int ab_role_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_role old;
    if (s_find(ctx, true, &old, err) < 0)
        return -1;
    s_role r = old;
    size_t len = 0;
    const char *name = ab_arg_str(ctx, "name", &len);
    if (name && s_check_name(name, len, err) < 0)
        return -1;
    if (name)
        snprintf(r.name, sizeof r.name, "%.*s", (int)len, name);
    size_t plen = 0;
    const char *level = ab_arg_str(ctx, "permission", &plen);
    if (level)
        s_set_level(&r, s_level_index(level, plen));
    bool granted[PERMS_MAX] = {false}, removed[PERMS_MAX] = {false};
    s_apply_perms(ctx, "perms", true, &r, granted);
    s_apply_perms(ctx, "no_perms", false, &r, removed);
    for (size_t i = 0; i < s_nperms(); i++)
        if (granted[i] && removed[i])
            return ab_fail(err, AB_E_INVALID, "no_perms",
                           "%s is both granted (perms) and taken away (no_perms)",
                           ab_role_perms[i]);
    if (s_check_consistent(ctx, &r, removed, err) < 0 || s_check_lockout(ctx, &old, &r, err) < 0)
        return -1;

    ab_change change;
    ab_change_init(&change);
    if (strcmp(old.name, r.name) != 0)
        ab_change_add(&change, "name", old.name, strlen(old.name), r.name, strlen(r.name));
    s_flag_changes(&change, &old, &r, false);
    int rc = 0;
    if (change.len > 0) { /* nothing changed: no write, no audit row */
        char sets[1024] = "name = ?";
        size_t n = strlen(sets);
        for (int i = 0; i < L_COUNT; i++)
            n += (size_t)snprintf(sets + n, sizeof sets - n, ", %s = ?", s_level_col[i]);
        for (size_t i = 0; i < s_nperms(); i++)
            n += (size_t)snprintf(sets + n, sizeof sets - n, ", perm_%s = ?", ab_role_perms[i]);
        char sql[1400];
        snprintf(sql, sizeof sql,
                 "UPDATE roles SET %s, modified = FROM_UNIXTIME(? / 1000) WHERE id = ?", sets);
        ab_params p;
        ab_params_init(&p);
        ab_param_cstr(&p, r.name);
        s_bind_flags(&p, &r);
        ab_param_int(&p, ctx->now_ms);
        ab_param_int(&p, r.id);
        rc = ab_db_run(ctx->db, sql, &p, NULL, NULL, err);
        if (rc < 0) {
            s_write_failed(ctx, &r, err);
        } else {
            r.modified = ctx->now_ms;
            char title[600];
            s_title(title, sizeof title, r.id, r.name);
            rc = ab_ctx_audit(ctx, "Role", (uint64_t)r.id, "edit", title, ab_change_text(&change));
            if (rc < 0)
                ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        }
    }
    ab_change_free(&change);
    if (rc == 0)
        s_pack_role(pk, &r);
    return rc;
}

int ab_role_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_role r;
    if (s_find(ctx, true, &r, err) < 0)
        return -1;
    if (r.is_default)
        return ab_fail(err, AB_E_CONFLICT, "role",
                       "%s is the default role: make another role the default first "
                       "(role set-default)",
                       r.name);
    if (r.user_count > 0)
        return ab_fail(err, AB_E_CONFLICT, "role",
                       "%s still has %lld user(s): give them another role first", r.name,
                       (long long)r.user_count);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, r.id);
    if (ab_db_run(ctx->db, "DELETE FROM roles WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    ab_change change;
    ab_change_init(&change);
    ab_change_add(&change, "name", r.name, strlen(r.name), NULL, 0);
    for (int i = 0; i < L_COUNT; i++)
        if (r.level[i])
            ab_change_add(&change, s_level_col[i], "1", 1, NULL, 0);
    char col[64];
    for (size_t i = 0; i < s_nperms(); i++)
        if (r.perm[i]) {
            snprintf(col, sizeof col, "perm_%s", ab_role_perms[i]);
            ab_change_add(&change, col, "1", 1, NULL, 0);
        }
    char title[600];
    s_title(title, sizeof title, r.id, r.name);
    int rc = ab_ctx_audit(ctx, "Role", (uint64_t)r.id, "delete", title, ab_change_text(&change));
    ab_change_free(&change);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "id", r.id);
    ab_pack_kv_cstr(pk, "name", r.name);
    return 0;
}

int ab_role_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_role r;
    if (s_find(ctx, false, &r, err) < 0)
        return -1;
    s_pack_role(pk, &r);
    return 0;
}

static void s_pack_role_row(msgpack_packer *pk, const ab_rows *row, const void *arg)
{
    (void)arg;
    s_role r;
    s_role_from_row(row, &r);
    s_pack_role(pk, &r);
}

int ab_role_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    char cols[1024];
    s_select_cols(cols, sizeof cols);
    ab_list_query q = {cols, " FROM roles r", "", "r.id", NULL, s_pack_role_row, NULL};
    return ab_pack_list(ctx, pk, &q, err);
}

int ab_role_set_default(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_role r;
    if (s_find(ctx, true, &r, err) < 0)
        return -1;
    if (r.is_default) { /* already the default: nothing to write or audit */
        s_pack_role(pk, &r);
        return 0;
    }
    /* The previous default(s), locked: normally one; none or several after hand edits. */
    ab_rows rows;
    if (ab_db_query(ctx->db, "SELECT id, name FROM roles WHERE default_role = 1 FOR UPDATE", NULL,
                    &rows, err) < 0)
        return -1;
    struct {
        int64_t id;
        char name[NAME_MAX_BYTES];
    } prev[8];
    size_t nprev = 0;
    int more;
    while ((more = ab_rows_next(&rows)) == 1 && nprev < sizeof prev / sizeof prev[0]) {
        prev[nprev].id = ab_rows_int(&rows, 0);
        const char *name = ab_rows_str(&rows, 1, NULL);
        snprintf(prev[nprev].name, sizeof prev[nprev].name, "%s", name ? name : "");
        nprev++;
    }
    ab_rows_close(&rows);
    if (more < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    /* One statement: the old default loses the flag as the new one gets it. */
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, r.id);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, r.id);
    if (ab_db_run(ctx->db,
                  "UPDATE roles SET default_role = (id = ?), modified = FROM_UNIXTIME(? / 1000) "
                  "WHERE default_role = 1 OR id = ?",
                  &p, NULL, NULL, err) < 0)
        return -1;
    char title[600];
    int rc = 0;
    for (size_t i = 0; i < nprev && rc == 0; i++) {
        s_title(title, sizeof title, prev[i].id, prev[i].name);
        rc = ab_ctx_audit(ctx, "Role", (uint64_t)prev[i].id, "edit", title,
                          "default_role (1) => (0)");
    }
    if (rc == 0) {
        s_title(title, sizeof title, r.id, r.name);
        rc = ab_ctx_audit(ctx, "Role", (uint64_t)r.id, "edit", title, "default_role (0) => (1)");
    }
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    r.is_default = true;
    r.modified = ctx->now_ms;
    s_pack_role(pk, &r);
    return 0;
}
