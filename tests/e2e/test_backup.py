"""`adminctl backup` (the `backup` job) and `ops/restore` (issue 3, acceptance 6).

A backup of a real stack, restored into a fresh ADMINBUS_HOME with its own private MariaDB
(ops/db) or into a fresh database on the session's server (--dsn), gives back the same
organisations, users, keys (the old authkey still authenticates: server.key came back) and
audit log. Damaged, tampered and foreign archives are refused before anything changes, with
a message naming what failed and what to do. Encryption uses a real GnuPG key made in a
temporary GnuPG home."""

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, BUILD, ROOT, Daemon, MariaDB, Stack, clean_env
from helpers import assert_error, ctl_json

RESTORE = ROOT / "ops" / "restore"
OPS_DB = ROOT / "ops" / "db"
ARCHIVE_NAME = re.compile(r"^adminbus-backup-\d{8}_\d{6}-job(\d+)\.tar\.gz(\.gpg)?$")


# --- helpers ------------------------------------------------------------------------------


def wait_job(stack, job, timeout=120):
    """The job's row once it has ended (done, failed or cancelled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.rows("SELECT * FROM jobs WHERE id = %s", job)[0]
        if row["state"] in ("done", "failed", "cancelled"):
            return row
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not end within {timeout}s: {row!r}\n"
                         + "\n".join(stack.tail(w.log) for w in stack.workers))


def backup(stack, *flags):
    """`adminctl backup FLAGS`, then follow the job with `adminctl job track` (events)
    until it ends. Returns (job row, archive path or None, the track output)."""
    res = ctl_json(stack, "backup", *flags)
    assert res["type"] == "backup" and res["queue"] == "default" and res["state"] == "queued"
    job = res["id"]
    env_events = dict(stack.env, ADMINBUS_EVENTS=stack.events)
    p = subprocess.run([str(BIN / "adminctl"), "--json", "job", "track", str(job)],
                       env=dict(env_events, ADMINBUS_URL=stack.url, ADMINBUS_AUTHKEY=stack.key),
                       capture_output=True, text=True, timeout=180)
    row = wait_job(stack, job)
    if row["state"] != "done":
        return row, None, p.stdout
    m = re.search(r"Backup written: backups/(\S+)", row["message"] or "")
    assert m, row
    return row, stack.home / "backups" / m.group(1), p.stdout


def restore(home, archive, *flags, gnupg=None, tmpdir=None):
    """Run ops/restore FLAGS ARCHIVE for home; returns the CompletedProcess."""
    extra = {"ADMINBUS_HOME": home, "ADMINBUS_BUILD": BUILD}
    if gnupg:
        extra["GNUPGHOME"] = gnupg
    if tmpdir:
        extra["TMPDIR"] = tmpdir
    env = clean_env(**extra)
    if not gnupg:
        env.pop("GNUPGHOME", None)
    return subprocess.run([str(RESTORE), *map(str, flags), str(archive)], env=env,
                          capture_output=True, text=True, timeout=300)


def manifest_of(archive_bytes):
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as t:
        return t.extractfile("MANIFEST").read().decode()


def rebuild(archive, out, change=None, manifest=None, extra=None):
    """Write a copy of the (plain) archive to out: member contents changed by change(name,
    data) -> data, the MANIFEST replaced by manifest(text) -> text, extra members added."""
    with tarfile.open(archive, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(out, "w:gz", format=tarfile.USTAR_FORMAT) as t:
        for m, data in members:
            if m.name == "MANIFEST" and manifest:
                data = manifest(data.decode()).encode()
            elif change:
                data = change(m.name, data)
            m.size = len(data)
            t.addfile(m, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            t.addfile(info, io.BytesIO(data))
    return out


def reseal(text):
    """Recompute a manifest's own checksum (its last line) after an edit."""
    body = text[:text.rindex("manifest_sha256: ")]
    return body + "manifest_sha256: " + hashlib.sha256(body.encode()).hexdigest() + "\n"


