/* worker.c — the commands that manage workers (issue 3; MISP's startWorker, stopWorker,
 * restartWorker(s), killWorker and CakeResque's pause, resume, cleanup): worker.start,
 * pause, resume, stop, restart, kill, cleanup. worker.list is in job.c with the other
 * lists. Semantics: docs/architecture.md, "Supervisor"; the shared parts: workerctl.h.
 *
 * The truth is written here, in the command's transaction: a worker's `desired` state (the
 * worker reads it), or a row in supervisor_requests for the supervisor of a host (start a
 * worker, kill one). The notices published after COMMIT (worker.<id>.control,
 * supervisor.<host>.request) only make the worker or the supervisor look now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"
#include "jobs/workerctl.h"

#define S_ID_MAX      96 /* a worker id: host:pid:queue (the column's size) */
#define S_CLEANUP_MAX 64 /* jobs one cleanup forces or lists */
#define S_ALL_MAX     1000

/* A worker's row as the commands need it. */
typedef struct {
    char id[S_ID_MAX + 1], queue[33], host[65], status[16], desired[16], supervisor[100];
    int64_t pid, grace_s;
    bool alive;      /* not dead, heartbeat under AB_WORKER_ALIVE_S old */
    bool supervised; /* started by a supervisor */
    bool sup_alive;  /* ... which is alive */
    char sup_host[65];
} s_worker;

#define S_WORKER_SQL                                                                               \
    "SELECT workers.id, queue, host, pid, status, desired, supervisor, grace_s, "                  \
    "(" AB_SQL_WORKER_ALIVE "), (SELECT supervisors.host FROM supervisors WHERE supervisors.id = " \
    "workers.supervisor AND " AB_SQL_SUPERVISOR_ALIVE ") FROM workers"

static void s_worker_from_row(const ab_rows *r, s_worker *w)
{
    const char *sup = ab_rows_str(r, 6, NULL), *sup_host = ab_rows_str(r, 9, NULL);
    *w = (s_worker){.pid = ab_rows_int(r, 3), .grace_s = ab_rows_int(r, 7)};
    snprintf(w->id, sizeof w->id, "%s", ab_rows_str(r, 0, NULL));
    snprintf(w->queue, sizeof w->queue, "%s", ab_rows_str(r, 1, NULL));
    snprintf(w->host, sizeof w->host, "%s", ab_rows_str(r, 2, NULL));
    snprintf(w->status, sizeof w->status, "%s", ab_rows_str(r, 4, NULL));
    snprintf(w->desired, sizeof w->desired, "%s", ab_rows_str(r, 5, NULL));
    snprintf(w->supervisor, sizeof w->supervisor, "%s", sup ? sup : "");
    snprintf(w->sup_host, sizeof w->sup_host, "%s", sup_host ? sup_host : "");
    w->alive = ab_rows_int(r, 8) != 0;
    w->supervised = sup != NULL;
    w->sup_alive = sup_host != NULL;
}

