"""Workers, the scheduler and the supervisor in a Kafka-only deployment (issue 7): no
ZeroMQ broker at all, one engine with transport = kafka on librdkafka's mock cluster, and
the daemons on the Kafka daemon bus (broker/kafka/kbus.c): they publish to the events topic and
follow it for wake-ups, hand-overs and control notices.

- A job enqueued over Kafka is picked up at once by an idle worker whose fallback poll is a
  minute away (only a wake-up or hand-over notice read from Kafka explains it), and its
  started, progress and done events arrive on the events topic.
- worker.pause / worker.resume / worker.stop reach an idle worker at once (its poll and
  heartbeat a minute or more apart).
- The scheduler fires a due task; its job.<id>.queued and wake-up go through Kafka, and the
  idle worker runs the job on that wake-up.
- The supervisor starts its workers and one more on worker.start; their events arrive.
- SIGTERM stops an idle worker, the scheduler and the supervisor at once, also a worker
  signalled while it opens its bus (the stop-signal race of session 4)."""

import json
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from conftest import BIN, clean_env
from helpers import paused_worker_claims_nothing
from kafka_stack import SESSION_TIMEOUT_MS, KafkaStack

JOBS_PURGE = 6
PICKUP_S = 20.0  # a notice's pick-up (ASan, a loaded machine); the fallback poll is 60 s
STOP_S = 10.0  # a prompt exit after SIGTERM (a hang would be the 60 s class)


@pytest.fixture
def kevents(kstack):
    e = kstack.event_tail()
    yield e
    e.close()


def job(stack, job_id):
    return stack.rows("SELECT * FROM jobs WHERE id = %s", job_id)[0]


def wait_state(stack, job_id, state, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = job(stack, job_id)
        if row["state"] == state:
            return row
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not {state} within {timeout}s: {job(stack, job_id)!r}")


def worker_row(stack, w):
    return stack.rows("SELECT * FROM workers WHERE id = %s", w.id)[0]


def idle_worker(stack, queue="default", **config):
    """A worker whose fallback poll and heartbeat are a minute or more apart, given a moment
    to settle into its first wait."""
    w = stack.start_worker(queue, worker_poll_ms=60000, job_lease_s=600, **config)
    time.sleep(1.0)
    return w


def test_no_broker_runs_in_a_kafka_stack(kstack):
    assert kstack.broker is None
    assert "transport=kafka" in (kstack.home / "adminbus.conf").read_text()


def test_a_job_enqueued_over_kafka_is_picked_up_at_once_and_its_events_arrive(kstack, kevents):
    w = idle_worker(kstack)
    lat = []
    for i in range(5):
        t0 = time.monotonic()
        r = kstack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 200, "record": f"k{i}"}})
        jid = r["id"]
        _, t, started = kevents.wait(f"job.{jid}.started", timeout=PICKUP_S)
        _, _, queued = kevents.wait(f"job.{jid}.queued", timeout=PICKUP_S)
        lat.append((t - t0, (started["ts"] - queued["ts"]) / 1000))
        row = wait_state(kstack, jid, "done", timeout=PICKUP_S)
        assert row["process_id"] == w.id, row
        # the worker's events on the events topic: keyed by their topic but placed by their
        # job (ab_kafka_order_events), so all of one job's events share a partition and the
        # worker's own come in the order it sent them
        i_prog, _, prog = kevents.wait(f"job.{jid}.progress", timeout=PICKUP_S)
        i_done, _, done = kevents.wait(f"job.{jid}.done", timeout=PICKUP_S)
        assert prog["data"]["id"] == jid and 0 <= prog["data"]["progress"] <= 100, prog
        assert done["data"]["state"] == "done", done
        assert started["data"]["state"] == "running", started
        names = [name for name, _ in kevents.of_job(jid)]
        worker_own = [n for n in names if n != "queued"]
        assert worker_own[0] == "started" and worker_own[-1] == "done", names
        assert i_prog < i_done, names
        assert len(kevents.partitions_of_job(jid)) == 1, (names, kevents.partitions_of_job(jid))
    # what woke it: the engine's wake-up or hand-over notice, read from Kafka
    # (each on its own key's partition, so possibly fetched after the job's own events)
    deadline = time.monotonic() + 10
    while not (kevents.topics("wake.default") + kevents.topics(f"worker.{w.id}.assign")):
        assert time.monotonic() < deadline, kevents.topics()
        time.sleep(0.1)
    # Printed, not asserted: with a 60 s poll every start within PICKUP_S is the notice's.
    # queued → started (the events' own times): the engine's outbox relay, Kafka, the
    # worker's fetch and its claim; the round trip adds the command's way over Kafka.
    trip = sorted(a for a, _ in lat)
    notice = sorted(b for _, b in lat)
    print(f"over Kafka: job.enqueue → started seen p50 {trip[2] * 1000:.0f} ms; "
          f"queued → started p50 {notice[2] * 1000:.0f} ms, max {notice[-1] * 1000:.0f} ms")


