/* supervisor.h — the worker supervisor of one host (MISP's startWorker, restartWorker,
 * killWorker; docs/architecture.md, "Supervisor").
 *
 * It starts the workers its configuration asks for (`workers`, e.g. "default:2,email:1") as
 * child processes (adminbus-worker --queue Q --supervisor ID), starts a dead one again
 * (at once after a requested restart, with back-off after a crash so that a crash loop does
 * not spin), carries out the engine's requests for its host (table supervisor_requests:
 * start one more worker, kill one), and on a stop forwards SIGTERM to exactly its children
 * and waits for them. A child whose process is gone while its row is not dead is buried at
 * once (ab_worker_bury): its row marked dead, its running jobs put back, worker.<id>.down.
 *
 * One supervisor runs per host and database: it holds a MariaDB named lock for its life and
 * a second one waits for it. Its row in `supervisors` (heartbeat every second) tells the
 * engine that the host can start and kill workers. Children get SIGTERM when the supervisor
 * dies (PR_SET_PDEATHSIG), so a supervisor killed -9 leaves no unsupervised workers behind.
 *
 * The bus is reached only through ab_supervisor_bus (supervisor_main.c owns the sockets). */
#ifndef AB_SUPERVISOR_H
#define AB_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>

/* The queues MISP has, in AB_QUEUES order (default, prio, cache, email, update). */
#define AB_SUPERVISOR_NQUEUES 5
/* Most workers one queue may be given by the configuration. */
#define AB_SUPERVISOR_PER_QUEUE_MAX 64

typedef struct {
    void *ctx;
    /* Publish one event (topic, msgpack body); at most once, a failure is only logged. */
    int (*publish)(void *ctx, const char *topic, const void *body, size_t len);
    /* Wait up to timeout_ms for a notice (supervisor.<host>.request). 1 when one came, 0 on
     * timeout or a signal (SIGCHLD interrupts it), -1 when the bus broke. */
    int (*wait)(void *ctx, int timeout_ms);
} ab_supervisor_bus;

typedef struct {
    const char *db_dsn;
    const char *workers;    /* "queue:count,…" (count defaults to 1; "" = none) */
    const char *worker_exe; /* path of adminbus-worker */
    int grace_s;            /* the workers' worker_grace_s: a stop waits this + 10 s */
} ab_supervisor_options;

typedef struct ab_supervisor ab_supervisor;

/* Parse a `workers` value into counts per queue (AB_QUEUES order). Returns 0, or -1 with a
 * message in err naming the bad part. */
int ab_supervisor_parse_workers(const char *spec, int counts[AB_SUPERVISOR_NQUEUES], char *err,
                                size_t errlen);

/* A supervisor for this host (not connected yet). bus is referenced, not copied: it must
 * outlive the supervisor, and its ctx may be filled in until ab_supervisor_run (the caller
 * needs the host to subscribe). NULL with a message in err when the workers option does not
 * parse or memory is short. Caller owns the result. */
ab_supervisor *ab_supervisor_new(const ab_supervisor_options *opt, const ab_supervisor_bus *bus,
                                 char *err, size_t errlen);

/* Its id ("host:pid") and host. */
const char *ab_supervisor_id(const ab_supervisor *s);
const char *ab_supervisor_host(const ab_supervisor *s);

/* Connect (waiting for MariaDB and the schema), take the host's lock (waiting for another
 * supervisor of the host to go), register, start the configured workers, and serve until
 * ab_supervisor_request_stop; then stop the children (SIGTERM, and SIGKILL for any still
 * there grace_s + 10 s later) and mark the row dead. Returns 0 after a clean stop, 1 when
 * the database or the bus could not be had at all. */
int ab_supervisor_run(ab_supervisor *s);

/* Ask the supervisor to stop. Async-signal-safe. */
void ab_supervisor_request_stop(ab_supervisor *s);

/* Close, free, set *s to NULL; safe on NULL. Does not touch the children (run stops them). */
void ab_supervisor_destroy(ab_supervisor **s);

#endif
