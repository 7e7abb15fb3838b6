-- 006: drop events_created (created_at). It served the pruning alone, and every event paid
-- for it twice (its insert, then its purge). Within a workspace the ids grow with time, so
-- the pruning walks each workspace's events by id (the primary key) instead.
ALTER TABLE events DROP INDEX events_created;
