"""The HTTP shim under bad requests: every class gets its precise JSON error and status,
changes nothing, and the shim keeps serving everyone else — many concurrent clients,
slowloris clients among them."""

import http.client
import json
import re
import socket
import subprocess
import threading
import time

from conftest import BIN, clean_env
from test_http import curl

LIMITS = dict(max_body=2048, max_header=4096, request_timeout=2, idle_timeout=5)


def check(status, body, want_status, code, name=None, field=None, contains=None):
    assert status == want_status, (status, body)
    assert isinstance(body, dict), body
    assert body["code"] == code, body
    assert body["url"] and body["message"], body
    if name:
        assert body["name"] == name, body
    if field:
        assert body["field"] == field, body
    if contains:
        assert contains in body["message"], body


def test_each_bad_request_class(stack):
    h = stack.start_http(**LIMITS)
    base, key = h.base, stack.key
    before = stack.count("organisations")
    add = "/admin/organisations/add"
    json_ct = ["Content-Type: application/json"]

    st, b = curl(base, "POST", add, key, raw='{"name": "A", ', headers=json_ct)
    check(st, b, 400, "invalid", "Malformed JSON", contains="line 1")
    st, b = curl(base, "POST", add, key, raw='["name", "A"]', headers=json_ct)
    check(st, b, 400, "invalid", "Malformed JSON", contains="JSON object")
    st, b = curl(base, "POST", add, key, raw='{"name": "A", "name": "B"}', headers=json_ct)
    check(st, b, 400, "invalid", "Malformed JSON", contains="duplicate")

    st, b = curl(base, "POST", add, key, raw='{"name": "A"}',
                 headers=["Content-Type: text/plain"])
    check(st, b, 415, "invalid", "Unsupported Media Type", contains="text/plain")
    st, b = curl(base, "POST", add, key, raw="name=A")  # curl's default: a form
    check(st, b, 415, "invalid", contains="application/x-www-form-urlencoded")

    big = json.dumps({"name": "A", "description": "x" * 5000})
    st, b = curl(base, "POST", add, key, raw=big, headers=json_ct)
    check(st, b, 413, "invalid", "Payload Too Large", contains="2048")
    st, b = curl(base, "POST", add, key, raw=big,
                 headers=json_ct + ["Transfer-Encoding: chunked"])
    check(st, b, 413, "invalid", "Payload Too Large", contains="2048")

    st, b = curl(base, "GET", "/users/view/me", key, headers=["X-Padding: " + "p" * 6000])
    check(st, b, 431, "invalid", "Request Header Fields Too Large", contains="4096")

    st, b = curl(base, "GET", "/admin/users/nonesuch", key)
    check(st, b, 404, "not_found", "Not Found", contains="/admin/users/nonesuch")
    st, b = curl(base, "DELETE", "/admin/users/index", key)
    check(st, b, 405, "invalid", "Method Not Allowed")

    st, b = curl(base, "GET", "/admin/users/index")
    check(st, b, 401, "unauthenticated", field="auth", contains="required")
    assert b["name"].startswith("Authentication failed.")
    st, b = curl(base, "GET", "/admin/users/index", "A" * 40)
    check(st, b, 401, "unauthenticated", field="auth", contains="not valid")
    st, b = curl(base, "GET", "/admin/users/index", "short")
    check(st, b, 401, "unauthenticated", field="auth", contains="malformed")
    st, b = curl(base, "GET", "/admin/users/index", None, headers=[f"X-MISP-AUTH: {key}"])
    assert st == 200 and len(b) == 1, b  # the other MISP header works

    assert stack.count("organisations") == before
    assert h.alive()


def slow_client(base, head, pace=0.3, limit=30):
    """Open a raw socket, send head then one more byte every pace seconds; return what the
    server sent back (until it closed) and how long it took."""
    host, port = base.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.settimeout(pace)
    start, got = time.monotonic(), b""
    try:
        s.sendall(head)
        while time.monotonic() - start < limit:
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                try:
                    s.sendall(b"x")
                except OSError:
                    break
            except OSError:
                break
    finally:
        s.close()
    return got, time.monotonic() - start


def parse_raw(got):
    head, _, body = got.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), json.loads(body)


