-- 004: drop jobs_runner. Its one reader was the runner's "which jobs do I still hold" check,
-- which asked for every job carrying the runner's id; succeeded jobs keep runner_id, so a
-- long-lived runner read every job it had ever run, twice a second. The check now looks up
-- the jobs it flies by id (primary key), and the index only cost an update per claim.
ALTER TABLE jobs DROP INDEX jobs_runner;
