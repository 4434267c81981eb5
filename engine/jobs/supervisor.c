/* supervisor.c — see supervisor.h.
 *
 * One thread. The loop reaps children (SIGCHLD interrupts the wait for a notice, and the
 * wait is never longer than S_TICK_MS), starts the ones whose restart is due, heartbeats
 * every second, and looks at the host's pending requests on a notice or every second.
 *
 * What happens when a child ends is decided by the worker's own row, which the engine's
 * commands set before anything else happens (truth lives in the database):
 *   desired 'stop'     (worker.stop)      not replaced;
 *   desired 'restart'  (worker.restart)   replaced at once, the old registration removed;
 *   killed on request  (worker.kill)      not replaced, or replaced at once when the
 *                                         request says so (worker.cleanup's kill);
 *   anything else      (a crash, kill -9) replaced after a back-off: 1 s, doubling up to
 *                                         60 s while children keep dying within 10 s.
 * A child whose row is not dead when its process is gone did not shut down cleanly: it is
 * buried at once (row dead, running jobs back, worker.<id>.down), not after its lease. */
#include "jobs/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/db.h"
#include "wire/envelope.h"
#include "core/events.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"
#include "wire/log.h"
#include "core/migrate.h"
#include "jobs/workerctl.h"

#define S_CHILDREN_MAX   256
#define S_TICK_MS        250    /* longest wait: a child's end is seen at least this soon */
#define S_HEARTBEAT_MS   1000   /* the supervisor's row (AB_SUPERVISOR_ALIVE_S: 10) */
#define S_REQUESTS_MS    1000   /* requests are looked at this often without a notice */
#define S_HOUSEKEEP_MS   600000 /* old rows are purged this often */
#define S_DB_WAIT_S      30     /* MariaDB or the engine's migration may still be starting */
#define S_BACKOFF_MIN_MS 1000
#define S_BACKOFF_MAX_MS 60000
#define S_HEALTHY_MS     10000 /* a child that lived this long was not crash-looping */
#define S_STOP_EXTRA_S   10    /* a stop waits the workers' grace plus this, then SIGKILL */
#define S_GONE_TRIES     3     /* a worker's end recorded again after a deadlock */
#define S_KILL_WAIT_MS   5000  /* how long a SIGKILLed child may take to be reapable */
#define S_REQUEST_TTL_S  300   /* a request pending longer is failed as expired */
#define S_REQUESTS_BATCH 32

static const char *const s_queues[AB_SUPERVISOR_NQUEUES] = {"default", "prio", "cache", "email",
                                                            "update"};

typedef struct {
    bool used;
    int queue;          /* index into s_queues */
    pid_t pid;          /* 0: not running (restart_at says when it starts again) */
    int64_t started_ms; /* monotonic */
    int64_t restart_at; /* monotonic */
    int failures;       /* consecutive short-lived crashes */
} s_child;

/* A kill request being carried out. */
typedef struct {
    uint64_t id;
    bool replace;
} s_kill;

struct ab_supervisor {
    ab_supervisor_options opt;
    const ab_supervisor_bus *busp; /* the caller's, by reference (see ab_supervisor_new) */
    char host[65], id[100], workers[256];
    int counts[AB_SUPERVISOR_NQUEUES];
    ab_db *db;
    bool locked; /* this connection holds the host's lock */
    int64_t db_tried_ms;
    ab_events *ev;
    s_child children[S_CHILDREN_MAX];
    atomic_int stop;
    bool stopping;
};

/* --- time, small helpers ------------------------------------------------------------------ */

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool s_stop_requested(ab_supervisor *s)
{
    return atomic_load(&s->stop) != 0;
}

static int s_queue_index(const char *q, size_t len)
{
    for (int i = 0; i < AB_SUPERVISOR_NQUEUES; i++)
        if (strlen(s_queues[i]) == len && memcmp(s_queues[i], q, len) == 0)
            return i;
    return -1;
}

static void s_worker_id(const ab_supervisor *s, const s_child *c, char *out, size_t len)
{
    snprintf(out, len, "%s:%d:%s", s->host, (int)c->pid, s_queues[c->queue]);
}

/* --- the workers option ------------------------------------------------------------------- */

/* s trimmed of blanks at both ends, as (start, length). */
static const char *s_trim(const char *p, size_t *len)
{
    while (*len && (*p == ' ' || *p == '\t'))
        p++, (*len)--;
    while (*len && (p[*len - 1] == ' ' || p[*len - 1] == '\t'))
        (*len)--;
    return p;
}

