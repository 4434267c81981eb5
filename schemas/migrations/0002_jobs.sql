-- 0002_jobs: durable typed queues (issue 3). `jobs` keeps MISP's visible columns (worker =
-- the queue, job_type, job_input, status, retries, message, progress, org_id, process_id,
-- date_created, date_modified) plus what durability needs. `job_ready` is the small ready
-- set workers claim from: one row per job that may run now or later, ordered as the claim
-- query reads it, so a claim touches only ready rows however many finished jobs are kept.

CREATE TABLE IF NOT EXISTS jobs (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  worker VARCHAR(32) NOT NULL,
  job_type VARCHAR(32) NOT NULL,
  job_input TEXT NULL,
  state ENUM('queued','running','retrying','done','failed','cancelled') NOT NULL DEFAULT 'queued',
  status TINYINT NOT NULL DEFAULT 1,
  retries INT UNSIGNED NOT NULL DEFAULT 0,
  message TEXT NULL,
  progress TINYINT UNSIGNED NOT NULL DEFAULT 0,
  org_id INT UNSIGNED NOT NULL DEFAULT 0,
  process_id VARCHAR(96) NULL,
  payload MEDIUMBLOB NULL,
  priority SMALLINT NOT NULL DEFAULT 0,
  run_at DATETIME(3) NOT NULL,
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  max_attempts INT UNSIGNED NOT NULL DEFAULT 5,
  lease_token BIGINT UNSIGNED NULL,
  lease_expires DATETIME(3) NULL,
  cancel_requested TINYINT(1) NOT NULL DEFAULT 0,
  last_error TEXT NULL,
  unique_key VARCHAR(191) CHARACTER SET ascii NULL,
  created_by INT UNSIGNED NOT NULL DEFAULT 0,
  date_created DATETIME(3) NOT NULL,
  date_modified DATETIME(3) NOT NULL,
  date_finished DATETIME(3) NULL,
  UNIQUE KEY jobs_unique_key (unique_key),
  KEY jobs_running_lease (state, lease_expires),
  KEY jobs_queue_state (worker, state, id),
  KEY jobs_finished (state, date_finished)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS job_ready (
  worker VARCHAR(32) NOT NULL,
  prank SMALLINT NOT NULL,
  run_at DATETIME(3) NOT NULL,
  job_id BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (worker, prank, run_at, job_id),
  UNIQUE KEY job_ready_job (job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS workers (
  id VARCHAR(96) NOT NULL PRIMARY KEY,
  queue VARCHAR(32) NOT NULL,
  host VARCHAR(64) NOT NULL,
  pid INT UNSIGNED NOT NULL,
  status ENUM('ok','paused','stopping','dead') NOT NULL DEFAULT 'ok',
  desired ENUM('run','pause','stop') NOT NULL DEFAULT 'run',
  current_job BIGINT UNSIGNED NULL,
  done_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
  failed_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
  started DATETIME(3) NOT NULL,
  last_heartbeat DATETIME(3) NOT NULL,
  KEY workers_queue (queue, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What the test job types (noop, sleep with `record`) write when they run, in the same
-- transaction as their completion: the chaos test counts these rows to prove that every
-- job ran to completion exactly once.
CREATE TABLE IF NOT EXISTS job_effects (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  job_id BIGINT UNSIGNED NOT NULL,
  tag VARCHAR(191) NOT NULL,
  attempt INT UNSIGNED NOT NULL,
  created DATETIME(3) NOT NULL,
  UNIQUE KEY job_effects_job (job_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
