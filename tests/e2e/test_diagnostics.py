"""Diagnostics (issue 4, acceptance 4): the health report over the wire and through
`adminctl diagnostics`, against real parts — a GnuPG home made with gpg in a temporary
folder (signing through gpgme), real workers and a scheduler, the broker's event path.
A broken GnuPG home and a stopped worker are reported with the action to take, and
adminctl exits 4 when a check is critical."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Stack, private_mariadb, running
from helpers import ctl_json

QUEUES = ("default", "prio", "cache", "email", "update")
GPG_EMAIL = "instance@diagnostics.test"
GPG_PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def gnupg_home():
    """A GnuPG home with the instance's key (ed25519, passphrase-protected). The path is
    short: gpg-agent's socket lives inside it. Teardown stops the agent gpg started."""
    home = Path(tempfile.mkdtemp(prefix="abg", dir="/tmp"))
    home.chmod(0o700)
    env = {"PATH": "/usr/bin:/bin", "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase",
                        GPG_PASSPHRASE, "--quick-gen-key", f"adminbus test <{GPG_EMAIL}>",
                        "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True, timeout=60)
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], env=env,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def check(report, name):
    found = [c for c in report["checks"] if c["name"] == name]
    assert len(found) == 1, (name, [c["name"] for c in report["checks"]])
    return found[0]


def diagnostics(stack, expect_rc):
    """`adminctl --json diagnostics`, which must exit expect_rc; returns the report."""
    rc, out, err = stack.adminctl("--json", "diagnostics")
    assert rc == expect_rc, f"rc {rc}\n{out}\n{err}"
    return json.loads(out)


def make_healthy(stack, gnupg_home):
    """Everything a fresh instance lacks: settings, folders, GnuPG, workers, a scheduler."""
    for name, value in (("MISP.baseurl", "https://misp.diagnostics.test"),
                        ("MISP.email", "misp@diagnostics.test"),
                        ("MISP.contact", "support@diagnostics.test"),
                        ("GnuPG.homedir", str(gnupg_home)), ("GnuPG.email", GPG_EMAIL),
                        ("GnuPG.password", GPG_PASSPHRASE)):
        stack.ok("setting.set", {"name": name, "value": value})
    (stack.home / "tmp").mkdir(exist_ok=True)
    (stack.home / "files").mkdir(exist_ok=True)
    workers = {q: stack.start_worker(q) for q in QUEUES}
    stack.start_scheduler().wait_log(": leader (")
    return workers


def test_a_fresh_instance_reports_what_is_missing(stack):
    r = stack.ok("diagnostics.run")  # the report is a result, critical or not
    assert r["status"] == "critical" and r["critical"] is True
    assert r["counts"]["critical"] == sum(c["status"] == "critical" for c in r["checks"])
    gnupg = check(r, "gnupg")
    assert gnupg["status"] == "critical"
    assert "GnuPG.homedir and GnuPG.email are not set" in gnupg["found"]
    assert "adminctl setting set GnuPG.homedir" in gnupg["action"]
    assert check(r, "database")["status"] == "ok"
    assert "schema version" in check(r, "database")["found"]
    bus = check(r, "bus")
    assert bus["status"] == "ok" and "came back" in bus["found"], bus
    for q in QUEUES:
        w = check(r, f"workers.{q}")
        assert w["status"] == "critical" and f"adminbus-worker --queue {q}" in w["action"]
    assert check(r, "scheduler")["status"] == "warning"
    assert check(r, "folder.home")["status"] == "ok"
    assert check(r, "folder.secrets")["status"] == "ok"
    assert check(r, "folder.tmp")["status"] == "warning"  # the default folder is not made yet
    assert check(r, "clock")["status"] in ("ok", "warning")
    settings = check(r, "settings")
    assert settings["status"] == "critical" and "MISP.baseurl" in settings["found"]
    for c in r["checks"]:
        assert c["status"] in ("ok", "warning", "critical") and c["found"], c
        assert (c["action"] is None) == (c["status"] == "ok"), c

    rc, out, err = stack.adminctl("diagnostics")
    assert rc == 4, (rc, out, err)
    assert out.startswith("status:   critical") and "- name:   gnupg" in out


def test_broken_gnupg_and_a_stopped_worker_are_critical_with_the_action(stack, gnupg_home):
    workers = make_healthy(stack, gnupg_home)
    report = diagnostics(stack, 0)
    bad = [c for c in report["checks"] if c["status"] == "critical"]
    assert not bad, bad
    gnupg = check(report, "gnupg")
    assert gnupg["status"] == "ok" and f"of {GPG_EMAIL} in {gnupg_home} signs" in gnupg["found"]
    for q in QUEUES:
        w = check(report, f"workers.{q}")
        assert w["status"] == "ok" and workers[q].id in w["found"], w
    assert check(report, "scheduler")["status"] == "ok"
    assert check(report, "settings")["status"] == "ok"

    # a stopped worker: its queue has no live worker
    stopped = workers["default"]
    stopped.stop()
    report = diagnostics(stack, 4)
    assert report["critical"] is True
    w = check(report, "workers.default")
    assert w["status"] == "critical"
    assert "no live worker serves queue default" in w["found"]
    assert f"{stopped.id} (stopped)" in w["found"]
    assert w["action"].startswith("start one: adminbus-worker --queue default")
    assert check(report, "workers.prio")["status"] == "ok"
    stack.start_worker("default")
    assert check(diagnostics(stack, 0), "workers.default")["status"] == "ok"

    # a broken GnuPG home: the instance's secret key is gone
    fpr = subprocess.run(["gpg", "--homedir", str(gnupg_home), "--with-colons",
                          "--list-secret-keys", GPG_EMAIL], capture_output=True, text=True,
                         check=True).stdout
    fpr = [line.split(":")[9] for line in fpr.splitlines() if line.startswith("fpr:")][0]
    subprocess.run(["gpg", "--homedir", str(gnupg_home), "--batch", "--yes",
                    "--delete-secret-keys", fpr], check=True, capture_output=True)
    report = diagnostics(stack, 4)
    g = check(report, "gnupg")
    assert g["status"] == "critical"
    assert f"{gnupg_home} has no secret key for {GPG_EMAIL}" in g["found"]
    assert f"gpg --homedir {gnupg_home} --import" in g["action"]

    # a GnuPG home that is not there (set with --force: validation would refuse it)
    missing = f"{gnupg_home}-moved"
    stack.ok("setting.set", {"name": "GnuPG.homedir", "value": missing, "force": True})
    rc, out, err = stack.adminctl("diagnostics")
    assert rc == 4
    assert f"GnuPG.homedir {missing} does not exist" in out
    assert f"mkdir -m 700 {missing}" in out


