"""Authkeys end to end (issue 5): user.authkey and authkey.add/list/view/edit/delete over the
wire and through adminctl, enforced by the real engine (expiry, allowed_ips, revocation at
the very next command), and the break-glass `adminctl --local` with the engine stopped.
A raw key must appear in exactly one reply: never in MariaDB (auth_keys, logs, command_ids),
the engine's log or a repeated command id's reply."""

import hashlib
import hmac
import json
import math
import os
import pwd
import socket
import stat
import subprocess
import time
import uuid
from datetime import datetime, timezone

from conftest import BIN, Daemon, clean_env, free_ports
from helpers import admin, assert_error, audit_rows, ctl_json
from test_events import next_event, subscriber

KEY_FIELDS = {"id", "user_id", "email", "authkey_start", "authkey_end", "expiration", "expired",
              "read_only", "allowed_ips", "comment", "created"}
LOCAL_ACTOR = f"local:{pwd.getpwuid(os.geteuid()).pw_name}@{socket.gethostname()}"


def add_user(stack, email, role="User", org=None):
    return stack.ok("user.add", {"email": email, "org": org or admin(stack)["org_name"],
                                 "role": role, "password": "Correct-Horse-42-battery"})


def add_key(stack, user, auth=None, **opts):
    """authkey.add for user (e-mail); returns (result, raw key)."""
    r = stack.ok("authkey.add", {"user": user, **opts}, auth=auth)
    raw = r["authkey"]
    assert len(raw) == 40 and raw.isalnum(), r
    assert set(r) - {"authkey", "warning"} == KEY_FIELDS, sorted(r)
    assert (r["authkey_start"], r["authkey_end"]) == (raw[:4], raw[-4:])
    return r, raw


def whoami(stack, key):
    return stack.cmd("auth.whoami", auth=key)


def works(stack, key, email):
    r = whoami(stack, key)
    assert r.get("ok") is True, r
    assert r["result"]["user"]["email"] == email
    return r


def refused(stack, key):
    return assert_error(whoami(stack, key), "unauthenticated", "auth")


def secret(stack):
    return bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())


def assert_nowhere(stack, raws):
    """None of the raw keys (nor their middle) in any table we write or the engine's log."""
    dumps = []
    for table in ("auth_keys", "logs", "command_ids", "users"):
        for row in stack.rows(f"SELECT * FROM `{table}`"):
            dumps.append(" ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v)
                                  for v in row.values()))
    text = "\n".join(dumps) + (stack.home / "engine.log").read_text(errors="replace")
    for raw in raws:
        assert raw not in text and raw[4:-4] not in text, f"key {raw[:4]}… found in storage"


