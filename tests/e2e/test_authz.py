"""Authorisation everywhere, from one table (issue 5, acceptance 1).

The engine's table is the catalog's permission column (schemas/catalog.c), applied by
ab_authorise and narrowed per target by ab_may_act_on_user / ab_may_act_in_org /
ab_may_grant_role (engine/auth/identity.c). TABLE below is what a reader expects of it: one row
per command, one column per persona, checked cell by cell against the real engine on one
stack. Every command of the real catalog (`adminbus-catalog --json`) must have a row, so a
new command cannot slip through; rows for commands this build does not have are skipped
(they belong to slices merged in parallel) and counted.

Personas (columns):
  A  site admin (host organisation)
  O  org admin of Alpha acting inside Alpha (targets: Alpha's users, Alpha)
  o  the same org admin acting on another organisation (targets: Beta's users, Beta)
  P  publisher of Alpha, U  user of Alpha, R  read-only role of Alpha — acting on another
     user of Alpha (not themselves)
  S  a user (role User) acting on their own account
  D  a disabled user (site admin role)          E  a site admin's expired key
  K  a site admin's read-only key (auth_keys.read_only = 1)
  N  no key at all
Cells:
  +  allowed: authorisation passed (ok, or not_found, conflict, unavailable, … from the
     handler)
  -  refused: forbidden, or for a user (or a user's key) out of the caller's reach the
     not_found a missing one gets (HIDDEN below)
  x  unauthenticated (disabled user, expired key, no key)
  r  + when the command only reads, - when it writes (rows written for commands of other
     slices, whose writes flag comes from the catalog)
An invalid or internal reply fails the test whatever the cell says: the row's arguments are
wrong (validation runs before authorisation) or the engine is. A refused writing command
must leave every table but logs exactly as it was, and add no audit row but auth_fail.
"""

import hashlib
import hmac
import itertools
import json
import secrets
import string
import subprocess
import time
import uuid

from conftest import BIN
from helpers import assert_error

PERSONAS = "A O o P U R S D E K N".split()
GOOD_PW = "Correct-Horse-42-battery"
NO_WORKER = "nohost:1:default"

