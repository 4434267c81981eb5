/* worker.c — claim, run and record jobs of one queue under leases (see worker.h).
 *
 * Leases and fencing. A claim gives each job a random lease token and an expiry; the
 * heartbeat thread extends the expiry of every job the worker holds. Every write that ends
 * a job names the token (`WHERE id = ? AND lease_token = ?`), and the reaper of any worker
 * clears the token when it puts back a job whose lease expired, so a worker that lost its
 * lease can no longer record anything: its completion is rolled back with the handler's
 * own writes. A worker that cannot heartbeat for half a lease stops its handler, long
 * before the lease can expire and another worker can claim the job: even a database
 * outage never lets two workers run one job.
 *
 * Timing. The heartbeat writes expiry = now + lease - heartbeat period, so a worker killed
 * just after a heartbeat lets its jobs go lease - period later and the reaper (every
 * S_REAP_MS) puts them back well within `lease` of the death (issue 3, acceptance 2).
 *
 * Batched completions. A COMMIT is a log flush; one per job would bound a worker by the
 * disk. So the jobs of one claim that succeed share one transaction, which the worker
 * COMMITs when the claim's jobs are all run, after S_FLUSH_MS, or before anything that needs
 * its own transaction. A handler that writes (it asked for ab_job_db) runs after a
 * SAVEPOINT, and its fenced `done` UPDATE follows its writes at once: the row stays locked
 * by that UPDATE until the COMMIT, so no reaper can take it in between, and a job that did
 * not succeed is undone alone (ROLLBACK TO SAVEPOINT). A handler that writes nothing (noop,
 * any handler that only computes or calls out) costs no statement of its own: the `done` of all
 * such jobs of the batch is one fenced UPDATE (`WHERE lease_token = ? AND id IN (…)`) just before
 * the COMMIT; if it changes fewer rows than it names, a lease was lost, and it is undone and redone
 * one job at a time so the lost ones are known. Events, the worker's done count and the `done` log
 * follow the COMMIT; if the COMMIT fails, each job of the batch is judged as a lost COMMIT
 * was before (a fenced retry or failure record). */
#include "jobs/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wire/envelope.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"
#include "wire/log.h"
#include "auth/secret.h"

#define S_BATCH_MAX     64   /* most jobs claimed at once */
#define S_SHORT_JOB_MS  20   /* jobs shorter than this on average are claimed in batches */
#define S_PROGRESS_MS   100  /* progress is written at most this often per job */
#define S_REAP_MS       250  /* how often the reaper looks for expired leases */
#define S_DEAD_CHECK_MS 1000 /* how often other workers' heartbeats are checked */
#define S_REAP_MAX      100  /* jobs put back per reaper transaction */
#define S_RECONNECT_MS  500  /* at most one reconnection attempt per connection this often */
#define S_TX_TRIES      3    /* a transaction broken by a deadlock is retried this often */
#define S_MSG_MAX       256
#define S_ADOPTED_MAX   256 /* hand-overs remembered, so none is taken up twice */
#define S_FLUSH_MS      20  /* finished jobs wait at most this long for a shared COMMIT */
/* The side connections (heartbeat, progress) run each statement on its own, and wait for
 * a row lock at most 2 s: a heartbeat that read the held jobs just before one finished
 * would otherwise wait on that job's uncommitted done until its batch commits, which a
 * long job run next in the batch could delay past half a lease. A heartbeat that times out
 * is simply retried a period later, without the finished job. */
#define S_SIDE_SETUP "SET autocommit = 1, innodb_lock_wait_timeout = 2"

typedef enum { S_RUN, S_PAUSE, S_STOP } s_desired;
typedef enum { S_OK, S_PAUSED, S_STOPPING } s_status;
static const char *const s_status_names[] = {"ok", "paused", "stopping"};

/* What ends a job run. */
typedef enum { S_DONE, S_RETRY, S_FAIL, S_CANCEL, S_HANDBACK, S_LOST } s_outcome;

/* A job the worker holds (claimed, not yet recorded as ended). */
typedef struct {
    uint64_t id, token;
    int attempt, max_attempts, priority;
    char type[40];
    char *payload;
    size_t payload_len;
    bool started;
    bool lost, cancel;       /* set by the heartbeat thread, under mu */
    bool finished;           /* its handler is over: the fenced end write judges the lease */
    int64_t run_us;          /* how long its handler ran (when started) */
    bool wrote;              /* pending: its handler wrote, and its done is written already */
    char message[S_MSG_MAX]; /* pending: the done message */
} s_job;

struct ab_job_run {
    ab_worker *w;
    s_job *job;
    int64_t last_write_ms; /* when progress was last written (monotonic) */
    char message[S_MSG_MAX];
    bool db_begun;  /* the handler asked for the connection (ab_job_db) */
    bool savepoint; /* … and its writes began at SAVEPOINT ab_job (else at the BEGIN) */
    bool db_failed; /* … and the connection could not be had: the job is handed back */
};

struct ab_worker {
    ab_worker_options opt;
    ab_worker_bus bus;
    char queue[33], host[61], id[100], wake_topic[48];
    int pid;
    int64_t lease_ms, hb_ms;
    ab_db *db;  /* main thread: claims, handlers, outcomes */
    ab_db *pdb; /* main thread: progress, autocommit (db holds the handler's transaction) */
    ab_db *hdb; /* heartbeat thread: heartbeat and reaper */
    int64_t pdb_tried_ms, hdb_tried_ms, db_tried_ms;
    pthread_mutex_t pub_mu; /* the bus publisher is used by both threads */
    pthread_mutex_t mu;     /* guards what follows, shared with the heartbeat thread */
    pthread_cond_t cv;
    s_job jobs[S_BATCH_MAX];
    int njobs;
    s_job pending[S_BATCH_MAX]; /* done and written, not yet committed (main thread only) */
    int npending;
    int npending_wrote;  /* pending jobs with writes in the open transaction */
    int64_t last_run_ms; /* how long the last job ran */
    int64_t pending_since_ms;
    uint64_t current;
    s_status status;
    s_desired desired;
    int64_t hb_ok_ms; /* monotonic start of the last heartbeat that fully succeeded */
    bool stale_logged;
    bool idle_marked;                /* workers.idle is 1 (main thread) */
    bool adopt_due;                  /* look for jobs handed to this worker before the next claim */
    uint64_t adopted[S_ADOPTED_MAX]; /* the last jobs taken up after a hand-over */
    unsigned nadopted;
    bool quit;
    pthread_t hb;
    bool hb_started;
    atomic_int stop_signal;
    atomic_llong stop_seen_ms; /* when the stop signal was first noticed; 0 = not yet */
    uint64_t done, failed;
};

/* --- time --------------------------------------------------------------------------- */

static int64_t s_clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_mono_ms(void)
{
    return s_clock_ms(CLOCK_MONOTONIC);
}

static int64_t s_wall_ms(void)
{
    return s_clock_ms(CLOCK_REALTIME);
}

/* Monotonic microseconds: how long a handler ran. */
static int64_t s_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- events ------------------------------------------------------------------------- */

static void s_publish(ab_worker *w, const char *topic, msgpack_sbuffer *sb)
{
    pthread_mutex_lock(&w->pub_mu);
    int rc = w->bus.publish(w->bus.ctx, topic, sb->data, sb->size);
    pthread_mutex_unlock(&w->pub_mu);
    if (rc < 0)
        AB_WARN("worker %s: could not publish %s", w->id, topic);
    msgpack_sbuffer_destroy(sb);
}

/* job.<id>.<event> {id, queue, type, state, attempt[, run_at][, error][, worker]}: worker is
 * the worker that ran the attempt (by, NULL when unknown: the reaper's events). */
static void s_publish_job_by(ab_worker *w, const char *by, uint64_t id, const char *type,
                             int attempt, const char *event, const char *state, const char *error,
                             int64_t run_at_ms)
{
    char topic[96];
    ab_job_topic(id, event, topic, sizeof topic);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, s_wall_ms());
    msgpack_pack_map(&pk, 5 + (error != NULL) + (run_at_ms > 0) + (by != NULL));
    ab_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    ab_pack_cstr(&pk, "queue");
    ab_pack_cstr(&pk, w->queue);
    ab_pack_cstr(&pk, "type");
    ab_pack_cstr(&pk, type);
    ab_pack_cstr(&pk, "state");
    ab_pack_cstr(&pk, state);
    ab_pack_cstr(&pk, "attempt");
    msgpack_pack_int(&pk, attempt);
    if (run_at_ms > 0) {
        ab_pack_cstr(&pk, "run_at");
        msgpack_pack_int64(&pk, run_at_ms);
    }
    if (error) {
        ab_pack_cstr(&pk, "error");
        ab_pack_cstr(&pk, error);
    }
    if (by) {
        ab_pack_cstr(&pk, "worker");
        ab_pack_cstr(&pk, by);
    }
    s_publish(w, topic, &sb);
}

/* An event of a job this worker runs. */
static void s_publish_job(ab_worker *w, uint64_t id, const char *type, int attempt,
                          const char *event, const char *state, const char *error,
                          int64_t run_at_ms)
{
    s_publish_job_by(w, w->id, id, type, attempt, event, state, error, run_at_ms);
}

