"""adminbus-supervisor and the worker commands that need it (issue 3): worker.start,
worker.restart (one, --all), worker.kill, worker.cleanup; crash restarts with back-off; a
stop that ends exactly its own children; precise errors on the wire and in adminctl.

Nothing here asserts a duration. Workers run with a long lease (job_lease_s=600) wherever a
test shows that jobs come back "at once": then only the supervisor or the command can have
put them back within the test's wait, never an expired lease."""

import os
import signal
import time

import pytest

import test_worker as tw
from helpers import assert_error, audit_rows, ctl_json

LONG_LEASE = 600  # seconds: no lease expires during a test


@pytest.fixture
def events(stack):
    e = tw.Events(stack)
    e.sock.setsockopt(tw.zmq.SUBSCRIBE, b"supervisor.")
    yield e
    e.close()


def pid_gone(pid, timeout=15):
    """Wait until pid has ended (it is a grandchild of ours: gone, or a zombie nobody reaps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still running {timeout}s later")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_rows(stack, where="1", *params):
    return list(stack.rows(f"SELECT * FROM workers WHERE {where} ORDER BY id", *params))


def request_row(stack, request_id, timeout=15):
    """The supervisor request once it is no longer pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.rows("SELECT * FROM supervisor_requests WHERE id = %s", request_id)[0]
        if row["state"] != "pending":
            return row
        time.sleep(0.02)
    raise AssertionError(f"request {request_id} still pending after {timeout}s")


def up_event(events, queue, exclude=(), timeout=20, after=0):
    """The first worker.<id>.up of a worker of queue whose id is not in exclude."""
    deadline = time.monotonic() + timeout
    while True:
        for i, (_, tp, ev) in enumerate(events.seen[after:], start=after):
            d = ev["data"]
            if (tp.startswith("worker.") and tp.endswith(".up") and d.get("queue") == queue
                    and d["id"] not in exclude):
                return i, d
        if time.monotonic() > deadline:
            raise AssertionError(f"no new worker of {queue} came up; saw {events.topics()}")
        events._pump(0.1)


# --- start, configured workers -------------------------------------------------------------------


def test_the_supervisor_starts_its_configured_workers(stack, events):
    sup = stack.start_supervisor(workers="default:2,email:1")
    rows = sup.wait_workers(3)
    assert sorted(r["queue"] for r in rows) == ["default", "default", "email"]
    host = stack.rows("SELECT host FROM supervisors WHERE id = %s", sup.id)[0]["host"]
    assert sup.id == f"{host}:{sup.pid}"
    for r in rows:
        assert r["id"] == f"{host}:{r['pid']}:{r['queue']}" and r["host"] == host
        assert r["grace_s"] == 5  # the supervisor's configuration reached its workers
        events.wait(f"worker.{r['id']}.up")
    listed = {w["id"]: w for w in stack.ok("worker.list")["items"]}
    assert all(listed[r["id"]]["supervisor"] == sup.id for r in rows)
    # the workers run jobs
    jid = tw.enqueue(stack, "noop", {"record": "configured"})
    row = tw.wait_state(stack, jid, "done")
    assert row["process_id"] in {r["id"] for r in rows}


def test_worker_start_starts_one_more_worker(stack, events):
    sup = stack.start_supervisor(workers="default:1")
    first = sup.wait_workers(1)
    r = stack.ok("worker.start", {"queue": "email"})
    host = stack.rows("SELECT host FROM supervisors WHERE id = %s", sup.id)[0]["host"]
    assert r["action"] == "start" and r["state"] == "requested" and r["queue"] == "email"
    assert r["host"] == host and r["supervisor"] == sup.id and r["request"] > 0
    _, up = up_event(events, "email")
    req = request_row(stack, r["request"])
    assert req["state"] == "done" and req["worker"] == up["id"], req
    assert req["supervisor"] == sup.id and req["action"] == "start"
    row = worker_rows(stack, "id = %s", up["id"])[0]
    assert row["supervisor"] == sup.id and row["queue"] == "email"
    assert up["id"] in [w["id"] for w in stack.ok("worker.list", {"queue": "email"})["items"]]
    audit = audit_rows(stack, model="Worker", action="add")
    assert len(audit) == 1 and "queue () => (email)" in audit[0]["change"], audit
    # the same through adminctl, with the host given
    out = ctl_json(stack, "workers", "start", "cache", "--host", host)
    assert out["queue"] == "cache" and out["state"] == "requested"
    _, up2 = up_event(events, "cache")
    assert request_row(stack, out["request"])["worker"] == up2["id"]
    assert len(sup.workers()) == len(first) + 2


