"""Organisations end to end: adminctl and a Python client against the real stack, and the
rows they leave in MariaDB (organisations, logs)."""

import json
import time
import uuid

from helpers import UUID_LOWER, admin, assert_error, audit_rows, ctl_json

ORG_FIELDS = {"id", "uuid", "name", "description", "nationality", "sector", "type", "contacts",
              "local", "created_by", "date_created", "date_modified", "user_count"}


def org_row(stack, name):
    rows = stack.rows("SELECT * FROM organisations WHERE name = %s", name)
    assert len(rows) == 1, f"{len(rows)} rows for organisation {name!r}"
    return rows[0]


def test_add_view_edit_delete_with_adminctl(stack):
    me = admin(stack)
    before_ms = int(time.time() * 1000) - 2000

    org = ctl_json(stack, "org", "add", "--name", "CIRCL", "--nationality", "LU",
                   "--sector", "CERT", "--type", "CSIRT", "--description", "Luxembourg CERT")
    assert ORG_FIELDS <= set(org), sorted(org)
    assert org["name"] == "CIRCL" and org["nationality"] == "LU" and org["sector"] == "CERT"
    assert org["type"] == "CSIRT" and org["local"] is True and org["user_count"] == 0
    assert UUID_LOWER.match(org["uuid"]), org["uuid"]
    assert org["created_by"] == me["id"]
    assert before_ms <= org["date_created"] <= int(time.time() * 1000) + 2000

    row = org_row(stack, "CIRCL")
    assert row["id"] == org["id"] and row["uuid"] == org["uuid"]
    assert (row["nationality"], row["sector"], row["type"]) == ("LU", "CERT", "CSIRT")
    assert row["description"] == "Luxembourg CERT" and row["local"] == 1
    assert row["created_by"] == me["id"]

    # view by name, id and uuid: the same organisation; reads leave no trace
    before_reads = stack.counts()
    for ref in ("CIRCL", str(org["id"]), org["uuid"]):
        assert ctl_json(stack, "org", "view", ref) == org

    assert stack.counts() == before_reads

    # edit
    edited = ctl_json(stack, "org", "edit", "CIRCL", "--description", "Computer Incident Response")
    assert edited["description"] == "Computer Incident Response"
    assert edited["uuid"] == org["uuid"] and edited["id"] == org["id"]
    assert org_row(stack, "CIRCL")["description"] == "Computer Incident Response"

    # the human output works too (a table / key-value listing, exit 0)
    rc, out, err = stack.adminctl("org", "view", "CIRCL")
    assert rc == 0 and "CIRCL" in out, (rc, out, err)
    rc, out, err = stack.adminctl("org", "list")
    assert rc == 0 and "CIRCL" in out, (rc, out, err)

    deleted = ctl_json(stack, "org", "delete", "CIRCL")
    assert deleted == {"id": org["id"], "uuid": org["uuid"], "name": "CIRCL"}
    assert stack.count("organisations", "name = %s", "CIRCL") == 0

    # one audit row per change, in MISP's shape
    logs = audit_rows(stack, model="Organisation", model_id=org["id"])
    assert [r["action"] for r in logs] == ["add", "edit", "delete"], logs
    for r in logs:
        assert r["email"] == me["email"] and r["org"] == me["org_name"], r
        assert r["user_id"] == me["id"] and r["title"], r
    assert "name () => (CIRCL)" in logs[0]["change"], logs[0]["change"]
    assert "description (Luxembourg CERT) => (Computer Incident Response)" in logs[1]["change"]


