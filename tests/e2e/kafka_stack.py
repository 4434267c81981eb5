"""The Kafka side of the end-to-end tests (issue 7): librdkafka's mock cluster in its own
process (build/bin/adminbus-kafka-mock, three brokers on loopback), engines in one consumer
group, and a Python client (Debian's python3-confluent-kafka) that speaks the v1 envelope
over the commands and replies topics.

Each test gets its own topics and group on the session's mock cluster, and its own
database, so tests never see each other's records or rows."""

import re
import secrets
import subprocess
import time
import uuid

import msgpack
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import BIN, Daemon, Stack
from helpers import EventLog

PARTITIONS = 4
# A killed engine's partitions move to the others after this (librdkafka's default, 45 s,
# would make the kill test slow).
SESSION_TIMEOUT_MS = 6000


class KafkaMock:
    """adminbus-kafka-mock: start, ask (down/up/topic/leader), stop."""

    def __init__(self, log):
        exe = BIN / "adminbus-kafka-mock"
        assert exe.exists(), f"missing {exe} (build first)"
        self.log = log
        self._err = open(log, "ab")
        self.proc = subprocess.Popen([str(exe), "--brokers", "3"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     bufsize=1)
        self.bootstrap = None
        for line in self.proc.stdout:
            if line.startswith("BOOTSTRAP "):
                self.bootstrap = line.split()[1]
            if line.strip() == "READY":
                break
        assert self.bootstrap, f"adminbus-kafka-mock did not start: see {log}"

    def ask(self, request):
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", f"mock cluster: {request!r} → {answer!r}"

    def topic(self, name, partitions=PARTITIONS):
        self.ask(f"topic {name} {partitions}")

    def stop(self):
        """End of input stops it; SIGKILL only if it hangs. Returns its exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=20)
        self._err.close()
        return rc


class KafkaStack(Stack):
    """A database, engines with transport = kafka in one group, and a Kafka client.

    stack.engines: the running engines (Daemon); start_engine() adds one.
    stack.send_many(commands, reply_to): produce v1 command maps, return their replies by id.
    stack.cmd / ok / send: as Stack's, over Kafka."""

    def __init__(self, mariadb, home, mock):
        super().__init__(mariadb, home)
        self.mock = mock
        tag = secrets.token_hex(4)
        self.topics = {k: f"t{tag}.{k}" for k in ("commands", "replies", "events")}
        self.group = f"engines-{tag}"
        self.engines = []
        self.producer = None

    def kafka_url(self):
        t = self.topics
        return (f"kafka://{self.mock.bootstrap}/?commands={t['commands']}"
                f"&replies={t['replies']}&events={t['events']}")

    def start(self, engines=2):
        for t in self.topics.values():
            self.mock.topic(t)
        # The mock cluster never moves a group's coordinator off a broker that is down (a
        # real cluster does, with the leadership of __consumer_offsets): keep the engines'
        # coordinator on broker 1, which the tests never take down.
        self.mock.ask(f"coordinator {self.group} 1")
        admin = self.mariadb.connect()
        with admin.cursor() as c:
            c.execute(f"CREATE DATABASE `{self.database}` "
                      "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        admin.close()
        self.created = True
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "adminbus.conf"
        conf.write_text(
            f"db_dsn={self.mariadb.dsn_for(self.database)}\n"
            "transport=kafka\n"
            f"kafka_brokers={self.mock.bootstrap}\n"
            f"kafka_commands_topic={self.topics['commands']}\n"
            f"kafka_replies_topic={self.topics['replies']}\n"
            f"kafka_events_topic={self.topics['events']}\n"
            f"kafka_group={self.group}\n"
            f"kafka.session.timeout.ms={SESSION_TIMEOUT_MS}\n"
            "kafka.heartbeat.interval.ms=500\n"
            "kafka.topic.metadata.refresh.interval.ms=2000\n"
            "log_level=info\n")
        conf.chmod(0o600)
        init = subprocess.run([str(BIN / "adminbus-engine"), "--init"], env=self.env,
                              capture_output=True, text=True, timeout=120)
        (self.home / "engine-init.log").write_text(
            re.sub(r"^(ADMINBUS_AUTHKEY=).*$", r"\1*****", init.stdout, flags=re.M) +
            init.stderr)
        assert init.returncode == 0, f"adminbus-engine --init failed:\n{init.stderr}"
        self.key = re.findall(r"^ADMINBUS_AUTHKEY=(\S+)$", init.stdout, re.M)[0]
        self.db = self.mariadb.connect(self.database)
        self.producer = Producer({"bootstrap.servers": self.mock.bootstrap, "linger.ms": 2})
        for _ in range(engines):
            self.start_engine(wait=False)
        self.wait_ready()

    # -- processes --

    def start_engine(self, wait=True, timeout=60):
        n = len(self.engines) + 1
        e = Daemon(f"engine {n}", [str(BIN / "adminbus-engine"), "--name", f"engine-{n}"],
                   self.env, self.home / f"engine-{n}.log")
        self.engines.append(e)
        self.engine = e
        if wait:
            self.wait_ready(timeout)
        return e

    def daemons(self):
        return self.engines

    def wait_ready(self, timeout=60):
        # A try waits longer than on ZeroMQ: the first record may wait for a rebalance.
        super().wait_ready(timeout, per_try=5.0, what="Kafka stack")

    def kill_engine(self, engine):
        engine.kill9()
        engine.expected_dead = True
        self.check_log_file(engine.log)

    # -- the wire --

    def consumer(self, topic, from_end=True):
        """A consumer of every partition of topic, placed at its end (or start); no group
        membership, nothing committed."""
        c = Consumer({"bootstrap.servers": self.mock.bootstrap,
                      "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False})
        parts = []
        for p in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            parts.append(TopicPartition(topic, p, hi if from_end else lo))
        c.assign(parts)
        return c

    def produce(self, body, key):
        if not isinstance(body, (bytes, bytearray)):
            body = msgpack.packb(body, use_bin_type=True)
        while True:
            try:
                self.producer.produce(self.topics["commands"], body, key=key)
                return
            except BufferError:
                self.producer.poll(0.05)

    def send_many(self, commands, reply_to, timeout=120.0, consumer=None):
        """Produce each command map (reply_to set here) and return {id: [replies…]} once
        every id has at least one reply. Raises TimeoutError with the missing ids."""
        c = consumer or self.consumer(self.topics["replies"])
        try:
            for cmd in commands:
                cmd = dict(cmd, reply_to=reply_to)
                self.produce(cmd, cmd.get("key", cmd["id"]).encode())
            self.producer.flush(30)
            return self.collect(c, [cmd["id"] for cmd in commands], reply_to, timeout)
        finally:
            if consumer is None:
                c.close()

    @staticmethod
    def collect(consumer, ids, reply_to, timeout):
        want = set(ids)
        got = {}
        deadline = time.monotonic() + timeout
        while want - got.keys():
            if time.monotonic() > deadline:
                missing = sorted(want - got.keys())
                raise TimeoutError(f"{len(missing)} of {len(want)} replies missing "
                                   f"after {timeout}s, e.g. {missing[:3]}")
            m = consumer.poll(0.2)
            if m is None or m.error() or m.key() != reply_to.encode():
                continue
            reply = msgpack.unpackb(m.value(), raw=False)
            if reply.get("id") in want:
                got.setdefault(reply["id"], []).append(reply)
        return got

    @staticmethod
    def collect_nowait(consumer, reply_to, wait=1.0):
        """The replies to reply_to that come within wait seconds (a list)."""
        out = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            m = consumer.poll(0.1)
            if m is not None and not m.error() and m.key() == reply_to.encode():
                out.append(msgpack.unpackb(m.value(), raw=False))
        return out

    def send(self, body, timeout=10.0):
        if isinstance(body, (bytes, bytearray)):
            body = msgpack.unpackb(body, raw=False)
        reply_to = f"test-{uuid.uuid4()}"
        return self.send_many([body], reply_to, timeout=timeout)[body["id"]][0]

    def adminctl(self, *args, url=None, key=None, timeout=60, stdin=None):
        return super().adminctl(*args, url=url or self.kafka_url(), key=key, timeout=timeout,
                                stdin=stdin)

    def committed_lag(self):
        """{partition: (committed offset, end offset)} of the commands topic for the group."""
        c = Consumer({"bootstrap.servers": self.mock.bootstrap, "group.id": self.group,
                      "enable.auto.commit": False})
        try:
            parts = [TopicPartition(self.topics["commands"], p) for p in range(PARTITIONS)]
            committed = c.committed(parts, timeout=10)
            out = {}
            for tp in committed:
                lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                 timeout=10)
                out[tp.partition] = (tp.offset, hi)
            return out
        finally:
            c.close()

    def event_tail(self):
        """A tail of the events topic from now on (KafkaEvents)."""
        return KafkaEvents(self)

    # -- teardown --

    def close(self):
        self.close_workers()  # workers, schedulers, supervisors a test started
        self.stop_daemons(self.engines)
        if self.producer is not None:
            self.producer.flush(5)
        self.ctx.destroy(linger=0)
        if self.db is not None:
            self.db.close()
        if self.created:
            admin = self.mariadb.connect()
            with admin.cursor() as c:
                c.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
            admin.close()


class KafkaEvents(EventLog):
    """A tail of the events topic from its end that keeps every record it saw: the Kafka
    form of test_worker's Events (the record key is the event's bus topic)."""

    def __init__(self, stack):
        super().__init__()
        self.consumer = stack.consumer(stack.topics["events"])
        self.partitions = []  # the partition of each record in seen, at the same index

    def _pump(self, timeout):
        got = False
        deadline = time.monotonic() + timeout
        while True:
            m = self.consumer.poll(max(0.0, min(0.05, deadline - time.monotonic())))
            if m is not None and not m.error() and m.key() is not None:
                self.seen.append((time.monotonic(), m.key().decode(),
                                  msgpack.unpackb(m.value(), raw=False)))
                self.partitions.append(m.partition())
                got = True
                continue
            if time.monotonic() >= deadline:
                return got

    def partitions_of_job(self, job_id):
        """The partitions the events of one job were read from (a set)."""
        pre = f"job.{job_id}."
        self._pump(0)
        return {p for (_, tp, _), p in zip(self.seen, self.partitions) if tp.startswith(pre)}

    def close(self):
        self.consumer.close()