/* The worker named by the argument `worker`, its row locked; not_found (field worker). */
static int s_worker_load(ab_ctx *ctx, s_worker *w, ab_error *err)
{
    size_t len = 0;
    const char *id = ab_arg_str(ctx, "worker", &len);
    ab_params p;
    ab_params_init(&p);
    ab_param_str(&p, id, len);
    ab_rows rows;
    if (ab_db_query(ctx->db, S_WORKER_SQL " WHERE workers.id = ? FOR UPDATE", &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_worker_from_row(&rows, w);
    ab_rows_close(&rows);
    if (rc != 1)
        return ab_fail(err, rc < 0 ? AB_E_INTERNAL : AB_E_NOT_FOUND, "worker",
                       "no worker has the id '%.*s' (adminctl worker list)",
                       (int)(len > S_ID_MAX ? S_ID_MAX : len), id);
    return 0;
}

/* --- notices and audit ------------------------------------------------------------------- */

static void s_pack_control(msgpack_packer *pk, const void *desired)
{
    msgpack_pack_map(pk, 1);
    ab_pack_kv_cstr(pk, "desired", desired);
}

typedef struct {
    uint64_t request;
    const char *action;
} s_request_notice;

static void s_pack_request(msgpack_packer *pk, const void *ctx)
{
    const s_request_notice *n = ctx;
    msgpack_pack_map(pk, 2);
    ab_pack_kv_int(pk, "request", (int64_t)n->request);
    ab_pack_kv_cstr(pk, "action", n->action);
}

static int s_oom(ab_error *err)
{
    return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
}

/* Audit a change to worker id (MISP's log shape: model Worker, title "Worker: <id>"). */
static int s_audit(ab_ctx *ctx, const char *action, const char *id, const char *change)
{
    char title[160];
    snprintf(title, sizeof title, "Worker: %s", id);
    return ab_ctx_audit(ctx, "Worker", 0, action, title, change);
}

/* Set the worker's desired state and tell it to look now. */
static int s_set_desired(ab_ctx *ctx, const s_worker *w, const char *desired, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, desired);
    ab_param_cstr(&p, w->id);
    if (ab_db_run(ctx->db, "UPDATE workers SET desired = ? WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    char topic[160], change[80];
    snprintf(topic, sizeof topic, "worker.%s.control", w->id);
    snprintf(change, sizeof change, "desired (%s) => (%s)", w->desired, desired);
    if (s_audit(ctx, "edit", w->id, change) < 0 ||
        ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_control, desired) < 0)
        return s_oom(err);
    return 0;
}

/* Insert a request for the supervisor of host and queue its notice; *id is the request. */
static int s_request(ab_ctx *ctx, const char *host, const char *action, const char *queue,
                     const s_worker *w, bool replace, uint64_t *id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, host);
    ab_param_cstr(&p, action);
    ab_param_cstr(&p, queue);
    ab_param_cstr(&p, w ? w->id : NULL);
    if (w)
        ab_param_int(&p, w->pid);
    else
        ab_param_str(&p, NULL, 0);
    ab_param_int(&p, replace);
    ab_param_int(&p, ctx->who->user_id);
    ab_param_int(&p, ctx->now_ms);
    if (ab_db_run(ctx->db,
                  "INSERT INTO supervisor_requests (host, action, queue, worker, pid, replace_it, "
                  "requested_by, created) VALUES (?, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000))",
                  &p, id, NULL, err) < 0)
        return -1;
    char topic[160];
    ab_supervisor_request_topic(host, topic, sizeof topic);
    s_request_notice n = {*id, action};
    if (ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_request, &n) < 0)
        return s_oom(err);
    return 0;
}

/* --- worker.pause, worker.resume, worker.stop ----------------------------------------------- */

static int s_control(ab_ctx *ctx, msgpack_packer *pk, const char *desired, ab_error *err)
{
    s_worker w;
    if (s_worker_load(ctx, &w, err) < 0 || s_set_desired(ctx, &w, desired, err) < 0)
        return -1;
    msgpack_pack_map(pk, 2);
    ab_pack_kv_cstr(pk, "id", w.id);
    ab_pack_kv_cstr(pk, "desired", desired);
    return 0;
}

int ab_worker_pause(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_control(ctx, pk, "pause", err);
}

int ab_worker_resume(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_control(ctx, pk, "run", err);
}

int ab_worker_stop(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_control(ctx, pk, "stop", err);
}

/* --- worker.start ----------------------------------------------------------------------------- */

#define S_NO_SUPERVISOR                                                                            \
    "start one (ops/run starts adminbus-supervisor; elsewhere run adminbus-supervisor on the "     \
    "host), then try again"

