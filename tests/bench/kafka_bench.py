#!/usr/bin/env python3
"""kafka_bench.py — one client, two transports: durable org.add commands per second over
ZeroMQ (the broker's command endpoint, a DEALER) or over Kafka (the commands topic, replies
read back from the replies topic by reply_to). tests/bench/run-kafka runs it.

The same Python client and the same window (commands in flight) on both transports, so the
ratio compares the transports rather than the clients. A reply means committed (the engine
replies after COMMIT on both). Prints one human line on stderr and one JSON line on stdout.

  kafka_bench.py --mode zmq --url tcp://127.0.0.1:PORT --commands N --window W --tag T
  kafka_bench.py --mode kafka --bootstrap HOST:PORT,… --commands N --window W --tag T
                 [--commands-topic T] [--replies-topic T] [--clients C]
The authkey comes from ADMINBUS_AUTHKEY."""

import argparse
import itertools
import json
import os
import sys
import time
import uuid

import msgpack


def commands(n, tag, key):
    for i in range(n):
        yield str(uuid.uuid4()), {"v": 1, "id": None, "type": "org.add",
                                  "args": {"name": f"kb-{tag}-{i}"}, "auth": key}


class Run:
    def __init__(self, n):
        self.n = n
        self.sent = {}
        self.lat = []
        self.bad = 0
        self.wall = {}  # id -> wall-clock send time (s), for the Kafka split below
        self.split = []  # (send → reply produced, reply produced → received), seconds

    def answered(self, reply, produced_ms=None):
        """Count a reply to a command in flight; True when it was one (not a duplicate).
        produced_ms: the reply record's timestamp (the engine's clock at its produce), which
        splits the latency into the way there and the way back."""
        t0 = self.sent.pop(reply.get("id"), None)
        if t0 is None:
            return False
        self.lat.append(time.monotonic() - t0)
        sent_wall = self.wall.pop(reply.get("id"), None)
        if produced_ms is not None and sent_wall is not None:
            self.split.append((produced_ms / 1000 - sent_wall, time.time() - produced_ms / 1000))
        if reply.get("ok") is not True:
            self.bad += 1
        return True

    def report(self, mode, start, end, extra):
        self.lat.sort()
        pct = lambda q: self.lat[min(len(self.lat) - 1, int(q * len(self.lat)))] * 1000
        out = dict(mode=mode, commands=self.n, seconds=round(end - start, 3),
                   cmds_per_s=round(self.n / (end - start), 1), p50_ms=round(pct(0.5), 2),
                   p99_ms=round(pct(0.99), 2), errors=self.bad, **extra)
        if self.split:
            for i, name in ((0, "there"), (1, "back")):
                part = sorted(x[i] for x in self.split)
                at = lambda q: round(part[min(len(part) - 1, int(q * len(part)))] * 1000, 2)
                out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = at(0.5), at(0.99)
        print(f"{mode}: {out['cmds_per_s']:.0f} commands/s ({self.n} in {out['seconds']} s, "
              f"p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, {self.bad} error replies)",
              file=sys.stderr)
        print(json.dumps(out))
        return 1 if self.bad else 0


def warm_up(key, senders, receive, timeout=30):
    """An auth.whoami through each of senders (callables sending one command), all answered
    before the clock starts. A new client's first records wait for its connections: a
    Kafka producer connects to a partition's leader only when it first has a record for
    it, and that took about 1 s per broker here, which is the client's start-up, not the
    transport's throughput. So the Kafka client warms every partition × reply address."""
    want = set()
    for send in senders:
        cid = str(uuid.uuid4())
        want.add(cid)
        send({"v": 1, "id": cid, "type": "auth.whoami", "args": {}, "auth": key})
    deadline = time.monotonic() + timeout
    while want:
        want -= {got[0].get("id") for got in receive()}
        if time.monotonic() > deadline:
            sys.exit(f"{len(want)} warm-up command(s) unanswered after {timeout} s")


