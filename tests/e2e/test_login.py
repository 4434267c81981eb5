"""Logins end to end (issue 5, acceptance 3): auth.login and its sessions, brute-force
protection, logout, expiry, restricted sessions, the recorded login addresses (user.ips,
user.by_ip), the purge task and `adminctl auth login`. Everything is checked against the
real engine and what it leaves in MariaDB."""

import hashlib
import hmac
import json
import re
import time
import uuid

import msgpack

from helpers import admin, assert_error, audit_rows

GOOD_PW = "Correct-Horse-42-battery"
TOKEN = re.compile(r"^[0-9a-f]{64}$")


def make_user(stack, email, role="User", change_pw=False, disabled=False):
    me = admin(stack)
    args = {"email": email, "org": me["org_name"], "role": role, "password": GOOD_PW,
            "no_password_change": not change_pw}
    if disabled:
        args["disabled"] = True
    return stack.ok("user.add", args)


def login(stack, email, password=GOOD_PW, otp=None, id=None):
    """auth.login sent with no credential at all, as a client that has none yet."""
    args = {"email": email, "password": password}
    if otp is not None:
        args["otp"] = otp
    return stack.send({"v": 1, "id": id or str(uuid.uuid4()), "type": "auth.login",
                       "args": args})


def login_ok(stack, email, **kw):
    r = login(stack, email, **kw)
    assert r.get("ok") is True, r
    return r["result"]


def with_session(stack, token, type, args=None):
    return stack.send({"v": 1, "id": str(uuid.uuid4()), "type": type,
                       "args": args or {}, "session": token})


def server_digest(stack, text):
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()


def set_setting(stack, name, value):
    stack.ok("setting.set", {"name": name, "value": value})


# --- sessions ------------------------------------------------------------------------------


def test_login_gives_a_session_that_authenticates_and_logout_ends_it(stack):
    ana = make_user(stack, "ana@circl.lu")
    cmd_id = str(uuid.uuid4())
    res = login_ok(stack, "ana@circl.lu", id=cmd_id)
    token = res["session"]
    assert TOKEN.match(token)
    assert res["user_id"] == ana["id"] and res["email"] == "ana@circl.lu"
    assert res["must_change_password"] is False and res["must_enrol_otp"] is False
    assert res["expires"] > time.time() * 1000 + 6 * 86400 * 1000  # cookieTimeout: 7 days
    # only the keyed digest is stored; the stored reply of the id has the token masked
    row = stack.rows("SELECT * FROM sessions")[0]
    assert row["digest"] == server_digest(stack, token) and row["user_id"] == ana["id"]
    assert row["ip"] == "127.0.0.1"
    stored = stack.rows("SELECT reply FROM command_ids WHERE cmd_id = %s", cmd_id)[0]["reply"]
    assert token.encode() not in stored and b"*" * 64 in stored
    assert msgpack.unpackb(stored)["result"]["session"] == "*" * 64
    # a repeat of the id answers as stored: masked, no second session
    again = login(stack, "ana@circl.lu", id=cmd_id)
    assert again["result"]["session"] == "*" * 64 and stack.count("sessions") == 1
    # last_login, the audit row, the address
    user = stack.rows("SELECT last_login FROM users WHERE id = %s", ana["id"])[0]
    assert user["last_login"] is not None
    log = audit_rows(stack, model="User", action="login", model_id=ana["id"])
    assert len(log) == 1 and log[0]["email"] == "ana@circl.lu" and log[0]["user_id"] == ana["id"]

    who = with_session(stack, token, "auth.whoami")
    assert who["ok"] is True and who["result"]["user"]["email"] == "ana@circl.lu", who
    # the session carries the user's role: a User may not list users
    assert_error(with_session(stack, token, "user.list"), "forbidden")

    bye = with_session(stack, token, "auth.logout")
    assert bye["ok"] is True and bye["result"]["ended"] == 1, bye
    assert stack.count("sessions") == 0
    assert len(audit_rows(stack, model="User", action="logout", model_id=ana["id"])) == 1
    # the revoked session is refused, and the refusal audited (never with the token)
    err = assert_error(with_session(stack, token, "auth.whoami"), "unauthenticated", "session")
    assert "log in again" in err["message"]
    fails = audit_rows(stack, action="auth_fail")
    assert fails and token not in str(fails) and "session" in fails[-1]["title"]


