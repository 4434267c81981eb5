/* workerctl.h — what the engine's worker commands (commands/worker.c) and the supervisor
 * (supervisor.c) share: when a worker or a supervisor counts as alive, the notice that wakes
 * a supervisor, and burying a worker that is gone (docs/architecture.md, "Supervisor").
 *
 * Burying is what the lease reaper of the workers does for an expired lease, done at once by
 * whoever knows for sure that the worker is gone: its supervisor after reaping the process,
 * or `worker cleanup` for a worker that is dead or whose heartbeat lapsed. */
#ifndef AB_WORKERCTL_H
#define AB_WORKERCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "wire/errors.h"
#include "core/events.h"

/* The schema version that has supervisors (0005_supervisors.sql) and the job counters its
 * housekeeping folds (0015_job_counts.sql). */
#define AB_SUPERVISOR_SCHEMA_MIN 15

/* A worker whose heartbeat is older than this counts as not alive (worker.list's `alive`). */
#define AB_WORKER_ALIVE_S 30
/* A supervisor heartbeats every second; one silent for this long is not alive. */
#define AB_SUPERVISOR_ALIVE_S 10

/* SQL condition on a `supervisors` row (no alias): the supervisor is alive. */
#define AB_SQL_SUPERVISOR_ALIVE                                                                    \
    "status = 'ok' AND last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL 10 SECOND"
/* SQL condition on a `workers` row (no alias): the worker is alive. */
#define AB_SQL_WORKER_ALIVE                                                                        \
    "status <> 'dead' AND last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL 30 SECOND"

/* The notice that makes the supervisor of host look at its requests now:
 * "supervisor.<host>.request". */
void ab_supervisor_request_topic(const char *host, char *out, size_t len);

/* What ab_worker_bury did. */
typedef struct {
    bool found;    /* the worker had a row */
    bool was_dead; /* its row already said dead (no worker.<id>.down was queued) */
    int back;      /* jobs put back in the ready set (retrying) */
    int failed;    /* jobs failed: that was their last attempt */
    int cancelled; /* jobs cancelled: a cancel had been requested */
} ab_bury_result;

/* Inside the caller's transaction: put back every running job of worker id, each attempt
 * counting as when its lease expires (retrying at once, or failed when it was the last
 * attempt, or cancelled when a cancel was requested), with last_error "worker lost: why";
 * then mark the worker's row dead (remove = false) or delete it (remove = true). Queues
 * into ev, for the caller to publish after COMMIT: job.<id>.retrying|failed|cancelled,
 * wake.<queue> when a job went back, and worker.<id>.down when the row was not dead yet.
 * Returns 0 (also when there is no such row: r->found is false), or -1 with *err. */
int ab_worker_bury(ab_db *db, const char *id, const char *why, bool remove, ab_events *ev,
                   int64_t now_ms, ab_bury_result *r, ab_error *err);

/* Queue worker.<id>.<event> {id, queue, host, pid, status}, as workers publish it. */
int ab_worker_event_queue(ab_events *ev, int64_t ts_ms, const char *id, const char *queue,
                          const char *host, int64_t pid, const char *event, const char *status);

#endif
