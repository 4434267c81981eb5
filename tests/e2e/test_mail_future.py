"""`adminctl contact --future ADDRESS [--gpgkey-file KEY.asc] [--welcome]` (issue 6, the
manual's "potential future users"): one message to an address that is not a user (yet),
signed, encrypted to the key given (checked as user edit --gpgkey is), with the welcome
text (MISP.newUserText: no account, so no password) when asked; audited like every
mail-out. Bad input gets a precise error and enqueues nothing."""

from helpers import assert_error, audit_rows, ctl_json
from test_mail import (add_user, configure, gpg, header, keys, sink,  # noqa: F401
                       split_multipart, status_of, text_of, verify_signed, wait_job)

WELCOME = r"Welcome to $misp, $username!\nYour password: $password\nAsk $contact."


def test_future_user_welcome_encrypted(stack, sink, keys, tmp_path):
    configure(stack, sink, keys, **{"MISP.newUserText": WELCOME})
    stack.start_worker("email")
    keyfile = tmp_path / "bob.asc"
    keyfile.write_text(keys["ana_pub"])  # Bob's key (Ana's home holds its secret half)
    r = ctl_json(stack, "contact", "--future", "bob@mail.test", "--gpgkey-file", str(keyfile),
                 "--welcome")
    assert r["type"] == "email" and r["recipients"] == 1, r
    job = wait_job(stack, r["id"])
    assert job["state"] == "done" and job["message"] == "Sent 1 of 1; 0 failed", job
    assert stack.count("users") == 1  # nobody was made a user

    [(env, raw)] = sink.messages("bob@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] New user registration"
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/encrypted" in head and b"Welcome" not in raw
    _, cipher = split_multipart(raw, head)
    (tmp_path / "msg.asc").write_bytes(cipher.split(b"\r\n\r\n", 1)[1])
    inner = gpg(keys["ana"], "--decrypt", str(tmp_path / "msg.asc")).stdout
    text = text_of(verify_signed(keys, inner, tmp_path)).replace("\r\n", "\n")
    assert "Welcome to https://misp.mail.test, bob@mail.test!\n" in text, text
    assert "Your password: (none yet: it comes with your account)" in text
    assert "Ask support@mail.test." in text

    st = status_of(stack, r["id"])["bob@mail.test"]
    assert st["state"] == "sent" and st["encrypted"] == 1
    [queued] = [a for a in audit_rows(stack, model="Job") if a["model_id"] == r["id"]]
    assert "to=bob@mail.test (not a user) key=" in queued["change"], queued
    [sent] = audit_rows(stack, action="admin_email")
    assert "bob@mail.test" in sent["title"] and "encrypted" in sent["title"]


def test_future_user_custom_message_in_clear(stack, sink, keys, tmp_path):
    configure(stack, sink, keys)
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"future": "carol@mail.test", "subject": "Your account",
                                  "message": "It is on its way."})
    assert wait_job(stack, r["id"])["state"] == "done"
    [(_, raw)] = sink.messages("carol@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] Your account"
    assert "It is on its way." in text_of(verify_signed(keys, raw, tmp_path))
    assert status_of(stack, r["id"])["carol@mail.test"]["encrypted"] == 0


def test_future_user_refusals(stack, sink, keys):
    configure(stack, sink, keys)
    add_user(stack, "dave@mail.test")
    before = stack.count("jobs")
    ok = {"subject": "s", "message": "m"}
    assert_error(stack.cmd("mail.contact", {"future": "dave@mail.test", **ok}), "conflict",
                 "future")
    assert_error(stack.cmd("mail.contact", {"future": "bob @mail.test", **ok}), "invalid",
                 "future")
    assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test\r\nBcc: x@mail.test", **ok}),
                 "invalid", "future")
    assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test", "user": "dave@mail.test",
                                            **ok}), "invalid", "future")
    err = assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test",
                                                  "gpgkey": keys["carol_pub"], **ok}),
                       "invalid", "gpgkey")
    assert "expired" in err["message"]
    assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test", "gpgkey": "not a key",
                                            **ok}), "invalid", "gpgkey")
    assert_error(stack.cmd("mail.contact", {"all": True, "gpgkey": keys["ana_pub"], **ok}),
                 "invalid", "gpgkey")
    assert_error(stack.cmd("mail.contact", {"user": "dave@mail.test", "welcome": True}),
                 "invalid", "welcome")
    assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test", "message": "m"}),
                 "invalid", "subject")
    assert_error(stack.cmd("mail.contact", {"future": "bob@mail.test", "subject": "s"}),
                 "invalid", "message")
    assert stack.count("jobs") == before
