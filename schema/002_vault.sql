-- 002: the key vault. Master keys never enter the database: master_keys holds only an HMAC
-- per id, to refuse a wrong key at start. Data keys are stored wrapped; provider keys are
-- stored as field ciphertexts (see README, "Secrets").

CREATE TABLE master_keys (
  id         VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  check_hmac CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per workspace and data-key version; wrapped = nonce (12) | ciphertext (32) | tag (16).
CREATE TABLE workspace_keys (
  workspace_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  version       INT UNSIGNED NOT NULL,
  master_key_id VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  wrapped       VARBINARY(128) NOT NULL,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  rewrapped_at  DATETIME(3) NULL,
  PRIMARY KEY (workspace_id, version),
  KEY workspace_keys_master (master_key_id),
  CONSTRAINT workspace_keys_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- status holds what was learned; the API shows 'disabled' when is_enabled = 0 and 'expired'
-- past expires_at.
CREATE TABLE provider_keys (
  id                   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workspace_id         CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  provider             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name                 VARCHAR(200) NOT NULL,
  secret               VARBINARY(4200) NOT NULL,
  hint                 VARCHAR(32) NOT NULL,
  fingerprint          CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status               ENUM('untested','valid','invalid','exhausted') NOT NULL DEFAULT 'untested',
  is_enabled           TINYINT(1) NOT NULL DEFAULT 1,
  priority             INT UNSIGNED NOT NULL DEFAULT 0,
  last_error           VARCHAR(500) NULL,
  validated_at         DATETIME(3) NULL,
  last_used_at         DATETIME(3) NULL,
  expires_at           DATETIME(3) NULL,
  consecutive_failures INT UNSIGNED NOT NULL DEFAULT 0,
  cooldown_until       DATETIME(3) NULL,
  created_at           DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at           DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY provider_keys_fp (workspace_id, provider, fingerprint),
  KEY provider_keys_order (workspace_id, provider, priority),
  CONSTRAINT provider_keys_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- fallback_chain: JSON array of provider ids; models: JSON object provider -> model;
-- base_urls: JSON object provider -> base URL (openai_compatible, from the instance allowlist).
CREATE TABLE provider_settings (
  workspace_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  primary_provider  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  fallback_chain    LONGTEXT NOT NULL DEFAULT '[]' CHECK (JSON_VALID(fallback_chain)),
  models            LONGTEXT NOT NULL DEFAULT '{}' CHECK (JSON_VALID(models)),
  base_urls         LONGTEXT NOT NULL DEFAULT '{}' CHECK (JSON_VALID(base_urls)),
  allow_system_keys TINYINT(1) NOT NULL DEFAULT 0,
  updated_at        DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (workspace_id),
  CONSTRAINT provider_settings_ws_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