/* Why no live supervisor was found for host (NULL: any host): the error to reply. */
static int s_no_supervisor(ab_ctx *ctx, const char *host, ab_error *err)
{
    if (!host)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "no worker supervisor is running, so nothing can start a worker: "
                       "%s",
                       S_NO_SUPERVISOR);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, host);
    int64_t known = 0;
    if (ab_db_scalar(ctx->db, "SELECT COUNT(*) FROM supervisors WHERE host = ?", &p, &known, err) <
        0)
        return -1;
    if (!known)
        return ab_fail(err, AB_E_NOT_FOUND, "host",
                       "no supervisor has run on host '%s' (the hosts are those of adminctl "
                       "worker list)",
                       host);
    return ab_fail(err, AB_E_UNAVAILABLE, "host",
                   "the worker supervisor of host '%s' is not running: %s", host, S_NO_SUPERVISOR);
}

int ab_worker_start(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t qlen = 0, hlen = 0;
    const char *q = ab_arg_str(ctx, "queue", &qlen), *h = ab_arg_str(ctx, "host", &hlen);
    char queue[33], want[65], sup[100] = "", host[65] = "";
    snprintf(queue, sizeof queue, "%.*s", (int)(qlen > 32 ? 32 : qlen), q);
    snprintf(want, sizeof want, "%.*s", (int)(hlen > 64 ? 64 : hlen), h ? h : "");
    ab_params p;
    ab_params_init(&p);
    if (h)
        ab_param_cstr(&p, want);
    ab_rows rows;
    /* The live supervisor (of the host, when given) whose host has the fewest workers. */
    if (ab_db_query(ctx->db,
                    h ? "SELECT id, host FROM supervisors WHERE " AB_SQL_SUPERVISOR_ALIVE
                        " AND host = ? ORDER BY id LIMIT 1"
                      : "SELECT id, host FROM supervisors WHERE " AB_SQL_SUPERVISOR_ALIVE
                        " ORDER BY (SELECT COUNT(*) FROM workers WHERE workers.host = "
                        "supervisors.host AND workers.status <> 'dead'), id LIMIT 1",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        snprintf(sup, sizeof sup, "%s", ab_rows_str(&rows, 0, NULL));
        snprintf(host, sizeof host, "%s", ab_rows_str(&rows, 1, NULL));
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return s_no_supervisor(ctx, h ? want : NULL, err);
    uint64_t id = 0;
    if (s_request(ctx, host, "start", queue, NULL, false, &id, err) < 0)
        return -1;
    char title[200], change[160];
    snprintf(title, sizeof title, "Worker start requested: queue %s on host %s (request %llu)",
             queue, host, (unsigned long long)id);
    snprintf(change, sizeof change, "queue () => (%s), host () => (%s)", queue, host);
    if (ab_ctx_audit(ctx, "Worker", 0, "add", title, change) < 0)
        return s_oom(err);
    msgpack_pack_map(pk, 6);
    ab_pack_kv_int(pk, "request", (int64_t)id);
    ab_pack_kv_cstr(pk, "action", "start");
    ab_pack_kv_cstr(pk, "state", "requested");
    ab_pack_kv_cstr(pk, "queue", queue);
    ab_pack_kv_cstr(pk, "host", host);
    ab_pack_kv_cstr(pk, "supervisor", sup);
    return 0;
}

/* --- worker.restart -------------------------------------------------------------------------- */

/* Why w cannot be restarted (NULL: it can): started by hand, or its supervisor is not
 * running, so nothing would start its replacement. */
static const char *s_not_restartable(const s_worker *w, ab_code *code)
{
    *code = AB_E_CONFLICT;
    if (strcmp(w->status, "dead") == 0)
        return "it is dead";
    if (!w->supervised)
        return "it was started by hand, not by a supervisor";
    *code = AB_E_UNAVAILABLE;
    if (!w->sup_alive)
        return "its supervisor is not running";
    return NULL;
}

/* "worker" or "all"/"dead", exactly one: the argument error otherwise. */
static int s_one_target(ab_ctx *ctx, const char *flag, const char *what, ab_error *err)
{
    bool one = ab_arg_has(ctx, "worker"), every = ab_arg_bool(ctx, flag, false);
    if (one && every)
        return ab_fail(err, AB_E_INVALID, flag, "give a worker id or %s, not both", flag);
    if (!one && !every)
        return ab_fail(err, AB_E_INVALID, "worker",
                       "%s needs a worker id (worker), or %s: true for %s", ctx->cmd->type, flag,
                       what);
    return 0;
}

static int s_restart_one(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_worker w;
    if (s_worker_load(ctx, &w, err) < 0)
        return -1;
    ab_code code;
    const char *why = s_not_restartable(&w, &code);
    if (why && strcmp(why, "it is dead") == 0)
        return ab_fail(err, code, "worker",
                       "worker %s is dead: start a new one with `worker start %s` (`worker "
                       "cleanup %s` removes its registration)",
                       w.id, w.queue, w.id);
    if (why && code == AB_E_CONFLICT)
        return ab_fail(err, code, "worker",
                       "worker %s was started by hand, not by a supervisor, so nothing would "
                       "start its replacement: stop it (worker stop) and start one with "
                       "`worker start %s`",
                       w.id, w.queue);
    if (why)
        return ab_fail(err, code, NULL,
                       "the supervisor of worker %s (%s) is not running, so nothing would start "
                       "its replacement: start it (ops/run starts adminbus-supervisor) and try "
                       "again",
                       w.id, w.supervisor);
    if (s_set_desired(ctx, &w, "restart", err) < 0)
        return -1;
    msgpack_pack_map(pk, 3);
    ab_pack_kv_cstr(pk, "id", w.id);
    ab_pack_kv_cstr(pk, "desired", "restart");
    ab_pack_kv_cstr(pk, "supervisor", w.supervisor);
    return 0;
}

/* The workers sql selects (S_WORKER_SQL with a fixed WHERE, "LIMIT ? FOR UPDATE"), at most
 * S_ALL_MAX, locked: *all (the caller frees it) and *n. 0, or -1 with *err. */
static int s_load_workers(ab_ctx *ctx, const char *sql, s_worker **all, size_t *n, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, S_ALL_MAX);
    ab_rows rows;
    *all = NULL;
    *n = 0;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    *all = calloc(S_ALL_MAX, sizeof **all);
    while (*all && *n < S_ALL_MAX && ab_rows_next(&rows) == 1)
        s_worker_from_row(&rows, &(*all)[(*n)++]);
    ab_rows_close(&rows);
    return *all ? 0 : s_oom(err);
}

static int s_restart_all(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_worker *all;
    size_t n;
    if (s_load_workers(ctx,
                       S_WORKER_SQL " WHERE " AB_SQL_WORKER_ALIVE " ORDER BY workers.id LIMIT ? "
                                    "FOR UPDATE",
                       &all, &n, err) < 0)
        return -1;
    size_t restarting = 0, skipped_down = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ab_code code;
        const char *why = s_not_restartable(&all[i], &code);
        if (!why) {
            rc = s_set_desired(ctx, &all[i], "restart", err);
            restarting++;
        }
        skipped_down += why && code == AB_E_UNAVAILABLE;
    }
    if (rc == 0 && restarting == 0 && skipped_down > 0)
        rc = ab_fail(err, AB_E_UNAVAILABLE, NULL,
                     "no worker can be restarted: the supervisors of the live workers are not "
                     "running, so nothing would start replacements; %s",
                     S_NO_SUPERVISOR);
    if (rc == 0) {
        msgpack_pack_map(pk, 2);
        ab_pack_cstr(pk, "restarting");
        msgpack_pack_array(pk, (uint32_t)restarting);
        for (size_t i = 0; i < n; i++) {
            ab_code code;
            if (!s_not_restartable(&all[i], &code))
                ab_pack_cstr(pk, all[i].id);
        }
        ab_pack_cstr(pk, "skipped");
        msgpack_pack_array(pk, (uint32_t)(n - restarting));
        for (size_t i = 0; i < n; i++) {
            ab_code code;
            const char *why = s_not_restartable(&all[i], &code);
            if (!why)
                continue;
            msgpack_pack_map(pk, 2);
            ab_pack_kv_cstr(pk, "id", all[i].id);
            ab_pack_kv_cstr(pk, "reason", why);
        }
    }
    free(all);
    return rc;
}