def test_adminctl_over_kafka_enqueues_and_sees_the_job_events(kstack, kevents):
    idle_worker(kstack)
    rc, out, err = kstack.adminctl("--json", "job", "enqueue", "noop")
    assert rc == 0, err
    jid = json.loads(out)["id"]
    wait_state(kstack, jid, "done", timeout=PICKUP_S)
    kevents.wait(f"job.{jid}.done", timeout=PICKUP_S)


def test_pause_resume_and_stop_reach_an_idle_worker_at_once(kstack, kevents):
    w = idle_worker(kstack, log_level="debug")
    kstack.ok("worker.pause", {"worker": w.id})
    i, _, _ = kevents.wait(f"worker.{w.id}.paused", timeout=PICKUP_S)
    assert worker_row(kstack, w)["status"] == "paused"
    # its wake-ups come over Kafka: each enqueue makes it look at its row (poll: 60 s)
    jobs = paused_worker_claims_nothing(
        kstack, w, lambda: kstack.ok("job.enqueue", {"type": "noop", "args": {}})["id"],
        timeout=PICKUP_S)
    kstack.ok("worker.resume", {"worker": w.id})
    kevents.wait(f"worker.{w.id}.up", timeout=PICKUP_S, after=i + 1)
    for jid in jobs:
        wait_state(kstack, jid, "done", timeout=PICKUP_S)
    t0 = time.monotonic()
    kstack.ok("worker.stop", {"worker": w.id})
    assert w.proc.wait(timeout=PICKUP_S) == 0
    w.expected_dead = True
    print(f"worker.stop over Kafka → exit: {(time.monotonic() - t0) * 1000:.0f} ms")
    kevents.wait(f"worker.{w.id}.down", timeout=PICKUP_S)
    assert worker_row(kstack, w)["status"] == "dead"


def minute_floor_text(stack):
    now = int(stack.rows("SELECT UNIX_TIMESTAMP() AS t")[0]["t"])
    due = now - now % 60
    return due, datetime.fromtimestamp(due, timezone.utc).strftime("%Y-%m-%dT%H:%M")


def test_the_scheduler_fires_a_task_and_the_worker_runs_it_on_the_kafka_wake_up(kstack, kevents):
    w = idle_worker(kstack)
    sched = kstack.start_scheduler()
    deadline = time.monotonic() + 15
    while not sched.is_leader():
        assert time.monotonic() < deadline, sched.log_text()
        time.sleep(0.05)
    due, text = minute_floor_text(kstack)
    kstack.ok("task.set", {"task": JOBS_PURGE, "frequency": 1, "next": text})
    deadline = time.monotonic() + 15
    while (jid := kstack.rows("SELECT last_job_id FROM tasks WHERE id = %s",
                              JOBS_PURGE)[0]["last_job_id"]) is None:
        assert time.monotonic() < deadline, sched.log_text()
        time.sleep(0.05)
    # the scheduler's events, through Kafka: the job queued and the queue's wake-up
    _, _, queued = kevents.wait(f"job.{jid}.queued", timeout=PICKUP_S)
    assert queued["data"]["type"] == "jobs.purge", queued
    kevents.wait("wake.default", timeout=PICKUP_S)
    row = wait_state(kstack, jid, "done", timeout=PICKUP_S)  # the wake-up, not the 60 s poll
    assert row["process_id"] == w.id, row
    kevents.wait(f"job.{jid}.done", timeout=PICKUP_S)