def test_slowloris_gets_a_json_408(stack):
    h = stack.start_http(**LIMITS)
    # headers that never end, one byte at a time: never idle, so only the deadline ends it
    got, took = slow_client(h.base, b"GET /users/view/me HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    line, body = parse_raw(got)
    assert line == "HTTP/1.1 408 Request Timeout", got
    assert body["code"] == "invalid" and "2 s" in body["message"]
    assert 1.5 < took < 10, took
    # a body that trickles in
    got, took = slow_client(h.base, b"POST /admin/organisations/add HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 500\r\n"
                            b"Authorization: " + stack.key.encode() + b"\r\n\r\n{")
    line, body = parse_raw(got)
    assert line == "HTTP/1.1 408 Request Timeout" and 1.5 < took < 10, (got, took)
    st, me = curl(h.base, "GET", "/users/view/me", stack.key)
    assert st == 200, me
    assert stack.count("organisations") == 1


def one_request(base, method, path, key=None, body=None, ctype="application/json"):
    host, port = base.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": ctype}
    if key:
        headers["Authorization"] = key
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data)


def test_many_concurrent_clients_with_slowloris_among_them(stack):
    h = stack.start_http(**LIMITS)
    base, key = h.base, stack.key
    slow_results = []

    def slow():
        slow_results.append(slow_client(base, b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: "))

    cases = [
        (("GET", "/users/view/me", key), 200, None),
        (("POST", "/admin/logs/index", key, '{"model": "Organisation"}'), 200, None),
        (("POST", "/admin/organisations/add", key, '{"name": '), 400, "invalid"),
        (("GET", "/no/such/route", key), 404, "not_found"),
        (("GET", "/admin/users/index", "B" * 40), 401, "unauthenticated"),
        (("POST", "/admin/organisations/add", key, '{"name": "x"}', "text/plain"), 415,
         "invalid"),
    ]
    failures, done = [], []

    def client(n):
        for i in range(12):
            args, want, code = cases[(n + i) % len(cases)]
            try:
                st, body = one_request(base, *args)
                if st != want or (code and body.get("code") != code):
                    failures.append((args, st, body))
                done.append(st)
            except Exception as e:  # noqa: BLE001 — any failure is reported
                failures.append((args, repr(e)))

    slows = [threading.Thread(target=slow) for _ in range(6)]
    clients = [threading.Thread(target=client, args=(n,)) for n in range(24)]
    start = time.monotonic()
    for t in slows + clients:
        t.start()
    for t in clients:
        t.join(timeout=120)
    served_in = time.monotonic() - start
    for t in slows:
        t.join(timeout=60)
    assert not failures, failures[:5]
    assert len(done) == 24 * 12
    assert len(slow_results) == 6
    for got, took in slow_results:
        assert got.startswith(b"HTTP/1.1 408 "), got
    assert served_in < 60, served_in
    assert h.alive()
    st, me = curl(base, "GET", "/users/view/me", key)
    assert st == 200


DAEMONS = ("adminbus-http", "adminbus-broker", "adminbus-engine", "adminbus-worker",
           "adminbus-scheduler", "adminbus-supervisor")


def test_help_and_version_work_when_the_configuration_is_broken(tmp_path):
    """--help and --version print and exit 0 before adminbus.conf is read: an operator
    with a broken file can still read how to fix it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "adminbus.conf").write_text("db_dsn=\nthis line is no setting\n")
    env = clean_env(ADMINBUS_HOME=home)

    def run(exe, *args):
        return subprocess.run([str(BIN / exe), *args], env=env, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    for exe in DAEMONS:  # the file is broken indeed: without the flags they refuse it
        p = run(exe)
        assert p.returncode == 2 and "adminbus.conf:2" in p.stderr, (exe, p.returncode,
                                                                     p.stderr)
    for exe in DAEMONS + ("adminctl",):
        for flag in ("--help", "-h"):
            p = run(exe, flag)
            assert p.returncode == 0 and p.stderr == "", (exe, flag, p.returncode, p.stderr)
            assert p.stdout.lower().startswith("usage:") and exe in p.stdout, (exe, p.stdout)
        p = run(exe, "--version")
        assert p.returncode == 0 and p.stderr == "", (exe, p.returncode, p.stderr)
        assert re.fullmatch(rf"{exe} \d+\.\d+\.\d+\n", p.stdout), (exe, p.stdout)
