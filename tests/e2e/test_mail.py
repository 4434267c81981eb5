"""E-mail (issue 6) end to end: a real SMTP server on loopback (Debian's
python3-aiosmtpd, tests/e2e/smtp_sink.py), real GnuPG keys made in temporary homes, the
engine (mail.test, mail.contact, mail.status) and an `email` worker.

What is checked: the received message verifies against the instance's key with
`gpg --verify` (the signed part exactly as sent, RFC 3156); a user with a key gets it
encrypted and it decrypts with the user's key; a user whose key has expired gets nothing
and the recipient's status says why; 4xx then 2xx is retried and delivered once; 5xx fails
the recipient with the server's reply kept; a subject with CR/LF is refused and a display
name with CR/LF cannot add a header; a worker killed -9 mid-way skips nobody, and a message
sent twice carries the same Message-ID; every sent message is audited without its text.
"""

import email
import email.header
import email.policy
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import clean_env, free_ports
# wait_job: the mail tests import it from here
from helpers import LoopServer, assert_error, audit_rows, wait_job  # noqa: F401

INSTANCE_EMAIL = "misp-instance@mail.test"
INSTANCE_PASSPHRASE = "instance key passphrase"
FROM = "misp@mail.test"


# --- GnuPG ------------------------------------------------------------------------------


def gpg(home, *args, check=True, input=None):
    return subprocess.run(["gpg", "--homedir", home, "--batch", *args], env=clean_env(),
                          capture_output=True, check=check, timeout=60, input=input)


class Homes:
    """Short-path GnuPG homes (gpg-agent's socket must fit the Unix limit), each agent
    stopped by its home at the end (gpgconf --homedir H --kill all), then removed."""

    def __init__(self):
        self.homes = []

    def new(self):
        h = tempfile.mkdtemp(prefix="abm", dir="/tmp")
        os.chmod(h, 0o700)
        self.homes.append(h)
        return h

    def close(self):
        for h in self.homes:
            subprocess.run(["gpgconf", "--homedir", h, "--kill", "all"], env=clean_env(),
                           check=False, capture_output=True)
            shutil.rmtree(h, ignore_errors=True)


def fingerprint(home, uid):
    out = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return re.search(r"^fpr:+([0-9A-F]{40}):", out, re.M).group(1)


@pytest.fixture(scope="module")
def keys():
    """The instance's key (with a passphrase), a user's key, an expired user key, and a
    home holding only the instance's public key (to verify against)."""
    homes = Homes()
    try:
        inst = homes.new()
        gpg(inst, "--pinentry-mode", "loopback", "--passphrase", INSTANCE_PASSPHRASE,
            "--quick-gen-key", f"MISP instance <{INSTANCE_EMAIL}>", "default", "default", "never")
        ana = homes.new()
        gpg(ana, "--passphrase", "", "--quick-gen-key", "Ana <ana@mail.test>", "default",
            "default", "never")
        old = homes.new()
        # Made in 2020 with one day of validity: expired ever since.
        gpg(old, "--passphrase", "", "--faked-system-time", "20200101T000000!",
            "--quick-gen-key", "Carol <carol@mail.test>", "default", "default", "1d")
        verify = homes.new()
        gpg(verify, "--import", input=gpg(inst, "--armor", "--export", INSTANCE_EMAIL).stdout)
        yield {
            "instance": inst,
            "instance_fpr": fingerprint(inst, INSTANCE_EMAIL),
            "ana": ana,
            "ana_pub": gpg(ana, "--armor", "--export", "ana@mail.test").stdout.decode(),
            "carol_pub": gpg(old, "--armor", "--export", "carol@mail.test").stdout.decode(),
            "verify": verify,
        }
    finally:
        homes.close()


# --- the SMTP sink ---------------------------------------------------------------------


