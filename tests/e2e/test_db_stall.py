"""A MariaDB server that stops answering must not hang the engine.

A server can stop answering without closing its connections: wedged, swapped out, or
behind a network partition that keeps the TCP connection open. Until now the engine's
read on such a connection waited for ever, and so did the command's client. db_dsn's
`timeout` (default 120 s; engine/core/db.c sets it as the connection's read and write timeout)
bounds that wait. SIGSTOP on the server is the stand-in here: the process is there, its
socket accepts, nothing answers. The server is the test's own (own_mariadb), because the
session's server is shared with the tests running beside this one."""

import os
import signal
import time

import pytest

from conftest import Stack, running

TIMEOUT_S = 5  # db_dsn's timeout for this stack (its migrations too, on a loaded disk)


@pytest.fixture
def stack(own_mariadb, tmp_path):
    s = Stack(own_mariadb, tmp_path / "home")
    dsn = own_mariadb.dsn_for(s.database)
    dsn += ("&" if "?" in dsn else "?") + f"timeout={TIMEOUT_S}"
    s.env = dict(s.env, ADMINBUS_DB_DSN=dsn)  # the environment beats adminbus.conf
    with running(s) as s:
        yield s


def test_a_server_that_stops_answering_gets_unavailable_then_applies_once(stack):
    stack.ok("org.add", {"name": "before"})
    pid = stack.mariadb.pid()
    cmd = stack.command("org.add", {"name": "during"})
    os.kill(pid, signal.SIGSTOP)
    try:
        # Without a timeout the engine's read never returns and neither does this reply.
        reply = stack.send(cmd, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "unavailable", reply

    # The server answers again: the same command id is applied, once.
    deadline = time.monotonic() + 60
    while True:
        reply = stack.send(cmd, timeout=30)
        if reply.get("ok") is True or time.monotonic() > deadline:
            break
        assert reply["error"]["code"] == "unavailable", reply
        time.sleep(0.5)
    assert reply.get("ok") is True, reply
    assert stack.count("organisations", "name = %s", "during") == 1
    assert stack.count("command_ids", "cmd_id = %s", cmd["id"]) == 1
    assert stack.ok("org.add", {"name": "after"})["name"] == "after"
