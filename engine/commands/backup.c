/* backup.c — `backup.run`: enqueue a `backup` job (engine/backup/backup.c), audited like any
 * enqueued job, and announce it after COMMIT. */
#include <stdio.h>
#include <string.h>

#include "backup/backup.h"
#include "core/engine.h"
#include "core/handlers.h"
#include "jobs/jobs.h"

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
    uint64_t id = 0;
    int rc = ab_job_enqueue_for(ctx, t, &payload, input, &id, err);
    if (rc < 0)
        return -1;
    if (ab_job_queued_reply(ctx, pk, id, t, input, NULL, 1, err) < 0)
        return -1;
    ab_pack_kv_str(pk, "encrypt_to", to, len); /* nil when absent */
    return 0;
}