def test_key_lifecycle(stack):
    me = admin(stack)
    add_user(stack, "ana@circl.lu")
    before = stack.count("logs", "model = 'AuthKey'")
    cmd_id = str(uuid.uuid4())
    r = stack.ok("authkey.add", {"user": "ana@circl.lu", "expiration": "30",
                                 "comment": "SOAR playbook"}, id=cmd_id)
    raw = r["authkey"]
    assert r["email"] == "ana@circl.lu" and r["read_only"] is False
    assert r["allowed_ips"] is None and r["comment"] == "SOAR playbook"
    thirty = (time.time() + 30 * 86400) * 1000
    assert abs(r["expiration"] - thirty) < 60_000 and r["expired"] is False
    works(stack, raw, "ana@circl.lu")

    # stored only as the keyed digest and the first and last four characters
    row = stack.rows("SELECT * FROM auth_keys WHERE id = %s", r["id"])[0]
    assert row["digest"] == hmac.new(secret(stack), raw.encode(), hashlib.sha256).digest()
    assert (row["authkey_start"], row["authkey_end"]) == (raw[:4], raw[-4:])
    # the repeated command id gets the stored reply: the key masked
    again = stack.cmd("authkey.add", {"user": "ana@circl.lu", "expiration": "30",
                                      "comment": "SOAR playbook"}, id=cmd_id)
    assert again["ok"] is True and again["result"]["authkey"] == "*" * 40
    assert again["result"]["id"] == r["id"]
    assert stack.count("auth_keys", "user_id = %s", r["user_id"]) == 1
    log = audit_rows(stack, model="AuthKey", action="add", model_id=r["id"])[-1]
    assert log["title"] == (f"AuthKey ({r['id']}): {raw[:4]}{'*' * 32}{raw[-4:]} "
                            "(ana@circl.lu)")
    assert log["email"] == me["email"] and "comment () => (SOAR playbook)" in log["change"]

    # read-only: reads work, writes are refused
    ro, ro_raw = add_key(stack, "ana@circl.lu", read_only=True)
    assert ro["read_only"] is True
    works(stack, ro_raw, "ana@circl.lu")
    assert stack.ok("authkey.list", auth=ro_raw)["total"] == 2
    assert_error(stack.cmd("authkey.add", {"user": "ana@circl.lu"}, auth=ro_raw), "forbidden")

    # allowed_ips: a list without the caller's address refuses, one with it admits
    fails = stack.count("logs", "action = 'auth_fail'")
    ip, ip_raw = add_key(stack, "ana@circl.lu",
                         allowed_ips=["10.1.2.3/8", "2001:db8::1/32", "192.0.2.7"])
    assert ip["allowed_ips"] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    err = refused(stack, ip_raw)
    assert "127.0.0.1" in err["message"] and "allowed_ips" in err["message"]
    assert stack.count("logs", "action = 'auth_fail'") == fails + 1
    fail = stack.rows("SELECT * FROM logs WHERE action = 'auth_fail' ORDER BY id DESC")[0]
    assert fail["user_id"] == r["user_id"] and "allowed_ips" in fail["title"]
    edited = stack.ok("authkey.edit", {"authkey_id": ip["id"],
                                       "allowed_ips": ["10.0.0.0/8", "127.0.0.0/8", "::1"]})
    assert edited["allowed_ips"] == ["10.0.0.0/8", "127.0.0.0/8", "::1/128"]
    works(stack, ip_raw, "ana@circl.lu")
    log = audit_rows(stack, model="AuthKey", action="edit", model_id=ip["id"])[-1]
    assert "allowed_ips ([" in log["change"] and "127.0.0.0/8" in log["change"]
    assert stack.ok("authkey.edit", {"authkey_id": ip["id"], "any_ip": True})["allowed_ips"] \
        is None

    # expiry: a key that expires in a few seconds works, then is refused (a whole second:
    # the expiration has no fraction, and adding and trying the key takes a moment)
    soon = datetime.fromtimestamp(math.ceil(time.time()) + 5, timezone.utc)
    ex, ex_raw = add_key(stack, "ana@circl.lu", expiration=soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    works(stack, ex_raw, "ana@circl.lu")
    time.sleep(max(0.0, soon.timestamp() - time.time()) + 0.5)
    assert "expired" in refused(stack, ex_raw)["message"]
    assert stack.ok("authkey.view", {"authkey_id": ex["id"]})["expired"] is True
    assert stack.ok("authkey.edit", {"authkey_id": ex["id"], "expiration": "never"})[
        "expiration"] is None
    works(stack, ex_raw, "ana@circl.lu")

    # revocation takes effect on the very next command
    gone = stack.ok("authkey.delete", {"authkey_id": r["id"]})
    assert gone["deleted"] is True and "warning" not in gone
    refused(stack, raw)
    assert stack.count("auth_keys", "id = %s", r["id"]) == 0
    assert audit_rows(stack, model="AuthKey", action="delete", model_id=r["id"])
    assert stack.count("logs", "model = 'AuthKey'") == before + 8  # 4 adds, 3 edits, 1 delete
    assert_nowhere(stack, [raw, ro_raw, ip_raw, ex_raw])


def test_bad_input_changes_nothing(stack):
    add_user(stack, "ana@circl.lu")
    state = (stack.rows("SELECT * FROM auth_keys ORDER BY id"), stack.count("logs"))
    cases = [
        ({"user": "ana@circl.lu", "expiration": "yesterday"}, "invalid", "expiration"),
        ({"user": "ana@circl.lu", "expiration": "2020-01-01"}, "invalid", "expiration"),
        ({"user": "ana@circl.lu", "expiration": "2027-02-30"}, "invalid", "expiration"),
        ({"user": "ana@circl.lu", "expiration": "0"}, "invalid", "expiration"),
        ({"user": "ana@circl.lu", "allowed_ips": ["300.1.1.1"]}, "invalid", "allowed_ips"),
        ({"user": "ana@circl.lu", "allowed_ips": ["10.0.0.0/33"]}, "invalid", "allowed_ips"),
        ({"user": "ana@circl.lu", "allowed_ips": []}, "invalid", "allowed_ips"),
        ({"user": "nobody@circl.lu"}, "not_found", "user"),
        ({"user": "ana@circl.lu", "read_only": "yes"}, "invalid", "read_only"),
    ]
    for args, code, field in cases:
        assert_error(stack.cmd("authkey.add", args), code, field)
    assert_error(stack.cmd("authkey.view", {"authkey_id": 999999}), "not_found", "authkey_id")
    assert_error(stack.cmd("authkey.delete", {"authkey_id": 999999}), "not_found", "authkey_id")
    first = stack.rows("SELECT id FROM auth_keys ORDER BY id LIMIT 1")[0]["id"]
    assert_error(stack.cmd("authkey.edit", {"authkey_id": first, "any_ip": True,
                                            "allowed_ips": ["10.0.0.0/8"]}), "invalid", "any_ip")
    assert (stack.rows("SELECT * FROM auth_keys ORDER BY id"), stack.count("logs")) == state


def test_user_authkey_cli(stack):
    add_user(stack, "ana@circl.lu")
    made = ctl_json(stack, "user", "authkey", "ana@circl.lu")
    assert made["created"] is True and made["revoked"] == 0
    first = made["authkey"]
    assert made["key"]["authkey_start"] == first[:4] and made["user"]["email"] == "ana@circl.lu"
    works(stack, first, "ana@circl.lu")

    # a user with a key: the list and how to get a new one, no new key
    listed = ctl_json(stack, "user", "authkey", "ana@circl.lu")
    assert listed["created"] is False and "authkey" not in listed
    assert [k["authkey_end"] for k in listed["keys"]] == [first[-4:]]
    assert "--reset" in listed["message"]
    rc, out, err = stack.adminctl("user", "authkey", "ana@circl.lu")
    assert rc == 0 and first[:4] in out and first not in out

    reset = ctl_json(stack, "user", "authkey", "ana@circl.lu", "--reset")
    new = reset["authkey"]
    assert reset["created"] is True and reset["revoked"] == 1 and new != first
    refused(stack, first)
    works(stack, new, "ana@circl.lu")
    log = audit_rows(stack, model="User", action="reset_auth_key")[-1]
    assert log["change"] == f"authkeys ({first[:4]}…{first[-4:]}) => ({new[:4]}…{new[-4:]})"

    # the CLI's flags for authkey add: repeated --allowed-ip, --read-only, --expiration
    added = ctl_json(stack, "authkey", "add", "--user", "ana@circl.lu", "--read-only",
                     "--allowed-ip", "127.0.0.1", "--allowed-ip", "::1", "--expiration",
                     "2099-12-31", "--comment", "monitoring")
    assert added["allowed_ips"] == ["127.0.0.1/32", "::1/128"] and added["read_only"] is True
    assert added["expiration"] == int(datetime(2099, 12, 31, tzinfo=timezone.utc)
                                      .timestamp() * 1000)
    works(stack, added["authkey"], "ana@circl.lu")
    rc, out, err = stack.adminctl("authkey", "list", "--user", "ana@circl.lu")
    assert rc == 0 and "2099-12-31T00:00:00.000Z" in out and "monitoring" in out
    assert_nowhere(stack, [first, new, added["authkey"]])


def test_org_admin_manages_own_org_only(stack):
    me = admin(stack)
    other = stack.ok("org.add", {"name": "Other"})
    oa = add_user(stack, "oa@circl.lu", role="Org Admin")
    u1 = add_user(stack, "u1@circl.lu")
    u2 = add_user(stack, "u2@other.lu", org="Other")
    _, oa_key = add_key(stack, "oa@circl.lu")
    _, u1_key = add_key(stack, "u1@circl.lu")
    u2k, _ = add_key(stack, "u2@other.lu")
    mine = stack.rows("SELECT id FROM auth_keys WHERE user_id = %s", me["id"])[0]["id"]

    k, k_raw = add_key(stack, "u1@circl.lu", auth=oa_key)
    assert k["user_id"] == u1["id"]
    # out of reach reads as missing (another organisation's user, and their key ids); the
    # site admin of oa's own organisation is listed to oa anyway, so that is "forbidden"
    assert_error(stack.cmd("authkey.add", {"user": "u2@other.lu"}, auth=oa_key), "not_found",
                 "user")
    assert_error(stack.cmd("authkey.add", {"user": me["email"]}, auth=oa_key), "forbidden",
                 "user")
    for t in ("authkey.view", "authkey.delete", "authkey.edit"):
        assert_error(stack.cmd(t, {"authkey_id": u2k["id"]}, auth=oa_key), "not_found",
                     "authkey_id")
        assert_error(stack.cmd(t, {"authkey_id": mine}, auth=oa_key), "forbidden", "user")
    assert_error(stack.cmd("user.authkey", {"user": "u2@other.lu", "reset": True},
                           auth=oa_key), "not_found", "user")
    seen = stack.ok("authkey.list", auth=oa_key)
    assert {i["email"] for i in seen["items"]} == {"oa@circl.lu", "u1@circl.lu"}
    assert_error(stack.cmd("authkey.list", {"user": "u2@other.lu"}, auth=oa_key), "not_found",
                 "user")
    stack.ok("authkey.delete", {"authkey_id": k["id"]}, auth=oa_key)
    refused(stack, k_raw)

    # a plain user: own keys only
    own, own_raw = add_key(stack, "u1@circl.lu", auth=u1_key)
    assert_error(stack.cmd("authkey.add", {"user": "oa@circl.lu"}, auth=u1_key), "not_found",
                 "user")
    assert {i["user_id"] for i in stack.ok("authkey.list", auth=u1_key)["items"]} == {u1["id"]}
    stack.ok("authkey.delete", {"authkey_id": own["id"]}, auth=u1_key)
    refused(stack, own_raw)
    assert other["id"] and oa["id"] and u2["id"]


def test_revoking_the_last_admin_key_warns(stack):
    me = admin(stack)
    mine = stack.rows("SELECT id FROM auth_keys WHERE user_id = %s", me["id"])[0]["id"]
    gone = stack.ok("authkey.delete", {"authkey_id": mine})
    assert "adminctl --local" in gone["warning"]
    refused(stack, stack.key)


def local_ctl(stack, *args, home=None):
    """adminctl --local with only ADMINBUS_HOME set (no URL, no key)."""
    env = clean_env(ADMINBUS_HOME=home or stack.home)
    p = subprocess.run([str(BIN / "adminctl"), "--local", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_local_break_glass_with_the_engine_stopped(stack):
    me = admin(stack)
    old = stack.key
    sub = subscriber(stack, "audit.User.")
    assert stack.engine.stop() in (0, -15)
    rc, out, err = local_ctl(stack, "--json", "user", "authkey", me["email"], "--reset")
    assert rc == 0, err
    reset = json.loads(out)
    new = reset["authkey"]
    assert reset["created"] is True and reset["revoked"] == 1 and len(new) == 40
    # the broker is up: the command's events were published after its COMMIT
    topic, ev = next_event(sub, 5.0)
    assert topic == "audit.User.reset_auth_key" and ev["data"]["id"] == me["id"]
    rows = stack.rows("SELECT * FROM logs WHERE email = %s ORDER BY id", LOCAL_ACTOR)
    assert [r["action"] for r in rows] == ["delete", "add", "reset_auth_key"]
    for r in rows:
        assert r["user_id"] == 0 and r["org"] == me["org_name"]
        assert "via adminctl --local" in r["description"] and LOCAL_ACTOR in r["description"]
    assert stack.count("command_ids") == 0  # --local records no command id
    # with no broker either: the change is committed, its events skipped with a note
    assert stack.broker.stop() in (0, -15)
    rc, out, err = local_ctl(stack, "--json", "authkey", "add", "--user", me["email"],
                             "--comment", "made without a broker")
    assert rc == 0, err
    assert "no broker carries events" in err and "not published" in err
    assert stack.count("auth_keys", "comment = 'made without a broker'") == 1
    stack.broker = Daemon("broker", [str(BIN / "adminbus-broker")], stack.env,
                          stack.home / "broker.log")
    stack.key = new
    stack.start_engine()
    works(stack, new, me["email"])
    refused(stack, old)
    # any command works locally, through the catalog's validation
    rc, out, err = local_ctl(stack, "authkey", "view", "999999")
    assert rc == 1 and "not_found" in err and "authkey_id" in err
    rc, out, err = local_ctl(stack, "authkey", "add", "--user", me["email"], "--expiration",
                             "soon")
    assert rc == 1 and "invalid" in err and "expiration" in err
    rc, out, err = local_ctl(stack, "--json", "whoami")
    assert rc == 0 and json.loads(out)["user"]["email"] == LOCAL_ACTOR
    assert_nowhere(stack, [new])


def test_local_refuses_a_bad_home(stack, tmp_path):
    rc, out, err = local_ctl(stack, "whoami", home=tmp_path / "missing")
    assert rc == 2 and "is not a folder" in err and "ADMINBUS_HOME" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = local_ctl(stack, "whoami", home=empty)
    assert rc == 2 and "db_dsn" in err
    assert not (empty / "secrets").exists()  # break-glass never makes a secret
    (empty / "adminbus.conf").write_text((stack.home / "adminbus.conf").read_text())
    rc, out, err = local_ctl(stack, "whoami", home=empty)
    assert rc == 2 and "server.key" in err and not (empty / "secrets").exists()
    (empty / "secrets").mkdir(mode=0o700)
    (empty / "secrets" / "server.key").write_text(
        (stack.home / "secrets" / "server.key").read_text())
    port = free_ports(1)[0]
    (empty / "adminbus.conf").write_text(f"db_dsn=mariadb://nobody:x@127.0.0.1:{port}/nowhere\n")
    rc, out, err = local_ctl(stack, "whoami", home=empty)
    assert rc == 3 and "cannot reach the database" in err and "ops/db" in err
    assert "x@" not in err  # the DSN's password is not repeated
    rc, out, err = local_ctl(stack, "--key", "A" * 40, "whoami")
    assert rc == 2 and "--local" in err


def test_local_reset_of_the_env_key_updates_the_env_file(stack):
    """$ADMINBUS_HOME/env holds the admin's key (as ops/run writes it). Break-glass resets
    that key: the file then holds the new one (other lines kept, mode 0600) and adminctl
    says so; plain adminctl, reading the file, goes on working. A reset of another user's
    key, or a revoked key the file does not hold, leaves the file alone; a revocation with
    no new key warns."""
    me = admin(stack)
    env = stack.home / "env"
    env.write_text(f"ADMINBUS_URL={stack.url}\n# the operator's key\n"
                   f"ADMINBUS_AUTHKEY={stack.key}\nADMINBUS_EVENTS={stack.events}\n")
    env.chmod(0o640)
    before_lines = env.read_text().splitlines()

    def file_ctl(*args):
        """adminctl with nothing but ADMINBUS_HOME: URL and key from the env file."""
        p = subprocess.run([str(BIN / "adminctl"), *args],
                           env=clean_env(ADMINBUS_HOME=stack.home), capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = local_ctl(stack, "--json", "user", "authkey", me["email"], "--reset")
    assert rc == 0, err
    new = json.loads(out)["authkey"]
    assert f"{env} held the authkey this command revoked: it now holds the new one" in err, err
    lines = env.read_text().splitlines()
    assert lines == [ln if not ln.startswith("ADMINBUS_AUTHKEY=") else f"ADMINBUS_AUTHKEY={new}"
                     for ln in before_lines], lines
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert not [p for p in stack.home.iterdir() if p.name.startswith("env.")]  # no temp left
    refused(stack, stack.key)
    rc, out, err = file_ctl("--json", "whoami")
    assert rc == 0 and json.loads(out)["user"]["email"] == me["email"], err
    stack.key = new

    # another user's reset: the file stays as it is, nothing said about it
    add_user(stack, "ana@circl.lu")
    stack.ok("user.authkey", {"user": "ana@circl.lu"})
    rc, out, err = local_ctl(stack, "user", "authkey", "ana@circl.lu", "--reset")
    assert rc == 0 and "env" not in err, err
    assert f"ADMINBUS_AUTHKEY={new}" in env.read_text()

    # the env key deleted: no new key to put there, so a warning
    mine = stack.rows("SELECT id FROM auth_keys WHERE user_id = %s", me["id"])[0]["id"]
    rc, out, err = local_ctl(stack, "authkey", "delete", str(mine))
    assert rc == 0, err
    assert f"warning: the authkey in {env} (ADMINBUS_AUTHKEY) no longer works" in err, err
    assert f"ADMINBUS_AUTHKEY={new}" in env.read_text()
    assert_nowhere(stack, [new])