int ab_supervisor_parse_workers(const char *spec, int counts[AB_SUPERVISOR_NQUEUES], char *err,
                                size_t errlen)
{
    memset(counts, 0, sizeof(int) * AB_SUPERVISOR_NQUEUES);
    for (const char *p = spec ? spec : ""; *p;) {
        size_t len = strcspn(p, ",");
        const char *next = p + len + (p[len] == ',');
        const char *colon = memchr(p, ':', len);
        size_t qlen = colon ? (size_t)(colon - p) : len;
        const char *q = s_trim(p, &qlen);
        if (!colon && qlen == 0) { /* an empty item: "default:1,,email" */
            p = next;
            continue;
        }
        int qi = s_queue_index(q, qlen);
        if (qi < 0) {
            snprintf(err, errlen,
                     "workers: unknown queue '%.*s' in '%s' (queues: default, prio, cache, "
                     "email, update; e.g. workers=default:2,email:1)",
                     (int)(qlen > 32 ? 32 : qlen), q, spec);
            return -1;
        }
        long n = 1;
        if (colon) {
            size_t nlen = len - (size_t)(colon + 1 - p);
            const char *num = s_trim(colon + 1, &nlen);
            char buf[8] = "";
            char *end = NULL;
            if (nlen > 0 && nlen < sizeof buf)
                memcpy(buf, num, nlen);
            errno = 0;
            n = strtol(buf, &end, 10);
            if (nlen == 0 || nlen >= sizeof buf || errno || *end || n < 0 ||
                n > AB_SUPERVISOR_PER_QUEUE_MAX) {
                snprintf(err, errlen, "workers: the count of queue %s must be 0 to %d (in '%s')",
                         s_queues[qi], AB_SUPERVISOR_PER_QUEUE_MAX, spec);
                return -1;
            }
        }
        counts[qi] += (int)n;
        if (counts[qi] > AB_SUPERVISOR_PER_QUEUE_MAX) {
            snprintf(err, errlen, "workers: more than %d workers for queue %s (in '%s')",
                     AB_SUPERVISOR_PER_QUEUE_MAX, s_queues[qi], spec);
            return -1;
        }
        p = next;
    }
    return 0;
}

/* --- events ------------------------------------------------------------------------------- */

/* Publish what the last COMMIT queued, then forget it. */
static void s_publish_events(ab_supervisor *s)
{
    for (size_t i = 0; i < ab_events_count(s->ev); i++) {
        const ab_event *e = ab_events_at(s->ev, i);
        if (s->busp->publish(s->busp->ctx, e->topic, e->body.data, e->body.size) < 0)
            AB_WARN("supervisor %s: could not publish %s", s->id, e->topic);
    }
    ab_events_clear(s->ev);
}

static void s_pack_self(msgpack_packer *pk, const void *ctx)
{
    const ab_supervisor *s = ctx;
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "id");
    ab_pack_cstr(pk, s->id);
    ab_pack_cstr(pk, "host");
    ab_pack_cstr(pk, s->host);
    ab_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, (int64_t)getpid());
    ab_pack_cstr(pk, "workers");
    ab_pack_cstr(pk, s->workers);
}

/* supervisor.<id>.up|down {id, host, pid, workers} */
static void s_announce(ab_supervisor *s, const char *event)
{
    char topic[160];
    snprintf(topic, sizeof topic, "supervisor.%s.%s", s->id, event);
    if (ab_events_push(s->ev, topic, s_wall_ms(), s_pack_self, s) == 0)
        s_publish_events(s);
}

/* --- the database ------------------------------------------------------------------------- */

static void s_db_lost(ab_supervisor *s)
{
    if (s->db && ab_db_connection_lost(s->db)) {
        AB_WARN("supervisor %s: lost the database connection; reconnecting", s->id);
        ab_db_close(&s->db);
        s->locked = false;
    }
}

static void s_rollback(ab_supervisor *s)
{
    ab_error err;
    if (s->db && ab_db_exec(s->db, "ROLLBACK", &err) < 0)
        s_db_lost(s);
    ab_events_clear(s->ev);
}

