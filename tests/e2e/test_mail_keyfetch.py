"""`adminctl user gpg fetch USER` (issue 6): the gpgkey_fetch job fetches the user's GnuPG
key from the Web Key Directory (GnuPG.wkd_url) or the key server (GnuPG.keyserver, HKP),
both served on loopback by tests/e2e/keyserver.py, checks it as --gpgkey-file is checked
(and that it names the user's address), stores it and audits it. No key, a bad key, or fetching turned off: a precise error and
nothing changed; a server that answers 503 makes the job retry."""

import hashlib
import subprocess

import pytest

from helpers import LoopServer, assert_error, audit_rows, ctl_json, wait_job
from test_mail import add_user, gpg, keys  # noqa: F401

def zbase32(data):
    alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(alphabet[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


def wkd_hash(local):
    return zbase32(hashlib.sha1(local.lower().encode()).digest())


class KeyServer(LoopServer):
    """tests/e2e/keyserver.py on a free loopback port, stopped by its pid."""

    def __init__(self, folder):
        super().__init__("keyserver.py", folder)
        (self.dir / "hkp").mkdir()
        self.url = f"http://127.0.0.1:{self.port}"

    def hkp(self, address, armour):
        (self.dir / "hkp" / address.lower()).write_text(armour)

    def wkd(self, address, binary):
        local, domain = address.split("@")
        d = self.dir / "wkd" / domain
        d.mkdir(parents=True, exist_ok=True)
        (d / wkd_hash(local)).write_bytes(binary)

    def requests(self):
        p = self.dir / "requests.log"
        return p.read_text().splitlines() if p.exists() else []



@pytest.fixture
def ks(tmp_path):
    with KeyServer(tmp_path / "keyserver") as s:
        yield s


def use_keyserver(stack, ks):
    stack.ok("setting.set", {"name": "GnuPG.keyserver", "value": ks.url})
    stack.ok("setting.set", {"name": "GnuPG.wkd_url", "value": ks.url})
    stack.start_worker("default")


def stored_key(stack, address):
    return stack.rows("SELECT gpgkey FROM users WHERE email = %s", address)[0]["gpgkey"]


def fpr_of(home, uid):
    out = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def test_fetch_from_the_web_key_directory(stack, ks, keys):
    use_keyserver(stack, ks)
    uid = add_user(stack, "Ana@mail.test")
    ks.wkd("Ana@mail.test", gpg(keys["ana"], "--export", "ana@mail.test").stdout)  # binary
    res = ctl_json(stack, "user", "gpg", "fetch", "Ana@mail.test")
    assert res["type"] == "gpgkey_fetch" and res["user"] == "Ana@mail.test", res
    row = wait_job(stack, res["id"])
    fpr = fpr_of(keys["ana"], "ana@mail.test")
    assert row["state"] == "done" and fpr in row["message"], row
    key = stored_key(stack, "Ana@mail.test")
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")  # armoured for storage
    # It is the same key: GnuPG reads the stored armour back to Ana's fingerprint.
    shown = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys"], input=key.encode(),
                           capture_output=True, check=True).stdout.decode()
    assert f"fpr:::::::::{fpr}:" in shown
    [req] = [r for r in ks.requests() if "openpgpkey" in r]
    assert req == f"/.well-known/openpgpkey/mail.test/hu/{wkd_hash('ana')}?l=Ana"
    assert not any(r.startswith("/pks/") for r in ks.requests())  # WKD first, and enough
    [a] = [a for a in audit_rows(stack, model="User", action="edit") if "fetched" in a["title"]]
    assert a["model_id"] == uid and "Web Key Directory" in a["title"]
    assert fpr in a["change"] and a["email"] == "admin@admin.test"


def test_fetch_from_the_key_server_when_the_wkd_has_none(stack, ks, keys):
    use_keyserver(stack, ks)
    add_user(stack, "ana@mail.test")
    ks.hkp("ana@mail.test", keys["ana_pub"])
    job = stack.ok("user.gpg_fetch", {"user": "ana@mail.test"})["id"]
    row = wait_job(stack, job)
    assert row["state"] == "done", row
    assert stored_key(stack, "ana@mail.test").strip() == keys["ana_pub"].strip()
    assert "/pks/lookup?op=get&options=mr&search=ana%40mail.test" in ks.requests()
    [a] = [a for a in audit_rows(stack, model="User", action="edit") if "fetched" in a["title"]]
    assert "key server" in a["title"]


def test_no_key_or_a_bad_key_changes_nothing(stack, ks, keys):
    use_keyserver(stack, ks)
    add_user(stack, "dave@mail.test", keys["ana_pub"])  # has a key already
    before = stored_key(stack, "dave@mail.test")
    job = stack.ok("user.gpg_fetch", {"user": "dave@mail.test"})["id"]
    row = wait_job(stack, job)
    assert row["state"] == "failed" and row["attempts"] == 1, row  # not retried
    assert "no GnuPG key for dave@mail.test" in row["message"], row
    assert "HTTP 404" in row["message"] and "nothing was changed" in row["message"]
    assert stored_key(stack, "dave@mail.test") == before

    ks.hkp("dave@mail.test", keys["carol_pub"])  # expired
    job = stack.ok("user.gpg_fetch", {"user": "dave@mail.test"})["id"]
    row = wait_job(stack, job)
    assert row["state"] == "failed" and "expired" in row["message"], row
    assert "cannot be used" in row["message"] and "the key server" in row["message"]
    assert stored_key(stack, "dave@mail.test") == before

    ks.hkp("dave@mail.test", keys["ana_pub"])  # a good key, but Ana's: anyone can upload
    row = wait_job(stack, stack.ok("user.gpg_fetch", {"user": "dave@mail.test"})["id"])
    assert row["state"] == "failed" and "is not dave@mail.test's" in row["message"], row
    assert stored_key(stack, "dave@mail.test") == before

    ks.hkp("dave@mail.test", "this is not a key\n")
    row = wait_job(stack, stack.ok("user.gpg_fetch", {"user": "dave@mail.test"})["id"])
    assert row["state"] == "failed" and "cannot be used" in row["message"], row
    assert stored_key(stack, "dave@mail.test") == before
    assert not [a for a in audit_rows(stack, model="User", action="edit")
                if "fetched" in a["title"]]


def test_refusals_and_a_broken_server(stack, ks, keys):
    use_keyserver(stack, ks)
    add_user(stack, "ana@mail.test")
    assert_error(stack.cmd("user.gpg_fetch", {"user": "nobody@mail.test"}), "not_found", "user")
    stack.ok("setting.set", {"name": "GnuPG.key_fetching_disabled", "value": True})
    err = assert_error(stack.cmd("user.gpg_fetch", {"user": "ana@mail.test"}), "conflict",
                       "GnuPG.key_fetching_disabled")
    assert "--gpgkey-file" in err["message"]
    stack.ok("setting.set", {"name": "GnuPG.key_fetching_disabled", "value": False})
    # A server that fails (503) is a temporary failure: the job waits for a retry.
    (ks.dir / "status").write_text("503")
    job = stack.ok("user.gpg_fetch", {"user": "ana@mail.test"})["id"]
    row = wait_job(stack, job, states=("retrying", "failed", "done"))
    assert row["state"] == "retrying" and "did not answer" in row["message"], row
    # Fixed before the retry: the key arrives.
    (ks.dir / "status").unlink()
    ks.hkp("ana@mail.test", keys["ana_pub"])
    row = wait_job(stack, job, timeout=90)
    assert row["state"] == "done" and row["attempts"] == 2, row
    assert stored_key(stack, "ana@mail.test").strip() == keys["ana_pub"].strip()
