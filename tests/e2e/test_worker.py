"""adminbus-worker: claims under a lease, runs, retries with back-off, fails, cancels,
pauses, hands back on SIGTERM, and puts back the jobs of a worker killed -9 (issue 3).

Every test checks the rows in MariaDB and the events a subscriber saw. Jobs are enqueued
with the `job.enqueue` command when the engine has it, else by SQL exactly as
ab_job_enqueue does (a jobs row and a job_ready row in one transaction, no wake-up)."""

import subprocess
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from conftest import BIN
from helpers import ZmqEventLog, paused_worker_claims_nothing


# --- helpers --------------------------------------------------------------------------------


class Events(ZmqEventLog):
    """A subscriber to job., worker. and wake. events that keeps everything it saw."""

    def __init__(self, stack):
        super().__init__(stack, (b"job.", b"worker.", b"wake.", b"audit.Organisation.add"))
        # A subscription takes a moment to travel upstream: probe until one arrives.
        for i in range(100):
            stack.ok("org.add", {"name": f"probe-{i}"})
            if self._pump(0.1):
                return
        raise AssertionError("no event reached the subscriber within 10 s")


@pytest.fixture
def events(stack):
    e = Events(stack)
    yield e
    e.close()


def sql_enqueue(stack, type, args=None, priority=0, max_attempts=5, run_at_ms=None,
                queue="default"):
    """INSERT into jobs and job_ready in one transaction, as ab_job_enqueue does."""
    payload = msgpack.packb(args, use_bin_type=True) if args is not None else None
    run_at = "UTC_TIMESTAMP(3)" if run_at_ms is None else "FROM_UNIXTIME(%s / 1000)"
    params = [] if run_at_ms is None else [run_at_ms]
    c = stack.db.cursor()
    try:
        c.execute("SET time_zone = '+00:00'")  # as the engine's sessions: times are UTC
        c.execute("BEGIN")
        c.execute("INSERT INTO jobs (worker, job_type, job_input, payload, priority, run_at, "
                  "max_attempts, state, status, message, date_created, date_modified) "
                  f"VALUES (%s, %s, %s, %s, %s, {run_at}, %s, 'queued', 1, 'Queued', "
                  "UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                  [queue, type, "test", payload, priority, *params, max_attempts])
        job_id = c.lastrowid
        c.execute("INSERT INTO job_ready (worker, prank, run_at, job_id) "
                  "SELECT worker, -priority, run_at, id FROM jobs WHERE id = %s", [job_id])
        c.execute("COMMIT")
    finally:
        c.close()
    return job_id


def enqueue(stack, type, args=None, **opt):
    """Enqueue through the engine (job.enqueue), or by SQL for a queue no job type uses.
    Returns the job id."""
    if not opt.get("queue"):
        cargs = {"type": type, **({"args": args} if args is not None else {})}
        if "max_attempts" in opt:
            cargs["max_attempts"] = opt["max_attempts"]
        if "run_at_ms" in opt:
            cargs["run_at"] = opt["run_at_ms"]
        r = stack.ok("job.enqueue", cargs)
        assert r["state"] in ("queued", "running") and r["existed"] is False, r  # running: handed over
        return r["id"]
    return sql_enqueue(stack, type, args, **opt)


def job(stack, job_id):
    return stack.rows("SELECT * FROM jobs WHERE id = %s", job_id)[0]


def wait_state(stack, job_id, states, timeout=15.0):
    states = (states,) if isinstance(states, str) else states
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = job(stack, job_id)
        if row["state"] in states:
            return row
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not {states} within {timeout}s: {job(stack, job_id)!r}")


def effects(stack, job_id):
    return stack.rows("SELECT * FROM job_effects WHERE job_id = %s", job_id)


def worker_row(stack, w):
    return stack.rows("SELECT * FROM workers WHERE id = %s", w.id)[0]


def assert_finished(row, state, status):
    assert row["state"] == state and row["status"] == status, row
    assert row["lease_token"] is None and row["lease_expires"] is None, row
    assert row["date_finished"] is not None, row


# --- running, retrying, failing ---------------------------------------------------------------


def test_noop_records_its_effect_once_and_ends_done(stack, events):
    w = stack.start_worker()
    events.wait(f"worker.{w.id}.up", where=lambda ev: ev["data"]["status"] == "ok")
    jid = enqueue(stack, "noop", {"record": "tag-noop"})
    row = wait_state(stack, jid, "done")
    assert_finished(row, "done", 4)
    assert row["progress"] == 100 and row["attempts"] == 1 and row["retries"] == 0, row
    assert row["process_id"] == w.id
    eff = effects(stack, jid)
    assert [(e["tag"], e["attempt"]) for e in eff] == [("tag-noop", 1)]
    assert stack.count("job_ready", "job_id = %s", jid) == 0
    _, _, ev = events.wait(f"job.{jid}.done")
    assert ev["data"] == {"id": jid, "queue": "default", "type": "noop", "state": "done",
                          "attempt": 1, "worker": w.id}
    names = [n for n, _ in events.of_job(jid) if n not in ("queued", "progress")]
    assert names == ["started", "done"]
    started = dict(events.of_job(jid))["started"]
    assert started["state"] == "running" and started["attempt"] == 1
    assert started["worker"] == w.id
    assert worker_row(stack, w)["done_count"] == 1


def test_temporary_failures_are_retried_with_backoff(stack, events):
    stack.start_worker()
    jid = enqueue(stack, "sleep", {"ms": 0, "fail": 2, "record": "tag-retry"})
    row = wait_state(stack, jid, "done")
    assert_finished(row, "done", 4)
    assert row["attempts"] == 3 and row["retries"] == 2, row
    assert row["last_error"] == "failed on purpose (attempt 2)", row
    assert [e["attempt"] for e in effects(stack, jid)] == [3]
    events.wait(f"job.{jid}.done")
    seq = [(n, d.get("attempt")) for n, d in events.of_job(jid) if n not in ("queued", "progress")]
    assert seq == [("started", 1), ("retrying", 1), ("started", 2), ("retrying", 2),
                   ("started", 3), ("done", 3)]
    retries = [d for n, d in events.of_job(jid) if n == "retrying"]
    assert retries[0]["error"] == "failed on purpose (attempt 1)"
    assert retries[0]["state"] == "retrying" and retries[0]["run_at"] > 0
    # back-off: base 500 ms then 1000 ms, each ±25 % (event times: the worker's clock, ms)
    ts = [(n, d.get("attempt"), ev_ts) for (n, d), ev_ts in
          zip(events.of_job(jid), events.times_of_job(jid)) if n in ("retrying", "started")]
    t = {(n, a): when for n, a, when in ts}
    # (the upper bounds leave room for a loaded machine: the point is not minutes)
    assert 300 <= t[("started", 2)] - t[("retrying", 1)] <= 4000, ts
    assert 700 <= t[("started", 3)] - t[("retrying", 2)] <= 6000, ts


def test_a_fatal_error_fails_at_once(stack, events):
    w = stack.start_worker()
    jid = enqueue(stack, "sleep", {"fatal": True, "record": "never"})
    row = wait_state(stack, jid, "failed")
    assert_finished(row, "failed", 3)
    assert row["attempts"] == 1 and row["retries"] == 0, row
    assert row["last_error"] == "failed on purpose (fatal)", row
    assert list(effects(stack, jid)) == []
    _, _, ev = events.wait(f"job.{jid}.failed")
    assert ev["data"]["error"] == "failed on purpose (fatal)" and ev["data"]["state"] == "failed"
    assert "retrying" not in [n for n, _ in events.of_job(jid)]
    deadline = time.monotonic() + 5
    while worker_row(stack, w)["failed_count"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_row(stack, w)["failed_count"] == 1


def test_a_job_out_of_attempts_fails_with_its_last_error(stack, events):
    stack.start_worker()
    jid = enqueue(stack, "sleep", {"ms": 0, "fail": 5, "record": "never"}, max_attempts=2)
    row = wait_state(stack, jid, "failed")
    assert_finished(row, "failed", 3)
    assert row["attempts"] == 2 and row["retries"] == 1, row
    assert row["last_error"] == "failed on purpose (attempt 2)", row
    assert list(effects(stack, jid)) == []
    events.wait(f"job.{jid}.failed")
    seq = [n for n, _ in events.of_job(jid) if n not in ("queued", "progress")]
    assert seq == ["started", "retrying", "started", "failed"]


def test_unknown_types_and_stale_arguments_fail_at_once(stack, events):
    stack.start_worker()
    unknown = sql_enqueue(stack, "nosuchtype", {})
    stale = sql_enqueue(stack, "noop", {"bogus": 1})
    row = wait_state(stack, unknown, "failed")
    assert row["attempts"] == 1 and "unknown job type 'nosuchtype'" in row["last_error"], row
    row = wait_state(stack, stale, "failed")
    assert row["attempts"] == 1, row
    assert "arguments no longer valid for noop" in row["last_error"], row
    assert "bogus" in row["last_error"], row
    events.wait(f"job.{unknown}.failed")
    events.wait(f"job.{stale}.failed")


# --- leases: kill -9, fencing -------------------------------------------------------------------


def test_a_job_of_a_worker_killed_9_runs_again_elsewhere_within_10s(stack, events):
    """Acceptance 2 of issue 3. The lease is 2 s, so the budget of 10 s leaves a loaded
    machine 8 s of margin (with the default 10 s lease it ran again ~9 s later: no margin)."""
    a = stack.start_worker(job_lease_s=2)
    b = stack.start_worker(job_lease_s=2)
    jid = enqueue(stack, "sleep", {"ms": 3000, "record": "tag-kill"})
    _, _, ev = events.wait(f"job.{jid}.started")
    events.wait(f"job.{jid}.progress")  # it is well under way
    runner = job(stack, jid)["process_id"]
    victim, other = (a, b) if runner == a.id else (b, a)
    assert runner == victim.id
    victim.kill9()
    killed_ms = time.time() * 1000
    _, _, ev = events.wait(f"job.{jid}.started", timeout=20,
                           where=lambda ev: ev["data"]["attempt"] == 2)
    # measured on the publisher's clock (this host's), so the test's own delay in reading
    # the event does not count against the product
    again_s = (ev["ts"] - killed_ms) / 1000
    assert again_s < 10.0, f"running again {again_s:.2f}s after kill -9"
    _, _, rev = events.wait(f"job.{jid}.retrying")
    assert rev["data"]["error"] == "worker lost: lease expired"
    assert "worker" not in rev["data"]  # the reaper does not know who ran it
    assert ev["data"]["worker"] == other.id
    row = wait_state(stack, jid, "done")
    assert row["process_id"] == other.id and row["attempts"] == 2 and row["retries"] == 1, row
    assert row["last_error"] == "worker lost: lease expired", row
    assert [e["attempt"] for e in effects(stack, jid)] == [2]  # done exactly once
    print(f"kill -9 → running again after {again_s:.2f}s")


def test_dead_workers_are_marked_dead(stack, events):
    a = stack.start_worker(job_lease_s=2)
    b = stack.start_worker(job_lease_s=2)
    a.kill9()
    _, _, ev = events.wait(f"worker.{a.id}.down", timeout=15)
    assert ev["data"]["status"] == "dead" and ev["data"]["pid"] == a.pid
    assert worker_row(stack, a)["status"] == "dead"
    assert worker_row(stack, b)["status"] == "ok"


def test_a_completion_without_the_lease_is_rolled_back(stack, events):
    """Fencing: the handler's own write (job_effects) commits with `done` or not at all.
    A test transaction holds the handler's insert until the job's lease token has been
    taken away (as the reaper or another worker would); the completion must then roll back."""
    jid = sql_enqueue(stack, "noop", {"record": "tag-fenced"})
    blocker = stack.mariadb.connect(stack.database)
    try:
        with blocker.cursor() as c:
            c.execute("BEGIN")
            c.execute("INSERT INTO job_effects (job_id, tag, attempt, created) "
                      "VALUES (%s, 'blocker', 0, UTC_TIMESTAMP(3))", [jid])
        w = stack.start_worker(job_lease_s=2)
        row = wait_state(stack, jid, "running")
        assert row["process_id"] == w.id
        time.sleep(0.3)  # the handler's insert now waits for the blocker's row lock
        stack.rows("UPDATE jobs SET lease_token = 4242 WHERE id = %s", jid)
        blocker.rollback()
    finally:
        blocker.close()
    # The worker must not record done under a token it no longer holds; the reaper puts
    # the job back when the (stolen) lease expires, and then it runs once, for good.
    row = wait_state(stack, jid, "done", timeout=20)
    assert row["attempts"] == 2, row
    assert [e["attempt"] for e in effects(stack, jid)] == [2]
    assert "lease was lost" in stack.tail(w.log, 200)
    events.wait(f"job.{jid}.done")  # published after the commit the row shows: may trail it
    names = [n for n, _ in events.of_job(jid) if n not in ("queued", "progress")]
    assert names == ["started", "retrying", "started", "done"], names


def test_a_worker_that_cannot_heartbeat_stops_its_handler(stack, events):
    """The trap of design.md: a worker whose heartbeat cannot get through must stop its
    handler (here after half the 2 s lease) rather than run on while its lease lapses. A
    test transaction holds the worker's row, so the heartbeat blocks; the job's row stays
    writable, so the worker can still put the job back itself."""
    w = stack.start_worker(job_lease_s=2)
    jid = enqueue(stack, "sleep", {"ms": 8000, "record": "tag-stale"})
    events.wait(f"job.{jid}.started")
    holder = stack.mariadb.connect(stack.database)
    try:
        with holder.cursor() as c:
            c.execute("BEGIN")
            c.execute("SELECT * FROM workers WHERE id = %s FOR UPDATE", [w.id])
        # The worker puts the job back itself ("lost its lease"): it stopped its handler
        # before the lease could lapse and be reaped ("lease expired").
        _, t, ev = events.wait(f"job.{jid}.retrying", timeout=15)
        assert "worker lost its lease" in ev["data"]["error"], ev
    finally:
        holder.rollback()
        holder.close()
    row = wait_state(stack, jid, "done", timeout=40)
    assert row["attempts"] >= 2, row
    assert len(effects(stack, jid)) == 1  # the stopped attempt wrote nothing
    assert "no heartbeat for" in stack.tail(w.log, 200)


def test_the_heartbeat_never_takes_a_job_the_worker_ended_for_a_lost_lease(stack):
    """A heartbeat that extends a job's lease just after the worker recorded the job's end
    finds no row (the end cleared the token); it must not say the lease was lost. With a
    heartbeat every millisecond and one job per claim, the two meet often (measured before
    the fix: about 6 % of 3,000 such jobs logged "lost the lease"). A lease really taken away
    is still reported and stops the handler."""
    w = stack.start_worker(job_lease_s=2, job_heartbeat_ms=1)
    n = 1500
    ids = []
    for i in range(n):  # one at a time: each job is the whole of its claim or hand-over
        if i % 5 == 4:
            ids.append(enqueue(stack, "sleep", {"ms": 0, "fatal": True}))
        else:
            ids.append(enqueue(stack, "noop"))
    deadline = time.monotonic() + 120
    while stack.count("jobs", "state IN ('done', 'failed')") < n:
        assert time.monotonic() < deadline, stack.tail(w.log)
        time.sleep(0.1)
    assert stack.count("jobs", "state = 'done' AND attempts = 1") == n - n // 5
    assert stack.count("jobs", "state = 'failed' AND attempts = 1") == n // 5
    log = Path(w.log).read_text(errors="replace")
    assert "heartbeat 1 ms" in log, stack.tail(w.log)
    for cry in ("lost the lease", "lease was lost", "was not recorded", "lease expired"):
        lines = [line for line in log.splitlines() if cry in line]
        assert lines == [], f"{len(lines)} of {n} jobs: {lines[:5]}"
    # a lease that is really gone: the heartbeat says so, the handler stops at its next step
    # and its end, fenced by the token it no longer holds, is not recorded
    jid = enqueue(stack, "sleep", {"ms": 3000, "record": "never"})
    wait_state(stack, jid, "running")
    stack.rows("UPDATE jobs SET lease_token = 4242 WHERE id = %s", jid)
    for said in (f"lost the lease of job {jid} ", f"job {jid} was not recorded as "):
        deadline = time.monotonic() + 15
        while said not in Path(w.log).read_text(errors="replace"):
            assert time.monotonic() < deadline, (said, stack.tail(w.log))
            time.sleep(0.05)
    assert list(effects(stack, jid)) == []


def test_a_heartbeat_interval_out_of_bounds_is_refused(stack):
    """job_heartbeat_ms: 0 (lease/10) up to a quarter of the lease; beyond, the worker says
    so and does not start."""
    exe = str(BIN / "adminbus-worker")
    for flags in (["--job-lease-s=2", "--job-heartbeat-ms=501"], ["--job-heartbeat-ms=-1"],
                  ["--job-heartbeat-ms=soon"]):
        p = subprocess.run([exe, "--queue", "default", *flags], env=stack.env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "job_heartbeat_ms must be an integer from 0 to" in \
            p.stderr, (flags, p.returncode, p.stderr)
    assert stack.count("workers") == 0


# --- cancel, pause, stop -------------------------------------------------------------------------


def test_a_running_job_is_cancelled_cooperatively(stack, events):
    w = stack.start_worker()
    jid = enqueue(stack, "sleep", {"ms": 10000, "record": "never"})
    events.wait(f"job.{jid}.started")
    stack.rows("UPDATE jobs SET cancel_requested = 1 WHERE id = %s", jid)
    row = wait_state(stack, jid, "cancelled", timeout=15)
    assert_finished(row, "cancelled", 3)
    assert row["message"] == "Cancelled" and row["attempts"] == 1, row
    assert list(effects(stack, jid)) == []
    _, _, ev = events.wait(f"job.{jid}.cancelled")
    assert ev["data"]["state"] == "cancelled"
    assert worker_row(stack, w)["failed_count"] == 0
    # the worker goes on with the next job
    nxt = enqueue(stack, "noop", {"record": "after-cancel"})
    wait_state(stack, nxt, "done")


def test_pause_and_resume_follow_the_workers_row(stack, events):
    w = stack.start_worker(log_level="debug")
    stack.rows("UPDATE workers SET desired = 'pause' WHERE id = %s", w.id)
    events.wait(f"worker.{w.id}.paused", timeout=15)
    assert worker_row(stack, w)["status"] == "paused"
    n = iter(range(3))
    jobs = paused_worker_claims_nothing(
        stack, w, lambda: enqueue(stack, "noop", {"record": f"tag-paused-{next(n)}"}))
    i, _, _ = events.wait(f"worker.{w.id}.paused")
    stack.rows("UPDATE workers SET desired = 'run' WHERE id = %s", w.id)
    events.wait(f"worker.{w.id}.up", timeout=15, after=i)
    for jid in jobs:
        assert wait_state(stack, jid, "done", timeout=15)["process_id"] == w.id
    assert worker_row(stack, w)["status"] == "ok"


def test_worker_commands_reach_an_idle_worker_at_once(stack, events):
    """worker.pause / worker.resume (the engine's commands) change the row and publish a
    notice; an idle worker looks at its row on the notice, not at its next poll (60 s)."""
    # Poll and heartbeat both a minute apart: a pause seen within the 15 s wait can only
    # come from the notice.
    w = stack.start_worker(worker_poll_ms=60000, job_lease_s=600)
    stack.ok("worker.pause", {"worker": w.id})
    i, t, _ = events.wait(f"worker.{w.id}.paused", timeout=15)
    stack.ok("worker.resume", {"worker": w.id})
    events.wait(f"worker.{w.id}.up", timeout=15, after=i + 1)
    assert worker_row(stack, w)["status"] == "ok"


def test_stop_in_the_row_finishes_the_job_and_exits(stack, events):
    w = stack.start_worker()
    jid = enqueue(stack, "sleep", {"ms": 1500, "record": "tag-stop"})
    events.wait(f"job.{jid}.started")
    stack.rows("UPDATE workers SET desired = 'stop' WHERE id = %s", w.id)
    assert w.proc.wait(timeout=15) == 0
    w.expected_dead = True
    row = job(stack, jid)
    assert row["state"] == "done", row  # finished, not abandoned
    assert len(effects(stack, jid)) == 1
    assert worker_row(stack, w)["status"] == "dead"
    events.wait(f"worker.{w.id}.down")


def test_sigterm_hands_the_running_job_back_and_another_worker_finishes_it(stack, events):
    a = stack.start_worker(worker_grace_s=1)
    jid = enqueue(stack, "sleep", {"ms": 4000, "record": "tag-term"})
    events.wait(f"job.{jid}.started")
    b = stack.start_worker()
    assert a.stop() == 0  # grace 1 s, then the handler gives up and hands the job back
    _, _, ev = events.wait(f"job.{jid}.retrying")
    assert "handed back" in ev["data"]["error"]
    row = wait_state(stack, jid, "done", timeout=15)
    assert row["process_id"] == b.id, row
    # a hand-back does not count the attempt against the job
    assert row["attempts"] == 1 and row["retries"] == 0, row
    assert [e["attempt"] for e in effects(stack, jid)] == [1]
    assert worker_row(stack, a)["status"] == "dead"
    events.wait(f"worker.{a.id}.down")


def test_restart_in_the_row_stops_like_sigterm(stack, events):
    """desired = 'restart' (what worker.restart writes for a supervised worker): no new
    claims, the running job gets the worker's grace, then it is handed back without counting
    an attempt, and the worker exits cleanly (its supervisor would start a replacement)."""
    a = stack.start_worker(worker_grace_s=1)
    row = worker_row(stack, a)
    assert row["grace_s"] == 1 and row["supervisor"] is None, row
    jid = enqueue(stack, "sleep", {"ms": 4000, "record": "tag-restart"})
    events.wait(f"job.{jid}.started")
    b = stack.start_worker()
    stack.rows("UPDATE workers SET desired = 'restart' WHERE id = %s", a.id)
    assert a.proc.wait(timeout=20) == 0
    a.expected_dead = True
    _, _, ev = events.wait(f"job.{jid}.retrying")
    assert "handed back" in ev["data"]["error"] and ev["data"]["worker"] == a.id
    row = wait_state(stack, jid, "done", timeout=15)
    assert row["process_id"] == b.id and row["attempts"] == 1, row
    assert worker_row(stack, a)["status"] == "dead"
    events.wait(f"worker.{a.id}.down")


def test_sigterm_during_a_burst_loses_nothing_and_counts_no_attempt(stack, events):
    """Claimed-but-not-started jobs (short jobs are claimed up to 64 at a time) go back to
    the ready set when their worker stops; every job still runs exactly once. The jobs take
    5 ms each, so the first worker is still busy (3 s of work) when it is stopped."""
    a = stack.start_worker()
    ids = [sql_enqueue(stack, "sleep", {"ms": 5, "record": f"burst-{i}"}) for i in range(600)]
    b = stack.start_worker()
    while stack.count("jobs", "state = 'done'") < 50:
        time.sleep(0.01)
    assert a.stop() == 0
    deadline = time.monotonic() + 60
    while stack.count("jobs", "state = 'done'") < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.count("jobs", "state = 'done'") == len(ids)
    assert stack.count("job_effects") == len(ids)
    assert stack.count("jobs", "attempts <> 1") == 0  # a hand-back is not an attempt
    assert stack.count("job_ready") == 0
    assert worker_row(stack, a)["status"] == "dead"
    assert worker_row(stack, b)["done_count"] > 0


def test_sigterm_lets_a_short_job_finish(stack, events):
    a = stack.start_worker()  # default grace: 30 s
    jid = enqueue(stack, "sleep", {"ms": 1000, "record": "tag-finish"})
    events.wait(f"job.{jid}.started")
    assert a.stop() == 0
    row = job(stack, jid)
    assert row["state"] == "done" and row["process_id"] == a.id, row
    assert len(effects(stack, jid)) == 1


# --- pick-up: wake-up notice, fallback poll, delayed jobs -------------------------------------


def test_an_idle_worker_polls_as_a_fallback(stack, events):
    stack.start_worker(worker_poll_ms=300)
    jid = sql_enqueue(stack, "noop", {})  # SQL: no wake-up notice, only the poll finds it
    wait_state(stack, jid, "done", timeout=15)


def publisher(stack):
    """A PUB on the broker's event intake, as the engine publishes there."""
    s = stack.ctx.socket(zmq.PUB)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(stack.endpoints["publish"])
    return s


def test_a_wake_up_notice_starts_an_idle_worker_at_once(stack, events):
    stack.start_worker(worker_poll_ms=60000)
    pub = publisher(stack)
    try:
        # the publisher's connection settles: its notices reach our subscriber
        for _ in range(50):
            pub.send_multipart([b"wake.default", msgpack.packb({"v": 1})])
            if events.topics("wake.default"):
                break
            time.sleep(0.1)
        lat = []
        for i in range(10):
            jid = sql_enqueue(stack, "noop", {})
            t0 = time.monotonic()
            pub.send_multipart([b"wake.default", msgpack.packb({"v": 1})])
            _, t, _ = events.wait(f"job.{jid}.started", timeout=15)
            lat.append(t - t0)
            wait_state(stack, jid, "done", timeout=15)
    finally:
        pub.close()
    lat.sort()
    print(f"pick-up after a wake-up notice: p50 {lat[5] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    # No timing assertion: the fallback poll is 60 s, so every start within the 15 s wait
    # above is the notice's doing. The figures are printed (and measured in tests/bench).


def test_job_enqueue_wakes_an_idle_worker(stack, events):
    stack.start_worker(worker_poll_ms=60000)
    lat = []
    for i in range(20):
        t0 = time.monotonic()
        jid = stack.ok("job.enqueue", {"type": "noop", "args": {}})["id"]
        _, t, _ = events.wait(f"job.{jid}.started", timeout=15)
        lat.append(t - t0)
        wait_state(stack, jid, "done", timeout=15)
    lat.sort()
    print(f"job.enqueue → started (incl. the command's round trip): p50 "
          f"{lat[10] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    # As above: with a 60 s poll, each start within the wait proves the wake-up notice.


def test_a_delayed_job_starts_when_due(stack, events):
    stack.start_worker(worker_poll_ms=60000)
    now_ms = int(time.time() * 1000)
    jid = sql_enqueue(stack, "noop", {}, run_at_ms=now_ms + 1500)
    t0 = time.monotonic()
    pub = publisher(stack)
    try:  # one notice: the worker finds nothing due yet and waits for the run_at
        for _ in range(50):
            pub.send_multipart([b"wake.default", msgpack.packb({"v": 1})])
            if events.topics("wake.default"):
                break
            time.sleep(0.1)
    finally:
        pub.close()
    _, t, ev = events.wait(f"job.{jid}.started", timeout=15)
    # not early (the publisher's clock, ms), and on the due time, not the 60 s poll
    assert ev["ts"] >= now_ms + 1500 - 5, (ev["ts"] - now_ms)
    assert t - t0 <= 10, t - t0
    wait_state(stack, jid, "done", timeout=15)


def test_many_short_jobs_across_two_workers_each_run_once(stack, events):
    a = stack.start_worker()
    b = stack.start_worker()
    ids = [sql_enqueue(stack, "noop", {"record": f"many-{i}"}) for i in range(200)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if stack.count("jobs", "state = 'done'") == len(ids):
            break
        time.sleep(0.1)
    assert stack.count("jobs", "state = 'done'") == len(ids)
    assert stack.count("job_effects") == len(ids)
    assert stack.count("job_ready") == 0
    done = worker_row(stack, a)["done_count"] + worker_row(stack, b)["done_count"]
    assert done == len(ids)
