"""What the HTTP shim refuses, each with a precise status and MISP's JSON error shape, and
without changing anything:

- CLI-only settings (MISP's cli_only: Security.rest_client_enable_arbitrary_urls,
  MISP.attachments_dir, …) cannot be changed over HTTP, on every transport the shim uses
  (the broker's proxy intake, the commands endpoint, Kafka): 405, MISP's "This setting can
  only be edited via the CLI."; adminctl over the bus still changes them.
- A URL whose decoded path or query holds a NUL or another control byte: 400.
- A method a route does not take: 405 with an Allow header naming those it does.
- Too many query parameters, too many /events topics, an over-long authkey: 400 stating
  the real limit (the connection used to close with no answer, or name a wrong size)."""

import json
import socket
import subprocess


from test_http import curl

ARBITRARY = "Security.rest_client_enable_arbitrary_urls"
ATTACHMENTS = "MISP.attachments_dir"
MISP_CLI_ONLY = "This setting can only be edited via the CLI."


def stored(stack, name):
    """The settings row of name (None when only the default applies)."""
    rows = stack.rows("SELECT value FROM settings WHERE name = %s", name)
    return rows[0]["value"] if rows else None


def setting_edits(stack):
    return stack.count("logs", "action = 'serverSettingsEdit'")


def check_cli_only_refused(stack, base, folder):
    before = setting_edits(stack)
    for name, value in ((ARBITRARY, True), (ATTACHMENTS, str(folder)),
                        (ARBITRARY, "1"), (ATTACHMENTS, str(folder))):
        st, b = curl(base, "POST", f"/servers/serverSettingsEdit/{name}", stack.key,
                     {"value": value})
        assert st == 405, (name, st, b)
        assert b["name"] == MISP_CLI_ONLY, b
        assert b["code"] == "forbidden" and b["field"] == "name", b
        assert name in b["message"] and "command line" in b["message"], b
        assert b["url"] == f"/servers/serverSettingsEdit/{name}", b
    # forced, wrapped as MISP's forms send it: refused the same
    st, b = curl(base, "POST", f"/servers/serverSettingsEdit/{ARBITRARY}", stack.key,
                 {"Server": {"value": True, "force": True}})
    assert st == 405 and b["name"] == MISP_CLI_ONLY, b
    assert stored(stack, ARBITRARY) is None and stored(stack, ATTACHMENTS) is None
    assert setting_edits(stack) == before
    # a setting that is not CLI-only is still changed over HTTP
    st, b = curl(base, "POST", "/servers/serverSettingsEdit/MISP.log_auth", stack.key,
                 {"value": True})
    assert st == 200 and b["saved"] is True, b
    assert stored(stack, "MISP.log_auth") == "true"


def test_cli_only_settings_refused_over_http_through_the_proxy_intake(stack, tmp_path):
    h = stack.start_http()
    assert "proxy.sock" in h.log.read_text()  # the commands went to the proxy intake
    check_cli_only_refused(stack, h.base, tmp_path)


def test_cli_only_settings_refused_over_http_on_the_commands_endpoint(stack, tmp_path):
    h = stack.start_http(proxy_endpoint="off")
    assert f"bus {stack.url}" in h.log.read_text()  # the commands endpoint, no proxy
    check_cli_only_refused(stack, h.base, tmp_path)


def test_cli_only_settings_refused_over_http_on_kafka(kstack, tmp_path):
    h = kstack.start_http()
    check_cli_only_refused(kstack, h.base, tmp_path)