/* worker.<id>.<event> {id, queue, host, pid, status} for any worker. */
static void s_publish_worker_as(ab_worker *w, const char *id, const char *queue, const char *host,
                                int64_t pid, const char *event, const char *status)
{
    char topic[160];
    snprintf(topic, sizeof topic, "worker.%s.%s", id, event);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, s_wall_ms());
    msgpack_pack_map(&pk, 5);
    ab_pack_cstr(&pk, "id");
    ab_pack_cstr(&pk, id);
    ab_pack_cstr(&pk, "queue");
    ab_pack_cstr(&pk, queue);
    ab_pack_cstr(&pk, "host");
    ab_pack_cstr(&pk, host);
    ab_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, pid);
    ab_pack_cstr(&pk, "status");
    ab_pack_cstr(&pk, status);
    s_publish(w, topic, &sb);
}

static void s_publish_worker(ab_worker *w, const char *event, const char *status)
{
    s_publish_worker_as(w, w->id, w->queue, w->host, w->pid, event, status);
}

/* Tell the queue's idle workers (this one included) that a job is ready or due later. */
static void s_publish_wake(ab_worker *w)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_event_begin(&pk, w->wake_topic, s_wall_ms());
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "queue");
    ab_pack_cstr(&pk, w->queue);
    s_publish(w, w->wake_topic, &sb);
}

/* --- connections -------------------------------------------------------------------- */

/* The connection in *slot, reopened when it was lost (at most every S_RECONNECT_MS).
 * autocommit connections run each statement as its own transaction. */
static ab_db *s_conn(ab_worker *w, ab_db **slot, int64_t *tried_ms, bool autocommit)
{
    if (*slot)
        return *slot;
    int64_t now = s_mono_ms();
    if (now - *tried_ms < S_RECONNECT_MS)
        return NULL;
    *tried_ms = now;
    char msg[512];
    ab_error err;
    *slot = ab_db_open(w->opt.db_dsn, msg, sizeof msg);
    if (!*slot)
        AB_WARN("worker %s: %s; retrying", w->id, msg);
    else if (autocommit && ab_db_exec(*slot, S_SIDE_SETUP, &err) < 0)
        ab_db_close(slot);
    else
        AB_INFO("worker %s: connected to the database", w->id);
    return *slot;
}

/* After a failed statement: forget a connection that is gone, so it is reopened. */
static void s_conn_failed(ab_db **slot)
{
    if (*slot && ab_db_connection_lost(*slot))
        ab_db_close(slot);
}

static void s_rollback(ab_worker *w)
{
    ab_error err;
    if (w->db && ab_db_exec(w->db, "ROLLBACK", &err) < 0)
        s_conn_failed(&w->db);
}

static int s_begin(ab_db *db, ab_error *err)
{
    return ab_db_exec(db, "START TRANSACTION", err);
}

/* --- the worker's row --------------------------------------------------------------- */

static int s_register(ab_worker *w, ab_db *db, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->id);
    ab_param_cstr(&p, w->queue);
    ab_param_cstr(&p, w->host);
    ab_param_int(&p, w->pid);
    ab_param_cstr(&p, w->opt.supervisor);
    ab_param_int(&p, w->opt.grace_s);
    /* A row with our id is from an earlier process with the same pid: start afresh. */
    return ab_db_run(db,
                     "INSERT INTO workers (id, queue, host, pid, supervisor, grace_s, status, "
                     "desired, current_job, done_count, failed_count, started, last_heartbeat) "
                     "VALUES (?, ?, ?, ?, ?, ?, 'ok', 'run', NULL, 0, 0, UTC_TIMESTAMP(3), "
                     "UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE queue = VALUES(queue), "
                     "host = VALUES(host), pid = VALUES(pid), supervisor = VALUES(supervisor), "
                     "grace_s = VALUES(grace_s), status = 'ok', desired = 'run', "
                     "current_job = NULL, done_count = 0, failed_count = 0, "
                     "started = VALUES(started), last_heartbeat = VALUES(last_heartbeat)",
                     &p, NULL, NULL, err);
}

/* Write the worker's status now (not only at the next heartbeat), on the main connection,
 * which is free: no job runs when the status changes. */
static void s_write_status(ab_worker *w, const char *status)
{
    ab_error err;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, status);
    ab_param_cstr(&p, w->id);
    ab_db *db = s_conn(w, &w->db, &w->db_tried_ms, false);
    if (!db)
        return;
    if (ab_db_run(db,
                  "UPDATE workers SET status = ?, idle = 0, current_job = NULL, "
                  "last_heartbeat = UTC_TIMESTAMP(3) WHERE id = ?",
                  &p, NULL, NULL, &err) < 0 ||
        ab_db_exec(db, "COMMIT", &err) < 0) {
        s_rollback(w);
        s_conn_failed(&w->db);
    }
    w->idle_marked = false; /* not ok: not idle either (an enqueue hands it nothing) */
}

/* 'restart' stops the worker as SIGTERM does (see s_read_desired). */
static s_desired s_parse_desired(const char *s)
{
    if (s && strcmp(s, "pause") == 0)
        return S_PAUSE;
    if (s && (strcmp(s, "stop") == 0 || strcmp(s, "restart") == 0))
        return S_STOP;
    return S_RUN;
}

/* Read workers.desired; -1 when the database cannot be read. 'restart' (worker.restart) is a
 * stop as on SIGTERM: no new claims, the running handler gets worker_grace_s, then what it
 * gave up on is handed back; the worker's supervisor then starts a replacement. */
static int s_read_desired(ab_worker *w, ab_db *db, s_desired *out)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->id);
    ab_rows rows;
    ab_error err;
    if (ab_db_query(db, "SELECT desired FROM workers WHERE id = ?", &p, &rows, &err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    const char *desired = rc == 1 ? ab_rows_str(&rows, 0, NULL) : NULL;
    if (desired && strcmp(desired, "restart") == 0)
        atomic_store(&w->stop_signal, 1);
    *out = s_parse_desired(desired);
    ab_rows_close(&rows);
    return rc < 0 ? -1 : 0;
}

/* --- shared state ------------------------------------------------------------------- */

static bool s_stop_signalled(ab_worker *w)
{
    if (!atomic_load(&w->stop_signal))
        return false;
    long long zero = 0;
    atomic_compare_exchange_strong(&w->stop_seen_ms, &zero, (long long)s_mono_ms());
    return true;
}

/* True once the stop signal is older than the grace period. */
static bool s_grace_over(ab_worker *w, int64_t now)
{
    if (!s_stop_signalled(w))
        return false;
    return now - atomic_load(&w->stop_seen_ms) >= (int64_t)w->opt.grace_s * 1000;
}

/* Under mu: when heartbeats have failed for half a lease, every held job counts as lost,
 * for good (a handler told to stop is not told to go on when the database comes back). */
static void s_check_stale_locked(ab_worker *w, int64_t now)
{
    if (now - w->hb_ok_ms <= w->lease_ms / 2)
        return;
    for (int i = 0; i < w->njobs; i++)
        w->jobs[i].lost = true;
    if (w->njobs && !w->stale_logged)
        AB_ERROR("worker %s: no heartbeat for %lld ms: stopping the running job, its lease "
                 "cannot be trusted (is MariaDB reachable?)",
                 w->id, (long long)(now - w->hb_ok_ms));
    w->stale_logged = w->njobs > 0;
}

static void s_set_current(ab_worker *w, uint64_t id)
{
    pthread_mutex_lock(&w->mu);
    w->current = id;
    pthread_mutex_unlock(&w->mu);
}

/* From now on the job's end is being recorded (see s_apply_leases_locked). */
static void s_mark_finished(ab_worker *w, s_job *j)
{
    pthread_mutex_lock(&w->mu);
    j->finished = true;
    pthread_mutex_unlock(&w->mu);
}

static void s_drop_first_job(ab_worker *w)
{
    pthread_mutex_lock(&w->mu);
    free(w->jobs[0].payload);
    memmove(&w->jobs[0], &w->jobs[1], (size_t)(w->njobs - 1) * sizeof w->jobs[0]);
    w->njobs--;
    pthread_mutex_unlock(&w->mu);
}

/* --- heartbeat thread --------------------------------------------------------------- */

typedef struct {
    uint64_t id, token;
    bool lost, cancel;
} s_lease;

/* Extend one lease and read the job's cancel flag. 0, or -1 on a database fault. */
static int s_extend(ab_worker *w, ab_db *db, s_lease *l)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (w->lease_ms - w->hb_ms) * 1000);
    ab_param_int(&p, (int64_t)l->id);
    ab_param_int(&p, (int64_t)l->token);
    uint64_t changed = 0;
    ab_error err;
    /* The expiry always moves forward, so a matching row always counts as changed. */
    if (ab_db_run(db,
                  "UPDATE jobs SET lease_expires = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND "
                  "WHERE id = ? AND lease_token = ? AND state = 'running'",
                  &p, NULL, &changed, &err) < 0)
        return -1;
    l->lost = changed == 0;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)l->id);
    int64_t cancel = 0;
    if (ab_db_scalar(db, "SELECT cancel_requested FROM jobs WHERE id = ?", &p, &cancel, &err) < 0)
        return -1;
    l->cancel = cancel != 0;
    return 0;
}

/* Under mu: apply what the heartbeat learnt to the jobs still held under the same token
 * whose handler has not finished. A finished job is left to the write that ends it: that
 * write is fenced by the token and says itself when the lease was lost; and the heartbeat's
 * extension may have found no row only because that write had just committed (the job is
 * still held until the main thread drops it), which is no lost lease. */
static void s_apply_leases_locked(ab_worker *w, const s_lease *l, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < w->njobs; k++) {
            s_job *j = &w->jobs[k];
            if (j->id != l[i].id || j->token != l[i].token || j->finished)
                continue;
            if (l[i].lost && !j->lost)
                AB_WARN("worker %s: lost the lease of job %llu (another worker or the reaper "
                        "took it); its handler is told to stop",
                        w->id, (unsigned long long)j->id);
            j->lost |= l[i].lost;
            j->cancel |= l[i].cancel;
        }
}

