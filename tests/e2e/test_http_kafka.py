"""The HTTP shim over Kafka (issue 7): adminbus-http with transport = kafka in adminbus.conf,
against librdkafka's mock cluster (kafka_stack.py) and a real engine; no broker at all.

- MISP's client handshake (getVersion, users/view/me), an organisation added and listed.
- 16 threads × 20 requests at once, each answered with its own result (replies are
  handed to the waiting request by command id: none crossed, none lost).
- /events streams an event a command caused (audit.Organisation.add, from the events
  topic); /metrics shows the engine's stats counters (engine.<name>.stats events).
- The engine stopped: requests answer the shim's unavailable error (503, JSON) after two
  waits of --bus-timeout-ms, and do not hang; /health says 503.
- A key limited to allowed_ips is refused: a Kafka record carries no client address, and
  the engine refuses a limited key from an unknown address (fail closed).
- No broker list, or a cluster that does not answer: the shim says why and exits."""

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import BIN, clean_env, free_ports
from test_http import curl, sse_lines


def get(base, path, key, timeout=30):
    """One request with urllib (for the many-threads test: no process per request)."""
    req = urllib.request.Request(base + path, headers={"Authorization": key,
                                                       "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_misp_handshake_over_kafka(kstack):
    http = kstack.start_http()
    base, key = http.base, kstack.key
    st, v = curl(base, "GET", "/servers/getVersion", key)
    assert st == 200 and v["version"], v
    st, me = curl(base, "GET", "/users/view/me.json", key)
    assert st == 200 and me["User"]["email"] == "admin@admin.test", me
    assert me["Role"]["perm_site_admin"] is True
    st, org = curl(base, "POST", "/admin/organisations/add", key,
                   {"Organisation": {"name": "CIRCL", "nationality": "LU"}})
    assert st == 200 and org["Organisation"]["name"] == "CIRCL", org
    assert kstack.count("organisations", "name = 'CIRCL'") == 1
    st, orgs = curl(base, "GET", "/organisations/index/scope:local", key)
    assert st == 200 and "CIRCL" in {x["Organisation"]["name"] for x in orgs}, orgs
    # the shim's log says where it went: the topics, no broker endpoint
    log = http.log.read_text()
    assert kstack.topics["commands"] in log and kstack.topics["replies"] in log, log


def test_many_concurrent_requests_get_their_own_replies(kstack):
    http = kstack.start_http()
    base, key = http.base, kstack.key
    ids = {}
    for i in range(16):
        ids[i] = kstack.ok("org.add", {"name": f"Org-{i:02d}"})["id"]
    failures, answered = [], []

    def client(i):
        for n in range(20):
            if n % 4 == 3:  # some of another kind, to mix the replies on the topic
                st, me = get(base, "/users/view/me", key)
                ok = st == 200 and me["User"]["email"] == "admin@admin.test"
            else:
                st, o = get(base, f"/organisations/view/{ids[i]}", key)
                ok = st == 200 and o["Organisation"]["name"] == f"Org-{i:02d}"
                ok = ok and o["Organisation"]["id"] == ids[i]
            (answered if ok else failures).append((i, n, st))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "requests still hanging"
    assert not failures, failures[:5]
    assert len(answered) == 16 * 20, len(answered)
    # every one answered within its first wait: none timed out in the shim
    st, text = curl(base, "GET", "/metrics", key)
    assert st == 200 and 'outcome="no_reply"' not in text, text
    print(f"320 requests over Kafka in {time.monotonic() - t0:.1f} s")


def test_events_and_metrics_over_kafka(kstack):
    http = kstack.start_http()
    base, key = http.base, kstack.key
    proc = subprocess.Popen(["curl", "-sS", "-N", "-H", f"Authorization: {key}",
                             base + "/events?topic=audit.Organisation."],
                            stdout=subprocess.PIPE, text=True)
    try:
        sse_lines(proc, lambda line: line.startswith(": adminbus event stream"))
        st, org = curl(base, "POST", "/admin/organisations/add", key,
                       {"Organisation": {"name": "Evented"}})
        assert st == 200, org
        oid = org["Organisation"]["id"]
        lines = sse_lines(proc, lambda line: line.startswith("data: ") and
                          json.loads(line[6:])["topic"] == "audit.Organisation.add")
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
        assert all(e["topic"].startswith("audit.Organisation.") for e in events), events
        assert any(e["data"].get("id") == oid for e in events), events
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # the engine's stats event (every 5 s) reaches /metrics through the events topic
    deadline = time.monotonic() + 30
    while True:
        st, text = curl(base, "GET", "/metrics", key)
        assert st == 200, text
        lines = [line for line in text.splitlines() if line.startswith(
            'adminbus_commands_total{engine="engine-1",type="org.add",outcome="ok"}')]
        if lines:
            break
        assert time.monotonic() < deadline, f"/metrics shows no engine counters:\n{text}"
        time.sleep(0.5)
    assert int(float(lines[0].rsplit(" ", 1)[1])) >= 1, lines
    assert "adminbus_engines 1" in text.splitlines(), text


def test_engine_stopped_answers_unavailable(kstack):
    http = kstack.start_http(bus_timeout_ms=1000)
    base, key = http.base, kstack.key
    # answered while the engine runs; two tries of 1 s can both be too short on the mock
    # cluster (it holds an idle fetch 500 ms, on each side) under ASan on a loaded machine
    deadline = time.monotonic() + 30
    while (got := curl(base, "GET", "/servers/getVersion", key))[0] != 200:
        assert time.monotonic() < deadline and got[0] == 503, got
    kstack.engines[0].stop()
    kstack.engines[0].expected_dead = True
    t0 = time.monotonic()
    st, body = curl(base, "GET", "/servers/getVersion", key)
    took = time.monotonic() - t0
    assert st == 503 and body["code"] == "unavailable", (st, body)
    assert kstack.topics["replies"] in body["message"] and body["retry_after"] == 1, body
    assert 1.5 < took < 10, took  # two waits of 1 s, then the answer
    st, health = curl(base, "GET", "/health", None)
    assert st == 503 and health["engine"] is False, health


def test_key_limited_to_addresses_is_refused_over_kafka(kstack):
    """A Kafka record has no peer address (the engine sees ip ""): a key limited to
    allowed_ips cannot be checked, and the engine refuses it rather than guess."""
    http = kstack.start_http()
    limited = kstack.ok("authkey.add", {"user": "admin@admin.test",
                                        "allowed_ips": ["127.0.0.0/8"]})["authkey"]
    st, body = curl(http.base, "GET", "/users/view/me", limited)
    assert st == 401 and body["code"] == "unauthenticated", body
    assert "unknown address" in body["message"], body
    fails = kstack.rows("SELECT title FROM logs WHERE action = 'auth_fail'")
    assert any("allowed_ips" in r["title"] for r in fails), fails
    st, me = curl(http.base, "GET", "/users/view/me", kstack.key)  # an unlimited key works
    assert st == 200, me


def test_shim_refuses_to_start_without_a_reachable_cluster(tmp_path):
    """transport = kafka with no broker list, or a cluster that does not answer: the shim
    says why and exits instead of listening with a bus that cannot work."""
    home = tmp_path / "home"
    home.mkdir()
    conf = home / "adminbus.conf"
    env = clean_env(ADMINBUS_HOME=home)
    argv = [str(BIN / "adminbus-http"), "--port", "0"]
    conf.write_text("transport=kafka\n")
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "kafka_brokers is empty" in p.stderr, p.stderr
    port = free_ports(1)[0]  # nothing listens there
    conf.write_text(f"transport=kafka\nkafka_brokers=127.0.0.1:{port}\n")
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "cannot reach the bus" in p.stderr, p.stderr
    assert "adminbus.replies" in p.stderr and "ADMINBUS_HTTP=" not in p.stdout, p.stderr