def test_both_credentials_or_none(stack):
    make_user(stack, "bob@circl.lu")
    token = login_ok(stack, "bob@circl.lu")["session"]
    both = stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.whoami", "args": {},
                       "auth": stack.key, "session": token})
    assert_error(both, "invalid", "session")
    none = stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.whoami", "args": {}})
    assert_error(none, "unauthenticated", "auth")
    assert_error(with_session(stack, "0" * 64, "auth.whoami"), "unauthenticated", "session")
    assert_error(with_session(stack, "not-a-token", "auth.whoami"), "unauthenticated",
                 "session")


def test_logout_all_and_logout_with_a_key(stack):
    carl = make_user(stack, "carl@circl.lu")
    t1 = login_ok(stack, "carl@circl.lu")["session"]
    t2 = login_ok(stack, "carl@circl.lu")["session"]
    assert t1 != t2 and stack.count("sessions") == 2
    # with an authkey there is no calling session: say so, change nothing
    assert_error(stack.cmd("auth.logout"), "invalid", "all")
    r = with_session(stack, t1, "auth.logout", {"all": True})
    assert r["ok"] is True and r["result"] == {"user_id": carl["id"], "ended": 2}
    for t in (t1, t2):
        assert_error(with_session(stack, t, "auth.whoami"), "unauthenticated")


def test_session_idle_timeout_and_expiry(stack):
    make_user(stack, "dana@circl.lu")
    t_idle = login_ok(stack, "dana@circl.lu")["session"]
    t_old = login_ok(stack, "dana@circl.lu")["session"]
    t_fresh = login_ok(stack, "dana@circl.lu")["session"]
    d_idle, d_old, d_fresh = (server_digest(stack, t) for t in (t_idle, t_old, t_fresh))
    # Session.timeout is 60 minutes: 61 minutes without use ends a session
    stack.rows("UPDATE sessions SET last_seen = UTC_TIMESTAMP(3) - INTERVAL 61 MINUTE "
               "WHERE digest = %s", d_idle)
    err = assert_error(with_session(stack, t_idle, "auth.whoami"), "unauthenticated", "session")
    assert "Session.timeout" in err["message"]
    # past its absolute end (Session.cookieTimeout), even when used a moment ago
    stack.rows("UPDATE sessions SET expires = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND "
               "WHERE digest = %s", d_old)
    err = assert_error(with_session(stack, t_old, "auth.whoami"), "unauthenticated", "session")
    assert "expired" in err["message"]
    # used after 5 idle minutes: works, and last_seen moves (at most once a minute)
    stack.rows("UPDATE sessions SET last_seen = UTC_TIMESTAMP(3) - INTERVAL 5 MINUTE "
               "WHERE digest = %s", d_fresh)
    assert with_session(stack, t_fresh, "auth.whoami")["ok"] is True
    seen = stack.rows("SELECT TIMESTAMPDIFF(SECOND, last_seen, UTC_TIMESTAMP(3)) AS age "
                      "FROM sessions WHERE digest = %s", d_fresh)[0]["age"]
    assert seen < 10
    # a shorter Session.timeout applies to the next command
    set_setting(stack, "Session.timeout", 3)
    stack.rows("UPDATE sessions SET last_seen = UTC_TIMESTAMP(3) - INTERVAL 4 MINUTE "
               "WHERE digest = %s", d_fresh)
    assert_error(with_session(stack, t_fresh, "auth.whoami"), "unauthenticated", "session")


def test_disabled_user_cannot_log_in_and_its_sessions_stop(stack):
    eve = make_user(stack, "eve@circl.lu")
    token = login_ok(stack, "eve@circl.lu")["session"]
    stack.ok("user.disable", {"user": "eve@circl.lu"})
    assert_error(with_session(stack, token, "auth.whoami"), "unauthenticated", "session")
    err = assert_error(login(stack, "eve@circl.lu"), "unauthenticated")
    assert "disabled" in err["message"]
    fail = audit_rows(stack, action="login_fail", model_id=eve["id"])
    assert len(fail) == 1 and "disabled" in fail[0]["title"]
    # the right password was given: no brute-force row
    assert stack.count("bruteforces") == 0


