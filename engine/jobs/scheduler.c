/* scheduler.c — leader election and the firing of due tasks (see scheduler.h). */
#include "jobs/scheduler.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire/envelope.h"
#include "core/events.h"
#include "jobs/jobs.h"
#include "wire/log.h"
#include "core/migrate.h"

#define MAX_DUE 64 /* tasks fired per transaction; the rest wait for the next tick */

struct ab_scheduler {
    ab_scheduler_options opt;
    ab_scheduler_bus bus;
    ab_db *lock_db; /* holds GET_LOCK while we lead; its loss is the loss of leadership */
    ab_db *db;      /* the work: reading tasks, enqueueing, advancing */
    volatile sig_atomic_t stop;
    bool leader;
    bool warned; /* the database is unreachable or too old: said once until it recovers */
};

/* A due task as read (and locked) by the leader, and what firing it did. */
typedef struct {
    uint32_t id;
    char type[101];
    int64_t timer_h, due_s, next_s;
    uint64_t job_id;
    bool existed, unknown_type;
    const ab_job_type *jt;
} s_task;

void ab_iso_utc(int64_t epoch_s, char *out, size_t len)
{
    time_t t = (time_t)epoch_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t ab_task_next_after(int64_t due_s, int64_t timer_h, int64_t now_s)
{
    if (timer_h <= 0)
        return 0;
    int64_t period = timer_h * 3600, next = due_s + period;
    if (next <= now_s) /* missed runs during downtime: skip them all, run once */
        next += ((now_s - next) / period + 1) * period;
    return next;
}

/* --- firing ------------------------------------------------------------------------------ */

static int s_load_due(ab_db *db, int64_t now_s, s_task *tasks, int *n, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, now_s);
    ab_param_int(&p, MAX_DUE);
    ab_rows rows;
    /* FOR UPDATE: a second leader (split brain) waits here, then sees the advanced row. */
    if (ab_db_query(db,
                    "SELECT id, type, timer, next_execution_time FROM tasks WHERE enabled = 1 "
                    "AND next_execution_time > 0 AND next_execution_time <= ? ORDER BY id "
                    "LIMIT ? FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int rc;
    *n = 0;
    while (*n < MAX_DUE && (rc = ab_rows_next(&rows)) == 1) {
        s_task *t = &tasks[(*n)++];
        memset(t, 0, sizeof *t);
        t->id = (uint32_t)ab_rows_int(&rows, 0);
        snprintf(t->type, sizeof t->type, "%s", ab_rows_str(&rows, 1, NULL));
        t->timer_h = ab_rows_int(&rows, 2);
        t->due_s = ab_rows_int(&rows, 3);
    }
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "reading due tasks failed") : 0;
}

/* A task whose type has no job type in this build can never run: disable it and say why
 * (an older build against a newer database, or a MISP task we do not implement yet). */
static int s_disable_unknown(ab_db *db, s_task *t, int64_t now_ms, ab_error *err)
{
    char msg[200];
    snprintf(msg, sizeof msg, "Disabled: no job type %s in this build.", t->type);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, msg);
    ab_param_int(&p, now_ms);
    ab_param_int(&p, t->id);
    t->unknown_type = true;
    return ab_db_run(db,
                     "UPDATE tasks SET enabled = 0, message = ?, "
                     "date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                     &p, NULL, NULL, err);
}

static int s_enqueue(ab_db *db, s_task *t, int64_t now_ms, ab_error *err)
{
    char due[32], key[64], input[160];
    ab_iso_utc(t->due_s, due, sizeof due);
    snprintf(key, sizeof key, "task:%u:%s", t->id, due);
    snprintf(input, sizeof input, "task %u (%s) due %s", t->id, t->type, due);
    static const char empty_map[] = "\x80"; /* the type's defaults */
    ab_job_spec spec = {
        .type = t->jt, .payload = empty_map, .payload_len = 1, .input = input, .unique_key = key};
    return ab_job_enqueue(db, &spec, now_ms, &t->job_id, &t->existed, err);
}

static int s_advance(ab_db *db, s_task *t, int64_t now_ms, ab_error *err)
{
    char due[32], next[32], msg[220], pid[24];
    ab_iso_utc(t->due_s, due, sizeof due);
    t->next_s = ab_task_next_after(t->due_s, t->timer_h, now_ms / 1000);
    ab_iso_utc(t->next_s, next, sizeof next);
    if (t->next_s)
        snprintf(msg, sizeof msg, "Job %llu queued for the run due %s; next run %s.",
                 (unsigned long long)t->job_id, due, next);
    else
        snprintf(msg, sizeof msg,
                 "Job %llu queued for the run due %s; runs once: not scheduled "
                 "again.",
                 (unsigned long long)t->job_id, due);
    snprintf(pid, sizeof pid, "%llu", (unsigned long long)t->job_id);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, t->next_s);
    ab_param_int(&p, now_ms);
    ab_param_int(&p, (int64_t)t->job_id);
    ab_param_cstr(&p, pid);
    ab_param_cstr(&p, msg);
    ab_param_int(&p, t->id);
    return ab_db_run(
        db,
        "UPDATE tasks SET next_execution_time = ?, last_run = FROM_UNIXTIME(? / 1000), "
        "date_modified = last_run, last_job_id = ?, process_id = ?, message = ? "
        "WHERE id = ?",
        &p, NULL, NULL, err);
}

