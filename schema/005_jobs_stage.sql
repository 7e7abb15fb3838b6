-- 005: one index over a job's whole life instead of two.
--
-- Claims walked jobs_claim (claimable, priority, run_at) and rescues jobs_running (status,
-- lease_expires_at), so a claim changed an entry in both and a job wrote three index
-- entries of the two in its life, each also to be purged later. jobs_stage serves both, and
-- /metrics' counts by status, with three columns computed from the others:
--   stage      1 due (queued or retrying), 2 running, 3 succeeded, 4 failed, 5 cancelled;
--   queue_rank the priority while due, 0 otherwise (so the running jobs sort by due_at alone);
--   due_at     run_at, or while running the lease's expiry.
-- Claims read stage 1 by rank and due_at, rescues the range of stage 2 whose due_at is past.
-- A job changes its entry once per step: claim, heartbeat, finish.
--
-- The ALTER rebuilds jobs and keeps it read-only meanwhile (InnoDB cannot add stored
-- generated columns in place): on a large table, run it in a quiet hour.
ALTER TABLE jobs
  DROP INDEX jobs_claim,
  DROP INDEX jobs_running,
  DROP COLUMN claimable,
  ADD COLUMN stage TINYINT UNSIGNED AS (CASE status WHEN 'queued' THEN 1 WHEN 'retrying' THEN 1
    WHEN 'running' THEN 2 WHEN 'succeeded' THEN 3 WHEN 'failed' THEN 4 ELSE 5 END) PERSISTENT,
  ADD COLUMN queue_rank INT AS (IF(status IN ('queued', 'retrying'), priority, 0)) PERSISTENT,
  ADD COLUMN due_at DATETIME(3) AS (IF(status = 'running', lease_expires_at, run_at))
    PERSISTENT,
  ADD KEY jobs_stage (stage, queue_rank DESC, due_at);
