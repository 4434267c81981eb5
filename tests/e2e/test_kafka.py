"""The Kafka transport (issue 7, acceptance 1 and 2), against librdkafka's mock cluster
(three brokers on loopback, in the adminbus-kafka-mock process; see kafka_stack.py).

- Two engines in one consumer group consume a stream of org.add commands while the test
  SIGKILLs one: every command is applied exactly once (organisations, audit rows and command
  ids in MariaDB) and every command gets its ok reply on the replies topic.
- A command produced with `kcat -P` from a msgpack file is applied and answered.
- A broker of the cluster goes down and comes back while commands flow: every command is
  applied once and answered, and the group's committed offsets reach the end of every
  partition (no lag left).
- MariaDB killed while commands arrive: `unavailable` replies, the commands stay in the
  topic and are applied once when it is back.
- adminctl over ADMINBUS_URL=kafka://…, and `adminctl events` over Kafka sees the events
  the engine relayed from its outbox (left empty afterwards)."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import msgpack
import pytest
from confluent_kafka import TopicPartition

from conftest import BIN, running
from helpers import wait_for
from kafka_stack import PARTITIONS, KafkaStack


@pytest.fixture
def kstack2(mariadb, tmp_path, kafka_mock):
    """Two engines in one group."""
    with running(KafkaStack(mariadb, tmp_path / "home", kafka_mock), engines=2) as s:
        yield s


def org_adds(stack, prefix, n):
    return [stack.command("org.add", {"name": f"{prefix}-{i}"}, id=str(uuid.uuid4()))
            for i in range(n)]


def produce_all(stack, cmds, reply_to):
    """Produce cmds, each keyed by its id, their answers to go to reply_to."""
    for cmd in cmds:
        stack.produce(dict(cmd, reply_to=reply_to), cmd["id"].encode())
    stack.producer.flush(30)


def produce_and_wait_applied(stack, cmds, reply_to, prefix, timeout=30):
    """Produce cmds (answers to reply_to) and wait until an organisation named prefix…
    exists for each of them."""
    produce_all(stack, cmds, reply_to)
    where = "name LIKE %s"
    deadline = time.monotonic() + timeout
    while (stack.count("organisations", where, prefix + "%") < len(cmds)
           and time.monotonic() < deadline):
        time.sleep(0.1)
    assert stack.count("organisations", where, prefix + "%") == len(cmds)


# With kafka.debug=cgrp, librdkafka's consumer writes, at each auto-commit pass (every 200 ms
# in the engine), one line per assigned partition with its stored and committed offsets; the
# engine logs them at debug. Had the engine stored an offset past an undelivered reply, the
# next pass would commit it.
COMMIT_PASS = re.compile(r"Topic (\S+) \[(\d+)\]: stored offset -?\d+, committed offset")
READ_AGAIN = "read again from a command whose reply was lost"


def engine_log(stack, since=0):
    with open(stack.engine.log, "rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace")


def wait_commit_passes(stack, n=2, timeout=30):
    """Wait until the engine (kafka.debug=cgrp, log_level=debug) has made n auto-commit passes
    over every partition of the commands topic from now on: the last of two began after
    this call."""
    mark = os.path.getsize(stack.engine.log)

    def passes():
        seen = [m.group(2) for m in COMMIT_PASS.finditer(engine_log(stack, mark))
                if m.group(1) == stack.topics["commands"]]
        return min(seen.count(str(p)) for p in range(PARTITIONS))

    wait_for(f"{n} auto-commit passes of the engine", lambda: passes() >= n, timeout)


def offsets_moved(stack, before):
    """Whether a committed offset of the group differs from before's."""
    now = stack.committed_lag()
    return any(now[p][0] != before[p][0] for p in before)


def assert_offsets_held(stack, before, past):
    """The group's committed offsets are still those of before (none moved past what
    `past` names); returns the current (committed, end) per partition."""
    during = stack.committed_lag()
    assert all(during[p][0] == before[p][0] for p in before), \
        f"offsets moved past {past}: {before} -> {during}"
    return during


