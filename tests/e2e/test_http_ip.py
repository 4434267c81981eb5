"""Client addresses through the HTTP shim: the shim hands its HTTP client's address to the
broker's proxy intake (proxy_endpoint, ipc:// only), so allowed_ips, auth_fail rows and the
audit trail see the real client, not the shim (docs/architecture.md, "Client addresses
through the HTTP shim").

Every client here is on loopback, so the tests use other loopback addresses: curl binds its
source address with --interface 127.0.0.2 (or .3) and the shim on 127.0.0.1 sees that
address. The spoofing tests talk to the broker with raw ZeroMQ sockets."""

import json
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import msgpack
import zmq

from conftest import BIN, Daemon, clean_env, free_ports, internal_ipc
from helpers import admin, assert_error, audit_rows
from test_http import curl

MARKER = b"\0adminbus-proxy"


def curl_from(source, base, method, path, key=None, body=None, headers=()):
    """One real curl call with its source address bound to source (a loopback address);
    returns (status, parsed JSON)."""
    argv = ["curl", "-sS", "--interface", source, "-X", method, "-w", "\n%{http_code}",
            base + path, "-H", "Accept: application/json"]
    if key is not None:
        argv += ["-H", f"Authorization: {key}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    for h in headers:
        argv += ["-H", h]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"curl failed: {p.stderr}"
    text, code = p.stdout.rsplit("\n", 1)
    return int(code), json.loads(text)


def restricted_key(stack, *allowed):
    """A key of the site administrator allowed only from the given networks."""
    r = stack.ok("authkey.add", {"user": "admin@admin.test", "allowed_ips": list(allowed)})
    return r["authkey"]


def last_auth_fail(stack):
    return stack.rows("SELECT * FROM logs WHERE action = 'auth_fail' ORDER BY id DESC")[0]


def test_allowed_ips_and_audit_see_the_http_client(stack):
    http = stack.start_http()
    base = http.base
    proxy = stack.home / "proxy.sock"
    assert stat.S_ISSOCK(proxy.stat().st_mode)
    assert stat.S_IMODE(proxy.stat().st_mode) == 0o600, oct(proxy.stat().st_mode)
    assert f"proxy ipc://{proxy.resolve()}" in Path(stack.broker.log).read_text()

    st, saved = curl_from("127.0.0.1", base, "POST",
                          "/servers/serverSettingsEdit/MISP.log_client_ip", stack.key,
                          {"value": True})
    assert st == 200 and saved["saved"] is True, saved  # the audit trail keeps addresses
    # a row per refusal (not one per source and window, test_flood.py): each names its address
    st, saved = curl_from("127.0.0.1", base, "POST",
                          "/servers/serverSettingsEdit/Security.auth_fail_log_window", stack.key,
                          {"value": 0})
    assert st == 200 and saved["saved"] is True, saved
    key2 = restricted_key(stack, "127.0.0.2/32")
    st, me = curl_from("127.0.0.2", base, "GET", "/users/view/me", key2)
    assert st == 200, me
    assert me["User"]["email"] == "admin@admin.test"

    # the same key from another address, from the shim's own address, and with a
    # forwarded-for header naming the allowed address: refused, the real address named
    for source, headers in (("127.0.0.3", ()), ("127.0.0.1", ()),
                            ("127.0.0.3", ("X-Forwarded-For: 127.0.0.2",))):
        fails = stack.count("logs", "action = 'auth_fail'")
        st, err = curl_from(source, base, "GET", "/users/view/me", key2, headers=headers)
        assert st in (401, 403), (source, st, err)
        assert source in err["message"] and "allowed_ips" in err["message"], err
        assert stack.count("logs", "action = 'auth_fail'") == fails + 1
        assert last_auth_fail(stack)["ip"] == source

    # the old bypass: a key allowed only the shim's address is refused to an HTTP client
    key1 = restricted_key(stack, "127.0.0.1/32")
    st, err = curl_from("127.0.0.2", base, "GET", "/users/view/me", key1)
    assert st in (401, 403) and "127.0.0.2" in err["message"], (st, err)

    # a change made over HTTP is audited with the client's address
    st, org = curl_from("127.0.0.2", base, "POST", "/admin/organisations/add", key2,
                        {"Organisation": {"name": "Proxied", "local": 1}})
    assert st == 200, org
    row = audit_rows(stack, model="Organisation", action="add",
                     model_id=org["Organisation"]["id"])[-1]
    assert row["ip"] == "127.0.0.2", row

    # a plain ZeroMQ client still gets the address the broker sees
    assert stack.ok("auth.whoami")["user"]["email"] == "admin@admin.test"
    assert_error(stack.cmd("auth.whoami", auth=key2), "unauthenticated", "auth")
    assert last_auth_fail(stack)["ip"] == "127.0.0.1"


def raw(stack, frames, timeout=10.0):
    """Send frames on a fresh DEALER to the commands endpoint; the reply frames or None."""
    s = stack.ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(stack.url)
    try:
        s.send_multipart(frames)
        return s.recv_multipart() if s.poll(int(timeout * 1000)) else None
    finally:
        s.close()


def reply(frames, route=(b"",)):
    """The decoded reply; it must come back with the route the client sent."""
    assert frames is not None, "no reply"
    assert frames[:-1] == list(route), frames
    return msgpack.unpackb(frames[-1], raw=False)


def test_a_plain_client_cannot_name_its_address(stack):
    key2 = restricted_key(stack, "127.0.0.2/32")
    body = msgpack.packb(stack.command("auth.whoami", auth=key2), use_bin_type=True)
    before = stack.counts()

    # [""][an address][body], as a proxy would send it: one frame too many
    r = reply(raw(stack, [b"", b"127.0.0.2", body]))
    assert_error(r, "invalid", "frame")

    # naming itself with the proxy marker: refused on its own connection, never routed to
    # the proxy intake (with a route of its own after it, too). One socket: a second
    # connection with the same routing id would be ignored while the first is known.
    s = stack.ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, MARKER)
    s.connect(stack.url)
    try:
        for frames in ([b"", body], [b"someone", b"", body]):
            s.send_multipart(frames)
            assert s.poll(10000), "no reply"
            r = reply(s.recv_multipart(), route=frames[:-1])
            assert_error(r, "invalid", "frame")
            assert "reserved" in r["error"]["message"], r
    finally:
        s.close()
    assert stack.counts() == before

    # meanwhile an HTTP client through the proxy intake gets its own replies
    http = stack.start_http()
    st, me = curl_from("127.0.0.2", http.base, "GET", "/users/view/me", key2)
    assert st == 200, me


