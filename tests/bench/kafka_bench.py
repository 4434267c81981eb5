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

    def answered(self, reply):
        """Count a reply to a command in flight; True when it was one (not a duplicate)."""
        t0 = self.sent.pop(reply.get("id"), None)
        if t0 is None:
            return False
        self.lat.append(time.monotonic() - t0)
        if reply.get("ok") is not True:
            self.bad += 1
        return True

    def report(self, mode, start, end, extra):
        self.lat.sort()
        pct = lambda q: self.lat[min(len(self.lat) - 1, int(q * len(self.lat)))] * 1000
        out = dict(mode=mode, commands=self.n, seconds=round(end - start, 3),
                   cmds_per_s=round(self.n / (end - start), 1), p50_ms=round(pct(0.5), 2),
                   p99_ms=round(pct(0.99), 2), errors=self.bad, **extra)
        print(f"{mode}: {out['cmds_per_s']:.0f} commands/s ({self.n} in {out['seconds']} s, "
              f"p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, {self.bad} error replies)",
              file=sys.stderr)
        print(json.dumps(out))
        return 1 if self.bad else 0


def drive(a, key, mode, send, receive):
    """The client loop both transports share: keep a.window commands in flight (send(cmd)
    sends one), count the replies receive() returns (a batch, possibly empty, after a short
    wait), until every command is answered; exits when a.timeout passes first.
    Returns (run, start, end)."""
    run = Run(a.commands)
    todo = commands(a.commands, a.tag, key)
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
            send(cmd)
        done += sum(run.answered(reply) for reply in receive())
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
            replies.append(msgpack.unpackb(s.recv_multipart()[-1], raw=False))
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

    def receive():
        p.poll(0)
        return [msgpack.unpackb(m.value(), raw=False)
                for m in c.consume(num_messages=1000, timeout=0.05)
                if not m.error() and m.key() in reply_to]

    run, start, end = drive(a, key, "kafka", send, receive)
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