static int s_commit(ab_supervisor *s, ab_error *err)
{
    if (ab_db_exec(s->db, "COMMIT", err) < 0) {
        s_rollback(s);
        s_db_lost(s);
        return -1;
    }
    s_publish_events(s);
    return 0;
}

/* Try the host's lock (one supervisor per host and database) for up to wait_s seconds. */
static int s_lock(ab_supervisor *s, int wait_s)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s->host);
    ab_param_int(&p, wait_s);
    int64_t got = 0;
    ab_error err;
    if (ab_db_scalar(s->db,
                     "SELECT GET_LOCK(CONCAT('adminbus.supervisor.', LEFT(SHA2(CONCAT(DATABASE(), "
                     "'/', ?), 256), 40)), ?)",
                     &p, &got, &err) < 0) {
        s_db_lost(s);
        return -1;
    }
    s->locked = got == 1;
    return s->locked ? 0 : -1;
}

static int s_register(ab_supervisor *s, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s->id);
    ab_param_cstr(&p, s->host);
    ab_param_int(&p, (int64_t)getpid());
    ab_param_cstr(&p, s->workers);
    if (ab_db_run(s->db,
                  "INSERT INTO supervisors (id, host, pid, status, workers, children, started, "
                  "last_heartbeat) VALUES (?, ?, ?, 'ok', ?, 0, UTC_TIMESTAMP(3), "
                  "UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE status = 'ok', "
                  "workers = VALUES(workers), last_heartbeat = VALUES(last_heartbeat)",
                  &p, NULL, NULL, err) < 0)
        return -1;
    /* We hold the host's lock: any other row of the host is a supervisor that is gone. */
    ab_params_init(&p);
    ab_param_cstr(&p, s->host);
    ab_param_cstr(&p, s->id);
    if (ab_db_run(s->db, "DELETE FROM supervisors WHERE host = ? AND id <> ?", &p, NULL, NULL,
                  err) < 0)
        return -1;
    return ab_db_exec(s->db, "COMMIT", err);
}

/* The connection, reopened (and the lock taken again) when it was lost. */
static ab_db *s_conn(ab_supervisor *s)
{
    if (s->db && s->locked)
        return s->db;
    int64_t now = s_mono_ms();
    if (now - s->db_tried_ms < 1000)
        return NULL;
    s->db_tried_ms = now;
    char msg[512];
    ab_error err;
    if (!s->db && !(s->db = ab_db_open(s->opt.db_dsn, msg, sizeof msg))) {
        AB_WARN("supervisor %s: %s; retrying", s->id, msg);
        return NULL;
    }
    if (s_lock(s, 0) < 0) {
        AB_WARN("supervisor %s: another supervisor holds the lock of host %s; not serving "
                "requests until it is free",
                s->id, s->host);
        return NULL;
    }
    if (s_register(s, &err) < 0) {
        s_rollback(s);
        s_db_lost(s);
        return NULL;
    }
    AB_INFO("supervisor %s: connected to the database", s->id);
    return s->db;
}

/* At start: wait for MariaDB and the schema, then for the host's lock. 0, or -1 when told to
 * stop or MariaDB stayed away. */
static int s_start_db(ab_supervisor *s)
{
    char msg[512] = "";
    for (int waited = 0; !s_stop_requested(s); waited++) {
        ab_error err;
        if (!s->db)
            s->db = ab_db_open(s->opt.db_dsn, msg, sizeof msg);
        int version = s->db ? ab_schema_current(s->db, &err) : -1;
        if (s->db)
            ab_db_exec(s->db, "COMMIT", &err);
        if (version >= AB_SUPERVISOR_SCHEMA_MIN)
            break;
        if (s->db)
            snprintf(msg, sizeof msg,
                     "the database has schema version %d, the supervisor needs %d: start "
                     "adminbus-engine once (it migrates) or run `adminctl db update`",
                     version, AB_SUPERVISOR_SCHEMA_MIN);
        ab_db_close(&s->db);
        if (waited == S_DB_WAIT_S) {
            AB_ERROR("supervisor %s: %s; is MariaDB running? (ops/db status)", s->id, msg);
            return -1;
        }
        if (waited == 0)
            AB_WARN("supervisor %s: %s; retrying for %d s", s->id, msg, S_DB_WAIT_S);
        s_sleep_ms(1000);
    }
    bool said = false;
    while (!s_stop_requested(s) && s->db && s_lock(s, 1) < 0) {
        if (!said)
            AB_WARN("supervisor %s: another supervisor runs for host %s on this database; "
                    "waiting for it to stop",
                    s->id, s->host);
        said = true;
    }
    ab_error err;
    if (s_stop_requested(s) || !s->db || s_register(s, &err) < 0) {
        if (!s_stop_requested(s))
            AB_ERROR("supervisor %s: cannot register in the supervisors table", s->id);
        return -1;
    }
    return 0;
}

