-- 0010_mail: one row per recipient of a mail-out job (issue 6). The `email` job sends to
-- the rows of its job that are not finished, in id order, recording each one's state in its
-- own short transaction, so a worker killed half-way leaves every row either finished or
-- still to send: the next attempt skips nobody. A row left 'sending' by a crash is sent
-- again with the same Message-ID (job id and address decide it), so a duplicate that
-- slipped through between the server's acceptance and our record is recognisable.
--
-- state: queued (not tried), sending (handed to the SMTP server, outcome not yet recorded),
-- sent, retrying (a temporary failure: the job retries with back-off), failed (a permanent
-- failure, or the last attempt failed; error says why: the server's reply or GnuPG's).
-- The message text is in the job's payload, keys stay with the users. The one secret is
-- the temporary password of a password-reset or welcome message: from 'sending' until the
-- outcome is recorded it is kept sealed (AES-256-GCM under the server key, purpose
-- "adminbus mail v1", bound to the row's id) in secret_sealed, so a message re-sent after a
-- crash carries the same password; it is cleared when the row is sent or failed.

CREATE TABLE IF NOT EXISTS email_recipients (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  job_id BIGINT UNSIGNED NOT NULL,
  user_id INT UNSIGNED NULL,
  email VARCHAR(255) NOT NULL,
  state ENUM('queued', 'sending', 'sent', 'retrying', 'failed') NOT NULL DEFAULT 'queued',
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  encrypted TINYINT(1) NOT NULL DEFAULT 0,
  message_id VARCHAR(255) NULL,
  smtp_code SMALLINT UNSIGNED NULL,
  error TEXT NULL,
  secret_sealed TEXT NULL,
  date_created DATETIME(3) NOT NULL,
  date_modified DATETIME(3) NOT NULL,
  date_sent DATETIME(3) NULL,
  UNIQUE KEY email_recipients_job_email (job_id, email),
  KEY email_recipients_job_state (job_id, state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
