-- 007: a scheduled job keeps its schedule's description and cron as they were when the
-- schedule made it. api.md gives a job `schedule` {"id","description","cron"} whenever a
-- schedule made it, but schedules can be deleted (jobs keep schedule_id, with no foreign
-- key), and the job then had nothing to show. While the schedule exists the job shows its
-- current values; after, these. Added at the end of the table: instant, no rebuild.
ALTER TABLE jobs
  ADD COLUMN schedule_description VARCHAR(500) NULL,
  ADD COLUMN schedule_cron VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NULL;
