-- 001: accounts, sessions, workspaces, memberships, API tokens, audit log, runners.
-- Ids are UUIDs made by the application (CHAR(36), ascii). Times are DATETIME(3) in UTC:
-- every connection sets time_zone '+00:00'. Statements end with ';' at the end of a line.

CREATE TABLE users (
  id                CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  email             VARCHAR(254) COLLATE utf8mb4_bin NOT NULL,
  name              VARCHAR(200) NOT NULL,
  password_hash     VARCHAR(160) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  is_instance_admin TINYINT(1) NOT NULL DEFAULT 0,
  created_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A session is known by the SHA-256 of its cookie value only.
CREATE TABLE sessions (
  id_hash      CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at   DATETIME(3) NOT NULL,
  last_seen_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  ip           VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (id_hash),
  KEY sessions_user (user_id),
  CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE workspaces (
  id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  slug       VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name       VARCHAR(200) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY workspaces_slug (slug)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE memberships (
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  role         ENUM('admin','member','viewer') NOT NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (workspace_id, user_id),
  KEY memberships_user (user_id),
  CONSTRAINT memberships_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE,
  CONSTRAINT memberships_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A token is known by the SHA-256 of its secret; prefix is the start of the secret for display.
CREATE TABLE api_tokens (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name         VARCHAR(200) NOT NULL,
  role         ENUM('admin','member','viewer') NOT NULL,
  token_hash   CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  prefix       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_by   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  last_used_at DATETIME(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY api_tokens_hash (token_hash),
  KEY api_tokens_ws (workspace_id, created_at),
  CONSTRAINT api_tokens_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Failed logins per e-mail and per address ("e:"/"a:" + value, hashed), for throttling.
CREATE TABLE login_failures (
  key_hash     CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  failures     INT UNSIGNED NOT NULL DEFAULT 0,
  window_start DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (key_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Never a secret in detail: ids, names, outcomes only.
CREATE TABLE audit_log (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  workspace_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  at           DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  actor_type   ENUM('user','token','runner','system') NOT NULL,
  actor_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
  actor_label  VARCHAR(254) NULL,
  action       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target       VARCHAR(255) NULL,
  detail       LONGTEXT NULL CHECK (detail IS NULL OR JSON_VALID(detail)),
  ip           VARCHAR(45) CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (id),
  KEY audit_ws (workspace_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE runners (
  id           CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name         VARCHAR(200) NOT NULL,
  pid          INT UNSIGNED NOT NULL,
  version      VARCHAR(32) NOT NULL,
  started_at   DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  heartbeat_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  stopped_at   DATETIME(3) NULL,
  PRIMARY KEY (id),
  KEY runners_heartbeat (heartbeat_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
