"""Users end to end: the wire and adminctl against the real stack, and what they leave in
MariaDB (users, auth_keys, logs, command_ids) and on the event stream. Passwords given or
generated must appear nowhere but in the one reply that hands a generated one out."""

import hashlib
import json

import msgpack

from helpers import admin, assert_error, audit_rows, ctl_json
from test_events import next_event, subscriber, wait_subscribed
from test_role import add_user

USER_FIELDS = {"id", "email", "org_id", "org", "role_id", "role", "autoalert", "contactalert",
               "nids_sid", "termsaccepted", "change_pw", "disabled", "last_login", "created",
               "modified", "gpgkey_fingerprint"}
GOOD_PW = "Correct-Horse-42-battery"


def user_row(stack, email):
    rows = stack.rows("SELECT * FROM users WHERE email = %s", email)
    assert len(rows) == 1, f"{len(rows)} rows for user {email!r}"
    return rows[0]


def state(stack):
    """Everything a refused user command must leave as it was."""
    return (stack.rows("SELECT * FROM users ORDER BY id"), stack.count("logs"),
            stack.count("auth_keys"))


def drain(sock):
    out = []
    while (ev := next_event(sock, 0.5)) is not None:
        out.append(ev)
    return out


def test_add_with_password_and_generated(stack):
    me = admin(stack)
    sub = subscriber(stack, "audit.User.", "audit.Organisation.")
    wait_subscribed(stack, sub)

    ana = stack.ok("user.add", {"email": "ana@circl.lu", "org": me["org_name"], "role": "User",
                                "password": GOOD_PW, "nids_sid": 4000000,
                                "contactalert": True})
    assert set(ana) == USER_FIELDS  # no password in the reply when one was given
    assert ana["email"] == "ana@circl.lu" and ana["org"] == me["org_name"]
    assert ana["role"] == "User" and ana["nids_sid"] == 4000000
    assert ana["autoalert"] is True and ana["contactalert"] is True
    assert ana["change_pw"] is True and ana["disabled"] is False
    assert ana["last_login"] is None
    row = user_row(stack, "ana@circl.lu")
    assert row["password"].startswith("$y$") and GOOD_PW not in row["password"]
    assert row["change_pw"] == 1 and row["nids_sid"] == 4000000
    topic, ev = next_event(sub)
    assert topic == "audit.User.add"
    assert ev["data"] == {"model": "User", "id": ana["id"], "action": "add",
                          "user_id": me["id"]}
    log = audit_rows(stack, model="User", action="add", model_id=ana["id"])[0]
    assert log["title"] == f"User ({ana['id']}): ana@circl.lu"
    assert "password () => (*****)" in log["change"]
    assert "email () => (ana@circl.lu)" in log["change"]

    # no password, no role: the default role, a generated password shown once, a random SID
    bob = stack.ok("user.add", {"email": "bob@circl.lu", "org": str(me["org_id"])})
    pw = bob.pop("password")
    assert set(bob) == USER_FIELDS and bob["role"] == "User" and bob["change_pw"] is True
    assert len(pw) >= 40
    assert 1000000 <= bob["nids_sid"] <= 9999900
    row = user_row(stack, "bob@circl.lu")
    assert row["password"].startswith("$y$") and pw not in row["password"]
    assert "password" not in stack.ok("user.view", {"user": "bob@circl.lu"})
    assert next_event(sub)[0] == "audit.User.add"

    # a re-sent command id is answered from the store, with the password masked
    cid = "6f1c1d9e-3b7a-4c2e-9a55-0c6a2f3b1e01"
    first = stack.cmd("user.add", {"email": "cy@circl.lu", "org": me["org_name"]}, id=cid)
    again = stack.cmd("user.add", {"email": "cy@circl.lu", "org": me["org_name"]}, id=cid)
    cy_pw = first["result"]["password"]
    assert again["result"]["password"] == "*" * len(cy_pw)
    assert stack.count("users", "email = 'cy@circl.lu'") == 1
    for p in (GOOD_PW, pw, cy_pw):
        assert stack.count("command_ids", "INSTR(reply, %s) > 0", p) == 0