# type: (expected cells in PERSONAS order, arguments for a cell)
TABLE = {
    # organisations: everyone reads them (MISP shows them to every user), site admins change
    "org.add":          ("+ - - - - - - x x - x", lambda c: {"name": c.fresh("org")}),
    "org.edit":         ("+ - - - - - - x x - x", lambda c: {"org": c.new_org(),
                                                             "description": "edited"}),
    "org.delete":       ("+ - - - - - - x x - x", lambda c: {"org": c.new_org()}),
    "org.view":         ("+ + + + + + + x x + x", lambda c: {"org": c.org}),
    "org.list":         ("+ + + + + + + x x + x", lambda c: {}),
    "org.merge":        ("+ - - - - - - x x - x", lambda c: {"org": c.new_org(),
                                                             "into": c.new_org()}),
    # roles: the same
    "role.add":         ("+ - - - - - - x x - x", lambda c: {"name": c.fresh("role")}),
    "role.edit":        ("+ - - - - - - x x - x", lambda c: {"role": c.new_role(),
                                                             "perms": ["tagger"]}),
    "role.delete":      ("+ - - - - - - x x - x", lambda c: {"role": c.new_role()}),
    "role.view":        ("+ + + + + + + x x + x", lambda c: {"role": "User"}),
    "role.list":        ("+ + + + + + + x x + x", lambda c: {}),
    "role.set_default": ("+ - - - - - - x x - x", lambda c: {"role": "User"}),
    # users: org admins inside their own organisation, change-pw also on one's own account
    "user.add":         ("+ + - - - - - x x - x", lambda c: {"email": c.fresh("u") + "@x.test",
                                                             "org": c.org}),
    "user.list":        ("+ + - - - - - x x + x", lambda c: {"org": c.org}),
    "user.view":        ("+ + - - - - - x x + x", lambda c: {"user": c.user()}),
    "user.edit":        ("+ + - - - - - x x - x", lambda c: {"user": c.new_user(),
                                                             "autoalert": False}),
    "user.disable":     ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
    "user.enable":      ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
    "user.delete":      ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
    "user.change_pw":   ("+ + - - - - + x x - x", lambda c: {"user": c.new_user(),
                                                             "password": GOOD_PW}),
    "user.ips":         ("+ - - - - - - x x + x", lambda c: {"user": c.user()}),
    "user.by_ip":       ("+ - - - - - - x x + x", lambda c: {"ip": "10.0.0.7"}),
    # authkeys: one's own, an org admin's organisation's users', a site admin's any
    "user.authkey":     ("+ + - - - - + x x - x", lambda c: {"user": c.new_user()}),
    "authkey.add":      ("+ + - - - - + x x - x", lambda c: {"user": c.new_user()}),
    "authkey.list":     ("+ + - - - - + x x + x", lambda c: {"user": c.user()}),
    "authkey.view":     ("+ + - - - - + x x + x", lambda c: {"authkey_id": c.new_key()}),
    "authkey.edit":     ("+ + - - - - + x x - x", lambda c: {"authkey_id": c.new_key(),
                                                             "comment": "edited"}),
    "authkey.delete":   ("+ + - - - - + x x - x", lambda c: {"authkey_id": c.new_key()}),
    # logins and OTP: logging in needs no key (a stale one in the environment is ignored)
    "auth.login":       ("+ + + + + + + + + + +", lambda c: {"email": c.fx.login_email,
                                                             "password": GOOD_PW}),
    "auth.logout":      ("+ + + + + + + x x - x", lambda c: {"all": True}),
    "auth.whoami":      ("+ + + + + + + x x + x", lambda c: {}),
    "otp.enrol":        ("+ + - - - - + x x - x", lambda c: {"user": c.new_user()}),
    # as MISP: users cannot remove their own OTP; their site or org admin can
    "otp.delete":       ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
    "bruteforce.clear": ("+ - - - - - - x x - x", lambda c: {}),
    # the audit log: perm_audit, own organisation's rows unless site admin (Publisher and
    # Read Only have perm_audit in MISP's seeded roles, User has not)
    "log.search":       ("+ + + + - + - x x + x", lambda c: {"org": c.org}),
    # jobs, workers, queues, tasks: site admins (MISP's jobs and workers pages)
    "job.enqueue":      ("+ - - - - - - x x - x", lambda c: {"type": "noop"}),
    "job.enqueue_many": ("+ - - - - - - x x - x", lambda c: {"jobs": [{"type": "noop"}]}),
    "job.list":         ("+ - - - - - - x x + x", lambda c: {}),
    "job.view":         ("+ - - - - - - x x + x", lambda c: {"job": 999999}),
    "job.retry":        ("+ - - - - - - x x - x", lambda c: {"job": 999999}),
    "job.cancel":       ("+ - - - - - - x x - x", lambda c: {"job": 999999}),
    "job.purge":        ("+ - - - - - - x x - x", lambda c: {}),
    "worker.list":      ("+ - - - - - - x x + x", lambda c: {}),
    "worker.start":     ("+ - - - - - - x x - x", lambda c: {"queue": "email"}),
    "worker.pause":     ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "worker.resume":    ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "worker.stop":      ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "worker.restart":   ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "worker.kill":      ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "worker.cleanup":   ("+ - - - - - - x x - x", lambda c: {"worker": NO_WORKER}),
    "queue.clear":      ("+ - - - - - - x x - x", lambda c: {"queue": "email"}),
    "queue.stats":      ("+ - - - - - - x x + x", lambda c: {}),
    "job.stats":        ("+ - - - - - - x x + x", lambda c: {}),
    "task.list":        ("+ - - - - - - x x + x", lambda c: {}),
    "task.set":         ("+ - - - - - - x x - x", lambda c: {"task": 1,
                                                             "description": c.fresh("task")}),
    "task.run":         ("+ - - - - - - x x - x", lambda c: {"task": 999999}),
    # settings, diagnostics, the database, backups: site admins (MISP's server settings)
    "setting.list":     ("+ - - - - - - x x + x", lambda c: {}),
    "setting.get":      ("+ - - - - - - x x + x", lambda c: {"name": "MISP.baseurl"}),
    "setting.set":      ("+ - - - - - - x x - x", lambda c: {"name": "MISP.footermidleft",
                                                             "value": c.fresh("footer")}),
    "setting.reset":    ("+ - - - - - - x x - x", lambda c: {"name": "MISP.footermidleft"}),
    "setting.baseurl":  ("+ - - - - - - x x - x", lambda c: {"baseurl":
                                                             "https://misp.example.org"}),
    "setting.report":   ("+ - - - - - - x x + x", lambda c: {}),
    "diagnostics.run":  ("+ - - - - - - x x + x", lambda c: {}),
    "db.update":        ("+ - - - - - - x x - x", lambda c: {}),
    "backup.run":       ("+ - - - - - - x x - x", lambda c: {}),
    # e-mail (issue 6): site admins write to users; org admins reset their own users'
    # passwords (mail.test: this stack has no MISP.email, so the allowed cell is a conflict)
    "mail.contact":     ("+ - - - - - - x x - x", lambda c: {"user": c.user(), "subject": "s",
                                                             "message": "m"}),
    "mail.test":        ("+ - - - - - - x x - x", lambda c: {"to": "ops@example.org"}),
    "mail.status":      ("+ - - - - - - x x + x", lambda c: {"job": 1}),
    "user.reset_password": ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
    "user.gpg_fetch":   ("+ + - - - - - x x - x", lambda c: {"user": c.new_user()}),
}

