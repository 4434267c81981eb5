-- 0001_init: the walking skeleton's tables. Names and columns follow MISP's own where a
-- MISP administrator would look for them (organisations, users, roles, logs); times are
-- UTC DATETIME(3). Each statement ends with ';' at the end of a line (the embedder splits there).

CREATE TABLE IF NOT EXISTS schema_versions (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  applied DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Instance facts that are not user settings (MISP keeps db_version here; we keep host_org_id).
CREATE TABLE IF NOT EXISTS admin_settings (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  setting VARCHAR(255) NOT NULL,
  value TEXT NOT NULL,
  UNIQUE KEY admin_settings_setting (setting)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS organisations (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  uuid CHAR(36) CHARACTER SET ascii NOT NULL,
  description TEXT NULL,
  type VARCHAR(255) NULL,
  nationality VARCHAR(255) NULL,
  sector VARCHAR(255) NULL,
  created_by INT UNSIGNED NOT NULL DEFAULT 0,
  contacts TEXT NULL,
  local TINYINT(1) NOT NULL DEFAULT 1,
  date_created DATETIME(3) NOT NULL,
  date_modified DATETIME(3) NOT NULL,
  UNIQUE KEY organisations_name (name),
  UNIQUE KEY organisations_uuid (uuid),
  KEY organisations_local_name (local, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS roles (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  perm_add TINYINT(1) NOT NULL DEFAULT 0,
  perm_modify TINYINT(1) NOT NULL DEFAULT 0,
  perm_modify_org TINYINT(1) NOT NULL DEFAULT 0,
  perm_publish TINYINT(1) NOT NULL DEFAULT 0,
  perm_delegate TINYINT(1) NOT NULL DEFAULT 0,
  perm_sync TINYINT(1) NOT NULL DEFAULT 0,
  perm_admin TINYINT(1) NOT NULL DEFAULT 0,
  perm_audit TINYINT(1) NOT NULL DEFAULT 0,
  perm_auth TINYINT(1) NOT NULL DEFAULT 0,
  perm_site_admin TINYINT(1) NOT NULL DEFAULT 0,
  perm_regexp_access TINYINT(1) NOT NULL DEFAULT 0,
  perm_tagger TINYINT(1) NOT NULL DEFAULT 0,
  perm_template TINYINT(1) NOT NULL DEFAULT 0,
  perm_sharing_group TINYINT(1) NOT NULL DEFAULT 0,
  perm_tag_editor TINYINT(1) NOT NULL DEFAULT 0,
  default_role TINYINT(1) NOT NULL DEFAULT 0,
  created DATETIME(3) NOT NULL,
  modified DATETIME(3) NOT NULL,
  UNIQUE KEY roles_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  org_id INT UNSIGNED NOT NULL,
  role_id INT UNSIGNED NOT NULL,
  password VARCHAR(255) NULL,
  disabled TINYINT(1) NOT NULL DEFAULT 0,
  autoalert TINYINT(1) NOT NULL DEFAULT 0,
  contactalert TINYINT(1) NOT NULL DEFAULT 0,
  termsaccepted TINYINT(1) NOT NULL DEFAULT 0,
  change_pw TINYINT(1) NOT NULL DEFAULT 0,
  nids_sid INT UNSIGNED NOT NULL DEFAULT 0,
  gpgkey LONGTEXT NULL,
  last_login DATETIME(3) NULL,
  date_created DATETIME(3) NOT NULL,
  date_modified DATETIME(3) NOT NULL,
  UNIQUE KEY users_email (email),
  KEY users_org (org_id),
  KEY users_role (role_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS auth_keys (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id INT UNSIGNED NOT NULL,
  digest BINARY(32) NOT NULL,
  authkey_start CHAR(4) CHARACTER SET ascii NOT NULL,
  authkey_end CHAR(4) CHARACTER SET ascii NOT NULL,
  expiration DATETIME(3) NULL,
  read_only TINYINT(1) NOT NULL DEFAULT 0,
  allowed_ips TEXT NULL,
  comment TEXT NULL,
  created DATETIME(3) NOT NULL,
  UNIQUE KEY auth_keys_digest (digest),
  KEY auth_keys_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS logs (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  title VARCHAR(255) NOT NULL DEFAULT '',
  created DATETIME(3) NOT NULL,
  model VARCHAR(80) NOT NULL DEFAULT '',
  model_id BIGINT UNSIGNED NOT NULL DEFAULT 0,
  action VARCHAR(32) NOT NULL DEFAULT '',
  user_id INT UNSIGNED NOT NULL DEFAULT 0,
  `change` MEDIUMTEXT NULL,
  email VARCHAR(255) NOT NULL DEFAULT '',
  org VARCHAR(255) NOT NULL DEFAULT 'SYSTEM',
  description TEXT NULL,
  ip VARCHAR(45) NULL,
  KEY logs_model_action (model, action),
  KEY logs_action (action),
  KEY logs_created (created)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS command_ids (
  user_id INT UNSIGNED NOT NULL,
  cmd_id CHAR(36) CHARACTER SET ascii NOT NULL,
  digest BINARY(32) NOT NULL,
  reply MEDIUMBLOB NOT NULL,
  created DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, cmd_id),
  KEY command_ids_created (created)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO roles (id, name, perm_add, perm_modify, perm_modify_org, perm_publish,
  perm_delegate, perm_sync, perm_admin, perm_audit, perm_auth, perm_site_admin,
  perm_regexp_access, perm_tagger, perm_template, perm_sharing_group, perm_tag_editor,
  default_role, created, modified)
VALUES
  (1, 'admin',      1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)),
  (2, 'Org Admin',  1,1,1,1,1,0,1,1,1,0,0,1,1,1,0, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)),
  (3, 'User',       1,1,1,0,0,0,0,0,1,0,0,0,0,0,0, 1, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)),
  (4, 'Publisher',  1,1,1,1,1,0,0,1,1,0,0,1,0,0,0, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)),
  (5, 'Sync user',  1,1,1,1,1,1,0,1,1,0,0,1,0,1,0, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3)),
  (6, 'Read Only',  0,0,0,0,0,0,0,1,1,0,0,0,0,0,0, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3));