class SmtpSink(LoopServer):
    """tests/e2e/smtp_sink.py on a free loopback port, stopped by its pid."""

    def __init__(self, folder, cert=None, implicit_tls=False, auth=None):
        args = []
        if cert:
            args += ["--cert", cert[0], "--key", cert[1]]
        if implicit_tls:
            args += ["--implicit-tls"]
        if auth:
            args += ["--auth", auth]
        super().__init__("smtp_sink.py", folder, *args)

    def plan(self, rcpt=None, data=None, hold=None, delay_rcpt=None):
        (self.dir / "plan.json").write_text(json.dumps({"rcpt": rcpt or {}, "data": data or {},
                                                        "hold": hold or {},
                                                        "delay_rcpt": delay_rcpt or {}}))

    def messages(self, to=None):
        """[(envelope, bytes)] in arrival order, optionally only those to `to`."""
        out = []
        for eml in sorted(self.dir.glob("*.eml")):
            env = json.loads(eml.with_suffix(".json").read_text())
            if to is None or to in env["rcpt_tos"]:
                out.append((env, eml.read_bytes()))
        return out


@pytest.fixture
def sink(tmp_path):
    with SmtpSink(tmp_path / "sink") as s:
        yield s


@pytest.fixture
def cert(tmp_path):
    """A self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    c, k = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k,
                    "-out", c, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return str(c), str(k)


def configure(stack, sink, keys, **extra):
    """The settings a mail test needs; extra overrides them (None leaves one unset)."""
    settings = {"MISP.email": FROM, "MISP.org": "CIRCL", "MISP.contact": "support@mail.test",
                "MISP.baseurl": "https://misp.mail.test", "Email.host": "127.0.0.1",
                "Email.port": sink.port, "Email.timeout": 5, "GnuPG.homedir": keys["instance"],
                "GnuPG.email": INSTANCE_EMAIL, "GnuPG.password": INSTANCE_PASSPHRASE}
    settings.update(extra)
    for name, value in settings.items():
        if value is not None:  # None: left unset
            stack.ok("setting.set", {"name": name, "value": value})


def add_user(stack, email_addr, gpgkey=None, expired_key=False):
    """A user of the host organisation with role User; its GnuPG key set with user.edit
    (which checks it), or, for a key that has expired since it was set (user.edit refuses
    it now, rightly), written as user.edit would have written it then."""
    stack.ok("user.add", {"email": email_addr, "org": "1", "role": "3"})
    if gpgkey is not None and not expired_key:
        stack.ok("user.edit", {"user": email_addr, "gpgkey": gpgkey})
    elif gpgkey is not None:
        assert_error(stack.cmd("user.edit", {"user": email_addr, "gpgkey": gpgkey}), "invalid",
                     "gpgkey")
        with stack.db.cursor() as c:
            c.execute("UPDATE users SET gpgkey = %s WHERE email = %s", (gpgkey, email_addr))
    return stack.rows("SELECT id FROM users WHERE email = %s", email_addr)[0]["id"]


# --- reading what arrived ----------------------------------------------------------------


def split_multipart(raw, content_type_header_block):
    """The body parts of a multipart entity, as the exact bytes between its delimiters."""
    m = re.search(rb'boundary="([^"]+)"', content_type_header_block)
    assert m, content_type_header_block[:400]
    b = b"--" + m.group(1)
    body = raw.split(b"\r\n\r\n", 1)[1]
    first = body.index(b + b"\r\n")
    end = body.index(b"\r\n" + b + b"--")
    return body[first + len(b) + 2:end].split(b"\r\n" + b + b"\r\n")


def verify_signed(keys, entity, tmp):
    """gpg --verify the multipart/signed entity against the instance's public key only.
    Returns the signed part's bytes."""
    assert b"multipart/signed" in entity.split(b"\r\n\r\n", 1)[0], entity[:300]
    part, sig = split_multipart(entity, entity.split(b"\r\n\r\n", 1)[0])
    assert b"application/pgp-signature" in sig
    (tmp / "part").write_bytes(part)
    (tmp / "sig.asc").write_bytes(sig.split(b"\r\n\r\n", 1)[1])
    r = gpg(keys["verify"], "--status-fd", "1", "--verify", str(tmp / "sig.asc"),
            str(tmp / "part"), check=False)
    status = r.stdout.decode()
    assert r.returncode == 0 and "[GNUPG:] GOODSIG" in status, status + r.stderr.decode()
    assert f"VALIDSIG {keys['instance_fpr']}" in status, status
    return part


