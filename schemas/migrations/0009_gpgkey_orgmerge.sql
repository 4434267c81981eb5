-- 0009_gpgkey_orgmerge: users' GnuPG keys and organisation merges (issue 5).
-- users.gpgkey (MISP's column, since 0001) holds the armoured public key as given; its
-- fingerprint (computed by the engine's check, engine/gpgkey.c) is kept beside it so that
-- user view and list show it without running GnuPG. logs.org holds the acting user's
-- organisation by name (MISP's shape): org.merge rewrites it, and org admins read their
-- own organisation's rows by it, so it gets an index.

ALTER TABLE users ADD COLUMN IF NOT EXISTS gpgkey_fingerprint VARCHAR(64) CHARACTER SET ascii NULL AFTER gpgkey;

CREATE INDEX IF NOT EXISTS logs_org ON logs (org);
