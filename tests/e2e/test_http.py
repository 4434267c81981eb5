"""The HTTP shim (adminbus-http, issue 7): a recorded session of MISP-style admin calls made
with real curl processes, asserting MISP's JSON shapes and what landed in MariaDB; the
/events stream watched with `curl -N`; /metrics and /health.

Every call here is what a MISP admin script sends: the key in Authorization, JSON bodies
wrapped ({"User": {...}}) or bare, MISP's routes."""

import json
import re
import subprocess
import time

import pytest


def curl(base, method, path, key=None, body=None, headers=(), raw=None, timeout=30):
    """One real curl call; returns (status, parsed JSON or text)."""
    argv = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", base + path,
            "-H", "Accept: application/json"]
    if key is not None:
        argv += ["-H", f"Authorization: {key}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    if raw is not None:
        argv += ["--data-binary", raw]
    for h in headers:
        argv += ["-H", h]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"curl failed: {p.stderr}"
    text, code = p.stdout.rsplit("\n", 1)
    try:
        return int(code), json.loads(text)
    except json.JSONDecodeError:
        return int(code), text


@pytest.fixture
def http(stack):
    return stack.start_http()


def test_misp_admin_session(stack, http):
    base, key = http.base, stack.key

    # the MISP client handshake
    st, v = curl(base, "GET", "/servers/getVersion", key)
    assert st == 200 and re.fullmatch(r"\d+(\.\d+)+", v["version"]), v
    st, me = curl(base, "GET", "/users/view/me.json", key)
    assert st == 200, me
    assert me["User"]["email"] == "admin@admin.test"
    assert me["Role"]["perm_site_admin"] is True and me["Role"]["perm_auth"] is True
    assert me["Role"]["permission"] == "3" and me["UserSetting"] == []
    assert me["Organisation"]["id"] == me["User"]["org_id"]

    # add an organisation (wrapped body, as PyMISP sends it)
    st, org = curl(base, "POST", "/admin/organisations/add", key,
                   {"Organisation": {"name": "CIRCL", "nationality": "LU", "sector": "CERT",
                                     "type": "CSIRT", "local": 1}})
    assert st == 200, org
    o = org["Organisation"]
    assert o["name"] == "CIRCL" and o["nationality"] == "LU" and o["local"] is True
    assert re.fullmatch(r"[0-9a-f-]{36}", o["uuid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", o["date_created"])
    org_id = o["id"]
    assert stack.count("organisations", "name = 'CIRCL'") == 1

    st, orgs = curl(base, "GET", "/organisations/index/scope:local", key)
    assert st == 200 and {x["Organisation"]["name"] for x in orgs} >= {"CIRCL"}

    # add a user (bare body, MISP's field names, ids as strings as MISP forms send them)
    st, added = curl(base, "POST", "/admin/users/add", key,
                     {"email": "analyst@circl.lu", "org_id": str(org_id), "role_id": "3",
                      "change_pw": 1, "autoalert": 1})
    assert st == 200, added
    u = added["User"]
    assert u["email"] == "analyst@circl.lu" and u["org_id"] == org_id and u["role_id"] == 3
    assert u["autoalert"] is True and u["change_pw"] is True
    assert len(u["password"]) >= 12  # the generated password, shown once
    assert "password_hash" not in u and "org" not in u
    assert added["Organisation"] == {"id": org_id, "name": "CIRCL"}
    assert added["Role"]["id"] == 3
    uid = u["id"]

    # list users
    st, users = curl(base, "GET", "/admin/users/index", key)
    assert st == 200
    by_email = {x["User"]["email"]: x for x in users}
    assert set(by_email) == {"admin@admin.test", "analyst@circl.lu"}
    assert by_email["analyst@circl.lu"]["Organisation"]["name"] == "CIRCL"
    assert all(set(x) == {"User", "Role", "Organisation"} for x in users)
    assert "password" not in by_email["analyst@circl.lu"]["User"]

    # edit (wrapped), then view
    st, edited = curl(base, "POST", f"/admin/users/edit/{uid}", key,
                      {"User": {"autoalert": 0, "termsaccepted": True, "nids_sid": "4000001"}})
    assert st == 200, edited
    assert edited["User"]["autoalert"] is False and edited["User"]["termsaccepted"] is True
    assert edited["User"]["nids_sid"] == 4000001
    row = stack.rows("SELECT autoalert, termsaccepted, nids_sid FROM users WHERE id = %s", uid)[0]
    assert (row["autoalert"], row["termsaccepted"], row["nids_sid"]) == (0, 1, 4000001)
    st, view = curl(base, "GET", f"/admin/users/view/{uid}", key)
    assert st == 200 and view["User"]["autoalert"] is False

    # a role, MISP style: permission level as a number, flags as perm_*
    st, role = curl(base, "POST", "/admin/roles/add", key,
                    {"Role": {"name": "Analyst", "permission": "1", "perm_audit": 1,
                              "perm_auth": True}})
    assert st == 200, role
    r = role["Role"]
    assert r["permission"] == "1" and r["perm_add"] is True and r["perm_publish"] is False
    assert r["perm_audit"] is True and r["perm_auth"] is True and r["perm_site_admin"] is False
    st, roles = curl(base, "GET", "/roles/index", key)
    assert "Analyst" in {x["Role"]["name"] for x in roles}

    # set a setting, read it back
    st, saved = curl(base, "POST", "/servers/serverSettingsEdit/MISP.log_client_ip", key,
                     {"value": True})
    assert st == 200 and saved["saved"] is True and saved["success"] is True, saved
    st, setting = curl(base, "GET", "/servers/getSetting/MISP.log_client_ip", key)
    assert st == 200 and setting["setting"] == "MISP.log_client_ip" and setting["value"] is True
    st, settings = curl(base, "GET", "/servers/serverSettings", key)
    assert st == 200
    assert any(s["setting"] == "MISP.baseurl" and s["level"] == 0
               for s in settings["finalSettings"])
    assert stack.count("logs", "action = 'serverSettingsEdit'") == 1

    # workers and jobs
    worker = stack.start_worker("default")
    job = stack.ok("job.enqueue", {"type": "noop"})
    deadline = time.monotonic() + 20
    while stack.rows("SELECT state FROM jobs WHERE id = %s", job["id"])[0]["state"] != "done":
        assert time.monotonic() < deadline, "the noop job did not finish"
        time.sleep(0.05)
    st, workers = curl(base, "GET", "/servers/getWorkers", key)
    assert st == 200, workers
    assert workers["default"]["ok"] is True
    assert [w["pid"] for w in workers["default"]["workers"]] == [worker.pid]
    assert workers["email"]["ok"] is False and workers["email"]["workers"] == []
    st, jobs = curl(base, "GET", "/jobs/index", key)
    assert st == 200
    j = [x["Job"] for x in jobs if x["Job"]["id"] == job["id"]][0]
    assert j["worker"] == "default" and j["job_type"] == "noop" and j["status"] == 4
    assert j["progress"] == 100
    st, progress = curl(base, "GET", f"/jobs/getProgress/{job['id']}", key)
    assert st == 200 and progress == 100
    st, tasks = curl(base, "GET", "/tasks/index", key)
    assert st == 200 and {"cache_exports", "pull_all"} <= {t["Task"]["type"] for t in tasks}

    # search the logs (PyMISP's search_logs sends the filters bare)
    st, logs = curl(base, "POST", "/admin/logs/index", key,
                    {"model": "User", "action": "add", "title": "circl.lu"})
    assert st == 200, logs
    assert [x["Log"]["title"] for x in logs] == [f"User ({uid}): analyst@circl.lu"]
    assert logs[0]["Log"]["email"] == "admin@admin.test"
    st, logs = curl(base, "POST", "/admin/logs/index", key,
                    {"filters": {"model": "Organisation"}, "limit": 1})
    assert st == 200 and len(logs) == 1 and logs[0]["Log"]["model"] == "Organisation"

    # delete, and delete again
    st, deleted = curl(base, "POST", f"/admin/users/delete/{uid}", key)
    assert st == 200, deleted
    assert deleted == {"saved": True, "success": True, "name": "User deleted.",
                       "message": "User deleted.", "url": f"/admin/users/delete/{uid}",
                       "id": uid}
    assert stack.count("users", "id = %s", uid) == 0
    st, again = curl(base, "POST", f"/admin/users/delete/{uid}", key)
    assert st == 404 and again["code"] == "not_found" and again["url"].endswith(str(uid))
    st, gone = curl(base, "POST", f"/admin/organisations/delete/{org_id}", key)
    assert st == 200 and gone["saved"] is True
    assert stack.count("organisations", "id = %s", org_id) == 0


def test_misp_failure_bodies(stack, http):
    base, key = http.base, stack.key
    # a refused save is MISP's 403 with saved: false and the field's error
    st, body = curl(base, "POST", "/admin/organisations/add", key, {"name": ""})
    assert st == 403, body
    assert body["saved"] is False and body["code"] == "invalid" and body["field"] == "name"
    assert list(body["errors"]) == ["name"] and body["url"] == "/admin/organisations/add"
    stack.ok("org.add", {"name": "Dup"})
    st, body = curl(base, "POST", "/admin/organisations/add", key, {"name": "Dup"})
    assert st == 403 and body["code"] == "conflict" and body["saved"] is False
    # an argument the command does not have is named
    st, body = curl(base, "POST", "/admin/organisations/add", key,
                    {"name": "X", "landline": "123"})
    assert st == 403 and body["field"] == "landline", body
    # not found on a read is 404 with MISP's {name, message, url}
    st, body = curl(base, "GET", "/organisations/view/404404", key)
    assert st == 404 and body["name"] == "Invalid Organisation" and "404404" in body["message"]
    # a user who may not: forbidden, 403, and nothing changed
    stack.ok("org.add", {"name": "Beta"})
    stack.ok("user.add", {"email": "plain@beta.test", "org": "Beta", "role": "User"})
    plain = stack.ok("authkey.add", {"user": "plain@beta.test"})["authkey"]
    before = stack.counts()
    st, body = curl(base, "POST", "/admin/organisations/add", plain, {"name": "Nope"})
    assert st == 403 and body["code"] == "forbidden", body
    st, body = curl(base, "GET", "/jobs/index", plain)
    assert st == 403 and body["code"] == "forbidden"
    assert stack.counts() == before
    # ...but may read who they are (the MISP handshake works for everyone)
    st, me = curl(base, "GET", "/users/view/me", plain)
    assert st == 200 and me["User"]["email"] == "plain@beta.test", me
    assert me["Role"]["perm_site_admin"] is False and me["Organisation"]["name"] == "Beta"


def sse_wait_flowing(proc, probe, timeout=30):
    """The stream's subscription takes a moment to reach the bus: call probe() (something
    that publishes an event the stream shows) until an event line comes."""
    deadline = time.monotonic() + timeout
    while True:
        probe()
        try:
            sse_lines(proc, lambda l: l.startswith("data: "), timeout=0.5)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"no event on the stream within {timeout}s"


def sse_lines(proc, until, timeout=30):
    """Read curl -N's output lines until until(line) is true; returns the lines read."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if until(lines[-1]):
            return lines
    raise AssertionError(f"not seen within {timeout}s; lines: {lines!r}")


def test_events_stream_with_curl(stack, http):
    base, key = http.base, stack.key
    stack.start_worker("default")
    proc = subprocess.Popen(["curl", "-sS", "-N", "-H", f"Authorization: {key}",
                             base + "/events?topic=job."], stdout=subprocess.PIPE, text=True)
    try:
        sse_lines(proc, lambda l: l.startswith(": adminbus event stream"))
        sse_wait_flowing(proc, lambda: stack.ok("job.enqueue", {"type": "noop"}))
        job = stack.ok("job.enqueue", {"type": "sleep", "args": {"ms": 500}})
        lines = sse_lines(proc, lambda l: f'"topic":"job.{job["id"]}.done"' in l)
        events = [json.loads(l[len("data: "):]) for l in lines if l.startswith("data: ")]
        mine = [e for e in events if e["topic"].startswith(f"job.{job['id']}.")]
        kinds = [e["topic"].rsplit(".", 1)[1] for e in mine]
        assert kinds[-1] == "done" and "progress" in kinds, kinds
        progress = [e["data"]["progress"] for e in mine if e["topic"].endswith(".progress")]
        assert progress == sorted(progress) and progress[-1] >= 90, progress
        assert all(e["topic"].startswith("job.") for e in events)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_events_need_a_site_admin(stack, http):
    stack.ok("org.add", {"name": "Beta"})
    stack.ok("user.add", {"email": "plain@beta.test", "org": "Beta", "role": "User"})
    plain = stack.ok("authkey.add", {"user": "plain@beta.test"})["authkey"]
    st, body = curl(http.base, "GET", "/events", plain)
    assert st == 403 and body["code"] == "forbidden" and body["field"] == "auth", body
    st, body = curl(http.base, "GET", "/events")
    assert st == 401 and body["code"] == "unauthenticated", body


def test_events_stream_ends_when_the_key_is_revoked(stack):
    http = stack.start_http(sse_recheck=1)
    stack.ok("user.add", {"email": "second@admin.test", "org": "ORGNAME", "role": "admin"})
    k = stack.ok("authkey.add", {"user": "second@admin.test"})
    proc = subprocess.Popen(["curl", "-sS", "-N", "-H", f"Authorization: {k['authkey']}",
                             http.base + "/events"], stdout=subprocess.PIPE, text=True)
    try:
        sse_lines(proc, lambda l: l.startswith(": adminbus event stream"))
        stack.ok("authkey.delete", {"authkey_id": k["id"]})
        sse_lines(proc, lambda l: l == "event: end", timeout=20)
        assert proc.wait(timeout=20) == 0  # the server ended the response
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_metrics_and_health(stack, http):
    base, key = http.base, stack.key
    stack.start_worker("default")
    job = stack.ok("job.enqueue", {"type": "noop"})
    deadline = time.monotonic() + 20
    while stack.rows("SELECT state FROM jobs WHERE id = %s", job["id"])[0]["state"] != "done":
        assert time.monotonic() < deadline, "the noop job did not finish"
        time.sleep(0.05)
    later = int(time.time() * 1000) + 3600 * 1000
    stack.ok("job.enqueue", {"type": "noop", "run_at": later})  # stays queued, not ready
    curl(base, "GET", "/admin/users/index", key)
    curl(base, "GET", "/admin/users/view/999", key)
    st, text = curl(base, "GET", "/metrics", key)
    assert st == 200, text
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            metrics[name] = float(value)
    assert metrics['adminbus_http_commands_total{type="user.list",outcome="ok"}'] == 1
    assert metrics['adminbus_http_commands_total{type="user.view",outcome="not_found"}'] == 1
    assert metrics['adminbus_queue_jobs{queue="default",state="queued"}'] == 1
    assert metrics['adminbus_queue_jobs{queue="default",state="done"}'] == 1
    assert 'adminbus_queue_ready{queue="default"}' in metrics
    assert metrics['adminbus_queue_workers{queue="default"}'] == 1
    assert metrics['adminbus_queue_workers{queue="email"}'] == 0
    assert metrics['adminbus_workers{queue="default",status="ok",alive="true"}'] == 1
    noop = 'queue="default",type="noop",state="done"'
    assert metrics[f"adminbus_jobs_finished_total{{{noop}}}"] == 1
    assert metrics[f"adminbus_job_duration_seconds_count{{{noop}}}"] == 1
    assert 0 <= metrics[f"adminbus_job_duration_seconds_sum{{{noop}}}"] < 20
    assert metrics['adminbus_queue_oldest_ready_age_seconds{queue="default"}'] == 0
    assert metrics["adminbus_http_errors_total"] >= 1
    # /metrics needs a key (its commands do); /health does not
    st, body = curl(base, "GET", "/metrics")
    assert st == 401 and body["code"] == "unauthenticated"
    logs_before = stack.count("logs")
    st, body = curl(base, "GET", "/health")
    assert st == 200 and body == {"status": "ok", "bus": True, "engine": True}
    assert stack.count("logs") == logs_before  # the probe writes nothing
    stack.kill_engine()
    st, body = curl(base, "GET", "/health")
    assert st == 503 and body["status"] == "unavailable" and body["engine"] is False, body


def test_tls(stack, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    h = stack.start_http(tls_cert=cert, tls_key=key)
    base = h.base.replace("http://", "https://")
    p = subprocess.run(["curl", "-sS", "--cacert", str(cert), "-w", "\n%{http_code}",
                        "-H", f"Authorization: {stack.key}", base + "/users/view/me"],
                       capture_output=True, text=True, timeout=30)
    body, code = p.stdout.rsplit("\n", 1)
    assert code == "200" and json.loads(body)["User"]["email"] == "admin@admin.test", p
    # plain HTTP on the TLS port is refused at once, not left hanging
    p = subprocess.run(["curl", "-sS", "-m", "10", h.base + "/health"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode not in (0, 28), p  # 28: curl's timeout