def text_of(part):
    msg = email.message_from_bytes(part, policy=email.policy.default)
    return msg.get_content()


def header(raw, name):
    return email.message_from_bytes(raw, policy=email.policy.default)[name]


def header_names(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


def status_of(stack, job):
    return {r["email"]: r for r in stack.ok("mail.status", {"job": job})["items"]}


# --- the tests ----------------------------------------------------------------------------


def test_mail_test_is_signed_and_verifies(stack, sink, keys, tmp_path):
    configure(stack, sink, keys)
    r = stack.ok("mail.test", {"to": "ops@mail.test"})
    assert r["sent"] is True and r["code"] == 250 and r["encrypted"] is False, r
    assert "accepted" in r["reply"]
    [(env, raw)] = sink.messages()
    assert env["mail_from"] == FROM and env["rcpt_tos"] == ["ops@mail.test"]
    assert header(raw, "Message-ID") == r["message_id"]
    assert header(raw, "Subject") == "[CIRCL MISP] Test message"
    assert header(raw, "To") == "ops@mail.test"
    assert header(raw, "MIME-Version") == "1.0" and header(raw, "Date")
    part = verify_signed(keys, raw, tmp_path)
    text = text_of(part)
    assert "test message from adminbus" in text and "Support: support@mail.test" in text
    # Tampering with one byte of the signed part breaks the signature.
    (tmp_path / "part").write_bytes(part.replace(b"test message", b"best message"))
    bad = gpg(keys["verify"], "--verify", str(tmp_path / "sig.asc"), str(tmp_path / "part"),
              check=False)
    assert bad.returncode != 0
    [row] = audit_rows(stack, action="email")
    assert "ops@mail.test" in row["title"] and r["message_id"] in row["change"]
    assert "test message from adminbus" not in row["change"]


def test_mail_test_refusals(stack, sink, keys):
    configure(stack, sink, keys)
    assert_error(stack.cmd("mail.test", {"to": "ops@mail.test\r\nBcc: evil@mail.test"}),
                 "invalid", "to")
    sink.plan(rcpt={"nobody@mail.test": "550 5.1.1 No such user here"})
    err = assert_error(stack.cmd("mail.test", {"to": "nobody@mail.test"}), "invalid", "to")
    assert "550" in err["message"] and "No such user here" in err["message"]
    stack.ok("setting.set", {"name": "Email.port", "value": free_ports(1)[0]})  # nobody there
    err = assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "unavailable",
                       "Email.host")
    assert "Email" not in err["message"] or err["message"]
    assert sink.messages() == []


