-- 0012_mail_future: a mail-out recipient that is not (yet) a user (adminctl contact --future
-- ADDRESS --gpgkey-file KEY.asc, issue 6) has no users row to read a key from: the key given
-- with the command is kept on the recipient's row (checked on entry as user edit --gpgkey
-- checks it, and again when the message is encrypted). NULL for users' rows: their key is
-- read from users.gpgkey at send time.

ALTER TABLE email_recipients ADD COLUMN IF NOT EXISTS gpgkey MEDIUMTEXT NULL AFTER email;
