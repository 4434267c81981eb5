"""The GnuPG and e-mail settings MISP has that change what is sent (issue 6):
GnuPG.sign (false: the text goes unsigned, still encrypted to a user's key; no instance key
is needed then, and without one — GnuPG.homedir or GnuPG.email unset — mail goes unsigned
too, diagnostics still warning),
GnuPG.obscure_subject (an encrypted message carries a neutral subject; the clear one goes
on as before) and MISP.disable_emailing (nothing leaves: mail.test is a conflict, a
mail-out records every recipient as not sent). GnuPG.bodyonlyencrypted concerns event
notifications, which adminbus does not send (docs/architecture.md)."""

from helpers import assert_error
from test_mail import (INSTANCE_EMAIL, add_user, configure, gpg, header, keys, sink,  # noqa: F401
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


def test_without_an_instance_key_mail_goes_unsigned_and_still_encrypted(stack, sink, keys,
                                                                         tmp_path):
    """GnuPG.sign is on (the default) but GnuPG.homedir and GnuPG.email are not set: mail
    goes out unsigned rather than not at all, encrypted to users with a key; diagnostics
    keeps reporting the missing key."""
    configure(stack, sink, keys, **{"GnuPG.homedir": None, "GnuPG.email": None,
                                    "GnuPG.password": None})
    add_user(stack, "ana@mail.test", keys["ana_pub"])
    add_user(stack, "dave@mail.test")
    r = stack.ok("mail.test", {"to": "ops@mail.test"})
    assert r["sent"] is True and r["signed"] is False, r
    assert r["unsigned"] == "GnuPG.homedir and GnuPG.email are not set", r
    [(_, raw)] = sink.messages("ops@mail.test")
    assert b"multipart/signed" not in raw and header(raw, "Content-Type").startswith("text/plain")
    assert "not signed: GnuPG.homedir and GnuPG.email are not set" in text_of(raw)

    stack.start_worker("email")
    job = stack.ok("mail.contact", {"all": True, "subject": "Unsigned", "message": "Hello."})
    assert wait_job(stack, job["id"])["state"] == "done"
    st = status_of(stack, job["id"])
    assert {e: (i["state"], i["encrypted"]) for e, i in st.items()} == {
        "admin@admin.test": ("sent", 0), "ana@mail.test": ("sent", 1), "dave@mail.test": ("sent", 0)}
    [(_, raw)] = sink.messages("dave@mail.test")
    assert header(raw, "Content-Type").startswith("text/plain") and "Hello." in text_of(raw)
    [(_, raw)] = sink.messages("ana@mail.test")
    inner = decrypt(keys, raw, tmp_path)
    assert b"multipart/signed" not in inner and "Hello." in text_of(inner)

    report = stack.ok("diagnostics.run")
    [g] = [c for c in report["checks"] if c["name"] == "gnupg"]
    assert g["status"] == "critical", g
    assert "GnuPG.homedir and GnuPG.email are not set: e-mails go out unsigned" in g["found"]


def test_sign_false_needs_no_usable_instance_key(stack, sink, keys):
    """With GnuPG.sign false the instance key is not looked at: a GnuPG.email with no key
    in the home stops nothing (with GnuPG.sign true it fails the mail, as before)."""
    configure(stack, sink, keys, **{"GnuPG.sign": False, "GnuPG.email": "nobody@mail.test"})
    r = stack.ok("mail.test", {"to": "ops@mail.test"})
    assert r["sent"] is True and r["signed"] is False and r["unsigned"] == "GnuPG.sign is false"
    stack.start_worker("email")
    job = stack.ok("mail.contact", {"all": True, "subject": "S", "message": "M"})
    assert wait_job(stack, job["id"])["state"] == "done"
    assert len(sink.messages("admin@admin.test")) == 1
    stack.ok("setting.set", {"name": "GnuPG.sign", "value": True})
    assert_error(stack.cmd("mail.test", {"to": "ops2@mail.test"}), "conflict", "GnuPG.email")
    stack.ok("setting.set", {"name": "GnuPG.email", "value": INSTANCE_EMAIL})
    assert stack.ok("mail.test", {"to": "ops2@mail.test"})["signed"] is True


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
