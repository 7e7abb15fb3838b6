-- 003: chats, jobs and their attempts (which are also the usage rows), schedules, events,
-- model prices. See design.md, "Job lifecycle" and "Events and server-sent events".

-- The next event id of each workspace, taken under the workspace row lock in the same
-- transaction as the event, so readers never skip an id that commits late.
ALTER TABLE workspaces ADD COLUMN event_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- Provider calls in flight per runner, reported with each heartbeat (for /metrics).
ALTER TABLE runners ADD COLUMN in_flight INT UNSIGNED NOT NULL DEFAULT 0;

CREATE TABLE chats (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  title        VARCHAR(200) NOT NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY chats_ws (workspace_id, created_at),
  CONSTRAINT chats_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- job_id is UNIQUE: an answer is delivered at most once, whatever happens to runners.
CREATE TABLE messages (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  chat_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  direction    ENUM('in','out') NOT NULL,
  sender       VARCHAR(254) NOT NULL,
  content      MEDIUMTEXT NOT NULL,
  job_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY messages_job (job_id),
  KEY messages_chat (chat_id, created_at, id),
  CONSTRAINT messages_chat_fk FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE schedules (
  id             CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  description    VARCHAR(500) NOT NULL,
  cron           VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  timezone       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  input          MEDIUMTEXT NOT NULL,
  chat_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  system_prompt  MEDIUMTEXT NULL,
  enabled        TINYINT(1) NOT NULL DEFAULT 1,
  next_run_at    DATETIME(3) NULL,
  last_run_at    DATETIME(3) NULL,
  created_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY schedules_ws (workspace_id, created_at),
  KEY schedules_due (enabled, next_run_at),
  CONSTRAINT schedules_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE,
  CONSTRAINT schedules_chat_fk FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per fire: the primary key makes a second runner's insert for the same slot fail.
CREATE TABLE schedule_fires (
  schedule_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  fire_time   DATETIME(3) NOT NULL,
  job_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (schedule_id, fire_time),
  CONSTRAINT schedule_fires_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- claimable mirrors status IN ('queued','retrying') so the claim's WHERE ... ORDER BY ...
-- LIMIT ... FOR UPDATE SKIP LOCKED walks one index (jobs_claim) and locks only what it takes.
CREATE TABLE jobs (
  id                 CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type               ENUM('chat','task','scheduled') NOT NULL,
  status             ENUM('queued','running','retrying','succeeded','failed','cancelled')
                     NOT NULL DEFAULT 'queued',
  claimable          TINYINT(1) AS (status IN ('queued','retrying')) PERSISTENT,
  input              MEDIUMTEXT NOT NULL,
  chat_id            CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  system_prompt      MEDIUMTEXT NULL,
  schedule_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  priority           INT NOT NULL DEFAULT 0,
  attempts           INT UNSIGNED NOT NULL DEFAULT 0,
  max_attempts       INT UNSIGNED NOT NULL DEFAULT 5,
  run_at             DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  started_at         DATETIME(3) NULL,
  finished_at        DATETIME(3) NULL,
  delivered_at       DATETIME(3) NULL,
  requested_provider VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  requested_model    VARCHAR(128) NULL,
  provider           VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  model              VARCHAR(128) NULL,
  key_id             CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  used_fallback      TINYINT(1) NOT NULL DEFAULT 0,
  result             MEDIUMTEXT NULL,
  error              TEXT NULL,
  input_tokens       BIGINT NOT NULL DEFAULT 0,
  output_tokens      BIGINT NOT NULL DEFAULT 0,
  cost_usd           DECIMAL(14,6) NOT NULL DEFAULT 0,
  idempotency_key    VARCHAR(200) NULL,
  lease_token        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  lease_expires_at   DATETIME(3) NULL,
  runner_id          CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_by         VARCHAR(254) NULL,
  created_at         DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at         DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY jobs_idempotency (workspace_id, idempotency_key),
  KEY jobs_claim (claimable, priority DESC, run_at),
  KEY jobs_ws (workspace_id, created_at, id),
  KEY jobs_chat (chat_id),
  KEY jobs_schedule (schedule_id),
  KEY jobs_running (status, lease_expires_at),
  KEY jobs_runner (runner_id),
  CONSTRAINT jobs_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every provider call: the attempts log of a job and the usage rows of the Usage API.
CREATE TABLE job_attempts (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  job_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempt       INT UNSIGNED NOT NULL,
  provider      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  key_id        CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  system_key    TINYINT(1) NOT NULL DEFAULT 0,
  model         VARCHAR(128) NOT NULL,
  is_fallback   TINYINT(1) NOT NULL DEFAULT 0,
  started_at    DATETIME(3) NOT NULL,
  finished_at   DATETIME(3) NOT NULL,
  outcome       ENUM('ok','auth','quota','rate','transient','request','cancelled') NOT NULL,
  http_status   INT NULL,
  error         VARCHAR(600) NULL,
  input_tokens  BIGINT NOT NULL DEFAULT 0,
  output_tokens BIGINT NOT NULL DEFAULT 0,
  cost_usd      DECIMAL(14,6) NOT NULL DEFAULT 0,
  latency_ms    INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY job_attempts_job (job_id, attempt),
  KEY job_attempts_usage (workspace_id, started_at),
  KEY job_attempts_time (started_at),
  CONSTRAINT job_attempts_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Prices in USD per million tokens; editable. A model without a row costs 0.
CREATE TABLE model_prices (
  provider        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  model           VARCHAR(128) NOT NULL,
  input_per_mtok  DECIMAL(12,6) NOT NULL,
  output_per_mtok DECIMAL(12,6) NOT NULL,
  updated_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (provider, model)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO model_prices (provider, model, input_per_mtok, output_per_mtok) VALUES
  ('anthropic', 'claude-sonnet-4-5-20250929', 3.000000, 15.000000),
  ('openai', 'gpt-4o-mini', 0.150000, 0.600000),
  ('google', 'gemini-2.5-flash', 0.300000, 2.500000),
  ('zai', 'glm-5', 1.000000, 3.200000),
  ('moonshot', 'moonshot-v1-8k', 0.200000, 2.000000);

-- The source of the event streams: (workspace, seq) is the SSE event id.
CREATE TABLE events (
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq          BIGINT UNSIGNED NOT NULL,
  type         VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payload      MEDIUMTEXT NOT NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (workspace_id, seq),
  KEY events_created (created_at),
  CONSTRAINT events_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Telegram targets of a workspace; the bot token is sealed like a provider key.
CREATE TABLE notification_targets (
  id                CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type              ENUM('telegram') NOT NULL,
  chat_ref          VARCHAR(64) NOT NULL,
  secret            VARBINARY(1024) NOT NULL,
  hint              VARCHAR(32) NOT NULL,
  is_enabled        TINYINT(1) NOT NULL DEFAULT 1,
  last_error        VARCHAR(500) NULL,
  last_delivered_at DATETIME(3) NULL,
  created_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY notification_targets_ws (workspace_id),
  CONSTRAINT notification_targets_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Answers waiting to go to notification targets, retried on their own schedule.
CREATE TABLE notification_outbox (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  target_id    CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  job_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  text         MEDIUMTEXT NOT NULL,
  attempts     INT UNSIGNED NOT NULL DEFAULT 0,
  next_try_at  DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  delivered_at DATETIME(3) NULL,
  last_error   VARCHAR(500) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY notification_outbox_once (target_id, job_id),
  KEY notification_outbox_due (delivered_at, next_try_at),
  CONSTRAINT notification_outbox_target_fk FOREIGN KEY (target_id)
    REFERENCES notification_targets (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
