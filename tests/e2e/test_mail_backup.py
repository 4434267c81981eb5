"""A backup and `ops/restore` round trip keeps the instance key able to sign (issue 6,
acceptance 6).

The instance's GnuPG home (GnuPG.homedir) lies outside ADMINBUS_HOME, as it usually does.
`adminctl backup` archives it as home/gnupg/; the instance goes away, and so does that
folder (and its gpg-agent); `ops/restore` into a fresh home and a fresh database puts the
key back as $ADMINBUS_HOME/gnupg and points GnuPG.homedir there (audited); on the restored
instance `mail test` produces a message whose signature `gpg --verify` accepts with the
instance's key, the passphrase (GnuPG.password, sealed under the server secret) opening
it as before."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import clean_env
from helpers import audit_rows
from test_backup import RestoredStack, backup, fresh_db, restore, stop_daemons  # noqa: F401
from test_mail import configure, header, keys, sink, verify_signed  # noqa: F401


def copy_gnupg_home(src):
    """A copy of a GnuPG home in a fresh short folder (its own gpg-agent), without the
    source's sockets."""
    dst = tempfile.mkdtemp(prefix="abk", dir="/tmp")
    shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#lk*"))
    os.chmod(dst, 0o700)
    return dst


def kill_agent(home):
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], env=clean_env(),
                   check=False, capture_output=True)


def test_the_instance_key_survives_backup_and_restore(stack, sink, keys, tmp_path, fresh_db):
    gnupg = copy_gnupg_home(keys["instance"])
    home = tempfile.mkdtemp(prefix="abr", dir="/tmp")  # short: gpg-agent's socket is in it
    os.rmdir(home)
    restored = None
    try:
        configure(stack, sink, keys)
        stack.ok("setting.set", {"name": "GnuPG.homedir", "value": gnupg})
        assert stack.ok("mail.test", {"to": "ops@mail.test"})["sent"] is True  # it signs now
        stack.start_worker("default")
        row, archive, _ = backup(stack)
        assert row["state"] == "done", row
        with subprocess.Popen(["tar", "-tzf", str(archive)], stdout=subprocess.PIPE) as p:
            names = p.stdout.read().decode().split("\n")
        assert any(n.startswith("home/gnupg/private-keys-v1.d/") for n in names), names
        assert not any(os.path.basename(n).startswith("S.") for n in names), names
        assert b"instance key passphrase" not in archive.read_bytes()

        # The instance goes away, and its GnuPG home with it.
        stop_daemons(stack)
        kill_agent(gnupg)
        shutil.rmtree(gnupg)

        # A home whose gnupg/ holds keys already is not overwritten without --force.
        os.makedirs(home + "/gnupg", mode=0o700)
        Path(home + "/gnupg/pubring.kbx").write_bytes(b"someone else's keys")
        r = restore(home, archive, "--dsn", stack.mariadb.dsn_for(fresh_db))
        assert r.returncode == 1 and "gnupg is not empty" in r.stderr, r.stdout + r.stderr
        assert "--force" in r.stderr
        admin = stack.mariadb.connect()
        with admin.cursor() as c:  # refused before anything was loaded
            assert c.execute("SHOW DATABASES LIKE %s", (fresh_db,)) == 0
        admin.close()
        shutil.rmtree(home + "/gnupg")

        r = restore(home, archive, "--dsn", stack.mariadb.dsn_for(fresh_db))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "GnuPG.homedir => " + home + "/gnupg" in r.stdout, r.stdout
        assert oct(os.stat(home + "/gnupg").st_mode & 0o777) == "0o700"

        restored = RestoredStack(stack.mariadb, Path(home), stack.key)
        restored.start()
        assert restored.ok("setting.get", {"name": "GnuPG.homedir"})["value"] == home + "/gnupg"
        [change] = [a for a in audit_rows(restored, action="serverSettingsEdit")
                    if "restored from backup" in a["title"]]
        assert f"GnuPG.homedir ({gnupg}) => ({home}/gnupg)" == change["change"]

        sent_before = len(sink.messages())
        res = restored.ok("mail.test", {"to": "ops@mail.test"})
        assert res["sent"] is True and res["code"] == 250, res
        [(_, raw)] = sink.messages()[sent_before:]
        assert header(raw, "Message-ID") == res["message_id"]
        verify_signed(keys, raw, tmp_path)  # gpg --verify with the instance's public key
    finally:
        if restored:
            restored.close()
        kill_agent(home + "/gnupg")
        kill_agent(gnupg)
        shutil.rmtree(gnupg, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    if restored and restored.problems:
        pytest.fail("\n\n".join(restored.problems), pytrace=False)
