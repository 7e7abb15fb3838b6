-- 010: idempotency keys compare byte for byte. The column took the table's collation,
-- utf8mb4_unicode_ci, so "AbC", "abc", "abc " and "äbc" were one key: a client sending a
-- second job under a key differing only in case got the first job back (200) and no new
-- one. utf8mb4_nopad_bin compares the bytes, trailing spaces included (utf8mb4_bin would
-- still pad them away). It only makes keys more distinct, so no existing pair can collide.
-- MariaDB rebuilds the unique index jobs_idempotency: 0.25 s per 100,000 jobs measured here,
-- with job writes waiting meanwhile.
ALTER TABLE jobs
  MODIFY idempotency_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL;
