/* jobtypes.c — the job-type registry: each type's queue, arguments, handler and retry
 * policy. Add a job type: an argument table, a handler, one row in ab_job_types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/backup.h"
#include "wire/config.h"
#include "wire/envelope.h"
#include "core/idempotency.h"
#include "jobs/jobs.h"
#include "wire/log.h"
#include "mail/mail.h"
#include "mail/mail_keyfetch.h"
#include "auth/secret.h"
#include "auth/session.h"
#include "core/settings_cache.h"

#define COUNT(a)       (sizeof(a) / sizeof((a)[0]))
#define BACKOFF_MAX_MS (3600 * 1000)

/* Both test types can record their run in job_effects, in the completing transaction. */
static int s_record(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    const msgpack_object *tag = ab_map_get(args, "record");
    if (!tag)
        return 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)ab_job_id(run));
    ab_param_str(&p, tag->via.str.ptr, tag->via.str.size);
    ab_param_int(&p, ab_job_attempt(run));
    return ab_db_run(ab_job_db(run),
                     "INSERT INTO job_effects (job_id, tag, attempt, created) "
                     "VALUES (?, ?, ?, UTC_TIMESTAMP(3))",
                     &p, NULL, NULL, err);
}

static int64_t s_int(const msgpack_object *args, const char *name, int64_t def)
{
    const msgpack_object *v = ab_map_get(args, name);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    return def;
}

static const ab_arg s_noop_args[] = {
    {"record", AB_ARG_STR, false, false, 1, 191, NULL,
     "Write this tag to job_effects when the job completes (for tests)", 0},
};

static int s_noop(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    return s_record(run, args, err);
}

static const ab_arg s_sleep_args[] = {
    {"ms", AB_ARG_INT, false, false, 0, 3600000, NULL, "How long to sleep (default 1000)", 0},
    {"fail", AB_ARG_INT, false, false, 0, 100, NULL,
     "Fail this many attempts (temporarily) before succeeding", 0},
    {"fatal", AB_ARG_BOOL, false, false, 0, 0, NULL, "Fail permanently (no retry)", 0},
    {"record", AB_ARG_STR, false, false, 1, 191, NULL,
     "Write this tag to job_effects when the job completes (for tests)", 0},
};

/* Sleeps in ten steps, reporting progress and stopping when asked. */
static int s_sleep(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    const msgpack_object *fatal = ab_map_get(args, "fatal");
    if (fatal && fatal->type == MSGPACK_OBJECT_BOOLEAN && fatal->via.boolean)
        return ab_fail(err, AB_E_INVALID, NULL, "failed on purpose (fatal)");
    if (ab_job_attempt(run) <= s_int(args, "fail", 0))
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "failed on purpose (attempt %d)",
                       ab_job_attempt(run));
    int64_t ms = s_int(args, "ms", 1000);
    for (int step = 1; step <= 10; step++) {
        struct timespec ts = {(time_t)(ms / 10 / 1000), (long)(ms / 10 % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        char msg[96];
        snprintf(msg, sizeof msg, "Slept %lld of %lld ms", (long long)(ms * step / 10),
                 (long long)ms);
        if (ab_job_progress(run, step * 10, msg) < 0)
            return ab_fail(err, AB_E_UNAVAILABLE, NULL, "stopped after %d0 %%", step);
    }
    return s_record(run, args, err);
}

/* --- retention: jobs.purge, commands.purge ------------------------------------------- */

#define PURGE_CHUNK 1000 /* rows per short transaction: never a long lock on a busy table */

#define FINISHED_OLDER                                                                             \
    "FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND "                                \
    "date_finished < UTC_TIMESTAMP(3) - INTERVAL ? SECOND"

static const ab_arg s_jobs_purge_args[] = {
    {"days", AB_ARG_INT, false, false, 0, 36500, NULL,
     "Delete finished jobs older than this many days (default: the setting "
     "SimpleBackgroundJobs.max_job_history_ttl, in seconds)",
     0},
};

/* How old (seconds) a finished job may get: the days argument, else the setting, read
 * afresh (a change made before this job was claimed applies to it). */
static int64_t s_purge_age_s(ab_db *db, const msgpack_object *args)
{
    int64_t days = s_int(args, "days", -1);
    if (days >= 0)
        return days * 86400;
    ab_error err;
    if (ab_settings_sync(db, &err) < 0)
        AB_WARN("jobs.purge: cannot read the settings (%s); using what this worker knows",
                err.message);
    return ab_settings_int("SimpleBackgroundJobs.max_job_history_ttl", 30 * 86400);
}

/* Report "Deleted n of total" and whether to go on (0) or stop (-1, with *err). */
static int s_purge_progress(ab_job_run *run, uint64_t done, int64_t total, const char *what,
                            ab_error *err)
{
    char msg[128];
    int pct = total > 0 ? (int)(done * 100 / (uint64_t)total) : 100;
    snprintf(msg, sizeof msg, "Deleted %llu of %lld %s", (unsigned long long)done, (long long)total,
             what);
    if (ab_job_progress(run, pct > 100 ? 100 : pct, msg) < 0)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "stopped after deleting %llu %s",
                       (unsigned long long)done, what);
    return 0;
}

/* Finished jobs (done, failed, cancelled) whose date_finished is older than the age. Each
 * chunk commits on its own: a rerun after a crash simply deletes what is left. */
