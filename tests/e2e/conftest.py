"""End-to-end fixtures: a real MariaDB server, the real broker and engine, real sockets.

One MariaDB server serves the whole session: the one `ops/test` started (it exports
ADMINBUS_TEST_DSN), or, when pytest runs on its own, one this file starts with `ops/db`
under a temporary ADMINBUS_HOME. Each test gets its own database, its own ports and its
own broker and engine (the `stack` fixture), so tests never see each other's rows.

Binaries come from $ADMINBUS_BUILD/bin (default: build/bin in the checkout).

Run with Debian's Python (python3-pytest, python3-zmq, python3-msgpack, python3-pymysql):
    pytest-3 tests/e2e                        # or /usr/bin/python3 -m pytest tests/e2e
    ADMINBUS_BUILD=build-asan pytest-3 tests/e2e -k idempotency
`ops/test` runs it against the ASan build and the RelWithDebInfo build.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import msgpack
import pymysql
import pytest
import zmq

ROOT = Path(__file__).resolve().parents[2]
_build = Path(os.environ.get("ADMINBUS_BUILD", "build"))
BUILD = _build if _build.is_absolute() else ROOT / _build
BIN = BUILD / "bin"

# Lines a sanitizer writes when it finds something (ASan, LSan, UBSan).
SANITIZER_REPORT = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|Undefined)"
)
STOP_GRACE = 20  # seconds a daemon gets to exit after SIGTERM (LeakSanitizer runs at exit)


def free_ports(n):
    """n distinct free TCP ports on loopback (bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def short_dir():
    """A new private folder (mode 0700) with a short path, for Unix sockets: pytest's paths
    can exceed the 107 bytes of a socket path. The caller removes it."""
    return Path(tempfile.mkdtemp(prefix="ab-"))


def internal_ipc(folder):
    """adminbus.conf lines putting the internal endpoints (engine, publish, notices) in
    folder, and those endpoints by name."""
    eps = {n: f"ipc://{folder}/{n}.sock" for n in ("engine", "publish", "notices")}
    return "".join(f"{n}_endpoint={e}\n" for n, e in eps.items()), eps


@pytest.fixture
def sockets_dir():
    """short_dir(), removed after the test."""
    d = short_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def clean_env(**extra):
    """The environment for our processes: ours, minus any ADMINBUS_* the caller's shell set
    (they would override the test's configuration), plus sanitizer defaults and extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINBUS_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:disable_coredump=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    supp = ROOT / "tests" / "lsan.supp"
    if supp.exists():
        env.setdefault("LSAN_OPTIONS", f"suppressions={supp}:print_suppressions=0")
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --- the session's MariaDB server ---------------------------------------------------------


class MariaDB:
    """How to reach the session's server as a user that may create databases."""

    def __init__(self, dsn):
        u = urlparse(dsn)
        if u.scheme != "mariadb":
            raise ValueError(f"not a mariadb:// DSN: {dsn}")
        # As the engine reads it: user and password percent-decoded, parameters as written.
        q = dict(p.partition("=")[::2] for p in u.query.split("&") if p)
        self.user = unquote(u.username or "")
        self.password = unquote(u.password or "")
        self.host = u.hostname or "localhost"
        self.port = u.port or 3306
        self.socket = q.get("socket")
        self.home = None  # its ADMINBUS_HOME when we may restart it (see restartable())
        self.start_env = {}  # what ops/db start needs besides the home (ADMINBUS_DB_OPTIONS)

    # -- stopping and starting the server itself (the chaos test) --

    def restartable(self):
        """True when this session's server is one ops/db runs under a home we know: the one
        this file started, or the one `ops/test` started (it exports ADMINBUS_HOME)."""
        return self.home is not None and self.pid() is not None

    def pid(self):
        """The server's pid from its pid file (ops/db's), or None."""
        try:
            return int((Path(self.home) / "run" / "mariadb.pid").read_text().strip())
        except (OSError, ValueError, TypeError):
            return None

    def kill9(self):
        """kill -9 the server (as a crash would) and wait until it is gone."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise AssertionError(f"mariadbd {pid} still alive 30 s after SIGKILL")

    def start(self):
        """Start the server again on the same data folder and socket (ops/db start)."""
        subprocess.run([str(ROOT / "ops" / "db"), "start"],
                       env=clean_env(ADMINBUS_HOME=self.home, **self.start_env), check=True,
                       timeout=120)

    def connect(self, database=None):
        kw = dict(user=self.user, password=self.password, database=database,
                  autocommit=True, charset="utf8mb4", cursorclass=pymysql.cursors.DictCursor)
        if self.socket:
            kw["unix_socket"] = self.socket
        else:
            kw.update(host=self.host, port=self.port)
        return pymysql.connect(**kw)

    def dsn_for(self, database):
        """The DSN the engine gets: same server and account, another database. User and
        password percent-encoded, as the engine decodes them."""
        cred = quote(self.user, safe="") + (f":{quote(self.password, safe='')}"
                                            if self.password else "")
        if self.socket:
            return f"mariadb://{cred}@localhost/{database}?socket={self.socket}"
        return f"mariadb://{cred}@{self.host}:{self.port}/{database}"


@pytest.fixture(scope="session")
def mariadb():
    dsn = os.environ.get("ADMINBUS_TEST_DSN")
    if dsn:
        m = MariaDB(dsn)
        # ops/test exports the ADMINBUS_HOME its server runs under: restartable when the
        # DSN that home gives is this one.
        home = os.environ.get("ADMINBUS_HOME")
        if home:
            got = subprocess.run([str(ROOT / "ops" / "db"), "dsn"],
                                 env=clean_env(ADMINBUS_HOME=home),
                                 capture_output=True, text=True).stdout.strip()
            if got == dsn:
                m.home = home
        yield m
        return
    # Standalone: our own private server under a temporary home, stopped at the end.
    with private_mariadb() as m:
        yield m


@contextmanager
def private_mariadb(options=()):
    """A MariaDB server of our own (ops/db) under a temporary home; stopped and removed at
    the end. options: more mariadbd options (["--log-bin"]), kept for restarts."""
    home = tempfile.mkdtemp(prefix="ab-e2e-")
    start_env = {"ADMINBUS_DB_OPTIONS": " ".join(options)} if options else {}
    env = clean_env(ADMINBUS_HOME=home, **start_env)
    try:
        subprocess.run([str(ROOT / "ops" / "db"), "start"], env=env, check=True, timeout=180)
        dsn = subprocess.run([str(ROOT / "ops" / "db"), "dsn"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        m = MariaDB(dsn)
        m.home, m.start_env = home, start_env
        yield m
    finally:
        subprocess.run([str(ROOT / "ops" / "db"), "stop"], env=env, check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def own_mariadb():
    """A server for this test alone, for a test that kills it -9 and starts it again: the
    session's server is shared with the tests running beside this one (ops/test runs the
    suite in two pytest processes), and they must not see it go."""
    with private_mariadb() as m:
        yield m


@pytest.fixture(scope="session", autouse=True)
def binaries():
    missing = [b for b in ("adminbus-engine", "adminbus-broker", "adminctl")
               if not (BIN / b).exists()]
    if missing:
        pytest.exit(f"missing binaries in {BIN}: {', '.join(missing)} (build first)", 2)


# --- one stack per test ---------------------------------------------------------------------


class Daemon:
    """One broker or engine process that a test started."""

    def __init__(self, name, argv, env, log):
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            out.write(f"--- started {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.expected_dead = False

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_GRACE seconds. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                return "did not exit within %ds of SIGTERM (killed)" % STOP_GRACE
        return self.proc.returncode


class StartedDaemon(Daemon):
    """A daemon a test starts and may kill or stop (workers, schedulers): killing it with
    kill9() or stopping it with stop() is expected; any other death, or a non-zero exit
    after SIGTERM, fails the test at teardown."""

    def __init__(self, stack, name, argv, log):
        super().__init__(name, argv, stack.env, log)
        self.stack = stack
        self.returncode = None

    def kill9(self):
        self.expected_dead = True
        super().kill9()

    def stop(self):
        """SIGTERM and wait (see Daemon.stop); a non-zero exit fails the test at teardown.
        Returns the exit status."""
        self.expected_dead = True
        rc = super().stop()
        self.returncode = rc
        if rc != 0:
            self.stack.problems.append(f"{self.name} exited with {rc} after SIGTERM:\n"
                                       f"{self.stack.tail(self.log)}")
        return rc

    def log_size(self):
        """Where its log ends now: a mark for log_text(since) and wait_log(since=)."""
        return Path(self.log).stat().st_size

    def log_text(self, since=0):
        """Its log, from byte offset since (a log_size() taken earlier) on."""
        with open(self.log, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=30, since=0, count=1):
        """Wait until needle is in its log count times after byte offset since; fails when
        it exits without writing them or they do not come within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()  # before reading: a process that exited wrote all it had
            if self.log_text(since).count(needle) >= count:
                return self
            if not alive:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     f"{self.stack.tail(self.log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {needle!r} not {count} time(s) in its log "
                                     f"within {timeout}s:\n{self.stack.tail(self.log)}")
            time.sleep(0.05)