def assert_applied_once(stack, cmds, replies):
    """Every command answered ok, and in MariaDB exactly one organisation, one audit row
    and one command id each."""
    for c in cmds:
        rs = replies[c["id"]]
        assert all(r["ok"] is True for r in rs), rs
        # repeats (a command read again after a kill or a rebalance) answer the same
        assert len({msgpack.packb(r) for r in rs}) == 1, rs
    names = [c["args"]["name"] for c in cmds]
    marks = ", ".join(["%s"] * len(names))
    rows = stack.rows(f"SELECT name, COUNT(*) AS n FROM organisations WHERE name IN ({marks}) "
                      "GROUP BY name", *names)
    assert len(rows) == len(names) and all(r["n"] == 1 for r in rows), \
        f"{len(rows)} of {len(names)} organisations, duplicates: " \
        f"{[r for r in rows if r['n'] != 1][:5]}"
    ids = [c["id"] for c in cmds]
    marks = ", ".join(["%s"] * len(ids))
    assert stack.count("command_ids", f"cmd_id IN ({marks})", *ids) == len(ids)
    org_ids = [r["id"] for r in stack.rows(
        f"SELECT id FROM organisations WHERE name IN ({', '.join(['%s'] * len(names))})",
        *names)]
    marks = ", ".join(["%s"] * len(org_ids))
    audits = stack.rows(f"SELECT model_id, COUNT(*) AS n FROM logs WHERE model = "
                        f"'Organisation' AND action = 'add' AND model_id IN ({marks}) "
                        "GROUP BY model_id", *org_ids)
    assert len(audits) == len(org_ids) and all(a["n"] == 1 for a in audits), \
        "not one audit row per organisation"


def events_on_topic(stack, topic_prefix):
    """Every event record now on the events topic whose key starts with topic_prefix."""
    c = stack.consumer(stack.topics["events"], from_end=False)
    ends = {}
    for p in range(PARTITIONS):
        ends[p] = c.get_watermark_offsets(TopicPartition(stack.topics["events"], p),
                                          timeout=10)[1]
    seen, pos = [], {p: -1 for p in ends}
    deadline = time.monotonic() + 30
    while any(pos[p] + 1 < ends[p] for p in ends) and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        pos[m.partition()] = m.offset()
        if m.key().decode().startswith(topic_prefix):
            seen.append(msgpack.unpackb(m.value(), raw=False))
    c.close()
    return seen


def wait_outbox_empty(stack, timeout=30):
    deadline = time.monotonic() + timeout
    while stack.count("event_outbox") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.count("event_outbox") == 0, "events left in the outbox"


