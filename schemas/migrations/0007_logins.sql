-- 0007_logins: logins (issue 5). Sessions from auth.login, MISP's brute-force table, the
-- addresses each user logged in from (MISP's UserIP / IPUser) and the users' OTP columns.
--
-- sessions: the token is never stored, only its HMAC-SHA-256 under the server secret
-- (digest, as authkeys), so one indexed read authenticates a command. expires is the
-- absolute end (login + Session.cookieTimeout); last_seen (refreshed at most once a minute)
-- against Session.timeout is the idle end. Whether the session is restricted (a password to
-- change, an OTP to set up) is read from the user's row each time, so it lifts by itself.
CREATE TABLE IF NOT EXISTS sessions (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  digest BINARY(32) NOT NULL,
  user_id INT UNSIGNED NOT NULL,
  created DATETIME(3) NOT NULL,
  expires DATETIME(3) NOT NULL,
  last_seen DATETIME(3) NOT NULL,
  ip VARCHAR(45) NULL,
  UNIQUE KEY sessions_digest (digest),
  KEY sessions_user (user_id),
  KEY sessions_expires (expires)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- MISP's bruteforces: one row per failed login (address, the e-mail tried, when it stops
-- counting). SecureAuth.amount live rows for one (ip, username) block that login.
CREATE TABLE IF NOT EXISTS bruteforces (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ip VARCHAR(45) NOT NULL,
  username VARCHAR(255) NOT NULL,
  expire DATETIME(3) NOT NULL,
  KEY bruteforces_login (username, ip, expire),
  KEY bruteforces_expire (expire)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The addresses a user logged in from (successful logins only), for user.ips / user.by_ip.
CREATE TABLE IF NOT EXISTS user_login_ips (
  user_id INT UNSIGNED NOT NULL,
  ip VARCHAR(45) NOT NULL,
  first_seen DATETIME(3) NOT NULL,
  last_seen DATETIME(3) NOT NULL,
  logins BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, ip),
  KEY user_login_ips_ip (ip)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- OTP: totp holds the seed sealed (seal.c, purpose "adminbus otp v1", bound to the user id;
-- MISP's column name, which held base32 in clear there); otp_kind totp or hotp;
-- hotp_counter the next unused HOTP counter (MISP's name); totp_last_step the step of the
-- last accepted TOTP code (-1: none), so a code cannot be replayed.
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp TEXT NULL;
ALTER TABLE users ADD COLUMN IF NOT EXISTS otp_kind VARCHAR(4) CHARACTER SET ascii NULL;
ALTER TABLE users ADD COLUMN IF NOT EXISTS hotp_counter BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_last_step BIGINT NOT NULL DEFAULT -1;

-- The hourly purge of ended sessions and brute-force rows that no longer count.
INSERT IGNORE INTO tasks (type, timer, scheduled_time, description, next_execution_time,
  message, enabled, date_modified) VALUES
  ('logins.purge', 1, '00:05', 'Deletes ended sessions and expired brute-force rows.', UNIX_TIMESTAMP(UTC_TIMESTAMP() + INTERVAL 1 HOUR), 'Scheduled.', 1, UTC_TIMESTAMP(3));
