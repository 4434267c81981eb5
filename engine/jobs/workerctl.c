/* workerctl.c — see workerctl.h. */
#include "jobs/workerctl.h"

#include <stdio.h>
#include <string.h>

#include "wire/envelope.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"

#define S_BURY_MAX 64 /* jobs one worker can hold (a claim is at most 16) with room to spare */

void ab_supervisor_request_topic(const char *host, char *out, size_t len)
{
    snprintf(out, len, "supervisor.%s.request", host);
}

/* --- events ------------------------------------------------------------------------------ */

typedef struct {
    const char *id, *queue, *host, *status;
    int64_t pid;
} s_worker_event;

static void s_pack_worker(msgpack_packer *pk, const void *ctx)
{
    const s_worker_event *e = ctx;
    msgpack_pack_map(pk, 5);
    ab_pack_cstr(pk, "id");
    ab_pack_cstr(pk, e->id);
    ab_pack_cstr(pk, "queue");
    ab_pack_cstr(pk, e->queue);
    ab_pack_cstr(pk, "host");
    ab_pack_cstr(pk, e->host);
    ab_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, e->pid);
    ab_pack_cstr(pk, "status");
    ab_pack_cstr(pk, e->status);
}

int ab_worker_event_queue(ab_events *ev, int64_t ts_ms, const char *id, const char *queue,
                          const char *host, int64_t pid, const char *event, const char *status)
{
    char topic[160];
    snprintf(topic, sizeof topic, "worker.%s.%s", id, event);
    s_worker_event e = {id, queue, host, status, pid};
    return ab_events_push(ev, topic, ts_ms, s_pack_worker, &e);
}

/* A running job of the buried worker. */
typedef struct {
    uint64_t id;
    char queue[33], type[40];
    int attempts, max_attempts, priority;
    bool cancel;
    const char *event; /* retrying, failed, cancelled */
    const char *error; /* last_error; NULL for a cancel */
    const char *worker;
    int64_t run_at_ms; /* retrying */
} s_held;

/* job.<id>.<event> {id, queue, type, state, attempt[, run_at][, error], worker}: the shape of
 * the workers' own job events (worker = the worker that ran the attempt). */
static void s_pack_job(msgpack_packer *pk, const void *ctx)
{
    const s_held *j = ctx;
    msgpack_pack_map(pk, 6 + (j->run_at_ms > 0) + (j->error != NULL));
    ab_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, j->id);
    ab_pack_cstr(pk, "queue");
    ab_pack_cstr(pk, j->queue);
    ab_pack_cstr(pk, "type");
    ab_pack_cstr(pk, j->type);
    ab_pack_cstr(pk, "state");
    ab_pack_cstr(pk, j->event);
    ab_pack_cstr(pk, "attempt");
    msgpack_pack_int(pk, j->attempts);
    if (j->run_at_ms > 0) {
        ab_pack_cstr(pk, "run_at");
        msgpack_pack_int64(pk, j->run_at_ms);
    }
    if (j->error) {
        ab_pack_cstr(pk, "error");
        ab_pack_cstr(pk, j->error);
    }
    ab_pack_cstr(pk, "worker");
    ab_pack_cstr(pk, j->worker);
}

static void s_pack_queue(msgpack_packer *pk, const void *ctx)
{
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "queue");
    ab_pack_cstr(pk, ctx);
}

/* --- burying ----------------------------------------------------------------------------- */

