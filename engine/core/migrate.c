/* migrate.c — see migrate.h. Migrations are our own SQL, embedded at build time; each
 * records its version in schema_versions once all its statements have run. DDL commits
 * implicitly in MariaDB, so the statements are written to be re-runnable (IF NOT EXISTS,
 * INSERT IGNORE): a migration interrupted half-way is simply run again. */
#include "core/migrate.h"

#include <stdlib.h>
#include <string.h>

#include "wire/log.h"
#include "migrations.h"

#define LOCK_NAME   "adminbus.migrate"
#define LOCK_WAIT_S 60

int ab_schema_latest(void)
{
    return ab_migrations_count ? ab_migrations[ab_migrations_count - 1].version : 0;
}

int ab_schema_current(ab_db *db, ab_error *err)
{
    int64_t exists = 0, version = 0;
    if (ab_db_scalar(db,
                     "SELECT COUNT(*) FROM information_schema.tables "
                     "WHERE table_schema = DATABASE() AND table_name = 'schema_versions'",
                     NULL, &exists, err) < 0)
        return -1;
    if (exists && ab_db_scalar(db, "SELECT COALESCE(MAX(version), 0) FROM schema_versions", NULL,
                               &version, err) < 0)
        return -1;
    return (int)version;
}

/* Run each statement of sql: they end with ';' at the end of a line. */
static int s_run_script(ab_db *db, const char *sql, ab_error *err)
{
    char *copy = strdup(sql);
    char *stmt = copy;
    int rc = 0;
    for (char *p = copy; *p && rc == 0; p++) {
        if (*p != ';' || (p[1] != '\n' && p[1] != '\0'))
            continue;
        *p = '\0';
        const char *s = stmt;
        while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
            s++;
        if (*s)
            rc = ab_db_exec(db, stmt, err);
        stmt = p + 1;
    }
    free(copy);
    return rc;
}

static int s_apply(ab_db *db, const ab_migration *m, ab_error *err)
{
    AB_INFO("migrate: applying %s", m->name);
    if (s_run_script(db, m->sql, err) < 0)
        return -1;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, m->version);
    ab_param_cstr(&p, m->name);
    if (ab_db_run(db,
                  "INSERT IGNORE INTO schema_versions (version, name, applied) "
                  "VALUES (?, ?, UTC_TIMESTAMP(3))",
                  &p, NULL, NULL, err) < 0)
        return -1;
    return ab_db_exec(db, "COMMIT", err);
}

static int s_migrate_locked(ab_db *db, int *applied, ab_error *err)
{
    int current = ab_schema_current(db, err);
    if (current < 0)
        return -1;
    if (current > ab_schema_latest())
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "the database is at schema version %d, newer than this engine (%d): "
                       "upgrade adminbus",
                       current, ab_schema_latest());
    for (int i = 0; i < ab_migrations_count; i++) {
        if (ab_migrations[i].version <= current)
            continue;
        if (s_apply(db, &ab_migrations[i], err) < 0)
            return -1;
        if (applied)
            (*applied)++;
    }
    return 0;
}

int ab_migrate(ab_db *db, int *applied, ab_error *err)
{
    if (applied)
        *applied = 0;
    int64_t got = 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, LOCK_NAME);
    ab_param_int(&p, LOCK_WAIT_S);
    if (ab_db_scalar(db, "SELECT GET_LOCK(?, ?)", &p, &got, err) < 0)
        return -1;
    if (got != 1)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "another engine has been migrating the database for %d s", LOCK_WAIT_S);
    int rc = s_migrate_locked(db, applied, err);
    ab_error ignored;
    ab_db_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK", &ignored);
    ab_params_init(&p);
    ab_param_cstr(&p, LOCK_NAME);
    int64_t released;
    ab_db_scalar(db, "SELECT RELEASE_LOCK(?)", &p, &released, &ignored);
    return rc;
}
