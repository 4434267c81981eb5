-- 0013_text_limits: columns that hold what the catalog accepts (docs/architecture.md, "Text
-- limits: characters, and columns that hold them").
--
-- The catalog counts lengths in characters, as MISP's users think of them; a utf8mb4
-- character takes up to 4 bytes. TEXT holds 65,535 bytes, so an organisation's description
-- or contacts of 65,535 characters (the catalog's limit) did not fit once they held more
-- than ASCII: 40,000 x U+00E9 failed with error 1366 (strict mode's "incorrect string
-- value", when the cut falls inside a character) and 30,000 x U+20AC with 1406 ("data too
-- long"). MEDIUMTEXT (16 MiB) holds 65,535 characters of any kind. VARCHAR(n) counts
-- characters already, and each one the catalog writes into is at least as wide as its limit.
--
-- jobs.unique_key was ASCII and case-insensitive: a key with U+00E9 failed with error 1267
-- (a collation mix) and "Nightly" found the job of "NIGHTLY". Keys are UTF-8 and compared
-- byte for byte: utf8mb4_nopad_bin, a binary collation that, unlike utf8mb4_bin, does not
-- ignore trailing spaces either. 191 characters x 4 bytes stay within InnoDB's 3072-byte
-- index limit; the unique index stays.
--
-- Names that identify something compare with utf8mb4_unicode_520_ci instead of
-- utf8mb4_unicode_ci: still case- and accent-insensitive, as MISP's are ("CIRCL" and
-- "circl" are one organisation), but the older collation gives every character beyond
-- U+FFFF (emoji, CJK extension B, ...) one and the same weight, so "ACME" + U+1F34E and
-- "ACME" + U+1F34F were one name: the second was refused as a duplicate, and deleting the
-- second deleted the first. The 5.2 rules weigh them apart. Changed: the unique names and
-- e-mail logins, the audit log's acting organisation (org.merge renames it, org admins read
-- their rows by it) and e-mail, the brute-force rows' e-mail, the mail-out recipients'.
--
-- Each column states its character set: the tables already default to utf8mb4, but MODIFY
-- rewrites the whole definition, and a database created by someone else may default to
-- another. Re-runnable: MODIFY to the same definition changes nothing.

ALTER TABLE organisations
  MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL,
  MODIFY description MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL,
  MODIFY contacts MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;

ALTER TABLE jobs
  MODIFY unique_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL;

ALTER TABLE roles
  MODIFY name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL;

ALTER TABLE users
  MODIFY email VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL;

ALTER TABLE logs
  MODIFY email VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT '',
  MODIFY org VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT 'SYSTEM';

ALTER TABLE bruteforces
  MODIFY username VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL;

ALTER TABLE email_recipients
  MODIFY email VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL;