/* --- children ----------------------------------------------------------------------------- */

static s_child *s_new_slot(ab_supervisor *s, int queue)
{
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        if (!s->children[i].used) {
            s->children[i] = (s_child){.used = true, .queue = queue};
            return &s->children[i];
        }
    return NULL;
}

static s_child *s_child_by_pid(ab_supervisor *s, pid_t pid)
{
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        if (s->children[i].used && s->children[i].pid == pid)
            return &s->children[i];
    return NULL;
}

static int s_running(const ab_supervisor *s)
{
    int n = 0;
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        n += s->children[i].used && s->children[i].pid > 0;
    return n;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void s_exec_child(const ab_supervisor *s, const s_child *c, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor's death stops its workers */
    if (getppid() != parent)
        _exit(0); /* it died before the line above */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL); /* ignored dispositions survive exec */
    /* Nothing of ours (the database connection holding the host's lock, the bus sockets)
     * may live on in the worker. */
    close_range(3, ~0U, 0);
    char *argv[] = {(char *)s->opt.worker_exe,
                    "--queue",
                    (char *)s_queues[c->queue],
                    "--supervisor",
                    (char *)s->id,
                    NULL};
    execv(s->opt.worker_exe, argv);
    static const char msg[] = "adminbus-supervisor: cannot run the worker executable\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

static void s_spawn(ab_supervisor *s, s_child *c)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_exec_child(s, c, parent);
    if (pid < 0) {
        AB_ERROR("supervisor %s: cannot start a worker for queue %s: %s; trying again in %d s",
                 s->id, s_queues[c->queue], strerror(errno), S_BACKOFF_MIN_MS / 1000);
        c->restart_at = s_mono_ms() + S_BACKOFF_MIN_MS;
        return;
    }
    c->pid = pid;
    c->started_ms = s_mono_ms();
    char wid[100];
    s_worker_id(s, c, wid, sizeof wid);
    AB_INFO("supervisor %s: started worker %s", s->id, wid);
}

/* How the child ended, for the log and the jobs' last_error. */
static void s_describe(int status, bool killed_on_request, char *out, size_t len)
{
    if (killed_on_request)
        snprintf(out, len, "killed on request");
    else if (WIFSIGNALED(status))
        snprintf(out, len, "its process was killed by signal %d", WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        snprintf(out, len, "its process exited with status %d", WEXITSTATUS(status));
    else
        snprintf(out, len, "its process exited");
}

typedef enum { S_DROP, S_NOW, S_LATER } s_next;

/* The worker's desired state ("" when it has no row). */
static int s_read_desired(ab_supervisor *s, const char *wid, char *out, size_t len, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, wid);
    ab_rows rows;
    if (ab_db_query(s->db, "SELECT desired FROM workers WHERE id = ? FOR UPDATE", &p, &rows, err) <
        0)
        return -1;
    out[0] = '\0';
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        snprintf(out, len, "%s", ab_rows_str(&rows, 0, NULL));
    ab_rows_close(&rows);
    return rc < 0 ? -1 : 0;
}

static int s_request_end(ab_supervisor *s, uint64_t id, const char *state, const char *result,
                         const char *worker, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, state);
    ab_param_cstr(&p, result);
    ab_param_cstr(&p, worker);
    ab_param_cstr(&p, s->id);
    ab_param_int(&p, (int64_t)id);
    return ab_db_run(s->db,
                     "UPDATE supervisor_requests SET state = ?, result = ?, "
                     "worker = COALESCE(?, worker), supervisor = ?, finished = UTC_TIMESTAMP(3) "
                     "WHERE id = ? AND state = 'pending'",
                     &p, NULL, NULL, err);
}

/* In one transaction (left open for the caller to commit): read what the worker's row wants,
 * bury it when it did not shut down cleanly (or remove the row of a worker replaced on
 * request), end the kill request. 0 with *next, or -1. */