def test_cli_only_settings_still_set_over_the_bus(stack, tmp_path):
    rc, out, err = stack.adminctl("setting", "set", ARBITRARY, "true")
    assert rc == 0, (out, err)
    rc, out, err = stack.adminctl("setting", "set", ATTACHMENTS, str(tmp_path))
    assert rc == 0, (out, err)
    assert stored(stack, ARBITRARY) == "true" and stored(stack, ATTACHMENTS) == str(tmp_path)
    # a bus client that says via = "http" only limits itself: set and reset refused
    for type, args in (("setting.set", {"name": ARBITRARY, "value": False}),
                       ("setting.reset", {"name": ARBITRARY}),
                       ("setting.reset", {"name": ATTACHMENTS})):
        r = stack.send(dict(stack.command(type, args), via="http"))
        assert r["ok"] is False, r
        assert r["error"]["code"] == "forbidden" and r["error"]["field"] == "name", r
    assert stored(stack, ARBITRARY) == "true" and stored(stack, ATTACHMENTS) == str(tmp_path)
    # any other via is malformed; without it the reset works
    r = stack.send(dict(stack.command("setting.reset", {"name": ARBITRARY}), via="cli"))
    assert r["error"]["code"] == "invalid" and r["error"]["field"] == "via", r
    rc, out, err = stack.adminctl("setting", "reset", ARBITRARY)
    assert rc == 0, (out, err)
    assert stored(stack, ARBITRARY) is None
    # over HTTP the same key reads them still
    h = stack.start_http()
    st, b = curl(h.base, "GET", f"/servers/getSetting/{ATTACHMENTS}", stack.key)
    assert st == 200 and b["value"] == str(tmp_path) and b["cli_only"] is True, b


def raw_request(base, request):
    """Send request bytes as they are; return (status line, headers dict, parsed body)."""
    host, port = base.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, json.loads(body)


def test_a_control_byte_in_the_url_is_refused_before_routing(stack):
    h = stack.start_http()
    base, key = h.base, stack.key
    before = stack.counts()
    for path in ("/admin/users/view/1%00.json", "/admin/users/view/1%00", "/users/view/me%00",
                 "/admin/users/view/1%0a", "/admin/users/view/1%7F", "/admin/users/view/%001",
                 "/admin/users/index?org=1%00", "/admin/users/index?li%00mit=1",
                 "/admin/organisations/delete/2%00"):
        method = "POST" if "delete" in path else "GET"
        st, b = curl(base, method, path, key)
        assert st == 400, (path, st, b)
        assert b["code"] == "invalid" and "control byte" in b["message"], (path, b)
    # the same byte sent raw (not percent-encoded)
    line, _, b = raw_request(base, b"GET /admin/users/view/1\x01 HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: " + key.encode() + b"\r\n"
                             b"Connection: close\r\n\r\n")
    assert line == "HTTP/1.1 400 Bad Request" and "control byte" in b["message"], (line, b)
    # not UTF-8 once decoded: the same
    for path in ("/admin/users/view/%FF", "/admin/users/index?limit=%C3"):
        st, b = curl(base, "GET", path, key)
        assert st == 400 and "UTF-8" in b["message"], (path, b)
    assert stack.counts() == before
    st, b = curl(base, "GET", "/admin/users/view/1.json", key)
    assert st == 200 and b["User"]["id"] == 1, b
    st, b = curl(base, "GET", "/admin/users/index?org=1", key)
    assert st == 200 and len(b) == 1, b