def test_the_supervisor_starts_its_workers_and_one_more_on_request(kstack, kevents):
    sup = kstack.start_supervisor(workers="default:1")
    rows = sup.wait_workers(1)
    kevents.wait(f"worker.{rows[0]['id']}.up", timeout=15)
    r = kstack.ok("worker.start", {"queue": "email"})
    assert r["state"] == "requested", r
    more = sup.wait_workers(1, queue="email", timeout=15)
    kevents.wait(f"worker.{more[0]['id']}.up", timeout=15)
    jid = kstack.ok("job.enqueue", {"type": "noop", "args": {}})["id"]
    wait_state(kstack, jid, "done", timeout=PICKUP_S)
    t0 = time.monotonic()
    assert sup.stop() == 0
    assert time.monotonic() - t0 < 5 + STOP_S  # its workers' grace is 5 s; idle ones go at once
    assert not sup.workers()


def test_sigterm_stops_idle_daemons_at_once(kstack):
    sched = kstack.start_scheduler()
    workers = [kstack.start_worker(worker_poll_ms=60000, job_lease_s=600) for _ in range(2)]
    time.sleep(0.5)
    for d in workers + [sched]:
        t0 = time.monotonic()
        assert d.stop() == 0, d.name
        took = time.monotonic() - t0
        assert took < STOP_S, f"{d.name} took {took:.1f}s to stop"


