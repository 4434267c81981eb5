"""Hand-over of a job to an idle worker (issue 3, pick-up latency): a worker that found
nothing to claim says it is idle; an enqueue gives such a worker the job directly (leased
to it, not in the ready set) and notifies it, and the worker starts it without a claim."""

import os
import signal

import msgpack
import zmq

from helpers import wait_for
from test_events import wait_subscribed


def worker_row(stack, wid):
    return stack.rows("SELECT * FROM workers WHERE id = %s", wid)[0]


def job(stack, job_id):
    return stack.rows("SELECT * FROM jobs WHERE id = %s", job_id)[0]


def test_an_idle_worker_gets_the_job_directly_and_runs_it(stack):
    w = stack.start_worker()
    wait_for("the worker to say it is idle", lambda: worker_row(stack, w.id)["idle"] == 1)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, f"worker.{w.id}.assign".encode())
    # a probe subscription after it: once probe events come, the first one is in place too
    sub.setsockopt(zmq.SUBSCRIBE, b"audit.Organisation.add")
    sub.connect(stack.events)
    wait_subscribed(stack, sub)
    r = stack.ok("job.enqueue", {"type": "noop", "args": {"record": "handed"}})
    # In the enqueue's own transaction: running, leased to the worker, not ready.
    assert r["state"] == "running", r
    assert stack.count("job_ready", "job_id = %s", r["id"]) == 0
    topic = None
    while topic != f"worker.{w.id}.assign":  # (a late probe event is skipped)
        assert sub.poll(5000), "no hand-over notice"
        topic, body = sub.recv_multipart()
        topic = topic.decode()
    assert msgpack.unpackb(body)["data"] == {"assign": r["id"]}
    row = wait_for("the job to be done", lambda: (lambda j: j["state"] == "done" and j)(
        job(stack, r["id"])))
    assert row["attempts"] == 1 and row["process_id"] == w.id and row["lease_token"] is None
    assert stack.count("job_effects", "job_id = %s AND tag = 'handed'", r["id"]) == 1
    # Idle again afterwards, and the next job goes the same way.
    wait_for("the worker to be idle again", lambda: worker_row(stack, w.id)["idle"] == 1)
    r2 = stack.ok("job.enqueue", {"type": "noop"})
    assert r2["state"] == "running"
    wait_for("the second job", lambda: job(stack, r2["id"])["state"] == "done")
    sub.close()


def test_no_hand_over_to_a_paused_worker(stack):
    w = stack.start_worker()
    wait_for("idle", lambda: worker_row(stack, w.id)["idle"] == 1)
    stack.ok("worker.pause", {"worker": w.id})
    wait_for("paused", lambda: worker_row(stack, w.id)["status"] == "paused")
    assert worker_row(stack, w.id)["idle"] == 0
    r = stack.ok("job.enqueue", {"type": "noop"})
    assert r["state"] == "queued" and stack.count("job_ready", "job_id = %s", r["id"]) == 1
    stack.ok("worker.resume", {"worker": w.id})
    wait_for("the job after resume", lambda: job(stack, r["id"])["state"] == "done")


def test_a_worker_stopping_before_it_took_up_its_job_hands_it_back(stack):
    w = stack.start_worker()
    wait_for("idle", lambda: worker_row(stack, w.id)["idle"] == 1)
    os.kill(w.pid, signal.SIGSTOP)  # frozen: its row still says idle for a few seconds
    try:
        r = stack.ok("job.enqueue", {"type": "noop", "args": {"record": "back"}})
        assert r["state"] == "running" and job(stack, r["id"])["process_id"] == w.id
        os.kill(w.pid, signal.SIGTERM)  # pending: handled first when it runs again
    finally:
        os.kill(w.pid, signal.SIGCONT)
    assert w.stop() == 0
    row = job(stack, r["id"])
    assert row["state"] == "queued" and row["attempts"] == 0 and row["lease_token"] is None, row
    assert stack.count("job_ready", "job_id = %s", r["id"]) == 1
    assert stack.count("job_effects", "job_id = %s", r["id"]) == 0
    stack.start_worker()
    wait_for("the job on another worker", lambda: job(stack, r["id"])["state"] == "done")
    assert stack.count("job_effects", "job_id = %s", r["id"]) == 1


def test_a_job_handed_to_a_worker_killed_before_it_took_it_up_runs_elsewhere(stack):
    w = stack.start_worker(job_lease_s=2)
    wait_for("idle", lambda: worker_row(stack, w.id)["idle"] == 1)
    os.kill(w.pid, signal.SIGSTOP)
    r = stack.ok("job.enqueue", {"type": "noop", "args": {"record": "reaped"}})
    assert r["state"] == "running"
    w.kill9()
    stack.start_worker(job_lease_s=2)
    row = wait_for("the job to be done elsewhere",
                   lambda: (lambda j: j["state"] == "done" and j)(job(stack, r["id"])), 30)
    assert row["process_id"] != w.id
    assert stack.count("job_effects", "job_id = %s", r["id"]) == 1