static int s_heartbeat_row(ab_worker *w, ab_db *db, s_status status, uint64_t current,
                           s_desired *desired)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s_status_names[status]);
    if (current)
        ab_param_int(&p, (int64_t)current);
    else
        ab_param_str(&p, NULL, 0);
    ab_param_cstr(&p, w->id);
    uint64_t changed = 0;
    ab_error err;
    if (ab_db_run(db,
                  "UPDATE workers SET last_heartbeat = UTC_TIMESTAMP(3), status = ?, "
                  "current_job = ? WHERE id = ?",
                  &p, NULL, &changed, &err) < 0)
        return -1;
    if (changed == 0 && s_register(w, db, &err) < 0) /* the row was removed: put it back */
        return -1;
    return s_read_desired(w, db, desired);
}

/* One heartbeat: the worker's row, then the lease of every held job. */
static void s_heartbeat(ab_worker *w)
{
    int64_t started = s_mono_ms();
    s_lease leases[S_BATCH_MAX];
    pthread_mutex_lock(&w->mu);
    s_status status = w->status;
    uint64_t current = w->current;
    int n = w->njobs;
    for (int i = 0; i < n; i++)
        leases[i] = (s_lease){w->jobs[i].id, w->jobs[i].token, false, false};
    pthread_mutex_unlock(&w->mu);
    ab_db *db = s_conn(w, &w->hdb, &w->hdb_tried_ms, true);
    s_desired desired = S_RUN;
    int rc = db ? s_heartbeat_row(w, db, status, current, &desired) : -1;
    for (int i = 0; i < n && rc == 0; i++)
        rc = s_extend(w, db, &leases[i]);
    if (rc < 0 && db)
        s_conn_failed(&w->hdb);
    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        s_apply_leases_locked(w, leases, n);
        if (started > w->hb_ok_ms) /* a claim may have renewed every lease since */
            w->hb_ok_ms = started;
        w->desired = desired;
        w->stale_logged = false;
    }
    s_check_stale_locked(w, s_mono_ms());
    pthread_mutex_unlock(&w->mu);
}

/* A job whose lease expired, as the reaper found it. */
typedef struct {
    uint64_t id;
    char type[40];
    int attempts, max_attempts, priority;
    bool cancel;
    s_outcome outcome;
} s_expired;

static int s_reap_select(ab_worker *w, ab_db *db, s_expired *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->queue);
    ab_param_int(&p, S_REAP_MAX);
    ab_rows rows;
    if (ab_db_query(db,
                    "SELECT id, job_type, attempts, max_attempts, priority, cancel_requested "
                    "FROM jobs FORCE INDEX (jobs_running_lease) WHERE state = 'running' AND "
                    "lease_expires < UTC_TIMESTAMP(3) AND worker = ? ORDER BY lease_expires "
                    "LIMIT ? FOR UPDATE SKIP LOCKED", /* index named: see s_adopt */
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    while (n < S_REAP_MAX && ab_rows_next(&rows) == 1) {
        s_expired *e = &out[n++];
        e->id = (uint64_t)ab_rows_int(&rows, 0);
        snprintf(e->type, sizeof e->type, "%s", ab_rows_str(&rows, 1, NULL));
        e->attempts = (int)ab_rows_int(&rows, 2);
        e->max_attempts = (int)ab_rows_int(&rows, 3);
        e->priority = (int)ab_rows_int(&rows, 4);
        e->cancel = ab_rows_int(&rows, 5) != 0;
    }
    ab_rows_close(&rows);
    return n;
}

#define S_LEASE_EXPIRED "worker lost: lease expired"

/* Put back (or end) one expired job; its row is locked by the reaper's transaction. */
static int s_reap_one(ab_worker *w, ab_db *db, s_expired *e, int64_t now_ms, ab_error *err)
{
    e->outcome = e->cancel ? S_CANCEL : e->attempts < e->max_attempts ? S_RETRY : S_FAIL;
    static const char *const sql[] = {
        [S_RETRY] = "UPDATE jobs SET state = 'retrying', status = 1, retries = retries + 1, "
                    "last_error = '" S_LEASE_EXPIRED "', message = 'Retrying: " S_LEASE_EXPIRED
                    "', run_at = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = "
                    "NULL, process_id = NULL, date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
        [S_FAIL] = "UPDATE jobs SET state = 'failed', status = 3, last_error = '" S_LEASE_EXPIRED
                   "', message = 'Failed: " S_LEASE_EXPIRED "', date_finished = "
                   "FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = NULL, "
                   "date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
        [S_CANCEL] = "UPDATE jobs SET state = 'cancelled', status = 3, message = 'Cancelled', "
                     "date_finished = FROM_UNIXTIME(? / 1000), lease_token = NULL, "
                     "lease_expires = NULL, date_modified = UTC_TIMESTAMP(3) WHERE id = ?",
    };
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, now_ms);
    ab_param_int(&p, (int64_t)e->id);
    if (ab_db_run(db, sql[e->outcome], &p, NULL, NULL, err) < 0)
        return -1;
    if (e->outcome != S_RETRY)
        return 0;
    ab_params_init(&p);
    ab_param_cstr(&p, w->queue);
    ab_param_int(&p, -e->priority);
    ab_param_int(&p, now_ms);
    ab_param_int(&p, (int64_t)e->id);
    return ab_db_run(db,
                     "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                     "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                     &p, NULL, NULL, err);
}

static void s_reap_announce(ab_worker *w, const s_expired *e, int n, int64_t now_ms)
{
    bool wake = false;
    for (int i = 0; i < n; i++) {
        static const char *const names[] = {
            [S_RETRY] = "retrying", [S_FAIL] = "failed", [S_CANCEL] = "cancelled"};
        const char *name = names[e[i].outcome];
        AB_WARN("worker %s: job %llu (%s) %s: its lease expired (its worker is gone)", w->id,
                (unsigned long long)e[i].id, e[i].type, name);
        s_publish_job_by(w, NULL, e[i].id, e[i].type, e[i].attempts, name, name,
                         e[i].outcome == S_CANCEL ? NULL : S_LEASE_EXPIRED,
                         e[i].outcome == S_RETRY ? now_ms : 0);
        wake |= e[i].outcome == S_RETRY;
    }
    if (wake)
        s_publish_wake(w);
}

/* Count the jobs the reaper ended (failed, cancelled) in its transaction, in the shared
 * shard: their runs were cut short, so they stay out of the run-time histogram. */
static int s_reap_count(ab_worker *w, ab_db *db, const s_expired *e, int n, ab_error *err)
{
    ab_job_counts c;
    ab_job_counts_clear(&c);
    for (int i = 0; i < n; i++)
        if (e[i].outcome != S_RETRY &&
            ab_job_counts_add(&c, w->queue, e[i].type,
                              e[i].outcome == S_FAIL ? "failed" : "cancelled", 1, -1) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "too many kinds of job to count");
    return ab_job_counts_write(db, AB_JOB_COUNTS_SHARED, &c, err);
}

/* The reaper: jobs of this queue whose lease expired go back to the ready set (the attempt
 * they used counts) or, out of attempts, fail. */
static void s_reap(ab_worker *w)
{
    ab_db *db = s_conn(w, &w->hdb, &w->hdb_tried_ms, true);
    if (!db)
        return;
    s_expired found[S_REAP_MAX];
    int64_t now_ms = s_wall_ms();
    ab_error err;
    int n = s_begin(db, &err) == 0 ? s_reap_select(w, db, found, &err) : -1;
    int done = 0;
    while (done < n && s_reap_one(w, db, &found[done], now_ms, &err) == 0)
        done++;
    if (n >= 0 && done == n && s_reap_count(w, db, found, n, &err) == 0 &&
        ab_db_exec(db, "COMMIT", &err) == 0) {
        s_reap_announce(w, found, n, now_ms);
        return;
    }
    if (ab_db_exec(db, "ROLLBACK", &err) < 0 || ab_db_connection_lost(db))
        ab_db_close(&w->hdb);
}

/* Mark workers that stopped heartbeating (3 leases) dead, and announce it. */
static void s_mark_dead(ab_worker *w)
{
    ab_db *db = s_conn(w, &w->hdb, &w->hdb_tried_ms, true);
    if (!db)
        return;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, 3 * w->lease_ms * 1000);
    ab_rows rows;
    ab_error err;
    if (ab_db_query(db,
                    "SELECT id, queue, host, pid FROM workers WHERE status <> 'dead' AND "
                    "last_heartbeat < UTC_TIMESTAMP(3) - INTERVAL ? MICROSECOND LIMIT 100",
                    &p, &rows, &err) < 0) {
        s_conn_failed(&w->hdb);
        return;
    }
    while (ab_rows_next(&rows) == 1) {
        const char *id = ab_rows_str(&rows, 0, NULL);
        ab_params_init(&p);
        ab_param_cstr(&p, id);
        ab_param_int(&p, 3 * w->lease_ms * 1000);
        uint64_t changed = 0;
        if (ab_db_run(db,
                      "UPDATE workers SET status = 'dead', current_job = NULL WHERE id = ? AND "
                      "status <> 'dead' AND last_heartbeat < UTC_TIMESTAMP(3) - INTERVAL ? "
                      "MICROSECOND",
                      &p, NULL, &changed, &err) < 0)
            break;
        if (!changed)
            continue;
        AB_WARN("worker %s: worker %s sent no heartbeat for %lld s: marked dead", w->id, id,
                (long long)(3 * w->lease_ms / 1000));
        s_publish_worker_as(w, id, ab_rows_str(&rows, 1, NULL), ab_rows_str(&rows, 2, NULL),
                            ab_rows_int(&rows, 3), "down", "dead");
    }
    ab_rows_close(&rows);
}

