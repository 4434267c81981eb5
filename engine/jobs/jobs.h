/* jobs.h — the job model shared by the engine (which enqueues and manages jobs) and the
 * workers (which run them): queues, states, the job-type registry, enqueueing.
 *
 * A job lives in `jobs`; while it may run (now or at run_at) it also has a row in the
 * small ready set `job_ready`, which workers claim from with SKIP LOCKED. */
#ifndef AB_JOBS_H
#define AB_JOBS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "core/db.h"
#include "wire/errors.h"
#include "core/events.h"

/* Room for a unique_key as text: the catalog allows 191 characters (schemas/catalog.c),
 * each up to 4 bytes of UTF-8, and a NUL. */
#define AB_JOB_KEY_SIZE (191 * 4 + 1)

/* MISP's queues. A worker serves exactly one. */
#define AB_QUEUES(X) X(default) X(prio) X(cache) X(email) X(update)

/* True when name (len bytes) is one of AB_QUEUES. */
bool ab_queue_valid(const char *name, size_t len);

/* Job states as stored in jobs.state, and MISP's status codes for them (misp-facts.md:
 * 1 waiting, 2 running, 3 failed, 4 completed). */
typedef enum {
    AB_JOB_QUEUED,
    AB_JOB_RUNNING,
    AB_JOB_RETRYING,
    AB_JOB_DONE,
    AB_JOB_FAILED,
    AB_JOB_CANCELLED,
} ab_job_state;

const char *ab_job_state_name(ab_job_state s);
int ab_job_misp_status(ab_job_state s);

/* --- the job-type registry (engine/jobs/jobtypes.c) ----------------------------------- */

/* What a running handler can do: report progress, learn that it should stop. */
typedef struct ab_job_run ab_job_run;

/* Report progress (0-100) and an optional message (NULL keeps the last one). Returns 0,
 * or -1 when the handler must stop now: the job was cancelled, or the worker lost its
 * lease (it could not heartbeat), or the worker is stopping. */
int ab_job_progress(ab_job_run *run, int percent, const char *message);

/* True when the handler must stop (as above), without reporting anything. */
bool ab_job_should_stop(ab_job_run *run);

/* The job's id and attempt number (1 for the first run). */
uint64_t ab_job_id(const ab_job_run *run);
int ab_job_attempt(const ab_job_run *run);

/* The database connection of the worker, for handlers that record their effect. Writes
 * made here commit together with the job's completion (same transaction), so a job's
 * effect and its `done` are one fact. */
ab_db *ab_job_db(ab_job_run *run);

/* Run one job. args were validated against the type's argument table. Returns 0 when
 * done, -1 with *err when failed: AB_E_UNAVAILABLE means "temporary, retry later", any
 * other code fails the job at once (no retry). The result message goes in *err->message
 * on failure; on success the last progress message stays. */
typedef int (*ab_job_handler)(ab_job_run *run, const msgpack_object *args, ab_error *err);

typedef struct {
    const char *type;  /* "noop", "sleep", "backup", … */
    const char *queue; /* the queue its jobs go to */
    const char *summary;
    const ab_arg *args; /* argument table, validated like a command's */
    size_t nargs;
    ab_job_handler handler;
    int max_attempts;    /* default policy: attempts before `failed` */
    int backoff_base_ms; /* retry n waits base * 2^(n-1), ±25 % jitter, at most 1 h */
} ab_job_type;

extern const ab_job_type ab_job_types[];
extern const size_t ab_job_types_len;

/* The job type called name; NULL when there is none. */
const ab_job_type *ab_job_type_find(const char *name, size_t len);

/* Check args (a msgpack map or NULL) against the type's table: 0, or -1 with *err
 * (invalid, field = the argument). */
int ab_job_args_validate(const ab_job_type *t, const msgpack_object *args, ab_error *err);

/* Delay before retry number attempt (1 = the first retry), with jitter. */
int64_t ab_job_backoff_ms(const ab_job_type *t, int attempt);

/* --- enqueueing (engine/jobs/jobs.c) -------------------------------------------------- */