int ab_worker_restart(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    if (s_one_target(ctx, "all", "every live worker", err) < 0)
        return -1;
    return ab_arg_has(ctx, "worker") ? s_restart_one(ctx, pk, err) : s_restart_all(ctx, pk, err);
}

/* --- worker.kill ------------------------------------------------------------------------------ */

/* Ask w's supervisor to SIGKILL it (replace: start a replacement afterwards). The caller
 * checked that w has a live supervisor. */
static int s_kill_request(ab_ctx *ctx, const s_worker *w, bool replace, uint64_t *id, ab_error *err)
{
    if (s_request(ctx, w->sup_host, "kill", w->queue, w, replace, id, err) < 0)
        return -1;
    char change[120];
    snprintf(change, sizeof change, "status (%s) => (killed: request %llu%s)", w->status,
             (unsigned long long)*id, replace ? ", replaced" : "");
    return s_audit(ctx, "edit", w->id, change) < 0 ? s_oom(err) : 0;
}

int ab_worker_kill(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_worker w;
    if (s_worker_load(ctx, &w, err) < 0)
        return -1;
    if (strcmp(w.status, "dead") == 0)
        return ab_fail(err, AB_E_CONFLICT, "worker",
                       "worker %s is dead already (`worker cleanup %s` removes its "
                       "registration)",
                       w.id, w.id);
    if (!w.supervised)
        return ab_fail(err, AB_E_CONFLICT, "worker",
                       "worker %s was started by hand, not by a supervisor: kill pid %lld on "
                       "host %s yourself, then run `worker cleanup %s`",
                       w.id, (long long)w.pid, w.host, w.id);
    if (!w.sup_alive)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "the supervisor of worker %s (%s) is not running: start it (ops/run "
                       "starts adminbus-supervisor), or kill pid %lld on host %s yourself and "
                       "run `worker cleanup %s`",
                       w.id, w.supervisor, (long long)w.pid, w.host, w.id);
    uint64_t id = 0;
    if (s_kill_request(ctx, &w, false, &id, err) < 0)
        return -1;
    msgpack_pack_map(pk, 7);
    ab_pack_kv_int(pk, "request", (int64_t)id);
    ab_pack_kv_cstr(pk, "action", "kill");
    ab_pack_kv_cstr(pk, "state", "requested");
    ab_pack_kv_cstr(pk, "id", w.id);
    ab_pack_kv_int(pk, "pid", w.pid);
    ab_pack_kv_cstr(pk, "host", w.sup_host);
    ab_pack_kv_cstr(pk, "supervisor", w.supervisor);
    return 0;
}

