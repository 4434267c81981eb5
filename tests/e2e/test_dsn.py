"""db_dsn with a percent-encoded password, end to end.

A MariaDB account whose password holds '@', ':', '%', '/', '?' and '#' is reached through
a DSN that percent-encodes them: the engine (--init and serving), a worker's backup job
(mariadb-dump gets the decoded password) and ops/restore --dsn all connect with it, and the
tests' own MariaDB helper reads and writes the same DSN. A '%' that starts no escape is
refused at once with a message that says where, never with the password in it."""

import copy
import secrets
import subprocess
from urllib.parse import quote

import pytest

from conftest import BIN, MariaDB, Stack, clean_env, running
from test_backup import backup, restore

PASSWORD = "p@ss:w%rd/?#x"
# p%40ss%3Aw%zzrd…: the '%' of %zz is the password's 11th character as written
BAD_ESCAPE = "db_dsn: the password has a '%' at character 11 that does not start an escape"


def bad_escape(dsn):
    """dsn with the password's %25 (its '%') made into %zz, an escape that is not one."""
    assert dsn.count("%25") == 1, dsn
    return dsn.replace("%25", "%zz")


def database_exists(m, name):
    admin = m.connect()
    with admin.cursor() as c:
        c.execute("SHOW DATABASES LIKE %s", (name,))
        found = bool(c.fetchall())
    admin.close()
    return found


@pytest.fixture
def encoded_account(mariadb):
    """The session's server as an account whose password needs percent-encoding in a DSN
    (a MariaDB helper for it); the account is dropped at the end."""
    user = "abpw_" + secrets.token_hex(4)
    admin = mariadb.connect()
    with admin.cursor() as c:
        c.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, PASSWORD))
        c.execute(f"GRANT ALL PRIVILEGES ON *.* TO `{user}`@'%'")
    m = copy.copy(mariadb)
    m.user, m.password, m.home = user, PASSWORD, None
    try:
        yield m
    finally:
        with admin.cursor() as c:
            c.execute(f"DROP USER IF EXISTS `{user}`@'%'")
        admin.close()


def test_an_encoded_password_reaches_the_database_everywhere(encoded_account, tmp_path):
    m = encoded_account
    dsn = m.dsn_for("somedb")
    assert f":{quote(PASSWORD, safe='')}@" in dsn and PASSWORD not in dsn
    assert MariaDB(dsn).password == PASSWORD  # the tests' helper reads what it writes

    with running(Stack(m, tmp_path / "home")) as stack:  # engine --init, then serving
        assert stack.ok("auth.whoami")["user"]["email"] == "admin@admin.test"
        stack.ok("org.add", {"name": "Encoded Org"})
        stack.start_worker("default")
        row, archive, _ = backup(stack)  # mariadb-dump with the decoded password
        assert row["state"] == "done", row

        fresh = "r_" + secrets.token_hex(6)
        try:
            # ops/restore reads the DSN with the engine's parser: a bad escape is refused
            # with the engine's message, before anything is made
            r = restore(tmp_path / "refused", archive, "--dsn", bad_escape(m.dsn_for(fresh)))
            assert r.returncode != 0 and BAD_ESCAPE in r.stderr, r.stdout + r.stderr
            assert not (tmp_path / "refused" / "secrets").exists()
            assert not database_exists(m, fresh)
            r = restore(tmp_path / "restored", archive, "--dsn", m.dsn_for(fresh))
            assert r.returncode == 0, r.stdout + r.stderr
            assert PASSWORD not in r.stdout + r.stderr
            db = m.connect(fresh)
            with db.cursor() as c:
                c.execute("SELECT COUNT(*) AS n FROM organisations WHERE name = 'Encoded Org'")
                assert c.fetchone()["n"] == 1
            db.close()
        finally:
            admin = m.connect()
            with admin.cursor() as c:
                c.execute(f"DROP DATABASE IF EXISTS `{fresh}`")
            admin.close()


def test_a_malformed_escape_is_refused_at_once(encoded_account, tmp_path):
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    p = subprocess.run([str(BIN / "adminbus-engine"), "--init"],
                       env=clean_env(ADMINBUS_HOME=home,
                                     ADMINBUS_DB_DSN=bad_escape(
                                         encoded_account.dsn_for("never_made"))),
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr
    assert BAD_ESCAPE in p.stderr and "a % itself is written %25" in p.stderr, p.stderr
    assert "rd/?#" not in p.stderr and "Access denied" not in p.stderr
    assert not database_exists(encoded_account, "never_made")
