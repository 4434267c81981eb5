/* jobcounts.h — counters of the jobs that ended (docs/architecture.md, "Job metrics"): per
 * queue, type and end state, how many, and a histogram of the run time of the attempt that
 * ended them. They live in the table job_counts (migration 0015) and grow inside the
 * transaction that ends the jobs, so each end is counted exactly once, when it commits.
 *
 * A caller gathers what its transaction ends in an ab_job_counts (in memory, no allocation)
 * and writes it with one statement before its COMMIT. Rows are sharded by writer: a worker
 * writes under its own id, so two workers never wait for each other's counter row; the
 * engine, the reapers and worker cleanup write under AB_JOB_COUNTS_SHARED. */
#ifndef AB_JOBCOUNTS_H
#define AB_JOBCOUNTS_H

#include <stdint.h>

#include "core/db.h"

#define AB_JOB_COUNTS_SHARED "" /* the shard of everything but a worker's own runs */
#define AB_JOB_BUCKETS       13 /* run-time buckets: AB_JOB_BUCKETS - 1 bounds, then longer */
#define AB_JOB_COUNTS_MAX    64 /* distinct (queue, type, state) in one ab_job_counts */

/* The upper bounds of the run-time buckets, in microseconds (1 ms … 1 h). */
extern const int64_t ab_job_bucket_us[AB_JOB_BUCKETS - 1];

typedef struct {
    char queue[33], type[33], state[10];
    long long finished, ran, run_us;
    long long buckets[AB_JOB_BUCKETS]; /* one bucket per observation, not cumulative */
} ab_job_count;

typedef struct {
    ab_job_count rows[AB_JOB_COUNTS_MAX];
    int n;
} ab_job_counts;

/* Empty c. */
void ab_job_counts_clear(ab_job_counts *c);

/* The bucket a run of run_us microseconds falls in (0 … AB_JOB_BUCKETS - 1). */
int ab_job_bucket_of(int64_t run_us);

/* n jobs of queue and type ended in state ("done", "failed" or "cancelled"). run_us is the
 * run time of the attempt that ended them when a worker ran it to its end (n must then be
 * 1), or < 0 when none did (cancelled while waiting, ended by a reaper or a cleanup): those
 * count as finished but stay out of the histogram. Returns 0, or -1 when c already holds
 * AB_JOB_COUNTS_MAX other keys (nothing is added). */
int ab_job_counts_add(ab_job_counts *c, const char *queue, const char *type, const char *state,
                      long long n, int64_t run_us);

/* Add c to job_counts under shard, in the caller's transaction: one statement, none when c
 * is empty. Returns 0 or -1 with *err. */
int ab_job_counts_write(ab_db *db, const char *shard, const ab_job_counts *c, ab_error *err);

/* Move the rows of workers whose registration is gone (no workers row) into the shared
 * shard, in the caller's transaction: call it after deleting workers rows. The rows moved
 * are locked first, so a late write to one of them waits and lands after. Returns 0 or -1. */
int ab_job_counts_fold(ab_db *db, ab_error *err);

#endif
