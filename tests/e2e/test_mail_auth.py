"""SMTP authentication (issue 6): against tests/e2e/smtp_sink.py offering AUTH PLAIN and
LOGIN and requiring a login, Email.username and Email.password (sealed in the settings) are
what logs in; a wrong password is a permanent, precise failure: mail.test answers invalid
(field Email.password) with the server's 535, and a mail-out stops at once (not retried,
nobody marked failed) until the settings are fixed and the job is retried."""

import pytest

from helpers import assert_error
from test_mail import (SmtpSink, configure, keys, status_of, verify_signed,  # noqa: F401
                       wait_job)

LOGIN, PASSWORD = "misp-relay", "relay pass 42"


@pytest.fixture
def auth_sink(tmp_path):
    s = SmtpSink(tmp_path / "sink", auth=f"{LOGIN}:{PASSWORD}")
    try:
        yield s
    finally:
        s.stop()


def auth_log(sink):
    p = sink.dir / "auth.log"
    return p.read_text().splitlines() if p.exists() else []


def test_the_login_is_used_and_a_wrong_one_is_refused(stack, auth_sink, keys, tmp_path):
    configure(stack, auth_sink, keys)
    # No login: the server wants one (530), nothing is sent.
    err = assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "invalid", "to")
    assert "530" in err["message"], err
    stack.ok("setting.set", {"name": "Email.username", "value": LOGIN})
    stack.ok("setting.set", {"name": "Email.password", "value": "wrong password"})
    err = assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "invalid",
                       "Email.password")
    assert "535" in err["message"] and LOGIN in err["message"], err
    assert "wrong password" not in err["message"]
    assert auth_sink.messages() == []
    stack.ok("setting.set", {"name": "Email.password", "value": PASSWORD})
    r = stack.ok("mail.test", {"to": "ops@mail.test"})
    assert r["sent"] is True, r
    [(_, raw)] = auth_sink.messages()
    verify_signed(keys, raw, tmp_path)
    log = auth_log(auth_sink)
    assert log[-1].endswith(f"{LOGIN} ok") and log[-2].endswith(f"{LOGIN} refused"), log
    assert log[-1].split()[0] in ("PLAIN", "LOGIN")


def test_a_refused_login_stops_a_mailout_until_fixed(stack, auth_sink, keys):
    configure(stack, auth_sink, keys, **{"Email.username": LOGIN,
                                          "Email.password": "wrong password"})
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "S", "message": "M"})
    job = wait_job(stack, r["id"])
    row = stack.rows("SELECT attempts, last_error FROM jobs WHERE id = %s", r["id"])[0]
    assert job["state"] == "failed" and row["attempts"] == 1, (job, row)  # not retried
    assert "refused our login" in row["last_error"] and "535" in row["last_error"], row
    assert f"job retry {r['id']}" in row["last_error"]
    # shown failed with the job's reason; the row itself waits for the retry
    admin = status_of(stack, r["id"])["admin@admin.test"]
    assert admin["state"] == "failed", admin
    assert admin["error"].startswith("not sent: the mail-out failed: the SMTP server refused")
    assert stack.rows("SELECT state FROM email_recipients WHERE job_id = %s",
                      r["id"])[0]["state"] != "failed"
    assert auth_sink.messages() == []
    stack.ok("setting.set", {"name": "Email.password", "value": PASSWORD})
    stack.ok("job.retry", {"job": r["id"]})
    assert wait_job(stack, r["id"])["state"] == "done"
    assert len(auth_sink.messages("admin@admin.test")) == 1