def test_a_session_does_not_come_back_when_its_user_is_enabled_again(stack):
    """Disabling ends the user's sessions (audited as sessions_ended); enabling again brings
    none back, and a new login works."""
    hal = make_user(stack, "hal@circl.lu")
    token = login_ok(stack, "hal@circl.lu")["session"]
    other = login_ok(stack, "hal@circl.lu")["session"]
    assert with_session(stack, token, "auth.whoami")["ok"] is True
    stack.ok("user.disable", {"user": "hal@circl.lu"})
    stack.ok("user.enable", {"user": "hal@circl.lu"})
    for t in (token, other):
        err = assert_error(with_session(stack, t, "auth.whoami"), "unauthenticated", "session")
        assert "not valid" in err["message"], err
    disable, enable = audit_rows(stack, action="edit", model_id=hal["id"])[-2:]
    assert "disabled (0) => (1)" in disable["change"], disable
    assert "sessions_ended (0) => (2)" in disable["change"], disable
    assert "sessions_ended" not in enable["change"], enable
    fresh = login_ok(stack, "hal@circl.lu")["session"]
    r = with_session(stack, fresh, "auth.whoami")
    assert r["ok"] is True and r["result"]["user"]["email"] == "hal@circl.lu", r
    assert stack.count("sessions", "user_id = %s", hal["id"]) == 1


def test_enabling_ends_sessions_left_from_before_the_user_was_disabled(stack):
    """A session row that outlived a disable (written before disabling ended sessions)
    ends when the user is enabled again: a disabled user cannot log in, so it predates the
    disable."""
    ivy = make_user(stack, "ivy@circl.lu")
    token = login_ok(stack, "ivy@circl.lu")["session"]
    kept = stack.rows("SELECT * FROM sessions WHERE user_id = %s", ivy["id"])[0]
    stack.ok("user.disable", {"user": "ivy@circl.lu"})
    stack.rows("INSERT IGNORE INTO sessions (id, digest, user_id, created, expires, last_seen, ip) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s)", kept["id"], kept["digest"],
               kept["user_id"], kept["created"], kept["expires"], kept["last_seen"], kept["ip"])
    assert stack.count("sessions", "user_id = %s", ivy["id"]) == 1
    assert_error(with_session(stack, token, "auth.whoami"), "unauthenticated", "session")
    stack.ok("user.enable", {"user": "ivy@circl.lu"})
    assert_error(with_session(stack, token, "auth.whoami"), "unauthenticated", "session")
    edit = audit_rows(stack, action="edit", model_id=ivy["id"])[-1]
    assert "disabled (1) => (0)" in edit["change"] and "sessions_ended (0) => (1)" in \
        edit["change"], edit


def test_must_change_password_session_runs_only_change_pw_on_itself(stack):
    # an admin-role user, so that only the session's restriction stands in the way
    fay = make_user(stack, "fay@circl.lu", role="admin", change_pw=True)
    res = login_ok(stack, "fay@circl.lu")
    assert res["must_change_password"] is True
    token = res["session"]
    assert with_session(stack, token, "auth.whoami")["ok"] is True
    err = assert_error(with_session(stack, token, "org.list"), "forbidden", "session")
    assert "change their password" in err["message"]
    admin_email = admin(stack)["email"]
    assert_error(with_session(stack, token, "user.change_pw",
                              {"user": admin_email, "password": "Another-Good-Pass-77"}),
                 "forbidden", "session")
    r = with_session(stack, token, "user.change_pw",
                     {"user": str(fay["id"]), "password": "Another-Good-Pass-77"})
    assert r["ok"] is True and r["result"]["change_pw"] is False, r  # set by themself
    # the restriction lifts at once: it is read from the user's row
    assert with_session(stack, token, "org.list")["ok"] is True
    assert login(stack, "fay@circl.lu")["ok"] is False  # the old password is gone
    assert login_ok(stack, "fay@circl.lu", password="Another-Good-Pass-77")


