"""Roles end to end: the wire and adminctl against the real stack, and what they leave in
MariaDB (roles, logs) and on the event stream."""

import hashlib
import hmac
import json
import secrets
import string

from helpers import admin, assert_error, audit_rows, ctl_json
from test_events import next_event, subscriber, wait_subscribed

EXTRA = ("delegate", "sync", "admin", "audit", "auth", "site_admin", "regexp_access", "tagger",
         "template", "sharing_group", "tag_editor")
LEVELS = ("perm_add", "perm_modify", "perm_modify_org", "perm_publish")
ROLE_FIELDS = {"id", "name", "permission", "perms", "default_role", "user_count", "created",
               "modified"}
SEEDED = {"admin": ("publish", list(EXTRA)),
          "Org Admin": ("publish", ["delegate", "admin", "audit", "auth", "tagger", "template",
                                    "sharing_group"]),
          "User": ("manage_org", ["auth"]),
          "Publisher": ("publish", ["delegate", "audit", "auth", "tagger"]),
          "Sync user": ("publish", ["delegate", "sync", "audit", "auth", "tagger",
                                    "sharing_group"]),
          "Read Only": ("read_only", ["audit", "auth"])}


def role_row(stack, name):
    rows = stack.rows("SELECT * FROM roles WHERE name = %s", name)
    assert len(rows) == 1, f"{len(rows)} rows for role {name!r}"
    return rows[0]


def flags(row):
    """The set of flags a roles row has set, by column name."""
    return {c for c in (*LEVELS, *(f"perm_{p}" for p in EXTRA)) if row[c]}


def state(stack):
    """Everything a refused role command must leave as it was."""
    return (stack.rows("SELECT * FROM roles ORDER BY id"), stack.count("logs"),
            stack.rows("SELECT id, role_id FROM users ORDER BY id"))


def add_user(stack, email, role_id, with_key=False):
    """A user of the host organisation (by SQL: user.add comes with the rest of issue 5);
    with_key gives it an authkey the engine accepts. Returns the raw key or None."""
    stack.rows("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
               "VALUES (%s, 1, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))", email, role_id)
    if not with_key:
        return None
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    uid = stack.rows("SELECT id FROM users WHERE email = %s", email)[0]["id"]
    stack.rows("INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, created) "
               "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))", uid,
               hmac.new(secret, key.encode(), hashlib.sha256).digest(), key[:4], key[-4:])
    return key


def test_seeded_roles_listed_and_viewed(stack):
    before = stack.counts()
    listed = stack.ok("role.list")
    assert listed["total"] == 6 and listed["page"] == 1
    by_name = {r["name"]: r for r in listed["items"]}
    assert set(by_name) == set(SEEDED)
    assert [r["id"] for r in listed["items"]] == sorted(r["id"] for r in listed["items"])
    for name, (level, perms) in SEEDED.items():
        r = by_name[name]
        assert set(r) == ROLE_FIELDS, sorted(r)
        assert (r["permission"], r["perms"]) == (level, perms), (name, r)
        assert r["default_role"] is (name == "User"), r
        assert stack.ok("role.view", {"role": name}) == r
        assert stack.ok("role.view", {"role": str(r["id"])}) == r
    assert by_name["admin"]["user_count"] == 1  # the site administrator --init created
    assert stack.counts() == before  # reads leave no trace