static int s_fire_one(ab_db *db, s_task *t, int64_t now_ms, ab_events *ev, ab_error *err)
{
    t->jt = ab_job_type_find(t->type, strlen(t->type));
    if (!t->jt)
        return s_disable_unknown(db, t, now_ms, err);
    if (s_enqueue(db, t, now_ms, err) < 0 || s_advance(db, t, now_ms, err) < 0)
        return -1;
    if (!t->existed && /* the same events the engine publishes for job.enqueue */
        ab_job_events_queue(ev, now_ms, t->job_id, "queued", t->jt->queue, t->jt->type, "queued",
                            true) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return 0;
}

static void s_publish(const ab_scheduler_bus *bus, ab_events *ev)
{
    for (size_t i = 0; bus && bus->publish && i < ab_events_count(ev); i++) {
        const ab_event *e = ab_events_at(ev, i);
        if (bus->publish(bus->ctx, e->topic, e->body.data, e->body.size) < 0)
            AB_DEBUG("scheduler: event %s not sent", e->topic);
    }
}

static void s_log_fired(const s_task *t)
{
    char due[32], next[32];
    ab_iso_utc(t->due_s, due, sizeof due);
    ab_iso_utc(t->next_s, next, sizeof next);
    if (t->unknown_type)
        AB_WARN("scheduler: task %u (%s) disabled: no such job type in this build", t->id, t->type);
    else
        AB_INFO("scheduler: task %u (%s) due %s fired: job %llu%s; next run %s", t->id, t->type,
                due, (unsigned long long)t->job_id,
                t->existed ? " (already enqueued by another scheduler)" : "",
                t->next_s ? next : "none (runs once)");
}

static int s_fire_all(ab_db *db, s_task *tasks, int n, int64_t now_ms, ab_events *ev, ab_error *err)
{
    for (int i = 0; i < n; i++)
        if (s_fire_one(db, &tasks[i], now_ms, ev, err) < 0)
            return -1;
    return ab_db_exec(db, "COMMIT", err);
}

int ab_scheduler_fire_due(ab_db *db, const ab_scheduler_bus *bus, int64_t now_ms, int *fired,
                          ab_error *err)
{
    static s_task tasks[MAX_DUE]; /* one scheduler thread per process */
    int n = 0;
    *fired = 0;
    ab_events *ev = ab_events_new();
    if (!ev)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    int rc = s_load_due(db, now_ms / 1000, tasks, &n, err);
    if (rc == 0)
        rc = s_fire_all(db, tasks, n, now_ms, ev, err);
    if (rc < 0) {
        ab_error ignored;
        ab_db_exec(db, "ROLLBACK", &ignored);
    } else {
        s_publish(bus, ev); /* only after COMMIT: a job exists before anyone hears of it */
        for (int i = 0; i < n; i++) {
            s_log_fired(&tasks[i]);
            *fired += !tasks[i].unknown_type && !tasks[i].existed;
        }
    }
    ab_events_destroy(&ev);
    return rc;
}

/* --- leadership ------------------------------------------------------------------------ */

ab_scheduler *ab_scheduler_new(const ab_scheduler_options *opt, const ab_scheduler_bus *bus)
{
    ab_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->opt = *opt;
    if (s->opt.tick_ms <= 0)
        s->opt.tick_ms = 1000;
    s->bus = *bus;
    return s;
}

/* A connection at the schema version we need, or NULL (said once until it works again). */
static ab_db *s_connect(ab_scheduler *s)
{
    char msg[512] = "";
    ab_error err;
    ab_db *db = ab_db_open(s->opt.db_dsn, msg, sizeof msg);
    int version = db ? ab_schema_current(db, &err) : -1;
    if (db)
        ab_db_exec(db, "COMMIT", &err);
    if (db && version >= AB_SCHEDULER_SCHEMA_MIN) {
        s->warned = false;
        return db;
    }
    if (db)
        snprintf(msg, sizeof msg,
                 "the database has schema version %d, the scheduler needs %d: start "
                 "adminbus-engine once (it migrates) or run `adminctl db update`",
                 version, AB_SCHEDULER_SCHEMA_MIN);
    ab_db_close(&db);
    if (!s->warned)
        AB_WARN("scheduler: %s; retrying every second", msg);
    s->warned = true;
    return NULL;
}

static void s_lose(ab_scheduler *s, const char *why)
{
    if (s->leader)
        AB_WARN("scheduler %s: no longer the leader (%s)", s->opt.name, why);
    s->leader = false;
    ab_db_close(&s->lock_db);
    ab_db_close(&s->db);
}

/* GET_LOCK with timeout 0: the leader is whoever holds it; everyone else tries again. */
static void s_try_lead(ab_scheduler *s)
{
    if (!s->lock_db && !(s->lock_db = s_connect(s)))
        return;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, AB_SCHEDULER_LOCK);
    int64_t got = 0;
    ab_error err;
    int rc = ab_db_scalar(s->lock_db, "SELECT GET_LOCK(?, 0)", &p, &got, &err);
    ab_db_exec(s->lock_db, "COMMIT", &err); /* a named lock outlives transactions */
    if (rc < 0) {
        s_lose(s, "lock connection failed");
        return;
    }
    if (got == 1) {
        s->leader = true;
        AB_INFO("scheduler %s: leader (holds the lock %s)", s->opt.name, AB_SCHEDULER_LOCK);
    }
}

