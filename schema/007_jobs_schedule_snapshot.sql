-- 007: a scheduled job keeps its schedule's description and cron as they were when the
-- schedule made it. api.md gives a job `schedule` {"id","description","cron"} whenever a
-- schedule made it, but schedules can be deleted (jobs keep schedule_id, with no foreign
-- key), and the job then had nothing to show. While the schedule exists the job shows its
-- current values; after, these. Added at the end of the table: instant, no rebuild.
ALTER TABLE jobs
  ADD COLUMN schedule_description VARCHAR(500) NULL,
  ADD COLUMN schedule_cron VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NULL;
-- The jobs of schedules that exist now get their values too (through jobs_schedule), so a
-- schedule deleted after the upgrade leaves its older jobs named as well. Jobs an old
-- runner fires between this migration and its restart have none: restart the runners
-- right after migrating (INSTALL.md's upgrade steps do).
UPDATE jobs j JOIN schedules s ON s.id = j.schedule_id AND s.workspace_id = j.workspace_id
  SET j.schedule_description = s.description, j.schedule_cron = s.cron
  WHERE j.schedule_cron IS NULL;
