/* handler.c — the dispatch table from command to handler, built from the rows of
 * schemas/commands.def, and the small helpers handlers share (argument access, packing,
 * audit). Adding a command: docs/architecture.md, "Adding a command". */
#include <ctype.h>
#include <string.h>

#include "core/engine.h"
#include "wire/envelope.h"
#include "core/handlers.h"

/* Indexed by command id, as ab_catalog is, so a command's handler is one load away. */
static const ab_handler s_handlers[AB_COMMAND_COUNT] = {
#define AB_COMMAND(id, type, cli, handler, ...) [AB_CMD_##id] = handler,
#include "commands.def"
#undef AB_COMMAND
};

ab_handler ab_handler_for(const ab_command *cmd)
{
    return s_handlers[cmd - ab_catalog];
}

static const msgpack_object *s_arg(const ab_ctx *ctx, const char *name)
{
    return ctx->args ? ab_map_get(ctx->args, name) : NULL;
}

const char *ab_arg_str(const ab_ctx *ctx, const char *name, size_t *len)
{
    const msgpack_object *v = s_arg(ctx, name);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return NULL;
    *len = v->via.str.size;
    return v->via.str.ptr;
}

int64_t ab_arg_int(const ab_ctx *ctx, const char *name, int64_t def)
{
    const msgpack_object *v = s_arg(ctx, name);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return def;
}

bool ab_arg_bool(const ab_ctx *ctx, const char *name, bool def)
{
    const msgpack_object *v = s_arg(ctx, name);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN ? v->via.boolean : def;
}

bool ab_arg_has(const ab_ctx *ctx, const char *name)
{
    return s_arg(ctx, name) != NULL;
}

bool ab_all_digits(const char *s, size_t len)
{
    if (!s || len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool ab_ref_is_id(const char *s, size_t len)
{
    return len <= 10 && ab_all_digits(s, len);
}

void ab_pack_kv_str(msgpack_packer *pk, const char *key, const char *val, size_t len)
{
    ab_pack_cstr(pk, key);
    if (val)
        ab_pack_str(pk, val, len);
    else
        msgpack_pack_nil(pk);
}

void ab_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *val)
{
    ab_pack_kv_str(pk, key, val, val ? strlen(val) : 0);
}

void ab_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
    ab_pack_cstr(pk, key);
    msgpack_pack_int64(pk, val);
}

void ab_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    ab_pack_cstr(pk, key);
    if (val)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void ab_pack_page(msgpack_packer *pk, ab_rows *rows, ab_row_packer pack_row, const void *arg,
                  int64_t total, int64_t page, int64_t limit)
{
    /* The result is stored, so its size is known: pack straight from the rows. */
    uint32_t n = (uint32_t)mysql_stmt_num_rows(rows->stmt);
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n && ab_rows_next(rows) == 1; i++)
        pack_row(pk, rows, arg);
    ab_rows_close(rows);
    ab_pack_kv_int(pk, "total", total);
    ab_pack_kv_int(pk, "page", page);
    ab_pack_kv_int(pk, "limit", limit);
}

bool ab_param_ref(ab_params *p, const char *ref, size_t len)
{
    bool by_id = ab_ref_is_id(ref, len);
    if (by_id)
        ab_param_int(p, strtoll(ref, NULL, 10));
    else
        ab_param_str(p, ref, len);
    return by_id;
}

int ab_pack_list(ab_ctx *ctx, msgpack_packer *pk, const ab_list_query *q, ab_error *err)
{
    int64_t limit = ab_arg_int(ctx, "limit", 100), page = ab_arg_int(ctx, "page", 1), total = 0;
    ab_params p;
    if (q->params)
        p = *q->params;
    else
        ab_params_init(&p);
    char sql[4096];
    snprintf(sql, sizeof sql, "SELECT COUNT(*)%s%s", q->from, q->where);
    ab_params count_p = p; /* the count binds its own copy */
    if (ab_db_scalar(ctx->db, sql, &count_p, &total, err) < 0)
        return -1;
    int n = snprintf(sql, sizeof sql, "SELECT %s%s%s ORDER BY %s LIMIT ? OFFSET ?", q->cols,
                     q->from, q->where, q->order);
    if (n < 0 || (size_t)n >= sizeof sql)
        return ab_fail(err, AB_E_INTERNAL, NULL, "list query too long");
    ab_param_int(&p, limit);
    ab_param_int(&p, (page - 1) * limit);
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    ab_pack_page(pk, &rows, q->pack_row, q->arg, total, page, limit);
    return 0;
}

int ab_ctx_audit(ab_ctx *ctx, const char *model, uint64_t model_id, const char *action,
                 const char *title, const char *change)
{
    ab_actor actor = {ctx->who->user_id, ctx->who->email, ctx->who->org_name, ctx->ip};
    if (ab_audit_add(ctx->audit, &actor, model, model_id, action, title, change) < 0)
        return -1;
    return ab_events_audit(ctx->events, ctx->now_ms, model, model_id, action, ctx->who->user_id);
}