# --- crashes ---------------------------------------------------------------------------------------


def test_a_worker_killed_9_is_replaced_and_its_job_put_back_at_once(stack, events):
    sup = stack.start_supervisor(workers="default:1", job_lease_s=LONG_LEASE)
    (w,) = sup.wait_workers(1)
    events.wait(f"worker.{w['id']}.up")
    jid = tw.enqueue(stack, "sleep", {"ms": 4000, "record": "crash"})
    events.wait(f"job.{jid}.started")
    assert tw.job(stack, jid)["process_id"] == w["id"]
    os.kill(w["pid"], signal.SIGKILL)
    _, _, down = events.wait(f"worker.{w['id']}.down", timeout=15)
    assert down["data"]["status"] == "dead" and down["data"]["pid"] == w["pid"]
    # put back by the supervisor, not by a lease (600 s)
    _, _, rev = events.wait(f"job.{jid}.retrying", timeout=15)
    assert rev["data"]["error"] == "worker lost: its process was killed by signal 9"
    assert rev["data"]["worker"] == w["id"]
    _, new = up_event(events, "default", exclude={w["id"]})
    assert worker_rows(stack, "id = %s", w["id"])[0]["status"] == "dead"
    row = tw.wait_state(stack, jid, "done", timeout=30)
    assert row["process_id"] == new["id"] and row["attempts"] == 2, row
    assert [e["attempt"] for e in tw.effects(stack, jid)] == [2]
    assert "starting a new one in 1000 ms" in sup.log_text()


def test_a_crash_loop_backs_off(stack):
    """A worker that cannot even start (here: an executable that exits at once) is started
    again after 1 s, 2 s, 4 s…: the supervisor does not spin."""
    sup = stack.start_supervisor(workers="prio:1", worker_exe="/bin/false")
    for ms in (1000, 2000, 4000):
        sup.wait_log(f"starting a new one in {ms} ms", timeout=30)
    text = sup.log_text()
    assert text.count("started worker") <= 4, text  # 1 + one per back-off seen so far
    assert "in 8000 ms" not in text.split("in 4000 ms")[0]


# --- kill ------------------------------------------------------------------------------------------