/* Under mu: sleep until the monotonic time next_ms, or until woken to quit. */
static void s_sleep_until_locked(ab_worker *w, int64_t next_ms)
{
    int64_t until = next_ms - s_mono_ms();
    if (until <= 0 || w->quit)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (until % 1000) * 1000000;
    ts.tv_sec += (time_t)(until / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

typedef struct {
    int64_t heartbeat, reap, dead; /* when each is next due (monotonic ms) */
} s_due;

/* Do what is due; returns when the next thing is. */
static int64_t s_heartbeat_tick(ab_worker *w, s_due *due)
{
    int64_t now = s_mono_ms();
    if (s_stop_signalled(w)) { /* also notes when it came, for the grace period */
        pthread_mutex_lock(&w->mu);
        w->status = S_STOPPING;
        pthread_mutex_unlock(&w->mu);
    }
    if (now >= due->heartbeat) {
        due->heartbeat = now + w->hb_ms;
        s_heartbeat(w);
    }
    if (now >= due->reap) {
        due->reap = now + S_REAP_MS;
        s_reap(w);
    }
    if (now >= due->dead) {
        due->dead = now + S_DEAD_CHECK_MS;
        s_mark_dead(w);
    }
    int64_t next = due->heartbeat < due->reap ? due->heartbeat : due->reap;
    return next < due->dead ? next : due->dead;
}

static void *s_heartbeat_main(void *arg)
{
    ab_worker *w = arg;
    s_due due = {0, 0, 0};
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        pthread_mutex_unlock(&w->mu);
        int64_t next = s_heartbeat_tick(w, &due);
        pthread_mutex_lock(&w->mu);
        s_sleep_until_locked(w, next);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Start the heartbeat thread with the stop signals blocked, so they reach the main thread
 * (whose wait for a wake-up they interrupt). */
static int s_heartbeat_start(ab_worker *w)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&w->hb, NULL, s_heartbeat_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    w->hb_started = rc == 0;
    return rc == 0 ? 0 : -1;
}

static void s_heartbeat_stop(ab_worker *w)
{
    if (!w->hb_started)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->hb, NULL);
    w->hb_started = false;
}

/* --- claiming ----------------------------------------------------------------------- */

/* sql = head + "?, ?, …" (n marks) + tail: fixed fragments only, never a value. */
static const char *s_sql_in(char *buf, size_t len, const char *head, int n, const char *tail)
{
    size_t off = (size_t)snprintf(buf, len, "%s", head);
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", ?" : "?");
    if (off < len)
        snprintf(buf + off, len - off, "%s", tail);
    return buf;
}

static uint64_t s_token(void)
{
    uint64_t t = 0;
    ab_random_bytes(&t, sizeof t);
    t &= (uint64_t)INT64_MAX; /* 63 bits: fits BIGINT and the signed bind */
    return t ? t : 1;
}

/* The statement head + "?, ?, …" + tail for n ids, n rounded up to a power of two with the
 * last id repeated (an IN list does not mind), so that a few prepared shapes serve every
 * batch size; the ids are bound after whatever p already holds. */
static const char *s_sql_ids(char *buf, size_t len, const char *head, const uint64_t *ids, int n,
                             const char *tail, ab_params *p)
{
    int shape = 1;
    while (shape < n)
        shape *= 2;
    for (int i = 0; i < shape; i++)
        ab_param_int(p, (int64_t)ids[i < n ? i : n - 1]);
    return s_sql_in(buf, len, head, shape, tail);
}

static void s_job_from_row(const ab_rows *rows, uint64_t token, s_job *j)
{
    size_t len = 0;
    const char *payload = ab_rows_str(rows, 2, &len);
    *j = (s_job){.id = (uint64_t)ab_rows_int(rows, 0), .token = token};
    snprintf(j->type, sizeof j->type, "%s", ab_rows_str(rows, 1, NULL));
    if (payload && len && (j->payload = malloc(len)))
        memcpy(j->payload, payload, j->payload_len = len);
    j->attempt = (int)ab_rows_int(rows, 3) + 1; /* the claim counts this attempt */
    j->max_attempts = (int)ab_rows_int(rows, 4);
    j->priority = (int)ab_rows_int(rows, 5);
    j->cancel = ab_rows_int(rows, 6) != 0;
}

/* The ready jobs to claim, in claim order, with what running them needs: their ready rows
 * and job rows locked (SKIP LOCKED on both), read in one statement. STRAIGHT_JOIN keeps
 * job_ready first whatever the statistics say: read in its key order, LIMIT stops early. *nready
 * counts every ready row taken (ids), out only the jobs that may run (queued or retrying). */
static int s_claim_select(ab_worker *w, int max, uint64_t token, uint64_t *ids, int *nready,
                          s_job *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->queue);
    ab_param_int(&p, max);
    ab_rows rows;
    if (ab_db_query(w->db,
                    "SELECT j.id, j.job_type, j.payload, j.attempts, j.max_attempts, j.priority, "
                    "j.cancel_requested, j.state IN ('queued', 'retrying') "
                    "FROM job_ready r STRAIGHT_JOIN jobs j ON j.id = r.job_id "
                    "WHERE r.worker = ? AND r.run_at <= UTC_TIMESTAMP(3) "
                    "ORDER BY r.prank, r.run_at, r.job_id LIMIT ? FOR UPDATE SKIP LOCKED",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    *nready = 0;
    while (*nready < max && ab_rows_next(&rows) == 1) {
        ids[(*nready)++] = (uint64_t)ab_rows_int(&rows, 0);
        if (ab_rows_int(&rows, 7))
            s_job_from_row(&rows, token, &out[n++]);
    }
    ab_rows_close(&rows);
    return n;
}

/* Take the ready rows out and mark the runnable jobs running under token. */
static int s_claim_mark(ab_worker *w, const uint64_t *ids, int nready, const s_job *jobs, int n,
                        uint64_t token, ab_error *err)
{
    char sql[1024];
    ab_params p;
    ab_params_init(&p);
    if (ab_db_run(w->db,
                  s_sql_ids(sql, sizeof sql, "DELETE FROM job_ready WHERE job_id IN (", ids, nready,
                            ")", &p),
                  &p, NULL, NULL, err) < 0)
        return -1;
    if (n == 0)
        return 0;
    uint64_t run[S_BATCH_MAX];
    for (int i = 0; i < n; i++)
        run[i] = jobs[i].id;
    /* One token per claim: fencing compares (id, token), and every claim draws a new one. */
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)token);
    ab_param_int(&p, (w->lease_ms - w->hb_ms) * 1000);
    ab_param_cstr(&p, w->id);
    s_sql_ids(sql, sizeof sql,
              "UPDATE jobs SET state = 'running', status = 2, attempts = attempts + 1, "
              "lease_token = ?, lease_expires = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND, "
              "process_id = ?, message = 'Running', date_modified = UTC_TIMESTAMP(3) "
              "WHERE id IN (",
              run, n, ")", &p);
    return ab_db_run(w->db, sql, &p, NULL, NULL, err);
}

static void s_free_jobs(s_job *jobs, int n)
{
    for (int i = 0; i < n; i++)
        free(jobs[i].payload);
}

/* The jobs an enqueue handed straight to this worker (running, leased to it, not held):
 * read, not claimed — they are already this worker's. Returns how many, or -1. The index
 * is named: statistics taken while `jobs` was small make the optimiser scan the table
 * (measured: 10 ms per pick-up after a burst of 40,000 jobs into a new database). */
