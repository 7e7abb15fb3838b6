-- 008: audit entries get a UUID. api.md: "Ids are opaque strings (UUIDs)", but an entry's
-- id was the row number. The number stays the primary key and the list's cursor (it orders
-- the trail); uid is what the API calls the entry's id. Every insert, old binaries' too,
-- gets one from the default. MariaDB gives each existing row its own value only by copying
-- the table (0.4 s per 100,000 rows measured here), during which audit_log takes no writes:
-- with a large trail, migrate in a quiet hour.
ALTER TABLE audit_log
  ADD COLUMN uid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT (UUID());
