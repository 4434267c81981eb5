"""Bad input gets a precise error and harms nothing (design.md, guarantee 5).

Each test sends one kind of bad input, checks the error code and field, checks that nothing
was written (but the audit row of a failed authentication), and that the engine still
serves another client."""

import uuid

import msgpack
import pytest

from helpers import assert_error


@pytest.fixture
def guard(stack):
    """Row counts before; after the test: the engine still serves a valid org.add."""
    before = stack.counts()
    yield before
    name = "after-" + uuid.uuid4().hex[:8]
    r = stack.cmd("org.add", {"name": name})
    assert r["ok"] is True, f"engine no longer serves after bad input: {r!r}"
    assert stack.count("organisations", "name = %s", name) == 1


def unchanged(stack, before):
    assert stack.counts() == before


def test_not_msgpack(stack, guard):
    for junk in (b"\xc1\xc1\xc1", b"hello, engine", b"", b"\x92\x01"):
        err = assert_error(stack.send(junk), "invalid")
        assert err.get("field") == "frame", (junk, err)
    unchanged(stack, guard)


def test_missing_type(stack, guard):
    body = stack.command("org.add", {"name": "No Type"})
    del body["type"]
    reply = stack.send(body)
    assert_error(reply, "invalid", "type")
    assert reply.get("id") == body["id"]
    unchanged(stack, guard)


def test_wrong_type_for_an_argument(stack, guard):
    assert_error(stack.cmd("org.add", {"name": 12345}), "invalid", "name")
    assert_error(stack.cmd("org.add", {"name": "Typed", "local": "yes"}), "invalid", "local")
    assert_error(stack.cmd("org.list", {"limit": "ten"}), "invalid", "limit")
    unchanged(stack, guard)


def test_unknown_command(stack, guard):
    reply = stack.cmd("org.fly", {"name": "Icarus"})
    assert_error(reply, "invalid", "type")
    unchanged(stack, guard)


def test_unknown_argument(stack, guard):
    assert_error(stack.cmd("org.add", {"name": "Colourful", "colour": "red"}), "invalid", "colour")
    unchanged(stack, guard)


def test_frame_over_the_size_limit(stack, guard):
    assert stack.max_frame == 65536
    body = msgpack.packb(stack.command("org.add", {"name": "Huge", "description": "d" * 70000}))
    assert len(body) > 70000
    reply = stack.send(body)
    assert_error(reply, "invalid", "frame")
    unchanged(stack, guard)


def test_wrong_authkey(stack, guard):
    tried = "Qx7" + uuid.uuid4().hex + "Zz9aa"  # 40 characters, recognisable
    assert len(tried) == 40
    reply = stack.cmd("org.add", {"name": "Intruder"}, auth=tried)
    assert_error(reply, "unauthenticated")
    after = stack.counts()
    assert after["organisations"] == guard["organisations"]
    assert after["command_ids"] == guard["command_ids"]
    assert after["logs"] == guard["logs"] + 1
    rows = stack.rows("SELECT * FROM logs WHERE action = 'auth_fail'")
    assert len(rows) == 1
    row = rows[0]
    text = " ".join(str(v) for v in row.values())
    assert tried not in text, row
    assert tried[4:-4] not in text, row  # not even most of it


def test_over_long_name(stack, guard):
    assert_error(stack.cmd("org.add", {"name": "N" * 256}), "invalid", "name")
    assert_error(stack.cmd("org.add", {"name": "é" * 256}), "invalid", "name")
    ok = stack.ok("org.add", {"name": "é" * 255})  # 255 characters is within the limit
    assert stack.count("organisations", "id = %s", ok["id"]) == 1
    stack.ok("org.delete", {"org": str(ok["id"])})
    # put the counts back the way the guard expects them: add + delete = 2 audit rows
    guard["logs"] += 2
    guard["command_ids"] += 2
    unchanged(stack, guard)


def test_bad_envelope_keys(stack, guard):
    body = stack.command("org.add", {"name": "Extra"})
    body["colour"] = "red"
    assert_error(stack.send(body), "invalid", "colour")
    body = stack.command("org.add", {"name": "Bad id"}, id="not-a-uuid")
    assert_error(stack.send(body), "invalid", "id")
    body = stack.command("org.add", {"name": "Bad v"})
    body["v"] = 2
    assert_error(stack.send(body), "invalid", "v")
    unchanged(stack, guard)


def test_many_clients_while_junk_flows(stack, guard):
    """Junk from one client interleaved with valid commands from another."""
    junk = stack.socket()
    good = stack.socket()
    try:
        for i in range(50):
            junk.send_multipart([b"", b"\xc1" * (i + 1)])
            good.send_multipart([b"", msgpack.packb(stack.command("org.add",
                                                                  {"name": f"Good {i}"}))])
        oks = 0
        for _ in range(50):
            assert good.poll(10000), "no reply for a good client"
            reply = msgpack.unpackb(good.recv_multipart()[1], raw=False)
            oks += reply["ok"] is True
        for _ in range(50):
            assert junk.poll(10000), "no reply for the junk client"
            reply = msgpack.unpackb(junk.recv_multipart()[1], raw=False)
            assert reply["error"]["code"] == "invalid"
        assert oks == 50
    finally:
        junk.close()
        good.close()
    assert stack.count("organisations") == guard["organisations"] + 50
    guard.update(stack.counts())