/* Still holding the lock? A dropped connection (server restart, network) releases it. */
static bool s_still_leader(ab_scheduler *s)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, AB_SCHEDULER_LOCK);
    int64_t mine = 0;
    ab_error err;
    int rc = ab_db_scalar(s->lock_db, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", &p, &mine, &err);
    ab_db_exec(s->lock_db, "COMMIT", &err);
    if (rc < 0 || mine != 1) {
        s_lose(s, rc < 0 ? "lock connection lost" : "lock taken over");
        return false;
    }
    return true;
}

/* The leader's work for one tick, on its work connection: the number of jobs it enqueued,
 * or -1 when it could not look. */
static int s_tick(ab_scheduler *s)
{
    if (!s->db && !(s->db = s_connect(s)))
        return -1;
    int64_t now_ms = 0;
    int fired = 0;
    ab_error err;
    if (ab_db_scalar(s->db, "SELECT CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)", NULL,
                     &now_ms, &err) < 0 ||
        ab_scheduler_fire_due(s->db, &s->bus, now_ms, &fired, &err) < 0) {
        if (ab_db_connection_lost(s->db))
            ab_db_close(&s->db);
        /* unavailable: another leader enqueued the same run concurrently; the next tick
         * finds its job and the advanced task. */
        if (err.code == AB_E_UNAVAILABLE)
            AB_INFO("scheduler: %s; trying again", err.message);
        else
            AB_WARN("scheduler: firing due tasks failed: %s", err.message);
        return -1;
    }
    return fired;
}

/* One debug line per tick, once its work is done: a scheduler that is alive and what its
 * tick did (the tests wait for these lines to know that a tick has passed). */
static void s_log_tick(const ab_scheduler *s, int fired)
{
    if (!s->leader)
        AB_DEBUG("scheduler %s: tick: not the leader (lock %s)", s->opt.name, AB_SCHEDULER_LOCK);
    else if (fired >= 0)
        AB_DEBUG("scheduler %s: tick: leader, %d job(s) enqueued", s->opt.name, fired);
    else
        AB_DEBUG("scheduler %s: tick: leader, could not look for due tasks", s->opt.name);
}

int ab_scheduler_run(ab_scheduler *s)
{
    AB_INFO("scheduler %s: started; waiting to lead (lock %s)", s->opt.name, AB_SCHEDULER_LOCK);
    while (!s->stop) {
        if (!s->leader)
            s_try_lead(s);
        else
            s_still_leader(s);
        s_log_tick(s, s->leader ? s_tick(s) : 0);
        if (s->stop)
            break;
        if (s->bus.wait && s->bus.wait(s->bus.ctx, s->opt.tick_ms) < 0) {
            AB_ERROR("scheduler %s: the bus socket broke", s->opt.name);
            return 1;
        }
    }
    AB_INFO("scheduler %s: stopping%s", s->opt.name, s->leader ? " (releasing the lock)" : "");
    return 0;
}

void ab_scheduler_request_stop(ab_scheduler *s)
{
    if (s)
        s->stop = 1;
}

bool ab_scheduler_is_leader(const ab_scheduler *s)
{
    return s->leader;
}

void ab_scheduler_destroy(ab_scheduler **sp)
{
    ab_scheduler *s = *sp;
    if (!s)
        return;
    ab_db_close(&s->lock_db); /* closing the connection releases the lock */
    ab_db_close(&s->db);
    free(s);
    *sp = NULL;
}