static int s_gone_tx(ab_supervisor *s, const char *wid, const char *why, const s_kill *kill,
                     s_next *next, ab_bury_result *r, ab_error *err)
{
    char desired[16];
    if (!s_conn(s))
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "no database connection");
    if (s_read_desired(s, wid, desired, sizeof desired, err) < 0)
        return -1;
    *next = s->stopping                       ? S_DROP
            : kill                            ? (kill->replace ? S_NOW : S_DROP)
            : strcmp(desired, "stop") == 0    ? S_DROP
            : strcmp(desired, "restart") == 0 ? S_NOW
                                              : S_LATER;
    bool replaced_on_request = *next == S_NOW;
    if (ab_worker_bury(s->db, wid, why, replaced_on_request, s->ev, s_wall_ms(), r, err) < 0)
        return -1;
    if (!kill)
        return 0;
    char result[200];
    snprintf(result, sizeof result, "killed %s; %d job(s) put back, %d failed, %d cancelled", wid,
             r->back, r->failed, r->cancelled);
    return s_request_end(s, kill->id, "done", result, wid, err);
}

/* s_gone_tx and its COMMIT, tried again when InnoDB chose this transaction as a deadlock
 * victim or timed out a lock wait: the worker's own last transactions (jobs, then its row)
 * can cross ours (its row, then its jobs), and a row left behind would hold a replaced
 * worker's registration and its jobs until their leases expire. 0, or -1 with err. */
static int s_gone_recorded(ab_supervisor *s, const char *wid, const char *why, const s_kill *kill,
                           s_next *next, ab_bury_result *r, ab_error *err)
{
    for (int attempt = 1;; attempt++) {
        *r = (ab_bury_result){0};
        if (s_gone_tx(s, wid, why, kill, next, r, err) == 0 && s_commit(s, err) == 0)
            return 0;
        bool again = attempt < S_GONE_TRIES && s->db && ab_db_batch_broken(s->db) &&
                     !ab_db_connection_lost(s->db);
        if (!again)
            return -1;
        s_rollback(s);
        AB_INFO("supervisor %s: worker %s: recording its end again (%s)", s->id, wid, err->message);
    }
}

/* A child's process is gone (reaped with status). */
static void s_child_gone(ab_supervisor *s, s_child *c, int status, const s_kill *kill)
{
    char wid[100], why[96];
    s_worker_id(s, c, wid, sizeof wid);
    s_describe(status, kill != NULL, why, sizeof why);
    int64_t lived = s_mono_ms() - c->started_ms;
    c->pid = 0;
    ab_bury_result r = {0};
    ab_error err;
    s_next next = S_LATER;
    if (s_gone_recorded(s, wid, why, kill, &next, &r, &err) < 0) {
        AB_WARN("supervisor %s: worker %s: %s; could not record it (%s): its jobs come back "
                "when their leases expire",
                s->id, wid, why, err.message);
        s_rollback(s);
        s_db_lost(s);
        r = (ab_bury_result){0};
        next = s->stopping ? S_DROP : kill ? (kill->replace ? S_NOW : S_DROP) : S_LATER;
    }
    if (r.found && !r.was_dead)
        AB_WARN("supervisor %s: worker %s: %s; marked dead, %d job(s) put back, %d failed, %d "
                "cancelled",
                s->id, wid, why, r.back, r.failed, r.cancelled);
    if (next == S_DROP) {
        if (!s->stopping)
            AB_INFO("supervisor %s: worker %s ended (%s): not replaced", s->id, wid,
                    kill ? "killed on request" : "stopped on request");
        c->used = false;
        return;
    }
    if (next == S_NOW) {
        AB_INFO("supervisor %s: worker %s ended on request; starting its replacement", s->id, wid);
        c->failures = 0;
        s_spawn(s, c);
        return;
    }
    c->failures = lived >= S_HEALTHY_MS ? 1 : c->failures + 1;
    int64_t delay = S_BACKOFF_MIN_MS;
    for (int i = 1; i < c->failures && delay < S_BACKOFF_MAX_MS; i++)
        delay *= 2;
    delay = delay > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : delay;
    c->restart_at = s_mono_ms() + delay;
    AB_WARN("supervisor %s: worker %s ended unexpectedly (%s); starting a new one in %lld ms",
            s->id, wid, why, (long long)delay);
}

/* Reap every child that ended. */
static void s_reap(ab_supervisor *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        s_child *c = s_child_by_pid(s, pid);
        if (c)
            s_child_gone(s, c, status, NULL);
    }
}

