/* scheduler.h — the scheduler of MISP's tasks (issue 3): one leader at a time, chosen by a
 * MariaDB named lock, turns every due task into a job.
 *
 * Exactly once: a due run becomes a job with unique_key "task:<id>:<due, ISO 8601 UTC>"
 * in the same transaction that advances the task's next run, so even two leaders at once
 * (split brain) cannot fire it twice. After downtime a missed task runs once: the next run
 * advances by `timer` hours until it is in the future (MISP's way); timer 0 = once. */
#ifndef AB_SCHEDULER_H
#define AB_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"

/* The schema version the scheduler needs (the tasks table). */
#define AB_SCHEDULER_SCHEMA_MIN 3

/* The name of the MariaDB lock whose holder is the leader. */
#define AB_SCHEDULER_LOCK "adminbus.scheduler"

/* The bus as the scheduler sees it (implemented in scheduler_main.c with ZeroMQ).
 * publish sends one event after COMMIT (at most once; -1 is only logged). wait blocks
 * up to timeout_ms for a notice (task.<id>.changed) and returns 1 when one came, 0 on
 * timeout or signal, -1 when the socket broke. */
typedef struct {
    void *ctx;
    int (*publish)(void *ctx, const char *topic, const void *body, size_t len);
    int (*wait)(void *ctx, int timeout_ms);
} ab_scheduler_bus;

typedef struct {
    const char *db_dsn;
    const char *name; /* host:pid, for the log */
    int tick_ms;      /* how often the leader looks for due tasks (1000) */
} ab_scheduler_options;

typedef struct ab_scheduler ab_scheduler;

/* A scheduler that will use its own two connections (one holds the lock, one does the
 * work). Does not connect yet. NULL when out of memory. */
ab_scheduler *ab_scheduler_new(const ab_scheduler_options *opt, const ab_scheduler_bus *bus);

/* Run until ab_scheduler_request_stop: a non-leader tries the lock every tick; the leader
 * fires due tasks every tick and on a notice. A lost connection loses leadership (the lock
 * goes with it) and is reopened. Returns 0 after a stop, 1 when the bus broke. */
int ab_scheduler_run(ab_scheduler *s);

/* One look at the tasks on db (the leader's work, exposed for tests): enqueue the due
 * ones and advance them, in one transaction, then publish their events. now_ms is the
 * database's clock. *fired receives how many jobs were enqueued. 0, or -1 with *err
 * (nothing committed). */
int ab_scheduler_fire_due(ab_db *db, const ab_scheduler_bus *bus, int64_t now_ms, int *fired,
                          ab_error *err);

/* The next run after a firing due at due_s (unix seconds) seen at now_s: due plus `timer`
 * hours until it is in the future; 0 (not scheduled) when timer is 0. */
int64_t ab_task_next_after(int64_t due_s, int64_t timer_h, int64_t now_s);

/* Format unix seconds as "YYYY-MM-DDTHH:MM:SSZ" (at least 21 bytes). */
void ab_iso_utc(int64_t epoch_s, char *out, size_t len);

/* Async-signal-safe: ask ab_scheduler_run to return soon. */
void ab_scheduler_request_stop(ab_scheduler *s);

/* True while this process holds the lock (for the log and tests). */
bool ab_scheduler_is_leader(const ab_scheduler *s);

void ab_scheduler_destroy(ab_scheduler **s);

#endif
