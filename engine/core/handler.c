/* handler.c — the table from wire type to handler, and the small helpers handlers share
 * (argument access, packing, audit). Add a command: one row in schemas/catalog.c, one
 * handler, one row here; tests/unit/test_catalog checks that every command has one. */
#include <ctype.h>
#include <string.h>

#include "core/engine.h"
#include "wire/envelope.h"
#include "core/handlers.h"

static const struct {
    const char *type;
    ab_handler fn;
    ab_write_shape shape;
} s_handlers[] = {
    {"org.add", ab_org_add, AB_WRITES_ONE},
    {"org.edit", ab_org_edit, AB_WRITES_ONE},
    {"org.delete", ab_org_delete, AB_WRITES_ONE},
    {"org.merge", ab_org_merge, AB_WRITES_MANY}, /* every org column, then the delete */
    {"org.view", ab_org_view, AB_WRITES_ONE},
    {"org.list", ab_org_list, AB_WRITES_ONE},
    {"role.add", ab_role_add, AB_WRITES_ONE},
    {"role.edit", ab_role_edit, AB_WRITES_ONE},
    {"role.delete", ab_role_delete, AB_WRITES_ONE},
    {"role.view", ab_role_view, AB_WRITES_ONE},
    {"role.list", ab_role_list, AB_WRITES_ONE},
    {"role.set_default", ab_role_set_default, AB_WRITES_ONE}, /* one UPDATE flips both */
    {"user.add", ab_user_add, AB_WRITES_ONE},
    {"user.list", ab_user_list, AB_WRITES_ONE},
    {"user.view", ab_user_view, AB_WRITES_ONE},
    {"user.edit", ab_user_edit, AB_WRITES_ONE},
    {"user.disable", ab_user_disable, AB_WRITES_MANY},     /* the user, then its sessions */
    {"user.enable", ab_user_enable, AB_WRITES_MANY},       /* the user, then its sessions */
    {"user.delete", ab_user_delete, AB_WRITES_MANY},       /* its authkeys, then the user */
    {"user.change_pw", ab_user_change_pw, AB_WRITES_MANY}, /* the password, then sessions */
    {"user.authkey", ab_user_authkey, AB_WRITES_MANY},     /* revoke, then the new key */
    {"authkey.add", ab_authkey_add, AB_WRITES_ONE},
    {"authkey.list", ab_authkey_list, AB_WRITES_ONE},
    {"authkey.view", ab_authkey_view, AB_WRITES_ONE},
    {"authkey.edit", ab_authkey_edit, AB_WRITES_ONE},
    {"authkey.delete", ab_authkey_delete, AB_WRITES_ONE},
    {"auth.login", ab_auth_login, AB_WRITES_MANY}, /* its failure hook writes after rollback */
    {"auth.logout", ab_auth_logout, AB_WRITES_ONE},
    {"bruteforce.clear", ab_bruteforce_clear, AB_WRITES_ONE},
    {"user.ips", ab_user_ips, AB_WRITES_ONE},
    {"user.by_ip", ab_user_by_ip, AB_WRITES_ONE},
    {"otp.enrol", ab_otp_enrol, AB_WRITES_ONE},
    {"otp.delete", ab_otp_delete, AB_WRITES_ONE},
    {"log.search", ab_log_search, AB_WRITES_ONE},
    {"auth.whoami", ab_auth_whoami, AB_WRITES_ONE},
    {"job.enqueue", ab_job_enqueue_cmd, AB_WRITES_MANY},
    {"job.enqueue_many", ab_job_enqueue_many, AB_WRITES_MANY},
    {"job.list", ab_job_list, AB_WRITES_ONE},
    {"job.view", ab_job_view, AB_WRITES_ONE},
    {"job.retry", ab_job_retry, AB_WRITES_MANY},
    {"job.cancel", ab_job_cancel, AB_WRITES_MANY},
    {"job.purge", ab_job_purge, AB_WRITES_ONE},
    {"worker.list", ab_worker_list, AB_WRITES_ONE},
    {"worker.pause", ab_worker_pause, AB_WRITES_ONE},
    {"worker.resume", ab_worker_resume, AB_WRITES_ONE},
    {"worker.stop", ab_worker_stop, AB_WRITES_ONE},
    {"worker.start", ab_worker_start, AB_WRITES_MANY},
    {"worker.restart", ab_worker_restart, AB_WRITES_MANY},
    {"worker.kill", ab_worker_kill, AB_WRITES_MANY},
    {"worker.cleanup", ab_worker_cleanup, AB_WRITES_MANY},
    {"queue.clear", ab_queue_clear, AB_WRITES_MANY},
    {"queue.stats", ab_queue_stats, AB_WRITES_ONE},
    {"job.stats", ab_job_stats, AB_WRITES_ONE},
    {"task.list", ab_task_list, AB_WRITES_ONE},
    {"task.set", ab_task_set, AB_WRITES_ONE},
    {"task.run", ab_task_run, AB_WRITES_MANY},
    {"setting.list", ab_setting_list, AB_WRITES_ONE},
    {"setting.get", ab_setting_get, AB_WRITES_ONE},
    {"setting.set", ab_setting_set, AB_WRITES_MANY},
    {"setting.reset", ab_setting_reset, AB_WRITES_MANY},
    {"setting.baseurl", ab_setting_baseurl, AB_WRITES_MANY},
    {"setting.report", ab_setting_report, AB_WRITES_ONE},
    {"diagnostics.run", ab_diagnostics_run_cmd, AB_WRITES_ONE},
    {"db.update", ab_db_update, AB_WRITES_ONE}, /* its DDL runs on its own connection */
    {"backup.run", ab_backup_run, AB_WRITES_MANY},
    {"mail.contact", ab_contact, AB_WRITES_MANY},         /* the job, then its recipients */
    {"mail.test", ab_mail_test, AB_WRITES_ONE},           /* writes nothing but its audit row */
    {"user.gpg_fetch", ab_user_gpg_fetch, AB_WRITES_ONE}, /* the job */
    {"mail.status", ab_mail_status, AB_WRITES_ONE},
    {"user.reset_password", ab_user_reset_password, AB_WRITES_MANY}, /* job and recipient */
};

ab_handler ab_handler_for(const char *type, ab_write_shape *shape)
{
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++)
        if (strcmp(s_handlers[i].type, type) == 0) {
            if (shape)
                *shape = s_handlers[i].shape;
            return s_handlers[i].fn;
        }
    return NULL;
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