def test_stored_digest_is_keyed(stack):
    """command_ids keeps a digest of the arguments, which may hold a password: it is keyed
    with the server secret, not a plain SHA-256 anyone could test guesses against."""
    me = admin(stack)
    args = {"email": "dig@circl.lu", "org": me["org_name"], "password": GOOD_PW}
    cid = "0d5b1f0e-8d63-4f0c-a0f3-5b8a1a9c7e42"
    stack.ok("user.add", args, id=cid)
    stored = stack.rows("SELECT digest FROM command_ids WHERE cmd_id = %s", cid)[0]["digest"]
    plain = hashlib.sha256(b"user.add\0" + msgpack.packb(args, use_bin_type=True)).digest()
    assert len(stored) == 32 and stored != plain
    # the same id and arguments again: still recognised as the same command
    assert stack.ok("user.add", args, id=cid)["email"] == "dig@circl.lu"
    assert stack.count("users", "email = 'dig@circl.lu'") == 1


def test_list_view_edit_disable_enable_delete_change_pw(stack):
    me = admin(stack)
    org = stack.ok("org.add", {"name": "CIRCL"})
    sub = subscriber(stack, "audit.User.", "audit.Organisation.")
    wait_subscribed(stack, sub)
    ana = stack.ok("user.add", {"email": "ana@circl.lu", "org": "CIRCL", "role": "Publisher",
                                "password": GOOD_PW})
    stack.ok("user.add", {"email": "zed@other.test", "org": me["org_name"],
                          "password": GOOD_PW, "disabled": True})
    drain(sub)

    listed = stack.ok("user.list")
    assert listed["total"] == 3 and listed["page"] == 1 and listed["limit"] == 100
    assert [u["id"] for u in listed["items"]] == sorted(u["id"] for u in listed["items"])
    circl = stack.ok("user.list", {"org": "CIRCL"})
    assert circl["total"] == 1 and circl["items"][0]["email"] == "ana@circl.lu"
    assert stack.ok("user.list", {"org": str(org["id"])}) == circl
    assert stack.ok("user.list", {"disabled": True})["items"][0]["email"] == "zed@other.test"
    assert stack.ok("user.list", {"role": "Publisher"})["total"] == 1
    assert stack.ok("user.list", {"limit": 1, "page": 2})["items"][0]["email"] == "ana@circl.lu"
    assert stack.ok("user.view", {"user": str(ana["id"])}) == ana
    assert stack.ok("user.view", {"user": "ANA@circl.lu"}) == ana  # case-insensitive

    ed = stack.ok("user.edit", {"user": "ana@circl.lu", "email": "ana.b@circl.lu",
                                "org": me["org_name"], "role": "User", "autoalert": False,
                                "termsaccepted": True, "nids_sid": 5000000})
    assert ed["email"] == "ana.b@circl.lu" and ed["role"] == "User" and ed["org_id"] == 1
    assert ed["autoalert"] is False and ed["termsaccepted"] is True
    row = user_row(stack, "ana.b@circl.lu")
    assert (row["autoalert"], row["termsaccepted"], row["nids_sid"]) == (0, 1, 5000000)
    log = audit_rows(stack, model="User", action="edit", model_id=ana["id"])[-1]
    assert "email (ana@circl.lu) => (ana.b@circl.lu)" in log["change"]
    assert "nids_sid (" in log["change"] and "autoalert (1) => (0)" in log["change"]
    assert log["title"] == f"User ({ana['id']}): ana.b@circl.lu"
    assert next_event(sub)[0] == "audit.User.edit"
    logs = stack.count("logs")
    stack.ok("user.edit", {"user": "ana.b@circl.lu", "autoalert": False})
    assert stack.count("logs") == logs  # nothing changed: no audit row

    assert stack.ok("user.disable", {"user": "ana.b@circl.lu"})["disabled"] is True
    assert user_row(stack, "ana.b@circl.lu")["disabled"] == 1
    assert audit_rows(stack, model="User", model_id=ana["id"])[-1]["change"] == \
        "disabled (0) => (1)"
    assert stack.ok("user.enable", {"user": "ana.b@circl.lu"})["disabled"] is False
    assert user_row(stack, "ana.b@circl.lu")["disabled"] == 0
    assert [t for t, _ in drain(sub)] == ["audit.User.edit", "audit.User.edit"]

    old_hash = user_row(stack, "ana.b@circl.lu")["password"]
    ch = stack.ok("user.change_pw", {"user": "ana.b@circl.lu", "password": "Another-Good-Pw-77",
                                     "no_password_change": True})
    assert "password" not in ch and ch["change_pw"] is False
    row = user_row(stack, "ana.b@circl.lu")
    assert row["password"] != old_hash and row["password"].startswith("$y$")
    assert row["change_pw"] == 0
    ch = stack.ok("user.change_pw", {"user": str(ana["id"])})
    assert len(ch["password"]) >= 40 and ch["change_pw"] is True
    assert user_row(stack, "ana.b@circl.lu")["change_pw"] == 1
    pwlogs = audit_rows(stack, model="User", action="change_pw", model_id=ana["id"])
    assert len(pwlogs) == 2 and pwlogs[0]["change"].startswith("password (*****) => (*****)")
    assert [t for t, _ in drain(sub)] == ["audit.User.change_pw"] * 2

    # delete: its keys go with it, its audit rows stay with the e-mail
    key = add_user(stack, "tmp@circl.lu", 3, with_key=True)
    assert key
    tmp = stack.ok("user.view", {"user": "tmp@circl.lu"})
    gone = stack.ok("user.delete", {"user": "tmp@circl.lu"})
    assert gone == {"id": tmp["id"], "email": "tmp@circl.lu", "auth_keys_deleted": 1}
    assert stack.count("users", "id = %s", tmp["id"]) == 0
    assert stack.count("auth_keys", "user_id = %s", tmp["id"]) == 0
    log = audit_rows(stack, model="User", action="delete", model_id=tmp["id"])[0]
    assert log["title"] == f"User ({tmp['id']}): tmp@circl.lu" and "auth_keys (1) => ()" in \
        log["change"]
    assert_error(stack.cmd("user.view", {"user": "tmp@circl.lu"}), "not_found", "user")
    stack.ok("user.delete", {"user": str(ana["id"])})
    assert len(audit_rows(stack, model="User", model_id=ana["id"])) >= 5  # the trail stays


