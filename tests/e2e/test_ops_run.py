"""ops/run --detach and ops/stop, against the real scripts and daemons.

The detached stack is watched as the foreground one is: a daemon killed -9 (the HTTP
shim, the scheduler) is started again; ops/stop then stops the watcher first and every
process of the stack after it — none is left (checked by pid, and by every process whose
environment names the home). The stack runs on a fresh database of the session's server
(its db_dsn in adminbus.conf), so ops/run starts no MariaDB of its own."""

import json
import os
import secrets
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from conftest import BIN, ROOT, SANITIZER_REPORT, clean_env


def pid_alive(pid):
    """True when pid is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run_pids(home):
    """{name: pid} of the pid files under home/run."""
    out = {}
    for f in (home / "run").glob("*.pid"):
        try:
            out[f.stem] = int(f.read_text().strip())
        except (OSError, ValueError):
            pass
    return out


def processes_of(home):
    """The pids of live processes whose environment says ADMINBUS_HOME=home."""
    needle = f"ADMINBUS_HOME={home}\0".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle in (d / "environ").read_bytes() and pid_alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def wait_for(what, check, timeout=60, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    tail = Path(log).read_text()[-3000:] if log and Path(log).exists() else "(no log)"
    raise AssertionError(f"no {what} within {timeout}s:\n{tail}")


@contextmanager
def detached_stack(mariadb, home, workers="default:1"):
    """ops/run --detach --no-build for home (a fresh database of the session's server);
    yields the environment that reaches it. Stops it with ops/stop and drops the
    database at the end; fails when a process of the stack is left."""
    database = "t_" + secrets.token_hex(6)
    admin = mariadb.connect()
    with admin.cursor() as c:
        c.execute(f"CREATE DATABASE `{database}`")
    home.mkdir(parents=True)
    (home / "adminbus.conf").write_text(f"db_dsn={mariadb.dsn_for(database)}\n"
                                        f"workers={workers}\nworker_grace_s=2\n")
    env = clean_env(ADMINBUS_HOME=home, ADMINBUS_BUILD=str(BIN.parent))
    seen = set()
    try:
        run = subprocess.run([str(ROOT / "ops" / "run"), "--detach", "--no-build"], env=env,
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        seen.update(run_pids(home).values())
        yield env, seen
    finally:
        seen.update(run_pids(home).values())
        seen.update(processes_of(home))
        stop = subprocess.run([str(ROOT / "ops" / "stop")], env=env, capture_output=True,
                              text=True, timeout=240)
        with admin.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
    assert stop.returncode == 0, stop.stdout + stop.stderr
    left = [p for p in seen if pid_alive(p)] + processes_of(home)
    assert not left, f"still running after ops/stop: {sorted(set(left))}\n{stop.stdout}"
    assert not list((home / "run").glob("*.pid")), list((home / "run").glob("*.pid"))
    for log in (home / "log").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not SANITIZER_REPORT.search(text), f"{log.name}: sanitizer report:\n{text[-4000:]}"


def http_health(env_file):
    """True when the HTTP shim named in env_file answers /health."""
    base = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    try:
        with urllib.request.urlopen(f"{base['ADMINBUS_HTTP']}/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def came_back(home, name, old):
    """The new pid of name once run/NAME.pid names a live process other than old."""
    pid = run_pids(home).get(name)
    return pid if pid and pid != old and pid_alive(pid) else None


def test_detached_stack_restarts_dead_daemons_and_stop_stops_all(mariadb, tmp_path):
    home = tmp_path / "home"
    with detached_stack(mariadb, home) as (env, seen):
        pids = run_pids(home)
        assert all(pid_alive(pids[n]) for n in ("broker", "engine", "supervisor", "scheduler",
                                                "http")), pids
        wait_for("the HTTP shim answering", lambda: http_health(home / "env"))

        for name in ("http", "scheduler"):
            os.kill(pids[name], 9)
        log = home / "log" / "ops-run.log"
        for name in ("http", "scheduler"):
            new = wait_for(f"{name} started again", lambda: came_back(home, name, pids[name]),
                           log=log)
            seen.add(new)
        wait_for("the HTTP shim answering again", lambda: http_health(home / "env"), log=log)
        text = log.read_text()
        assert "http exited; starting it again" in text, text
        assert "scheduler exited; starting it again" in text, text

        # the watcher holds the home: a second ops/run is refused
        watcher = run_pids(home)["ops-run"]
        assert watcher == pids["ops-run"] and pid_alive(watcher)
        again = subprocess.run([str(ROOT / "ops" / "run"), "--detach", "--no-build"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "already" in again.stderr, again.stderr

        # the stack still works through the restarted shim
        base = dict(line.split("=", 1) for line in (home / "env").read_text().splitlines())
        req = urllib.request.Request(f"{base['ADMINBUS_HTTP']}/users/view/me",
                                     headers={"Authorization": base["ADMINBUS_AUTHKEY"],
                                              "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["User"]["email"] == "admin@admin.test"
        seen.update(processes_of(home))  # the supervisor's worker too


def test_ops_stop_stops_a_detached_stack_whose_watcher_is_gone(mariadb, tmp_path):
    """The watcher killed -9: nothing restarts any more, and ops/stop still stops all."""
    home = tmp_path / "home"
    with detached_stack(mariadb, home) as (env, seen):
        pids = run_pids(home)
        os.kill(pids["ops-run"], 9)
        wait_for("the watcher gone", lambda: not pid_alive(pids["ops-run"]))
        seen.update(processes_of(home))