def test_contact_signs_encrypts_and_refuses_expired_keys(stack, sink, keys, tmp_path):
    configure(stack, sink, keys)
    add_user(stack, "ana@mail.test", keys["ana_pub"])
    add_user(stack, "carol@mail.test", keys["carol_pub"], expired_key=True)
    add_user(stack, "dave@mail.test")
    w = stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "Maintenance window",
                                  "message": "The instance is down on Sunday.\nSorry!"})
    assert r["type"] == "email" and r["queue"] == "email" and r["recipients"] == 4, r
    job = wait_job(stack, r["id"])
    assert job["state"] == "done" and "Sent 3 of 4; 1 failed" in job["message"], job
    st = status_of(stack, r["id"])
    assert st["ana@mail.test"]["state"] == "sent" and st["ana@mail.test"]["encrypted"] == 1
    assert st["dave@mail.test"]["state"] == "sent" and st["dave@mail.test"]["encrypted"] == 0
    assert st["admin@admin.test"]["state"] == "sent"
    carol = st["carol@mail.test"]
    assert carol["state"] == "failed" and "has expired" in carol["error"], carol
    assert "never in clear text" in carol["error"]
    assert sink.messages("carol@mail.test") == []  # nothing, not even in clear

    # Dave (no key): signed, clear text, verifies.
    [(_, raw)] = sink.messages("dave@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] Maintenance window"
    assert "The instance is down on Sunday." in text_of(verify_signed(keys, raw, tmp_path))

    # Ana: multipart/encrypted; decrypts with her key to a signed entity that verifies.
    [(_, raw)] = sink.messages("ana@mail.test")
    assert b"Sunday" not in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/encrypted" in head and b"application/pgp-encrypted" in head
    version, cipher = split_multipart(raw, head)
    assert b"Version: 1" in version
    (tmp_path / "msg.asc").write_bytes(cipher.split(b"\r\n\r\n", 1)[1])
    dec = gpg(keys["ana"], "--decrypt", str(tmp_path / "msg.asc"))
    inner = dec.stdout
    assert "The instance is down on Sunday." in text_of(verify_signed(keys, inner, tmp_path))

    # Message-IDs: one per recipient, the same for the same job and address.
    ids = {m["email"]: m["message_id"] for m in st.values()}
    assert header(raw, "Message-ID") == ids["ana@mail.test"]
    assert len(set(ids.values())) == 4
    # Every sent message is audited, without the text.
    rows = audit_rows(stack, action="admin_email")
    assert len(rows) == 3 and all("Sunday" not in (x["change"] + x["title"]) for x in rows)
    w.stop()


def test_temporary_failures_retry_and_permanent_ones_keep_the_reply(stack, sink, keys):
    configure(stack, sink, keys)
    add_user(stack, "ana@mail.test")
    add_user(stack, "bob@mail.test")
    sink.plan(rcpt={"bob@mail.test": "550 5.1.1 <bob@mail.test>: Recipient unknown"},
              data={"ana@mail.test": ["451 4.7.1 Greylisted, try again later"]})
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "Hello", "message": "Hi"})
    job = wait_job(stack, r["id"], timeout=90)
    assert job["state"] == "done" and job["attempts"] == 2, job
    st = status_of(stack, r["id"])
    ana, bob = st["ana@mail.test"], st["bob@mail.test"]
    assert ana["state"] == "sent" and ana["attempts"] == 2, ana
    assert bob["state"] == "failed" and bob["smtp_code"] == 550, bob
    assert "Recipient unknown" in bob["error"] and bob["attempts"] == 1
    assert len(sink.messages("ana@mail.test")) == 1  # the 451 took nothing
    assert sink.messages("bob@mail.test") == []


def test_temporary_failures_on_the_last_attempt_fail_the_recipient(stack, sink, keys):
    configure(stack, sink, keys)
    sink.plan(data={"admin@admin.test": ["451 4.3.0 Busy (1)", "451 4.3.0 Busy (2)",
                                         "451 4.3.0 Busy (3)"]})
    r = stack.ok("mail.contact", {"user": "admin@admin.test", "subject": "S", "message": "M"})
    with stack.db.cursor() as c:  # fewer attempts than the type's nine, before any worker
        c.execute("UPDATE jobs SET max_attempts = 2 WHERE id = %s", (r["id"],))
    stack.start_worker("email")
    job = wait_job(stack, r["id"], timeout=90)
    assert job["state"] == "done" and job["attempts"] == 2, job
    row = status_of(stack, r["id"])["admin@admin.test"]
    assert row["state"] == "failed" and row["smtp_code"] == 451, row
    assert row["error"] == "gave up after the last attempt: 451 4.3.0 Busy (2)", row
    assert sink.messages() == []


def test_server_down_then_up_finishes_the_job(stack, sink, keys):
    configure(stack, sink, keys)
    stack.ok("setting.set", {"name": "Email.port", "value": free_ports(1)[0]})
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"user": "admin@admin.test", "subject": "S", "message": "M"})
    deadline = time.monotonic() + 30
    while status_of(stack, r["id"])["admin@admin.test"]["state"] != "retrying":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    row = status_of(stack, r["id"])["admin@admin.test"]
    assert row["smtp_code"] is None and row["error"], row  # no connection: libcurl's reason
    stack.ok("setting.set", {"name": "Email.port", "value": sink.port})
    job = wait_job(stack, r["id"], timeout=90)
    assert job["state"] == "done", job
    assert len(sink.messages("admin@admin.test")) == 1


