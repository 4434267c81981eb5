"""Telling the admin (issue 6): a recipient that fails for good (an expired key, a 5xx)
leaves an audit row email_failed with the reason, the job's last message names the count,
where to look and the first failure, and `mail status` (JSON and the human table) carries
the counts per state, the job's state and message, and a notice."""

import subprocess

from conftest import BIN
from helpers import audit_rows
from test_mail import add_user, configure, keys, sink, wait_job  # noqa: F401


def test_failed_recipients_are_reported_to_the_admin(stack, sink, keys):
    configure(stack, sink, keys)
    add_user(stack, "carol@mail.test", keys["carol_pub"], expired_key=True)
    add_user(stack, "erin@mail.test")
    add_user(stack, "dave@mail.test")
    sink.plan(rcpt={"erin@mail.test": "550 5.1.1 Mailbox erin unknown"})
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "Notice", "message": "Hello."})
    job = wait_job(stack, r["id"])
    assert job["state"] == "done", job
    msg = job["message"]
    assert msg.startswith("Sent 2 of 4; 2 failed (adminctl mail status %d): first carol@mail.test:"
                          % r["id"]), msg
    assert "expired" in msg

    rows = {a["title"].split()[2]: a for a in audit_rows(stack, action="email_failed")}
    assert set(rows) == {"carol@mail.test", "erin@mail.test"}, rows
    assert "550 5.1.1 Mailbox erin unknown" in rows["erin@mail.test"]["change"]
    assert "expired" in rows["carol@mail.test"]["change"]
    assert rows["erin@mail.test"]["model"] == "User"
    assert rows["erin@mail.test"]["email"] == "admin@admin.test"  # who sent the mail-out

    st = stack.ok("mail.status", {"job": r["id"]})
    assert st["counts"] == {"queued": 0, "sending": 0, "sent": 2, "retrying": 0, "failed": 2}
    assert st["job"] == {"state": "done", "message": msg}
    assert "2 recipient(s) failed for good" in st["notice"]
    assert st["total"] == 4 and len(st["items"]) == 4
    only = stack.ok("mail.status", {"job": r["id"], "state": "failed"})
    assert [i["email"] for i in only["items"]] == ["carol@mail.test", "erin@mail.test"]
    assert only["counts"]["sent"] == 2  # the counts are the whole job's

    human = subprocess.run([str(BIN / "adminctl"), "mail", "status", str(r["id"])],
                           env=dict(stack.env, ADMINBUS_URL=stack.url, ADMINBUS_AUTHKEY=stack.key),
                           capture_output=True, text=True, timeout=30)
    assert human.returncode == 0, human.stderr
    assert "failed for good" in human.stdout and "Mailbox erin unknown" in human.stdout
    assert "email_failed" in human.stdout


def test_a_mailout_that_stopped_before_sending_shows_why_for_each_recipient(stack, sink, keys):
    """The job fails before any recipient is tried (MISP.email, the sender, is not set):
    `mail status` shows each recipient failed with that reason, not queued; once the
    setting is fixed, `job retry` sends to them."""
    configure(stack, sink, keys, **{"MISP.email": None})
    add_user(stack, "dave@mail.test")
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "S", "message": "M"})
    assert wait_job(stack, r["id"])["state"] == "failed"
    assert sink.messages() == []
    st = stack.ok("mail.status", {"job": r["id"]})
    assert st["counts"] == {"queued": 0, "sending": 0, "sent": 0, "retrying": 0, "failed": 2}
    for item in st["items"]:
        assert item["state"] == "failed", item
        assert item["error"].startswith("not sent: the mail-out failed: MISP.email "), item
    assert "2 recipient(s) were sent nothing because the mail-out stopped" in st["notice"]
    assert [i["email"] for i in stack.ok("mail.status", {"job": r["id"], "state": "failed"})
            ["items"]] == ["admin@admin.test", "dave@mail.test"]
    assert stack.ok("mail.status", {"job": r["id"], "state": "queued"})["items"] == []

    human = subprocess.run([str(BIN / "adminctl"), "mail", "status", str(r["id"])],
                           env=dict(stack.env, ADMINBUS_URL=stack.url, ADMINBUS_AUTHKEY=stack.key),
                           capture_output=True, text=True, timeout=30)
    assert human.returncode == 0, human.stderr
    lines = [ln for ln in human.stdout.splitlines() if "@mail.test" in ln or "@admin.test" in ln]
    assert len(lines) >= 2 and all(" failed " in ln and "queued" not in ln for ln in lines[:2])
    assert "the mail-out failed: MISP.email" in human.stdout
    assert f"adminctl job retry {r['id']}" in human.stdout

    stack.ok("setting.set", {"name": "MISP.email", "value": "misp@mail.test"})
    stack.ok("job.retry", {"job": r["id"]})
    assert wait_job(stack, r["id"])["state"] == "done"
    assert {i["email"]: i["state"] for i in stack.ok("mail.status", {"job": r["id"]})["items"]} \
        == {"admin@admin.test": "sent", "dave@mail.test": "sent"}


def test_no_notice_when_all_went_out(stack, sink, keys):
    configure(stack, sink, keys)
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "S", "message": "M"})
    job = wait_job(stack, r["id"])
    assert job["message"] == "Sent 1 of 1; 0 failed", job
    st = stack.ok("mail.status", {"job": r["id"]})
    assert st["notice"] is None and st["counts"]["sent"] == 1
    assert not audit_rows(stack, action="email_failed")
