-- 0015_job_counts: counters of the jobs that ended, for /metrics (adminbus_jobs_finished_total
-- and the histogram adminbus_job_duration_seconds). A row grows in the transaction that ends
-- its jobs (a worker's done, failed or cancelled, a reaper's, the engine's cancels), so an end
-- is counted once, exactly when it commits, and the totals only grow: they never depend on
-- which jobs are still kept (jobs.purge) or on any process staying up.
--
-- shard: who wrote the row. A worker adds the jobs it ran under its own id, so workers never
-- wait for each other's counter rows; '' holds everything else (the engine's cancels, the
-- reapers, worker cleanup) and the rows of workers whose registration was deleted, folded in
-- there when it is (so the table stays as small as the set of registered workers). The
-- totals are the sums over shards.
--
-- finished: jobs that ended so (done, failed, cancelled). ran: those of them whose last
-- attempt a worker ran to its end; run_us: the sum of those attempts' run times (handler
-- start to return, microseconds); b0..b12: how many of those ran within 1 ms, 5 ms, 10 ms,
-- 50 ms, 100 ms, 500 ms, 1 s, 5 s, 10 s, 1 min, 10 min, 1 h, longer (one bucket each, not
-- cumulative; engine/jobcounts.h has the bounds).

CREATE TABLE IF NOT EXISTS job_counts (
  shard VARCHAR(96) NOT NULL,
  queue VARCHAR(32) NOT NULL,
  job_type VARCHAR(32) NOT NULL,
  state ENUM('done','failed','cancelled') NOT NULL,
  finished BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ran BIGINT UNSIGNED NOT NULL DEFAULT 0,
  run_us BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b0 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b1 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b2 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b3 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b4 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b5 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b6 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b7 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b8 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b9 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b10 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b11 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  b12 BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (shard, queue, job_type, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