def test_a_slow_server_times_out_and_the_retry_delivers_once(stack, sink, keys):
    configure(stack, sink, keys, **{"Email.timeout": 2})
    sink.plan(delay_rcpt={"admin@admin.test": [5]})  # once: the retry is answered at once
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"user": "admin@admin.test", "subject": "S", "message": "M"})
    job = wait_job(stack, r["id"], timeout=90)
    assert job["state"] == "done" and job["attempts"] == 2, job
    row = status_of(stack, r["id"])["admin@admin.test"]
    assert row["state"] == "sent" and row["attempts"] == 2, row
    assert len(sink.messages("admin@admin.test")) == 1
    rc, out, err = stack.adminctl("mail", "status", r["id"])
    assert rc == 0 and "admin@admin.test" in out and "sent" in out, out + err


def test_starttls_is_used_and_required(stack, keys, cert, tmp_path):
    tls_sink = SmtpSink(tmp_path / "tls-sink", cert=cert)
    plain_sink = SmtpSink(tmp_path / "plain-sink")
    try:
        configure(stack, tls_sink, keys, **{"Email.tls": "starttls"})
        # The certificate is self-signed: checked, it is refused, and nothing is sent.
        err = assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "unavailable",
                           "Email.host")
        assert "certificate" in err["message"].lower() or "SSL" in err["message"], err
        stack.ok("setting.set", {"name": "Email.tls_verify", "value": False})
        stack.ok("mail.test", {"to": "ops@mail.test"})
        [(env, _)] = tls_sink.messages()
        assert env["tls"] is True
        # A server without STARTTLS gets nothing, not even in clear text.
        stack.ok("setting.set", {"name": "Email.port", "value": plain_sink.port})
        assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "unavailable", "Email.host")
        assert plain_sink.messages() == []
    finally:
        tls_sink.stop()
        plain_sink.stop()


def test_implicit_tls(stack, keys, cert, tmp_path):
    s = SmtpSink(tmp_path / "smtps-sink", cert=cert, implicit_tls=True)
    try:
        configure(stack, s, keys, **{"Email.tls": "tls", "Email.tls_verify": False})
        r = stack.ok("mail.test", {"to": "ops@mail.test"})
        assert r["code"] == 250
        [(env, _)] = s.messages()
        assert env["tls"] is True
    finally:
        s.stop()


def password_ok(password, hashed):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt: yescrypt, as the engine writes it
    return crypt.crypt(password, hashed) == hashed


def nowhere_in_clear(stack, secret):
    for table, cols in (("jobs", "payload, message, job_input, last_error"),
                        ("email_recipients", "error, secret_sealed, message_id"),
                        ("logs", "title, `change`"), ("command_ids", "reply")):
        for row in stack.rows(f"SELECT {cols} FROM {table}"):
            for v in row.values():
                v = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
                assert secret not in v, (table, row)