static int s_adopt(ab_worker *w, int max, s_job *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->id);
    ab_param_int(&p, max);
    ab_rows rows;
    if (ab_db_query(w->db,
                    "SELECT id, job_type, payload, attempts, max_attempts, priority, "
                    "cancel_requested, lease_token FROM jobs FORCE INDEX (jobs_running_lease) "
                    "WHERE state = 'running' AND process_id = ? AND message = 'Assigned' AND "
                    "lease_token IS NOT NULL ORDER BY id LIMIT ?",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    while (n < max && ab_rows_next(&rows) == 1) {
        uint64_t id = (uint64_t)ab_rows_int(&rows, 0);
        bool seen = false; /* a job is handed over once, when enqueued: never take it twice */
        for (int i = 0; i < S_ADOPTED_MAX && !seen; i++)
            seen = w->adopted[i] == id;
        if (seen)
            continue;
        w->adopted[w->nadopted++ % S_ADOPTED_MAX] = id;
        s_job_from_row(&rows, (uint64_t)ab_rows_int(&rows, 7), &out[n]);
        out[n++].attempt--; /* the hand-over counted the attempt already */
    }
    ab_rows_close(&rows);
    return n;
}

/* Tell enqueues whether this worker waits for work (workers.idle): set when a claim finds
 * nothing, cleared when one finds something; in the claim's transaction. */
static int s_mark_idle(ab_worker *w, bool idle, ab_error *err)
{
    if (w->idle_marked == idle)
        return 0;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, idle);
    ab_param_cstr(&p, w->id);
    if (ab_db_run(w->db, "UPDATE workers SET idle = ? WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    w->idle_marked = idle;
    return 0;
}

/* One claim transaction (the main connection does not autocommit: the SELECT opens it):
 * first the jobs handed to this worker, when a notice or a quiet spell says there may be
 * some, else the ready set. Returns the number of jobs claimed into out, or -1. */
static int s_claim_tx(ab_worker *w, int max, s_job *out, ab_error *err)
{
    if (w->adopt_due) {
        int n = s_adopt(w, max, out, err);
        if (n < 0)
            return -1;
        w->adopt_due = false;
        if (n > 0) {
            w->idle_marked = false; /* the hand-over cleared it */
            if (ab_db_exec(w->db, "COMMIT", err) < 0) {
                s_free_jobs(out, n);
                return -1;
            }
            return n;
        }
    }
    uint64_t ids[S_BATCH_MAX];
    uint64_t token = s_token();
    int nready = 0;
    int n = s_claim_select(w, max, token, ids, &nready, out, err);
    if (n < 0)
        return -1;
    if (nready == 0)
        return s_mark_idle(w, true, err) < 0 ? -1 : ab_db_exec(w->db, "COMMIT", err);
    if (s_claim_mark(w, ids, nready, out, n, token, err) < 0 || s_mark_idle(w, false, err) < 0 ||
        ab_db_exec(w->db, "COMMIT", err) < 0) {
        s_free_jobs(out, n);
        return -1;
    }
    return n;
}

/* Claim up to max ready jobs into w->jobs (retrying a transaction broken by a deadlock).
 * Returns the number claimed, or -1 when the database failed. */
static int s_claim(ab_worker *w, int max)
{
    s_job got[S_BATCH_MAX];
    for (int tries = 0; tries < S_TX_TRIES; tries++) {
        ab_error err;
        int64_t started = s_mono_ms();
        int n = s_claim_tx(w, max, got, &err);
        if (n >= 0) {
            pthread_mutex_lock(&w->mu);
            memcpy(w->jobs, got, (size_t)n * sizeof got[0]);
            w->njobs = n;
            if (n) /* the claim just set every held lease: as good as a heartbeat */
                w->hb_ok_ms = started;
            pthread_mutex_unlock(&w->mu);
            return n;
        }
        s_rollback(w);
        if (!w->db || !ab_db_batch_broken(w->db) || ab_db_connection_lost(w->db))
            break;
    }
    if (w->db)
        s_conn_failed(&w->db);
    return -1;
}

/* --- recording how a job ended ------------------------------------------------------ */

static void s_flush_done(ab_worker *w);

typedef struct {
    s_outcome outcome;
    const char *error; /* last_error (retry, fail) */
    char message[S_MSG_MAX];
    int64_t run_at_ms; /* retry, hand-back */
} s_end;

static const char *const s_end_sql[] = {
    [S_RETRY] = "UPDATE jobs SET state = 'retrying', status = 1, retries = retries + 1, "
                "last_error = ?, message = ?, run_at = FROM_UNIXTIME(? / 1000), lease_token = "
                "NULL, lease_expires = NULL, process_id = NULL, date_modified = "
                "UTC_TIMESTAMP(3) WHERE id = ? AND lease_token = ?",
    /* A hand-back does not count the attempt against the job (it was the worker that
     * stopped, not the job that failed): attempts goes back down by one. A job that never
     * started is queued again as it was. */
    [S_HANDBACK] = "UPDATE jobs SET state = IF(? OR attempts > 1, 'retrying', 'queued'), "
                   "status = 1, attempts = IF(attempts > 0, attempts - 1, 0), message = ?, "
                   "run_at = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = NULL, "
                   "process_id = NULL, date_modified = UTC_TIMESTAMP(3) "
                   "WHERE id = ? AND lease_token = ?",
    [S_FAIL] = "UPDATE jobs SET state = 'failed', status = 3, last_error = ?, message = ?, "
               "date_finished = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = "
               "NULL, date_modified = UTC_TIMESTAMP(3) WHERE id = ? AND lease_token = ?",
    [S_CANCEL] = "UPDATE jobs SET state = 'cancelled', status = 3, "
                 "last_error = COALESCE(?, last_error), message = ?, "
                 "date_finished = FROM_UNIXTIME(? / 1000), lease_token = NULL, lease_expires = "
                 "NULL, date_modified = UTC_TIMESTAMP(3) WHERE id = ? AND lease_token = ?",
};

/* Count one job that this worker ended in state, in the open transaction (jobcounts.h). */
static int s_count_end(ab_worker *w, const s_job *j, const char *state, ab_error *err)
{
    ab_job_counts c;
    ab_job_counts_clear(&c);
    ab_job_counts_add(&c, w->queue, j->type, state, 1, j->started ? j->run_us : -1);
    return ab_job_counts_write(w->db, w->id, &c, err);
}

/* The job's row for e, the ready row for a retry, the worker's count for a failure and
 * the job counters for an end: one transaction. Returns 1 when recorded, 0 when the lease
 * was gone, -1 on a fault. */
static int s_end_tx(ab_worker *w, const s_job *j, const s_end *e, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    if (e->outcome == S_HANDBACK)
        ab_param_int(&p, j->started);
    else
        ab_param_cstr(&p, e->error);
    ab_param_cstr(&p, e->message);
    ab_param_int(&p, e->run_at_ms ? e->run_at_ms : s_wall_ms());
    ab_param_int(&p, (int64_t)j->id);
    ab_param_int(&p, (int64_t)j->token);
    uint64_t changed = 0;
    if (s_begin(w->db, err) < 0 ||
        ab_db_run(w->db, s_end_sql[e->outcome], &p, NULL, &changed, err) < 0)
        return -1;
    if (changed && (e->outcome == S_RETRY || e->outcome == S_HANDBACK)) {
        ab_params_init(&p);
        ab_param_cstr(&p, w->queue);
        ab_param_int(&p, -j->priority);
        ab_param_int(&p, e->run_at_ms);
        ab_param_int(&p, (int64_t)j->id);
        if (ab_db_run(w->db,
                      "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                      "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                      &p, NULL, NULL, err) < 0)
            return -1;
    }
    if (changed && e->outcome == S_FAIL) {
        ab_params_init(&p);
        ab_param_cstr(&p, w->id);
        if (ab_db_run(w->db, "UPDATE workers SET failed_count = failed_count + 1 WHERE id = ?", &p,
                      NULL, NULL, err) < 0)
            return -1;
    }
    if (changed && (e->outcome == S_FAIL || e->outcome == S_CANCEL) &&
        s_count_end(w, j, e->outcome == S_FAIL ? "failed" : "cancelled", err) < 0)
        return -1;
    return ab_db_exec(w->db, "COMMIT", err) < 0 ? -1 : changed > 0;
}

/* Record e, retrying a broken transaction. When the database stays away the job is
 * simply let go: its lease expires and a reaper puts it back. */
static int s_end_record(ab_worker *w, const s_job *j, const s_end *e)
{
    for (int tries = 0; tries < S_TX_TRIES; tries++) {
        ab_error err;
        if (s_conn(w, &w->db, &w->db_tried_ms, false)) {
            int rc = s_end_tx(w, j, e, &err);
            if (rc >= 0)
                return rc;
            s_rollback(w);
            s_conn_failed(&w->db);
        }
        struct timespec ts = {0, (long)(S_RECONNECT_MS + 10) * 1000000L};
        nanosleep(&ts, NULL);
    }
    AB_ERROR("worker %s: could not record the end of job %llu; its lease will expire and "
             "the reaper will put it back",
             w->id, (unsigned long long)j->id);
    return -1;
}

static void s_announce_end(ab_worker *w, const s_job *j, const s_end *e)
{
    static const char *const names[] = {[S_RETRY] = "retrying",
                                        [S_HANDBACK] = "retrying",
                                        [S_FAIL] = "failed",
                                        [S_CANCEL] = "cancelled"};
    const char *name = names[e->outcome];
    if (e->outcome == S_HANDBACK && !j->started) {
        AB_DEBUG("worker %s: handed back job %llu (not started)", w->id, (unsigned long long)j->id);
    } else {
        const char *error = e->outcome == S_HANDBACK ? e->message : e->error;
        int attempt = e->outcome == S_HANDBACK ? j->attempt - 1 : j->attempt;
        AB_INFO("worker %s: job %llu (%s) %s after attempt %d: %s", w->id,
                (unsigned long long)j->id, j->type, name, j->attempt, error ? error : "");
        s_publish_job(w, j->id, j->type, attempt, name, name, error,
                      e->outcome == S_RETRY || e->outcome == S_HANDBACK ? e->run_at_ms : 0);
    }
    if (e->outcome == S_FAIL)
        w->failed++;
    if (e->outcome == S_RETRY || e->outcome == S_HANDBACK)
        s_publish_wake(w);
}

/* Turn an outcome other than done into what is written. */
static void s_end_make(ab_worker *w, const s_job *j, s_outcome o, const ab_error *err, s_end *e)
{
    *e = (s_end){.outcome = o, .error = err->message};
    int64_t now = s_wall_ms();
    switch (o) {
    case S_RETRY: {
        const ab_job_type *t = ab_job_type_find(j->type, strlen(j->type));
        e->run_at_ms = now + (t ? ab_job_backoff_ms(t, j->attempt) : 1000);
        snprintf(e->message, sizeof e->message, "Retrying after attempt %d: %.200s", j->attempt,
                 err->message);
        break;
    }
    case S_HANDBACK:
        e->run_at_ms = now;
        e->error = NULL;
        snprintf(e->message, sizeof e->message, "handed back by worker %s (stopping or paused)",
                 w->id);
        break;
    case S_CANCEL:
        e->error = NULL;
        snprintf(e->message, sizeof e->message, "Cancelled");
        break;
    default:
        snprintf(e->message, sizeof e->message, "Failed: %.240s", err->message);
    }
}

/* Record and announce how job j ended (anything but done, which commits with the
 * handler's writes). */
static void s_end_job(ab_worker *w, const s_job *j, s_outcome o, const ab_error *err)
{
    s_flush_done(w); /* its own transaction follows: the batch's done commits first */
    ab_error lost;
    if (o == S_LOST) { /* the attempt counts, as when the reaper finds an expired lease */
        ab_fail(&lost, AB_E_UNAVAILABLE, NULL, "worker lost its lease: %s",
                err->message[0] ? err->message : "no heartbeat");
        o = !j->started ? S_HANDBACK : j->attempt < j->max_attempts ? S_RETRY : S_FAIL;
        err = &lost;
    }
    s_end e;
    s_end_make(w, j, o, err, &e);
    if (err == &lost && o == S_RETRY)
        e.run_at_ms = s_wall_ms(); /* no back-off: the job did not fail */
    if (s_end_record(w, j, &e) == 1)
        s_announce_end(w, j, &e);
    else
        AB_WARN("worker %s: job %llu was not recorded as %s: its lease is gone (another "
                "worker or the reaper has it)",
                w->id, (unsigned long long)j->id, o == S_HANDBACK ? "handed back" : "ended");
}

/* --- running one job ---------------------------------------------------------------- */

/* Under mu: true when the running job must stop. */
static bool s_must_stop_locked(ab_worker *w, const s_job *j, int64_t now)
{
    s_check_stale_locked(w, now);
    return j->lost || j->cancel || s_grace_over(w, now);
}

/* Why a handler failed: the worker's state first, then the handler's error. */
static s_outcome s_classify(ab_worker *w, const s_job *j, const ab_error *err)
{
    pthread_mutex_lock(&w->mu);
    s_check_stale_locked(w, s_mono_ms());
    bool lost = j->lost, cancel = j->cancel;
    pthread_mutex_unlock(&w->mu);
    if (lost)
        return S_LOST;
    if (cancel)
        return S_CANCEL;
    if (s_grace_over(w, s_mono_ms()))
        return S_HANDBACK;
    if (err->code == AB_E_UNAVAILABLE && j->attempt < j->max_attempts)
        return S_RETRY;
    return S_FAIL;
}

/* The fenced `done` of one job: 1 recorded, 0 when its lease was gone, -1 on a fault. */
static int s_done_one(ab_worker *w, const s_job *j, const char *message, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, message[0] ? message : "Done");
    ab_param_int(&p, (int64_t)j->id);
    ab_param_int(&p, (int64_t)j->token);
    uint64_t changed = 0;
    if (ab_db_run(w->db,
                  "UPDATE jobs SET state = 'done', status = 4, progress = 100, message = ?, "
                  "date_finished = UTC_TIMESTAMP(3), date_modified = UTC_TIMESTAMP(3), "
                  "lease_token = NULL, lease_expires = NULL WHERE id = ? AND lease_token = ?",
                  &p, NULL, &changed, err) < 0)
        return -1;
    return changed > 0;
}

static void s_warn_lost(ab_worker *w, const s_job *j)
{
    AB_WARN("worker %s: job %llu finished but its lease was lost: its work is rolled back "
            "(another worker runs it)",
            w->id, (unsigned long long)j->id);
}

/* A handler that wrote succeeded: its done, fenced by the token, joins its writes in the
 * transaction that s_flush_done commits with the batch's other finished jobs. A handler
 * that did not write has its done written by s_flush_done, with the batch's others. */
static s_outcome s_complete(ab_worker *w, ab_job_run *run, ab_error *err)
{
    if (!run->db_begun)
        return S_DONE;
    int rc = s_done_one(w, run->job, run->message, err);
    if (rc < 0)
        return S_FAIL; /* not recorded: rolled back, then judged by err like a failure */
    if (rc == 0) {
        s_warn_lost(w, run->job);
        return S_LOST;
    }
    return S_DONE;
}

/* --- batched completions (see the top of this file) --------------------------------- */

/* The batch's COMMIT failed, or its transaction is gone: each pending job's done may or
 * may not be in the database. Each is recorded as a lost COMMIT of one job was: a fenced
 * retry or failure, which finds nothing to change when the done did commit (its token is
 * gone) and otherwise runs the job again (its handler's writes were rolled back too). */
static void s_pending_lost(ab_worker *w, const ab_error *err)
{
    s_job batch[S_BATCH_MAX];
    int n = w->npending;
    memcpy(batch, w->pending, (size_t)n * sizeof batch[0]);
    w->npending = w->npending_wrote = 0;
    s_rollback(w);
    s_conn_failed(&w->db);
    for (int i = 0; i < n; i++)
        s_end_job(w, &batch[i], s_classify(w, &batch[i], err), err);
}

/* Whether pending job i can share the one-statement done: it wrote nothing, left no
 * message of its own and holds the claim's token (one claim: one token, as always). */
static bool s_shares_done(const ab_worker *w, int i, uint64_t token)
{
    const s_job *j = &w->pending[i];
    return !j->wrote && !j->message[0] && j->token == token;
}

/* The one UPDATE for the jobs that share it: 1 when it changed every row it names, 0 when
 * some lease was lost (the UPDATE is then undone), -1 on a fault. */
static int s_done_shared(ab_worker *w, const uint64_t *ids, int n, uint64_t token, ab_error *err)
{
    bool undo_point = w->npending_wrote > 0; /* else the transaction holds only these */
    char sql[1024];
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)token);
    s_sql_ids(sql, sizeof sql,
              "UPDATE jobs SET state = 'done', status = 4, progress = 100, message = 'Done', "
              "date_finished = UTC_TIMESTAMP(3), date_modified = UTC_TIMESTAMP(3), "
              "lease_token = NULL, lease_expires = NULL WHERE lease_token = ? AND id IN (",
              ids, n, ")", &p);
    uint64_t changed = 0;
    if ((undo_point && ab_db_exec(w->db, "SAVEPOINT ab_done", err) < 0) ||
        ab_db_run(w->db, sql, &p, NULL, &changed, err) < 0)
        return -1;
    if ((int)changed == n)
        return 1;
    return ab_db_exec(w->db, undo_point ? "ROLLBACK TO SAVEPOINT ab_done" : "ROLLBACK", err) < 0
               ? -1
               : 0;
}

