-- 0005_settings: the values of the server settings (schemas/settings.c is the catalog of
-- what may be stored here, with types, defaults and validation). A row exists only for a
-- setting that was set; the others take their default. Values are canonical text
-- (true/false, decimal integers, text); secret settings hold "enc:v1:" and the AES-256-GCM
-- sealed value (key derived from the server secret), never the clear text.
-- MISP.host_org_id is not stored here: it stays in admin_settings.host_org_id.

CREATE TABLE IF NOT EXISTS settings (
  name VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  value MEDIUMTEXT NOT NULL,
  forced TINYINT(1) NOT NULL DEFAULT 0,
  modified_by INT UNSIGNED NOT NULL DEFAULT 0,
  date_modified DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row: bumped by every change, so that engines and workers re-read the values only
-- when they changed (one primary-key read per batch).
CREATE TABLE IF NOT EXISTS settings_version (
  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  version BIGINT UNSIGNED NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO settings_version (id, version) VALUES (1, 1);

-- The instance's identity towards other instances, made once.
INSERT IGNORE INTO settings (name, value, forced, modified_by, date_modified)
VALUES ('MISP.uuid', LOWER(UUID()), 0, 0, UTC_TIMESTAMP(3));