def test_add_view_edit_delete(stack):
    me = admin(stack)
    sub = subscriber(stack, "audit.Role.", "audit.Organisation.")
    wait_subscribed(stack, sub)

    role = stack.ok("role.add", {"name": "Analyst", "permission": "manage_org",
                                 "perms": ["tagger", "audit"]})
    assert set(role) == ROLE_FIELDS
    assert role["name"] == "Analyst" and role["permission"] == "manage_org"
    assert role["perms"] == ["audit", "tagger"]  # in the catalog's order
    assert role["default_role"] is False and role["user_count"] == 0
    row = role_row(stack, "Analyst")
    assert row["id"] == role["id"] and row["default_role"] == 0
    assert flags(row) == {"perm_add", "perm_modify", "perm_modify_org", "perm_audit",
                          "perm_tagger"}
    topic, ev = next_event(sub)
    assert topic == "audit.Role.add"
    assert ev["data"] == {"model": "Role", "id": role["id"], "action": "add",
                          "user_id": me["id"]}

    assert stack.ok("role.view", {"role": "Analyst"}) == role
    assert stack.ok("role.view", {"role": str(role["id"])}) == role

    # edit: a new level, one flag more, one less, a new name
    edited = stack.ok("role.edit", {"role": "Analyst", "name": "Senior Analyst",
                                    "permission": "publish", "perms": ["delegate"],
                                    "no_perms": ["tagger"]})
    assert edited["id"] == role["id"] and edited["name"] == "Senior Analyst"
    assert edited["permission"] == "publish" and edited["perms"] == ["delegate", "audit"]
    assert edited["modified"] >= role["modified"]
    assert flags(role_row(stack, "Senior Analyst")) == {
        "perm_add", "perm_modify", "perm_modify_org", "perm_publish", "perm_delegate",
        "perm_audit"}
    assert next_event(sub)[0] == "audit.Role.edit"

    # nothing to change: no write, no audit row, no event
    logs = stack.count("logs")
    same = stack.ok("role.edit", {"role": "Senior Analyst", "permission": "publish",
                                  "perms": ["audit"]})
    assert same["perms"] == edited["perms"] and stack.count("logs") == logs
    assert next_event(sub, 0.5) is None

    # down to read only
    ro = stack.ok("role.edit", {"role": str(role["id"]), "permission": "read_only"})
    assert ro["permission"] == "read_only"
    assert flags(role_row(stack, "Senior Analyst")) == {"perm_delegate", "perm_audit"}
    assert next_event(sub)[0] == "audit.Role.edit"

    gone = stack.ok("role.delete", {"role": "Senior Analyst"})
    assert gone == {"id": role["id"], "name": "Senior Analyst"}
    assert stack.count("roles", "id = %s", role["id"]) == 0
    assert next_event(sub)[0] == "audit.Role.delete"
    assert_error(stack.cmd("role.view", {"role": "Senior Analyst"}), "not_found", "role")

    # one audit row per change, in MISP's shape
    logs = audit_rows(stack, model="Role", model_id=role["id"])
    assert [r["action"] for r in logs] == ["add", "edit", "edit", "delete"], logs
    for r in logs:
        assert r["email"] == me["email"] and r["org"] == me["org_name"], r
        assert r["user_id"] == me["id"], r
    assert logs[0]["title"] == f"Role ({role['id']}): Analyst"
    assert logs[0]["change"] == ("name () => (Analyst), perm_add () => (1), perm_modify () => "
                                 "(1), perm_modify_org () => (1), perm_audit () => (1), "
                                 "perm_tagger () => (1)")
    assert logs[1]["change"] == ("name (Analyst) => (Senior Analyst), perm_publish (0) => (1), "
                                 "perm_delegate (0) => (1), perm_tagger (1) => (0)")
    assert logs[2]["change"] == ("perm_add (1) => (0), perm_modify (1) => (0), "
                                 "perm_modify_org (1) => (0), perm_publish (1) => (0)")
    assert logs[3]["title"] == f"Role ({role['id']}): Senior Analyst"
    assert "name (Senior Analyst) => ()" in logs[3]["change"]
    assert "perm_audit (1) => ()" in logs[3]["change"]


def test_add_defaults_to_read_only(stack):
    r = stack.ok("role.add", {"name": "Viewer"})
    assert r["permission"] == "read_only" and r["perms"] == []
    assert flags(role_row(stack, "Viewer")) == set()
    log = audit_rows(stack, model="Role", action="add", model_id=r["id"])
    assert [x["change"] for x in log] == ["name () => (Viewer)"]


def test_set_default(stack):
    sub = subscriber(stack, "audit.Role.", "audit.Organisation.")
    wait_subscribed(stack, sub)
    user = role_row(stack, "User")
    assert user["default_role"] == 1
    pub = stack.ok("role.set_default", {"role": "Publisher"})
    assert pub["name"] == "Publisher" and pub["default_role"] is True
    defaults = stack.rows("SELECT name FROM roles WHERE default_role = 1")
    assert defaults == [{"name": "Publisher"}]
    edits = audit_rows(stack, model="Role", action="edit")
    assert [(r["model_id"], r["change"]) for r in edits] == [
        (user["id"], "default_role (1) => (0)"), (pub["id"], "default_role (0) => (1)")]
    topics = {next_event(sub)[0], next_event(sub)[0]}
    assert topics == {"audit.Role.edit"}
    listed = stack.ok("role.list")["items"]
    assert [r["name"] for r in listed if r["default_role"]] == ["Publisher"]

    # again: nothing changes
    logs = stack.count("logs")
    assert stack.ok("role.set_default", {"role": str(pub["id"])})["default_role"] is True
    assert stack.count("logs") == logs
    assert next_event(sub, 0.5) is None

    # the default role cannot be deleted; the former default now can
    before = state(stack)
    err = assert_error(stack.cmd("role.delete", {"role": "Publisher"}), "conflict", "role")
    assert "default" in err["message"]
    assert state(stack)[0] == before[0]
    assert stack.ok("role.delete", {"role": "User"})["name"] == "User"


