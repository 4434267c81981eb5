"""The HTTP shim against a broker that requires CURVE (issue 7; docs/architecture.md, "ZeroMQ
CURVE" and "HTTP shim over Kafka and CURVE").

The stack runs with curve=on (CURVE on every tcp:// endpoint, loopback too; see
test_curve.py). The shim, on the broker's host with the same home, connects as the local
daemons do: with the internal key pair. Its DEALERs go to the ipc:// proxy intake (plain,
as the broker binds it) or, with --proxy-endpoint=off, to the CURVE commands endpoint; its
SUBs (/events, the engine stats) to the CURVE events endpoint."""

import json
import subprocess
import time

import pytest

from test_curve import CurveStack, curve_tool
from test_http import curl, sse_lines, sse_wait_flowing


@pytest.fixture
def cstack(mariadb, tmp_path):
    s = CurveStack(mariadb, tmp_path / "home")
    try:
        s.start()
        yield s
    finally:
        s.close()
    if s.problems:
        pytest.fail("\n\n".join(s.problems), pytrace=False)


def handshake(base, key):
    st, v = curl(base, "GET", "/servers/getVersion", key)
    assert st == 200 and v["version"], (st, v)
    st, me = curl(base, "GET", "/users/view/me", key)
    assert st == 200 and me["User"]["email"] == "admin@admin.test", (st, me)


def assert_events_stream(stack, base, key):
    proc = subprocess.Popen(["curl", "-sS", "-N", "-H", f"Authorization: {key}",
                             base + "/events?topic=audit.Organisation."],
                            stdout=subprocess.PIPE, text=True)
    try:
        sse_lines(proc, lambda line: line.startswith(": adminbus event stream"))
        # the subscription travels to the broker (after the CURVE handshake)
        sse_wait_flowing(proc, lambda: curl(base, "POST", "/admin/organisations/add", key, {
            "Organisation": {"name": f"Probe-{time.monotonic_ns()}"}}))
        st, org = curl(base, "POST", "/admin/organisations/add", key,
                       {"Organisation": {"name": f"Curved-{time.monotonic_ns()}"}})
        assert st == 200, org
        oid = org["Organisation"]["id"]
        lines = sse_lines(proc, lambda line: line.startswith("data: ") and
                          json.loads(line[6:])["data"].get("id") == oid)
        assert json.loads(lines[-1][6:])["topic"] == "audit.Organisation.add", lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_shim_through_the_proxy_intake_with_curve_events(cstack):
    http = cstack.start_http()
    handshake(http.base, cstack.key)
    assert_events_stream(cstack, http.base, cstack.key)
    st, text = curl(http.base, "GET", "/metrics", cstack.key)
    assert st == 200 and "adminbus_http_requests_total" in text, text


def test_shim_on_the_curve_commands_endpoint(cstack):
    http = cstack.start_http(proxy_endpoint="off")
    handshake(http.base, cstack.key)
    assert_events_stream(cstack, http.base, cstack.key)
    st, health = curl(http.base, "GET", "/health")
    assert st == 200 and health["engine"] is True, health


def test_shim_with_a_key_the_broker_does_not_know_gets_no_reply(cstack):
    """The key matters: with another internal pair than the broker's (which read its own
    at start), the handshake fails and the shim answers unavailable."""
    path = cstack.home / "curve" / "internal.key"
    saved = path.read_bytes()
    path.unlink()
    rc, _, err = curve_tool(cstack.env, "keygen", path)
    assert rc == 0, err
    try:
        http = cstack.start_http(proxy_endpoint="off", bus_timeout_ms=500)
        st, body = curl(http.base, "GET", "/servers/getVersion", cstack.key)
        assert st == 503 and body["code"] == "unavailable", (st, body)
    finally:
        path.unlink()
        path.write_bytes(saved)
        path.chmod(0o600)