def test_refusals_change_nothing(stack):
    me = admin(stack)
    stack.ok("user.add", {"email": "ana@circl.lu", "org": me["org_name"], "password": GOOD_PW})
    before = state(stack)
    org = me["org_name"]
    for type_, args, code, field in (
            ("user.add", {"email": "not-an-address", "org": org}, "invalid", "email"),
            ("user.add", {"email": "a b@x.test", "org": org}, "invalid", "email"),
            ("user.add", {"email": "a@localhost", "org": org}, "invalid", "email"),
            ("user.add", {"email": "a@@x.test", "org": org}, "invalid", "email"),
            ("user.add", {"email": "ANA@CIRCL.LU", "org": org}, "conflict", "email"),
            ("user.add", {"email": "n@x.test", "org": "Nowhere"}, "not_found", "org"),
            ("user.add", {"email": "n@x.test", "org": org, "role": "God"}, "not_found", "role"),
            ("user.add", {"email": "n@x.test", "org": org, "password": "short"}, "invalid",
             "password"),
            ("user.add", {"email": "n@x.test", "org": org, "password": "alllowercase"},
             "invalid", "password"),
            ("user.edit", {"user": "ana@circl.lu", "email": "bad"}, "invalid", "email"),
            ("user.edit", {"user": "ana@circl.lu", "email": me["email"]}, "conflict", "email"),
            ("user.edit", {"user": "ana@circl.lu", "role": "God"}, "not_found", "role"),
            ("user.change_pw", {"user": "ana@circl.lu", "password": "weakweak"}, "invalid",
             "password"),
            ("user.view", {"user": "nobody@x.test"}, "not_found", "user"),
            ("user.disable", {"user": me["email"]}, "conflict", "user"),
            ("user.delete", {"user": me["email"]}, "conflict", "user"),
            ("user.edit", {"user": me["email"], "role": "User"}, "conflict", "user"),
    ):
        err = assert_error(stack.cmd(type_, args), code, field)
        if field == "password":
            assert "12" in err["message"] or "character" in err["message"], err
    assert state(stack) == before

    # self-delete is refused even when another site admin remains; last-admin too
    stack.ok("user.add", {"email": "deputy@x.test", "org": org, "role": "admin",
                          "password": GOOD_PW})
    err = assert_error(stack.cmd("user.delete", {"user": me["email"]}), "conflict", "user")
    assert "yourself" in err["message"]
    stack.ok("user.disable", {"user": "deputy@x.test"})
    assert_error(stack.cmd("user.disable", {"user": me["email"]}), "conflict", "user")