/* Start the children whose restart is due; returns ms until the next one (or S_TICK_MS). */
static int64_t s_restart_due(ab_supervisor *s)
{
    int64_t now = s_mono_ms(), next = S_TICK_MS;
    for (int i = 0; i < S_CHILDREN_MAX; i++) {
        s_child *c = &s->children[i];
        if (!c->used || c->pid > 0)
            continue;
        if (c->restart_at <= now)
            s_spawn(s, c);
        else if (c->restart_at - now < next)
            next = c->restart_at - now;
    }
    return next;
}

/* --- requests ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t id;
    char action[8], queue[33], worker[100];
    int64_t pid, age_s;
    bool replace;
} s_request;

static int s_read_requests(ab_supervisor *s, s_request *out, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s->host);
    ab_param_int(&p, S_REQUESTS_BATCH);
    ab_rows rows;
    if (ab_db_query(s->db,
                    "SELECT id, action, queue, worker, pid, replace_it, "
                    "TIMESTAMPDIFF(SECOND, created, UTC_TIMESTAMP(3)) FROM supervisor_requests "
                    "WHERE host = ? AND state = 'pending' ORDER BY id LIMIT ?",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0;
    while (n < S_REQUESTS_BATCH && ab_rows_next(&rows) == 1) {
        s_request *r = &out[n++];
        const char *q = ab_rows_str(&rows, 2, NULL), *w = ab_rows_str(&rows, 3, NULL);
        r->id = (uint64_t)ab_rows_int(&rows, 0);
        snprintf(r->action, sizeof r->action, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(r->queue, sizeof r->queue, "%s", q ? q : "");
        snprintf(r->worker, sizeof r->worker, "%s", w ? w : "");
        r->pid = ab_rows_int(&rows, 4);
        r->replace = ab_rows_int(&rows, 5) != 0;
        r->age_s = ab_rows_int(&rows, 6);
    }
    ab_rows_close(&rows);
    return ab_db_exec(s->db, "COMMIT", err) < 0 ? -1 : n;
}

static void s_end_request(ab_supervisor *s, uint64_t id, const char *state, const char *result,
                          const char *worker)
{
    ab_error err;
    if (s_request_end(s, id, state, result, worker, &err) < 0 || s_commit(s, &err) < 0) {
        s_rollback(s);
        s_db_lost(s);
    }
    if (strcmp(state, "failed") == 0)
        AB_WARN("supervisor %s: request %llu failed: %s", s->id, (unsigned long long)id, result);
}

static void s_do_start(ab_supervisor *s, const s_request *r)
{
    int q = s_queue_index(r->queue, strlen(r->queue));
    s_child *c = q >= 0 ? s_new_slot(s, q) : NULL;
    if (!c) {
        s_end_request(s, r->id, "failed",
                      q < 0 ? "unknown queue" : "this supervisor runs its most workers already",
                      NULL);
        return;
    }
    s_spawn(s, c);
    if (c->pid <= 0) {
        c->used = false;
        s_end_request(s, r->id, "failed", "fork failed (see the supervisor's log)", NULL);
        return;
    }
    char wid[100], result[160];
    s_worker_id(s, c, wid, sizeof wid);
    snprintf(result, sizeof result, "started worker %s", wid);
    s_end_request(s, r->id, "done", result, wid);
}

/* SIGKILL the child and wait until it can be reaped; status, or -1 when it would not go. */
static int s_kill_and_reap(pid_t pid, int *status)
{
    kill(pid, SIGKILL);
    for (int waited = 0; waited <= S_KILL_WAIT_MS; waited += 10) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            return 0;
        if (got < 0 && errno != EINTR)
            return -1;
        s_sleep_ms(10);
    }
    return -1;
}

static void s_do_kill(ab_supervisor *s, const s_request *r)
{
    s_child *c = r->pid > 0 ? s_child_by_pid(s, (pid_t)r->pid) : NULL;
    char wid[100] = "";
    if (c)
        s_worker_id(s, c, wid, sizeof wid);
    if (!c || strcmp(wid, r->worker) != 0) {
        char result[256]; /* the column's size */
        snprintf(result, sizeof result,
                 "%.96s is not a running worker of supervisor %.80s (it ended already?)", r->worker,
                 s->id);
        s_end_request(s, r->id, "failed", result, NULL);
        return;
    }
    int status = 0;
    if (s_kill_and_reap(c->pid, &status) < 0) {
        s_end_request(s, r->id, "failed", "SIGKILL sent, but the process did not end within 5 s",
                      NULL);
        return;
    }
    AB_WARN("supervisor %s: killed worker %s on request %llu", s->id, wid,
            (unsigned long long)r->id);
    s_kill k = {r->id, r->replace};
    s_child_gone(s, c, status, &k);
}

