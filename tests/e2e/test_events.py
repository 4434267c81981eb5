"""The event stream: audited changes are announced after their COMMIT, refused ones never,
and subscribers filter by topic prefix (docs/protocol.md, "Events")."""

import json
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import BIN, Stack, running
from helpers import assert_error


def subscriber(stack, *prefixes):
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    for p in prefixes:
        s.setsockopt(zmq.SUBSCRIBE, p.encode())
    s.connect(stack.events)
    return s


def next_event(sock, timeout=5.0):
    """The next (topic, event) or None when nothing came within timeout seconds."""
    if not sock.poll(int(timeout * 1000)):
        return None
    topic, body = sock.recv_multipart()
    return topic.decode(), msgpack.unpackb(body)


def wait_subscribed(stack, sock, name="probe", publish=None):
    """A subscription takes a moment to reach the engine (broker XPUB → XSUB → PUB):
    add probe organisations (or call publish(i), which makes an event sock hears) until
    one is announced, then drain the stream."""
    for i in range(50):
        if publish:
            publish(i)
        else:
            stack.ok("org.add", {"name": f"{name}-{i}"})
        if next_event(sock, 0.1):
            while next_event(sock, 0.2):
                pass
            return
    raise AssertionError("no event reached the subscriber within 5 s")


@pytest.fixture
def one_loop(mariadb, tmp_path):
    """A stack whose engine runs one apply loop: one publisher, so its events arrive in the
    order of its commands (two loops publish on two sockets, in no order between them)."""
    s = Stack(mariadb, tmp_path / "home")
    s.extra_conf = "apply_threads=1\n"
    with running(s):
        yield s


def test_changes_are_announced_and_refusals_are_not(one_loop):
    stack = one_loop
    sub = subscriber(stack, "audit.Organisation.")
    wait_subscribed(stack, sub)

    org = stack.ok("org.add", {"name": "Announced"})
    topic, ev = next_event(sub)
    assert topic == "audit.Organisation.add"
    assert ev["v"] == 1 and ev["topic"] == topic and isinstance(ev["ts"], int)
    assert ev["data"]["id"] == org["id"] and ev["data"]["action"] == "add"
    assert ev["data"]["model"] == "Organisation" and ev["data"]["user_id"] > 0
    # the raw stream carries ids and states, not the detail of the change
    assert "change" not in ev["data"] and "name" not in ev["data"]

    # a refused change (rolled back to its savepoint) announces nothing: the next event is
    # that of the change after it (an event of the refusal would have left before it)
    assert_error(stack.cmd("org.add", {"name": "Announced"}), "conflict", "name")
    stack.ok("org.edit", {"org": "Announced", "sector": "CERT"})
    stack.ok("org.delete", {"org": "Announced"})
    topics = [(next_event(sub, 30) or ("nothing within 30 s",))[0] for _ in range(2)]
    assert topics == ["audit.Organisation.edit", "audit.Organisation.delete"]
    sub.close()


def test_subscribers_filter_by_prefix(stack):
    edits = subscriber(stack, "audit.Organisation.edit")
    probe = subscriber(stack, "audit.Organisation.")
    wait_subscribed(stack, probe)
    # and the edits subscriber (its own socket): edit a probe organisation until it hears it
    wait_subscribed(stack, edits, publish=lambda i: stack.ok(
        "org.edit", {"org": "probe-0", "sector": f"probe {i}"}))
    while next_event(probe, 0.2):  # the probe socket heard those edits too
        pass

    stack.ok("org.add", {"name": "Filtered"})
    stack.ok("org.edit", {"org": "Filtered", "type": "CSIRT"})
    topic, ev = next_event(edits)
    assert topic == "audit.Organisation.edit"
    assert next_event(edits, 1.0) is None  # the add was not delivered to this subscriber
    edits.close()
    probe.close()


def test_adminctl_events_prints_json_lines(stack):
    probe = subscriber(stack, "audit.Organisation.")
    wait_subscribed(stack, probe)
    env = dict(stack.env, ADMINBUS_EVENTS=stack.events)
    mon = subprocess.Popen([str(BIN / "adminctl"), "events", "--topic", "audit.Organisation.add",
                            "--count", "1", "--timeout", "20"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        i = 0
        while mon.poll() is None and time.monotonic() < deadline:
            stack.ok("org.add", {"name": f"Watched-{i}"})  # until the monitor has joined
            i += 1
            time.sleep(0.2)
        out, err = mon.communicate(timeout=20)
    finally:
        if mon.poll() is None:
            mon.kill()
    assert mon.returncode == 0, (out, err)
    line = json.loads(out.strip().splitlines()[0])
    assert line["topic"] == "audit.Organisation.add"
    assert line["data"]["model"] == "Organisation"
    probe.close()