typedef struct {
    const ab_job_type *type;
    const char *payload; /* msgpack map of arguments (validated); may be NULL */
    size_t payload_len;
    const char *input; /* a one-line summary for humans (MISP's job_input); may be NULL */
    int priority;      /* higher runs first; default 0 */
    int64_t run_at_ms; /* 0 = now */
    int max_attempts;  /* 0 = the type's default */
    uint32_t org_id;
    uint32_t created_by;
    const char *unique_key; /* NULL = none; a second enqueue with the key finds the first */
} ab_job_spec;

/* A job's queue, type, state and priority, as text from its row. */
typedef struct {
    char state[16], queue[33], type[33];
    int64_t priority;
} ab_job_head;

/* Read job id's head, locking its row when for_update (the managing commands change it
 * next; a plain read serves the replies that only report it). Returns 0, or -1 with *err
 * (not_found, field job, when there is no such job). */
int ab_job_head_load(ab_db *db, uint64_t id, bool for_update, ab_job_head *h, ab_error *err);

/* Enqueue inside the caller's transaction (so the job exists exactly when the change that
 * caused it does). Returns 0 with *id (and *existed = true when unique_key matched an
 * existing job, which is then left as it is). */
int ab_job_enqueue(ab_db *db, const ab_job_spec *spec, int64_t now_ms, uint64_t *id, bool *existed,
                   ab_error *err);

/* Enqueue n jobs without unique keys inside the caller's transaction with few statements:
 * the jobs rows as multi-row INSERTs (… RETURNING id), the ready rows as one array-bound
 * INSERT. ids[i] is the id of specs[i]. Returns 0 or -1 with *err. */
int ab_job_enqueue_batch(ab_db *db, const ab_job_spec *specs, size_t n, int64_t now_ms,
                         uint64_t *ids, ab_error *err);

/* The job type named by map's "type" and its arguments map "args" (NULL when absent),
 * checked against the type. Errors are invalid, their field named under prefix: "type",
 * "args.ms", or with prefix "jobs[3]." "jobs[3].args.ms". NULL with *err on error. */
const ab_job_type *ab_job_type_of(const msgpack_object *map, const msgpack_object **args,
                                  const char *prefix, ab_error *err);

/* MISP's job_input: a one-line "k=v k=v" summary of the arguments, for humans. */
void ab_job_summarise(const msgpack_object *args, char *out, size_t len);

/* Queue the notice wake.<queue> {queue}. Returns 0 or -1 (out of memory). */
int ab_job_wake_queue(ab_events *ev, int64_t ts_ms, const char *queue);

/* Hand job id (just enqueued in the caller's transaction, due now) to an idle worker of
 * queue: the job becomes running under a fresh lease of lease_ms for that worker and leaves
 * the ready set, and the worker is no longer idle. The caller announces it, after the
 * COMMIT, with ab_job_assign_notice. Returns 1 with the worker's id in worker, 0 when no
 * worker of the queue is idle (the job stays ready), -1 on a fault. */
int ab_job_dispatch(ab_db *db, uint64_t id, const char *queue, int lease_ms, char *worker,
                    size_t len, ab_error *err);

/* Queue the notice worker.<worker>.assign {assign: id}: the worker takes up the jobs
 * handed to it. Returns 0 or -1 (out of memory). */
int ab_job_assign_notice(ab_events *ev, int64_t ts_ms, const char *worker, uint64_t id);

/* Topic of the wake-up notice for a queue's workers: "wake.<queue>". */
void ab_job_wake_topic(const char *queue, char *out, size_t len);

/* Topic of a job event: "job.<id>.<event>" (queued, started, progress, retrying, done,
 * failed, cancelled). */
void ab_job_topic(uint64_t id, const char *event, char *out, size_t len);

/* Queue the event job.<id>.<event> {id, queue, type, state} and, when wake is set (the job
 * may run now), the notice wake.<queue> {queue}: what the engine and the scheduler announce
 * after the COMMIT of an enqueue. Returns 0 or -1 (out of memory). */
int ab_job_events_queue(ab_events *ev, int64_t ts_ms, uint64_t id, const char *event,
                        const char *queue, const char *type, const char *state, bool wake);

#endif
