-- 011: a job that stops its runners fails instead of going round for ever. A rescue (the
-- lease expired: the runner died or lost the database mid-call) counts no attempt, since no
-- outcome was recorded; a job whose call kills every runner that makes it was requeued
-- without end. rescues counts them; the third fails the job. POST …/retry sets it back to 0.
-- Added at the end of the table: instant, no rebuild.
ALTER TABLE jobs ADD COLUMN rescues SMALLINT UNSIGNED NOT NULL DEFAULT 0;
