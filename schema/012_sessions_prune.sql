-- 012: expired sessions and spent login counters are deleted (by each runner, with the
-- events). Nothing deleted them: a session row, with the client's address, stayed for good
-- after it expired, and every address or e-mail ever tried kept a login_failures row.
-- These indexes let the deletes find them without reading the tables; both are built in
-- place, the tables stay writable meanwhile.
ALTER TABLE sessions ADD KEY sessions_expires (expires_at);
ALTER TABLE login_failures ADD KEY login_failures_window (window_start);
