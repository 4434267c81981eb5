"""A backup and ops/restore round trip keeps every credential working (issue 5, acceptance
7): a user with a password, a TOTP seed and an authkey is backed up with `adminctl backup`;
the instance goes away; the archive is restored into a fresh home and a fresh database; on
the restored instance the authkey authenticates, the password logs in with a fresh TOTP
code, and an old session still works (server.key came back, so every keyed digest and
sealed seed opens)."""

import pytest

from helpers import assert_error
from test_backup import (RestoredStack, add_user_with_key, backup, fresh_db,  # noqa: F401
                         restore, stop_daemons)
from test_login import GOOD_PW, login, login_ok, with_session
from test_otp_login import totp, totp_step


def test_key_password_and_totp_survive_backup_and_restore(stack, tmp_path, fresh_db):
    stack.start_worker("default")
    key = add_user_with_key(stack, "ident@example.org", role="User")
    stack.ok("user.change_pw", {"user": "ident@example.org", "password": GOOD_PW,
                                "no_password_change": True})
    secret = stack.ok("otp.enrol", {"user": "ident@example.org"})["secret"]
    used = totp_step()
    session = login_ok(stack, "ident@example.org", otp=totp(secret, used))["session"]
    assert stack.ok("auth.whoami", auth=key)["user"]["email"] == "ident@example.org"

    row, archive, _ = backup(stack)
    assert row["state"] == "done", row
    assert secret.encode() not in archive.read_bytes()  # the seed travels sealed only

    stop_daemons(stack)
    home = tmp_path / "restored"
    r = restore(home, archive, "--dsn", stack.mariadb.dsn_for(fresh_db))
    assert r.returncode == 0, r.stdout + r.stderr
    restored = RestoredStack(stack.mariadb, home, stack.key)
    try:
        restored.start()
        # the authkey
        assert restored.ok("auth.whoami", auth=key)["user"]["email"] == "ident@example.org"
        # the session made before the backup
        assert with_session(restored, session, "auth.whoami")["ok"] is True
        # the password with a fresh TOTP code; the code used before the backup stays used
        assert_error(login(restored, "ident@example.org", otp=totp(secret, used)),
                     "unauthenticated", "otp")
        step = max(totp_step(), used + 1)  # within the ±1 window of now
        res = login_ok(restored, "ident@example.org", otp=totp(secret, step))
        assert len(res["session"]) == 64
        assert with_session(restored, res["session"], "auth.whoami")["ok"] is True
        # and a wrong password is still refused
        assert_error(login(restored, "ident@example.org", password="Wrong-Password-9",
                           otp=totp(secret, step + 1)), "unauthenticated")
    finally:
        restored.close()
    if restored.problems:
        pytest.fail("\n\n".join(restored.problems), pytrace=False)