def test_password_reset_sets_the_password_when_the_message_is_sent(stack, sink, keys, tmp_path):
    configure(stack, sink, keys)
    ana = add_user(stack, "ana@mail.test", keys["ana_pub"])
    # a session someone holds: the reset ends it with the old password
    stack.rows("INSERT INTO sessions (digest, user_id, created, expires, last_seen) "
                  "VALUES (%s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3) + INTERVAL 1 DAY, "
                  "UTC_TIMESTAMP(3))", b"s" * 32, ana)
    stack.start_worker("email")
    r = stack.ok("user.reset_password", {"user": "ana@mail.test"})
    assert r["type"] == "email" and r["recipients"] == 1
    assert wait_job(stack, r["id"])["state"] == "done"
    [(_, raw)] = sink.messages("ana@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] Password reset"
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/encrypted" in head  # she has a key: the password travels encrypted
    _, cipher = split_multipart(raw, head)
    (tmp_path / "msg.asc").write_bytes(cipher.split(b"\r\n\r\n", 1)[1])
    inner = gpg(keys["ana"], "--decrypt", str(tmp_path / "msg.asc")).stdout
    text = text_of(verify_signed(keys, inner, tmp_path))
    m = re.search(r"temporary password (\S+);", text)
    assert m and "Log in as ana@mail.test" in text and "https://misp.mail.test" in text, text
    assert "\\n" not in text and "\r\n\r\n" in text  # MISP's literal \n: line breaks
    password = m.group(1)
    user = stack.rows("SELECT password, change_pw FROM users WHERE id = %s", ana)[0]
    assert user["change_pw"] == 1 and password_ok(password, user["password"])
    assert stack.count("sessions") == 0
    [row] = audit_rows(stack, action="password_reset")
    assert row["model_id"] == ana and "password (*****) => (*****)" in row["change"]
    assert stack.rows("SELECT secret_sealed FROM email_recipients")[0]["secret_sealed"] is None
    nowhere_in_clear(stack, password)
    # A contact message is not a password message: no password in it, none changed.
    r = stack.ok("mail.contact", {"user": "ana@mail.test", "subject": "x", "message": "$password"})
    assert wait_job(stack, r["id"])["state"] == "done"
    assert stack.rows("SELECT password FROM users WHERE id = %s", ana)[0]["password"] == \
        user["password"]


def test_welcome_with_own_text_and_a_refused_message_changes_nothing(stack, sink, keys,
                                                                     tmp_path):
    configure(stack, sink, keys)
    dave = add_user(stack, "dave@mail.test")
    before = stack.rows("SELECT password FROM users WHERE id = %s", dave)[0]["password"]
    sink.plan(rcpt={"dave@mail.test": "550 5.7.1 Mailbox disabled"})
    stack.start_worker("email")
    r = stack.ok("user.reset_password", {"user": "dave@mail.test", "first_time": True})
    job = wait_job(stack, r["id"])
    assert "1 failed" in job["message"], job
    st = status_of(stack, r["id"])["dave@mail.test"]
    assert st["state"] == "failed" and "Mailbox disabled" in st["error"]
    assert st["smtp_code"] == 550
    assert stack.rows("SELECT password FROM users WHERE id = %s", dave)[0]["password"] == before
    assert len(audit_rows(stack, action="password_reset")) == 0
    sink.plan()
    r = stack.ok("user.reset_password", {"user": str(dave), "first_time": True,
                                         "message": "Welcome $username!\nPassword: $password\n"})
    assert wait_job(stack, r["id"])["state"] == "done"
    [(_, raw)] = sink.messages("dave@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] New user registration"
    text = text_of(verify_signed(keys, raw, tmp_path))
    password = re.search(r"Password: (\S+)", text).group(1)
    assert text.startswith("Welcome dave@mail.test!")
    assert password_ok(password, stack.rows("SELECT password FROM users WHERE id = %s",
                                             dave)[0]["password"])
    [row] = audit_rows(stack, action="password_reset")
    assert row["title"].startswith("Welcome e-mail sent to dave@mail.test")
    assert_error(stack.cmd("user.reset_password", {"user": "nobody@mail.test"}), "not_found",
                 "user")


def test_headers_cannot_be_injected(stack, sink, keys):
    configure(stack, sink, keys)
    before = stack.count("jobs")
    for subject in ("Hello\r\nBcc: evil@mail.test", "Hello\nBcc: evil@mail.test", "a\rb"):
        assert_error(stack.cmd("mail.contact", {"all": True, "subject": subject,
                                                "message": "x"}), "invalid", "subject")
    assert stack.count("jobs") == before
    rc, out, err = stack.adminctl("contact", "--all", "--subject", "Hi\nBcc: evil@mail.test",
                                  "--message", "x")
    assert rc != 0 and "subject" in (out + err)
    # A display name with CR/LF (set by force, as an operator could) stays one header.
    stack.ok("setting.set", {"name": "MISP.email_from_name",
                             "value": "Ops\r\nBcc: evil@mail.test", "force": True})
    stack.ok("mail.test", {"to": "ops@mail.test"})
    [(env, raw)] = sink.messages()
    assert env["rcpt_tos"] == ["ops@mail.test"]
    names = header_names(raw)
    assert "Bcc" not in names and names.count("From") == 1, names
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head
    # The name is carried, encoded, in the one From header, before the real address.
    m = re.search(rb"^From: ((?:=\?UTF-8\?B\?[^?]*\?=(?:\r\n )?)+) <misp@mail\.test>\r\n", head,
                  re.M)
    assert m, head
    name = "".join(p.decode() if isinstance(p, bytes) else p
                   for p, _ in email.header.decode_header(m.group(1).decode()))
    assert name == "Ops\r\nBcc: evil@mail.test"


def test_an_unusable_instance_key_fails_the_job_and_a_retry_resumes(stack, sink, keys):
    configure(stack, sink, keys, **{"GnuPG.email": "nobody@mail.test"})
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "S", "message": "M"})
    job = wait_job(stack, r["id"])
    assert job["state"] == "failed" and "no secret key for nobody@mail.test" in \
        stack.rows("SELECT last_error FROM jobs WHERE id = %s", r["id"])[0]["last_error"]
    assert sink.messages() == []
    # The job has stopped: its recipient is shown failed with the reason (its row waits
    # for a retry), and the notice says how to go on.
    st = stack.ok("mail.status", {"job": r["id"]})
    [admin] = st["items"]
    assert admin["state"] == "failed" and admin["attempts"] == 0, admin
    assert admin["error"].startswith("not sent: the mail-out failed: "), admin
    assert "no secret key for nobody@mail.test" in admin["error"], admin
    assert st["counts"]["failed"] == 1 and st["counts"]["queued"] == 0, st
    assert f"adminctl job retry {r['id']}" in st["notice"], st
    assert "failed for good" not in st["notice"], st
    stack.ok("setting.set", {"name": "GnuPG.email", "value": INSTANCE_EMAIL})
    stack.ok("job.retry", {"job": r["id"]})
    assert wait_job(stack, r["id"])["state"] == "done"
    assert len(sink.messages("admin@admin.test")) == 1
    admin = status_of(stack, r["id"])["admin@admin.test"]
    assert admin["state"] == "sent" and admin["error"] is None, admin