def test_python_client_and_uuid_rules(stack):
    given = "5F6C3A1E-8B2D-4C1A-9E7F-0A1B2C3D4E5F"
    kept = stack.ok("org.add", {"name": "Kept", "uuid": given.lower(), "local": False,
                                "contacts": "soc@example.org"})
    assert kept["uuid"] == given.lower() and kept["local"] is False
    assert org_row(stack, "Kept")["uuid"] == given.lower()
    assert org_row(stack, "Kept")["contacts"] == "soc@example.org"

    made = stack.ok("org.add", {"name": "Generated"})
    assert UUID_LOWER.match(made["uuid"]) and made["uuid"] != kept["uuid"]
    assert org_row(stack, "Generated")["uuid"] == made["uuid"]
    assert made["local"] is True  # the default on add

    assert stack.ok("org.view", {"org": made["uuid"]}) == made
    assert stack.ok("org.view", {"org": str(made["id"])}) == made

    changed = stack.ok("org.edit", {"org": "Generated", "name": "Renamed", "sector": "Finance"})
    assert changed["name"] == "Renamed" and changed["sector"] == "Finance"
    assert changed["date_modified"] >= made["date_modified"]
    row = org_row(stack, "Renamed")
    assert row["sector"] == "Finance" and row["uuid"] == made["uuid"]
    edit_log = audit_rows(stack, model="Organisation", action="edit", model_id=made["id"])
    assert len(edit_log) == 1
    assert "name (Generated) => (Renamed)" in edit_log[0]["change"]
    assert "sector () => (Finance)" in edit_log[0]["change"]

    gone = stack.ok("org.delete", {"org": made["uuid"]})
    assert gone == {"id": made["id"], "uuid": made["uuid"], "name": "Renamed"}
    assert stack.count("organisations", "id = %s", made["id"]) == 0
    assert_error(stack.cmd("org.view", {"org": "Renamed"}), "not_found")


def test_conflicts(stack):
    a = stack.ok("org.add", {"name": "Alpha"})
    b = stack.ok("org.add", {"name": "Beta"})
    before = stack.counts()

    assert_error(stack.cmd("org.add", {"name": "Alpha"}), "conflict", "name")
    assert_error(stack.cmd("org.add", {"name": "Gamma", "uuid": a["uuid"]}), "conflict", "uuid")
    assert_error(stack.cmd("org.edit", {"org": "Beta", "name": "Alpha"}), "conflict", "name")
    # names compare as MariaDB compares them (case-insensitive collation)
    assert_error(stack.cmd("org.add", {"name": "alpha"}), "conflict", "name")
    # A conflict changes nothing, but its reply is stored under its id (protocol.md), so a
    # retry of the same command sees the same conflict.
    assert stack.counts() == dict(before, command_ids=before["command_ids"] + 4)
    before = stack.counts()
    assert org_row(stack, "Beta")["id"] == b["id"]

    # the CLI says the same with exit code 1
    rc, out, err = stack.adminctl("--json", "org", "add", "--name", "Alpha")
    assert rc == 1, (rc, out, err)
    doc = json.loads(out) if out.strip() else {}
    if doc:
        e = doc.get("error", doc)
        assert e["code"] == "conflict" and e.get("field") == "name", doc
    assert stack.counts() == dict(before, command_ids=before["command_ids"] + 1)


def test_delete_refused_for_host_org_and_org_with_users(stack):
    me = admin(stack)
    before = stack.counts()
    err = assert_error(stack.cmd("org.delete", {"org": str(me["org_id"])}), "conflict")
    assert "host" in err["message"].lower(), err
    assert stack.count("organisations", "id = %s", me["org_id"]) == 1

    org = stack.ok("org.add", {"name": "Staffed"})
    stack.rows("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
               "VALUES ('analyst@staffed.example', %s, 3, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
               org["id"])
    assert stack.ok("org.view", {"org": "Staffed"})["user_count"] == 1
    listed = stack.ok("org.list", {"scope": "all"})["items"]
    assert [o["user_count"] for o in listed if o["name"] == "Staffed"] == [1]

    after_add = stack.counts()
    assert after_add["organisations"] == before["organisations"] + 1
    assert_error(stack.cmd("org.delete", {"org": "Staffed"}), "conflict")
    assert stack.counts() == dict(after_add, command_ids=after_add["command_ids"] + 1)
    rc, _, _ = stack.adminctl("org", "delete", "Staffed")
    assert rc == 1
    assert stack.count("organisations", "name = 'Staffed'") == 1