/* --- worker.cleanup ----------------------------------------------------------------------------
 */

/* A running job of the worker with a cancel request. */
typedef struct {
    uint64_t id;
    char queue[33], type[40];
    int attempt;
    int64_t since_ms; /* since the cancel was asked; -1 unknown */
    bool forced;
} s_cancelled;

static int s_cancel_requests(ab_ctx *ctx, const s_worker *w, s_cancelled *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, w->id);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT id, worker, job_type, attempts, "
                    "TIMESTAMPDIFF(MICROSECOND, cancel_requested_at, UTC_TIMESTAMP(3)) DIV 1000 "
                    "FROM jobs WHERE state = 'running' AND process_id = ? AND cancel_requested = 1 "
                    "ORDER BY id FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    while (n < S_CLEANUP_MAX && ab_rows_next(&rows) == 1) {
        s_cancelled *c = &out[n++];
        *c = (s_cancelled){.id = (uint64_t)ab_rows_int(&rows, 0)};
        snprintf(c->queue, sizeof c->queue, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(c->type, sizeof c->type, "%s", ab_rows_str(&rows, 2, NULL));
        c->attempt = (int)ab_rows_int(&rows, 3);
        c->since_ms = ab_rows_str(&rows, 4, NULL) ? ab_rows_int(&rows, 4) : -1;
    }
    ab_rows_close(&rows);
    return n;
}

