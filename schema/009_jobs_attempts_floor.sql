-- 009: a retried job starts its fallback walk afresh. POST …/jobs/{id}/retry sets attempts
-- back to 0 but keeps the attempts log, and the runner counted every transient failure the
-- job ever had when it decided to fall through to the next provider: a retried job whose
-- primary had failed twice before skipped it at its second attempt. attempts_floor is the
-- highest job_attempts id when the job was last retried; only the attempts after it count.
-- Added at the end of the table: instant, no rebuild.
ALTER TABLE jobs ADD COLUMN attempts_floor BIGINT UNSIGNED NOT NULL DEFAULT 0;