static void s_requests(ab_supervisor *s)
{
    s_request reqs[S_REQUESTS_BATCH];
    ab_error err;
    if (!s_conn(s))
        return;
    int n = s_read_requests(s, reqs, &err);
    if (n < 0) {
        s_rollback(s);
        s_db_lost(s);
        return;
    }
    for (int i = 0; i < n && s->db; i++) {
        const s_request *r = &reqs[i];
        if (r->age_s > S_REQUEST_TTL_S)
            s_end_request(s, r->id, "failed", "expired: no supervisor took it within 5 minutes",
                          NULL);
        else if (strcmp(r->action, "start") == 0)
            s_do_start(s, r);
        else
            s_do_kill(s, r);
    }
}

/* --- heartbeat and housekeeping ------------------------------------------------------------ */

static void s_heartbeat(ab_supervisor *s)
{
    if (!s_conn(s))
        return;
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, s_running(s));
    ab_param_cstr(&p, s->id);
    uint64_t changed = 0;
    ab_error err;
    if (ab_db_run(s->db,
                  "UPDATE supervisors SET last_heartbeat = UTC_TIMESTAMP(3), status = 'ok', "
                  "children = ? WHERE id = ?",
                  &p, NULL, &changed, &err) < 0 ||
        (changed == 0 && s_register(s, &err) < 0) || ab_db_exec(s->db, "COMMIT", &err) < 0) {
        s_rollback(s);
        s_db_lost(s);
    }
}

/* Registrations do not pile up: workers dead for a day, finished requests older than a week,
 * supervisors gone for a day. */
static void s_housekeep(ab_supervisor *s)
{
    static const char *const sql[] = {
        "DELETE FROM workers WHERE status = 'dead' AND last_heartbeat < UTC_TIMESTAMP(3) - "
        "INTERVAL 1 DAY LIMIT 1000",
        "DELETE FROM supervisor_requests WHERE state <> 'pending' AND finished < "
        "UTC_TIMESTAMP(3) - INTERVAL 7 DAY LIMIT 1000",
        "DELETE FROM supervisors WHERE last_heartbeat < UTC_TIMESTAMP(3) - INTERVAL 1 DAY "
        "LIMIT 1000",
    };
    if (!s_conn(s))
        return;
    ab_error err;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
        if (ab_db_run(s->db, sql[i], NULL, NULL, NULL, &err) < 0 ||
            (i == 0 && ab_job_counts_fold(s->db, &err) < 0) || /* counts outlive workers */
            ab_db_exec(s->db, "COMMIT", &err) < 0) {
            s_rollback(s);
            s_db_lost(s);
            return;
        }
}

/* --- stopping ------------------------------------------------------------------------------ */

static void s_set_status(ab_supervisor *s, const char *status)
{
    if (!s_conn(s))
        return;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, status);
    ab_param_int(&p, s_running(s));
    ab_param_cstr(&p, s->id);
    ab_error err;
    if (ab_db_run(s->db,
                  "UPDATE supervisors SET status = ?, children = ?, last_heartbeat = "
                  "UTC_TIMESTAMP(3) WHERE id = ?",
                  &p, NULL, NULL, &err) < 0 ||
        ab_db_exec(s->db, "COMMIT", &err) < 0) {
        s_rollback(s);
        s_db_lost(s);
    }
}

/* SIGTERM to each running child (they finish or hand back their jobs within their grace);
 * SIGKILL to any still there grace_s + S_STOP_EXTRA_S later. Only our own children. */