class Worker(StartedDaemon):
    """One adminbus-worker a test started (Stack.start_worker)."""

    def __init__(self, stack, queue, argv, log):
        super().__init__(stack, f"worker {queue} #{len(stack.workers) + 1}", argv, log)
        self.queue = queue
        self.id = None  # host:pid:queue, once the worker has registered

    def wait_registered(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} during "
                                     f"start:\n{self.stack.tail(self.log)}")
            rows = self.stack.rows("SELECT id FROM workers WHERE pid = %s AND queue = %s "
                                   "AND status = 'ok'", self.pid, self.queue)
            if rows:
                self.id = rows[0]["id"]
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not register within {timeout}s:\n"
                             f"{self.stack.tail(self.log)}")



class Scheduler(StartedDaemon):
    """One adminbus-scheduler a test started (Stack.start_scheduler)."""

    def __init__(self, stack, argv, log):
        super().__init__(stack, f"scheduler #{len(stack.schedulers) + 1}", argv, log)

    def is_leader(self):
        """True when its log says it leads and has not said it lost the lead since."""
        text = self.log_text()
        return text.rfind(": leader (") > text.rfind("no longer the leader")



class Supervisor(StartedDaemon):
    """One adminbus-supervisor a test started (Stack.start_supervisor)."""

    def __init__(self, stack, argv, log):
        super().__init__(stack, f"supervisor #{len(stack.supervisors) + 1}", argv, log)
        self.id = None  # host:pid, once it has registered

    def wait_registered(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} during "
                                     f"start:\n{self.stack.tail(self.log)}")
            rows = self.stack.rows("SELECT id FROM supervisors WHERE pid = %s AND status = 'ok'",
                                   self.pid)
            if rows:
                self.id = rows[0]["id"]
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not register within {timeout}s:\n"
                             f"{self.stack.tail(self.log)}")

    def workers(self, status="ok"):
        """Its workers' rows (those registered with its id) in that status, by id."""
        return self.stack.rows("SELECT * FROM workers WHERE supervisor = %s AND status = %s "
                               "ORDER BY id", self.id, status)

    def wait_workers(self, n, queue=None, timeout=30, exclude=()):
        """Wait until n of its workers (of queue, when given; not in exclude) are registered
        and `ok`; returns their rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.workers() if (queue is None or r["queue"] == queue)
                    and r["id"] not in exclude]
            if len(rows) >= n:
                return rows
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     f"{self.stack.tail(self.log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {len(rows)} of {n} workers registered "
                                     f"within {timeout}s:\n{self.stack.tail(self.log)}")
            time.sleep(0.05)


class HttpShim(StartedDaemon):
    """One adminbus-http a test started (Stack.start_http)."""

    def __init__(self, stack, argv, log, port_file):
        super().__init__(stack, f"http #{len(stack.https) + 1}", argv, log)
        self.port_file = port_file
        self.base = None

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} during "
                                     f"start:\n{self.stack.tail(self.log)}")
            try:
                port = int(self.port_file.read_text().strip())
                self.base = f"http://127.0.0.1:{port}"
                return self
            except (OSError, ValueError):
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not listen within {timeout}s:\n"
                             f"{self.stack.tail(self.log)}")


class Stack:
    """A broker and an engine on their own ports and database. See the `stack` fixture.

    The internal endpoints (engine, publish, notices; self.endpoints) are, by `internal`:
    "ipc" (the default) sockets in a short private folder of their own (self.sockets:
    pytest's paths can exceed the 107 bytes of a Unix socket path); "auto" the built-in
    default, ipc:// in the home (which must then be short); "tcp" loopback ports with CURVE
    and the daemons' key, made by `adminbus-broker --curve-init` at start."""

    def __init__(self, mariadb, home, max_frame=65536, internal="ipc"):
        self.mariadb = mariadb
        self.home = home
        self.database = "t_" + secrets.token_hex(6)
        self.internal = internal
        self.ports = free_ports(5 if internal == "tcp" else 2)
        self.url = f"tcp://127.0.0.1:{self.ports[0]}"
        self.events = f"tcp://127.0.0.1:{self.ports[1]}"
        self.endpoints = {}  # engine, publish, notices → the endpoint the broker binds
        self.sockets = None  # internal == "ipc": their folder, removed at close
        self.max_frame = max_frame
        self.problems = []  # what teardown must report
        self.engine = None
        self.broker = None
        self.ctx = zmq.Context()
        self.env = clean_env(ADMINBUS_HOME=home)
        self.key = None
        self.db = None
        self.created = False
        self.workers = []  # Worker handles, stopped at teardown
        self.schedulers = []  # Scheduler handles, stopped at teardown
        self.supervisors = []  # Supervisor handles, stopped (first) at teardown
        self.extra_conf = ""  # more adminbus.conf lines (a subclass's: curve=on)
        self.log_level = "info"  # every daemon's (adminbus.conf), set before start()
        self.https = []  # HttpShim handles (adminbus-http), stopped at teardown

    def start(self):
        """Create the database, bootstrap it (engine --init), start broker and engine."""
        mariadb, home = self.mariadb, self.home
        admin = mariadb.connect()
        with admin.cursor() as c:
            c.execute(f"CREATE DATABASE `{self.database}` "
                      "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        admin.close()
        self.created = True
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "adminbus.conf"
        conf.write_text(
            f"db_dsn={mariadb.dsn_for(self.database)}\n"
            f"commands_endpoint={self.url}\n"
            f"events_endpoint={self.events}\n" + self.internal_conf() +
            f"max_frame={self.max_frame}\n"
            f"log_level={self.log_level}\n" + self.extra_conf)
        conf.chmod(0o600)
        if self.internal == "tcp":
            init = subprocess.run([str(BIN / "adminbus-broker"), "--curve-init"], env=self.env,
                                  capture_output=True, text=True, timeout=60)
            assert init.returncode == 0, f"adminbus-broker --curve-init failed:\n{init.stderr}"

        init = subprocess.run([str(BIN / "adminbus-engine"), "--init"], env=self.env,
                              capture_output=True, text=True, timeout=120)
        # Kept for debugging, without the key --init hands out once on stdout (the test of
        # secrets in clear scans this folder).
        (home / "engine-init.log").write_text(
            re.sub(r"^(ADMINBUS_AUTHKEY=).*$", r"\1*****", init.stdout, flags=re.M) +
            init.stderr)
        self.check_log_text("engine --init", init.stderr)
        assert init.returncode == 0, f"adminbus-engine --init failed:\n{init.stderr}"
        keys = re.findall(r"^ADMINBUS_AUTHKEY=(\S+)$", init.stdout, re.M)
        assert len(keys) == 1, f"--init printed no single ADMINBUS_AUTHKEY line:\n{init.stdout}"
        self.key = keys[0]

        self.db = mariadb.connect(self.database)
        self.broker = Daemon("broker", [str(BIN / "adminbus-broker")], self.env,
                             home / "broker.log")
        self.start_engine()

    def internal_conf(self):
        """The adminbus.conf lines of the internal endpoints (see the class); sets
        self.endpoints."""
        names = ("engine", "publish", "notices")
        if self.internal == "auto":
            home = os.path.realpath(self.home)
            self.endpoints = {n: f"ipc://{home}/{n}.sock" for n in names}
            return ""
        if self.internal == "tcp":
            self.endpoints = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(names, self.ports[2:])}
            return "".join(f"{n}_endpoint={e}\n" for n, e in self.endpoints.items())
        self.sockets = short_dir()
        lines, self.endpoints = internal_ipc(self.sockets)
        return lines

    # -- processes --

    def start_engine(self, timeout=60):
        """Start the engine (again) and wait until it answers."""
        assert self.engine is None or not self.engine.alive(), "engine already running"
        self.engine = Daemon("engine", [str(BIN / "adminbus-engine")], self.env,
                             self.home / "engine.log")
        self.wait_ready(timeout)

    def start_worker(self, queue="default", wait=True, **config):
        """Start an adminbus-worker for queue with extra config flags (job_lease_s=2 →
        --job-lease-s=2). Waits until it has registered (its row is `ok`) unless wait=False.
        Returns a Worker: .pid, .id, .kill9(), .stop()."""
        exe = BIN / "adminbus-worker"
        assert exe.exists(), f"missing {exe} (build first)"
        argv = [str(exe), "--queue", queue]
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
        log = self.home / f"worker-{len(self.workers) + 1}.log"
        w = Worker(self, queue, argv, log)
        self.workers.append(w)
        return w.wait_registered() if wait else w

    def start_scheduler(self, wait=True, **config):
        """Start an adminbus-scheduler with extra config flags (log_level=debug →
        --log-level=debug). Waits until it has started (its log says so) unless wait=False.
        Returns a Scheduler: .pid, .is_leader(), .wait_log(text), .kill9(), .stop()."""
        exe = BIN / "adminbus-scheduler"
        assert exe.exists(), f"missing {exe} (build first)"
        argv = [str(exe)] + [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
        log = self.home / f"scheduler-{len(self.schedulers) + 1}.log"
        s = Scheduler(self, argv, log)
        self.schedulers.append(s)
        return s.wait_log(": started;") if wait else s

    def start_supervisor(self, wait=True, **config):
        """Start an adminbus-supervisor with extra config flags (workers="default:2" →
        --workers=default:2). Its workers inherit its configuration; worker_grace_s defaults
        to 5 here (not 30) so that a stop fits the teardown's wait. Waits until it has
        registered unless wait=False. Returns a Supervisor: .pid, .id, .workers(),
        .wait_workers(n), .wait_log(text), .stop(), .kill9(). Its workers' output goes to
        its log."""
        exe = BIN / "adminbus-supervisor"
        assert exe.exists(), f"missing {exe} (build first)"
        config.setdefault("worker_grace_s", 5)
        argv = [str(exe)] + [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
        log = self.home / f"supervisor-{len(self.supervisors) + 1}.log"
        s = Supervisor(self, argv, log)
        self.supervisors.append(s)
        return s.wait_registered() if wait else s

    def start_http(self, wait=True, **config):
        """Start adminbus-http (the HTTP shim) on a free loopback port against this stack, with
        extra flags (max_body=1024 → --max-body=1024). Returns an HttpShim: .base
        (http://127.0.0.1:PORT), .stop(), .kill9()."""
        exe = BIN / "adminbus-http"
        assert exe.exists(), f"missing {exe} (build first)"
        n = len(self.https) + 1
        port_file = self.home / f"http-{n}.port"
        argv = [str(exe), "--url", self.url, "--events", self.events, "--port", "0",
                "--port-file", str(port_file)]
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
        h = HttpShim(self, argv, self.home / f"http-{n}.log", port_file)
        self.https.append(h)
        return h.wait_listening() if wait else h

    def kill_engine(self):
        """kill -9 the engine (expected death: teardown will not report it)."""
        self.engine.kill9()
        self.engine.expected_dead = True
        self.check_log_file(self.engine.log)

    def daemons(self):
        """The daemons the stack needs to answer (wait_ready watches them): broker, engine."""
        return [self.broker, self.engine]

    def wait_ready(self, timeout=60, per_try=1.0, what="stack"):
        """Send auth.whoami (each try waiting per_try seconds) until one answers ok; fail with
        the daemons' logs when one of them exits first or nothing answers within timeout."""
        daemons = [d for d in self.daemons() if d is not None]
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for d in daemons:
                if not d.alive() and not d.expected_dead:
                    raise AssertionError(f"{d.name} exited with {d.proc.returncode} during "
                                         f"start:\n{self.tail(d.log)}")
            try:
                last = self.cmd("auth.whoami", timeout=per_try)
                if last.get("ok"):
                    return
            except TimeoutError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"{what} not ready within {timeout}s (last: {last!r})\n" +
                             "\n".join(f"{d.name}:\n{self.tail(d.log)}" for d in daemons))

    @staticmethod
    def tail(path, n=30):
        try:
            return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def check_log_text(self, what, text):
        if SANITIZER_REPORT.search(text or ""):
            self.problems.append(f"{what}: sanitizer report:\n{text[-4000:]}")

    def check_log_file(self, path):
        self.check_log_text(Path(path).name, Path(path).read_text(errors="replace"))

    # -- the wire --

    def socket(self):
        """A fresh DEALER connected to the command endpoint (caller closes it)."""
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        self.client_options(s)
        s.connect(self.url)
        return s

    def client_options(self, sock):
        """Socket options a client sets before it connects (a subclass's CURVE keys)."""

    def client_env(self):
        """Environment a client process gets on top of self.env (a subclass's CURVE keys)."""
        return {}

    def command(self, type, args=None, id=None, auth=None):
        """The v1 command map (not sent)."""
        return {"v": 1, "id": id or str(uuid.uuid4()), "type": type,
                "args": {} if args is None else args,
                "auth": self.key if auth is None else auth}

    def send(self, body, timeout=10.0):
        """Send one command (a map, packed here, or raw bytes) on a fresh DEALER and
        return the decoded reply. Raises TimeoutError when none comes."""
        if not isinstance(body, (bytes, bytearray)):
            body = msgpack.packb(body, use_bin_type=True)
        s = self.socket()
        try:
            s.send_multipart([b"", body])
            if not s.poll(int(timeout * 1000)):
                raise TimeoutError(f"no reply within {timeout}s")
            frames = s.recv_multipart()
            assert frames[0] == b"", f"reply frames: {frames!r}"
            assert len(frames) == 2, f"reply frames: {frames!r}"
            return msgpack.unpackb(frames[1], raw=False)
        finally:
            s.close()

    def cmd(self, type, args=None, id=None, auth=None, timeout=10.0):
        """Send a v1 command and return the decoded reply map."""
        return self.send(self.command(type, args, id, auth), timeout=timeout)

    def ok(self, type, args=None, **kw):
        """cmd() that must succeed; returns the result."""
        r = self.cmd(type, args, **kw)
        assert r.get("ok") is True, f"{type} {args!r} failed: {r!r}"
        return r["result"]

    def adminctl(self, *args, url=None, key=None, timeout=60, stdin=None):
        """Run build/bin/adminctl (stdin: text for its standard input); returns (rc, stdout,
        stderr)."""
        env = dict(self.env, ADMINBUS_URL=url or self.url,
                   ADMINBUS_AUTHKEY=self.key if key is None else key, **self.client_env())
        p = subprocess.run([str(BIN / "adminctl"), *map(str, args)], env=env,
                           capture_output=True, text=True, timeout=timeout,
                           input=stdin if stdin is not None else "")
        return p.returncode, p.stdout, p.stderr

    # -- the database --

    def rows(self, sql, *params):
        with self.db.cursor() as c:
            c.execute(sql, params)
            return c.fetchall()

    def count(self, table, where="1", *params):
        return self.rows(f"SELECT COUNT(*) AS n FROM `{table}` WHERE {where}", *params)[0]["n"]

    def counts(self):
        """Row counts of the tables a command may write."""
        return {t: self.count(t) for t in ("organisations", "logs", "command_ids")}

    # -- teardown --

    def close_workers(self):
        # Supervisors first: each stops exactly its own workers.
        for w in self.supervisors + self.schedulers + self.workers + self.https:
            if not w.expected_dead:
                if not w.alive():
                    self.problems.append(f"{w.name} died unexpectedly (exit "
                                         f"{w.proc.returncode}):\n{self.tail(w.log)}")
                else:
                    w.stop()
            self.check_log_file(w.log)

    def stop_daemons(self, daemons):
        """SIGTERM each daemon (in order) that is not expected dead; a daemon that died on its
        own or exits badly goes to self.problems; every log is scanned for sanitizer reports."""
        daemons = [d for d in daemons if d is not None]
        for d in daemons:
            if d.expected_dead:
                continue
            if not d.alive():
                self.problems.append(f"{d.name} died unexpectedly (exit {d.proc.returncode}):\n"
                                     f"{self.tail(d.log)}")
                continue
            rc = d.stop()
            if rc not in (0, -signal.SIGTERM):
                self.problems.append(f"{d.name} exited with {rc} after SIGTERM:\n"
                                     f"{self.tail(d.log)}")
        for d in daemons:
            self.check_log_file(d.log)

    def close(self):
        self.close_workers()
        self.stop_daemons([self.engine, self.broker])
        self.ctx.destroy(linger=0)
        if self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)
        if self.db is not None:
            self.db.close()
        if not self.created:
            return
        admin = self.mariadb.connect()
        with admin.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        admin.close()


@contextmanager
def running(stack, **start):
    """Start stack (start(**start)), hand it out, close it; then fail the test when teardown
    found problems (a daemon died unexpectedly, a sanitizer reported). Every stack fixture
    (Stack, CurveStack, KafkaStack) goes through here."""
    try:
        stack.start(**start)
        yield stack
    finally:
        stack.close()
    if stack.problems:
        pytest.fail("\n\n".join(stack.problems), pytrace=False)


@pytest.fixture(scope="module")
def kafka_mock(tmp_path_factory):
    """librdkafka's mock cluster (tests/e2e/kafka_stack.py), one per test file that uses it:
    each test still gets its own topics, group and database."""
    from kafka_stack import KafkaMock  # it imports this module

    mock = KafkaMock(tmp_path_factory.mktemp("kafka") / "mock.log")
    yield mock
    rc = mock.stop()
    assert rc == 0, f"adminbus-kafka-mock exited with {rc}"


@pytest.fixture
def kstack(mariadb, tmp_path, kafka_mock):
    """One engine on Kafka and no broker; a test starts the other daemons it needs."""
    from kafka_stack import KafkaStack

    with running(KafkaStack(mariadb, tmp_path / "home", kafka_mock), engines=1) as s:
        yield s


@pytest.fixture
def stack(mariadb, tmp_path):
    """A fresh database, a broker and an engine on free loopback ports; see Stack.
    Teardown stops exactly the processes it started, drops the database, and fails the
    test when a daemon died unexpectedly or a sanitizer reported anything."""
    with running(Stack(mariadb, tmp_path / "home")) as s:
        yield s