/* Write the done of the pending jobs that wrote nothing: those that share it in one
 * UPDATE, the rest (and all of them when a lease was lost, so the lost ones are known)
 * one by one. ok[i] is false for a job whose lease was lost. 0, or -1 on a fault. */
static int s_done_pure(ab_worker *w, bool *ok, ab_error *err)
{
    uint64_t ids[S_BATCH_MAX], token = 0;
    bool shared[S_BATCH_MAX];
    int n = 0;
    for (int i = 0; i < w->npending; i++)
        if (!w->pending[i].wrote && !token)
            token = w->pending[i].token;
    for (int i = 0; i < w->npending; i++) {
        ok[i] = true;
        shared[i] = s_shares_done(w, i, token);
        if (shared[i])
            ids[n++] = w->pending[i].id;
    }
    int rc = n > 1 ? s_done_shared(w, ids, n, token, err) : 0;
    if (rc < 0)
        return -1;
    for (int i = 0; i < w->npending; i++) {
        s_job *j = &w->pending[i];
        if (j->wrote || (shared[i] && rc == 1))
            continue;
        int one = s_done_one(w, j, j->message, err);
        if (one < 0)
            return -1;
        if (one == 0)
            s_warn_lost(w, j);
        ok[i] = one == 1;
    }
    return 0;
}

/* Write the done of the jobs that wrote nothing, COMMIT the finished jobs with the
 * worker's count; then, and only then, announce them. */
static void s_flush_done(ab_worker *w)
{
    int n = w->npending;
    if (n == 0)
        return;
    ab_error err;
    if (!w->db) {
        ab_fail(&err, AB_E_UNAVAILABLE, NULL, "the database connection was lost");
        s_pending_lost(w, &err);
        return;
    }
    bool ok[S_BATCH_MAX];
    if (s_done_pure(w, ok, &err) < 0) {
        s_pending_lost(w, &err);
        return;
    }
    int64_t ndone = 0;
    ab_job_counts counts;
    ab_job_counts_clear(&counts);
    for (int i = 0; i < n; i++) {
        ndone += ok[i];
        if (ok[i]) /* one queue, a few types: never more keys than the batch has jobs */
            ab_job_counts_add(&counts, w->queue, w->pending[i].type, "done", 1,
                              w->pending[i].run_us);
    }
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, ndone);
    ab_param_cstr(&p, w->id);
    if (ab_db_run(w->db, "UPDATE workers SET done_count = done_count + ? WHERE id = ?", &p, NULL,
                  NULL, &err) < 0 ||
        ab_job_counts_write(w->db, w->id, &counts, &err) < 0 ||
        ab_db_exec(w->db, "COMMIT", &err) < 0) {
        s_pending_lost(w, &err);
        return;
    }
    w->npending = w->npending_wrote = 0;
    for (int i = 0; i < n; i++) {
        const s_job *j = &w->pending[i];
        if (!ok[i])
            continue;
        w->done++;
        AB_DEBUG("worker %s: job %llu done", w->id, (unsigned long long)j->id);
        s_publish_job(w, j->id, j->type, j->attempt, "done", "done", NULL, 0);
    }
}