static void s_stop_children(ab_supervisor *s)
{
    s->stopping = true;
    s_set_status(s, "stopping");
    int n = 0;
    for (int i = 0; i < S_CHILDREN_MAX; i++) {
        s_child *c = &s->children[i];
        if (c->used && c->pid > 0 && kill(c->pid, SIGTERM) == 0)
            n++;
        else if (c->used && c->pid <= 0)
            c->used = false; /* waiting for a restart: none comes */
    }
    AB_INFO("supervisor %s: stopping %d worker(s)", s->id, n);
    int64_t deadline = s_mono_ms() + ((int64_t)s->opt.grace_s + S_STOP_EXTRA_S) * 1000;
    while (s_running(s) > 0 && s_mono_ms() < deadline) {
        s_reap(s);
        if (s_running(s) > 0)
            s_sleep_ms(50);
    }
    for (int i = 0; i < S_CHILDREN_MAX; i++) {
        s_child *c = &s->children[i];
        int status = 0;
        if (!c->used || c->pid <= 0)
            continue;
        AB_WARN("supervisor %s: worker pid %d did not stop within %d s; killing it", s->id,
                (int)c->pid, s->opt.grace_s + S_STOP_EXTRA_S);
        if (s_kill_and_reap(c->pid, &status) == 0)
            s_child_gone(s, c, status, NULL);
    }
}

/* --- the loop ------------------------------------------------------------------------------ */

static void s_start_configured(ab_supervisor *s)
{
    for (int q = 0; q < AB_SUPERVISOR_NQUEUES; q++)
        for (int k = 0; k < s->counts[q]; k++) {
            s_child *c = s_new_slot(s, q);
            if (c)
                s_spawn(s, c);
        }
}

int ab_supervisor_run(ab_supervisor *s)
{
    if (s_start_db(s) < 0)
        return s_stop_requested(s) ? 0 : 1;
    AB_INFO("supervisor %s up: host %s, workers '%s', worker grace %d s", s->id, s->host,
            s->workers, s->opt.grace_s);
    s_announce(s, "up");
    s_start_configured(s);
    int64_t next_hb = 0, next_req = 0, next_housekeep = s_mono_ms() + S_HOUSEKEEP_MS;
    bool notice = true;
    while (!s_stop_requested(s)) {
        s_reap(s);
        int64_t wait = s_restart_due(s), now = s_mono_ms();
        if (now >= next_hb) {
            next_hb = now + S_HEARTBEAT_MS;
            s_heartbeat(s);
        }
        if (notice || now >= next_req) {
            next_req = now + S_REQUESTS_MS;
            s_requests(s);
        }
        if (now >= next_housekeep) {
            next_housekeep = now + S_HOUSEKEEP_MS;
            s_housekeep(s);
        }
        if (s_stop_requested(s))
            break;
        int got = s->busp->wait(s->busp->ctx, (int)(wait < 1 ? 1 : wait));
        if (got < 0) {
            AB_ERROR("supervisor %s: the bus failed; looking at requests every second only", s->id);
            s_sleep_ms(S_TICK_MS);
        }
        notice = got == 1;
    }
    s_stop_children(s);
    s_set_status(s, "dead");
    s_announce(s, "down");
    AB_INFO("supervisor %s down", s->id);
    return 0;
}

void ab_supervisor_request_stop(ab_supervisor *s)
{
    if (s)
        atomic_store(&s->stop, 1);
}

const char *ab_supervisor_id(const ab_supervisor *s)
{
    return s->id;
}

const char *ab_supervisor_host(const ab_supervisor *s)
{
    return s->host;
}

ab_supervisor *ab_supervisor_new(const ab_supervisor_options *opt, const ab_supervisor_bus *bus,
                                 char *err, size_t errlen)
{
    ab_supervisor *s = calloc(1, sizeof *s);
    if (!s || !(s->ev = ab_events_new())) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    s->opt = *opt;
    s->busp = bus;
    if (ab_supervisor_parse_workers(opt->workers, s->counts, err, errlen) < 0) {
        ab_supervisor_destroy(&s);
        return NULL;
    }
    snprintf(s->workers, sizeof s->workers, "%s", opt->workers ? opt->workers : "");
    if (gethostname(s->host, sizeof s->host - 1) != 0 || !s->host[0])
        snprintf(s->host, sizeof s->host, "localhost");
    snprintf(s->id, sizeof s->id, "%s:%d", s->host, (int)getpid());
    return s;
}

void ab_supervisor_destroy(ab_supervisor **sp)
{
    if (!sp || !*sp)
        return;
    ab_supervisor *s = *sp;
    ab_db_close(&s->db);
    ab_events_destroy(&s->ev);
    free(s);
    *sp = NULL;
}