def test_worker_kill_puts_its_running_job_back_at_once_and_it_runs_elsewhere(stack, events):
    sup = stack.start_supervisor(workers="default:2", job_lease_s=LONG_LEASE)
    rows = sup.wait_workers(2)
    jid = tw.enqueue(stack, "sleep", {"ms": 3000, "record": "killed"})
    events.wait(f"job.{jid}.started")
    victim = next(r for r in rows if r["id"] == tw.job(stack, jid)["process_id"])
    other = next(r for r in rows if r is not victim)
    r = stack.ok("worker.kill", {"worker": victim["id"]})
    assert r["action"] == "kill" and r["id"] == victim["id"] and r["pid"] == victim["pid"]
    req = request_row(stack, r["request"])
    assert req["state"] == "done", req
    assert "1 job(s) put back" in req["result"], req
    pid_gone(victim["pid"])
    _, _, rev = events.wait(f"job.{jid}.retrying", timeout=15)
    assert rev["data"]["error"] == "worker lost: killed on request"
    events.wait(f"worker.{victim['id']}.down")
    row = tw.wait_state(stack, jid, "done", timeout=30)
    assert row["process_id"] == other["id"] and row["attempts"] == 2, row
    assert row["last_error"] == "worker lost: killed on request"
    assert [e["attempt"] for e in tw.effects(stack, jid)] == [2]
    assert worker_rows(stack, "id = %s", victim["id"])[0]["status"] == "dead"
    # not replaced: the request was done before the supervisor's next heartbeat, which counts
    # its running children
    finished = req["finished"]
    deadline = time.monotonic() + 15
    while stack.rows("SELECT last_heartbeat FROM supervisors WHERE id = %s",
                     sup.id)[0]["last_heartbeat"] <= finished:
        assert time.monotonic() < deadline, "no supervisor heartbeat"
        time.sleep(0.05)
    assert stack.rows("SELECT children FROM supervisors WHERE id = %s", sup.id)[0]["children"] == 1
    assert [w["id"] for w in sup.workers()] == [other["id"]]
    audit = audit_rows(stack, model="Worker", action="edit")
    assert any("killed: request" in a["change"] for a in audit), audit


# --- restart ---------------------------------------------------------------------------------------


def test_restart_all_replaces_every_worker_and_loses_no_job(stack, events):
    sup = stack.start_supervisor(workers="default:2,email:1", worker_grace_s=1)
    old = sup.wait_workers(3)
    old_ids = {r["id"] for r in old}
    long_jobs = [tw.enqueue(stack, "sleep", {"ms": 3000, "record": f"long-{i}"})
                 for i in range(2)]
    for jid in long_jobs:
        events.wait(f"job.{jid}.started")
    short = [tw.sql_enqueue(stack, "noop", {"record": f"short-{i}"}) for i in range(300)]
    r = stack.ok("worker.restart", {"all": True})
    assert sorted(r["restarting"]) == sorted(old_ids) and r["skipped"] == [], r
    for w in old:
        events.wait(f"worker.{w['id']}.down", timeout=20)
    new = sup.wait_workers(3, exclude=old_ids)
    assert sorted(w["queue"] for w in new) == ["default", "default", "email"]
    # the replaced registrations are gone
    assert worker_rows(stack, "id IN %s", tuple(old_ids)) == []
    ids = long_jobs + short
    deadline = time.monotonic() + 60
    while stack.count("jobs", "state = 'done'") < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.count("jobs", "state = 'done'") == len(ids)
    assert stack.count("job_effects") == len(ids)  # each exactly once
    assert stack.count("job_ready") == 0
    # a hand-back does not count an attempt; a job done before the restart ran once
    assert stack.count("jobs", "attempts <> 1") == 0
    audit = audit_rows(stack, model="Worker", action="edit")
    assert sum("desired (run) => (restart)" in a["change"] for a in audit) == 3


def test_restart_one_worker_replaces_it_at_once(stack, events):
    sup = stack.start_supervisor(workers="default:1,prio:1")
    rows = sup.wait_workers(2)
    target = next(r for r in rows if r["queue"] == "prio")
    r = stack.ok("worker.restart", {"worker": target["id"]})
    assert r == {"id": target["id"], "desired": "restart", "supervisor": sup.id}
    events.wait(f"worker.{target['id']}.down", timeout=20)
    _, new = up_event(events, "prio", exclude={target["id"]})
    assert new["id"] != target["id"]
    assert worker_rows(stack, "id = %s", target["id"]) == []
    assert len(sup.workers()) == 2
    assert "ended on request; starting its replacement" in sup.log_text()


# --- cleanup ---------------------------------------------------------------------------------------


