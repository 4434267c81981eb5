"""The GnuPG and e-mail settings MISP has that change what is sent (issue 6):
GnuPG.sign (false: the text goes unsigned, still encrypted to a user's key),
GnuPG.obscure_subject (an encrypted message carries a neutral subject; the clear one goes
on as before) and MISP.disable_emailing (nothing leaves: mail.test is a conflict, a
mail-out records every recipient as not sent). GnuPG.bodyonlyencrypted concerns event
notifications, which adminbus does not send (docs/architecture.md)."""

from helpers import assert_error
from test_mail import (add_user, configure, gpg, header, keys, sink,  # noqa: F401
                       split_multipart, status_of, text_of, verify_signed, wait_job)


def decrypt(keys, raw, tmp_path):
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/encrypted" in head, head
    _, cipher = split_multipart(raw, head)
    (tmp_path / "msg.asc").write_bytes(cipher.split(b"\r\n\r\n", 1)[1])
    return gpg(keys["ana"], "--decrypt", str(tmp_path / "msg.asc")).stdout


def test_sign_false_sends_the_text_unsigned(stack, sink, keys, tmp_path):
    configure(stack, sink, keys, **{"GnuPG.sign": False})
    add_user(stack, "ana@mail.test", keys["ana_pub"])
    r = stack.ok("mail.test", {"to": "ops@mail.test"})
    assert r["sent"] is True, r
    [(_, raw)] = sink.messages("ops@mail.test")
    assert b"multipart/signed" not in raw and b"BEGIN PGP SIGNATURE" not in raw
    assert header(raw, "Content-Type").startswith("text/plain")
    assert "test message from adminbus" in text_of(raw)
    # A user with a key: encrypted all the same, the inner entity unsigned.
    assert stack.ok("mail.test", {"to": "ana@mail.test"})["encrypted"] is True
    [(_, raw)] = sink.messages("ana@mail.test")
    inner = decrypt(keys, raw, tmp_path)
    assert b"multipart/signed" not in inner and "test message from adminbus" in text_of(inner)
    # Back to true: signed again.
    stack.ok("setting.set", {"name": "GnuPG.sign", "value": True})
    stack.ok("mail.test", {"to": "ops2@mail.test"})
    [(_, raw)] = sink.messages("ops2@mail.test")
    verify_signed(keys, raw, tmp_path)


def test_obscure_subject_hides_the_subject_of_encrypted_mail_only(stack, sink, keys, tmp_path):
    configure(stack, sink, keys, **{"GnuPG.obscure_subject": True})
    add_user(stack, "ana@mail.test", keys["ana_pub"])
    add_user(stack, "dave@mail.test")
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"all": True, "subject": "Secret incident 42",
                                  "message": "Details inside."})
    assert wait_job(stack, r["id"])["state"] == "done"
    [(_, raw)] = sink.messages("ana@mail.test")
    assert header(raw, "Subject") == "[CIRCL MISP] Encrypted message"
    assert b"incident" not in raw
    inner = decrypt(keys, raw, tmp_path)
    assert "Details inside." in text_of(verify_signed(keys, inner, tmp_path))
    [(_, raw)] = sink.messages("dave@mail.test")  # no key: nothing to hide the subject for
    assert header(raw, "Subject") == "[CIRCL MISP] Secret incident 42"


def test_disable_emailing_sends_nothing(stack, sink, keys):
    configure(stack, sink, keys, **{"MISP.disable_emailing": True})
    add_user(stack, "dave@mail.test")
    assert_error(stack.cmd("mail.test", {"to": "ops@mail.test"}), "conflict",
                 "MISP.disable_emailing")
    stack.start_worker("email")
    r = stack.ok("mail.contact", {"user": "dave@mail.test", "subject": "s", "message": "m"})
    job = wait_job(stack, r["id"])
    assert job["state"] == "done" and "Sent 0 of 1; 1 failed" in job["message"], job
    dave = status_of(stack, r["id"])["dave@mail.test"]
    assert dave["state"] == "failed" and "MISP.disable_emailing" in dave["error"]
    assert sink.messages() == []