def drive(a, key, mode, send, receive, warm_senders=None):
    """The client loop both transports share: keep a.window commands in flight (send(cmd)
    sends one), count the replies receive() returns (a batch of (reply,) or (reply, reply
    record timestamp ms) tuples, possibly empty, after a short
    wait), until every command is answered; exits when a.timeout passes first.
    Returns (run, start, end)."""
    run = Run(a.commands)
    todo = commands(a.commands, a.tag, key)
    warm_up(key, warm_senders or [send], receive)
    start = time.monotonic()
    deadline = start + a.timeout
    done = 0
    while done < a.commands:
        while len(run.sent) < a.window:
            item = next(todo, None)
            if item is None:
                break
            cid, cmd = item
            cmd["id"] = cid
            run.sent[cid] = time.monotonic()
            run.wall[cid] = time.time()
            send(cmd)
        done += sum(run.answered(*got) for got in receive())
        if done < a.commands and time.monotonic() > deadline:
            sys.exit(f"{mode}: {a.commands - done} replies missing after {a.timeout} s")
    return run, start, time.monotonic()


def run_zmq(a, key):
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(a.url)

    def send(cmd):
        s.send_multipart([b"", msgpack.packb(cmd, use_bin_type=True)])

    def receive():
        if not s.poll(1000):
            return []
        replies = []
        while s.poll(0):
            replies.append((msgpack.unpackb(s.recv_multipart()[-1], raw=False),))
        return replies

    run, start, end = drive(a, key, "zmq", send, receive)
    s.close()
    ctx.term()
    return run.report("zmq", start, end, {"window": a.window})


def run_kafka(a, key):
    from confluent_kafka import Consumer, Producer, TopicPartition
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    md = c.list_topics(a.replies_topic, timeout=10).topics[a.replies_topic]
    parts = []
    for p in md.partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(a.replies_topic, p), timeout=10)
        parts.append(TopicPartition(a.replies_topic, p, hi))
    c.assign(parts)
    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 1})
    reply_to = [f"bench-{a.tag}-{i}".encode() for i in range(a.clients)]
    next_reply_to = itertools.cycle(reply_to)

    def send(cmd):
        cmd["reply_to"] = next(next_reply_to).decode()
        p.produce(a.commands_topic, msgpack.packb(cmd, use_bin_type=True),
                  key=cmd["id"].encode())

    def sender_to(partition, address):
        def send_there(cmd):
            cmd["reply_to"] = address.decode()
            p.produce(a.commands_topic, msgpack.packb(cmd, use_bin_type=True),
                      key=cmd["id"].encode(), partition=partition)
        return send_there

    command_parts = list(c.list_topics(a.commands_topic, timeout=10)
                         .topics[a.commands_topic].partitions)
    warm = [sender_to(part, addr) for part in command_parts for addr in reply_to]

    def receive():
        # consume(n, timeout) waits for n records or the timeout, so with a window below n
        # every call would sit out its timeout: wait for the first record as the ZeroMQ
        # client does (poll), then take what is already fetched
        p.poll(0)
        first = c.poll(1.0)
        got = [first] + c.consume(num_messages=1000, timeout=0) if first is not None else []
        return [(msgpack.unpackb(m.value(), raw=False), m.timestamp()[1])
                for m in got if not m.error() and m.key() in reply_to]

    run, start, end = drive(a, key, "kafka", send, receive, warm)
    p.flush(10)
    c.close()
    return run.report("kafka", start, end, {"window": a.window, "clients": a.clients})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("zmq", "kafka"), required=True)
    ap.add_argument("--url")
    ap.add_argument("--bootstrap")
    ap.add_argument("--commands-topic", default="adminbus.commands")
    ap.add_argument("--replies-topic", default="adminbus.replies")
    ap.add_argument("--commands", type=int, default=20000)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--tag", default=str(int(time.time())))
    a = ap.parse_args()
    key = os.environ.get("ADMINBUS_AUTHKEY")
    if not key:
        sys.exit("ADMINBUS_AUTHKEY is not set")
    return run_zmq(a, key) if a.mode == "zmq" else run_kafka(a, key)


if __name__ == "__main__":
    sys.exit(main())