def test_cleanup_removes_a_dead_registration(stack, events):
    sup = stack.start_supervisor(workers="update:1")
    (w,) = sup.wait_workers(1)
    os.kill(w["pid"], signal.SIGKILL)
    events.wait(f"worker.{w['id']}.down", timeout=15)
    assert worker_rows(stack, "id = %s", w["id"])[0]["status"] == "dead"
    r = stack.ok("worker.cleanup", {"worker": w["id"]})
    assert r["id"] == w["id"] and r["removed"] is True and r["handed_back"] == 0, r
    assert r["forced"] == [] and r["pending"] == [] and r["kill"] is None, r
    assert worker_rows(stack, "id = %s", w["id"]) == []
    audit = audit_rows(stack, model="Worker", action="delete")
    assert len(audit) == 1 and audit[0]["title"] == f"Worker: {w['id']}", audit
    assert_error(stack.cmd("worker.cleanup", {"worker": w["id"]}), "not_found", "worker")


def test_cleanup_of_a_silent_worker_puts_its_jobs_back(stack, events):
    """A worker started by hand (no supervisor) is killed -9 while running a job; its lease
    (600 s) holds the job. Once its heartbeat is old (made so here by moving it back an hour:
    the 30 s are not waited for), cleanup removes it and puts the job back at once."""
    a = stack.start_worker(job_lease_s=LONG_LEASE)
    jid = tw.enqueue(stack, "sleep", {"ms": 3000, "record": "silent"})
    events.wait(f"job.{jid}.started")
    a.kill9()
    live = stack.ok("worker.cleanup", {"worker": a.id})
    assert live["removed"] is False and live["handed_back"] == 0  # heartbeat still fresh
    assert tw.job(stack, jid)["state"] == "running"
    stack.rows("UPDATE workers SET last_heartbeat = last_heartbeat - INTERVAL 1 HOUR "
               "WHERE id = %s", a.id)
    r = stack.ok("worker.cleanup", {"worker": a.id})
    assert r["removed"] is True and r["handed_back"] == 1, r
    row = tw.job(stack, jid)
    assert row["state"] == "retrying" and row["attempts"] == 1 and row["retries"] == 1, row
    assert row["last_error"] == "worker lost: its registration was cleaned up"
    _, _, down = events.wait(f"worker.{a.id}.down")
    assert down["data"]["status"] == "dead"
    b = stack.start_worker()
    row = tw.wait_state(stack, jid, "done", timeout=30)
    assert row["process_id"] == b.id and row["attempts"] == 2, row


def test_cleanup_dead_removes_every_dead_registration(stack, events):
    sup = stack.start_supervisor(workers="cache:2")
    rows = sup.wait_workers(2)
    for w in rows:
        os.kill(w["pid"], signal.SIGKILL)
    for w in rows:
        events.wait(f"worker.{w['id']}.down", timeout=15)
    live = sup.wait_workers(2, exclude={w["id"] for w in rows})  # the replacements
    listed = stack.ok("worker.list")["items"]
    assert sum(1 for x in listed if x["status"] == "dead") == 2
    r = ctl_json(stack, "workers", "cleanup", "--dead")
    assert sorted(r["removed"]) == sorted(w["id"] for w in rows) and r["handed_back"] == 0
    assert {x["id"] for x in stack.ok("worker.list")["items"]} == {w["id"] for w in live}
    assert len(audit_rows(stack, model="Worker", action="delete")) == 2


