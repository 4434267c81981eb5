"""No secret in clear anywhere (issue 5, acceptance 2).

One test makes every kind of secret the instance handles — given, generated and changed
passwords, a wrong password guessed at login, authkeys (bootstrap, created, reset, added),
TOTP and HOTP seeds, a session token, two secret settings — through the real engine, then looks
for each of them, in several encodings, in:

- every row of every table of the test's database (read back through SQL),
- the MariaDB server's own files (data files, redo log, Aria log: what a disk thief gets),
- every file under the stack's ADMINBUS_HOME except secrets/ (logs, configuration),
- every event published while it ran (a subscriber to all topics).

A worker sends a password-reset message (a generated password) through an SMTP server that
wants Email.username and Email.password. It runs twice: with every daemon (broker, engine,
worker) at log level info, and at debug, where they log the most.

The only places a secret may appear are the replies that hand it out once, and the message
that carries the reset password to its owner."""

import base64
import re
import uuid
from pathlib import Path

import msgpack
import pytest
import zmq

from conftest import Stack, running
from helpers import admin, wait_for, wait_job
from test_events import next_event, subscriber, wait_subscribed
from test_mail import SmtpSink, text_of
from test_otp_login import totp, totp_step

GIVEN_PW = "Given-Passw0rd-" + uuid.uuid4().hex[:12]
CHANGED_PW = "Changed-Passw0rd-" + uuid.uuid4().hex[:12]
GUESS_PW = "Wrong-Guess-" + uuid.uuid4().hex[:12]
SETTING_SECRET = "gpg-passphrase-" + uuid.uuid4().hex[:16]
SMTP_SECRET = "smtp-password-" + uuid.uuid4().hex[:16]
SMTP_LOGIN = "misp-relay"


@pytest.fixture(params=["info", "debug"])
def stack(request, mariadb, tmp_path):
    """The usual stack, with every daemon at log level request.param."""
    s = Stack(mariadb, tmp_path / "home")
    s.log_level = request.param
    with running(s):
        yield s


@pytest.fixture
def smtp(tmp_path):
    """An SMTP server that wants SMTP_LOGIN with SMTP_SECRET (outside the stack's home)."""
    with SmtpSink(tmp_path / "sink", auth=f"{SMTP_LOGIN}:{SMTP_SECRET}") as s:
        yield s


def forms(secret):
    """The encodings a leak could take: the text itself, its base64 and its hex."""
    raw = secret if isinstance(secret, bytes) else secret.encode()
    return {raw, base64.b64encode(raw), raw.hex().encode()}


def make_secrets(stack):
    """Create every kind of secret; returns {description: secret (str or bytes)}."""
    me = admin(stack)
    found = {"bootstrap authkey": stack.key}
    org = me["org_name"]
    ana = stack.ok("user.add", {"email": "ana@secrets.test", "org": org, "role": "User",
                                "password": GIVEN_PW, "no_password_change": True})
    bob = stack.ok("user.add", {"email": "bob@secrets.test", "org": org, "role": "User"})
    found["generated password (user.add)"] = bob["password"]
    stack.ok("user.change_pw", {"user": "ana@secrets.test", "password": CHANGED_PW,
                                "no_password_change": True})
    found["given password"] = GIVEN_PW
    found["changed password"] = CHANGED_PW
    found["generated password (change_pw)"] = stack.ok(
        "user.change_pw", {"user": "bob@secrets.test"})["password"]

    found["authkey (user.authkey)"] = stack.ok("user.authkey", {"user": ana["email"]})["authkey"]
    found["authkey (user.authkey reset)"] = stack.ok(
        "user.authkey", {"user": ana["email"], "reset": True})["authkey"]
    found["authkey (authkey.add)"] = stack.ok(
        "authkey.add", {"user": bob["email"], "comment": "ci", "read_only": True})["authkey"]

    totp_seed = stack.ok("otp.enrol", {"user": ana["email"]})["secret"]
    hotp_seed = stack.ok("otp.enrol", {"user": bob["email"], "hotp": True})["secret"]
    for kind, seed in (("TOTP", totp_seed), ("HOTP", hotp_seed)):
        found[f"{kind} seed (base32)"] = seed
        found[f"{kind} seed (bytes)"] = base64.b32decode(seed + "=" * (-len(seed) % 8))

    refused = stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.login",
                          "args": {"email": ana["email"], "password": GUESS_PW,
                                   "otp": totp(totp_seed, totp_step())}})
    assert refused["ok"] is False and refused["error"]["code"] == "unauthenticated", refused
    found["wrong password guessed at login"] = GUESS_PW
    session = stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.login",
                          "args": {"email": ana["email"], "password": CHANGED_PW,
                                   "otp": totp(totp_seed, totp_step())}})
    assert session["ok"] is True, session
    found["session token"] = session["result"]["session"]
    # the session works (so it is a real one), then is used for a command
    assert stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.whoami", "args": {},
                       "session": found["session token"]})["ok"] is True

    stack.ok("setting.set", {"name": "GnuPG.password", "value": SETTING_SECRET})
    found["secret setting (GnuPG.password)"] = SETTING_SECRET
    stack.ok("setting.set", {"name": "Email.password", "value": SMTP_SECRET})
    found["secret setting (Email.password)"] = SMTP_SECRET
    # and every key works once more after all that: the secrets are real, not decoys
    for what in ("authkey (user.authkey reset)", "authkey (authkey.add)"):
        assert stack.cmd("auth.whoami", {}, auth=found[what])["ok"] is True, what
    return found