def add_user_with_key(stack, email, role="admin"):
    """A user of the host organisation with an authkey, written as the engine would (there
    is no user.add yet: issue 5): the key's digest is HMAC-SHA-256 under server.key."""
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    key = secrets.token_hex(20)[:40]
    key = "".join(c.upper() if i % 3 == 0 else c for i, c in enumerate(key))
    org = stack.rows("SELECT org_id FROM users ORDER BY id LIMIT 1")[0]["org_id"]
    role_id = stack.rows("SELECT id FROM roles WHERE name = %s", role)[0]["id"]
    with stack.db.cursor() as c:
        c.execute("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
                  "VALUES (%s, %s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))", (email, org, role_id))
        uid = c.lastrowid
        c.execute("INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, created) "
                  "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
                  (uid, hmac.new(secret, key.encode(), hashlib.sha256).digest(), key[:4],
                   key[-4:]))
    return key


def snapshot(db_rows):
    """The rows a restore must give back, keyed by table."""
    return {
        "organisations": db_rows("SELECT * FROM organisations ORDER BY id"),
        "users": db_rows("SELECT * FROM users ORDER BY id"),
        "auth_keys": db_rows("SELECT * FROM auth_keys ORDER BY id"),
        "roles": db_rows("SELECT * FROM roles ORDER BY id"),
        "logs": db_rows("SELECT * FROM logs ORDER BY id"),
        "admin_settings": db_rows("SELECT * FROM admin_settings ORDER BY id"),
    }


def populate(stack):
    """Organisations (added, edited, deleted: audit rows of each kind), a second user with
    a key, and a data file. Returns that user's authkey."""
    stack.ok("org.add", {"name": "CIRCL", "nationality": "LU", "sector": "CERT"})
    stack.ok("org.add", {"name": "Ünïcode Örg ✓", "description": "line one\nline 'two' \"3\""})
    stack.ok("org.add", {"name": "Gone Ltd"})
    stack.ok("org.edit", {"org": "CIRCL", "description": "Computer Incident Response Center"})
    stack.ok("org.delete", {"org": "Gone Ltd"})
    stack.cmd("auth.whoami", auth="A" * 40)  # an auth_fail audit row
    key2 = add_user_with_key(stack, "second@example.org")
    logo = stack.home / "files" / "orgs" / "1.png"
    logo.parent.mkdir(parents=True)
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    logo.chmod(0o640)
    (logo.parent / "Ünïcode logo ✓.txt").write_text("名前\n")
    return key2


class RestoredStack(Stack):
    """A broker and an engine started on a restored home, with its adminbus.conf as the
    restore wrote it (the endpoints of the backed-up instance, its db_dsn the new
    database). Stops what it started; drops nothing."""

    def __init__(self, mariadb, home, key):
        super().__init__(mariadb, home)
        conf = dict(line.split("=", 1) for line in
                    (home / "adminbus.conf").read_text().splitlines() if "=" in line)
        self.conf = conf
        self.url = conf["commands_endpoint"]
        self.events = conf["events_endpoint"]
        self.key = key
        self.target = MariaDB(conf["db_dsn"])
        self.database = urlparse_db(conf["db_dsn"])

    def start(self):
        self.db = self.target.connect(self.database)
        self.broker = Daemon("broker", [str(BIN / "adminbus-broker")], self.env,
                             self.home / "broker.log")
        self.start_engine()


def urlparse_db(dsn):
    return re.match(r"^mariadb://[^/]*/([^?]+)", dsn).group(1)


def stop_daemons(stack):
    """The backed-up instance goes away (its machine is gone): stop its workers, engine
    and broker now, as teardown would, and tell teardown they are stopped on purpose."""
    stack.close_workers()
    stack.workers = []
    for d in (stack.engine, stack.broker):
        rc = d.stop()
        assert rc in (0, -15), f"{d.name} exited with {rc}:\n{stack.tail(d.log)}"
        d.expected_dead = True


@pytest.fixture
def gnupg_home():
    """A GnuPG home with one fresh encryption key (no passphrase); yields (home, fpr).
    Its short path keeps gpg-agent's socket path within the Unix limit; the agent it
    starts is stopped at the end (gpgconf --kill, by its socket in this home)."""
    home = tempfile.mkdtemp(prefix="abg", dir="/tmp")
    os.chmod(home, 0o700)
    env = clean_env(GNUPGHOME=home)
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                        "Backup Test <backup@example.org>", "future-default", "default",
                        "never"], env=env, check=True, capture_output=True, timeout=60)
        out = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys",
                              "backup@example.org"], env=env, check=True, capture_output=True,
                             text=True).stdout
        fpr = re.search(r"^fpr:+([0-9A-F]{40}):", out, re.M).group(1)
        yield home, fpr
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_db(mariadb):
    """The name of a database that does not exist yet on the session's server (for
    restores with --dsn); dropped at the end."""
    name = "r_" + secrets.token_hex(6)
    yield name
    admin = mariadb.connect()
    with admin.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def check_restored_rows(before, after_rows, job):
    after = snapshot(after_rows)
    for table in ("organisations", "users", "auth_keys", "roles", "admin_settings"):
        assert after[table] == before[table], table
    n = len(before["logs"])
    assert after["logs"][:n] == before["logs"]
    extra = after["logs"][n:]
    assert [(r["model"], r["model_id"], r["action"]) for r in extra] == \
        [("Backup", job, "restore")], extra


