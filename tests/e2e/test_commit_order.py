"""Replies and events follow COMMIT, over ZeroMQ and over Kafka (README: "a reply means it
is durable"; docs/architecture.md, "The apply loop": only after COMMIT are the replies sent
and the events published).

Proved without timing luck. MariaDB's `BACKUP STAGE BLOCK_COMMIT`, held on a connection of
the test, makes every COMMIT of the server wait while the statements before it run. The
test then sends several writing commands and waits until the engine has reached its COMMIT
(observed in the server, not guessed): the commands' rows are visible to a dirty read, and
every transaction that changed rows is the engine's COMMIT waiting for the backup lock. The
replies and events of those commands, had the engine sent them before its COMMIT, are then
on their way: the test watches for SETTLE_S seconds that none arrives, releases the
commits, and each reply and event then arrives, with its rows committed.

BACKUP STAGE is server-wide: each test has a MariaDB server of its own (own_mariadb), so
the tests beside it (ops/test runs two pytest processes) are never held.

tests/mutants/ has the breaks these tests must catch (reply-before-commit,
events-before-commit, wake-before-commit)."""

import time
import uuid

import msgpack
import pytest

from conftest import Stack, running
from helpers import ZmqEventLog, admin

# How long the test watches, once the engine waits at its COMMIT, for a reply or an event
# that would have left before it. Such a message was handed to the bus before the COMMIT
# began (the moment the test observed); on loopback it arrives within milliseconds.
SETTLE_S = 2.0
REACH_COMMIT_S = 120  # generous: the machine is shared and loaded
AFTER_RELEASE_S = 120
# Events of the engine's own that are published on a timer, not by a command.
TIMER_TOPICS = ("engine.",)


# --- holding COMMITs --------------------------------------------------------------------------


