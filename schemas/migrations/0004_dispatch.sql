-- 0004_dispatch: direct hand-over of a job to an idle worker (issue 3, pick-up latency).
-- A worker that found nothing to claim says so (idle = 1); an enqueue that finds such a
-- worker of its queue gives it the job at once, leased to it, instead of the ready set,
-- and notifies it: the worker then starts without a claim transaction of its own.
-- Re-runnable, as every migration is.
ALTER TABLE workers
  ADD COLUMN IF NOT EXISTS idle TINYINT(1) NOT NULL DEFAULT 0 AFTER desired,
  ADD KEY IF NOT EXISTS workers_idle (queue, idle, status);
