"""Job commands that need no worker: enqueue (validation, unique keys, audit, events),
list, view, cancel, retry, purge, worker and queue views (issue 3)."""

import json

import msgpack
import zmq

from helpers import assert_error, ctl_json


def job_row(stack, job_id):
    return stack.rows("SELECT * FROM jobs WHERE id = %s", job_id)[0]


def ready_count(stack, job_id):
    return stack.count("job_ready", "job_id = %s", job_id)


def test_enqueue_stores_the_job_and_its_ready_row(stack):
    r = stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 50, "record": "t1"},
                                 "priority": 5})
    assert r["queue"] == "default" and r["type"] == "sleep" and r["existed"] is False
    row = job_row(stack, r["id"])
    assert row["state"] == "queued" and row["status"] == 1 and row["worker"] == "default"
    assert row["job_type"] == "sleep" and row["priority"] == 5 and row["attempts"] == 0
    assert "ms=50" in row["job_input"] and "record=t1" in row["job_input"]
    assert msgpack.unpackb(row["payload"]) == {"ms": 50, "record": "t1"}
    assert ready_count(stack, r["id"]) == 1
    audit = stack.rows("SELECT * FROM logs WHERE model = 'Job' AND model_id = %s", r["id"])
    assert len(audit) == 1 and audit[0]["action"] == "add"
    assert "job_type () => (sleep)" in audit[0]["change"]


def test_enqueue_refuses_bad_types_and_arguments_and_writes_nothing(stack):
    before = stack.counts()
    jobs_before = stack.count("jobs")
    assert_error(stack.cmd("job.enqueue", {"type": "nosuch"}), "invalid", "type")
    assert_error(stack.cmd("job.enqueue", {"type": "sleep", "args": {"ms": "long"}}),
                 "invalid", "args.ms")
    assert_error(stack.cmd("job.enqueue", {"type": "sleep", "args": {"bogus": 1}}),
                 "invalid", "args.bogus")
    assert_error(stack.cmd("job.enqueue", {"type": "sleep", "args": {"ms": {"x": 1}}}),
                 "invalid", "args")
    assert_error(stack.cmd("job.enqueue", {"type": "noop", "priority": 1000}),
                 "invalid", "priority")
    # past what MariaDB's FROM_UNIXTIME holds (2038-01-19): refused precisely, not internal
    year_2100 = 4102444800000
    assert_error(stack.cmd("job.enqueue", {"type": "noop", "run_at": year_2100}),
                 "invalid", "run_at")
    assert_error(stack.cmd("job.enqueue_many", {"jobs": [{"type": "noop", "run_at": year_2100}]}),
                 "invalid", "jobs[0].run_at")
    assert stack.counts() == before and stack.count("jobs") == jobs_before


def test_unique_key_returns_the_first_job(stack):
    a = stack.ok("job.enqueue", {"type": "noop", "unique_key": "task:1:2026-12-01T01:00"})
    b = stack.ok("job.enqueue", {"type": "noop", "unique_key": "task:1:2026-12-01T01:00"})
    assert b["existed"] is True and b["id"] == a["id"]
    assert stack.count("jobs", "unique_key = %s", "task:1:2026-12-01T01:00") == 1


def test_enqueue_announces_and_wakes(stack):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"job.")
    sub.setsockopt(zmq.SUBSCRIBE, b"wake.default")
    sub.connect(stack.events)
    seen = {}
    for _ in range(50):  # until the subscription has reached the engine
        r = stack.ok("job.enqueue", {"type": "noop"})
        while sub.poll(100):
            topic, body = sub.recv_multipart()
            seen[topic.decode()] = msgpack.unpackb(body)
        if f"job.{r['id']}.queued" in seen:
            break
    ev = seen[f"job.{r['id']}.queued"]["data"]
    assert ev == {"id": r["id"], "queue": "default", "type": "noop", "state": "queued"}
    assert seen["wake.default"]["data"] == {"queue": "default"}
    sub.close()