def mail_a_reset_password(stack, smtp):
    """A worker mails ana a new password through smtp, logging in with Email.password (set by
    make_secrets); returns the password as the message carries it."""
    for name, value in (("MISP.email", "misp@secrets.test"), ("MISP.org", "CIRCL"),
                        ("MISP.contact", "support@secrets.test"),
                        ("MISP.baseurl", "https://misp.secrets.test"), ("GnuPG.sign", False),
                        ("Email.host", "127.0.0.1"), ("Email.port", smtp.port),
                        ("Email.timeout", 5), ("Email.username", SMTP_LOGIN)):
        stack.ok("setting.set", {"name": name, "value": value})
    stack.start_worker("email")
    job = stack.ok("user.reset_password", {"user": "ana@secrets.test"})["id"]
    assert wait_job(stack, job)["state"] == "done"
    [(_, raw)] = smtp.messages("ana@secrets.test")
    m = re.search(r"temporary password (\S+);", text_of(raw))
    assert m, text_of(raw)
    return m.group(1)


def a_refused_frame(stack):
    """A command the broker refuses (two frames), carrying a password: logged at debug as a
    refusal, never with its bytes."""
    body = msgpack.packb(stack.command("auth.login", {"email": "ana@secrets.test",
                                                      "password": GUESS_PW}))
    s = stack.socket()
    try:
        s.send_multipart([b"", body, b"one frame too many"])
        assert s.poll(10000), "the broker did not answer a message of two frames"
        reply = msgpack.unpackb(s.recv_multipart()[-1])
        assert reply["error"]["field"] == "frame", reply
    finally:
        s.close(linger=0)


def database_bytes(stack):
    """(table.column, bytes) for every non-NULL value of every table of the test database."""
    tables = [r["TABLE_NAME"] for r in stack.rows(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")]
    assert "users" in tables and "sessions" in tables and "auth_keys" in tables, tables
    for t in tables:
        for row in stack.rows(f"SELECT * FROM `{t}`"):
            for col, val in row.items():
                if val is None:
                    continue
                yield f"{t}.{col}", val if isinstance(val, bytes) else str(val).encode()


def files_under(root, skip=()):
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts):
            yield str(p), p.read_bytes()


def leaks(secrets, places):
    """Where each secret shows up: [(secret's description, place)]."""
    needles = [(what, f) for what, s in secrets.items() for f in forms(s)]
    out = []
    for place, data in places:
        for what, needle in needles:
            if needle in data:
                out.append((what, place))
    return out


def test_no_secret_in_clear_anywhere(stack, smtp):
    assert stack.mariadb.restartable(), "the session's MariaDB is not one ops/db runs"
    sub = subscriber(stack, "")
    wait_subscribed(stack, sub)
    secrets = make_secrets(stack)
    secrets["reset password (mailed by a worker)"] = mail_a_reset_password(stack, smtp)
    a_refused_frame(stack)
    assert (smtp.dir / "auth.log").read_text().split()[-2:] == [SMTP_LOGIN, "ok"]
    if stack.log_level == "debug":  # the daemons really logged at debug
        # waited for: the broker writes its refusal's line after sending the refusal
        for daemon, line in ((stack.broker, "debug rejected a message of "),
                             (stack.engine, "debug reply "),
                             (stack.workers[0], "debug worker ")):
            wait_for(f"{daemon.name} logs {line!r}",
                     lambda: line in Path(daemon.log).read_text(), timeout=10)
    events = []
    while (ev := next_event(sub, 0.5)) is not None:
        events.append(ev)
    assert any(t.startswith("audit.User.") for t, _ in events), "no user event seen"
    stack.rows("FLUSH TABLES")  # what is written is on disk for the file scan

    found = leaks(secrets, database_bytes(stack))
    found += leaks(secrets, files_under(stack.home, skip={"secrets"}))
    found += leaks(secrets, files_under(Path(stack.mariadb.home) / "mysql"))
    found += leaks(secrets, [(f"event {t}", repr(e).encode()) for t, e in events])
    assert not found, "secrets in clear:\n" + "\n".join(f"  {w}: in {p}" for w, p in found)
    # and the scans can see: a marker written on purpose is found by them
    marker = "marker-" + uuid.uuid4().hex
    stack.ok("org.add", {"name": marker})
    stack.rows("FLUSH TABLES")
    assert leaks({"marker": marker}, database_bytes(stack)), "the database scan is blind"
    assert leaks({"marker": marker}, files_under(Path(stack.mariadb.home) / "mysql")), \
        "the scan of the server's files is blind"
