"""The broker's CURVE keys travel with a backup: after `ops/restore` into a fresh home the
restored broker has the same server key (clients keep their ADMINBUS_CURVE_SERVERKEY),
the same allowed clients and the daemons' internal pair, with their modes; a home that
already has a different server key is refused without --force, before anything is
loaded."""

import os
import stat
import subprocess
import tempfile
from pathlib import Path

from test_backup import backup, fresh_db, restore, stop_daemons, wait_job  # noqa: F401
from test_curve import cstack  # noqa: F401

FILES = ("server.key", "server.pub", "internal.key", "allowed_clients")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def backup_job(stack):
    """The backup job through the bus (adminctl would need the CURVE client settings)."""
    stack.start_worker("default")
    res = stack.ok("backup.run", {})
    row = wait_job(stack, res["id"])
    assert row["state"] == "done", row
    name = row["message"].split("backups/", 1)[1].split()[0]
    return stack.home / "backups" / name


def test_curve_keys_survive_backup_and_restore(cstack, fresh_db):
    src = cstack.home / "curve"
    server_pub = cstack.server_key()
    archive = backup_job(cstack)
    names = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True,
                           check=True).stdout.split()
    for f in FILES:
        assert "home/curve/" + f in names, names
    before = {f: (src / f).read_bytes() for f in FILES}
    modes = {f: mode(src / f) for f in FILES}
    stop_daemons(cstack)

    home = Path(tempfile.mkdtemp(prefix="abc", dir="/tmp"))
    try:
        # a different server key in the target: refused, nothing loaded
        (home / "curve").mkdir(mode=0o700)
        (home / "curve" / "server.key").write_text("another broker's key\n")
        r = restore(home, archive, "--dsn", cstack.mariadb.dsn_for(fresh_db))
        assert r.returncode == 1 and "different CURVE server key" in r.stderr, r.stderr
        assert "--force" in r.stderr
        admin = cstack.mariadb.connect()
        with admin.cursor() as c:
            assert c.execute("SHOW DATABASES LIKE %s", (fresh_db,)) == 0
        admin.close()
        (home / "curve" / "server.key").unlink()

        r = restore(home, archive, "--dsn", cstack.mariadb.dsn_for(fresh_db))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "curve     the broker's CURVE keys" in r.stdout, r.stdout
        dst = home / "curve"
        assert mode(dst) == 0o700
        for f in FILES:
            assert (dst / f).read_bytes() == before[f], f
            assert mode(dst / f) == modes[f], f
        assert server_pub in (dst / "server.pub").read_bytes()
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)