def test_a_changed_password_ends_the_other_sessions(stack):
    gil = make_user(stack, "gil@circl.lu")
    mine = login_ok(stack, "gil@circl.lu")["session"]
    stolen = login_ok(stack, "gil@circl.lu")["session"]
    # changed by the user through one session: that one goes on, the other ends
    r = with_session(stack, mine, "user.change_pw",
                     {"user": str(gil["id"]), "password": "Another-Good-Pass-77"})
    assert r["ok"] is True, r
    assert with_session(stack, mine, "auth.whoami")["ok"] is True
    assert_error(with_session(stack, stolen, "auth.whoami"), "unauthenticated")
    rows = audit_rows(stack, action="change_pw")
    assert "sessions_ended (0) => (1)" in rows[-1]["change"], rows[-1]
    # changed by an admin: none survives
    stack.ok("user.change_pw", {"user": "gil@circl.lu", "password": "Third-Good-Pass-88"})
    assert_error(with_session(stack, mine, "auth.whoami"), "unauthenticated")
    assert stack.count("sessions") == 0


# --- failures and brute force (acceptance 3) ---------------------------------------------


def test_unknown_email_and_wrong_password_look_the_same(stack):
    gil = make_user(stack, "gil@circl.lu")
    before = stack.count("sessions")
    a = assert_error(login(stack, "nobody@circl.lu"), "unauthenticated")
    b = assert_error(login(stack, "gil@circl.lu", password="Wrong-Password-99"), "unauthenticated")
    assert a == b
    assert stack.count("sessions") == before
    unknown = audit_rows(stack, action="login_fail", model_id=0)
    assert [r["email"] for r in unknown] == ["nobody@circl.lu"]
    assert "unknown e-mail" in unknown[0]["title"]
    wrong = audit_rows(stack, action="login_fail", model_id=gil["id"])
    assert len(wrong) == 1 and "wrong password" in wrong[0]["title"]
    assert "Wrong-Password-99" not in str(stack.rows("SELECT * FROM logs"))
    rows = stack.rows("SELECT ip, username FROM bruteforces ORDER BY id")
    assert rows == [{"ip": "127.0.0.1", "username": "nobody@circl.lu"},
                    {"ip": "127.0.0.1", "username": "gil@circl.lu"}]
    # a missing password is a malformed command, not a login attempt
    r = stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.login",
                    "args": {"email": "gil@circl.lu"}})
    assert_error(r, "invalid", "password")


def test_sixth_login_refused_even_with_the_right_password_until_cleared(stack):
    set_setting(stack, "SecureAuth.amount", 5)
    hal = make_user(stack, "hal@circl.lu")
    make_user(stack, "ida@circl.lu")
    for i in range(5):
        assert_error(login(stack, "hal@circl.lu", password=f"Bad-Guess-{i}-xyz"),
                     "unauthenticated")
    fails = audit_rows(stack, action="login_fail", model_id=hal["id"])
    assert len(fails) == 5 and all(r["email"] == "hal@circl.lu" for r in fails)
    assert stack.count("bruteforces", "username = %s", "hal@circl.lu") == 5

    r = login(stack, "hal@circl.lu")  # the RIGHT password
    err = assert_error(r, "unauthenticated", "email")
    assert re.search(r"wait \d+ seconds", err["message"]), err
    assert 250 <= err["retry_after"] <= 300, err
    assert "bruteforce clear" in err["message"]
    assert stack.count("sessions") == 0
    blocked = audit_rows(stack, action="login_fail")
    assert len(blocked) == 6 and "blocked" in blocked[-1]["title"]
    # another account from the same address is not affected
    assert login_ok(stack, "ida@circl.lu")

    rc, out, err_text = stack.adminctl("bruteforce", "clear", "hal@circl.lu")
    assert rc == 0, (out, err_text)
    assert stack.count("bruteforces", "username = %s", "hal@circl.lu") == 0
    assert audit_rows(stack, model="Bruteforce", action="delete")
    res = login_ok(stack, "hal@circl.lu")
    assert TOKEN.match(res["session"])


