/* backupcmd.c — `backup.run`: enqueue a `backup` job (engine/backup.c), audited like any
 * enqueued job, and announce it after COMMIT. */
#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "engine.h"
#include "handlers.h"
#include "jobs.h"

int ab_backup_run(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *to = ab_arg_str(ctx, "encrypt_to", &len);
    if (to && ab_backup_check_recipient(to, len, err) < 0)
        return -1;
    const ab_job_type *t = ab_job_type_find("backup", strlen("backup"));
    if (!t)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no job type backup in this build");
    /* The job's payload: {encrypt_to} or {}; validated again by the worker. */
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &payload, msgpack_sbuffer_write);
    msgpack_pack_map(&ppk, to ? 1 : 0);
    char input[300] = "";
    if (to) {
        ab_pack_kv_str(&ppk, "encrypt_to", to, len);
        snprintf(input, sizeof input, "encrypt_to=%.*s", (int)len, to);
    }
    ab_job_spec spec = {.type = t,
                        .payload = payload.data,
                        .payload_len = payload.size,
                        .input = input,
                        .org_id = ctx->who->org_id,
                        .created_by = ctx->who->user_id};
    uint64_t id = 0;
    bool existed = false;
    int rc = ab_job_enqueue(ctx->db, &spec, ctx->now_ms, &id, &existed, err);
    msgpack_sbuffer_destroy(&payload);
    if (rc < 0)
        return -1;
    char title[96], change[400];
    snprintf(title, sizeof title, "Job (%llu): %s", (unsigned long long)id, t->type);
    snprintf(change, sizeof change, "job_type () => (%s), worker () => (%s), job_input () => (%s)",
             t->type, t->queue, input);
    if (ab_ctx_audit(ctx, "Job", id, "add", title, change) < 0 ||
        ab_job_events_queue(ctx->events, ctx->now_ms, id, "queued", t->queue, t->type, "queued",
                            true) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 5);
    ab_pack_kv_int(pk, "id", (int64_t)id);
    ab_pack_kv_cstr(pk, "queue", t->queue);
    ab_pack_kv_cstr(pk, "type", t->type);
    ab_pack_kv_cstr(pk, "state", "queued");
    ab_pack_kv_str(pk, "encrypt_to", to, len); /* nil when absent */
    return 0;
}