static int s_jobs_purge(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    ab_db *db = ab_job_db(run);
    int64_t age_s = s_purge_age_s(db, args), total = 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, age_s);
    if (ab_db_scalar(db, "SELECT COUNT(*) " FINISHED_OLDER, &p, &total, err) < 0)
        return -1;
    uint64_t done = 0, n = 0;
    do {
        ab_params_init(&p);
        ab_param_int(&p, age_s);
        ab_param_int(&p, PURGE_CHUNK);
        if (ab_db_run(db, "DELETE " FINISHED_OLDER " LIMIT ?", &p, NULL, &n, err) < 0 ||
            ab_db_exec(db, "COMMIT", err) < 0)
            return -1;
        done += n;
        if (s_purge_progress(run, done, total > (int64_t)done ? total : (int64_t)done,
                             "finished jobs", err) < 0)
            return -1;
    } while (n == PURGE_CHUNK);
    return 0;
}

static const ab_arg s_commands_purge_args[] = {
    {"days", AB_ARG_INT, false, false, 0, 36500, NULL,
     "Delete command ids older than this many days (default: command_retention_days)", 0},
};

/* command_retention_days of this process's configuration (adminbus.conf, environment). */
static int64_t s_retention_days(void)
{
    ab_config cfg;
    char msg[256], name[] = "adminbus-worker", *argv[] = {name, NULL};
    int argc = 1;
    int64_t days = 7;
    if (ab_config_load(&cfg, &argc, argv, msg, sizeof msg) == 0)
        days = strtoll(cfg.command_retention_days, NULL, 10);
    ab_config_free(&cfg);
    return days > 0 ? days : 7;
}

/* Stored command ids (and their replies) older than `days`, via ab_idem_purge, which
 * commits each chunk itself. */
static int s_commands_purge(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    ab_db *db = ab_job_db(run);
    int64_t days = s_int(args, "days", -1), total = 0;
    if (days < 0)
        days = s_retention_days();
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, days);
    if (ab_db_scalar(db,
                     "SELECT COUNT(*) FROM command_ids WHERE created < UTC_TIMESTAMP(3) - "
                     "INTERVAL ? DAY",
                     &p, &total, err) < 0)
        return -1;
    uint64_t done = 0, n = 0;
    do {
        if (ab_idem_purge(db, (int)days, PURGE_CHUNK, &n, err) < 0)
            return -1;
        done += n;
        if (s_purge_progress(run, done, total > (int64_t)done ? total : (int64_t)done,
                             "command ids", err) < 0)
            return -1;
    } while (n == PURGE_CHUNK);
    return 0;
}

const ab_job_type ab_job_types[] = {
    {"noop", "default", "Do nothing (tests and benchmarks)", s_noop_args, COUNT(s_noop_args),
     s_noop, 5, 500},
    {"sleep", "default", "Sleep, reporting progress; can fail on purpose (tests)", s_sleep_args,
     COUNT(s_sleep_args), s_sleep, 5, 500},
    {"jobs.purge", "default", "Delete finished jobs older than N days (retention)",
     s_jobs_purge_args, COUNT(s_jobs_purge_args), s_jobs_purge, 3, 5000},
    {"commands.purge", "default", "Delete stored command ids older than N days (retention)",
     s_commands_purge_args, COUNT(s_commands_purge_args), s_commands_purge, 3, 5000},
    {"logins.purge", "default", "Delete ended sessions and expired brute-force rows (hourly)", NULL,
     0, ab_logins_purge_job, 3, 5000},
    {"backup", "default", "Back up the database, settings, secrets and files (adminctl backup)",
     ab_backup_args, AB_BACKUP_NARGS, ab_backup_job, 3, 60000},
    /* Temporary SMTP failures: retried after ~2 s, 4 s, 8 s … (about 8.5 minutes in all)
     * before the recipients still waiting are failed with the server's last reply. */
    {"email", "email", "Send a mail-out to its recipients (adminctl contact)", ab_mail_job_args,
     AB_MAIL_JOB_NARGS, ab_mail_job, 9, 2000},
    /* A key server that does not answer: retried after ~5 s and ~10 s. */
    {"gpgkey_fetch", "default",
     "Fetch a user's GnuPG key (WKD, key server) (adminctl user gpg fetch)", ab_gpgkey_fetch_args,
     AB_GPGKEY_FETCH_NARGS, ab_gpgkey_fetch_job, 3, 5000},
};

const size_t ab_job_types_len = COUNT(ab_job_types);

const ab_job_type *ab_job_type_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ab_job_types_len; i++)
        if (strlen(ab_job_types[i].type) == len && memcmp(ab_job_types[i].type, name, len) == 0)
            return &ab_job_types[i];
    return NULL;
}

int ab_job_args_validate(const ab_job_type *t, const msgpack_object *args, ab_error *err)
{
    ab_command as_command = {.type = t->type,
                             .cli = t->type,
                             .summary = t->summary,
                             .help = "",
                             .writes = true,
                             .permission = AB_PERM_SITE_ADMIN,
                             .args = t->args,
                             .nargs = t->nargs};
    return ab_catalog_validate(&as_command, args, err);
}

int64_t ab_job_backoff_ms(const ab_job_type *t, int attempt)
{
    int64_t d = t->backoff_base_ms;
    for (int i = 1; i < attempt && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    uint32_t r = 0;
    ab_random_bytes(&r, sizeof r);
    return d * 3 / 4 + (int64_t)(r % (uint32_t)(d / 2 + 1)); /* ±25 % */
}