def test_cleanup_forces_a_cancel_past_its_grace(stack, events):
    """The sleep handler looks at its stop flag only between its ten steps: with ms=1 h it
    ignores a cancel for six minutes. Within the worker's grace (5 s) cleanup only lists it;
    once the grace is over (the request time moved back an hour: nothing waits 5 s) cleanup
    cancels the job by force and the supervisor kills the worker and replaces it."""
    sup = stack.start_supervisor(workers="default:1", job_lease_s=LONG_LEASE)
    (w,) = sup.wait_workers(1)
    jid = tw.enqueue(stack, "sleep", {"ms": 3600000, "record": "never"})
    events.wait(f"job.{jid}.started")
    assert stack.ok("job.cancel", {"job": jid})["cancel_requested"] is True
    asked = tw.job(stack, jid)["cancel_requested_at"]
    assert asked is not None
    r = stack.ok("worker.cleanup", {"worker": w["id"]})
    assert r["removed"] is False and r["forced"] == [] and r["kill"] is None, r
    assert [p["job"] for p in r["pending"]] == [jid] and 0 < r["pending"][0]["grace_left_s"] <= 5
    assert tw.job(stack, jid)["state"] == "running"
    # a second cancel keeps the first request's time
    stack.ok("job.cancel", {"job": jid})
    assert tw.job(stack, jid)["cancel_requested_at"] == asked
    stack.rows("UPDATE jobs SET cancel_requested_at = cancel_requested_at - INTERVAL 1 HOUR "
               "WHERE id = %s", jid)
    r = stack.ok("worker.cleanup", {"worker": w["id"]})
    assert r["forced"] == [jid] and r["pending"] == [] and r["kill"] == "requested", r
    row = tw.job(stack, jid)  # cancelled in the command's own transaction
    assert row["state"] == "cancelled" and row["status"] == 3, row
    assert row["lease_token"] is None and row["message"].startswith("Cancelled by force"), row
    _, _, ev = events.wait(f"job.{jid}.cancelled")
    assert ev["data"]["forced"] is True and ev["data"]["worker"] == w["id"]
    req = request_row(stack, r["request"])
    assert req["state"] == "done" and req["replace_it"] == 1, req
    pid_gone(w["pid"])
    _, new = up_event(events, "default", exclude={w["id"]})
    assert worker_rows(stack, "id = %s", w["id"]) == []  # replaced: registration removed
    assert list(tw.effects(stack, jid)) == []
    nxt = tw.enqueue(stack, "noop", {"record": "after-force"})
    assert tw.wait_state(stack, nxt, "done")["process_id"] == new["id"]


# --- errors -----------------------------------------------------------------------------------------


def test_bad_input_gets_precise_errors_and_changes_nothing(stack):
    hand = stack.start_worker()
    before = stack.counts()
    n_requests = stack.count("supervisor_requests")
    # unknown worker ids
    for t in ("worker.restart", "worker.kill", "worker.cleanup", "worker.pause"):
        err = assert_error(stack.cmd(t, {"worker": "nohost:1:default"}), "not_found", "worker")
        assert "nohost:1:default" in err["message"]
    # bad and missing arguments
    assert_error(stack.cmd("worker.start", {"queue": "nosuch"}), "invalid", "queue")
    assert_error(stack.cmd("worker.start", {}), "invalid", "queue")
    assert_error(stack.cmd("worker.start", {"queue": "email", "host": ""}), "invalid", "host")
    assert_error(stack.cmd("worker.kill", {}), "invalid", "worker")
    assert_error(stack.cmd("worker.kill", {"worker": 7}), "invalid", "worker")
    assert_error(stack.cmd("worker.restart", {}), "invalid", "worker")
    assert_error(stack.cmd("worker.restart", {"all": False}), "invalid", "worker")
    assert_error(stack.cmd("worker.restart", {"worker": hand.id, "all": True}), "invalid", "all")
    assert_error(stack.cmd("worker.cleanup", {}), "invalid", "worker")
    assert_error(stack.cmd("worker.cleanup", {"worker": hand.id, "dead": True}), "invalid",
                 "dead")
    assert_error(stack.cmd("worker.cleanup", {"bogus": 1}), "invalid", "bogus")
    # no supervisor running
    err = assert_error(stack.cmd("worker.start", {"queue": "email"}), "unavailable")
    assert "no worker supervisor is running" in err["message"]
    assert "adminbus-supervisor" in err["message"]
    assert_error(stack.cmd("worker.start", {"queue": "email", "host": "nosuchhost"}),
                 "not_found", "host")
    # a worker started by hand has no supervisor to restart or kill it
    err = assert_error(stack.cmd("worker.kill", {"worker": hand.id}), "conflict", "worker")
    assert f"kill pid {hand.pid}" in err["message"]
    assert_error(stack.cmd("worker.restart", {"worker": hand.id}), "conflict", "worker")
    after = stack.counts()
    assert after["logs"] == before["logs"] and after["organisations"] == before["organisations"]
    # a conflict uses up its command id (docs/architecture.md); nothing else does
    assert after["command_ids"] == before["command_ids"] + 2
    assert stack.count("supervisor_requests") == n_requests
    assert tw.worker_row(stack, hand)["desired"] == "run"