def proxy_send(stack, frames, timeout=10.0):
    s = stack.ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"ipc://{(stack.home / 'proxy.sock').resolve()}")
    try:
        s.send_multipart(frames)
        assert s.poll(int(timeout * 1000)), "no reply on the proxy intake"
        return reply(s.recv_multipart())
    finally:
        s.close()


def test_the_proxy_intake_checks_what_it_is_sent(stack):
    key2 = restricted_key(stack, "127.0.0.2/32")
    cmd = stack.command("auth.whoami", auth=key2)
    body = msgpack.packb(cmd, use_bin_type=True)
    before = stack.counts()
    for bad in (b"", b"127.0.0.256", b"example.org", b"1" * 46, b"127.0.0.2\0"):
        r = proxy_send(stack, [b"", bad, body])
        assert_error(r, "invalid", "ip")
        assert r["id"] == cmd["id"]
    assert_error(proxy_send(stack, [b"", body]), "invalid", "frame")
    assert_error(proxy_send(stack, [b"", b"127.0.0.2", body, b"more"]), "invalid", "frame")
    assert stack.counts() == before
    ok = proxy_send(stack, [b"", b"127.0.0.2", body])
    assert ok["ok"] is True and ok["result"]["user"]["email"] == "admin@admin.test", ok
    v6 = stack.command("auth.whoami", auth=key2)
    r = proxy_send(stack, [b"", b"2001:db8::7", msgpack.packb(v6, use_bin_type=True)])
    assert_error(r, "unauthenticated", "auth")
    assert "2001:db8::7" in r["error"]["message"]