def test_only_the_documented_methods_are_routed(stack):
    h = stack.start_http()
    base, key = h.base, stack.key
    before = stack.count("organisations")
    # MISP's add takes POST only; edit POST or PUT; delete POST or DELETE; views GET, HEAD
    cases = [("PUT", "/admin/organisations/add", "POST"),
             ("PATCH", "/admin/organisations/edit/1", "POST, PUT"),
             ("GET", "/admin/organisations/delete/1", "POST, DELETE"),
             ("PUT", "/admin/users/add", "POST"),
             ("DELETE", "/admin/users/view/1", "GET, HEAD"),
             ("POST", "/servers/getVersion", "GET, HEAD"),
             ("OPTIONS", "/servers/serverSettingsEdit/MISP.log_auth", "POST"),
             ("DELETE", "/admin/logs/index", "GET, HEAD, POST"),
             ("get", "/users/view/me", "GET, HEAD"),  # methods are case-sensitive
             ("PUT", "/events", "GET, HEAD")]
    for method, path, allow in cases:
        body = {"name": "PUT-ORG"} if method in ("PUT", "PATCH") else None
        line, headers, b = raw_request(base, (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
            "Connection: close\r\n" +
            ("Content-Type: application/json\r\nContent-Length: 19\r\n\r\n"
             '{"name": "PUT-ORG"}' if body else "\r\n")).encode())
        assert line == "HTTP/1.1 405 Method Not Allowed", (method, path, line, b)
        assert headers.get("Allow") == allow, (method, path, headers)
        assert b["code"] == "invalid" and b["name"] == "Method Not Allowed", b
        assert f"it takes {allow}" in b["message"] and b["url"] == path, b
    assert stack.count("organisations") == before
    # the methods MISP takes still work: PUT on an edit, HEAD on a view (PyMISP's
    # organisation_exists), DELETE on a delete
    st, b = curl(base, "PUT", "/admin/organisations/edit/1", key, {"description": "put"})
    assert st == 200 and b["Organisation"]["description"] == "put", b
    p = subprocess.run(["curl", "-sS", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                        f"Authorization: {key}", base + "/organisations/view/1"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout == "200", p
    p = subprocess.run(["curl", "-sS", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                        f"Authorization: {key}", base + "/organisations/view/999"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout == "404", p
    st, b = curl(base, "POST", "/admin/organisations/add", key, {"name": "Gone"})
    assert st == 200, b
    st, b = curl(base, "DELETE", f"/admin/organisations/delete/{b['Organisation']['id']}", key)
    assert st == 200 and b["saved"] is True, b


def test_too_many_parameters_and_topics_get_400_stating_the_limit(stack):
    h = stack.start_http()
    base, key = h.base, stack.key
    for n in (1000, 65):
        q = "&".join(f"topic=job.{i}." for i in range(n))
        st, b = curl(base, "GET", "/events?" + q, key)
        assert st == 400, (n, st, b)
        assert b["code"] == "invalid" and b["field"] == "query", b
        assert f"the query has {n} parameters; at most 64 are accepted" == b["message"], b
        assert b["url"] == "/events", b
    for n in (17, 64):
        q = "&".join(f"topic=job.{i}." for i in range(n))
        st, b = curl(base, "GET", "/events?" + q, key)
        assert st == 400 and b["field"] == "topic", (n, st, b)
        assert f"{n} topic= parameters; at most 16 topic prefixes" in b["message"], b
    # empty pieces count too: each is a parameter to libmicrohttpd
    st, b = curl(base, "GET", "/admin/users/index?" + "&" * 2000, key)
    assert st == 400 and "2001 parameters" in b["message"], b
    # 16 topics open the stream
    q = "&".join(f"topic=job.{i}." for i in range(16))
    p = subprocess.run(["curl", "-sS", "-N", "-m", "3", "-H", f"Authorization: {key}",
                        base + "/events?" + q], capture_output=True, text=True)
    assert p.stdout.startswith(": adminbus event stream"), p
    assert h.alive()


def test_an_overlong_authkey_is_refused_with_its_real_size(stack):
    h = stack.start_http()
    base = h.base
    for key in ("A" * 10000, "A" * 300, "A" * 129):
        for header in ("Authorization", "X-MISP-AUTH"):
            st, b = curl(base, "GET", "/users/view/me", None, headers=[f"{header}: {key}"])
            assert st == 400 and b["field"] == "auth", b
            assert b["message"] == f"auth is too long: {len(key)} bytes, at most 128", b
    # beyond --max-header (16 KiB) the headers as a whole are refused, naming that limit
    st, b = curl(base, "GET", "/users/view/me", "A" * 20000)
    assert st == 431 and "16384" in b["message"], b
    # a long {id} reaches the engine whole, which names its limit (it used to be a 404)
    st, b = curl(base, "GET", "/admin/users/view/" + "9" * 700, stack.key)
    assert st == 400 and b["field"] == "user" and "700 characters, at most 255" in b["message"]
