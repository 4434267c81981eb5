"""TOTP and HOTP end to end through auth.login (issue 5, acceptance 4): enrolment shows the
secret once and stores it only sealed, codes computed here per RFC 4226 / RFC 6238 (hmac,
hashlib) log in, a replayed TOTP code is refused, HOTP's counter advances, admins delete a
user's OTP, Security.otp_required makes a new session enrol first."""

import base64
import hashlib
import hmac
import json
import struct
import time
import urllib.parse
import uuid

import msgpack

from helpers import admin, assert_error, audit_rows
from test_login import GOOD_PW, login, login_ok, make_user, with_session


def hotp(secret_b32, counter, digits=6):
    """RFC 4226: HMAC-SHA-1 of the big-endian counter, dynamic truncation."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return f"{code:0{digits}d}"


def totp_step(now=None):
    return int((time.time() if now is None else now) // 30)


def totp(secret_b32, step):
    """RFC 6238 with SHA-1 and 30 s steps: HOTP of the step number."""
    return hotp(secret_b32, step)


def test_reference_vectors_of_the_helpers():
    # RFC 4226 appendix D and RFC 6238 appendix B (SHA-1), so the codes below are right
    b32 = base64.b32encode(b"12345678901234567890").decode().rstrip("=")
    assert [hotp(b32, c) for c in range(3)] == ["755224", "287082", "359152"]
    assert hotp(b32, 59 // 30, 8) == "94287082"


def enrol(stack, user, hotp_kind=False, id=None):
    args = {"user": user}
    if hotp_kind:
        args["hotp"] = True
    return stack.ok("otp.enrol", args, id=id) if id else stack.ok("otp.enrol", args)


def test_totp_enrol_login_and_replay(stack):
    ana = make_user(stack, "ana@circl.lu")
    cmd_id = str(uuid.uuid4())
    res = enrol(stack, "ana@circl.lu", id=cmd_id)
    secret = res["secret"]
    assert res["kind"] == "totp" and res["digits"] == 6 and res["period"] == 30
    assert len(secret) == 32 and set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    uri = urllib.parse.urlparse(res["uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert urllib.parse.parse_qs(uri.query)["secret"] == [secret]
    assert urllib.parse.unquote(uri.path) == "/MISP:ana@circl.lu"
    # sealed at rest; masked in the stored reply; never in the audit
    row = stack.rows("SELECT totp, otp_kind FROM users WHERE id = %s", ana["id"])[0]
    assert row["totp"].startswith("enc:v1:") and secret not in row["totp"]
    assert row["otp_kind"] == "totp"
    stored = stack.rows("SELECT reply FROM command_ids WHERE cmd_id = %s", cmd_id)[0]["reply"]
    assert secret.encode() not in stored
    kept = msgpack.unpackb(stored)["result"]
    assert kept["secret"] == "*" * len(secret) and kept["uri"] == "*" * len(res["uri"])
    assert secret not in str(stack.rows("SELECT * FROM logs"))
    assert audit_rows(stack, action="otp_enrol", model_id=ana["id"])

    # the password alone is not enough now; no brute-force row for a missing code
    assert_error(login(stack, "ana@circl.lu"), "unauthenticated", "otp")
    assert stack.count("bruteforces") == 0
    assert_error(login(stack, "ana@circl.lu", otp="000000" if totp(secret, totp_step()) !=
                       "000000" else "111111"), "unauthenticated", "otp")
    assert stack.count("bruteforces") == 1  # a wrong code is a guess
    step = totp_step()
    res = login_ok(stack, "ana@circl.lu", otp=totp(secret, step))
    assert res["session"]
    # the same code again: refused as replayed
    err = assert_error(login(stack, "ana@circl.lu", otp=totp(secret, step)), "unauthenticated",
                       "otp")
    assert "already used" in err["message"]
    fails = audit_rows(stack, action="login_fail", model_id=ana["id"])
    assert "replayed" in fails[-1]["title"]
    # the next step's code (within the ±1 window) works once
    assert login_ok(stack, "ana@circl.lu", otp=totp(secret, step + 1))
    assert_error(login(stack, "ana@circl.lu", otp=totp(secret, step)), "unauthenticated", "otp")
    last = stack.rows("SELECT totp_last_step FROM users WHERE id = %s", ana["id"])[0]
    assert last["totp_last_step"] == step + 1
    # a wrong password with the right code is still a wrong password
    assert_error(login(stack, "ana@circl.lu", password="Wrong-Password-9",
                       otp=totp(secret, step + 1)), "unauthenticated", None)
    # a second enrolment needs the first deleted
    assert_error(stack.cmd("otp.enrol", {"user": "ana@circl.lu"}), "conflict", "user")


def test_hotp_counter_advances(stack):
    bob = make_user(stack, "bob@circl.lu")
    res = enrol(stack, str(bob["id"]), hotp_kind=True)
    secret = res["secret"]
    assert res["kind"] == "hotp" and res["counter"] == 0
    assert urllib.parse.urlparse(res["uri"]).netloc == "hotp"
    assert login_ok(stack, "bob@circl.lu", otp=hotp(secret, 0))
    assert stack.rows("SELECT hotp_counter FROM users WHERE id = %s", bob["id"])[0] == \
        {"hotp_counter": 1}
    # counter 0 is used up
    assert_error(login(stack, "bob@circl.lu", otp=hotp(secret, 0)), "unauthenticated", "otp")
    assert login_ok(stack, "bob@circl.lu", otp=hotp(secret, 1))
    # a token pressed a few times without logging in: the look-ahead catches up
    assert login_ok(stack, "bob@circl.lu", otp=hotp(secret, 6))
    assert stack.rows("SELECT hotp_counter FROM users WHERE id = %s", bob["id"])[0] == \
        {"hotp_counter": 7}
    assert_error(login(stack, "bob@circl.lu", otp=hotp(secret, 3)), "unauthenticated", "otp")
    # beyond the look-ahead of 10
    assert_error(login(stack, "bob@circl.lu", otp=hotp(secret, 30)), "unauthenticated", "otp")


def test_otp_delete_by_admins_not_by_the_user(stack):
    carl = make_user(stack, "carl@circl.lu")
    secret = enrol(stack, "carl@circl.lu")["secret"]
    token = login_ok(stack, "carl@circl.lu", otp=totp(secret, totp_step()))["session"]
    # MISP: users cannot remove their own second factor
    assert_error(with_session(stack, token, "otp.delete", {"user": "carl@circl.lu"}),
                 "forbidden")
    r = stack.ok("otp.delete", {"user": "carl@circl.lu"})
    assert r == {"user_id": carl["id"], "email": "carl@circl.lu", "deleted": "totp"}
    row = stack.rows("SELECT totp, otp_kind FROM users WHERE id = %s", carl["id"])[0]
    assert row == {"totp": None, "otp_kind": None}
    log = audit_rows(stack, action="otp_delete", model_id=carl["id"])
    assert len(log) == 1 and log[0]["user_id"] == admin(stack)["id"]
    assert login_ok(stack, "carl@circl.lu")  # the password alone works again
    assert_error(stack.cmd("otp.delete", {"user": "carl@circl.lu"}), "not_found", "user")


def test_users_enrol_themselves_only(stack):
    dana = make_user(stack, "dana@circl.lu")
    make_user(stack, "eve@circl.lu")
    token = login_ok(stack, "dana@circl.lu")["session"]
    # another user reads as no user at all (nothing learnt about who exists)
    assert_error(with_session(stack, token, "otp.enrol", {"user": "eve@circl.lu"}), "not_found",
                 "user")
    r = with_session(stack, token, "otp.enrol", {"user": str(dana["id"])})
    assert r["ok"] is True, r
    secret = r["result"]["secret"]
    assert login_ok(stack, "dana@circl.lu", otp=totp(secret, totp_step()))


def test_otp_required_session_must_enrol_first(stack):
    stack.ok("setting.set", {"name": "Security.otp_required", "value": True})
    stack.ok("setting.set", {"name": "Security.otp_issuer", "value": "CIRCL MISP"})
    fay = make_user(stack, "fay@circl.lu", role="admin")
    res = login_ok(stack, "fay@circl.lu")
    assert res["must_enrol_otp"] is True
    token = res["session"]
    err = assert_error(with_session(stack, token, "org.list"), "forbidden", "session")
    assert "otp enrol" in err["message"]
    assert with_session(stack, token, "auth.whoami")["ok"] is True
    r = with_session(stack, token, "otp.enrol", {"user": "fay@circl.lu"})
    assert r["ok"] is True, r
    assert urllib.parse.unquote(urllib.parse.urlparse(r["result"]["uri"]).path) == \
        "/CIRCL MISP:fay@circl.lu"
    assert with_session(stack, token, "org.list")["ok"] is True  # lifted at once
    secret = r["result"]["secret"]
    assert_error(login(stack, "fay@circl.lu"), "unauthenticated", "otp")
    res = login_ok(stack, "fay@circl.lu", otp=totp(secret, totp_step()))
    assert res["must_enrol_otp"] is False
    assert fay["id"] == res["user_id"]


def test_adminctl_otp_and_login(stack):
    make_user(stack, "gil@circl.lu")
    rc, out, err = stack.adminctl("--json", "otp", "enrol", "gil@circl.lu")
    assert rc == 0, (out, err)
    secret = json.loads(out)["secret"]
    rc, out, err = stack.adminctl("--json", "auth", "login", "gil@circl.lu", "--otp",
                                  totp(secret, totp_step()), "--password-stdin", key="",
                                  stdin=GOOD_PW + "\n")
    assert rc == 0 and len(json.loads(out)["session"]) == 64, (out, err)
    rc, out, err = stack.adminctl("otp", "delete", "gil@circl.lu")
    assert rc == 0, (out, err)