def catches_sigterm(pid):
    """Whether process pid has installed its SIGTERM handler (SigCgt in /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16) & (1 << (15 - 1)) != 0
    return False


def test_sigterm_while_a_worker_opens_its_bus_or_starts_stops_it_cleanly(kstack):
    """Signals at several moments of the start once the handlers are in place (opening the
    Kafka bus, connecting to the database, registering, the first wait): each worker exits
    0, promptly."""
    for delay in (0.0, 0.1, 0.3, 0.8):
        w = kstack.start_worker(wait=False, worker_poll_ms=60000, job_lease_s=600)
        deadline = time.monotonic() + 10
        while not catches_sigterm(w.pid):
            assert time.monotonic() < deadline and w.alive(), kstack.tail(w.log)
            time.sleep(0.002)
        time.sleep(delay)
        t0 = time.monotonic()
        assert w.stop() == 0, w.name
        took = time.monotonic() - t0
        assert took < STOP_S, f"{w.name} signalled after {delay}s took {took:.1f}s to stop"


def test_the_daemons_take_the_kafka_pass_through_properties(kstack):
    """kafka.<property> reaches the daemon bus's clients: a bad value stops the worker at
    once with a message naming it (a good one, kafka.topic.metadata.refresh.interval.ms,
    is in every test's adminbus.conf)."""
    w = kstack.start_worker(wait=False, **{"kafka.fetch.wait.max.ms": "soon"})
    assert w.proc.wait(timeout=30) == 1
    w.expected_dead = True
    log = open(w.log).read()
    assert "kafka property fetch.wait.max.ms" in log, log


def test_diagnostics_probe_the_kafka_events_topic(kstack, kevents):
    r = kstack.ok("diagnostics.run")
    bus = [c for c in r["checks"] if c["name"] == "bus"]
    assert len(bus) == 1 and bus[0]["status"] == "ok", bus
    assert "came back" in bus[0]["found"] and kstack.topics["events"] in bus[0]["found"], bus
    # the probe went through the events topic itself
    kevents.wait("diagnostics.probe.", timeout=10, prefix=True)


def test_adminctl_local_publishes_its_events_to_kafka(kstack, kevents):
    p = subprocess.run([str(BIN / "adminctl"), "--local", "org", "add", "--name",
                        "local-kafka-org"], env=clean_env(ADMINBUS_HOME=kstack.home),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "not published" not in p.stderr, p.stderr
    org = kstack.rows("SELECT id FROM organisations WHERE name = 'local-kafka-org'")[0]["id"]
    kevents.wait("audit.Organisation.add", timeout=PICKUP_S,
                 where=lambda ev: ev["data"]["id"] == org)


# --- ops/run --kafka ---------------------------------------------------------------------------


def test_ops_run_kafka_runs_the_stack_without_a_broker(mariadb, tmp_path, kafka_mock):
    """ops/run --kafka BOOTSTRAP --detach: engine, supervisor (its workers) and scheduler on
    the mock cluster, no broker and no HTTP shim; the env file points adminctl at Kafka; a
    job enqueued through it runs; ops/stop stops it all."""
    root = BIN.parent.parent
    home = tmp_path / "ops-home"
    s = KafkaStack(mariadb, home, kafka_mock)  # for its topics and database only
    for t in s.topics.values():
        kafka_mock.topic(t)
    admin = mariadb.connect()
    with admin.cursor() as c:
        c.execute(f"CREATE DATABASE `{s.database}`")
    admin.close()
    s.created = True
    home.mkdir(parents=True)
    (home / "adminbus.conf").write_text(
        f"db_dsn={mariadb.dsn_for(s.database)}\n"
        + "".join(f"kafka_{k}_topic={v}\n" for k, v in s.topics.items())
        + f"kafka_group={s.group}\nworkers=default:1\nworker_grace_s=2\n"
        # as in KafkaStack: when a member joins a running group (the engine's second apply
        # loop, if it comes after the first was assigned), the mock cluster closes the
        # rebalance only session.timeout.ms - 1 s later (a real broker as soon as every
        # member has rejoined), and nothing is consumed meanwhile
        f"kafka.session.timeout.ms={SESSION_TIMEOUT_MS}\nkafka.heartbeat.interval.ms=500\n"
        "kafka.topic.metadata.refresh.interval.ms=2000\n")
    env = clean_env(ADMINBUS_HOME=home, ADMINBUS_BUILD=str(BIN.parent))
    try:
        run = subprocess.run([str(root / "ops" / "run"), "--kafka", kafka_mock.bootstrap,
                              "--detach", "--no-build"], env=env, capture_output=True,
                             text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "on Kafka" in run.stdout and "kafka://" in run.stdout, run.stdout
        conf = (home / "adminbus.conf").read_text()
        assert "transport=kafka" in conf and f"kafka_brokers={kafka_mock.bootstrap}" in conf
        assert not (home / "run" / "broker.pid").exists()
        assert (home / "run" / "http.pid").exists()  # the HTTP shim, over the cluster too
        envfile = dict(line.split("=", 1) for line in (home / "env").read_text().splitlines())
        assert envfile["ADMINBUS_URL"].startswith(f"kafka://{kafka_mock.bootstrap}/")
        assert "metadata.refresh" in envfile["ADMINBUS_URL"]  # the kafka.* properties
        s.db = mariadb.connect(s.database)
        deadline = time.monotonic() + 30
        while not s.count("workers", "status = 'ok'"):  # the supervisor's worker registers
            assert time.monotonic() < deadline, (home / "log" / "supervisor.log").read_text()
            time.sleep(0.2)
        ctl = subprocess.run([str(BIN / "adminctl"), "--json", "job", "enqueue", "noop"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert ctl.returncode == 0, ctl.stderr + (home / "log" / "engine.log").read_text()
        jid = json.loads(ctl.stdout)["id"]
        wait_state(s, jid, "done", timeout=15)
        # MISP's job route through the shim, which reaches the engine over Kafka as well
        req = urllib.request.Request(f"{envfile['ADMINBUS_HTTP']}/jobs/getProgress/{jid}",
                                     headers={"Authorization": envfile["ADMINBUS_AUTHKEY"],
                                              "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read()) == 100
    finally:
        stop = subprocess.run([str(root / "ops" / "stop")], env=env, capture_output=True,
                              text=True, timeout=180)
        s.close()
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for name in ("engine", "supervisor", "scheduler", "http"):
        assert not (home / "run" / f"{name}.pid").exists(), name
        s.check_log_file(home / "log" / f"{name}.log")
    assert not s.problems, s.problems