# Tables authentication itself may write (a refused command's auth_fail row): left out of
# the digest of what a refused command must leave alone.
NOT_DIGESTED = ("logs",)


def catalog():
    """The real catalog: {type: its entry (permission, writes, args)}."""
    out = subprocess.run([str(BIN / "adminbus-catalog"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return {c["type"]: c for c in json.loads(out)}


def random_key():
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


class People:
    """Organisations, users and authkeys made by SQL (fast, and independent of the
    commands under test)."""

    ROLE = {"admin": 1, "Org Admin": 2, "User": 3, "Publisher": 4, "Sync user": 5,
            "Read Only": 6}

    def __init__(self, stack, *orgs):
        self.stack = stack
        self.secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
        self.counter = itertools.count(1)
        self.org_id = {name: self.add_org(name) for name in orgs}

    def fresh(self, prefix):
        return f"{prefix}-{next(self.counter)}"

    def add_org(self, name):
        self.stack.rows("INSERT INTO organisations (name, uuid, date_created, date_modified) "
                        "VALUES (%s, %s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                        name, str(uuid.uuid4()))
        return self.stack.rows("SELECT id FROM organisations WHERE name = %s", name)[0]["id"]

    def add_user(self, email, org, role, key=False, disabled=False, expired=False,
                 read_only=False):
        """A user (org: a name of self.org_id or an id); with key, an authkey for it.
        Returns (email, raw key or None)."""
        org_id = self.org_id.get(org, org)
        role_id = self.ROLE.get(role, role)
        self.stack.rows("INSERT INTO users (email, org_id, role_id, disabled, date_created, "
                        "date_modified) VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3), "
                        "UTC_TIMESTAMP(3))", email, org_id, role_id, int(disabled))
        if not key:
            return email, None
        raw = random_key()
        self.add_key(email, raw, expired=expired, read_only=read_only)
        return email, raw

    def add_key(self, email, raw=None, expired=False, read_only=False):
        """An authkey for the user email; returns its id."""
        raw = raw or random_key()
        uid = self.stack.rows("SELECT id FROM users WHERE email = %s", email)[0]["id"]
        self.stack.rows(
            "INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, expiration, "
            "read_only, created) VALUES (%s, %s, %s, %s, "
            "IF(%s, UTC_TIMESTAMP(3) - INTERVAL 1 DAY, NULL), %s, UTC_TIMESTAMP(3))",
            uid, hmac.new(self.secret, raw.encode(), hashlib.sha256).digest(), raw[:4],
            raw[-4:], int(expired), int(read_only))
        return self.stack.rows("SELECT MAX(id) AS id FROM auth_keys WHERE user_id = %s",
                               uid)[0]["id"]

    def add_role(self, name):
        """A role with perm_auth only (level read_only)."""
        self.stack.rows("INSERT INTO roles (name, perm_auth, created, modified) "
                        "VALUES (%s, 1, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))", name)
        return name


class Fixture(People):
    """The personas of TABLE and their organisations, on one stack."""

    def __init__(self, stack):
        super().__init__(stack, "Alpha", "Beta")
        self.keys = {"A": stack.key, "N": None}
        self.keys["O"] = self.keys["o"] = self.add_user("orgadmin@alpha.test", "Alpha",
                                                        "Org Admin", key=True)[1]
        self.keys["P"] = self.add_user("publisher@alpha.test", "Alpha", "Publisher", key=True)[1]
        self.keys["U"] = self.add_user("user@alpha.test", "Alpha", "User", key=True)[1]
        self.keys["R"] = self.add_user("readonly@alpha.test", "Alpha", "Read Only", key=True)[1]
        self.self_email = "self@alpha.test"
        self.keys["S"] = self.add_user(self.self_email, "Alpha", "User", key=True)[1]
        host = stack.rows("SELECT org_id FROM users ORDER BY id LIMIT 1")[0]["org_id"]
        self.keys["D"] = self.add_user("disabled@host.test", host, "admin", key=True,
                                       disabled=True)[1]
        self.keys["E"] = self.add_user("expired@host.test", host, "admin", key=True,
                                       expired=True)[1]
        self.keys["K"] = self.add_user("readkey@host.test", host, "admin", key=True,
                                       read_only=True)[1]
        self.target = {"Alpha": self.add_user("target@alpha.test", "Alpha", "User")[0],
                       "Beta": self.add_user("target@beta.test", "Beta", "User")[0]}
        # someone to log in as (auth.login): a real password, no change required
        self.login_email = "login@alpha.test"
        stack.ok("user.add", {"email": self.login_email, "org": "Alpha", "password": GOOD_PW,
                              "no_password_change": True})

    def digest(self):
        """What a refused command must leave alone: every table's checksum but logs', and
        the audit rows other than failed authentications."""
        tables = [r["t"] for r in self.stack.rows(
            "SELECT table_name AS t FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")
            if r["t"] not in NOT_DIGESTED]
        sums = self.stack.rows("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
        assert sums and all(r["Checksum"] is not None for r in sums), sums
        audit = self.stack.count("logs", "action <> 'auth_fail'")
        return sorted((r["Table"], r["Checksum"]) for r in sums), audit


class Cell:
    """One persona running one command: its key and the targets its arguments name."""

    def __init__(self, fx, persona):
        self.fx = fx
        self.persona = persona
        self.key = fx.keys[persona]
        self.org = "Beta" if persona == "o" else "Alpha"
        self._user = None

    def fresh(self, prefix):
        return self.fx.fresh(prefix)

    def user(self):
        """A user the persona may read about: itself for S, else its organisation's target
        (another org's for o)."""
        return self.fx.self_email if self.persona == "S" else self.fx.target[self.org]

    def new_user(self):
        """A fresh user for a command that changes it: for S a fresh self (its key becomes
        the cell's key), else a fresh user of the target organisation."""
        if self._user is None:
            email = self.fresh(self.persona.lower() + "-target") + "@" + self.org.lower() + ".test"
            email, key = self.fx.add_user(email, self.org, "User", key=self.persona == "S")
            if key:
                self.key = key
            self._user = email
        return self._user

    def new_key(self):
        """A fresh authkey of new_user(): its id."""
        return self.fx.add_key(self.new_user())

    def new_org(self):
        name = self.fx.fresh("org")
        self.fx.org_id[name] = self.fx.add_org(name)
        return name

    def new_role(self):
        return self.fx.add_role(self.fx.fresh("role"))


# What anyone but a site admin is told about a user out of their reach, or about a key of
# such a user, existing or not (engine/auth/identity.c ab_user_not_found, engine/commands/authkey.c):
# the rows name existing users and keys, so here that answer is a "-".
HIDDEN_USER = "no such user among those you may manage"
HIDDEN = {"user": HIDDEN_USER, "authkey_id": "no authkey has the id"}


def outcome(reply):
    """The cell a reply shows: +, -, x, or ! (invalid or internal: a wrong row or a bug)."""
    if reply.get("ok") is True:
        return "+"
    err = reply["error"]
    hidden = HIDDEN.get(err.get("field"))
    if err["code"] == "not_found" and hidden and err["message"].startswith(hidden):
        return "-"
    return {"forbidden": "-", "unauthenticated": "x", "invalid": "!", "internal": "!"}.get(
        err["code"], "+")


def expected(cell_char, spec):
    if cell_char == "r":
        return "-" if spec["writes"] else "+"
    return cell_char


def send(stack, type_, args, key):
    body = {"v": 1, "id": str(uuid.uuid4()), "type": type_, "args": args}
    if key is not None:
        body["auth"] = key
    return stack.send(body)


def test_table_covers_the_catalog_and_is_well_formed():
    cat = catalog()
    missing = sorted(set(cat) - set(TABLE))
    assert not missing, (f"commands without a row in test_authz.TABLE: {missing}; add one "
                         "saying who may run each")
    stale = sorted(set(TABLE) - set(cat))
    assert not stale, f"rows of test_authz.TABLE for commands the catalog lacks: {stale}"
    for type_, (cells, _) in TABLE.items():
        chars = cells.split()
        assert len(chars) == len(PERSONAS) and set(chars) <= set("+-x"), (type_, cells)
        assert chars[0] == "+", f"{type_}: site admins may run every command"
        assert "r" not in chars, f"{type_}: spell the read-only key's cell out"
        if cat[type_]["permission"] == "public":
            continue  # credentials are ignored: everyone may, key or not
        if cat[type_]["writes"]:
            assert chars[PERSONAS.index("K")] != "+", f"{type_} writes: a read-only key"
        assert [chars[PERSONAS.index(p)] for p in "DEN"] == ["x"] * 3, type_


def test_every_command_for_every_persona(stack):
    cat = catalog()
    assert set(cat) == set(TABLE), "see test_table_covers_the_catalog_and_is_well_formed"
    # The disabled user's and the expired key's cells fail to authenticate from 127.0.0.1
    # hundreds of times within seconds: past Security.auth_fail_throttle_amount the address
    # would be refused (test_flood.py), and every later cell answered unavailable.
    stack.ok("setting.set", {"name": "Security.auth_fail_throttle_amount", "value": 0})
    fx = Fixture(stack)
    started = time.monotonic()
    wrong, cells = [], 0
    for type_, (row, make_args) in TABLE.items():
        spec = cat.get(type_)
        if spec is None:
            continue
        for persona, want in zip(PERSONAS, row.split()):
            cell = Cell(fx, persona)
            args = make_args(cell)
            want = expected(want, spec)
            before = fx.digest() if spec["writes"] and want in "-x" else None
            reply = send(stack, type_, args, cell.key)
            got = outcome(reply)
            cells += 1
            if got != want:
                wrong.append(f"{type_:18} {persona}: expected {want}, got {got}: {reply!r} "
                             f"(args {args!r})")
            elif before is not None and fx.digest() != before:
                wrong.append(f"{type_:18} {persona}: refused, yet something changed")
    print(f"\nauthorisation table: {len(TABLE)} rows ({cells} cells, "
          f"{time.monotonic() - started:.1f} s)")
    assert not wrong, "cells that differ from the table:\n" + "\n".join(wrong)


# --- the scoping rules themselves -----------------------------------------------------------


def user_state(stack):
    """What a refused user command must leave as it was."""
    return (stack.rows("SELECT * FROM users ORDER BY id"), stack.count("logs"),
            stack.count("auth_keys"))


def emails(page):
    return sorted(u["email"] for u in page["items"])


def test_org_admin_manages_only_their_own_organisation(stack):
    pp = People(stack, "Alpha", "Beta")
    key = pp.add_user("boss@alpha.test", "Alpha", "Org Admin", key=True)[1]
    pp.add_user("ana@alpha.test", "Alpha", "User")
    pp.add_user("root@alpha.test", "Alpha", "admin")  # a site admin inside Alpha
    pp.add_user("bob@beta.test", "Beta", "User")

    def as_boss(type_, args):
        return stack.cmd(type_, args, auth=key)

    # the list: Alpha's users only (all of them, as MISP's admin index), whatever the filter
    alpha = ["ana@alpha.test", "boss@alpha.test", "root@alpha.test"]
    assert emails(stack.ok("user.list", {}, auth=key)) == alpha
    assert emails(stack.ok("user.list", {"org": "alpha"}, auth=key)) == alpha
    assert stack.ok("user.list", {"role": "User"}, auth=key)["total"] == 1
    before = user_state(stack)
    for org in ("Beta", str(pp.org_id["Beta"])):
        err = assert_error(as_boss("user.list", {"org": org}), "forbidden", "org")
        assert "Alpha" in err["message"]
    assert_error(as_boss("user.list", {"org": "Nowhere"}), "not_found", "org")

    # one user: Alpha's non-site-admins only
    assert stack.ok("user.view", {"user": "ana@alpha.test"}, auth=key)["org"] == "Alpha"
    for type_, args in (("user.view", {"user": "bob@beta.test"}),
                        ("user.edit", {"user": "bob@beta.test", "autoalert": True}),
                        ("user.disable", {"user": "bob@beta.test"}),
                        ("user.delete", {"user": "bob@beta.test"}),
                        ("user.change_pw", {"user": "bob@beta.test", "password": GOOD_PW})):
        err = assert_error(as_boss(type_, args), "not_found", "user")
        assert err["message"].startswith(HIDDEN_USER)
        # the same answer as for an address that exists nowhere: nothing to learn
        args = dict(args, user="nobody@nowhere.test")
        assert assert_error(as_boss(type_, args), "not_found", "user") == err
    for type_, args in (("user.view", {"user": "root@alpha.test"}),
                        ("user.edit", {"user": "root@alpha.test", "autoalert": True}),
                        ("user.disable", {"user": "root@alpha.test"}),
                        ("user.change_pw", {"user": "root@alpha.test", "password": GOOD_PW})):
        err = assert_error(as_boss(type_, args), "forbidden", "user")
        assert "site administrator" in err["message"]
    # no move out of Alpha, no site admin role, no role with a permission boss lacks
    assert_error(as_boss("user.edit", {"user": "ana@alpha.test", "org": "Beta"}),
                 "forbidden", "org")
    err = assert_error(as_boss("user.edit", {"user": "ana@alpha.test", "role": "admin"}),
                       "forbidden", "role")
    assert "site administrator" in err["message"]
    err = assert_error(as_boss("user.edit", {"user": "ana@alpha.test", "role": "Sync user"}),
                       "forbidden", "role")
    assert "sync" in err["message"]
    assert_error(as_boss("user.add", {"email": "new@beta.test", "org": "Beta"}),
                 "forbidden", "org")
    assert_error(as_boss("user.add", {"email": "new@alpha.test", "org": "Alpha",
                                      "role": "admin"}), "forbidden", "role")
    assert user_state(stack) == before

    # inside Alpha it all works, and is audited as boss of Alpha
    new = stack.ok("user.add", {"email": "new@alpha.test", "org": "Alpha"}, auth=key)
    assert new["org"] == "Alpha" and new["role"] == "User"
    ed = stack.ok("user.edit", {"user": "ana@alpha.test", "role": "Publisher", "org": "Alpha",
                                "autoalert": True}, auth=key)
    assert ed["role"] == "Publisher" and ed["autoalert"] is True
    assert stack.ok("user.disable", {"user": "ana@alpha.test"}, auth=key)["disabled"] is True
    assert stack.ok("user.enable", {"user": "ana@alpha.test"}, auth=key)["disabled"] is False
    assert "password" in stack.ok("user.change_pw", {"user": "ana@alpha.test"}, auth=key)
    assert stack.ok("user.delete", {"user": "new@alpha.test"}, auth=key)["id"] == new["id"]
    rows = stack.rows("SELECT action, email, org FROM logs WHERE model = 'User' AND user_id > 0 "
                      "ORDER BY id")
    assert [r["action"] for r in rows] == ["add", "edit", "edit", "edit", "change_pw", "delete"], rows
    assert {(r["email"], r["org"]) for r in rows} == {("boss@alpha.test", "Alpha")}


def test_org_admin_gives_no_role_above_their_own(stack):
    """A lesser admin role (manage_org, admin and auth only) may give User, but neither the
    publish level nor a permission it lacks."""
    pp = People(stack, "Alpha")
    stack.ok("role.add", {"name": "Small Admin", "permission": "manage_org",
                          "perms": ["admin", "auth"]})
    role_id = stack.rows("SELECT id FROM roles WHERE name = 'Small Admin'")[0]["id"]
    key = pp.add_user("small@alpha.test", "Alpha", role_id, key=True)[1]
    stack.ok("role.add", {"name": "Tagger", "perms": ["auth", "tagger"]})
    before = user_state(stack)
    err = assert_error(stack.cmd("user.add", {"email": "p@alpha.test", "org": "Alpha",
                                              "role": "Publisher"}, auth=key), "forbidden", "role")
    assert "level" in err["message"]
    err = assert_error(stack.cmd("user.add", {"email": "t@alpha.test", "org": "Alpha",
                                              "role": "Tagger"}, auth=key), "forbidden", "role")
    assert "tagger" in err["message"]
    assert user_state(stack) == before
    assert stack.ok("user.add", {"email": "u@alpha.test", "org": "Alpha", "role": "User"},
                    auth=key)["role"] == "User"


def test_audit_permission_sees_only_own_organisation_logs(stack):
    pp = People(stack, "Alpha", "Beta")
    alpha_admin = pp.add_user("boss@alpha.test", "Alpha", "Org Admin", key=True)[1]
    alpha_auditor = pp.add_user("ro@alpha.test", "Alpha", "Read Only", key=True)[1]
    beta_admin = pp.add_user("boss@beta.test", "Beta", "Org Admin", key=True)[1]
    plain = pp.add_user("plain@alpha.test", "Alpha", "User", key=True)[1]
    stack.ok("org.add", {"name": "Gamma"})  # by the site admin: org ORGNAME
    stack.ok("user.add", {"email": "a1@alpha.test", "org": "Alpha"}, auth=alpha_admin)
    stack.ok("user.add", {"email": "a2@alpha.test", "org": "Alpha"}, auth=alpha_admin)
    stack.ok("user.add", {"email": "b1@beta.test", "org": "Beta"}, auth=beta_admin)
    stack.cmd("auth.whoami", auth="z" * 40)  # an auth_fail row (org SYSTEM)
    orgs = {r["org"] for r in stack.rows("SELECT DISTINCT org FROM logs")}
    assert {"ORGNAME", "Alpha", "Beta", "SYSTEM"} <= orgs

    for key in (alpha_auditor, alpha_admin):
        seen = stack.ok("log.search", {"limit": 1000}, auth=key)
        assert seen["total"] == stack.count("logs", "org = 'Alpha'") == 2
        assert {r["org"] for r in seen["items"]} == {"Alpha"}
        # a filter narrows the view further, never widens it
        assert stack.ok("log.search", {"org": "Beta"}, auth=key)["total"] == 0
        assert stack.ok("log.search", {"action": "add"}, auth=key)["total"] == 2
    beta = stack.ok("log.search", {}, auth=beta_admin)
    assert beta["total"] == 1 and beta["items"][0]["email"] == "boss@beta.test"
    # the site admin sees every row; a role without perm_audit none
    assert stack.ok("log.search", {"limit": 1000})["total"] == stack.count("logs")
    assert_error(stack.cmd("log.search", {}, auth=plain), "forbidden")