def test_failed_rows_commit_alongside_other_commands_of_a_batch(stack):
    """The failure hook writes outside the failed command's savepoint: the rest of a batch
    that carries a failed login is unaffected, and the failure's rows are there."""
    make_user(stack, "jan@circl.lu")
    s = stack.socket()
    try:
        ids = [str(uuid.uuid4()) for _ in range(3)]
        bodies = [
            {"v": 1, "id": ids[0], "type": "org.add", "args": {"name": "Batch Org"},
             "auth": stack.key},
            {"v": 1, "id": ids[1], "type": "auth.login",
             "args": {"email": "jan@circl.lu", "password": "Nope-nope-123"}},
            {"v": 1, "id": ids[2], "type": "org.add", "args": {"name": "Batch Org 2"},
             "auth": stack.key},
        ]
        for b in bodies:
            s.send_multipart([b"", msgpack.packb(b)])
        replies = {}
        for _ in bodies:
            assert s.poll(10000)
            rep = msgpack.unpackb(s.recv_multipart()[1])
            replies[rep["id"]] = rep
    finally:
        s.close()
    assert replies[ids[0]]["ok"] and replies[ids[2]]["ok"]
    assert_error(replies[ids[1]], "unauthenticated")
    assert stack.count("organisations", "name LIKE 'Batch Org%%'") == 2
    assert stack.count("bruteforces", "username = 'jan@circl.lu'") == 1
    assert len(audit_rows(stack, action="login_fail")) == 1


# --- addresses, purge, adminctl ------------------------------------------------------------


def test_user_ips_and_by_ip(stack):
    kim = make_user(stack, "kim@circl.lu")
    login_ok(stack, "kim@circl.lu")
    login_ok(stack, "kim@circl.lu")
    ips = stack.ok("user.ips", {"user": "kim@circl.lu"})["items"]
    assert len(ips) == 1 and ips[0]["ip"] == "127.0.0.1" and ips[0]["logins"] == 2
    assert ips[0]["user_id"] == kim["id"] and ips[0]["last_seen"] >= ips[0]["first_seen"]
    assert stack.ok("user.ips", {"user": str(kim["id"])})["items"] == ips
    users = stack.ok("user.by_ip", {"ip": "127.0.0.1"})["items"]
    assert [u["email"] for u in users] == ["kim@circl.lu"]
    assert stack.ok("user.by_ip", {"ip": "10.0.0.7"})["items"] == []
    assert stack.ok("user.by_ip", {"ip": "::1"})["items"] == []
    assert_error(stack.cmd("user.by_ip", {"ip": "10.0.0.300"}), "invalid", "ip")
    assert_error(stack.cmd("user.ips", {"user": "nobody@circl.lu"}), "not_found", "user")
    # site admins only
    token = login_ok(stack, "kim@circl.lu")["session"]
    assert_error(with_session(stack, token, "user.ips", {"user": "kim@circl.lu"}), "forbidden")
    rc, out, _ = stack.adminctl("user", "by-ip", "127.0.0.1")
    assert rc == 0 and "kim@circl.lu" in out