def test_a_wrong_passphrase_is_reported(stack, gnupg_home):
    for name, value in (("GnuPG.homedir", str(gnupg_home)), ("GnuPG.email", GPG_EMAIL),
                        ("GnuPG.password", "not the passphrase")):
        stack.ok("setting.set", {"name": name, "value": value})
    g = check(stack.ok("diagnostics.run"), "gnupg")
    assert g["status"] == "critical"
    assert "GnuPG.password does not unlock the secret key" in g["found"]
    assert "adminctl setting set GnuPG.password" in g["action"]
    assert "not the passphrase" not in json.dumps(g)
    stack.ok("setting.set", {"name": "GnuPG.password", "value": GPG_PASSPHRASE})
    assert check(stack.ok("diagnostics.run"), "gnupg")["status"] == "ok"


def test_the_report_holds_every_setting_and_every_check(stack):
    stack.ok("setting.set", {"name": "Proxy.password", "value": "proxy-secret-value"})
    report = ctl_json(stack, "settings", "report")
    names = [s["name"] for s in report["settings"]]
    assert len(names) == stack.ok("setting.list")["total"]
    proxy = [s for s in report["settings"] if s["name"] == "Proxy.password"][0]
    assert proxy["value"] == "*****" and proxy["secret"] is True
    assert "proxy-secret-value" not in json.dumps(report)
    assert {c["name"] for c in report["diagnostics"]["checks"]} >= {
        "database", "gnupg", "bus", "workers.default", "scheduler", "clock", "settings"}
    assert set(report["problems"]) == {"misp", "gnupg", "proxy", "security", "misc"}


# --- durable commits: innodb_flush_log_at_trx_commit, sync_binlog ------------------------------


def durability(stack):
    return check(stack.ok("diagnostics.run"), "database.durability")


def test_the_suites_server_flushes_every_commit(stack):
    """"A reply means it is durable" assumes that each COMMIT reaches the disk: the server the
    suite runs on (ops/db's, or the one ADMINBUS_TEST_DSN names) must do so, and the engine's
    diagnostics must say so."""
    [row] = stack.rows("SELECT @@innodb_flush_log_at_trx_commit AS flush, @@log_bin AS log_bin, "
                       "@@sync_binlog AS sync_binlog")
    assert row["flush"] == 1, row
    assert not row["log_bin"] or row["sync_binlog"] == 1, row
    d = durability(stack)
    assert d["status"] == "ok" and "innodb_flush_log_at_trx_commit 1" in d["found"], d
    assert d["action"] is None


@pytest.fixture
def binlog_mariadb():
    """A server of the test's own with the binary log on: SET GLOBAL is server-wide."""
    with private_mariadb(options=["--log-bin", "--server-id=1"]) as m:
        yield m


def test_commits_that_may_not_reach_the_disk_are_warned_with_the_fix(binlog_mariadb, tmp_path):
    with running(Stack(binlog_mariadb, tmp_path / "home")) as stack:
        admin = binlog_mariadb.connect()
        try:
            with admin.cursor() as c:
                c.execute("SET GLOBAL sync_binlog = 1")
            d = durability(stack)
            assert d["status"] == "ok" and "sync_binlog 1" in d["found"], d

            for flush, who in ((2, "the database host"), (0, "MariaDB or its host")):
                with admin.cursor() as c:
                    c.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {flush}")
                d = durability(stack)
                assert d["status"] == "warning", d
                assert f"innodb_flush_log_at_trx_commit is {flush}: a crash of {who} may lose " \
                       "commands that were acknowledged" in d["found"], d
                assert "SET GLOBAL innodb_flush_log_at_trx_commit = 1" in d["action"], d
                assert "innodb_flush_log_at_trx_commit=1 in the server's configuration" in \
                       d["action"], d

            with admin.cursor() as c:
                c.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
                c.execute("SET GLOBAL sync_binlog = 0")
            d = durability(stack)
            assert d["status"] == "warning", d
            assert "the binary log is on with sync_binlog 0" in d["found"], d
            assert "SET GLOBAL sync_binlog = 1" in d["action"], d
            rc, out, err = stack.adminctl("diagnostics")
            assert "the binary log is on with sync_binlog 0" in out, (rc, out, err)

            with admin.cursor() as c:
                c.execute("SET GLOBAL sync_binlog = 1")
            assert durability(stack)["status"] == "ok"
        finally:
            admin.close()
