"""Small helpers shared by the end-to-end tests."""

import json
import re
import subprocess
import time
from pathlib import Path

import msgpack
import zmq

from conftest import ROOT, free_ports

UUID_LOWER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ctl_json(stack, *args, expect_rc=0):
    """Run `adminctl --json ARGS`, check its exit code, return the parsed JSON result.
    (A reply-shaped document {ok, result|error} is unwrapped to its result or error.)"""
    rc, out, err = stack.adminctl("--json", *args)
    assert rc == expect_rc, f"adminctl {' '.join(map(str, args))}: rc {rc}\n{out}\n{err}"
    doc = json.loads(out)
    if isinstance(doc, dict) and "ok" in doc and ("result" in doc or "error" in doc):
        return doc.get("result", doc.get("error"))
    return doc


def error_of(reply):
    """The error map of a reply that must be an error."""
    assert reply.get("ok") is False, f"expected an error reply, got {reply!r}"
    assert "result" not in reply, reply
    err = reply["error"]
    assert isinstance(err.get("message"), str) and err["message"], reply
    return err


def assert_error(reply, code, field=None):
    err = error_of(reply)
    assert err["code"] == code, f"expected {code}, got {reply!r}"
    if field is not None:
        assert err.get("field") == field, f"expected field {field!r}, got {reply!r}"
    return err


def audit_rows(stack, model=None, action=None, model_id=None):
    where, params = ["1"], []
    for col, val in (("model", model), ("action", action), ("model_id", model_id)):
        if val is not None:
            where.append(f"`{col}` = %s")
            params.append(val)
    return stack.rows(f"SELECT * FROM logs WHERE {' AND '.join(where)} ORDER BY id", *params)


def admin(stack):
    """The site administrator and host organisation, as the database has them."""
    rows = stack.rows(
        "SELECT u.id, u.email, o.id AS org_id, o.name AS org_name, o.uuid AS org_uuid "
        "FROM users u JOIN organisations o ON o.id = u.org_id ORDER BY u.id LIMIT 1")
    assert rows, "no site administrator in the database"
    return rows[0]


def wait_for(what, fn, timeout=30, every=0.05):
    """fn()'s first true value, asked every `every` seconds; fails saying what did not
    happen when none comes within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(every)


PAUSED = ": paused: claims nothing"  # a paused worker's debug line, each time it looks


def paused_worker_claims_nothing(stack, worker, enqueue, timeout=30):
    """Show, without sleeping, that a paused worker (run at log_level debug) claims nothing:
    enqueue() three jobs for its queue and wait for two of its looks at its row. The first
    job is committed before the mark; the second job's wake-up makes the worker look (a PAUSED
    line after the mark); the third, enqueued once that line is written, makes it look again.
    That second look began after the first job was committed: a worker that claims while
    paused would have claimed by then. Fails at once if a job's row is no longer as its
    enqueue left it (a claim that was handed back at once leaves its message); returns the
    job ids."""
    jobs = [enqueue()]
    mark = worker.log_size()
    jobs.append(enqueue())

    def claimed():
        marks = ", ".join(["%s"] * len(jobs))
        return stack.rows(f"SELECT id, state, message, attempts, process_id FROM jobs "
                          f"WHERE id IN ({marks}) AND NOT (state = 'queued' AND "
                          "message = 'Queued' AND attempts = 0 AND process_id IS NULL)", *jobs)

    for looks in (1, 2):
        wait_for(f"{worker.name} to look at its row {looks} time(s) while paused",
                 lambda: claimed() or worker.log_text(mark).count(PAUSED) >= looks, timeout)
        touched = claimed()
        assert not touched, f"a paused worker claimed: {touched}"
        if looks == 1:
            jobs.append(enqueue())
    return jobs


def wait_job(stack, job, timeout=60, states=("done", "failed")):
    """The job's row (state, message, attempts) once it is in one of states."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.rows("SELECT state, message, attempts FROM jobs WHERE id = %s", job)[0]
        if row["state"] in states:
            return row
        time.sleep(0.1)
    raise AssertionError(f"job {job} not finished within {timeout}s: {row}")


class LoopServer:
    """The test side of a loopback test server (tests/e2e/keyserver.py, smtp_sink.py): runs
    the script on a free 127.0.0.1 port with its folder (self.dir) and extra arguments,
    waits for its "ready" line (loopserver.serve_until_signal), stops it by its pid.
    Its stderr goes to FOLDER/../NAME.log. A context manager: `with Server(...) as s:`."""

    def __init__(self, script, folder, *args):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.name = Path(script).stem
        self.log = open(self.dir.parent / f"{self.name}.log", "ab")
        argv = ["/usr/bin/python3", str(ROOT / "tests" / "e2e" / script),
                "--port", str(self.port), "--dir", str(self.dir), *map(str, args)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            self.stop()
            raise AssertionError(f"{self.name} did not start: {line!r} (see {self.log.name})")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class EventLog:
    """Events a test follows, every one it saw kept in order: `seen` holds (monotonic time,
    topic, event). A subclass reads its bus in _pump(timeout), appending to `seen` and
    returning whether anything came (ZmqEventLog: a ZeroMQ SUB; kafka_stack's KafkaEvents: a
    tail of the events topic)."""

    def __init__(self):
        self.seen = []

    def _pump(self, timeout):
        raise NotImplementedError

    def wait(self, topic, timeout=10.0, where=lambda ev: True, after=0, prefix=False):
        """The first event on topic (exact, or any topic starting with it when prefix)
        satisfying where, seen after index `after`; returns (index, time, event)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (t, tp, ev) in enumerate(self.seen[after:], start=after):
                if (tp.startswith(topic) if prefix else tp == topic) and where(ev):
                    return i, t, ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {topic} within {timeout}s; saw {self.topics()}")
            self._pump(min(left, 0.1))

    def topics(self, prefix=""):
        self._pump(0)
        return [tp for _, tp, _ in self.seen if tp.startswith(prefix)]

    def of_job(self, job_id):
        """The events of one job, in order: [(event name, data)]."""
        pre = f"job.{job_id}."
        self._pump(0)
        return [(tp[len(pre):], ev["data"]) for _, tp, ev in self.seen if tp.startswith(pre)]

    def times_of_job(self, job_id):
        """The `ts` (unix ms, the publisher's clock) of each event of of_job(job_id)."""
        pre = f"job.{job_id}."
        return [ev["ts"] for _, tp, ev in self.seen if tp.startswith(pre)]


class ZmqEventLog(EventLog):
    """An EventLog over a ZeroMQ SUB on the stack's events endpoint, subscribed to the topic
    prefixes given (every topic by default)."""

    def __init__(self, stack, prefixes=(b"",)):
        super().__init__()
        self.sock = stack.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for p in prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p)
        self.sock.connect(stack.events)

    def _pump(self, timeout):
        got = False
        while self.sock.poll(int(timeout * 1000)):
            topic, body = self.sock.recv_multipart()
            self.seen.append((time.monotonic(), topic.decode(), msgpack.unpackb(body)))
            got = True
            timeout = 0
        return got

    def close(self):
        self.sock.close()