def test_list_scopes_and_paging(stack):
    me = admin(stack)
    for i in range(5):
        stack.ok("org.add", {"name": f"Local {i}"})
    for i in range(3):
        stack.ok("org.add", {"name": f"Remote {i}", "local": False})

    def names(res):
        return [o["name"] for o in res["items"]]

    local = stack.ok("org.list", {})
    assert local["total"] == 6 and local["page"] == 1  # 5 + the host organisation
    assert set(names(local)) == {me["org_name"], *(f"Local {i}" for i in range(5))}
    assert names(local) == sorted(names(local), key=str.lower)  # ordered by name
    assert all(o["local"] is True for o in local["items"])

    for scope in ("external", "remote"):
        ext = stack.ok("org.list", {"scope": scope})
        assert ext["total"] == 3 and set(names(ext)) == {f"Remote {i}" for i in range(3)}
    everything = stack.ok("org.list", {"scope": "all"})
    assert everything["total"] == 9 == stack.count("organisations")
    assert {o["id"] for o in everything["items"]} == {
        r["id"] for r in stack.rows("SELECT id FROM organisations")}
    for o in everything["items"]:
        assert set(o) >= ORG_FIELDS

    pages = [stack.ok("org.list", {"scope": "all", "limit": 4, "page": p}) for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [4, 4, 1]
    assert all(p["total"] == 9 and p["limit"] == 4 for p in pages)
    assert sum((names(p) for p in pages), []) == names(everything)

    listed = ctl_json(stack, "org", "list", "--scope", "external")
    assert {o["name"] for o in listed["items"]} == {f"Remote {i}" for i in range(3)}


def test_adminctl_json_and_exit_codes(stack):
    # 0: done, and --json parses
    org = ctl_json(stack, "org", "add", "--name", "Exit Codes Inc")
    assert org["name"] == "Exit Codes Inc"
    assert isinstance(ctl_json(stack, "whoami"), dict)

    # 1: refused by the engine (not found; invalid from the engine)
    rc, out, err = stack.adminctl("org", "view", "No Such Org")
    assert rc == 1, (rc, out, err)
    assert "not_found" in out + err or "not found" in (out + err).lower()

    # 2: usage errors (caught before anything is sent)
    for argv in (("org",), ("org", "frobnicate"), ("org", "add"), ("org", "add", "--name"),
                 ("org", "add", "--name", "X", "--colour", "red"), ("--timeout", "soon", "whoami")):
        rc, out, err = stack.adminctl(*argv)
        assert rc == 2, (argv, rc, out, err)
        assert err.strip(), argv

    # 3: nothing listens there
    dead = f"tcp://127.0.0.1:{_dead_port()}"
    t0 = time.monotonic()
    rc, out, err = stack.adminctl("--timeout", "1", "whoami", url=dead)
    assert rc == 3, (rc, out, err)
    assert time.monotonic() - t0 < 15
    assert err.strip()

    # a wrong key is a refusal, not a usage error
    rc, out, err = stack.adminctl("whoami", key="x" * 40)
    assert rc == 1, (rc, out, err)

    # nothing above wrote anything but one organisation (+ its audit row, + 1 auth_fail)
    assert stack.count("organisations", "name = 'Exit Codes Inc'") == 1
    assert stack.count("logs", "action = 'auth_fail'") == 1


def test_adminctl_help(stack):
    rc, out, err = stack.adminctl("--help")
    assert rc == 0 and "org" in out, (rc, out, err)
    rc, out, err = stack.adminctl("org", "add", "--help")
    assert rc == 0 and "--name" in out and "--nationality" in out, (rc, out, err)


def test_uuid_from_cli_kept(stack):
    u = str(uuid.uuid4())
    org = ctl_json(stack, "org", "add", "--name", "With UUID", "--uuid", u)
    assert org["uuid"] == u
    assert org_row(stack, "With UUID")["uuid"] == u
    add = audit_rows(stack, model="Organisation", action="add", model_id=org["id"])
    assert len(add) == 1 and f"uuid () => ({u})" in add[0]["change"]


def _dead_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