def test_disabled_users_key_is_refused(stack):
    key = add_user(stack, "kim@x.test", 1, with_key=True)  # role 1: admin
    assert stack.ok("auth.whoami", auth=key)["user"]["email"] == "kim@x.test"
    stack.ok("user.disable", {"user": "kim@x.test"})
    fails = stack.count("logs", "action = 'auth_fail'")
    assert_error(stack.cmd("auth.whoami", auth=key), "unauthenticated")
    assert stack.count("logs", "action = 'auth_fail'") == fails + 1
    stack.ok("user.enable", {"user": "kim@x.test"})
    assert stack.ok("auth.whoami", auth=key)["user"]["email"] == "kim@x.test"


def test_plain_users_change_only_their_own_password(stack):
    """A user without perm_admin manages no user but may set their own password (the rest
    of the rules: tests/e2e/test_authz.py)."""
    key = add_user(stack, "plain@x.test", 3, with_key=True)  # role 3: User
    add_user(stack, "other@x.test", 3)
    before = state(stack)
    for type_, args in (("user.list", {}), ("user.view", {"user": "plain@x.test"}),
                        ("user.add", {"email": "n@x.test", "org": "1"})):
        assert_error(stack.cmd(type_, args, auth=key), "forbidden")
    # someone else's password: that user reads as missing, as one that does not exist
    other = assert_error(stack.cmd("user.change_pw", {"user": "other@x.test",
                                                      "password": GOOD_PW}, auth=key),
                         "not_found", "user")
    nobody = assert_error(stack.cmd("user.change_pw", {"user": "nobody@x.test",
                                                       "password": GOOD_PW}, auth=key),
                          "not_found", "user")
    assert other == nobody
    assert state(stack) == before
    mine = stack.ok("user.change_pw", {"user": "plain@x.test", "password": GOOD_PW,
                                       "no_password_change": True}, auth=key)
    assert mine["email"] == "plain@x.test" and "password" not in mine
    log = audit_rows(stack, model="User", action="change_pw", model_id=mine["id"])[-1]
    assert log["email"] == "plain@x.test" and log["org"] == "ORGNAME"