/* Keep a done job for the batch's COMMIT; commit when the claim's jobs are all run, the
 * batch is full, or its first job has waited S_FLUSH_MS. */
static void s_pend(ab_worker *w, const s_job *j, const ab_job_run *run)
{
    int64_t now = s_mono_ms();
    if (w->npending == 0)
        w->pending_since_ms = now;
    s_job *p = &w->pending[w->npending++];
    *p = *j;
    p->payload = NULL; /* freed with the held job */
    p->wrote = run->db_begun;
    snprintf(p->message, sizeof p->message, "%s", run->message);
    w->npending_wrote += p->wrote;
    if (w->npending == S_BATCH_MAX || w->njobs <= 1 || now - w->pending_since_ms >= S_FLUSH_MS)
        s_flush_done(w);
}

/* Open the job's part of the transaction, when its handler first asks for the connection:
 * a savepoint after the writes of the batch's finished jobs, else the transaction's start.
 * 0, or -1 (the job is then lost: it is handed back). */
static int s_job_begin(ab_worker *w, ab_job_run *run, ab_error *err)
{
    run->savepoint = w->npending_wrote > 0;
    if (run->savepoint && ab_db_exec(w->db, "SAVEPOINT ab_job", err) == 0)
        return 0;
    if (run->savepoint)
        s_pending_lost(w, err);
    run->savepoint = false;
    ab_db *db = s_conn(w, &w->db, &w->db_tried_ms, false);
    if (db)
        return 0; /* it does not autocommit: the handler's first statement begins */
    ab_fail(err, AB_E_UNAVAILABLE, NULL, "no database connection");
    return -1;
}

/* Undo the job's own writes and its unrecorded completion, keeping the batch's. */
static void s_job_undo(ab_worker *w, const ab_job_run *run)
{
    ab_error err;
    if (!run->db_begun)
        return; /* it wrote nothing */
    if (!run->savepoint) {
        /* Only the batch's jobs that wrote nothing are pending: their done is not
         * written yet, so the whole transaction is this job's. */
        s_rollback(w);
        return;
    }
    /* A deadlock rolls back the whole transaction: then the savepoint is gone too. */
    if (ab_db_exec(w->db, "ROLLBACK TO SAVEPOINT ab_job", &err) == 0)
        s_flush_done(w);
    else
        s_pending_lost(w, &err);
}

/* Decode and check the stored arguments: 0, or -1 with *err (the job fails at once). */
static int s_args(const ab_job_type *t, const s_job *j, msgpack_unpacked *u,
                  const msgpack_object **args, ab_error *err)
{
    *args = NULL;
    if (j->payload_len) {
        size_t off = 0;
        if (msgpack_unpack_next(u, j->payload, j->payload_len, &off) != MSGPACK_UNPACK_SUCCESS ||
            u->data.type != MSGPACK_OBJECT_MAP)
            return ab_fail(err, AB_E_INVALID, NULL, "the job's payload is not a msgpack map");
        *args = &u->data;
    }
    if (ab_job_args_validate(t, *args, err) < 0) {
        ab_error why = *err; /* ab_fail must not read the buffer it writes */
        return ab_fail(err, AB_E_INVALID, why.field, "arguments no longer valid for %s: %s",
                       t->type, why.message);
    }
    return 0;
}

/* Run the handler and record done (see s_complete), or undo what it wrote. */
static s_outcome s_call(ab_worker *w, s_job *j, const ab_job_type *t, const msgpack_object *args,
                        ab_job_run *run, ab_error *err)
{
    pthread_mutex_lock(&w->mu);
    j->started = true;
    pthread_mutex_unlock(&w->mu);
    AB_DEBUG("worker %s: job %llu (%s) attempt %d started", w->id, (unsigned long long)j->id,
             j->type, j->attempt);
    s_publish_job(w, j->id, j->type, j->attempt, "started", "running", NULL, 0);
    int64_t called = s_clock_us();
    int rc = t->handler(run, args, err);
    j->run_us = s_clock_us() - called;
    s_outcome o = rc == 0 ? s_complete(w, run, err) : S_FAIL;
    if (run->db_failed) {
        s_job_undo(w, run);
        return S_LOST;
    }
    if (o == S_DONE)
        return o;
    s_job_undo(w, run);
    return o == S_LOST ? S_LOST : s_classify(w, j, err);
}

/* Look up the type, check the arguments, run the handler. An unknown type or arguments
 * that no longer validate fail the job at once. */
static s_outcome s_prepare_and_call(ab_worker *w, s_job *j, msgpack_unpacked *u, ab_job_run *run,
                                    ab_error *err)
{
    const ab_job_type *t = ab_job_type_find(j->type, strlen(j->type));
    const msgpack_object *args = NULL;
    if (!t) {
        ab_fail(err, AB_E_INVALID, "type",
                "unknown job type '%s': this worker does not know it (is the worker older "
                "than the engine that enqueued it?)",
                j->type);
        return S_FAIL;
    }
    if (s_args(t, j, u, &args, err) < 0)
        return S_FAIL;
    return s_call(w, j, t, args, run, err);
}

/* Run the first held job and record how it ended. */
static void s_run_first(ab_worker *w)
{
    s_job *j = &w->jobs[0];
    ab_error err;
    ab_error_clear(&err);
    /* A finished job that wrote nothing has no `done` in the database yet and no lease
     * extension either: commit it before a job that may run long (the last one did, or
     * the batch has waited S_FLUSH_MS), so its lease cannot lapse while it waits. */
    int64_t begun = s_mono_ms();
    if (w->npending > 0 &&
        (w->last_run_ms >= S_SHORT_JOB_MS || begun - w->pending_since_ms >= S_FLUSH_MS))
        s_flush_done(w);
    s_set_current(w, j->id);
    pthread_mutex_lock(&w->mu);
    s_check_stale_locked(w, s_mono_ms());
    bool lost = j->lost, cancel = j->cancel; /* while it waited its turn */
    pthread_mutex_unlock(&w->mu);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    ab_job_run run = {.w = w, .job = j};
    s_outcome o = lost ? S_LOST : cancel ? S_CANCEL : s_prepare_and_call(w, j, &u, &run, &err);
    s_mark_finished(w, j);
    msgpack_unpacked_destroy(&u);
    w->last_run_ms = s_mono_ms() - begun;
    if (o == S_DONE)
        s_pend(w, j, &run);
    else
        s_end_job(w, j, o, &err);
    s_set_current(w, 0);
    s_drop_first_job(w);
}

/* Run the claimed jobs one after another; hand back the rest when told to stop or pause. */
static void s_run_claimed(ab_worker *w)
{
    while (w->njobs > 0) {
        pthread_mutex_lock(&w->mu);
        bool go_on = w->desired == S_RUN;
        pthread_mutex_unlock(&w->mu);
        if (!go_on || s_stop_signalled(w))
            break;
        s_run_first(w);
    }
    s_flush_done(w);
    while (w->njobs > 0) {
        ab_error none;
        ab_error_clear(&none);
        s_mark_finished(w, &w->jobs[0]);
        s_end_job(w, &w->jobs[0], S_HANDBACK, &none);
        s_drop_first_job(w);
    }
}

/* --- what handlers see (jobs.h) ----------------------------------------------------- */

static void s_write_progress(ab_job_run *run, int percent)
{
    ab_worker *w = run->w;
    ab_db *db = s_conn(w, &w->pdb, &w->pdb_tried_ms, true);
    if (!db)
        return; /* the heartbeat decides whether the lease is still to be trusted */
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, percent);
    ab_param_cstr(&p, run->message[0] ? run->message : NULL);
    ab_param_int(&p, (int64_t)run->job->id);
    ab_param_int(&p, (int64_t)run->job->token);
    uint64_t changed = 0;
    ab_error err;
    /* date_modified moves on every write (they are S_PROGRESS_MS apart), so a row that
     * matches the token always counts as changed. */
    if (ab_db_run(db,
                  "UPDATE jobs SET progress = ?, message = COALESCE(?, message), "
                  "date_modified = UTC_TIMESTAMP(3) WHERE id = ? AND lease_token = ?",
                  &p, NULL, &changed, &err) < 0) {
        s_conn_failed(&w->pdb);
        return;
    }
    if (changed == 0) {
        pthread_mutex_lock(&w->mu);
        run->job->lost = true;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    char topic[96];
    ab_job_topic(run->job->id, "progress", topic, sizeof topic);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, s_wall_ms());
    msgpack_pack_map(&pk, 3);
    ab_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, run->job->id);
    ab_pack_cstr(&pk, "progress");
    msgpack_pack_int(&pk, percent);
    ab_pack_cstr(&pk, "message");
    ab_pack_cstr(&pk, run->message);
    s_publish(w, topic, &sb);
}

int ab_job_progress(ab_job_run *run, int percent, const char *message)
{
    if (message)
        snprintf(run->message, sizeof run->message, "%s", message);
    percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
    int64_t now = s_mono_ms();
    if (run->last_write_ms == 0 || now - run->last_write_ms >= S_PROGRESS_MS) {
        run->last_write_ms = now;
        s_write_progress(run, percent);
    }
    return ab_job_should_stop(run) ? -1 : 0;
}

bool ab_job_should_stop(ab_job_run *run)
{
    pthread_mutex_lock(&run->w->mu);
    bool stop = s_must_stop_locked(run->w, run->job, s_mono_ms());
    pthread_mutex_unlock(&run->w->mu);
    return stop;
}

uint64_t ab_job_id(const ab_job_run *run)
{
    return run->job->id;
}

int ab_job_attempt(const ab_job_run *run)
{
    return run->job->attempt;
}

