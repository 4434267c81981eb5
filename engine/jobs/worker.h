/* worker.h — a job worker: claims the jobs of one queue from MariaDB, runs their handlers
 * under a lease, and records the outcome fenced by the lease token (docs/architecture.md,
 * "Jobs and workers").
 *
 * Threads: the caller's thread claims and runs jobs (ab_worker_run); a heartbeat thread of
 * the worker's own keeps the worker's row and the leases of its jobs alive, reads control
 * (workers.desired, jobs.cancel_requested) and puts back the jobs of dead workers (the
 * reaper). Each thread has its own database connection, and progress reports use a third
 * one, because the main connection holds the handler's open transaction.
 *
 * The bus is reached only through ab_worker_bus, so this file needs no zmq.h. */
#ifndef AB_WORKER_H
#define AB_WORKER_H

#include <stddef.h>

#include "core/db.h"

/* How the worker talks to the bus. */
typedef struct {
    void *ctx;
    /* Publish one event (topic frame, then the msgpack body). The worker calls it from two
     * threads but never at once (it serialises the calls). Returns 0 or -1; events are
     * at-most-once, so a failure is only logged. */
    int (*publish)(void *ctx, const char *topic, const void *body, size_t len);
    /* Wait up to timeout_ms for a wake-up notice of the worker's queue (topic
     * ab_job_wake_topic(queue)), a hand-over (worker.<id>.assign) or a control notice
     * (worker.<id>.control), and drain every notice already waiting. Returns 2 when only
     * wake-up notices came, 3 when only those and hand-overs came (the worker then claims or
     * takes up its jobs without first reading its control row), 1 when a control notice
     * came, 0 on timeout or when a signal interrupted the wait, -1 on a bus fault.
     * Called from the thread that runs ab_worker_run only. */
    int (*wait)(void *ctx, int timeout_ms);
} ab_worker_bus;

typedef struct {
    const char *db_dsn;
    const char *queue;      /* one of AB_QUEUES */
    int lease_s;            /* how long a dead worker keeps its jobs; at least 2 */
    int heartbeat_ms;       /* between heartbeats; 0: lease / 10, at least 200; <= lease / 4 */
    int poll_ms;            /* longest idle wait without a wake-up notice */
    int grace_s;            /* after a stop signal, how long a running handler may go on */
    const char *supervisor; /* id of the supervisor that started the worker; NULL: none */
} ab_worker_options;

typedef struct ab_worker ab_worker;

/* Create a worker for opt->queue. db is an open connection at the needed schema version;
 * the worker takes it over (also on failure). Opens its other connections. Its id is
 * "host:pid:queue". Returns NULL with a message in errbuf. Caller owns the result. */
ab_worker *ab_worker_new(const ab_worker_options *opt, const ab_worker_bus *bus, ab_db *db,
                         char *errbuf, size_t errlen);

/* The worker's id, "host:pid:queue". */
const char *ab_worker_id(const ab_worker *w);

/* Register, then claim and run jobs until told to stop (ab_worker_stop, or `stop` in the
 * worker's row); hand back what was claimed but not run; mark the row dead. Returns 0 on a
 * clean stop, 1 when the bus failed (the caller exits non-zero and its supervisor restarts
 * it; nothing is lost: the leases of anything held expire). */
int ab_worker_run(ab_worker *w);

/* Ask the worker to stop: no new claims; the running handler may finish within the grace
 * period and is then told to stop (ab_job_should_stop). Async-signal-safe. */
void ab_worker_request_stop(ab_worker *w);

/* Stop the heartbeat thread if still running, close connections, free; sets *w to NULL;
 * safe on NULL. */
void ab_worker_destroy(ab_worker **w);

/* The lowest schema version the worker can run on (the jobs tables, the workers columns of
 * 0004_dispatch (idle) and 0005_supervisors (supervisor, grace_s, desired 'restart'), and
 * 0015_job_counts, which every job end writes). */
#define AB_WORKER_SCHEMA_MIN 15

#endif
