-- 0004_supervisors: worker management (issue 3). A supervisor (adminbus-supervisor, one per
-- host) starts the workers of its host, restarts the ones that die, and carries out what the
-- engine asks of it through `supervisor_requests` (start a worker, kill one). Its row in
-- `supervisors`, kept fresh by a heartbeat every second, is how the engine knows that a host
-- has a live supervisor (alive = status 'ok' and a heartbeat under 10 s old).
--
-- workers: `supervisor` names the supervisor that started the worker (NULL: started by
-- hand), `grace_s` is the worker's worker_grace_s (how long a cancelled or stopping handler
-- may take before `worker cleanup` may force it), and `desired` gains 'restart' (stop like
-- SIGTERM does, then the supervisor starts a replacement). jobs: `cancel_requested_at` is
-- when job.cancel asked a running job to stop, so that cleanup can tell when its grace ends.

CREATE TABLE IF NOT EXISTS supervisors (
  id VARCHAR(96) NOT NULL PRIMARY KEY,
  host VARCHAR(64) NOT NULL,
  pid INT UNSIGNED NOT NULL,
  status ENUM('ok','stopping','dead') NOT NULL DEFAULT 'ok',
  workers VARCHAR(255) NOT NULL DEFAULT '',
  children INT UNSIGNED NOT NULL DEFAULT 0,
  started DATETIME(3) NOT NULL,
  last_heartbeat DATETIME(3) NOT NULL,
  KEY supervisors_host (host, last_heartbeat)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What the engine asks the supervisor of a host to do. Addressed to the host (one supervisor
-- runs per host at a time: a MariaDB named lock), so a supervisor started again after a crash
-- finds what its predecessor did not get to. `replace_it`: after a kill, start a replacement.
CREATE TABLE IF NOT EXISTS supervisor_requests (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  host VARCHAR(64) NOT NULL,
  action ENUM('start','kill') NOT NULL,
  queue VARCHAR(32) NULL,
  worker VARCHAR(96) NULL,
  pid INT UNSIGNED NULL,
  replace_it TINYINT(1) NOT NULL DEFAULT 0,
  state ENUM('pending','done','failed') NOT NULL DEFAULT 'pending',
  result VARCHAR(255) NULL,
  supervisor VARCHAR(96) NULL,
  requested_by INT UNSIGNED NOT NULL DEFAULT 0,
  created DATETIME(3) NOT NULL,
  finished DATETIME(3) NULL,
  KEY supervisor_requests_pending (host, state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE workers
  ADD COLUMN IF NOT EXISTS supervisor VARCHAR(96) NULL,
  ADD COLUMN IF NOT EXISTS grace_s INT UNSIGNED NOT NULL DEFAULT 30,
  MODIFY desired ENUM('run','pause','stop','restart') NOT NULL DEFAULT 'run';

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancel_requested_at DATETIME(3) NULL;