def test_errors_when_the_supervisor_is_gone(stack):
    sup = stack.start_supervisor(workers="email:1")
    (w,) = sup.wait_workers(1)
    host = stack.rows("SELECT host FROM supervisors WHERE id = %s", sup.id)[0]["host"]
    assert sup.stop() == 0
    err = assert_error(stack.cmd("worker.start", {"queue": "email", "host": host}),
                       "unavailable", "host")
    assert "is not running" in err["message"]
    # its worker stopped with it; a row that says dead cannot be restarted or killed
    assert_error(stack.cmd("worker.restart", {"worker": w["id"]}), "conflict", "worker")
    assert_error(stack.cmd("worker.kill", {"worker": w["id"]}), "conflict", "worker")


def test_adminctl_reports_the_same_errors(stack):
    rc, out, err = stack.adminctl("workers", "kill", "nohost:1:default")
    assert rc == 1 and "not_found" in err and "worker" in err, (rc, out, err)
    rc, out, err = stack.adminctl("workers", "start", "email")
    assert rc == 1 and "unavailable" in err and "adminbus-supervisor" in err, (rc, out, err)
    rc, out, err = stack.adminctl("workers", "start", "nosuch")
    assert rc == 2 and "--queue must be one of" in err, (rc, out, err)
    rc, out, err = stack.adminctl("workers", "kill")
    assert rc == 2 and "needs worker" in err, (rc, out, err)
    doc = ctl_json(stack, "workers", "restart", expect_rc=1)
    assert doc["code"] == "invalid" and doc["field"] == "worker", doc
    rc, out, err = stack.adminctl("workers", "restart", "--help")
    assert rc == 0 and "--all" in out


# --- stopping ---------------------------------------------------------------------------------------


def test_sigterm_stops_exactly_its_children(stack, events):
    sup = stack.start_supervisor(workers="default:2,email:1")
    children = sup.wait_workers(3)
    hand = stack.start_worker()
    jid = tw.enqueue(stack, "sleep", {"ms": 1000, "record": "stop"})
    events.wait(f"job.{jid}.started")
    assert sup.stop() == 0
    for c in children:
        assert not pid_alive(c["pid"])  # the supervisor reaped them before it exited
        assert worker_rows(stack, "id = %s", c["id"])[0]["status"] == "dead"
    assert hand.alive() and tw.worker_row(stack, hand)["status"] == "ok"
    assert stack.rows("SELECT status FROM supervisors WHERE id = %s", sup.id)[0]["status"] == "dead"
    events.wait(f"supervisor.{sup.id}.down")
    # a job running in a child finished or was handed back, never lost
    row = tw.wait_state(stack, jid, ("done", "queued", "retrying"))
    if row["state"] != "done":
        assert tw.wait_state(stack, jid, "done", timeout=30)["process_id"] == hand.id
    assert len(tw.effects(stack, jid)) == 1


def test_a_second_supervisor_of_the_host_waits_for_the_first(stack):
    a = stack.start_supervisor(workers="default:1")
    a.wait_workers(1)
    b = stack.start_supervisor(wait=False, workers="prio:1")
    b.wait_log("another supervisor runs for host")
    assert stack.count("supervisors", "pid = %s", b.pid) == 0
    assert a.stop() == 0
    b.wait_registered()
    rows = b.wait_workers(1)
    assert rows[0]["queue"] == "prio"
    assert stack.count("supervisors", "pid = %s", a.pid) == 0  # the gone one's row is replaced