def wait_no_lag(stack, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        lag = stack.committed_lag()
        if all(c == hi for c, hi in lag.values()):
            return lag
        assert time.monotonic() < deadline, f"committed offsets behind the end: {lag}"
        time.sleep(0.3)


def test_two_engines_one_killed_every_command_applied_once(kstack2):
    cmds = org_adds(kstack2, "kill", 600)
    first, rest = cmds[:300], cmds[300:]
    c = kstack2.consumer(kstack2.topics["replies"])
    killed = threading.Event()
    result = {}

    def client():
        # the first half in small paced bursts, so the engines are busy when the kill comes;
        # the rest only after it, so the survivor must take over the victim's partitions
        for i in range(0, len(first), 10):
            produce_all(kstack2, first[i:i + 10], "client-kill")
            time.sleep(0.02)
        if killed.wait(120):
            produce_all(kstack2, rest, "client-kill")
            result["replies"] = kstack2.collect(c, [x["id"] for x in cmds], "client-kill",
                                                timeout=180)

    t = threading.Thread(target=client)
    t.start()
    # kill one engine once the stream is under way
    deadline = time.monotonic() + 60
    while kstack2.count("command_ids") < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = kstack2.engines[0]
    kstack2.kill_engine(victim)
    killed.set()
    t.join(300)
    c.close()
    assert "replies" in result, "the client did not get every reply"
    assert_applied_once(kstack2, cmds, result["replies"])
    survivor = kstack2.engines[1]
    assert survivor.alive()
    wait_no_lag(kstack2)
    # no event lost: an audit.Organisation.add for every organisation, relayed from the
    # outbox (by the survivor for what the killed engine committed but had not relayed)
    wait_outbox_empty(kstack2)
    names = [c["args"]["name"] for c in cmds]
    org_ids = {r["id"] for r in kstack2.rows(
        f"SELECT id FROM organisations WHERE name IN ({', '.join(['%s'] * len(names))})",
        *names)}
    seen = {e["data"]["id"] for e in events_on_topic(kstack2, "audit.Organisation.add")}
    assert org_ids <= seen, f"{len(org_ids - seen)} organisations without their event"
    # the group lost a member: the survivor took its partitions over
    log = open(survivor.log).read()
    assert log.count("partition(s) assigned") >= 2, log[-3000:]


def test_command_from_kcat_msgpack_file_is_applied(kstack, tmp_path):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing (ops/deps installs it)"
    cmd = kstack.command("org.add", {"name": "from-kcat"})
    cmd["reply_to"] = "kcat-client"
    path = tmp_path / "command.msgpack"
    path.write_bytes(msgpack.packb(cmd, use_bin_type=True))
    c = kstack.consumer(kstack.topics["replies"])
    try:
        p = subprocess.run([kcat, "-P", "-b", kstack.mock.bootstrap,
                            "-t", kstack.topics["commands"], "-k", cmd["id"], str(path)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        replies = kstack.collect(c, [cmd["id"]], "kcat-client", timeout=30)
    finally:
        c.close()
    reply = replies[cmd["id"]][0]
    assert reply["ok"] is True, reply
    rows = kstack.rows("SELECT id, name FROM organisations WHERE name = 'from-kcat'")
    assert len(rows) == 1 and rows[0]["id"] == reply["result"]["id"]
    # the reply is readable with kcat too: keyed by reply_to, on the replies topic
    p = subprocess.run([kcat, "-C", "-b", kstack.mock.bootstrap, "-t",
                        kstack.topics["replies"], "-o", "beginning", "-e", "-f", "%k\n"],
                       capture_output=True, text=True, timeout=60)
    assert "kcat-client" in p.stdout.split(), p.stdout + p.stderr


def test_broker_down_and_up(kstack2):
    """Broker 2 leads commands partitions 0 and 1 and every replies partition; it goes down
    while commands flow. The engines keep applying what is on the healthy partitions,
    their replies wait, and once it is back everything is applied once and answered, and
    the group's committed offsets reach the end."""
    mock = kstack2.mock
    # the mock places leaders at random: say where each one is
    for p, broker in enumerate((2, 2, 1, 3)):
        mock.ask(f"leader {kstack2.topics['commands']} {p} {broker}")
    for p in range(PARTITIONS):
        mock.ask(f"leader {kstack2.topics['replies']} {p} 2")
    c = kstack2.consumer(kstack2.topics["replies"])
    before = org_adds(kstack2, "before", 100)
    during = org_adds(kstack2, "during", 100)
    after = org_adds(kstack2, "after", 100)
    try:
        got = kstack2.send_many(before, "client-bd", consumer=c)
        wait_no_lag(kstack2)
        mock.ask("down 2")
        try:
            for cmd in during:
                kstack2.produce(dict(cmd, reply_to="client-bd"), cmd["id"].encode())
            kstack2.producer.poll(0)
            # the healthy partitions' commands are applied while broker 2 is down
            deadline = time.monotonic() + 30
            while (kstack2.count("organisations", "name LIKE 'during-%%'") == 0
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            applied = kstack2.count("organisations", "name LIKE 'during-%%'")
            assert 0 < applied < len(during), f"{applied} applied while a leader was down"
            assert not kstack2.collect_nowait(c, "client-bd"), "a reply while its leader was down"
        finally:
            mock.ask("up 2")
        kstack2.producer.flush(60)
        got.update(kstack2.collect(c, [x["id"] for x in during], "client-bd", timeout=120))
        got.update(kstack2.send_many(after, "client-bd", consumer=c))
    finally:
        c.close()
    assert_applied_once(kstack2, before + during + after, got)
    lag = wait_no_lag(kstack2)
    assert sum(hi for _, hi in lag.values()) >= 300 + 1  # + the readiness whoami(s)
    wait_outbox_empty(kstack2)


@pytest.fixture
def kstack_own_db(own_mariadb, tmp_path, kafka_mock):
    """One engine on Kafka, on a MariaDB server of the test's own: the test kills it."""
    with running(KafkaStack(own_mariadb, tmp_path / "home", kafka_mock), engines=1) as s:
        yield s


def test_database_down_commands_stay_in_kafka(kstack_own_db):
    """MariaDB is killed while commands arrive: the engine answers `unavailable` and leaves
    them in the topic (no offset committed, rewound); once the database is back every
    command is applied exactly once and gets its ok reply."""
    stack = kstack_own_db
    assert stack.mariadb.restartable(), "the test's MariaDB is not one ops/db runs"
    cmds = org_adds(stack, "dbdown", 50)
    ids = {x["id"] for x in cmds}
    c = stack.consumer(stack.topics["replies"])
    replies = {}
    try:
        stack.mariadb.kill9()
        try:
            for cmd in cmds:
                stack.produce(dict(cmd, reply_to="client-db"), cmd["id"].encode())
            stack.producer.flush(30)
            deadline = time.monotonic() + 60
            unavailable = []
            while not unavailable and time.monotonic() < deadline:
                unavailable = [r for r in stack.collect_nowait(c, "client-db", 0.5)
                               if not r["ok"] and r["error"]["code"] == "unavailable"]
            assert unavailable, "no unavailable reply while the database was down"
            assert unavailable[0]["error"].get("retry_after") == 1, unavailable[0]
        finally:
            stack.mariadb.start()
        deadline = time.monotonic() + 120
        while ids - replies.keys() and time.monotonic() < deadline:
            for r in stack.collect_nowait(c, "client-db", 0.5):
                if r["ok"] and r.get("id") in ids:
                    replies.setdefault(r["id"], []).append(r)
        assert not ids - replies.keys(), f"{len(ids - replies.keys())} commands never applied"
    finally:
        c.close()
    stack.db.close()
    stack.db = stack.mariadb.connect(stack.database)
    assert_applied_once(stack, cmds, replies)
    wait_no_lag(stack)
    wait_outbox_empty(stack)
    assert "reading them again" in open(stack.engines[0].log).read()


def test_adminctl_and_events_over_kafka(kstack):
    url = kstack.kafka_url()
    env_events = dict(kstack.env, ADMINBUS_EVENTS=url)
    mon = subprocess.Popen([str(BIN / "adminctl"), "events", "--topic",
                            "audit.Organisation.", "--count", "1", "--timeout", "60"],
                           env=env_events, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    # the monitor places itself at the end of the events topic and says nothing when it is:
    # add organisations until it has printed one
    added = {}
    deadline = time.monotonic() + 60
    while mon.poll() is None and time.monotonic() < deadline:
        name = "via-adminctl" if not added else f"via-adminctl-{len(added)}"
        rc, out, err = kstack.adminctl("--json", "org", "add", "--name", name)
        assert rc == 0, out + err
        org = json.loads(out)
        assert org["name"] == name
        added[org["id"]] = name
        time.sleep(0.5)
    out, err = mon.communicate(timeout=90)
    assert mon.returncode == 0, err
    ev = json.loads(out.splitlines()[0])
    assert ev["topic"] == "audit.Organisation.add" and ev["data"]["id"] in added, ev
    # relayed, then deleted from the outbox
    wait_outbox_empty(kstack)
    # an error reply over Kafka: exit 1 with the engine's message
    rc, out, err = kstack.adminctl("org", "add", "--name", "via-adminctl")
    assert rc == 1 and "conflict" in err, out + err
    # a topic nobody serves: exit 3, precise message
    rc, out, err = kstack.adminctl("whoami", "--timeout", "3",
                                    url=url.replace("replies=", "replies=nosuch"))
    assert rc == 3 and "nosuch" in err, out + err


def test_engine_refuses_bad_kafka_configuration(kstack):
    """A wrong transport name, Kafka without brokers, an unknown librdkafka property: the
    engine says which and exits non-zero (the running engine is not disturbed)."""
    exe = str(BIN / "adminbus-engine")
    cases = [(["--transport=carrier-pigeon"], 2, "transport must be zmq or kafka"),
             (["--kafka-brokers="], 1, "needs kafka_brokers"),
             (["--kafka.no.such.property=1"], 1, "no.such.property")]
    for flags, rc, message in cases:
        p = subprocess.run([exe, *flags], env=kstack.env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == rc and message in p.stderr, (flags, p.returncode, p.stderr)
    assert kstack.cmd("auth.whoami")["ok"] is True


def wait_caught_up(stack, timeout=30):
    """wait_no_lag, where a partition nothing was ever written to (no committed offset)
    counts as caught up."""
    deadline = time.monotonic() + timeout
    while True:
        lag = stack.committed_lag()
        if all(c == hi or (hi == 0 and c < 0) for c, hi in lag.values()):
            return lag
        assert time.monotonic() < deadline, f"committed offsets behind the end: {lag}"
        time.sleep(0.3)


def restart_engine_with(stack, *conf_lines):
    """Stop the one engine, add lines to adminbus.conf, start a new one (ready)."""
    old = stack.engines[0]
    assert old.stop() in (0, -15)
    old.expected_dead = True
    with open(stack.home / "adminbus.conf", "a") as conf:
        conf.write("".join(line + "\n" for line in conf_lines))
    stack.start_engine()


def test_offsets_committed_as_replies_are_acknowledged(kstack):
    """A burst of commands: the group's committed offsets reach the end of every partition
    promptly, stored from the replies' delivery reports (no flush per batch)."""
    stack = kstack
    cmds = org_adds(stack, "burst", 300)
    got = stack.send_many(cmds, "client-burst")
    assert_applied_once(stack, cmds, got)
    lag = wait_no_lag(stack, timeout=30)
    assert sum(hi for _, hi in lag.values()) >= 300


def test_replies_broker_down_offsets_wait_apply_loop_does_not(kstack):
    """The replies' only broker goes down while commands (on healthy brokers) arrive: the
    engine applies them without waiting for their replies (ten one after the other, each
    well within the 2 s a flush per batch used to cost), but the group's committed offsets do not
    move past a command whose reply is not delivered. Once the broker is back every reply
    arrives, every command was applied once, and the offsets reach the end."""
    stack = kstack
    mock = stack.mock
    # The mock holds an empty fetch for fetch.wait.max.ms (500 ms) even when a record
    # arrives; a real broker answers at once: make the engine's wait short so that what is
    # timed below is the apply loop, not the mock.
    restart_engine_with(stack, "kafka.fetch.wait.max.ms=10", "kafka.debug=cgrp",
                        "log_level=debug")
    for p in range(PARTITIONS):
        mock.ask(f"leader {stack.topics['commands']} {p} {1 if p % 2 else 3}")
        mock.ask(f"leader {stack.topics['replies']} {p} 2")
    c = stack.consumer(stack.topics["replies"])
    warm = org_adds(stack, "warm", 20)
    one_by_one = org_adds(stack, "oneby", 10)
    burst = org_adds(stack, "downburst", 50)
    try:
        got = stack.send_many(warm, "client-od", consumer=c)
        before = wait_caught_up(stack)
        mock.ask("down 2")
        try:
            started = time.monotonic()
            for cmd in one_by_one:
                stack.produce(dict(cmd, reply_to="client-od"), cmd["id"].encode())
                stack.producer.flush(10)
                name = cmd["args"]["name"]
                deadline = time.monotonic() + 10
                while (stack.count("organisations", "name = %s", name) == 0
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                assert stack.count("organisations", "name = %s", name) == 1, \
                    f"{name} not applied while the replies' broker was down"
            took = time.monotonic() - started
            # (a flush per batch: 2 s each while the replies cannot get out)
            assert took < 15, f"10 commands one by one took {took:.1f}s: the loop waits"
            produce_and_wait_applied(stack, burst, "client-od", "downburst-")
            wait_commit_passes(stack)
            during = assert_offsets_held(stack, before, "undelivered replies")
            assert sum(hi for _, hi in during.values()) >= \
                sum(hi for _, hi in before.values()) + 60
        finally:
            mock.ask("up 2")
        got.update(stack.collect(c, [x["id"] for x in one_by_one + burst], "client-od",
                                 timeout=120))
    finally:
        c.close()
    assert_applied_once(stack, warm + one_by_one + burst, got)
    wait_caught_up(stack, timeout=60)
    wait_outbox_empty(stack)


def test_reply_lost_for_good_its_command_is_read_again(kstack):
    """Replies time out in the engine's producer (message.timeout.ms 2 s) while the replies'
    only broker is down: their commands' offsets are not committed, the engine reads those
    commands again and answers them from their stored replies (the same reply, applied
    once), and once the broker is back every reply arrives and the offsets reach the end."""
    stack = kstack
    mock = stack.mock
    restart_engine_with(stack, "kafka.fetch.wait.max.ms=10", "kafka.message.timeout.ms=2000",
                        "kafka.debug=cgrp", "log_level=debug")
    for p in range(PARTITIONS):
        mock.ask(f"leader {stack.topics['commands']} {p} {1 if p % 2 else 3}")
        mock.ask(f"leader {stack.topics['replies']} {p} 2")
    c = stack.consumer(stack.topics["replies"])
    cmds = org_adds(stack, "lost", 30)
    try:
        before = wait_caught_up(stack)
        mock.ask("down 2")
        try:
            mark = os.path.getsize(stack.engine.log)
            produce_and_wait_applied(stack, cmds, "client-lost", "lost-")
            # the replies time out (2 s), their commands are read again; then two commit
            # passes, and nothing moved past the lost replies (checked at once if it did)
            wait_for("the engine reads the commands of its lost replies again",
                     lambda: READ_AGAIN in engine_log(stack, mark) or
                     offsets_moved(stack, before), every=0.5)
            wait_commit_passes(stack)
            assert_offsets_held(stack, before, "replies that were lost")
        finally:
            mock.ask("up 2")
        got = stack.collect(c, [x["id"] for x in cmds], "client-lost", timeout=120)
    finally:
        c.close()
    assert_applied_once(stack, cmds, got)
    wait_caught_up(stack, timeout=60)
    log = open(stack.engine.log).read()
    assert "read again from a command whose reply was lost" in log, log[-3000:]