def test_list_and_view(stack):
    ids = [stack.ok("job.enqueue", {"type": "noop"})["id"] for _ in range(3)]
    listed = stack.ok("job.list", {"queue": "default", "state": "queued"})
    assert [j["id"] for j in listed["items"]][:3] == sorted(ids, reverse=True)
    assert listed["total"] >= 3
    view = stack.ok("job.view", {"job": ids[0]})
    assert view["state"] == "queued" and view["status"] == 1 and view["type"] == "noop"
    assert_error(stack.cmd("job.view", {"job": 999999}), "not_found", "job")


def test_list_filters_by_misp_status_and_organisation(stack):
    ids = [stack.ok("job.enqueue", {"type": "noop"})["id"] for _ in range(4)]
    stack.rows("UPDATE jobs SET state = 'failed', status = 3 WHERE id = %s", ids[0])
    stack.rows("UPDATE jobs SET state = 'cancelled', status = 3 WHERE id = %s", ids[1])
    stack.rows("UPDATE jobs SET state = 'done', status = 4 WHERE id = %s", ids[2])
    failed = stack.ok("job.list", {"status": "failed"})
    assert sorted(j["id"] for j in failed["items"]) == sorted(ids[:2]) and failed["total"] == 2
    assert [j["id"] for j in stack.ok("job.list", {"status": "completed"})["items"]] == [ids[2]]
    assert [j["id"] for j in stack.ok("job.list", {"status": "waiting"})["items"]] == [ids[3]]
    org = stack.rows("SELECT o.id, o.name FROM organisations o JOIN users u ON u.org_id = o.id "
                     "ORDER BY u.id LIMIT 1")[0]
    by_name = stack.ok("job.list", {"org": org["name"]})
    by_id = stack.ok("job.list", {"org": str(org["id"])})
    assert by_name["total"] == by_id["total"] == 4
    assert stack.ok("job.list", {"org": "No Such Org"})["total"] == 0
    # the same through adminctl, as the issue writes it
    out = ctl_json(stack, "jobs", "list", "--status", "failed", "--org", org["name"])
    assert sorted(j["id"] for j in out["items"]) == sorted(ids[:2])
    rc, _, err = stack.adminctl("jobs", "list", "--status", "lost")
    assert rc == 2 and "waiting, running, failed, completed" in err, err
    assert_error(stack.cmd("job.list", {"status": "lost"}), "invalid", "status")
    assert ctl_json(stack, "jobs", "purge", "--completed")["deleted"] == 1
    assert stack.count("jobs", "id = %s", ids[2]) == 0 and stack.count("jobs") == 3


def test_cancel_a_queued_job_then_retry_it(stack):
    j = stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 10}})["id"]
    c = stack.ok("job.cancel", {"job": j})
    assert c["state"] == "cancelled" and c["status"] == 3
    row = job_row(stack, j)
    assert row["state"] == "cancelled" and row["date_finished"] is not None
    assert ready_count(stack, j) == 0
    assert_error(stack.cmd("job.cancel", {"job": j}), "conflict", "job")

    r = stack.ok("job.retry", {"job": j})
    assert r["state"] == "queued" and r["attempts"] == 0
    assert ready_count(stack, j) == 1
    assert_error(stack.cmd("job.retry", {"job": j}), "conflict", "job")
    actions = [a["change"] for a in stack.rows(
        "SELECT `change` FROM logs WHERE model = 'Job' AND model_id = %s ORDER BY id", j)]
    assert actions[1:] == ["state (queued) => (cancelled)", "state (cancelled) => (queued)"]