/* The worker's running jobs, locked. Returns how many, or -1. */
static int s_held_jobs(ab_db *db, const char *id, s_held *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, id);
    ab_rows rows;
    /* state = 'running' first: the (state, lease_expires) index reads only running jobs. */
    if (ab_db_query(db,
                    "SELECT id, worker, job_type, attempts, max_attempts, priority, "
                    "cancel_requested FROM jobs WHERE state = 'running' AND process_id = ? "
                    "ORDER BY id FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    while (n < S_BURY_MAX && ab_rows_next(&rows) == 1) {
        s_held *j = &out[n++];
        *j = (s_held){.id = (uint64_t)ab_rows_int(&rows, 0), .worker = id};
        snprintf(j->queue, sizeof j->queue, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(j->type, sizeof j->type, "%s", ab_rows_str(&rows, 2, NULL));
        j->attempts = (int)ab_rows_int(&rows, 3);
        j->max_attempts = (int)ab_rows_int(&rows, 4);
        j->priority = (int)ab_rows_int(&rows, 5);
        j->cancel = ab_rows_int(&rows, 6) != 0;
    }
    ab_rows_close(&rows);
    return n;
}

static const char *const s_end_sql[] = {
    "UPDATE jobs SET state = 'retrying', status = 1, retries = retries + 1, last_error = ?, "
    "message = CONCAT('Retrying: ', ?), run_at = FROM_UNIXTIME(? / 1000), lease_token = NULL, "
    "lease_expires = NULL, process_id = NULL, date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
    "UPDATE jobs SET state = 'failed', status = 3, last_error = ?, message = CONCAT('Failed: ', "
    "?), date_finished = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = NULL, "
    "date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
    "UPDATE jobs SET state = 'cancelled', status = 3, message = 'Cancelled', "
    "date_finished = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = NULL, "
    "date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
};

/* End one held job as an expired lease would, and queue its event. */
static int s_bury_job(ab_db *db, s_held *j, const char *error, ab_events *ev, int64_t now_ms,
                      ab_error *err)
{
    int k = j->cancel ? 2 : j->attempts < j->max_attempts ? 0 : 1;
    static const char *const events[] = {"retrying", "failed", "cancelled"};
    j->event = events[k];
    j->error = k == 2 ? NULL : error;
    j->run_at_ms = k == 0 ? now_ms : 0;
    ab_params p;
    ab_params_init(&p);
    if (k != 2) {
        ab_param_cstr(&p, error);
        ab_param_cstr(&p, error);
    }
    ab_param_int(&p, now_ms);
    ab_param_int(&p, (int64_t)j->id);
    if (ab_db_run(db, s_end_sql[k], &p, NULL, NULL, err) < 0)
        return -1;
    if (k == 0) {
        ab_params_init(&p);
        ab_param_cstr(&p, j->queue);
        ab_param_int(&p, -j->priority);
        ab_param_int(&p, now_ms);
        ab_param_int(&p, (int64_t)j->id);
        if (ab_db_run(db,
                      "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                      "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                      &p, NULL, NULL, err) < 0)
            return -1;
    }
    char topic[96];
    ab_job_topic(j->id, j->event, topic, sizeof topic);
    if (ab_events_push(ev, topic, now_ms, s_pack_job, j) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    if (k == 0) {
        ab_job_wake_topic(j->queue, topic, sizeof topic);
        if (ab_events_push(ev, topic, now_ms, s_pack_queue, j->queue) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    return 0;
}

/* End every held job (s_bury_job) and count those that ended (jobcounts.h; their runs
 * were cut short, so no run time). */
static int s_bury_jobs(ab_db *db, s_held *held, int n, const char *error, ab_events *ev,
                       int64_t now_ms, ab_bury_result *r, ab_error *err)
{
    ab_job_counts counts;
    ab_job_counts_clear(&counts);
    for (int i = 0; i < n; i++) {
        if (s_bury_job(db, &held[i], error, ev, now_ms, err) < 0)
            return -1;
        r->back += held[i].event[0] == 'r';
        r->failed += held[i].event[0] == 'f';
        r->cancelled += held[i].event[0] == 'c';
        if (held[i].event[0] != 'r' &&
            ab_job_counts_add(&counts, held[i].queue, held[i].type, held[i].event, 1, -1) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "too many kinds of job to count");
    }
    return ab_job_counts_write(db, AB_JOB_COUNTS_SHARED, &counts, err);
}

/* The worker's row, locked: queue, host, pid, whether it was dead. 1 found, 0 not, -1. */
static int s_worker_row(ab_db *db, const char *id, char *queue, size_t qlen, char *host,
                        size_t hlen, int64_t *pid, bool *dead, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, id);
    ab_rows rows;
    if (ab_db_query(db, "SELECT queue, host, pid, status FROM workers WHERE id = ? FOR UPDATE", &p,
                    &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        snprintf(queue, qlen, "%s", ab_rows_str(&rows, 0, NULL));
        snprintf(host, hlen, "%s", ab_rows_str(&rows, 1, NULL));
        *pid = ab_rows_int(&rows, 2);
        *dead = strcmp(ab_rows_str(&rows, 3, NULL), "dead") == 0;
    }
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : rc;
}

int ab_worker_bury(ab_db *db, const char *id, const char *why, bool remove, ab_events *ev,
                   int64_t now_ms, ab_bury_result *r, ab_error *err)
{
    *r = (ab_bury_result){0};
    char queue[33] = "", host[65] = "", error[200];
    int64_t pid = 0;
    int found =
        s_worker_row(db, id, queue, sizeof queue, host, sizeof host, &pid, &r->was_dead, err);
    if (found < 0)
        return -1;
    r->found = found == 1;
    snprintf(error, sizeof error, "worker lost: %s", why);
    s_held held[S_BURY_MAX];
    int n = s_held_jobs(db, id, held, err);
    if (n < 0 || s_bury_jobs(db, held, n, error, ev, now_ms, r, err) < 0)
        return -1;
    if (!r->found)
        return 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, id);
    if (ab_db_run(db,
                  remove ? "DELETE FROM workers WHERE id = ?"
                         : "UPDATE workers SET status = 'dead', current_job = NULL WHERE id = ?",
                  &p, NULL, NULL, err) < 0 ||
        (remove && ab_job_counts_fold(db, err) < 0)) /* its counts outlive its row */
        return -1;
    if (!r->was_dead && ab_worker_event_queue(ev, now_ms, id, queue, host, pid, "down", "dead") < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return 0;
}