typedef struct {
    const s_cancelled *job;
    const char *worker;
} s_forced_event;

/* job.<id>.cancelled {id, queue, type, state, attempt, worker, forced: true} */
static void s_pack_forced(msgpack_packer *pk, const void *ctx)
{
    const s_forced_event *e = ctx;
    msgpack_pack_map(pk, 7);
    ab_pack_kv_int(pk, "id", (int64_t)e->job->id);
    ab_pack_kv_cstr(pk, "queue", e->job->queue);
    ab_pack_kv_cstr(pk, "type", e->job->type);
    ab_pack_kv_cstr(pk, "state", "cancelled");
    ab_pack_kv_int(pk, "attempt", e->job->attempt);
    ab_pack_kv_cstr(pk, "worker", e->worker);
    ab_pack_kv_bool(pk, "forced", true);
}

/* The job's handler did not stop within the worker's grace: cancelled now. Clearing the
 * lease token fences the worker: nothing it records for the job counts any more. */
static int s_force_cancel(ab_ctx *ctx, const s_worker *w, s_cancelled *c, ab_error *err)
{
    char message[320];
    snprintf(
        message, sizeof message,
        "Cancelled by force (worker cleanup by %.200s): the handler did not stop within %lld s",
        ctx->who->email, (long long)w->grace_s);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, message);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)c->id);
    ab_job_counts counts; /* its run was cut short: no run time */
    ab_job_counts_clear(&counts);
    ab_job_counts_add(&counts, c->queue, c->type, "cancelled", 1, -1);
    if (ab_db_run(ctx->db,
                  "UPDATE jobs SET state = 'cancelled', status = 3, message = ?, "
                  "date_finished = FROM_UNIXTIME(? / 1000), date_modified = date_finished, "
                  "lease_token = NULL, lease_expires = NULL WHERE id = ? AND state = 'running'",
                  &p, NULL, NULL, err) < 0 ||
        ab_job_counts_write(ctx->db, AB_JOB_COUNTS_SHARED, &counts, err) < 0)
        return -1;
    c->forced = true;
    char topic[96], title[96];
    ab_job_topic(c->id, "cancelled", topic, sizeof topic);
    snprintf(title, sizeof title, "Job (%llu): %s", (unsigned long long)c->id, c->type);
    s_forced_event e = {c, w->id};
    if (ab_ctx_audit(ctx, "Job", c->id, "edit", title, "state (running) => (cancelled)") < 0 ||
        ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_forced, &e) < 0)
        return s_oom(err);
    return 0;
}

/* A cancel without a time (asked before this schema, or by hand): its grace starts now. */
static int s_start_grace(ab_ctx *ctx, const s_cancelled *c, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)c->id);
    return ab_db_run(ctx->db,
                     "UPDATE jobs SET cancel_requested_at = FROM_UNIXTIME(? / 1000) "
                     "WHERE id = ? AND cancel_requested_at IS NULL",
                     &p, NULL, NULL, err);
}

/* Remove a worker that is dead or silent: its jobs go back (attempt counted). */
static int s_remove(ab_ctx *ctx, const s_worker *w, ab_bury_result *r, ab_error *err)
{
    if (ab_worker_bury(ctx->db, w->id, "its registration was cleaned up", true, ctx->events,
                       ctx->now_ms, r, err) < 0)
        return -1;
    char change[200];
    snprintf(change, sizeof change,
             "status (%s) => (removed), jobs put back (%d), failed (%d), cancelled (%d)",
             w->alive ? "silent" : w->status, r->back, r->failed, r->cancelled);
    return s_audit(ctx, "delete", w->id, change) < 0 ? s_oom(err) : 0;
}

