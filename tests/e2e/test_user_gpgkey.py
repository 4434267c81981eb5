"""Users' GnuPG keys (issue 5: "GnuPG key checked on input — it must be able to encrypt and
not be expired"): keys made by real GnuPG in a temporary home, checked by the real engine
(gpgme), stored with their fingerprint; every refusal is `invalid` with field gpgkey, says
what is wrong, and writes nothing."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import clean_env
from helpers import assert_error, audit_rows, ctl_json


def gpg(env, *args, text=True):
    return subprocess.run(["gpg", "--batch", *args], env=env, check=True, capture_output=True,
                          text=text, timeout=60).stdout


def fingerprint(env, uid):
    out = gpg(env, "--with-colons", "--list-keys", uid)
    return re.search(r"^fpr:+([0-9A-F]{40}):", out, re.M).group(1)


@pytest.fixture(scope="module")
def keys():
    """Armoured keys made by GnuPG: good (ed25519 + cv25519 encryption subkey), sign-only,
    expired (made with a faked clock in 2020, valid one year), revoked, two at once, a
    secret key; and their fingerprints."""
    home = tempfile.mkdtemp(prefix="abk", dir="/tmp")  # short: gpg-agent's socket path
    os.chmod(home, 0o700)
    env = clean_env(GNUPGHOME=home)
    try:
        new = ("--passphrase", "", "--quick-gen-key")
        gpg(env, *new, "Good <good@example.org>", "future-default", "default", "never")
        gpg(env, *new, "Sign <sign@example.org>", "ed25519", "sign", "never")
        gpg(env, "--faked-system-time", "20200101T000000", *new, "Old <old@example.org>",
            "future-default", "default", "1y")
        gpg(env, *new, "Gone <gone@example.org>", "future-default", "default", "never")
        fpr = {u: fingerprint(env, f"{u}@example.org") for u in ("good", "sign", "old", "gone")}
        # Revoke "gone" with the certificate GnuPG stored when it made the key.
        rev = (tempfile.NamedTemporaryFile("w", dir=home, suffix=".rev", delete=False))
        text = open(os.path.join(home, "openpgp-revocs.d", fpr["gone"] + ".rev")).read()
        rev.write(text.replace(":-----BEGIN", "-----BEGIN"))
        rev.close()
        gpg(env, "--import", rev.name)
        k = {u: gpg(env, "--armor", "--export", f"{u}@example.org")
             for u in ("good", "sign", "old", "gone")}
        k["two"] = gpg(env, "--armor", "--export", "good@example.org", "sign@example.org")
        k["secret"] = gpg(env, "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
                          "--export-secret-keys", "good@example.org")
        assert "BEGIN PGP PUBLIC KEY BLOCK" in k["good"] and "PRIVATE" in k["secret"]
        yield k, fpr
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def users_and_logs(stack):
    return stack.count("users"), stack.count("logs")


def test_good_key_is_stored_with_its_fingerprint(stack, keys, tmp_path):
    k, fpr = keys
    user = stack.ok("user.add", {"email": "ana@example.org", "org": "1", "gpgkey": k["good"]})
    assert user["gpgkey_fingerprint"] == fpr["good"]
    row = stack.rows("SELECT gpgkey, gpgkey_fingerprint FROM users WHERE id = %s", user["id"])[0]
    assert row["gpgkey"] == k["good"] and row["gpgkey_fingerprint"] == fpr["good"]
    add = audit_rows(stack, model="User", action="add", model_id=user["id"])[-1]
    assert f"gpgkey () => ({fpr['good']})" in add["change"]
    assert "BEGIN PGP" not in add["change"]  # the key is named, not copied, in the audit
    assert stack.ok("user.view", {"user": "ana@example.org"})["gpgkey_fingerprint"] == fpr["good"]

    # adminctl reads the key from a file (--gpgkey-file)
    path = tmp_path / "key.asc"
    path.write_text(k["good"])
    out = ctl_json(stack, "user", "add", "--email", "ben@example.org", "--org", "1",
                   "--gpgkey-file", path)
    assert out["gpgkey_fingerprint"] == fpr["good"]
    assert stack.rows("SELECT gpgkey FROM users WHERE email = 'ben@example.org'")[0][
        "gpgkey"] == k["good"]

    # GnuPG's throw-away homes are gone
    tmp = stack.home / "tmp"
    assert not tmp.exists() or not [p for p in tmp.iterdir() if p.name.startswith("gpgkey-")]


BAD = [  # key, what the message must say
    ("old", "expired on 2020-12-31"),
    ("sign", "cannot encrypt"),
    ("gone", "revoked"),
    ("two", "holds 2 keys"),
    ("secret", "secret key"),
    ("garbage", "not an ASCII-armoured OpenPGP public key"),
    ("broken", "GnuPG"),
]


def bad_key(k, name):
    if name == "garbage":
        return "hello, I am not a key"
    if name == "broken":  # the armour lines are there, the packets are noise
        return ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5IGF0IGFsbAo=\n=AAAA\n"
                "-----END PGP PUBLIC KEY BLOCK-----\n")
    return k[name]


@pytest.mark.parametrize("name,says", BAD, ids=[b[0] for b in BAD])
def test_bad_keys_are_refused_and_nothing_is_written(stack, keys, name, says):
    k, fpr = keys
    before = users_and_logs(stack)
    r = stack.cmd("user.add", {"email": "eve@example.org", "org": "1",
                               "gpgkey": bad_key(k, name)})
    err = assert_error(r, "invalid", "gpgkey")
    assert says in err["message"], err
    body = [line for line in bad_key(k, name).splitlines()
            if len(line) > 8 and not line.startswith("-----")]
    assert not [line for line in body if line in err["message"]]  # the text is not echoed
    assert users_and_logs(stack) == before


def test_edit_replaces_refuses_and_removes(stack, keys):
    k, fpr = keys
    user = stack.ok("user.add", {"email": "ana@example.org", "org": "1", "gpgkey": k["good"]})
    uid = user["id"]

    # a refused key changes nothing: the good key stays
    before = users_and_logs(stack)
    err = assert_error(stack.cmd("user.edit", {"user": str(uid), "gpgkey": k["old"]}),
                       "invalid", "gpgkey")
    assert "expired" in err["message"]
    assert users_and_logs(stack) == before
    assert stack.rows("SELECT gpgkey FROM users WHERE id = %s", uid)[0]["gpgkey"] == k["good"]

    # the same key again: no change, no audit row
    stack.ok("user.edit", {"user": str(uid), "gpgkey": k["good"]})
    assert users_and_logs(stack) == before

    # an empty key removes it
    out = stack.ok("user.edit", {"user": str(uid), "gpgkey": ""})
    assert out["gpgkey_fingerprint"] is None
    row = stack.rows("SELECT gpgkey, gpgkey_fingerprint FROM users WHERE id = %s", uid)[0]
    assert row == {"gpgkey": None, "gpgkey_fingerprint": None}
    edit = audit_rows(stack, model="User", action="edit", model_id=uid)[-1]
    assert f"gpgkey ({fpr['good']}) => ()" in edit["change"]

    # and a good one sets it again
    out = stack.ok("user.edit", {"user": str(uid), "gpgkey": k["good"]})
    assert out["gpgkey_fingerprint"] == fpr["good"]
