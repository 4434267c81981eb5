"""job.enqueue_many: many jobs in one command, all or none (issue 3: automation starts any
job; acceptance 7: the bulk path of the throughput benchmark), and the worker's shared
completion of jobs that write nothing."""

import json
import time

import msgpack
import zmq

from helpers import assert_error, ctl_json


def job_rows(stack, ids):
    marks = ", ".join(["%s"] * len(ids))
    return {r["id"]: r for r in stack.rows(f"SELECT * FROM jobs WHERE id IN ({marks})", *ids)}


def wait_all_done(stack, ids, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = job_rows(stack, ids)
        bad = [r for r in rows.values() if r["state"] in ("failed", "cancelled")]
        assert not bad, bad[:3]
        if sum(r["state"] == "done" for r in rows.values()) == len(ids):
            return rows
        time.sleep(0.05)
    rows = job_rows(stack, ids)
    raise AssertionError(f"not all done: {[r for r in rows.values() if r['state'] != 'done'][:3]}")


def test_enqueue_many_stores_every_job_in_order_with_audit_and_ready_rows(stack):
    first = stack.ok("job.enqueue", {"type": "noop", "unique_key": "bulk:k1"})
    jobs = [{"type": "noop"},
            {"type": "sleep", "args": {"ms": 5, "record": "b1"}, "priority": 7},
            {"type": "noop", "unique_key": "bulk:k1"},  # finds the first
            {"type": "noop", "unique_key": "bulk:k2"},
            {"type": "sleep", "run_at": int(time.time() * 1000) + 3_600_000}]
    r = stack.ok("job.enqueue_many", {"jobs": jobs})
    assert r["count"] == 5 and r["queued"] == 4
    assert r["existed"] == [False, False, True, False, False]
    ids = r["ids"]
    assert ids[2] == first["id"] and len(set(ids)) == 5
    rows = job_rows(stack, ids)
    assert [rows[i]["job_type"] for i in ids] == ["noop", "sleep", "noop", "noop", "sleep"]
    assert rows[ids[1]]["priority"] == 7 and msgpack.unpackb(rows[ids[1]]["payload"]) == {
        "ms": 5, "record": "b1"}
    assert "ms=5" in rows[ids[1]]["job_input"]
    assert rows[ids[3]]["unique_key"] == "bulk:k2"
    assert all(rows[i]["state"] == "queued" for i in ids)
    for i in ids:
        assert stack.count("job_ready", "job_id = %s", i) == 1
    ready = stack.rows("SELECT prank FROM job_ready WHERE job_id = %s", ids[1])[0]
    assert ready["prank"] == -7
    # One audit row for the command: every new job's id, its types, the count.
    audit = stack.rows("SELECT * FROM logs WHERE model = 'Job' AND title LIKE 'Jobs (%%'")
    assert len(audit) == 1 and audit[0]["action"] == "add", audit
    assert audit[0]["title"] == "Jobs (4): enqueued in one command"
    change = audit[0]["change"]
    assert "job_type () => (noop, sleep)" in change and "count () => (4)" in change, change
    listed = set()
    for part in change.split("job_ids () => (")[1].split(")")[0].split(", "):
        lo, _, hi = part.partition("-")
        listed |= set(range(int(lo), int(hi or lo) + 1))
    assert listed == {i for i, existed in zip(ids, r["existed"]) if not existed}


def test_enqueue_many_is_all_or_nothing_and_names_the_entry(stack):
    before, jobs_before = stack.counts(), stack.count("jobs")
    good = {"type": "noop"}
    cases = [
        ({"jobs": [good, good, {"type": "sleep", "args": {"ms": "x"}}]}, "jobs[2].args.ms"),
        ({"jobs": [good, {"type": "nosuch"}]}, "jobs[1].type"),
        ({"jobs": [{"type": "noop", "bogus": 1}]}, "jobs[0].bogus"),
        ({"jobs": [{"args": {}}]}, "jobs[0].type"),
        ({"jobs": [good, {"type": "noop", "priority": 1000}]}, "jobs[1].priority"),
        ({"jobs": [good, 5]}, "jobs[1]"),
        ({"jobs": []}, "jobs"),
        ({"jobs": {"type": "noop"}}, "jobs"),
        ({"jobs": [good] * 1001}, "jobs"),
        ({}, "jobs"),
    ]
    for args, field in cases:
        assert_error(stack.cmd("job.enqueue_many", args), "invalid", field)
    assert stack.counts() == before and stack.count("jobs") == jobs_before


def test_enqueue_many_announces_each_job_and_wakes_each_queue_once(stack):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"job.")
    sub.setsockopt(zmq.SUBSCRIBE, b"wake.")
    sub.connect(stack.events)
    for _ in range(50):  # until the subscription has reached the broker
        r = stack.ok("job.enqueue_many", {"jobs": [{"type": "noop"}] * 3})
        # The engine loop that ran the command publishes its wake-up notices first, then
        # the jobs' events, on one socket: the last job's event ends what it announced.
        topics, last = [], f"job.{r['ids'][-1]}.queued"
        while last not in topics and sub.poll(200 if not topics else 30000):
            topics.append(sub.recv_multipart()[0].decode())
        if f"job.{r['ids'][0]}.queued" in topics:
            break
    assert [t for t in topics if t.startswith("job.")] == [f"job.{i}.queued" for i in r["ids"]]
    assert topics.count("wake.default") == 1
    sub.close()