static int s_cleanup_one(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_worker w;
    if (s_worker_load(ctx, &w, err) < 0)
        return -1;
    /* A live worker: force the cancels whose grace is over. (A gone worker's cancelled jobs
     * end as cancelled when it is removed below.) */
    s_cancelled c[S_CLEANUP_MAX];
    int n = w.alive ? s_cancel_requests(ctx, &w, c, err) : 0, forced = 0;
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (c[i].since_ms < 0 && s_start_grace(ctx, &c[i], err) < 0)
            return -1;
        if (c[i].since_ms >= w.grace_s * 1000) {
            if (s_force_cancel(ctx, &w, &c[i], err) < 0)
                return -1;
            forced++;
        }
    }
    ab_bury_result r = {0};
    if (!w.alive && s_remove(ctx, &w, &r, err) < 0)
        return -1;
    /* A live worker whose handler ignores its cancel is killed (and replaced) by its
     * supervisor; without one, the revoked lease is all there is: the worker stops the
     * handler when it next looks, and records nothing for the job. */
    const char *kill = NULL;
    uint64_t request = 0;
    if (forced > 0 && w.sup_alive) {
        if (s_kill_request(ctx, &w, true, &request, err) < 0)
            return -1;
        kill = "requested";
    } else if (forced > 0) {
        kill = w.supervised ? "not possible: its supervisor is not running (lease revoked)"
                            : "not possible: started by hand (lease revoked)";
    }
    msgpack_pack_map(pk, 7);
    ab_pack_kv_cstr(pk, "id", w.id);
    ab_pack_kv_bool(pk, "removed", !w.alive);
    ab_pack_kv_int(pk, "handed_back", r.back);
    ab_pack_cstr(pk, "forced");
    msgpack_pack_array(pk, (uint32_t)forced);
    for (int i = 0; i < n; i++)
        if (c[i].forced)
            msgpack_pack_uint64(pk, c[i].id);
    ab_pack_cstr(pk, "pending");
    msgpack_pack_array(pk, (uint32_t)(n - forced));
    for (int i = 0; i < n; i++) {
        if (c[i].forced)
            continue;
        int64_t since = c[i].since_ms < 0 ? 0 : c[i].since_ms;
        msgpack_pack_map(pk, 2);
        ab_pack_kv_int(pk, "job", (int64_t)c[i].id);
        ab_pack_kv_int(pk, "grace_left_s", (w.grace_s * 1000 - since + 999) / 1000);
    }
    ab_pack_kv_cstr(pk, "kill", kill);
    if (request)
        ab_pack_kv_int(pk, "request", (int64_t)request);
    else
        ab_pack_kv_cstr(pk, "request", NULL);
    return 0;
}

static int s_cleanup_dead(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_worker *all;
    size_t n;
    if (s_load_workers(ctx,
                       S_WORKER_SQL " WHERE NOT (" AB_SQL_WORKER_ALIVE ") ORDER BY workers.id "
                                    "LIMIT ? FOR UPDATE",
                       &all, &n, err) < 0)
        return -1;
    int back = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ab_bury_result r;
        rc = s_remove(ctx, &all[i], &r, err);
        back += r.back;
    }
    if (rc == 0) {
        msgpack_pack_map(pk, 2);
        ab_pack_cstr(pk, "removed");
        msgpack_pack_array(pk, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            ab_pack_cstr(pk, all[i].id);
        ab_pack_kv_int(pk, "handed_back", back);
    }
    free(all);
    return rc;
}

int ab_worker_cleanup(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    if (s_one_target(ctx, "dead", "every dead or silent worker", err) < 0)
        return -1;
    return ab_arg_has(ctx, "worker") ? s_cleanup_one(ctx, pk, err) : s_cleanup_dead(ctx, pk, err);
}