def test_purge_removes_only_finished_jobs(stack):
    keep = stack.ok("job.enqueue", {"type": "noop"})["id"]
    gone = stack.ok("job.enqueue", {"type": "noop"})["id"]
    stack.ok("job.cancel", {"job": gone})
    assert stack.ok("job.purge", {})["deleted"] == 0  # completed only: none is done
    assert stack.ok("job.purge", {"all": True})["deleted"] >= 1
    assert stack.count("jobs", "id = %s", gone) == 0
    assert stack.count("jobs", "id = %s", keep) == 1


def test_queue_stats_and_worker_views(stack):
    stack.ok("job.enqueue", {"type": "noop"})
    stats = {q["queue"]: q for q in stack.ok("queue.stats", {})["items"]}
    assert set(stats) == {"default", "prio", "cache", "email", "update"}
    assert stats["default"]["queued"] >= 1 and stats["default"]["ready"] >= 1
    assert stack.ok("worker.list", {}) == {"items": [], "total": 0, "page": 1, "limit": 100}
    assert_error(stack.cmd("worker.pause", {"worker": "nohost:1:default"}), "not_found", "worker")


def test_adminctl_jobs(stack):
    out = ctl_json(stack, "jobs", "enqueue", "sleep", "--arg", "ms=20", "--arg", "record=cli")
    assert out["type"] == "sleep"
    row = job_row(stack, out["id"])
    assert msgpack.unpackb(row["payload"]) == {"ms": 20, "record": "cli"}
    rc, text, err = stack.adminctl("jobs", "list", "--state", "queued")
    assert rc == 0 and "sleep" in text, (text, err)
    rc, _, err = stack.adminctl("jobs", "enqueue", "sleep", "--arg", "oops")
    assert rc == 2 and "key=value" in err
    rc, _, err = stack.adminctl("jobs", "enqueue", "sleep", "--arg", "ms=abc")
    assert rc == 1 and "args.ms" in err


def test_queue_clear_cancels_waiting_jobs_only(stack):
    waiting = [stack.ok("job.enqueue", {"type": "noop"})["id"] for _ in range(3)]
    running = stack.ok("job.enqueue", {"type": "noop"})["id"]
    # a job a worker holds (claimed by SQL, as a worker's claim does) must be left alone
    stack.rows("DELETE FROM job_ready WHERE job_id = %s", running)
    stack.rows("UPDATE jobs SET state = 'running', status = 2, attempts = 1 WHERE id = %s",
               running)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"queue.default.cleared")
    sub.setsockopt(zmq.SUBSCRIBE, b"audit.")
    sub.connect(stack.events)
    for _ in range(50):  # until the subscription has reached the engine
        stack.ok("org.add", {"name": f"probe-{_}"})
        if sub.poll(100):
            break
    while sub.poll(200):
        sub.recv_multipart()

    r = stack.ok("queue.clear", {"queue": "default"})
    assert r == {"queue": "default", "cleared": 3}
    for j in waiting:
        row = job_row(stack, j)
        assert row["state"] == "cancelled" and row["status"] == 3, row
        assert row["date_finished"] is not None and "Cleared" in row["message"]
    assert job_row(stack, running)["state"] == "running"
    assert stack.count("job_ready", "worker = 'default'") == 0
    topics = set()
    while sub.poll(2000):
        topic, body = sub.recv_multipart()
        topics.add(topic.decode())
        if topic == b"queue.default.cleared":
            assert msgpack.unpackb(body)["data"] == {"cleared": 3}
            break
    assert "queue.default.cleared" in topics
    sub.close()
    audit = stack.rows("SELECT title FROM logs WHERE model = 'Job' AND title LIKE 'Queue %%'")
    assert [a["title"] for a in audit] == ["Queue default cleared: 3 job(s) cancelled"]

    assert stack.ok("queue.clear", {"queue": "default"})["cleared"] == 0
    assert_error(stack.cmd("queue.clear", {"queue": "nosuch"}), "invalid", "queue")
    rc, out, err = stack.adminctl("queue", "clear", "email")
    assert rc == 0 and "cleared" in out, (out, err)
