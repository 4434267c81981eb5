/* local.c — see local.h. */
#include "core/local.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "wire/envelope.h"
#include "auth/identity.h"
#include "core/migrate.h"
#include "auth/secret.h"
#include "core/settings_cache.h"

#define TRIES 3

struct ab_local {
    ab_config cfg;
    ab_secret secret;
    ab_engine_info info;
    char name[300];
    ab_db *db;
    ab_identity who;
    ab_audit *audit;
    ab_events *events;
};

static int s_setup_fail(ab_local_failure *why, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_setup_fail(ab_local_failure *why, char *err, size_t errlen, const char *fmt, ...)
{
    *why = AB_LOCAL_SETUP;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The configuration of home, its database DSN and its server secret, which must exist:
 * break-glass never creates a secret (a new one would not open the stored digests). */
static int s_load(ab_local *l, const char *home, char *err, size_t errlen, ab_local_failure *why)
{
    struct stat st;
    if (!home || !*home || stat(home, &st) != 0 || !S_ISDIR(st.st_mode))
        return s_setup_fail(why, err, errlen,
                            "--local: %s is not a folder: set ADMINBUS_HOME to the home the "
                            "stack runs from (the folder with adminbus.conf and secrets/)",
                            home && *home ? home : "ADMINBUS_HOME");
    char *argv[] = {"adminctl", "--home", (char *)home, NULL};
    int argc = 3;
    char msg[512];
    if (ab_config_load(&l->cfg, &argc, argv, msg, sizeof msg) < 0)
        return s_setup_fail(why, err, errlen, "--local: %s", msg);
    char path[4200];
    snprintf(path, sizeof path, "%s/secrets/server.key", home);
    if (!*l->cfg.db_dsn)
        return s_setup_fail(why, err, errlen,
                            "--local: no database in %s/adminbus.conf (db_dsn) nor in "
                            "ADMINBUS_DB_DSN: is ADMINBUS_HOME the stack's home? (ops/run "
                            "writes it on the first start)",
                            home);
    if (access(path, R_OK) != 0)
        return s_setup_fail(why, err, errlen,
                            "--local: cannot read the server secret %s (%s): run as the account "
                            "that owns the home, or restore secrets/ from a backup",
                            path, strerror(errno));
    if (ab_secret_load(home, &l->secret, msg, sizeof msg) < 0)
        return s_setup_fail(why, err, errlen, "--local: %s", msg);
    return 0;
}

/* Connect and check the schema: a database this build does not match is not touched. */
static int s_connect(ab_local *l, char *err, size_t errlen, ab_local_failure *why)
{
    char msg[512];
    l->db = ab_db_open(l->cfg.db_dsn, msg, sizeof msg);
    if (!l->db) {
        *why = AB_LOCAL_UNREACHABLE;
        snprintf(err, errlen,
                 "--local: cannot reach the database of %s: %s; is MariaDB running? (ops/db "
                 "status, ops/db start)",
                 l->cfg.home, msg);
        return -1;
    }
    ab_error e;
    int version = ab_schema_current(l->db, &e);
    if (version != ab_schema_latest()) {
        *why = AB_LOCAL_SETUP;
        snprintf(err, errlen,
                 "--local: the database of %s is at schema version %d, this adminctl knows "
                 "version %d: %s",
                 l->cfg.home, version, ab_schema_latest(),
                 version < ab_schema_latest()
                     ? "run adminbus-engine --init (it migrates) or start the stack first"
                     : "use the adminctl built with the running engine");
        return -1;
    }
    return 0;
}

/* The local site administrator, in the host organisation. */
static int s_identity(ab_local *l, const char *actor, ab_error *e)
{
    ab_identity *w = &l->who;
    memset(w, 0, sizeof *w);
    snprintf(w->email, sizeof w->email, "%s", actor);
    snprintf(w->role_name, sizeof w->role_name, "site admin (adminctl --local)");
    w->site_admin = true;
    w->perm_level = 3;
    w->flags = (AB_RF_TAG_EDITOR << 1) - 1; /* every flag */
    w->via = AB_VIA_LOCAL;
    ab_rows rows;
    if (ab_db_query(l->db,
                    "SELECT o.id, o.name, o.uuid FROM admin_settings a JOIN organisations o "
                    "ON o.id = a.value WHERE a.setting = 'host_org_id'",
                    NULL, &rows, e) < 0)
        return -1;
    if (ab_rows_next(&rows) == 1) {
        w->org_id = (uint32_t)ab_rows_int(&rows, 0);
        snprintf(w->org_name, sizeof w->org_name, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(w->org_uuid, sizeof w->org_uuid, "%s", ab_rows_str(&rows, 2, NULL));
    }
    ab_rows_close(&rows);
    ab_error ignored;
    return ab_db_exec(l->db, "ROLLBACK", &ignored); /* end the read's transaction */
}

ab_local *ab_local_open(const ab_local_options *opt, char *err, size_t errlen,
                        ab_local_failure *why)
{
    ab_local *l = calloc(1, sizeof *l);
    if (!l) {
        *why = AB_LOCAL_SETUP;
        snprintf(err, errlen, "--local: out of memory");
        return NULL;
    }
    ab_error e;
    if (s_load(l, opt->home, err, errlen, why) < 0 || s_connect(l, err, errlen, why) < 0) {
        ab_local_close(&l);
        return NULL;
    }
    l->audit = ab_audit_new();
    l->events = ab_events_new();
    char description[400];
    snprintf(description, sizeof description,
             "Done via adminctl --local by %s: on the host, with the database credentials of "
             "%s, no authkey",
             opt->actor, l->cfg.home);
    if (!l->audit || !l->events || ab_audit_set_description(l->audit, description) < 0 ||
        s_identity(l, opt->actor, &e) < 0) {
        *why = AB_LOCAL_UNREACHABLE;
        snprintf(err, errlen, "--local: %s", l->audit ? e.message : "out of memory");
        ab_local_close(&l);
        return NULL;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(l->name, sizeof l->name, "adminctl --local (%s:%d)", host, (int)getpid());
    long lease_s = strtol(l->cfg.job_lease_s, NULL, 10);
    l->info =
        (ab_engine_info){.name = l->name,
                         .db_dsn = l->cfg.db_dsn,
                         .job_lease_ms = lease_s >= 2 && lease_s <= 3600 ? (int)lease_s * 900 : 0,
                         .home = l->cfg.home,
                         .secret = &l->secret,
                         .bus_probe = opt->bus_probe,
                         .bus_ctx = &l->cfg};
    return l;
}

const ab_config *ab_local_config(const ab_local *l)
{
    return &l->cfg;
}

const ab_events *ab_local_events(const ab_local *l)
{
    return l->events;
}

int ab_local_key_works(ab_local *l, const char *key, uint32_t *user_id)
{
    ab_identity who;
    ab_error err, ignored;
    char title[256];
    uint32_t fail_user = 0;
    int rc = ab_authenticate(l->db, &l->secret, NULL, key, strlen(key), "", &who, title,
                             sizeof title, &fail_user, &err);
    ab_db_exec(l->db, "ROLLBACK", &ignored); /* end the read's transaction */
    if (rc == 0 && user_id)
        *user_id = who.user_id;
    return rc == 0 ? 1 : err.code == AB_E_UNAUTHENTICATED ? 0 : -1;
}

void ab_local_close(ab_local **lp)
{
    if (!lp || !*lp)
        return;
    ab_local *l = *lp;
    ab_db_close(&l->db);
    ab_audit_destroy(&l->audit);
    ab_events_destroy(&l->events);
    ab_config_free(&l->cfg);
    memset(&l->secret, 0, sizeof l->secret);
    free(l);
    *lp = NULL;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One try: the handler and its audit rows in one transaction. Returns 0 (committed), 1
 * (refused: rolled back, *err says why) or -1 (the transaction broke: try again). */
static int s_try(ab_local *l, const ab_command *cmd, const msgpack_object *args,
                 msgpack_sbuffer *result, ab_error *err)
{
    ab_audit_rewind(l->audit, 0);
    ab_events_clear(l->events);
    msgpack_sbuffer_clear(result);
    ab_ctx ctx = {.engine = &l->info,
                  .db = l->db,
                  .who = &l->who,
                  .ip = "",
                  .cmd = cmd,
                  .args = args,
                  .now_ms = s_now_ms(),
                  .audit = l->audit,
                  .events = l->events};
    msgpack_packer pk;
    msgpack_packer_init(&pk, result, msgpack_sbuffer_write);
    int rc = -1;
    if (ab_db_exec(l->db, "START TRANSACTION", err) == 0 && ab_settings_sync(l->db, err) == 0) {
        rc = ab_handler_for(cmd)(&ctx, &pk, err);
        if (rc == 0 &&
            (ab_audit_flush(l->audit, l->db, err) < 0 || ab_db_exec(l->db, "COMMIT", err) < 0))
            rc = -1;
    }
    if (rc == 0)
        return 0;
    ab_error ignored;
    bool lost = ab_db_connection_lost(l->db);
    if (!lost)
        ab_db_exec(l->db, "ROLLBACK", &ignored);
    ab_events_clear(l->events);
    return ab_db_batch_broken(l->db) && !lost ? -1 : 1; /* a deadlock: worth another try */
}

/* The command, checked as the engine's phase one checks it. */
static const ab_command *s_check(const char *type, const msgpack_object *args, ab_error *err)
{
    const ab_command *cmd = ab_catalog_find(type, strlen(type));
    if (!cmd) {
        ab_fail(err, AB_E_INVALID, "type", "unknown command type '%s'", type);
        return NULL;
    }
    if (args && args->type != MSGPACK_OBJECT_MAP) {
        ab_fail(err, AB_E_INVALID, "args", "args must be a map");
        return NULL;
    }
    return ab_catalog_validate(cmd, args, err) == 0 ? cmd : NULL;
}

int ab_local_run(ab_local *l, const char *type, const char *args, size_t len, const char *id,
                 msgpack_sbuffer *reply)
{
    char fresh[37] = "";
    if (!id)
        id = ab_uuid_v4(fresh) == 0 ? fresh : "00000000-0000-4000-8000-000000000000";
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *argobj = NULL;
    ab_error err;
    ab_error_clear(&err);
    if (args && len > 0) {
        if (msgpack_unpack_next(&up, args, len, NULL) != MSGPACK_UNPACK_SUCCESS)
            ab_fail(&err, AB_E_INVALID, "args", "args is not msgpack");
        else
            argobj = &up.data;
    }
    const ab_command *cmd = err.code == AB_OK ? s_check(type, argobj, &err) : NULL;
    if (cmd)
        ab_authorise(cmd, &l->who, &err);
    msgpack_sbuffer result;
    msgpack_sbuffer_init(&result);
    int rc = 1; /* refused, unless the command runs and commits */
    if (cmd && err.code == AB_OK) {
        rc = -1;
        for (int attempt = 0; attempt < TRIES && rc < 0; attempt++) { /* deadlocks: again */
            ab_error_clear(&err);
            rc = s_try(l, cmd, argobj, &result, &err);
        }
        if (rc < 0) {
            char why[sizeof err.message];
            snprintf(why, sizeof why, "%s", err.message);
            ab_fail(&err, AB_E_UNAVAILABLE, NULL,
                    "the database could not apply the command (%s); try again", why);
        }
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, reply, msgpack_sbuffer_write);
    if (rc == 0) {
        ab_reply_begin_ok(&pk, id);
        msgpack_sbuffer_write(reply, result.data, result.size);
    } else {
        ab_reply_pack_error(&pk, id, &err);
    }
    msgpack_sbuffer_destroy(&result);
    msgpack_unpacked_destroy(&up);
    return rc == 0 ? 0 : 1;
}
