/* system.c — commands about the instance itself: whoami and db.update. */
#include <stdio.h>

#include "core/handlers.h"
#include "wire/log.h"
#include "core/migrate.h"

int ab_auth_whoami(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    int version = ab_schema_current(ctx->db, err);
    if (version < 0)
        return -1;
    const ab_identity *w = ctx->who;
    msgpack_pack_map(pk, 5);
    ab_pack_cstr(pk, "user");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "id", w->user_id);
    ab_pack_kv_cstr(pk, "email", w->email);
    ab_pack_cstr(pk, "org");
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "id", w->org_id);
    ab_pack_kv_cstr(pk, "name", w->org_name);
    ab_pack_kv_cstr(pk, "uuid", w->org_uuid);
    ab_pack_cstr(pk, "role");
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "id", w->role_id);
    ab_pack_kv_cstr(pk, "name", w->role_name);
    ab_pack_kv_bool(pk, "site_admin", w->site_admin);
    ab_pack_cstr(pk, "engine");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_cstr(pk, "name", ctx->engine->name);
    ab_pack_kv_cstr(pk, "version", AB_VERSION);
    ab_pack_kv_int(pk, "schema_version", version);
    return 0;
}

/* DDL commits implicitly, so migrations run on a connection of their own, never inside
 * the batch's transaction; the audit row is written with the batch. */
int ab_db_update(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    char msg[512];
    ab_db *own = ab_db_open(ctx->engine->db_dsn, msg, sizeof msg);
    if (!own)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "cannot open a connection for migrations: %s",
                       msg);
    int applied = 0;
    int rc = ab_migrate(own, &applied, err);
    int version = rc == 0 ? ab_schema_current(own, err) : -1;
    ab_db_close(&own);
    if (rc < 0 || version < 0)
        return -1;
    char change[64];
    snprintf(change, sizeof change, "schema_version () => (%d)", version);
    if (ab_ctx_audit(ctx, "Server", 0, "update_database", "Database update", change) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "schema_version", version);
    ab_pack_kv_int(pk, "applied", applied);
    return 0;
}
