-- 0003_tasks: scheduled tasks (issue 3). MISP's `tasks` columns (type, timer = frequency in
-- hours with 0 = once, scheduled_time "HH:MM", process_id, description,
-- next_execution_time, message) plus what the scheduler needs: enabled, the last firing
-- (last_run, last_job_id) and date_modified.
--
-- next_execution_time stays as MISP has it: unix seconds (UTC), 0 = not scheduled. It is
-- BIGINT rather than MISP's int(11) so that it survives 2038. A task fires when it is
-- enabled, its job type exists in the build, and 0 < next_execution_time <= now. Each firing
-- enqueues a job with unique_key "task:<id>:<due time, ISO 8601 UTC>", so two schedulers
-- (split brain) cannot fire one due run twice.
--
-- The seeds: MISP's default tasks (ids 1-5, as MISP numbers them) and our retention tasks.
-- A task is enabled only when its job type exists: MISP's five have none yet, so they are
-- listed, disabled and say why. The retention tasks run daily at 03:00 and 03:30 UTC.

CREATE TABLE IF NOT EXISTS tasks (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  type VARCHAR(100) NOT NULL,
  timer INT UNSIGNED NOT NULL DEFAULT 0,
  scheduled_time VARCHAR(8) NOT NULL DEFAULT '12:00',
  process_id VARCHAR(32) NULL,
  description VARCHAR(255) NOT NULL DEFAULT '',
  next_execution_time BIGINT UNSIGNED NOT NULL DEFAULT 0,
  message VARCHAR(255) NOT NULL DEFAULT 'Not scheduled yet.',
  enabled TINYINT(1) NOT NULL DEFAULT 0,
  last_run DATETIME(3) NULL,
  last_job_id BIGINT UNSIGNED NULL,
  date_modified DATETIME(3) NOT NULL,
  UNIQUE KEY tasks_type (type),
  KEY tasks_due (enabled, next_execution_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO tasks (id, type, timer, scheduled_time, description, next_execution_time,
  message, enabled, date_modified) VALUES
  (1, 'cache_exports', 0, '12:00', 'Generates export caches for every export type that is set to be cached.', 0, 'Disabled: no job type cache_exports in this build yet.', 0, UTC_TIMESTAMP(3)),
  (2, 'pull_all', 0, '12:00', 'Initiates a full pull for all eligible instances.', 0, 'Disabled: no job type pull_all in this build yet.', 0, UTC_TIMESTAMP(3)),
  (3, 'push_all', 0, '12:00', 'Initiates a full push for all eligible instances.', 0, 'Disabled: no job type push_all in this build yet.', 0, UTC_TIMESTAMP(3)),
  (4, 'cache_feeds', 0, '12:00', 'Initiates the caching of all feeds.', 0, 'Disabled: no job type cache_feeds in this build yet.', 0, UTC_TIMESTAMP(3)),
  (5, 'fetch_feeds', 0, '12:00', 'Initiates the fetching of all feeds.', 0, 'Disabled: no job type fetch_feeds in this build yet.', 0, UTC_TIMESTAMP(3)),
  (6, 'jobs.purge', 24, '03:00', 'Deletes finished jobs older than 30 days.', UNIX_TIMESTAMP(TIMESTAMP(UTC_DATE() + INTERVAL 1 DAY, '03:00')), 'Scheduled.', 1, UTC_TIMESTAMP(3)),
  (7, 'commands.purge', 24, '03:30', 'Deletes stored command ids older than command_retention_days.', UNIX_TIMESTAMP(TIMESTAMP(UTC_DATE() + INTERVAL 1 DAY, '03:30')), 'Scheduled.', 1, UTC_TIMESTAMP(3));