class CommitsHeld:
    """BACKUP STAGE up to BLOCK_COMMIT on a connection of its own: every COMMIT of the server
    waits until release(). A probe connection reads uncommitted rows and the server's
    process list."""

    def __init__(self, mariadb, database):
        self.lock = mariadb.connect()
        with self.lock.cursor() as c:
            for stage in ("START", "FLUSH", "BLOCK_DDL", "BLOCK_COMMIT"):
                c.execute(f"BACKUP STAGE {stage}")
        self.probe = mariadb.connect(database)
        with self.probe.cursor() as c:
            c.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
        self.released_at = None

    def _rows(self, sql, *params):
        with self.probe.cursor() as c:
            c.execute(sql, params)
            return c.fetchall()

    def writers(self):
        """Every transaction of the server that changed rows: its thread, state, statement."""
        return self._rows(
            "SELECT p.ID AS id, p.STATE AS state, p.INFO AS info "
            "FROM information_schema.INNODB_TRX t "
            "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            "WHERE t.trx_rows_modified > 0")

    def written(self, cmd_ids):
        """The ids among cmd_ids whose command id row is written, committed or not."""
        if not cmd_ids:
            return set()
        marks = ", ".join(["%s"] * len(cmd_ids))
        return {r["cmd_id"] for r in self._rows(
            f"SELECT cmd_id FROM command_ids WHERE cmd_id IN ({marks})", *cmd_ids)}

    @staticmethod
    def _at_commit(w):
        return (w["info"] or "").strip().upper() == "COMMIT" and \
            w["state"] == "Waiting for backup lock"

    def wait_at_commit(self, must_have, timeout=REACH_COMMIT_S):
        """Wait until the commands of must_have (ids) have written their command ids (their
        batch ran every statement before its COMMIT) and every transaction that changed
        rows waits for the backup lock on its COMMIT. Returns the writers."""
        deadline = time.monotonic() + timeout
        while True:
            writers = self.writers()
            done = self.written(must_have) == set(must_have)
            if done and writers and all(self._at_commit(w) for w in writers):
                return writers
            if time.monotonic() > deadline:
                raise AssertionError(f"the engine did not reach its COMMIT within {timeout}s: "
                                     f"written {self.written(must_have)} of {must_have}, "
                                     f"writers {writers}")
            # InnoDB refreshes its INNODB_TRX snapshot only when nobody read it for 100 ms
            time.sleep(0.25)

    def release(self):
        if self.released_at is None:
            with self.lock.cursor() as c:
                c.execute("BACKUP STAGE END")
            self.released_at = time.monotonic()
            self.lock.close()
            self.probe.close()


# --- the two transports, seen alike ---------------------------------------------------------


class ZmqClient:
    """One DEALER: many commands in flight, replies collected by id."""

    def __init__(self, stack):
        self.sock = stack.socket()
        self.replies = {}

    def send(self, cmds):
        for c in cmds:
            self.sock.send_multipart([b"", msgpack.packb(c, use_bin_type=True)])

    def pump(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            if not self.sock.poll(int(left * 1000)):
                return
            frames = self.sock.recv_multipart()
            r = msgpack.unpackb(frames[-1], raw=False)
            self.replies.setdefault(r.get("id"), []).append((time.monotonic(), r))

    def close(self):
        self.sock.close()


class KafkaClient:
    """Commands produced on the commands topic, all with one ordering key (one partition,
    in order: the first is in the engine's first batch), replies read from the replies
    topic."""

    def __init__(self, stack):
        self.stack = stack
        self.reply_to = f"commit-order-{uuid.uuid4()}"
        self.key = str(uuid.uuid4())
        self.consumer = stack.consumer(stack.topics["replies"])
        self.replies = {}

    def send(self, cmds):
        for c in cmds:
            self.stack.produce(dict(c, reply_to=self.reply_to, key=self.key), self.key.encode())
        self.stack.producer.flush(30)

    def pump(self, timeout):
        for r in self.stack.collect_nowait(self.consumer, self.reply_to, wait=timeout):
            self.replies.setdefault(r.get("id"), []).append((time.monotonic(), r))

    def close(self):
        self.consumer.close()


def wait_subscribed(stack, events):
    """A ZeroMQ subscription takes a moment to travel upstream: add probe organisations
    until one is announced. (A Kafka tail reads the topic: nothing to wait for.)"""
    for i in range(200):
        stack.ok("org.add", {"name": f"probe-{i}"})
        if events._pump(0.1):
            return
    raise AssertionError("no event reached the subscriber within 20 s")


# --- the scenario ------------------------------------------------------------------------------


def held_scenario(stack, mariadb, client, events, first_held):
    """Send a burst of writing commands while COMMITs are held and watch what arrives before
    they are released. The burst's first first_held commands are each the first an apply
    loop receives, so each is in a batch that reaches COMMIT (ZeroMQ: the broker deals
    commands round-robin to the engine's two loops; Kafka: the burst has one ordering key,
    so one partition, in order); the first is a job.enqueue, whose notice for workers is
    thus always held. Returns (commands, replies by id and events that arrived while held,
    the release time, the ids of the commands whose batch was held at COMMIT, the index of
    the first event of the scenario in events.seen).

    No two commands of the burst touch the same row: a batch held at its COMMIT keeps its
    row locks, and a batch waiting for one of them would never reach its own COMMIT."""
    stack.ok("org.add", {"name": "held-edit-target"})
    host_org = admin(stack)["org_name"]
    # Events of what committed before the hold may still be on their way (each loop of the
    # engine has its own publisher; an event goes out after its reply): they are told apart
    # by the organisations they name.
    before = {r["id"] for r in stack.rows("SELECT id FROM organisations")}
    after = len(events.seen)
    cmds = [stack.command("job.enqueue", {"type": "noop"}),
            stack.command("org.add", {"name": "held-a"}),
            stack.command("org.edit", {"org": "held-edit-target", "sector": "CERT"}),
            stack.command("user.add", {"email": "held@example.org", "org": host_org}),
            stack.command("org.add", {"name": "held-b"}),
            stack.command("job.enqueue", {"type": "noop", "priority": 1})]
    ids = [c["id"] for c in cmds]
    hold = CommitsHeld(mariadb, stack.database)
    try:
        client.send(cmds)
        hold.wait_at_commit(ids[:first_held])
        held = hold.written(ids)
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            client.pump(0.05)
            events._pump(0.05)
        early_replies = {i: r for i, r in client.replies.items() if i in ids}
        early_events = [(tp, ev) for _, tp, ev in events.seen[after:]
                        if not tp.startswith(TIMER_TOPICS) and
                        not (tp == "audit.Organisation.add" and ev["data"]["id"] in before)]
        # held all along: nothing of theirs committed (stack.db reads committed rows)
        marks = ", ".join(["%s"] * len(held))
        assert stack.count("command_ids", f"cmd_id IN ({marks})", *held) == 0
    finally:
        hold.release()
    return cmds, early_replies, early_events, hold.released_at, held, after


def wait_replies(client, ids, timeout=AFTER_RELEASE_S):
    deadline = time.monotonic() + timeout
    while set(ids) - client.replies.keys():
        assert time.monotonic() < deadline, \
            f"no reply for {sorted(set(ids) - client.replies.keys())} within {timeout}s"
        client.pump(0.2)
    return {i: client.replies[i] for i in ids}


def check_replies_after_commit(stack, mariadb, client, events, first_held):
    cmds, early, _, released, held, _ = held_scenario(stack, mariadb, client, events,
                                                      first_held)
    assert early == {}, (f"replies arrived while their COMMIT was held: {early} (held at "
                         f"COMMIT: {[c['type'] for c in cmds if c['id'] in held]})")
    got = wait_replies(client, [c["id"] for c in cmds])
    for c in cmds:
        (t, r), = got[c["id"]]
        assert r["ok"] is True, r
        assert t >= released
    # each reply's rows are committed (this connection reads committed rows only)
    assert stack.count("command_ids", "cmd_id IN (" + ", ".join(["%s"] * len(cmds)) + ")",
                       *[c["id"] for c in cmds]) == len(cmds)
    assert stack.count("organisations", "name IN ('held-a', 'held-b')") == 2
    assert stack.count("organisations", "name = 'held-edit-target' AND sector = 'CERT'") == 1
    assert stack.count("users", "email = 'held@example.org'") == 1
    for c in cmds:
        if c["type"] == "job.enqueue":
            job = got[c["id"]][0][1]["result"]["id"]
            assert stack.count("jobs", "id = %s", job) == 1


def check_events_after_commit(stack, mariadb, client, events, first_held):
    cmds, _, early, released, held, after = held_scenario(stack, mariadb, client, events,
                                                          first_held)
    assert early == [], (f"published while the COMMIT was held: {[tp for tp, _ in early]} "
                         f"(held at COMMIT: {[c['type'] for c in cmds if c['id'] in held]})")
    got = wait_replies(client, [c["id"] for c in cmds])
    jobs = [got[c["id"]][0][1]["result"]["id"] for c in cmds if c["type"] == "job.enqueue"]
    orgs = stack.rows("SELECT id FROM organisations WHERE name IN "
                      "('held-a', 'held-b', 'held-edit-target') ORDER BY id")
    user = stack.rows("SELECT id FROM users WHERE email = 'held@example.org'")[0]["id"]
    wanted = [("wake.default", lambda ev: True)]
    wanted += [(f"job.{j}.queued", lambda ev: True) for j in jobs]
    wanted += [("audit.Organisation.add", lambda ev, i=o["id"]: ev["data"]["id"] == i)
               for o in orgs[1:]]
    wanted += [("audit.Organisation.edit", lambda ev, i=orgs[0]["id"]: ev["data"]["id"] == i),
               ("audit.User.add", lambda ev: ev["data"]["id"] == user)]
    for topic, where in wanted:
        _, t, _ = events.wait(topic, timeout=AFTER_RELEASE_S, where=where, after=after)
        assert t >= released, f"{topic} seen before the release"


# --- ZeroMQ ---------------------------------------------------------------------------------


@pytest.fixture
def zstack(own_mariadb, tmp_path):
    """A broker and an engine (two apply loops) on a MariaDB server of the test's own."""
    with running(Stack(own_mariadb, tmp_path / "home")) as s:
        yield s


@pytest.fixture
def zparts(zstack):
    client, events = ZmqClient(zstack), ZmqEventLog(zstack)
    wait_subscribed(zstack, events)
    yield client, events
    client.close()
    events.close()


def test_replies_wait_for_commit_zmq(zstack, zparts):
    check_replies_after_commit(zstack, zstack.mariadb, *zparts, first_held=2)


def test_events_wait_for_commit_zmq(zstack, zparts):
    check_events_after_commit(zstack, zstack.mariadb, *zparts, first_held=2)


# --- Kafka ----------------------------------------------------------------------------------


@pytest.fixture
def kstack_own(own_mariadb, tmp_path, kafka_mock):
    """One engine on Kafka (kstack) on a MariaDB server of the test's own."""
    from kafka_stack import KafkaStack

    with running(KafkaStack(own_mariadb, tmp_path / "home", kafka_mock), engines=1) as s:
        yield s


@pytest.fixture
def kparts(kstack_own):
    from kafka_stack import KafkaEvents

    client, events = KafkaClient(kstack_own), KafkaEvents(kstack_own)
    yield client, events
    client.close()
    events.close()


def test_replies_wait_for_commit_kafka(kstack_own, kparts):
    check_replies_after_commit(kstack_own, kstack_own.mariadb, *kparts, first_held=1)


def test_events_wait_for_commit_kafka(kstack_own, kparts):
    check_events_after_commit(kstack_own, kstack_own.mariadb, *kparts, first_held=1)