def test_adminctl_contact_with_a_message_file(stack, sink, keys, tmp_path):
    configure(stack, sink, keys)
    stack.start_worker("email")
    text = "Dear users,\n\nthe instance moves on Sunday. Caf\u00e9 at 10:00 = on us.\n"
    (tmp_path / "notice.txt").write_text(text)
    r = json.loads(stack.adminctl("--json", "contact", "--user", "admin@admin.test",
                                  "--subject", "Maintenance window", "--message-file",
                                  tmp_path / "notice.txt")[1])
    assert wait_job(stack, r["id"])["state"] == "done"
    [(_, raw)] = sink.messages()
    body = text_of(verify_signed(keys, raw, tmp_path)).replace("\r\n", "\n")
    assert body.startswith(text), body


def test_contact_refusals(stack, sink, keys):
    configure(stack, sink, keys)
    before = stack.count("jobs")
    assert_error(stack.cmd("mail.contact", {"subject": "s", "message": "m"}), "invalid", "user")
    assert_error(stack.cmd("mail.contact", {"all": True, "user": "admin@admin.test",
                                            "subject": "s", "message": "m"}), "invalid", "all")
    assert_error(stack.cmd("mail.contact", {"user": "nobody@mail.test", "subject": "s",
                                            "message": "m"}), "not_found", "user")
    assert stack.count("jobs") == before
    assert_error(stack.cmd("mail.status", {"job": 999999}), "not_found", "job")