# --- the acceptance test -------------------------------------------------------------------


def test_backup_then_restore_into_a_fresh_home(stack, tmp_path):
    stack.start_worker("default")
    key2 = populate(stack)
    assert stack.ok("auth.whoami", auth=key2)["user"]["email"] == "second@example.org"

    row, archive, track = backup(stack)
    assert row["state"] == "done" and row["progress"] == 100, row
    job = row["id"]
    # the job reported its phases; track followed it to the end
    assert '"state": "done"' in track or '"state":"done"' in track, track
    # one 0600 archive named with a timestamp and the job id, in a 0700 folder; no leftovers
    m = ARCHIVE_NAME.match(archive.name)
    assert m and int(m.group(1)) == job and not m.group(2), archive.name
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]
    # the manifest lists every member with its size, mode and SHA-256
    data = archive.read_bytes()
    manifest = manifest_of(data)
    assert manifest.startswith("adminbus backup manifest\nformat: 1\n"), manifest
    schema = stack.rows("SELECT MAX(version) AS v FROM schema_versions")[0]["v"]
    assert f"\nschema_version: {schema}\n" in manifest and f"\njob: {job}\n" in manifest
    assert "\nencrypted_to: none\n" in manifest
    files = {}
    with tarfile.open(archive, "r:gz") as t:
        assert t.getnames()[-1] == "MANIFEST"
        for mem in t.getmembers():
            assert mem.isreg(), mem.name
            if mem.name != "MANIFEST":
                files[mem.name] = (hashlib.sha256(t.extractfile(mem).read()).hexdigest(),
                                   mem.size, mem.mode)
    listed = {f[3]: (f[0], int(f[1]), int(f[2], 8))
              for f in (line.split(" ", 3) for line in
                        re.findall(r"^file: (.*)$", manifest, re.M))}
    assert listed == files
    assert set(files) == {"db/adminbus.sql", "home/adminbus.conf", "home/secrets/server.key",
                          "home/files/orgs/1.png", "home/files/orgs/Ünïcode logo ✓.txt"}
    assert files["home/files/orgs/1.png"][2] == 0o640
    assert files["home/secrets/server.key"][2] == 0o600
    # the dump neither creates nor selects the old database: it loads into any
    with tarfile.open(archive, "r:gz") as t:
        dump = t.extractfile("db/adminbus.sql").read().decode()
    assert "CREATE DATABASE" not in dump and "\nUSE " not in dump
    before = snapshot(stack.rows)

    # --verify changes nothing: no home made, no temporary files left, the archive as it was
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    v = restore(tmp_path / "never-made", archive, "--verify", tmpdir=scratch)
    assert v.returncode == 0, v.stderr
    assert "verified" in v.stdout and "nothing was changed" in v.stdout, v.stdout
    assert not (tmp_path / "never-made").exists() and not list(scratch.iterdir())
    assert archive.read_bytes() == data

    # the old machine is gone; a fresh home gets the archive and its own private MariaDB
    stop_daemons(stack)
    home2 = tmp_path / "home2"
    restored = None
    try:
        r = restore(home2, archive)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "restored " + archive.name in r.stdout, r.stdout
        assert "ops/run" in r.stdout  # says what to do next
        subprocess.run([str(OPS_DB), "start"], env=clean_env(ADMINBUS_HOME=home2), check=True,
                       capture_output=True, timeout=120)
        # the secrets, settings and files as they were, with their modes
        assert (home2 / "secrets" / "server.key").read_bytes() == \
            (stack.home / "secrets" / "server.key").read_bytes()
        assert stat.S_IMODE((home2 / "secrets" / "server.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((home2 / "secrets").stat().st_mode) == 0o700
        logo = home2 / "files" / "orgs" / "1.png"
        assert logo.read_bytes() == (stack.home / "files" / "orgs" / "1.png").read_bytes()
        assert stat.S_IMODE(logo.stat().st_mode) == 0o640
        assert (logo.parent / "Ünïcode logo ✓.txt").read_text() == "名前\n"
        assert stat.S_IMODE((home2 / "adminbus.conf").stat().st_mode) == 0o600
        assert not list(home2.glob(".restore.*"))

        # a stack on the restored home: the OLD authkeys authenticate
        restored = RestoredStack(stack.mariadb, home2, stack.key)
        assert restored.conf["commands_endpoint"] == stack.url
        assert restored.conf["db_dsn"] != stack.mariadb.dsn_for(stack.database)
        restored.start()
        who = restored.ok("auth.whoami")
        assert who["user"]["email"] == "admin@admin.test", who
        assert restored.ok("auth.whoami", auth=key2)["user"]["email"] == "second@example.org"
        rc, out, err = restored.adminctl("whoami")
        assert rc == 0 and "admin@admin.test" in out, (out, err)
        # the same organisations, users, keys, roles and audit log, plus the restore's row
        check_restored_rows(before, restored.rows, job)
        names = [o["name"] for o in restored.ok("org.list", {"scope": "all"})["items"]]
        assert "CIRCL" in names and "Ünïcode Örg ✓" in names and "Gone Ltd" not in names
        # the backup's own job is done, not run again by the restored instance
        jrow = restored.rows("SELECT state, progress FROM jobs WHERE id = %s", job)[0]
        assert jrow == {"state": "done", "progress": 100}
        assert restored.rows("SELECT COUNT(*) AS n FROM job_ready WHERE job_id = %s",
                             job)[0]["n"] == 0
        # and it keeps working: a change on the restored instance
        restored.ok("org.add", {"name": "After Restore"})
    finally:
        if restored is not None:
            restored.close()
        subprocess.run([str(OPS_DB), "stop"], env=clean_env(ADMINBUS_HOME=home2), check=False,
                       capture_output=True, timeout=180)
    if restored is not None and restored.problems:
        pytest.fail("\n\n".join(restored.problems), pytrace=False)


# --- refusals ----------------------------------------------------------------------------


def refused(result, *needles):
    assert result.returncode == 1, (result.stdout, result.stderr)
    for n in needles:
        assert n in result.stderr, (n, result.stderr)
    return result.stderr


def test_damaged_tampered_and_foreign_archives_are_refused(stack, tmp_path, fresh_db):
    stack.start_worker("default")
    stack.ok("org.add", {"name": "Tamper Target Org"})
    row, archive, _ = backup(stack)
    assert row["state"] == "done", row
    data = archive.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    home = tmp_path / "home-x"
    dsn = stack.mariadb.dsn_for(fresh_db)

    def check(path, *needles):
        """Refused by --verify and by a restore, and the restore changed nothing."""
        refused(restore(home, path, "--verify"), *needles)
        refused(restore(home, path, "--dsn", dsn), *needles)
        assert not home.exists(), list(home.iterdir())
        admin = stack.mariadb.connect()
        with admin.cursor() as c:
            c.execute("SELECT COUNT(*) AS n FROM information_schema.schemata "
                      "WHERE schema_name = %s", (fresh_db,))
            assert c.fetchone()["n"] == 0
        admin.close()

    # truncated (cut in half): gzip's check fails; the message names the file and says
    # what to do
    cut = bad / "truncated.tar.gz"
    cut.write_bytes(data[:len(data) // 2])
    check(cut, "truncated.tar.gz", "truncated or corrupt", "use another backup")

    # one byte changed inside the compressed stream
    flipped = bad / "flipped.tar.gz"
    b = bytearray(data)
    b[len(b) // 2] ^= 0x40
    flipped.write_bytes(bytes(b))
    check(flipped, "flipped.tar.gz", "corrupt")

    # a member changed (a valid archive, the original MANIFEST): its checksum catches it
    def edit_dump(name, content):
        return content.replace(b"Tamper Target Org", b"Tamper Target Orh") \
            if name == "db/adminbus.sql" else content
    check(rebuild(archive, bad / "member.tar.gz", change=edit_dump),
          "'db/adminbus.sql'", "SHA-256", "MANIFEST", "tampered")

    # the MANIFEST itself edited (a checksum swapped): its own checksum catches it
    def swap_sum(text):
        return re.sub(r"^(file: )[0-9a-f]{64}( \d+ \d+ db/adminbus\.sql)$",
                      lambda m: m.group(1) + "0" * 64 + m.group(2), text, flags=re.M)
    check(rebuild(archive, bad / "manifest.tar.gz", manifest=swap_sum),
          "MANIFEST", "damaged")

    # a member the MANIFEST does not list
    check(rebuild(archive, bad / "extra.tar.gz", extra={"home/secrets/evil.key": b"x"}),
          "'home/secrets/evil.key'", "does not list")

    # foreign: a tar.gz without a MANIFEST, a plain tar, random bytes
    foreign = bad / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as t:
        info = tarfile.TarInfo("etc/hosts")
        info.size = 9
        t.addfile(info, io.BytesIO(b"127.0.0.1"))
    check(foreign, "not an adminbus backup", "no MANIFEST")
    plain_tar = bad / "plain.tar"
    with tarfile.open(plain_tar, "w") as t:
        info = tarfile.TarInfo("MANIFEST")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    check(plain_tar, "not an adminbus backup")
    noise = bad / "noise.tar.gz.gpg"
    noise.write_bytes(os.urandom(4096).replace(b"\x1f\x8b", b"\x00\x00"))
    check(noise, "noise.tar.gz.gpg")

    # a member that is a symbolic link, and one with '..' in its name
    linked = bad / "link.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(linked, "w:gz") as t:
        for mem in src.getmembers():
            t.addfile(mem, src.extractfile(mem))
        info = tarfile.TarInfo("home/files/passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    check(linked, "'home/files/passwd'", "not a regular file")
    check(rebuild(archive, bad / "dotdot.tar.gz", extra={"home/../../evil": b"x"}),
          "unsafe name")

    # made by a newer adminbus (a higher schema version than this build knows)
    def newer(text):
        return reseal(re.sub(r"^schema_version: \d+$", "schema_version: 9999", text,
                             flags=re.M))
    check(rebuild(archive, bad / "newer.tar.gz", manifest=newer),
          "newer adminbus", "schema version 9999", "upgrade")

    # the good archive still verifies (nothing above touched it)
    assert restore(home, archive, "--verify").returncode == 0
    assert not home.exists()


def test_restore_refuses_a_running_stack_and_a_used_home(stack, tmp_path, fresh_db):
    stack.start_worker("default")
    row, archive, _ = backup(stack)
    assert row["state"] == "done", row
    # into the running instance's own home: refused, the stack goes on
    r = refused(restore(stack.home, archive), "adminbus is running", "ops/stop")
    assert stack.ok("auth.whoami")["user"]["email"] == "admin@admin.test", r
    # a home with another server secret: refused unless --force
    other = tmp_path / "other"
    (other / "secrets").mkdir(parents=True)
    (other / "secrets" / "server.key").write_text("00" * 32 + "\n")
    refused(restore(other, archive, "--dsn", stack.mariadb.dsn_for(fresh_db)),
            "different server secret", "--force")
    assert (other / "secrets" / "server.key").read_text() == "00" * 32 + "\n"
    # the live instance's database: refused even with --force (its workers are alive)
    home = tmp_path / "home-y"
    before = stack.counts()
    refused(restore(home, archive, "--force", "--dsn", stack.mariadb.dsn_for(stack.database)),
            "is in use", "heartbeat", "ops/stop")
    assert stack.counts() == before
    # a database that is not empty: refused unless --force, which drops its tables first
    fresh = stack.mariadb.dsn_for(fresh_db)
    assert restore(home, archive, "--dsn", fresh).returncode == 0
    db = stack.mariadb.connect(fresh_db)
    with db.cursor() as c:
        c.execute("INSERT INTO organisations (name, uuid, date_created, date_modified) VALUES "
                  "('Added Later', UUID(), UTC_TIMESTAMP(), UTC_TIMESTAMP())")
    again = tmp_path / "home-z"
    refused(restore(again, archive, "--dsn", fresh), "already has", "tables", "--force")
    with db.cursor() as c:
        c.execute("SELECT COUNT(*) AS n FROM organisations WHERE name = 'Added Later'")
        assert c.fetchone()["n"] == 1
    r = restore(again, archive, "--force", "--dsn", fresh)
    assert r.returncode == 0 and "--force: dropped" in r.stdout, r.stdout + r.stderr
    with db.cursor() as c:
        c.execute("SELECT COUNT(*) AS n FROM organisations WHERE name = 'Added Later'")
        assert c.fetchone()["n"] == 0
    db.close()
    # usage errors
    p = subprocess.run([str(RESTORE), "--verify", "--force", str(archive)],
                       env=clean_env(ADMINBUS_HOME=home), capture_output=True, text=True)
    assert p.returncode == 2 and "--verify" in p.stderr
    p = subprocess.run([str(RESTORE)], env=clean_env(ADMINBUS_HOME=home), capture_output=True,
                       text=True)
    assert p.returncode == 2
    p = subprocess.run([str(RESTORE), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--verify" in p.stdout
    refused(restore(home, tmp_path / "missing.tar.gz", "--verify"), "no such file")


def test_restore_migrates_an_older_archive(stack, tmp_path, fresh_db):
    """An archive made at an older schema version is brought up to date after loading.
    The older instance is made by undoing a migration's table (tasks, 0003) and the
    schema_versions rows from 3 on: what the database looked like before 0003. The worker
    starts first: it needs the current schema to register."""
    latest = int(subprocess.run([str(BIN / "adminbus-engine"), "--schema-version"],
                                capture_output=True, text=True, check=True).stdout)
    stack.start_worker("default")
    with stack.db.cursor() as c:
        c.execute("DROP TABLE tasks")
        c.execute("DELETE FROM schema_versions WHERE version >= 3")
    stack.ok("org.add", {"name": "Old Times"})
    row, archive, _ = backup(stack)
    assert row["state"] == "done", row
    assert "\nschema_version: 2\n" in manifest_of(archive.read_bytes())
    v = restore(tmp_path / "h", archive, "--verify")
    assert v.returncode == 0 and "migrates" in v.stdout, v.stdout + v.stderr
    home = tmp_path / "home-old"
    r = restore(home, archive, "--dsn", stack.mariadb.dsn_for(fresh_db))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"schema version 2 => {latest}" in r.stdout, r.stdout
    db = stack.mariadb.connect(fresh_db)
    with db.cursor() as c:
        c.execute("SELECT MAX(version) AS v FROM schema_versions")
        assert c.fetchone()["v"] == latest
        c.execute("SELECT COUNT(*) AS n FROM tasks")
        assert c.fetchone()["n"] > 0  # 0003's default tasks
        c.execute("SELECT COUNT(*) AS n FROM organisations WHERE name = 'Old Times'")
        assert c.fetchone()["n"] == 1
    db.close()


# --- encryption ------------------------------------------------------------------------------


def test_encrypted_backup_restores_with_the_key_only(stack, tmp_path, gnupg_home, fresh_db):
    gh, fpr = gnupg_home
    stack.env["GNUPGHOME"] = gh  # the worker's keyring
    stack.start_worker("default")
    stack.ok("org.add", {"name": "Secretive Org"})
    row, archive, _ = backup(stack, "--encrypt-to", fpr)
    assert row["state"] == "done", row
    assert archive.name.endswith(".tar.gz.gpg") and fpr in row["message"], row
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    data = archive.read_bytes()
    assert data[:2] != b"\x1f\x8b" and b"Secretive Org" not in data
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]

    # without the secret key: refused, saying which key and what to do; nothing changed
    empty = tempfile.mkdtemp(prefix="abe", dir="/tmp")
    os.chmod(empty, 0o700)
    home = tmp_path / "home-enc"
    try:
        for flags in (("--verify",), ("--dsn", stack.mariadb.dsn_for(fresh_db))):
            refused(restore(home, archive, *flags, gnupg=empty), "cannot decrypt",
                    archive.name, "gpg --import")
        assert not home.exists()
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=clean_env(GNUPGHOME=empty),
                       check=False, capture_output=True)
        shutil.rmtree(empty, ignore_errors=True)

    # with it: verified and restored
    v = restore(home, archive, "--verify", gnupg=gh)
    assert v.returncode == 0 and "decrypted" in v.stdout, v.stdout + v.stderr
    before = snapshot(stack.rows)
    r = restore(home, archive, "--dsn", stack.mariadb.dsn_for(fresh_db), gnupg=gh)
    assert r.returncode == 0, r.stdout + r.stderr
    db = stack.mariadb.connect(fresh_db)

    def rows(sql, *params):
        with db.cursor() as c:
            c.execute(sql, params)
            return c.fetchall()
    try:
        check_restored_rows(before, rows, row["id"])
    finally:
        db.close()
    assert (home / "secrets" / "server.key").read_bytes() == \
        (stack.home / "secrets" / "server.key").read_bytes()


# --- bad input and cancellation -----------------------------------------------------------------


def test_backup_bad_input_gets_precise_errors(stack, tmp_path):
    jobs = stack.count("jobs")
    logs = stack.count("logs")
    for args, field in (({"encrypt_to": "not a key"}, "encrypt_to"),
                        ({"encrypt_to": "ABCDEF"}, "encrypt_to"),
                        ({"encrypt_to": "x" * 300}, "encrypt_to"),
                        ({"encrypt_to": 42}, "encrypt_to"),
                        ({"dest": "/etc"}, "dest")):
        err = assert_error(stack.cmd("backup.run", args), "invalid", field)
        assert field in err["message"]
    assert stack.count("jobs") == jobs and stack.count("logs") == logs
    # the CLI: a refused value exits 1 and names the argument; an unknown flag is usage (2)
    rc, out, err = stack.adminctl("backup", "--encrypt-to", "bad key")
    assert rc == 1 and "encrypt_to" in out + err, (out, err)
    rc, out, err = stack.adminctl("backup", "--dest", "/tmp")
    assert rc == 2, (out, err)
    # only site administrators may back up
    key = add_user_with_key(stack, "user@example.org", role="User")
    assert_error(stack.cmd("backup.run", {}, auth=key), "forbidden")

    # a well-formed recipient the worker's keyring lacks: the job fails at once (no retry),
    # saying so, and leaves nothing behind
    empty = tempfile.mkdtemp(prefix="abe", dir="/tmp")
    os.chmod(empty, 0o700)
    stack.env["GNUPGHOME"] = empty
    try:
        stack.start_worker("default")
        res = stack.ok("backup.run", {"encrypt_to": "nobody@example.org"})
        row = wait_job(stack, res["id"])
        assert row["state"] == "failed" and row["attempts"] == 1, row
        assert "no usable public key" in row["last_error"], row
        assert "nobody@example.org" in row["last_error"] and empty in row["last_error"], row
        backups = stack.home / "backups"
        assert not backups.exists() or not list(backups.iterdir())
        # job.enqueue of the type runs the same checks in the worker
        res = stack.ok("job.enqueue", {"type": "backup", "args": {"encrypt_to": "x y z"}})
        row = wait_job(stack, res["id"])
        assert row["state"] == "failed" and "encrypt_to must be" in row["last_error"], row
        err = assert_error(stack.cmd("job.enqueue", {"type": "backup",
                                                     "args": {"dest": "/etc"}}),
                           "invalid", "args.dest")
    finally:
        stack.close_workers()
        stack.workers = []
        subprocess.run(["gpgconf", "--kill", "all"], env=clean_env(GNUPGHOME=empty),
                       check=False, capture_output=True)
        shutil.rmtree(empty, ignore_errors=True)


def test_a_running_backup_can_be_cancelled(stack):
    """The dump is held up on purpose (a table locked by the test), so the job is surely
    running when it is cancelled: it stops, kills its mariadb-dump, and leaves no file."""
    stack.start_worker("default")
    locker = stack.mariadb.connect(stack.database)
    try:
        with locker.cursor() as c:
            c.execute("LOCK TABLES job_effects WRITE")
        res = stack.ok("backup.run")
        job = res["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = stack.rows("SELECT state, progress, message FROM jobs WHERE id = %s", job)[0]
            if r["state"] == "running" and (r["message"] or "").startswith("Dumping"):
                break
            time.sleep(0.05)
        assert r["state"] == "running" and r["progress"] >= 5, r
        stack.ok("job.cancel", {"job": job})
        row = wait_job(stack, job)
        assert row["state"] == "cancelled", row
    finally:
        with locker.cursor() as c:
            c.execute("UNLOCK TABLES")
        locker.close()
    backups = stack.home / "backups"
    assert not list(backups.iterdir()), list(backups.iterdir())
    # the worker goes on: the next backup completes
    row, archive, _ = backup(stack)
    assert row["state"] == "done" and archive.exists(), row