ab_db *ab_job_db(ab_job_run *run)
{
    if (!run->db_begun) {
        ab_error err;
        run->db_begun = true;
        run->db_failed = s_job_begin(run->w, run, &err) < 0;
    }
    return run->db_failed ? NULL : run->w->db;
}

/* --- the main loop ------------------------------------------------------------------ */

/* How many to claim next: double while batches come back full of short jobs, else one,
 * so long jobs spread over the queue's workers instead of waiting behind each other. */
static int s_next_batch(int batch, int claimed, int64_t elapsed_ms)
{
    if (claimed < batch || elapsed_ms >= (int64_t)claimed * S_SHORT_JOB_MS)
        return 1;
    return batch * 2 > S_BATCH_MAX ? S_BATCH_MAX : batch * 2;
}

/* Milliseconds until the earliest delayed job of the queue is due; -1 when none waits. */
static int64_t s_next_due_ms(ab_worker *w)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->queue);
    ab_rows rows;
    ab_error err;
    int64_t due = -1;
    if (ab_db_query(w->db,
                    "SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(3), MIN(run_at)) "
                    "FROM job_ready WHERE worker = ?",
                    &p, &rows, &err) < 0) {
        s_conn_failed(&w->db);
        return -1;
    }
    if (ab_rows_next(&rows) == 1 && ab_rows_str(&rows, 0, NULL)) {
        due = ab_rows_int(&rows, 0) / 1000 + 1;
        due = due < 1 ? 1 : due;
    }
    ab_rows_close(&rows);
    if (ab_db_exec(w->db, "COMMIT", &err) < 0)
        s_conn_failed(&w->db);
    return due;
}

/* Wait for a wake-up notice, the fallback poll, or the next delayed job. Returns 2 when
 * only wake-up notices came, 3 when hand-overs came too, 0 otherwise, -1 on a bus fault. */
static int s_idle(ab_worker *w, bool look_ahead)
{
    int64_t wait = w->opt.poll_ms;
    int64_t due = look_ahead && w->db ? s_next_due_ms(w) : -1;
    if (due >= 0 && due < wait)
        wait = due;
    if (s_stop_signalled(w))
        return 0;
    int rc = w->bus.wait(w->bus.ctx, (int)wait);
    return rc < 0 ? -1 : rc == 2 || rc == 3 ? rc : 0;
}

/* Follow the worker's row: pause, resume, stop. Reads it now when the main connection is
 * free (idle), else takes what the last heartbeat read. */
static s_desired s_control(ab_worker *w, bool read_now)
{
    s_desired d;
    if (read_now && w->db) {
        ab_error err;
        /* When it says run, the claim that follows ends the read's transaction (its reads
         * lock, so the read's snapshot does not matter); otherwise end it now, or the next
         * read would see this snapshot again and miss a resume. */
        if (s_read_desired(w, w->db, &d) == 0 &&
            (d == S_RUN || ab_db_exec(w->db, "COMMIT", &err) == 0)) {
            pthread_mutex_lock(&w->mu);
            w->desired = d;
            pthread_mutex_unlock(&w->mu);
        } else {
            s_rollback(w);
            s_conn_failed(&w->db);
        }
    }
    pthread_mutex_lock(&w->mu);
    d = w->desired;
    s_status was = w->status;
    w->status = d == S_PAUSE ? S_PAUSED : d == S_STOP ? S_STOPPING : S_OK;
    s_status now = w->status;
    pthread_mutex_unlock(&w->mu);
    if (now != was) {
        AB_INFO("worker %s: %s", w->id, s_status_names[now]);
        s_write_status(w, s_status_names[now]);
        if (now != S_STOPPING)
            s_publish_worker(w, now == S_PAUSED ? "paused" : "up", s_status_names[now]);
    }
    return d;
}

static int s_loop(ab_worker *w)
{
    int batch = 1;
    /* After a wait, look at the worker's row before claiming, unless only wake-up notices
     * came: then what the heartbeat last read will do (a control notice, or the heartbeat
     * within a second, brings any change), and the pick-up saves a round trip. */
    bool look = true;
    while (!s_stop_signalled(w)) {
        s_desired d = s_control(w, look);
        if (d == S_STOP)
            break;
        look = true;
        if (d == S_PAUSE || !s_conn(w, &w->db, &w->db_tried_ms, false)) {
            if (d == S_PAUSE) /* once per wake-up or poll: alive, following its row */
                AB_DEBUG("worker %s: paused: claims nothing", w->id);
            if (s_idle(w, false) < 0)
                return 1;
            continue;
        }
        int64_t started = s_mono_ms();
        int n = s_claim(w, batch);
        if (n <= 0) {
            batch = 1;
            int rc = s_idle(w, n == 0);
            if (rc < 0)
                return 1;
            look = rc != 2 && rc != 3;
            w->adopt_due = w->adopt_due || rc != 2; /* a hand-over notice, or a quiet spell */
            continue;
        }
        look = false;
        s_run_claimed(w);
        batch = s_next_batch(batch, n, s_mono_ms() - started);
    }
    return 0;
}

/* Leaving: jobs handed to this worker that it never took up go back to the queue (the
 * row says dead first, so no enqueue hands it another meanwhile). */
static void s_hand_back_adopted(ab_worker *w)
{
    ab_error err;
    if (!s_conn(w, &w->db, &w->db_tried_ms, false))
        return;
    int n = s_adopt(w, S_BATCH_MAX, w->jobs, &err);
    if (n < 0 || ab_db_exec(w->db, "COMMIT", &err) < 0) {
        s_free_jobs(w->jobs, n > 0 ? n : 0);
        s_rollback(w);
        return; /* their leases expire and a reaper puts them back */
    }
    for (w->njobs = n; w->njobs > 0; s_drop_first_job(w)) {
        ab_error none;
        ab_error_clear(&none);
        s_end_job(w, &w->jobs[0], S_HANDBACK, &none);
    }
}

int ab_worker_run(ab_worker *w)
{
    ab_error err;
    if (s_register(w, w->db, &err) < 0 || ab_db_exec(w->db, "COMMIT", &err) < 0) {
        AB_ERROR("worker %s: cannot register in the workers table: %s", w->id, err.message);
        return 1;
    }
    pthread_mutex_lock(&w->mu);
    w->hb_ok_ms = s_mono_ms();
    pthread_mutex_unlock(&w->mu);
    if (s_heartbeat_start(w) < 0) {
        AB_ERROR("worker %s: cannot start the heartbeat thread", w->id);
        return 1;
    }
    AB_INFO("worker %s up: queue %s, lease %d s, heartbeat %lld ms, poll %d ms, grace %d s", w->id,
            w->queue, w->opt.lease_s, (long long)w->hb_ms, w->opt.poll_ms, w->opt.grace_s);
    s_publish_worker(w, "up", "ok");
    w->adopt_due = true;
    int rc = s_loop(w);
    s_heartbeat_stop(w);
    s_write_status(w, "dead"); /* the row stays, with its last heartbeat and counts */
    s_hand_back_adopted(w);
    s_publish_worker(w, "down", "dead");
    AB_INFO("worker %s down: %llu done, %llu failed", w->id, (unsigned long long)w->done,
            (unsigned long long)w->failed);
    return rc;
}

void ab_worker_request_stop(ab_worker *w)
{
    if (w)
        atomic_store(&w->stop_signal, 1);
}

const char *ab_worker_id(const ab_worker *w)
{
    return w->id;
}

static int s_open_side(ab_worker *w, ab_db **slot, char *errbuf, size_t errlen)
{
    ab_error err;
    *slot = ab_db_open(w->opt.db_dsn, errbuf, errlen);
    if (*slot && ab_db_exec(*slot, S_SIDE_SETUP, &err) < 0) {
        snprintf(errbuf, errlen, "cannot set up a connection: %s", err.message);
        ab_db_close(slot);
    }
    return *slot ? 0 : -1;
}

ab_worker *ab_worker_new(const ab_worker_options *opt, const ab_worker_bus *bus, ab_db *db,
                         char *errbuf, size_t errlen)
{
    ab_worker *w = calloc(1, sizeof *w);
    if (!w) {
        ab_db_close(&db);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    w->opt = *opt;
    w->bus = *bus;
    w->db = db;
    w->lease_ms = (int64_t)opt->lease_s * 1000;
    w->hb_ms = opt->heartbeat_ms > 0    ? opt->heartbeat_ms
               : w->lease_ms / 10 > 200 ? w->lease_ms / 10
                                        : 200;
    w->pid = (int)getpid();
    snprintf(w->queue, sizeof w->queue, "%s", opt->queue);
    if (gethostname(w->host, sizeof w->host - 1) != 0 || !w->host[0])
        snprintf(w->host, sizeof w->host, "localhost");
    snprintf(w->id, sizeof w->id, "%s:%d:%s", w->host, w->pid, w->queue);
    ab_job_wake_topic(w->queue, w->wake_topic, sizeof w->wake_topic);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->pub_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (s_open_side(w, &w->pdb, errbuf, errlen) < 0 || s_open_side(w, &w->hdb, errbuf, errlen) < 0)
        ab_worker_destroy(&w);
    return w;
}

void ab_worker_destroy(ab_worker **wp)
{
    if (!wp || !*wp)
        return;
    ab_worker *w = *wp;
    s_heartbeat_stop(w);
    s_free_jobs(w->jobs, w->njobs);
    ab_db_close(&w->db);
    ab_db_close(&w->pdb);
    ab_db_close(&w->hdb);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->pub_mu);
    free(w);
    *wp = NULL;
}