def add_many_users(stack, n):
    with stack.db.cursor() as c:
        c.executemany("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
                      "VALUES (%s, 1, 3, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                      [(f"user{i:03d}@mail.test",) for i in range(n)])


def messages_by_recipient(sink):
    by_rcpt = {}
    for env, raw in sink.messages():
        for to in env["rcpt_tos"]:
            by_rcpt.setdefault(to, []).append(header(raw, "Message-ID"))
    return by_rcpt


def test_worker_killed_mid_mailout_skips_nobody(stack, sink, keys):
    """Acceptance 3: kill -9 the worker during a 500-recipient mail-out; after recovery
    every recipient has its message, and any recipient with two has two with the same
    Message-ID."""
    configure(stack, sink, keys)
    n = 500
    add_many_users(stack, n)
    w = stack.start_worker("email", job_lease_s=3)
    r = stack.ok("mail.contact", {"all": True, "subject": "Many", "message": "To all"})
    deadline = time.monotonic() + 120
    while len(sink.messages()) < n // 3:
        assert time.monotonic() < deadline, "the mail-out does not progress"
        time.sleep(0.05)
    w.kill9()
    assert len(sink.messages()) < n + 1, "the worker finished before it was killed"
    stack.start_worker("email", job_lease_s=3)
    job = wait_job(stack, r["id"], timeout=300)
    assert job["state"] == "done" and job["message"] == f"Sent {n + 1} of {n + 1}; 0 failed", job
    st = {}
    for page in (1, 2):
        st.update({x["email"]: x for x in stack.ok("mail.status", {"job": r["id"], "page": page,
                                                                  "limit": 1000})["items"]})
    assert len(st) == n + 1 and all(x["state"] == "sent" for x in st.values())
    by_rcpt = messages_by_recipient(sink)
    assert set(by_rcpt) == set(st), set(st) ^ set(by_rcpt)
    for to, ids in by_rcpt.items():
        assert len(set(ids)) == 1 and ids[0] == st[to]["message_id"], (to, ids)


def test_kill_between_acceptance_and_record_resends_with_the_same_message_id(stack, sink, keys):
    """The window SMTP cannot close: the server has taken the message, the worker dies
    before it records that. The recipient is sent again, with the same Message-ID."""
    configure(stack, sink, keys)
    add_many_users(stack, 5)
    victim = "user002@mail.test"
    sink.plan(hold={victim: 30})  # stored at once, answered 30 s later
    w = stack.start_worker("email", job_lease_s=3)
    r = stack.ok("mail.contact", {"all": True, "subject": "Window", "message": "Twice?"})
    deadline = time.monotonic() + 60
    while victim not in messages_by_recipient(sink):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status_of(stack, r["id"])[victim]["state"] == "sending"
    w.kill9()  # inside the window: the sink has it, our record says 'sending'
    stack.start_worker("email", job_lease_s=3)
    job = wait_job(stack, r["id"], timeout=120)
    assert job["state"] == "done", job
    st = status_of(stack, r["id"])
    by_rcpt = messages_by_recipient(sink)
    assert len(by_rcpt[victim]) == 2, by_rcpt[victim]
    assert by_rcpt[victim][0] == by_rcpt[victim][1] == st[victim]["message_id"]
    assert st[victim]["attempts"] == 2 and st[victim]["state"] == "sent"
    assert all(len(ids) == 1 for to, ids in by_rcpt.items() if to != victim)


def test_a_password_message_resent_after_a_crash_carries_the_same_password(stack, sink, keys,
                                                                           tmp_path):
    """Killed between the server's acceptance and our record: the re-sent copy has the same
    Message-ID and the same temporary password (kept sealed meanwhile), and it works."""
    configure(stack, sink, keys)
    dave = add_user(stack, "dave@mail.test")
    sink.plan(hold={"dave@mail.test": 30})
    w = stack.start_worker("email", job_lease_s=3)
    r = stack.ok("user.reset_password", {"user": "dave@mail.test"})
    deadline = time.monotonic() + 60
    while not sink.messages("dave@mail.test"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = stack.rows("SELECT state, secret_sealed FROM email_recipients")[0]
    assert row["state"] == "sending" and row["secret_sealed"].startswith("enc:v1:")
    w.kill9()
    stack.start_worker("email", job_lease_s=3)
    assert wait_job(stack, r["id"], timeout=120)["state"] == "done"
    copies = sink.messages("dave@mail.test")
    assert len(copies) == 2
    assert header(copies[0][1], "Message-ID") == header(copies[1][1], "Message-ID")
    passwords = {re.search(r"temporary password (\S+);",
                           text_of(verify_signed(keys, raw, tmp_path))).group(1)
                 for _, raw in copies}
    assert len(passwords) == 1
    hashed = stack.rows("SELECT password FROM users WHERE id = %s", dave)[0]["password"]
    assert password_ok(passwords.pop(), hashed)