def broker_alone(home, sockets, *flags, env=None, running_once=None):
    """Run adminbus-broker under home, its internal endpoints in the folder sockets, with
    flags until it exits (30 s at most) or, with running_once, until its log shows that text
    (20 s at most); returns (returncode or None when still running, stderr, process,
    ports)."""
    ports = free_ports(2)
    (home / "adminbus.conf").write_text(
        "".join(f"{k}=tcp://127.0.0.1:{p}\n" for k, p in zip(
            ("commands_endpoint", "events_endpoint"), ports)) + internal_ipc(sockets)[0])
    log = open(home / "broker-alone.log", "w+")
    p = subprocess.Popen([str(BIN / "adminbus-broker"), *flags],
                         env=clean_env(ADMINBUS_HOME=str(home), **(env or {})),
                         stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + (20 if running_once else 30)
    while p.poll() is None and time.monotonic() < deadline:
        if running_once and running_once in (home / "broker-alone.log").read_text():
            break
        time.sleep(0.05)
    return p.returncode, (home / "broker-alone.log").read_text(), p, ports


def stop(p):
    if p.poll() is None:
        p.terminate()
        p.wait(timeout=10)


def test_broker_refuses_a_proxy_endpoint_beyond_ipc(tmp_path, sockets_dir):
    for value, why in (("tcp://127.0.0.1:1", "proxy_endpoint must be auto, off or ipc:///PATH"),
                       ("ipc://relative.sock", "must be absolute"),
                       ("ipc://@abstract", "must be absolute"),
                       ("ipc:///" + "x" * 120, "longer than the 107 bytes")):
        rc, err, p, ports = broker_alone(tmp_path, sockets_dir, f"--proxy-endpoint={value}")
        stop(p)
        assert rc == 2, (value, err)
        assert why in err, (value, err)
        # refused before binding anything: the commands port is still free
        s = socket.socket()
        s.bind(("127.0.0.1", ports[0]))
        s.close()


def test_too_long_a_home_disables_the_proxy_intake_and_the_shim_falls_back(tmp_path,
                                                                            sockets_dir):
    home = tmp_path / ("h" * (120 - len(str(tmp_path))))
    home.mkdir()
    assert len(str(home / "proxy.sock")) > 107
    rc, err, broker, ports = broker_alone(home, sockets_dir, running_once="proxy off")
    try:
        assert rc is None, err
        assert "no proxy intake" in err and "longer than the 107 bytes" in err, err
        assert "proxy off" in err, err
        port_file = home / "http.port"
        log = home / "http.log"
        shim = Daemon("http", [str(BIN / "adminbus-http"), "--url",
                               f"tcp://127.0.0.1:{ports[0]}", "--events",
                               f"tcp://127.0.0.1:{ports[1]}", "--port", "0", "--port-file",
                               str(port_file)], clean_env(ADMINBUS_HOME=str(home)), log)
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text().strip():
                assert time.monotonic() < deadline and shim.alive(), log.read_text()
                time.sleep(0.05)
            text = log.read_text()
            assert "warning: no proxy intake" in text and "shim's address" in text, text
            # the bus works through the commands endpoint: the broker itself answers (no
            # engine runs here)
            st, health = curl(f"http://127.0.0.1:{port_file.read_text().strip()}", "GET",
                              "/health")
            assert st == 503 and health["bus"] is True and health["engine"] is False, health
        finally:
            shim.stop()
    finally:
        stop(broker)


def test_forwarded_for_is_believed_only_from_trusted_proxies(stack):
    http = stack.start_http(trust_forwarded_for="127.0.0.3/32")
    key2 = restricted_key(stack, "127.0.0.2/32")

    def whoami(source, xff=None):
        headers = [f"X-Forwarded-For: {x}" for x in (xff if isinstance(xff, list) else
                                                      [xff] if xff else [])]
        return curl_from(source, http.base, "GET", "/users/view/me", key2, headers=headers)

    # through the trusted proxy 127.0.0.3: the address it appended is the client
    assert whoami("127.0.0.3", "127.0.0.2")[0] == 200
    # a client-written entry on the left does not matter: the rightmost untrusted one counts
    st, err = whoami("127.0.0.3", "127.0.0.2, 127.0.0.9")
    assert st == 401 and "127.0.0.9" in err["message"], err
    assert whoami("127.0.0.3", "127.0.0.9, 127.0.0.2")[0] == 200
    # several headers are one list, in order
    assert whoami("127.0.0.3", ["127.0.0.9", "127.0.0.2"])[0] == 200
    # trusted hops are skipped
    assert whoami("127.0.0.3", "127.0.0.2, 127.0.0.3")[0] == 200
    # entries with ports (IPv4, bracketed IPv6) name their address
    assert whoami("127.0.0.3", "127.0.0.9, 127.0.0.2:8080")[0] == 200
    assert whoami("127.0.0.3", "[::ffff:127.0.0.2]:4711")[0] == 200
    # a garbled entry stops at the hop that appended it: the proxy's own address
    for bad in ("127.0.0.2, junk", "127.0.0.2:80800", "", "127.0.0.2,", "[127.0.0.2]:80"):
        st, err = whoami("127.0.0.3", bad)
        assert st == 401 and "127.0.0.3" in err["message"], (bad, st, err)
    # from anyone else the header is ignored
    st, err = whoami("127.0.0.4", "127.0.0.2")
    assert st == 401 and "127.0.0.4" in err["message"], err


def test_forwarded_header_from_trusted_proxies(stack):
    """RFC 7239 Forwarded: for= nodes with ports, quoted, in brackets, names in any case,
    read from the right past trusted proxies; it wins over X-Forwarded-For; unknown or
    obfuscated nodes and malformed values leave the proxy's own address."""
    http = stack.start_http(trust_forwarded_for="127.0.0.3/32")
    key2 = restricted_key(stack, "127.0.0.2/32")
    key6 = restricted_key(stack, "2001:db8:cafe::/48")

    def whoami(source, *headers, key=key2):
        return curl_from(source, http.base, "GET", "/users/view/me", key, headers=headers)

    assert whoami("127.0.0.3", "Forwarded: for=127.0.0.2")[0] == 200
    assert whoami("127.0.0.3", 'Forwarded: For="127.0.0.2:4711";proto=http')[0] == 200
    assert whoami("127.0.0.3", "Forwarded: for=127.0.0.9;proto=http, FOR=127.0.0.2, "
                  "for=127.0.0.3")[0] == 200  # past the trusted hop
    assert whoami("127.0.0.3", "Forwarded: for=192.0.2.60;proto=http, "
                  'for="[2001:db8:cafe::17]:4711"', key=key6)[0] == 200
    st, err = whoami("127.0.0.3", "Forwarded: for=127.0.0.2, for=127.0.0.9")
    assert st == 401 and "127.0.0.9" in err["message"], err
    # several header lines are one list, in order
    assert whoami("127.0.0.3", "Forwarded: for=127.0.0.9", "Forwarded: for=127.0.0.2")[0] == 200
    # Forwarded wins over X-Forwarded-For
    assert whoami("127.0.0.3", "X-Forwarded-For: 127.0.0.9", "Forwarded: for=127.0.0.2")[0] \
        == 200
    st, err = whoami("127.0.0.3", "X-Forwarded-For: 127.0.0.2", "Forwarded: for=127.0.0.9")
    assert st == 401 and "127.0.0.9" in err["message"], err
    # an X-Forwarded-For too long to read (over 4 KiB) does not hide a Forwarded line
    long_xff = "X-Forwarded-For: " + ", ".join(["127.0.0.9"] * 600)
    assert whoami("127.0.0.3", long_xff, "Forwarded: for=127.0.0.2")[0] == 200
    st, err = whoami("127.0.0.3", long_xff + ", 127.0.0.2")
    assert st == 401 and "127.0.0.3" in err["message"], err
    # unknown, obfuscated, no for=, malformed: the proxy's own address, never a crash
    for bad in ("for=unknown", "for=_hidden", 'for="_gazonk:_port"', "proto=https",
                "for=127.0.0.2;for=127.0.0.2", 'for="127.0.0.2', "for=", "for=127.0.0.2 x",
                "for=127.0.0.2;;", "=", '"', "for=" + "9" * 300,
                'for="[2001:db8:cafe::17]', "for=127.0.0.2, proto=http"):
        st, err = whoami("127.0.0.3", f"Forwarded: {bad}", "X-Forwarded-For: 127.0.0.2")
        assert st == 401 and "127.0.0.3" in err["message"], (bad, st, err)
    assert http.alive()
    # from anyone else the header is ignored
    st, err = whoami("127.0.0.4", "Forwarded: for=127.0.0.2")
    assert st == 401 and "127.0.0.4" in err["message"], err


def test_the_shim_refuses_a_bad_trusted_range(stack):
    p = subprocess.run([str(BIN / "adminbus-http"), "--url", stack.url, "--events", stack.events,
                        "--trust-forwarded-for", "127.0.0.300/8"], env=stack.env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--trust-forwarded-for wants an address range" in p.stderr, \
        p.stderr


def test_logins_through_the_proxy_intake_count_the_client_address(stack):
    """What the shim sends for a login: user.ips and the brute-force rows see the address
    the proxy named, one per client rather than one for the shim."""
    stack.ok("user.add", {"email": "kim@circl.lu", "org": admin(stack)["org_name"], "role": "User",
                          "password": "Correct-Horse-42-battery", "no_password_change": True})

    def login(ip, password):
        cmd = {"v": 1, "id": str(uuid.uuid4()), "type": "auth.login",
               "args": {"email": "kim@circl.lu", "password": password}}
        return proxy_send(stack, [b"", ip, msgpack.packb(cmd, use_bin_type=True)])

    ok = login(b"127.0.0.2", "Correct-Horse-42-battery")
    assert ok["ok"] is True, ok
    ips = stack.ok("user.ips", {"user": "kim@circl.lu"})["items"]
    assert [x["ip"] for x in ips] == ["127.0.0.2"], ips
    bad = login(b"2001:db8::9", "wrong password")
    assert bad["ok"] is False, bad
    rows = stack.rows("SELECT ip FROM bruteforces")
    assert [r["ip"] for r in rows] == ["2001:db8::9"], rows


def test_no_engine_is_answered_on_the_proxy_intake(tmp_path, sockets_dir):
    rc, err, broker, ports = broker_alone(tmp_path, sockets_dir,
                                          running_once="adminbus-broker: commands")
    try:
        assert rc is None, err
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"ipc://{(tmp_path / 'proxy.sock').resolve()}")
        try:
            cmd = {"v": 1, "id": "5c1f6c54-6f0e-4a4e-9a3e-0d6c1c1b2a01", "type": "auth.whoami",
                   "args": {}}
            s.send_multipart([b"", b"127.0.0.2", msgpack.packb(cmd, use_bin_type=True)])
            assert s.poll(10000), "no answer"
            r = reply(s.recv_multipart())
            assert_error(r, "unavailable")
            assert r["id"] == cmd["id"] and r["error"]["retry_after"] == 1, r
        finally:
            s.close()
    finally:
        stop(broker)