def test_cli_enqueue_many_from_a_file_and_inline(stack, tmp_path):
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps([{"type": "noop"}, {"type": "sleep", "args": {"ms": 1}}]))
    r = ctl_json(stack, "job", "enqueue-many", "--jobs", f"@{f}")
    assert r["count"] == 2 and len(r["ids"]) == 2
    assert [row["job_type"] for row in job_rows(stack, r["ids"]).values()] == ["noop", "sleep"]
    r = ctl_json(stack, "job", "enqueue-many", "--jobs", '[{"type": "noop", "priority": 3}]')
    assert job_rows(stack, r["ids"])[r["ids"][0]]["priority"] == 3
    rc, out, err = stack.adminctl("--json", "job", "enqueue-many", "--jobs", "-",
                                  stdin=json.dumps([{"type": "noop"}] * 3))
    assert rc == 0, (out, err)
    doc = json.loads(out)
    assert doc.get("result", doc)["count"] == 3, doc


def test_cli_enqueue_many_refuses_bad_json_before_sending(stack, tmp_path):
    jobs_before = stack.count("jobs")
    for value, needle in (("[{\"type\": ", "not JSON"), ('{"type": "noop"}', "JSON array"),
                          ("[1]", "not a JSON object"), ("[]", "entries"),
                          (f"@{tmp_path}/missing.json", "not JSON")):
        rc, out, err = stack.adminctl("job", "enqueue-many", "--jobs", value)
        assert rc == 2 and needle in err, (value, rc, out, err)
    rc, out, err = stack.adminctl("--json", "job", "enqueue-many", "--jobs",
                                  '[{"type": "sleep", "args": {"ms": "x"}}]')
    assert rc == 1 and json.loads(out)["error"]["field"] == "jobs[0].args.ms", (out, err)
    assert stack.count("jobs") == jobs_before


def test_workers_run_a_bulk_exactly_once_with_shared_completions(stack):
    workers = [stack.start_worker() for _ in range(2)]
    recorded = [{"type": "noop", "args": {"record": f"bulk-{i}"}} for i in range(200)]
    plain = [{"type": "noop"} for _ in range(300)]
    ids = []
    for chunk in (plain[:150], recorded[:100], plain[150:], recorded[100:]):
        ids += stack.ok("job.enqueue_many", {"jobs": chunk})["ids"]
    rows = wait_all_done(stack, ids)
    assert all(r["attempts"] == 1 and r["lease_token"] is None and r["date_finished"]
               for r in rows.values())
    assert all(r["message"] == "Done" for r in rows.values())
    effects = stack.rows("SELECT tag, COUNT(*) AS n FROM job_effects GROUP BY tag")
    assert len(effects) == 200 and all(e["n"] == 1 for e in effects)
    done = sum(r["done_count"] for r in stack.rows("SELECT done_count FROM workers"))
    assert done == 500
    assert all(w.alive() for w in workers)
