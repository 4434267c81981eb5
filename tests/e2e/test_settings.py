"""Server settings (issue 4): setting.list/get/set/reset, baseurl, settings report, over the
wire and through adminctl. Values live in MariaDB; every change is validated, audited as
serverSettingsEdit, announced, and seen by the running engine and worker without a restart;
refusals are precise and change nothing; secret values never appear in clear anywhere."""

import hashlib
import hmac
import json
import re
import secrets
import string
import time

import msgpack
import zmq

from helpers import assert_error, audit_rows, ctl_json

# --- helpers --------------------------------------------------------------------------------


class Subscriber:
    """A subscriber to the event stream (prefixes) that keeps the raw bytes it received."""

    def __init__(self, stack, *prefixes):
        self.sock = stack.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for p in prefixes or ("",):
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())
        self.sock.setsockopt(zmq.SUBSCRIBE, b"audit.Organisation.")
        self.sock.connect(stack.events)
        self.raw = []  # (topic bytes, body bytes)
        # A subscription takes a moment to travel upstream: probe until one arrives.
        for i in range(100):
            stack.ok("org.add", {"name": f"sub-probe-{secrets.token_hex(4)}-{i}"})
            if self.pump(0.1):
                return
        raise AssertionError("no event reached the subscriber within 10 s")

    def pump(self, timeout=0.2):
        got = False
        while self.sock.poll(int(timeout * 1000)):
            self.raw.append(tuple(self.sock.recv_multipart()))
            got = True
            timeout = 0.05
        return got

    def events(self, topic_prefix):
        return [(t.decode(), msgpack.unpackb(b)) for t, b in self.raw
                if t.decode().startswith(topic_prefix)]

    def wait(self, topic, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, ev in self.events(topic):
                if t == topic:
                    return ev
            self.pump(0.1)
        raise AssertionError(f"no {topic} event within {timeout}s")


def settings_state(stack):
    """What a refused command must leave alone."""
    return {
        "settings": stack.rows("SELECT name, value, forced FROM settings ORDER BY name"),
        "admin_settings": stack.rows("SELECT setting, value FROM admin_settings ORDER BY setting"),
        "version": stack.rows("SELECT version FROM settings_version")[0]["version"],
        "logs": stack.count("logs"),
        "command_ids": stack.count("command_ids"),
    }


def setting(stack, name):
    return stack.ok("setting.get", {"name": name})


# --- reading --------------------------------------------------------------------------------


def test_list_shows_every_setting_with_its_problems_by_tab(stack):
    r = stack.ok("setting.list")
    items = {i["name"]: i for i in r["items"]}
    assert r["total"] == len(r["items"]) >= 90
    for name in ("MISP.baseurl", "MISP.log_auth", "MISP.log_client_ip",
                 "MISP.extended_alert_subject", "MISP.enableEventBlocklisting",
                 "MISP.enableOrgBlocklisting", "Security.otp_required",
                 "Security.password_policy_length", "Security.password_policy_complexity",
                 "SecureAuth.amount", "SecureAuth.expire", "GnuPG.email", "GnuPG.homedir",
                 "GnuPG.password", "Proxy.host", "Proxy.port",
                 "SimpleBackgroundJobs.max_job_history_ttl", "debug"):
        assert name in items, name
    base = items["MISP.baseurl"]
    assert base["priority"] == "critical" and base["value"] is None
    assert base["error"] == "Value not set" and base["description"]
    assert items["SecureAuth.amount"]["value"] == 5 and items["SecureAuth.amount"]["error"] is None
    assert items["MISP.log_client_ip"]["value"] is False
    assert items["MISP.host_org_id"]["value"] == 1  # set by --init, kept in admin_settings
    assert re.match(r"^[0-9a-f-]{36}$", items["MISP.uuid"]["value"])  # made by migration 0006
    # the per-tab counts of problems by priority, as the manual's tabs show them
    problems = r["problems"]
    assert set(problems) == {"misp", "gnupg", "proxy", "security", "misc"}
    assert problems["gnupg"]["critical"] == 2  # GnuPG.email, GnuPG.homedir
    assert problems["misp"]["critical"] == 2  # MISP.baseurl, MISP.email
    counted = sum(1 for i in r["items"] if i["error"])
    assert counted == sum(sum(p.values()) for p in problems.values())

    only = stack.ok("setting.list", {"tab": "gnupg", "problems": True})["items"]
    assert {i["name"] for i in only} == {"GnuPG.email", "GnuPG.homedir"}
    gnupg = stack.ok("setting.list", {"tab": "gnupg"})["items"]
    assert {i["tab"] for i in gnupg} == {"gnupg"} and len(gnupg) > 5


def test_get_shows_limits_and_choices(stack):
    r = setting(stack, "MISP.default_event_distribution")
    assert r["type"] == "enum" and r["value"] == "0" and r["default"] == "0"
    assert [o["value"] for o in r["options"]] == ["0", "1", "2", "3"]
    r = setting(stack, "Security.password_policy_length")
    assert (r["min"], r["max"], r["value"]) == (8, 256, 12)
    assert_error(stack.cmd("setting.get", {"name": "MISP.nosuch"}), "not_found", "name")
    err = assert_error(stack.cmd("setting.get", {"name": "misp.baseurl"}), "not_found", "name")
    assert "did you mean MISP.baseurl" in err["message"]


# --- changing -------------------------------------------------------------------------------


def test_set_validates_stores_audits_and_announces(stack):
    sub = Subscriber(stack, "setting.", "audit.Server.")
    before = stack.count("logs", "action = 'serverSettingsEdit'")
    r = stack.ok("setting.set", {"name": "MISP.baseurl", "value": " https://misp.example.org/ "})
    assert r == {"name": "MISP.baseurl", "value": "https://misp.example.org", "previous": None,
                 "changed": True, "forced": False, "version": r["version"]}
    assert stack.rows("SELECT value, forced, modified_by FROM settings "
                      "WHERE name = 'MISP.baseurl'") == [
        {"value": "https://misp.example.org", "forced": 0, "modified_by": 1}]
    got = setting(stack, "MISP.baseurl")
    assert got["value"] == "https://misp.example.org" and got["error"] is None and got["set"]
    rows = audit_rows(stack, model="Server", action="serverSettingsEdit")
    assert len(rows) == before + 1
    assert rows[-1]["change"] == "MISP.baseurl () => (https://misp.example.org)"
    assert rows[-1]["title"] == "Server setting changed" and rows[-1]["user_id"] == 1
    ev = sub.wait("setting.MISP.baseurl.changed")
    assert ev["data"] == {"name": "MISP.baseurl", "version": r["version"], "forced": False,
                          "reset": False, "user_id": 1}
    assert sub.wait("audit.Server.serverSettingsEdit")["data"]["action"] == "serverSettingsEdit"

    # typed values over the wire, text from the CLI: both are cast to the setting's type
    stack.ok("setting.set", {"name": "MISP.default_event_distribution", "value": 3})
    assert setting(stack, "MISP.default_event_distribution")["value"] == "3"
    stack.ok("setting.set", {"name": "MISP.extended_alert_subject", "value": True})
    assert setting(stack, "MISP.extended_alert_subject")["value"] is True
    stack.ok("setting.set", {"name": "SecureAuth.amount", "value": "7"})
    assert setting(stack, "SecureAuth.amount")["value"] == 7
    rows = audit_rows(stack, model="Server", action="serverSettingsEdit")
    assert rows[-1]["change"] == "SecureAuth.amount (5) => (7)"
    assert rows[-2]["change"] == "MISP.extended_alert_subject (false) => (true)"

    # the value it already has: nothing changes, nothing is audited
    n = stack.count("logs")
    r = stack.ok("setting.set", {"name": "SecureAuth.amount", "value": 7})
    assert r["changed"] is False and stack.count("logs") == n


# (setting, value, code, field, words the message must contain)
REFUSALS = [
    ("MISP.log_client_ip", "maybe", "invalid", "value", "is a boolean: give true or false"),
    ("MISP.log_client_ip", 2, "invalid", "value", "is a boolean"),
    ("Security.password_policy_length", "twelve", "invalid", "value", "give an integer"),
    ("Security.password_policy_length", 4, "invalid", "value", "must be at least 8 (got 4)"),
    ("Security.password_policy_length", 300, "invalid", "value", "must be at most 256"),
    ("SecureAuth.expire", True, "invalid", "value", "is numeric"),
    ("MISP.org", 42, "invalid", "value", "give a string"),
    ("MISP.baseurl", "misp.example.org", "invalid", "value", "must start with https://"),
    ("MISP.baseurl", "https://misp example.org", "invalid", "value", "must name a host"),
    ("MISP.baseurl", "https://misp.example.org:70000", "invalid", "value", "port"),
    ("MISP.cveurl", "javascript:alert(1)", "invalid", "value", "must start with https://"),
    ("Security.password_policy_complexity", "/(?<x/", "invalid", "value",
     "the regular expression does not compile"),
    ("Security.password_policy_complexity", "[a-", "invalid", "value", "does not compile"),
    ("MISP.default_event_distribution", 5, "invalid", "value", "must be one of: 0, 1, 2, 3"),
    ("MISP.default_attribute_distribution", "everyone", "invalid", "value",
     "must be one of: 0, 1, 2, 3, event"),
    ("MISP.email", "not an address", "invalid", "value", "must be an e-mail address"),
    ("GnuPG.homedir", "relative/gnupg", "invalid", "value", "must be an absolute path"),
    ("GnuPG.homedir", "/nonexistent/gnupg", "invalid", "value", "is not an existing directory"),
    ("MISP.uuid", "abc", "invalid", "value", "must have exactly 36 characters"),
    ("MISP.baseurl", None, "invalid", "value", "needs a value"),
    ("MISP.baseurl", "", "invalid", "value", "must not be empty"),
    ("MISP.nosuch", "x", "not_found", "name", "no setting is called 'MISP.nosuch'"),
    ("Security.salt", "pepper", "invalid", "name", "is not editable"),
    ("MISP.host_org_id", 999, "not_found", "value", "no organisation has id 999"),
]


def test_refusals_are_precise_and_change_nothing(stack):
    before = settings_state(stack)
    for name, value, code, field, words in REFUSALS:
        err = assert_error(stack.cmd("setting.set", {"name": name, "value": value}), code, field)
        assert words in err["message"], (name, value, err)
        assert settings_state(stack) == before, (name, value)
    # malformed arguments are refused before the database is touched
    for args, field in (({"name": "MISP.live", "value": {"a": 1}}, "value"),
                        ({"name": "MISP.live", "value": [True]}, "value"),
                        ({"name": "MISP.live"}, "value"),
                        ({"value": True}, "name"),
                        ({"name": "MISP.live", "value": True, "force": "yes"}, "force"),
                        ({"name": "MISP.live", "value": True, "colour": "red"}, "colour")):
        assert_error(stack.cmd("setting.set", args), "invalid", field)
    assert_error(stack.cmd("setting.list", {"tab": "plugins"}), "invalid", "tab")
    assert_error(stack.cmd("setting.reset", {"name": "Nope"}), "not_found", "name")
    assert_error(stack.cmd("setting.baseurl", {"baseurl": "ftp://x.example"}), "invalid",
                 "baseurl")
    assert settings_state(stack) == before


def test_force_skips_validation_and_is_audited_as_such(stack, tmp_path):
    assert_error(stack.cmd("setting.set", {"name": "GnuPG.homedir", "value": "/srv/missing"}),
                 "invalid", "value")
    r = stack.ok("setting.set", {"name": "GnuPG.homedir", "value": "/srv/missing", "force": True})
    assert r["changed"] and r["forced"]
    row = audit_rows(stack, model="Server", action="serverSettingsEdit")[-1]
    assert row["title"] == "Server setting changed (forced: validation skipped)"
    assert row["change"] == "GnuPG.homedir () => (/srv/missing)"
    got = setting(stack, "GnuPG.homedir")
    assert got["forced"] is True and "is not an existing directory" in got["error"]
    # force skips validation, not the type
    err = assert_error(stack.cmd("setting.set", {"name": "SecureAuth.amount", "value": "lots",
                                                 "force": True}), "invalid", "value")
    assert "give an integer" in err["message"]
    # a valid value clears the problem
    stack.ok("setting.set", {"name": "GnuPG.homedir", "value": str(tmp_path)})
    got = setting(stack, "GnuPG.homedir")
    assert got["error"] is None and got["forced"] is False


def test_reset_returns_to_the_default(stack):
    sub = Subscriber(stack, "setting.")
    stack.ok("setting.set", {"name": "SecureAuth.expire", "value": 600})
    r = stack.ok("setting.reset", {"name": "SecureAuth.expire"})
    assert r["changed"] and r["value"] == 300 and r["previous"] == 600
    assert stack.count("settings", "name = 'SecureAuth.expire'") == 0
    row = audit_rows(stack, model="Server", action="serverSettingsEdit")[-1]
    assert row["change"] == "SecureAuth.expire (600) => (300)"
    assert row["title"] == "Server setting reset to its default"
    sub.wait("setting.SecureAuth.expire.changed")
    assert any(ev["data"]["reset"] for _, ev in sub.events("setting.SecureAuth.expire."))
    n = stack.count("logs")
    assert stack.ok("setting.reset", {"name": "SecureAuth.expire"})["changed"] is False
    assert stack.count("logs") == n
    assert_error(stack.cmd("setting.reset", {"name": "MISP.host_org_id"}), "invalid", "name")


def test_an_empty_value_unsets_a_setting_that_may_be_empty(stack):
    """Setting "" where empty is allowed clears a stored value as a reset does: its default
    applies. Before, the engine tried to store no value (the column cannot hold none): a
    text setting answered `internal`, and a secret one crashed the engine (it sealed a null
    pointer), both as soon as a value had been stored."""
    for name, value, default in (("MISP.welcome_text_top", "Hello", None),
                                 ("MISP.title_text", "Ours", "MISP"),
                                 ("Email.password", "s3cret-pw", None)):
        stack.ok("setting.set", {"name": name, "value": value})
        n = stack.count("logs")
        r = stack.ok("setting.set", {"name": name, "value": ""})
        assert r["changed"] is True and r["value"] == default, r
        assert stack.count("settings", "name = %s", name) == 0
        assert setting(stack, name)["set"] is False
        row = audit_rows(stack, model="Server", action="serverSettingsEdit")[-1]
        assert stack.count("logs") == n + 1 and row["title"] == "Server setting reset to its " \
                                                                 "default", row
        again = stack.ok("setting.set", {"name": name, "value": ""})
        assert again["changed"] is False and stack.count("logs") == n + 1, again
    assert stack.engine.alive()


def test_host_org_must_be_a_local_organisation(stack):
    local = stack.ok("org.add", {"name": "Second host"})["id"]
    remote = stack.ok("org.add", {"name": "Elsewhere", "local": False})["id"]
    err = assert_error(stack.cmd("setting.set", {"name": "MISP.host_org_id", "value": remote}),
                       "invalid", "value")
    assert "not local" in err["message"]
    stack.ok("setting.set", {"name": "MISP.host_org_id", "value": str(local)})
    assert stack.rows("SELECT value FROM admin_settings WHERE setting = 'host_org_id'") == [
        {"value": str(local)}]
    assert setting(stack, "MISP.host_org_id")["value"] == local
    # the engine's own rule follows: the new host organisation cannot be deleted
    assert_error(stack.cmd("org.delete", {"org": str(local)}), "conflict")


def test_only_site_admins_read_or_change_settings(stack):
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    stack.rows("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
               "VALUES ('user@settings.test', 1, 3, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))")
    uid = stack.rows("SELECT id FROM users WHERE email = 'user@settings.test'")[0]["id"]
    stack.rows("INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, created) "
               "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))", uid,
               hmac.new(secret, key.encode(), hashlib.sha256).digest(), key[:4], key[-4:])
    before = settings_state(stack)
    for type_, args in (("setting.list", {}), ("setting.get", {"name": "MISP.baseurl"}),
                        ("setting.set", {"name": "MISP.live", "value": False}),
                        ("setting.reset", {"name": "MISP.live"}),
                        ("setting.baseurl", {"baseurl": "https://x.example"}),
                        ("setting.report", {}), ("diagnostics.run", {})):
        assert_error(stack.cmd(type_, args, auth=key), "forbidden")
    assert settings_state(stack) == before


# --- adminctl -------------------------------------------------------------------------------


def test_adminctl_setting_commands(stack):
    rc, out, err = stack.adminctl("setting", "set", "Security.password_policy_length", "4")
    assert rc == 1 and out == ""
    assert err.strip() == ("adminctl: invalid: Security.password_policy_length must be at least "
                           "8 (got 4) (field: value)")
    rc, out, err = stack.adminctl("setting", "set", "MISP.default_event_distribution", "3")
    assert rc == 0, err
    assert ctl_json(stack, "setting", "get", "MISP.default_event_distribution")["value"] == "3"
    rc, out, err = stack.adminctl("baseurl", "https://misp.example.org/")
    assert rc == 0, err
    assert "https://misp.example.org" in out
    assert setting(stack, "MISP.baseurl")["value"] == "https://misp.example.org"
    rc, out, err = stack.adminctl("settings", "set", "MISP.log_auth", "true")
    assert rc == 0, err
    assert setting(stack, "MISP.log_auth")["value"] is True
    stack.ok("setting.reset", {"name": "MISP.log_auth"})

    rc, out, err = stack.adminctl("setting", "list", "--tab", "security", "--problems")
    assert rc == 0, err
    rc, out, err = stack.adminctl("setting", "list", "--tab", "gnupg")
    assert rc == 0, err
    assert out.splitlines()[0].split() == ["PRIORITY", "NAME", "VALUE", "ERROR", "DESCRIPTION"]
    assert re.search(r"^critical\s+GnuPG\.email\s+Value not set", out, re.M)
    assert re.search(r"^problems:\n\s+misp:.*critical", out, re.M)
    listed = ctl_json(stack, "setting", "list")
    assert listed["total"] == len(listed["items"])

    rc, out, err = stack.adminctl("setting", "get", "MISP.nosuch")
    assert rc == 1 and "not_found" in err and "(field: name)" in err
    rc, out, err = stack.adminctl("setting", "set", "MISP.baseurl")
    assert rc == 2 and "needs value" in err
    rc, out, err = stack.adminctl("setting", "list", "--tab", "plugins")
    assert rc == 2 and "--tab must be one of: misp, gnupg, proxy, security, misc" in err
    for words in (("setting", "list"), ("setting", "get"), ("setting", "set"),
                  ("setting", "reset"), ("setting", "report"), ("baseurl",), ("diagnostics",)):
        rc, out, err = stack.adminctl(*words, "--help")
        assert rc == 0 and out.startswith("usage: adminctl " + " ".join(words)), (words, out)

    rc, out, err = stack.adminctl("settings", "report")  # JSON without --json: it is a document
    assert rc == 0, err
    report = json.loads(out)
    assert len(report["settings"]) == listed["total"]
    assert {"status", "critical", "checks"} <= set(report["diagnostics"])
    assert report["engine"]["schema_version"] >= 5


# --- running processes see a change without a restart (acceptance 2) -----------------------


def test_engine_applies_log_client_ip_and_log_auth_to_the_next_command(stack):
    pid = stack.engine.pid
    first = stack.ok("org.add", {"name": "Before"})["id"]
    assert audit_rows(stack, model="Organisation", model_id=first)[0]["ip"] is None
    stack.ok("setting.set", {"name": "MISP.log_client_ip", "value": True})
    second = stack.ok("org.add", {"name": "After"})["id"]
    assert audit_rows(stack, model="Organisation", model_id=second)[0]["ip"] == "127.0.0.1"
    auths = stack.count("logs", "action = 'auth'")
    stack.ok("setting.set", {"name": "MISP.log_auth", "value": True})
    stack.ok("auth.whoami")
    rows = stack.rows("SELECT * FROM logs WHERE action = 'auth' ORDER BY id")
    assert len(rows) > auths
    last = rows[-1]
    assert last["title"].startswith(f"Successful authentication using authkey {stack.key[:4]}…")
    assert "(auth.whoami)" in last["title"] and stack.key not in last["title"]
    assert last["ip"] == "127.0.0.1" and last["user_id"] == 1
    stack.ok("setting.set", {"name": "MISP.log_client_ip", "value": False})
    stack.ok("setting.set", {"name": "MISP.log_auth", "value": False})
    third = stack.ok("org.add", {"name": "Again"})["id"]
    assert audit_rows(stack, model="Organisation", model_id=third)[0]["ip"] is None
    n = stack.count("logs", "action = 'auth'")
    stack.ok("auth.whoami")
    assert stack.count("logs", "action = 'auth'") == n
    assert stack.engine.pid == pid and stack.engine.alive()


def wait_done(stack, job_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.rows("SELECT state, message FROM jobs WHERE id = %s", job_id)[0]
        if row["state"] in ("done", "failed", "cancelled"):
            return row
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s")


def test_worker_applies_the_job_history_setting_to_the_next_purge(stack):
    w = stack.start_worker("default")
    old = [stack.ok("job.enqueue", {"type": "noop"})["id"] for _ in range(3)]
    for j in old:
        assert wait_done(stack, j)["state"] == "done"
    # they finished two hours ago
    stack.rows("UPDATE jobs SET date_finished = date_finished - INTERVAL 2 HOUR "
               "WHERE id IN (%s, %s, %s)", *old)

    stack.ok("setting.set", {"name": "SimpleBackgroundJobs.max_job_history_ttl", "value": 86400})
    purge = stack.ok("job.enqueue", {"type": "jobs.purge"})["id"]
    assert wait_done(stack, purge)["state"] == "done"
    assert stack.count("jobs", f"id IN ({old[0]}, {old[1]}, {old[2]})") == 3  # kept: < 1 day

    stack.ok("setting.set", {"name": "SimpleBackgroundJobs.max_job_history_ttl", "value": 3600})
    purge = stack.ok("job.enqueue", {"type": "jobs.purge"})["id"]
    row = wait_done(stack, purge)
    assert row["state"] == "done", row
    assert stack.count("jobs", f"id IN ({old[0]}, {old[1]}, {old[2]})") == 0  # gone: > 1 hour
    assert "Deleted" in row["message"]
    assert w.alive()  # the same worker process, never restarted


# --- secrets (acceptance 3) -------------------------------------------------------------------


def test_secrets_never_appear_in_clear(stack):
    secret = "S3cr3t-" + secrets.token_hex(12)
    other = "0ther-" + secrets.token_hex(12)
    sub = Subscriber(stack)  # every event
    replies = []

    def send(type_, args=None):
        r = stack.cmd(type_, args)
        replies.append(msgpack.packb(r))
        return r

    # debug logging makes the engine log every reply it sends: the strictest place to look
    assert send("setting.set", {"name": "debug", "value": "1"})["ok"]
    assert send("setting.set", {"name": "GnuPG.password", "value": secret})["ok"]
    assert send("setting.set", {"name": "Proxy.password", "value": secret})["ok"]
    r = send("setting.set", {"name": "GnuPG.password", "value": other})
    assert r["result"]["value"] == "*****" and r["result"]["previous"] == "*****"
    r = send("setting.set", {"name": "GnuPG.password", "value": secret + "x" * 1100})
    assert r["ok"] is False and r["error"]["field"] == "value"
    r = send("setting.set", {"name": "SimpleBackgroundJobs.redis_password", "value": secret,
                             "force": True})
    assert r["ok"] is True
    assert send("setting.get", {"name": "GnuPG.password"})["result"]["value"] == "*****"
    assert send("setting.get", {"name": "Proxy.password"})["result"]["set"] is True
    send("setting.list")
    send("setting.report")
    send("diagnostics.run")
    rc, out, err = stack.adminctl("setting", "get", "GnuPG.password")
    assert rc == 0 and "*****" in out
    replies.append((out + err).encode())
    rc, out, err = stack.adminctl("settings", "report")
    replies.append((out + err).encode())
    assert send("setting.reset", {"name": "Proxy.password"})["ok"]
    assert send("setting.set", {"name": "debug", "value": "0"})["ok"]
    sub.pump(0.5)

    # audit rows: masked on both sides
    rows = audit_rows(stack, model="Server", action="serverSettingsEdit")
    changes = [r["change"] for r in rows]
    assert "GnuPG.password () => (*****)" in changes
    assert "GnuPG.password (*****) => (*****)" in changes
    assert "Proxy.password (*****) => ()" in changes
    # stored sealed
    stored = stack.rows("SELECT value FROM settings WHERE name = 'GnuPG.password'")[0]["value"]
    assert stored.startswith("enc:v1:")

    # nowhere in clear: every table of the database, the daemons' logs, events, replies
    for s in (secret, other):
        for t in [r[f"Tables_in_{stack.database}"] for r in stack.rows("SHOW TABLES")]:
            for row in stack.rows(f"SELECT * FROM `{t}`"):
                assert s not in repr(row) and s.encode() not in repr(row).encode(), (t, row)
        for log in stack.home.glob("*.log"):
            assert s not in log.read_text(errors="replace"), log
        for topic, body in sub.raw:
            assert s.encode() not in topic + body
        for body in replies:
            assert s.encode() not in body
    engine_log = (stack.home / "engine.log").read_text()
    assert "debug is 1: logging at debug level" in engine_log
    assert " debug reply " in engine_log  # the debug lines really were written
    assert len(sub.events("setting.GnuPG.password.changed")) == 2