def test_passwords_appear_nowhere(stack):
    me = admin(stack)
    sub = subscriber(stack, "")
    wait_subscribed(stack, sub)
    given = "Given-Secret-Pw-9931"
    stack.ok("user.add", {"email": "ana@circl.lu", "org": me["org_name"], "password": given})
    gen = stack.ok("user.add", {"email": "bob@circl.lu", "org": me["org_name"]})["password"]
    gen2 = stack.ok("user.change_pw", {"user": "ana@circl.lu"})["password"]
    given2 = "Second-Given-Pw-5511"
    stack.ok("user.change_pw", {"user": "bob@circl.lu", "password": given2})
    assert_error(stack.cmd("user.add", {"email": "c@x.test", "org": me["org_name"],
                                        "password": "weak-" + given[:5]}), "invalid", "password")
    rc, out, err = stack.adminctl("user", "add", "--email", "dee@x.test", "--org",
                                  me["org_name"], "--password", "Cli-Given-Pw-7777x")
    assert rc == 0, (rc, out, err)
    events = drain(sub)
    assert events
    secrets_ = (given, gen, gen2, given2, "Cli-Given-Pw-7777x")
    blob = json.dumps([[t, e] for t, e in events], default=str)
    logs = json.dumps(stack.rows("SELECT * FROM logs"), default=str)
    stored = json.dumps(stack.rows("SELECT reply FROM command_ids"), default=str)
    files = "".join(p.read_text(errors="replace") for p in stack.home.glob("*.log"))
    for s in secrets_:
        assert s not in blob and s not in logs and s not in files and s not in stored, s
    hashes = [r["password"] for r in stack.rows("SELECT password FROM users") if r["password"]]
    assert len(hashes) == 3
    for h in hashes:
        assert h not in blob and h not in logs and h not in files


def test_adminctl(stack):
    me = admin(stack)
    ana = ctl_json(stack, "user", "add", "--email", "ana@circl.lu", "--org", me["org_name"],
                   "--role", "User", "--password", GOOD_PW, "--nids-sid", "4000000",
                   "--no-autoalert", "--contactalert", "--disabled")
    assert (ana["autoalert"], ana["contactalert"], ana["disabled"]) == (False, True, True)
    assert ana["nids_sid"] == 4000000 and "password" not in ana
    assert ctl_json(stack, "user", "view", "ana@circl.lu") == ana
    assert ctl_json(stack, "user", "list", "--org", me["org_name"])["total"] == 2
    assert ctl_json(stack, "user", "enable", "ana@circl.lu")["disabled"] is False
    assert ctl_json(stack, "user", "edit", "ana@circl.lu", "--termsaccepted")["termsaccepted"]
    ch = ctl_json(stack, "user", "change-pw", "ana@circl.lu", "--no-password-change")
    assert len(ch["password"]) >= 40 and ch["change_pw"] is False
    assert ctl_json(stack, "user", "disable", "ana@circl.lu")["disabled"] is True

    rc, out, err = stack.adminctl("user", "list")
    assert rc == 0 and "ana@circl.lu" in out and me["email"] in out, (rc, out, err)
    rc, out, err = stack.adminctl("user", "view", "ana@circl.lu")
    assert rc == 0 and "ana@circl.lu" in out and "4000000" in out, (rc, out, err)

    before = state(stack)
    rc, out, err = stack.adminctl("--json", "user", "add", "--email", "x@x.test", "--org",
                                  me["org_name"], "--password", "short")
    assert rc == 1, (rc, out, err)
    e = json.loads(out)["error"]
    assert (e["code"], e["field"]) == ("invalid", "password"), e
    rc, out, err = stack.adminctl("user", "add", "--email", "ANA@circl.lu", "--org",
                                  me["org_name"])
    assert rc == 1 and "conflict" in err and "(field: email)" in err, (rc, out, err)
    for argv in (("user", "add", "--org", "1"),
                 ("user", "add", "--email", "x@x.test"),
                 ("user", "add", "--email", "x@x.test", "--org", "1", "--nids-sid", "abc"),
                 ("user", "view"),
                 ("user", "edit", "ana@circl.lu", "--bogus"),
                 ("user", "change-pw", "ana@circl.lu", "--no-password-change", "maybe")):
        rc, out, err = stack.adminctl(*argv)
        assert rc == 2 and err.strip(), (argv, rc, out, err)
    assert state(stack) == before
    rc, out, err = stack.adminctl("user", "add", "--help")
    assert rc == 0 and "--no-password-change" in out and "--nids-sid" in out, out
    ctl_json(stack, "user", "delete", "ana@circl.lu")
    assert stack.count("users", "email = 'ana@circl.lu'") == 0