def test_purge_task_deletes_ended_sessions_and_expired_bruteforce_rows(stack):
    make_user(stack, "lea@circl.lu")
    keep = login_ok(stack, "lea@circl.lu")["session"]
    gone = login_ok(stack, "lea@circl.lu")["session"]
    idle = login_ok(stack, "lea@circl.lu")["session"]
    stack.rows("UPDATE sessions SET expires = UTC_TIMESTAMP(3) - INTERVAL 1 MINUTE "
               "WHERE digest = %s", server_digest(stack, gone))
    stack.rows("UPDATE sessions SET last_seen = UTC_TIMESTAMP(3) - INTERVAL 2 HOUR "
               "WHERE digest = %s", server_digest(stack, idle))
    login(stack, "lea@circl.lu", password="Bad-Guess-1-xyz")
    login(stack, "lea@circl.lu", password="Bad-Guess-2-xyz")
    stack.rows("UPDATE bruteforces SET expire = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND "
               "ORDER BY id LIMIT 1")
    task = stack.rows("SELECT id, enabled, timer FROM tasks WHERE type = 'logins.purge'")[0]
    assert task["enabled"] == 1 and task["timer"] == 1
    stack.start_worker("default")
    job = stack.ok("task.run", {"task": task["id"]})["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = stack.rows("SELECT state, message FROM jobs WHERE id = %s", job)[0]
        if row["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert row["state"] == "done", row
    assert "2 ended sessions and 1 expired" in row["message"], row
    assert [r["digest"] for r in stack.rows("SELECT digest FROM sessions")] == \
        [server_digest(stack, keep)]
    assert stack.count("bruteforces") == 1
    assert with_session(stack, keep, "auth.whoami")["ok"] is True


def test_adminctl_auth_login_reads_the_password_never_from_argv(stack):
    make_user(stack, "max@circl.lu")
    rc, out, err = stack.adminctl("--json", "auth", "login", "max@circl.lu", "--password-stdin",
                                  key="", stdin=GOOD_PW + "\n")
    assert rc == 0, (out, err)
    token = json.loads(out)["session"]
    assert TOKEN.match(token)
    # help shows the way that works, not a --password word
    rc, out, err = stack.adminctl("auth", "login", "--help")
    assert rc == 0 and "[--password-stdin]" in out and "--password PASSWORD" not in out, out
    # the password as a command-line word is refused before anything is sent
    before = stack.count("logs")
    rc, out, err = stack.adminctl("auth", "login", "max@circl.lu", "--password", GOOD_PW)
    assert rc == 2 and "never takes the password on the command line" in err
    # no terminal and no --password-stdin: a usage error, not a hang
    rc, out, err = stack.adminctl("auth", "login", "max@circl.lu")
    assert rc == 2 and "--password-stdin" in err
    assert stack.count("logs") == before
    # a wrong password: refused (exit 1), same words as an unknown e-mail
    rc, out, err = stack.adminctl("auth", "login", "max@circl.lu", "--password-stdin",
                                  stdin="Wrong-Password-99\n")
    assert rc == 1 and "wrong e-mail or password" in err
    # the session drives adminctl through ADMINBUS_SESSION
    stack.env["ADMINBUS_SESSION"] = token
    try:
        rc, out, err = stack.adminctl("--json", "whoami", key="")
        assert rc == 0 and json.loads(out)["user"]["email"] == "max@circl.lu", (out, err)
        rc, out, err = stack.adminctl("--json", "auth", "logout", key="")
        assert rc == 0 and json.loads(out)["ended"] == 1, (out, err)
    finally:
        del stack.env["ADMINBUS_SESSION"]
    assert_error(with_session(stack, token, "auth.whoami"), "unauthenticated")


def test_an_outdated_hash_is_replaced_at_login(stack):
    """A hash carried over in an older scheme (sha512crypt here, of GOOD_PW; MISP's bcrypt
    takes the same path) logs in and is replaced by a yescrypt hash of the same password."""
    old = ("$6$abcdefgh$6OTZANfX71XApKhv8AlIiTd8Ncqw6Ro/TcMD.GJxbimCEnOqol/qpYVHeIifo.ruR1xWxhH9"
           "/oqr7goHT/mB30")
    noa = make_user(stack, "noa@circl.lu")
    stack.rows("UPDATE users SET password = %s WHERE id = %s", old, noa["id"])
    assert login_ok(stack, "noa@circl.lu")
    new = stack.rows("SELECT password FROM users WHERE id = %s", noa["id"])[0]["password"]
    assert new.startswith("$y$") and new != old
    assert login_ok(stack, "noa@circl.lu")
    assert stack.rows("SELECT password FROM users WHERE id = %s", noa["id"])[0]["password"] == new


def test_login_audit_carries_the_address_only_with_log_client_ip(stack):
    make_user(stack, "ola@circl.lu")
    login(stack, "ola@circl.lu", password="Bad-Guess-1-xyz")
    assert audit_rows(stack, action="login_fail")[-1]["ip"] is None
    set_setting(stack, "MISP.log_client_ip", True)
    login(stack, "ola@circl.lu", password="Bad-Guess-2-xyz")
    token = login_ok(stack, "ola@circl.lu")["session"]
    assert audit_rows(stack, action="login_fail")[-1]["ip"] == "127.0.0.1"
    assert audit_rows(stack, action="login")[-1]["ip"] == "127.0.0.1"
    # MISP.log_auth: one auth row per command, naming the session by id, never the token
    set_setting(stack, "MISP.log_auth", True)
    assert with_session(stack, token, "auth.whoami")["ok"] is True
    row = audit_rows(stack, action="auth")[-1]
    assert "using session" in row["title"] and token not in row["title"]
    assert row["email"] == "ola@circl.lu"