def test_refusals_change_nothing(stack):
    stack.ok("role.add", {"name": "Analyst", "perms": ["audit"]})
    staffed = stack.ok("role.add", {"name": "Staffed", "perms": ["auth"]})
    add_user(stack, "member@roles.test", staffed["id"])
    before = state(stack)

    cases = [
        # unknown role
        ("role.view", {"role": "Nobody"}, "not_found", "role"),
        ("role.view", {"role": "999"}, "not_found", "role"),
        ("role.edit", {"role": "Nobody", "name": "X"}, "not_found", "role"),
        ("role.delete", {"role": "Nobody"}, "not_found", "role"),
        ("role.set_default", {"role": "Nobody"}, "not_found", "role"),
        # duplicate names (MariaDB's collation: case does not matter)
        ("role.add", {"name": "Analyst"}, "conflict", "name"),
        ("role.add", {"name": "analyst"}, "conflict", "name"),
        ("role.edit", {"role": "Staffed", "name": "Analyst"}, "conflict", "name"),
        # in use, and the default
        ("role.delete", {"role": "Staffed"}, "conflict", "role"),
        ("role.delete", {"role": "User"}, "conflict", "role"),
        # bad names
        ("role.add", {"name": "X", "permission": "god"}, "invalid", "permission"),
        ("role.add", {"name": "X", "perms": ["tagger", "superpowers"]}, "invalid", "perms"),
        ("role.add", {"name": "X", "perms": ["audit", "audit"]}, "invalid", "perms"),
        ("role.add", {"name": "X", "perms": "tagger"}, "invalid", "perms"),
        ("role.edit", {"role": "Analyst", "no_perms": ["nope"]}, "invalid", "no_perms"),
        ("role.add", {"name": "1234"}, "invalid", "name"),
        ("role.add", {"name": ""}, "invalid", "name"),
        ("role.add", {"name": "x" * 101}, "invalid", "name"),
        # contradictions
        ("role.add", {"name": "X", "perms": ["site_admin"]}, "invalid", "perms"),
        ("role.add", {"name": "X", "perms": ["sync"]}, "invalid", "perms"),
        ("role.edit", {"role": "Analyst", "perms": ["site_admin"]}, "invalid", "perms"),
        ("role.edit", {"role": "admin", "no_perms": ["admin"]}, "invalid", "no_perms"),
        ("role.edit", {"role": "Sync user", "no_perms": ["auth"]}, "invalid", "no_perms"),
        ("role.edit", {"role": "Analyst", "perms": ["audit"], "no_perms": ["audit"]},
         "invalid", "no_perms"),
        # the last site administrators keep their powers
        ("role.edit", {"role": "admin", "no_perms": ["site_admin"]}, "conflict", "no_perms"),
        ("role.edit", {"role": "admin", "no_perms": ["auth"]}, "invalid", "no_perms"),  # sync needs it
    ]
    for type_, args, code, field in cases:
        err = assert_error(stack.cmd(type_, args), code, field)
        assert err["message"], (type_, args)
    assert state(stack)[0] == before[0] and state(stack)[2] == before[2]
    assert stack.count("logs") == before[1]  # no audit row for any of them
    # a refused delete of a role in use says how many users hold it
    err = assert_error(stack.cmd("role.delete", {"role": "Staffed"}), "conflict", "role")
    assert "1 user" in err["message"], err


def test_site_admin_role_may_lose_powers_only_while_another_admin_remains(stack):
    me = admin(stack)
    chief = stack.ok("role.add", {"name": "Chief", "perms": ["admin", "site_admin", "auth"]})
    stack.rows("UPDATE users SET role_id = %s WHERE id = %s", chief["id"], me["id"])
    before = state(stack)
    # the only site administrator's role can lose neither site_admin nor auth
    for perm in ("site_admin", "auth"):
        err = assert_error(stack.cmd("role.edit", {"role": "Chief", "no_perms": [perm]}),
                           "conflict", "no_perms")
        assert "no enabled site administrator" in err["message"], err
    # nor can it once its other site administrator is disabled
    add_user(stack, "deputy@roles.test", 1)
    stack.rows("UPDATE users SET disabled = 1 WHERE email = 'deputy@roles.test'")
    assert_error(stack.cmd("role.edit", {"role": "Chief", "no_perms": ["auth"]}), "conflict",
                 "no_perms")
    assert state(stack)[0] == before[0] and stack.count("logs") == before[1]
    # an enabled site administrator in another role: now it may
    stack.rows("UPDATE users SET disabled = 0 WHERE email = 'deputy@roles.test'")
    r = stack.ok("role.edit", {"role": "Chief", "no_perms": ["site_admin"]})
    assert r["perms"] == ["admin", "auth"]
    assert role_row(stack, "Chief")["perm_site_admin"] == 0


def test_only_site_admins_change_roles(stack):
    key = add_user(stack, "user@roles.test", 3, with_key=True)  # the seeded role User
    assert stack.ok("auth.whoami", auth=key)["role"]["site_admin"] is False
    # Anyone may read the roles (MISP shows them to every user) ...
    assert stack.ok("role.list", {}, auth=key)["total"] == 6
    assert stack.ok("role.view", {"role": "User"}, auth=key)["name"] == "User"
    before = state(stack)
    # ... but only site admins change them.
    for type_, args in (("role.add", {"name": "Mine"}),
                        ("role.edit", {"role": "User", "perms": ["site_admin", "admin"]}),
                        ("role.delete", {"role": "Read Only"}),
                        ("role.set_default", {"role": "admin"})):
        assert_error(stack.cmd(type_, args, auth=key), "forbidden")
    assert state(stack) == before


def test_adminctl(stack):
    role = ctl_json(stack, "role", "add", "--name", "Analyst", "--permission", "manage_org",
                    "--perm", "tagger", "--perm", "audit")
    assert role["permission"] == "manage_org" and role["perms"] == ["audit", "tagger"]
    assert flags(role_row(stack, "Analyst")) == {"perm_add", "perm_modify", "perm_modify_org",
                                                 "perm_audit", "perm_tagger"}
    assert ctl_json(stack, "role", "view", "Analyst") == role
    assert ctl_json(stack, "role", "view", str(role["id"])) == role

    edited = ctl_json(stack, "role", "edit", "Analyst", "--no-perm", "tagger", "--perm",
                      "sharing_group", "--perms=tag_editor")
    assert edited["perms"] == ["audit", "sharing_group", "tag_editor"]
    assert flags(role_row(stack, "Analyst")) >= {"perm_sharing_group", "perm_tag_editor"}

    listed = ctl_json(stack, "roles", "list")
    assert "Analyst" in [r["name"] for r in listed["items"]] and listed["total"] == 7

    # the human output: a table with the flags joined, key: value lines for one role
    rc, out, err = stack.adminctl("role", "list")
    assert rc == 0, (rc, out, err)
    assert "PERMISSION" in out and "audit, sharing_group, tag_editor" in out, out
    rc, out, err = stack.adminctl("role", "view", "Analyst")
    assert rc == 0 and "manage_org" in out and "sharing_group" in out, (rc, out, err)

    assert ctl_json(stack, "role", "set-default", "Analyst")["default_role"] is True
    assert stack.rows("SELECT name FROM roles WHERE default_role = 1") == [{"name": "Analyst"}]

    # refusals: exit 1 with the code and field; nothing changed
    before = state(stack)
    rc, out, err = stack.adminctl("--json", "role", "delete", "Analyst")
    assert rc == 1, (rc, out, err)
    e = json.loads(out)["error"]
    assert (e["code"], e["field"]) == ("conflict", "role"), e
    rc, out, err = stack.adminctl("role", "add", "--name", "Analyst")
    assert rc == 1 and "conflict" in err and "(field: name)" in err, (rc, out, err)
    rc, out, err = stack.adminctl("role", "add", "--name", "Boss", "--perm", "site_admin")
    assert rc == 1 and "invalid" in err and "(field: perms)" in err, (rc, out, err)
    rc, out, err = stack.adminctl("role", "view", "Nobody")
    assert rc == 1 and "not_found" in err, (rc, out, err)

    # usage errors (exit 2, nothing sent)
    for argv in (("role", "add", "--name", "X", "--perm", "superpowers"),
                 ("role", "add", "--name", "X", "--perm", "audit", "--perm", "audit"),
                 ("role", "add", "--name", "X", "--permission", "god"),
                 ("role", "add", "--name", "X", "--no-perm", "audit"),
                 ("role", "edit", "Analyst", "--no-perm", "nope"),
                 ("role", "add", "--perm", "audit")):
        rc, out, err = stack.adminctl(*argv)
        assert rc == 2 and err.strip(), (argv, rc, out, err)
    rc, out, err = stack.adminctl("role", "add", "--name", "X", "--perm", "superpowers")
    assert "--perm must be one of: delegate, sync, admin" in err, err
    assert state(stack) == before

    # help names the repeatable flag and its choices
    rc, out, err = stack.adminctl("role", "edit", "--help")
    assert rc == 0 and "[--perm NAME]..." in out and "[--no-perm NAME]..." in out, out
    assert "site_admin" in out and "tag_editor" in out
