"""Every change audited, across the catalog (design.md: "every change audited").

AUDIT below says, for every command the catalog marks as writing, one run with valid
arguments and the audit rows it must leave in `logs` (MISP's shape): model, action, how
many, and the record each names where that is known. The test checks that the table
covers exactly the catalog's writing commands (a new writing command without an entry
fails here until its audit is written down), runs each entry once, one after another, and
compares the rows each left with its entry. It also checks that every command the catalog
marks as not writing leaves the whole database as it was (a digest of every table), so a
command cannot escape the table by saying it does not write.

Commands that need outside parts act only as far as the engine does: `mail.test` sends to
a real SMTP sink (tests/e2e/smtp_sink.py), the mail-outs, key fetch and backup enqueue
their jobs (no worker runs their queues here: their own audit rows are the mail and backup
tests' business), and the worker commands act on real workers under a real supervisor (on
the `cache` and `update` queues, where no job of this test goes).
"""

import os
import signal
import time
import uuid
from collections import Counter

import pytest

from catalog_args import Fill, catalog, db_digest, digest_changes, send_all
from conftest import Stack, running
from helpers import admin
from test_mail import SmtpSink, configure, keys  # noqa: F401 (keys: a fixture)

PASSWORD = "Audit-Horse-42-battery"


@pytest.fixture(scope="module")
def astack(mariadb, tmp_path_factory):
    with running(Stack(mariadb, tmp_path_factory.mktemp("audit") / "home")) as s:
        yield s


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    with SmtpSink(tmp_path_factory.mktemp("audit-sink") / "sink") as s:
        yield s


class Records:
    """The records the table's commands act on, made before any of them runs: one per
    command that changes or removes something, so that no entry depends on another."""

    def __init__(self, stack, sink, gpg):
        self.stack = stack
        self.fill = Fill(stack)
        me = admin(stack)
        self.admin_id, self.admin_email, self.host_org = me["id"], me["email"], me["org_name"]
        self.org = int(self.fill.org)
        self.org_empty = self.add_org("Audit Empty Org")
        self.org_merged = self.add_org("Audit Merged Org")
        self.role = int(self.fill.role)
        self.role_unused = stack.ok("role.add", {"name": "Audit Unused Role"})["id"]
        self.role_default = stack.ok("role.add", {"name": "Audit Default Role"})["id"]
        self.old_default = stack.rows("SELECT id FROM roles WHERE default_role = 1")[0]["id"]
        self.user = self.user_id(self.fill.user)
        self.user_switch = self.add_user("audit.switch@example.org")
        self.user_gone = self.add_user("audit.gone@example.org")
        self.user_reset = self.add_user("audit.reset@example.org")
        self.reset_key = stack.ok("authkey.add", {"user": "audit.reset@example.org"})["id"]
        self.user_otp = self.add_user("audit.otp@example.org")
        stack.ok("otp.enrol", {"user": "audit.otp@example.org"})
        self.user_login = self.add_user("audit.login@example.org", password=PASSWORD)
        self.user_out = self.add_user("audit.out@example.org", password=PASSWORD)
        self.session = self.login("audit.out@example.org")
        self.authkey = self.fill.authkey
        self.authkey_gone = stack.ok("authkey.add", {"user": self.fill.user})["id"]
        self.job_queued = stack.ok("job.enqueue", {"type": "noop"})["id"]
        self.job_cancelled = stack.ok("job.enqueue", {"type": "noop"})["id"]
        stack.ok("job.cancel", {"job": self.job_cancelled})
        tasks = {t["type"]: t["id"] for t in stack.ok("task.list")["items"]}
        self.task, self.task_run = tasks["jobs.purge"], tasks["commands.purge"]
        configure(stack, sink, gpg)
        self.mail_job = stack.ok("mail.contact", {"user": self.fill.user, "subject": "Before",
                                                  "message": "Before"})["id"]
        self.workers = None  # Workers, started before the first worker command

    def add_org(self, name):
        return self.stack.ok("org.add", {"name": name})["id"]

    def add_user(self, email, password=None):
        args = {"email": email, "org": str(self.org), "role": "3"}
        if password:
            args.update(password=password, no_password_change=True)
        return self.stack.ok("user.add", args)["id"]

    def user_id(self, email):
        return self.stack.rows("SELECT id FROM users WHERE email = %s", email)[0]["id"]

    def login(self, email):
        r = self.stack.send({"v": 1, "id": str(uuid.uuid4()), "type": "auth.login",
                             "args": {"email": email, "password": PASSWORD}})
        assert r.get("ok") is True, r
        return r["result"]["session"]


class Workers:
    """A supervisor with three workers on the `cache` queue and a worker started by hand on
    `update`: live workers for pause, resume, stop, restart and kill, a supervisor for
    start, and a dead registration for cleanup."""

    def __init__(self, stack):
        self.sup = stack.start_supervisor(workers="cache:3")
        self.restarted, self.killed, self.dead = (w["id"] for w in self.sup.wait_workers(3))
        self.started_by_hand = stack.start_worker("update")
        self.by_hand = self.started_by_hand.id
        dead_pid = stack.rows("SELECT pid FROM workers WHERE id = %s", self.dead)[0]["pid"]
        os.kill(dead_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while stack.rows("SELECT status FROM workers WHERE id = %s", self.dead)[0]["status"] \
                != "dead":
            assert time.monotonic() < deadline, f"worker {self.dead} not marked dead"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def records(astack, sink, keys):  # noqa: F811 (keys: test_mail's fixture)
    return Records(astack, sink, keys)


class Entry:
    """One run of a writing command: args(records) → its arguments; rows: the audit rows
    it must leave, each (model, action, model id) where the id is a function of (records,
    result) or None (not checked); envelope(records) → keys that replace the envelope's
    credential (a session; None: no credential); actor(records) → the user the rows name;
    names(records) → text every row's title holds (the record, when the id cannot say)."""

    def __init__(self, args, rows, envelope=None, actor=None, names=None):
        self.args, self.rows, self.envelope, self.names = args, rows, envelope, names
        self.actor = actor or (lambda r: r.admin_id)


def result_id(_r, res):
    return res["id"]


def fixed(attr):
    return lambda r, _res: getattr(r, attr)


def zero(_r, _res):
    return 0


def worker(which):
    """An entry of a worker command on the worker Workers names which (model id 0: the
    worker's id is text, named by the title)."""
    return dict(args=lambda r: {"worker": getattr(r.workers, which)},
                names=lambda r: getattr(r.workers, which))


# The documented audit rows of every writing command (docs/architecture.md, the handlers,
# MISP's logs shape). Worker changes are model Worker, id 0 (the id is text, in the title).
AUDIT = {
    "org.add": Entry(lambda r: {"name": "Audit Added Org"},
                     [("Organisation", "add", result_id)]),
    "org.edit": Entry(lambda r: {"org": str(r.org), "description": "edited"},
                      [("Organisation", "edit", fixed("org"))]),
    "org.delete": Entry(lambda r: {"org": str(r.org_empty)},
                        [("Organisation", "delete", fixed("org_empty"))]),
    "org.merge": Entry(lambda r: {"org": str(r.org_merged), "into": str(r.org)},
                       [("Organisation", "merge", fixed("org_merged"))]),
    "role.add": Entry(lambda r: {"name": "Audit Added Role"}, [("Role", "add", result_id)]),
    "role.edit": Entry(lambda r: {"role": str(r.role), "perms": ["tagger"]},
                       [("Role", "edit", fixed("role"))]),
    "role.delete": Entry(lambda r: {"role": str(r.role_unused)},
                         [("Role", "delete", fixed("role_unused"))]),
    # One row for each role it changes: the old default and the new one.
    "role.set_default": Entry(lambda r: {"role": str(r.role_default)},
                              [("Role", "edit", fixed("old_default")),
                               ("Role", "edit", fixed("role_default"))]),
    "user.add": Entry(lambda r: {"email": "audit.added@example.org", "org": str(r.org)},
                      [("User", "add", result_id)]),
    "user.edit": Entry(lambda r: {"user": str(r.user), "contactalert": True},
                       [("User", "edit", fixed("user"))]),
    "user.disable": Entry(lambda r: {"user": str(r.user_switch)},
                          [("User", "edit", fixed("user_switch"))]),
    "user.enable": Entry(lambda r: {"user": str(r.user_switch)},
                         [("User", "edit", fixed("user_switch"))]),
    "user.delete": Entry(lambda r: {"user": str(r.user_gone)},
                         [("User", "delete", fixed("user_gone"))]),
    "user.change_pw": Entry(lambda r: {"user": str(r.user), "password": PASSWORD},
                            [("User", "change_pw", fixed("user"))]),
    # --reset of a user with one key: the key revoked, a new one, and MISP's reset row.
    "user.authkey": Entry(lambda r: {"user": str(r.user_reset), "reset": True},
                          [("AuthKey", "delete", fixed("reset_key")),
                           ("AuthKey", "add", lambda r, res: res["key"]["id"]),
                           ("User", "reset_auth_key", fixed("user_reset"))]),
    "authkey.add": Entry(lambda r: {"user": str(r.user)},
                         [("AuthKey", "add", result_id)]),
    "authkey.edit": Entry(lambda r: {"authkey_id": r.authkey, "comment": "edited"},
                          [("AuthKey", "edit", fixed("authkey"))]),
    "authkey.delete": Entry(lambda r: {"authkey_id": r.authkey_gone},
                            [("AuthKey", "delete", fixed("authkey_gone"))]),
    "auth.login": Entry(lambda r: {"email": "audit.login@example.org", "password": PASSWORD},
                        [("User", "login", fixed("user_login"))],
                        envelope=lambda r: {"auth": None}, actor=lambda r: r.user_login),
    "auth.logout": Entry(lambda r: {}, [("User", "logout", fixed("user_out"))],
                         envelope=lambda r: {"auth": None, "session": r.session},
                         actor=lambda r: r.user_out),
    "bruteforce.clear": Entry(lambda r: {}, [("Bruteforce", "delete", zero)]),
    "otp.enrol": Entry(lambda r: {"user": str(r.user)}, [("User", "otp_enrol", fixed("user"))]),
    "otp.delete": Entry(lambda r: {"user": str(r.user_otp)},
                        [("User", "otp_delete", fixed("user_otp"))]),
    "job.enqueue": Entry(lambda r: {"type": "noop"}, [("Job", "add", result_id)]),
    # One row for the command, on its first job.
    "job.enqueue_many": Entry(lambda r: {"jobs": [{"type": "noop"}, {"type": "noop"}]},
                              [("Job", "add", lambda r, res: res["ids"][0])]),
    "job.retry": Entry(lambda r: {"job": r.job_cancelled},
                       [("Job", "edit", fixed("job_cancelled"))]),
    "job.cancel": Entry(lambda r: {"job": r.job_queued}, [("Job", "edit", fixed("job_queued"))]),
    "job.purge": Entry(lambda r: {"all": True}, [("Job", "delete", zero)]),
    "queue.clear": Entry(lambda r: {"queue": "default"}, [("Job", "edit", zero)]),
    "task.set": Entry(lambda r: {"task": r.task, "description": "edited"},
                      [("Task", "edit", fixed("task"))]),
    "task.run": Entry(lambda r: {"task": r.task_run}, [("Task", "run", fixed("task_run"))]),
    "setting.set": Entry(lambda r: {"name": "MISP.welcome_text_top", "value": "audited"},
                         [("Server", "serverSettingsEdit", zero)]),
    "setting.reset": Entry(lambda r: {"name": "MISP.welcome_text_top"},
                           [("Server", "serverSettingsEdit", zero)]),
    "setting.baseurl": Entry(lambda r: {"baseurl": "https://misp.audit.test"},
                             [("Server", "serverSettingsEdit", zero)]),
    "db.update": Entry(lambda r: {}, [("Server", "update_database", zero)]),
    # Commands that enqueue a job: the job's add (its worker audits what it does).
    "backup.run": Entry(lambda r: {}, [("Job", "add", result_id)]),
    "mail.contact": Entry(lambda r: {"user": str(r.user), "subject": "Audit",
                                     "message": "Audited"}, [("Job", "add", result_id)]),
    "user.reset_password": Entry(lambda r: {"user": str(r.user)}, [("Job", "add", result_id)]),
    "user.gpg_fetch": Entry(lambda r: {"user": str(r.user)}, [("Job", "add", result_id)]),
    # Sent inside the engine to the SMTP sink: audited as `email`.
    "mail.test": Entry(lambda r: {"to": "ops@audit.test"}, [("User", "email", zero)],
                       names=lambda r: "ops@audit.test"),
    # Worker commands (last: the workers start before the first of them).
    "worker.pause": Entry(rows=[("Worker", "edit", zero)], **worker("by_hand")),
    "worker.resume": Entry(rows=[("Worker", "edit", zero)], **worker("by_hand")),
    "worker.stop": Entry(rows=[("Worker", "edit", zero)], **worker("by_hand")),
    "worker.restart": Entry(rows=[("Worker", "edit", zero)], **worker("restarted")),
    "worker.kill": Entry(rows=[("Worker", "edit", zero)], **worker("killed")),
    "worker.start": Entry(lambda r: {"queue": "cache"}, [("Worker", "add", zero)],
                          names=lambda r: "queue cache"),
    "worker.cleanup": Entry(rows=[("Worker", "delete", zero)], **worker("dead")),
}


def writing(cat):
    return {c["type"] for c in cat if c["writes"]}


def test_the_table_covers_exactly_the_writing_commands():
    cat = catalog()
    missing = sorted(writing(cat) - set(AUDIT))
    extra = sorted(set(AUDIT) - writing(cat))
    assert not missing, f"writing commands with no entry in AUDIT (say their audit rows): " \
                        f"{missing}"
    assert not extra, f"entries in AUDIT that are not writing commands of the catalog: {extra}"


def run(stack, r, type_, entry):
    cmd = stack.command(type_, entry.args(r))
    if entry.envelope:
        cmd.update(entry.envelope(r))
    return stack.send({k: v for k, v in cmd.items() if v is not None})


def check_rows(r, type_, entry, res, rows):
    """What is wrong with the rows type_ left (a list of text; empty when right)."""
    want = Counter((m, a) for m, a, _ in entry.rows)
    got = Counter((x["model"], x["action"]) for x in rows)
    if got != want:
        return [f"{type_}: audit rows {dict(got)}, documented {dict(want)}"]
    problems = []
    for model, action, id_of in entry.rows:
        if id_of is None:
            continue
        ids = [x["model_id"] for x in rows if (x["model"], x["action"]) == (model, action)]
        if id_of(r, res) not in ids:
            problems.append(f"{type_}: no {model} {action} row on id {id_of(r, res)}: {ids}")
    if entry.names:
        problems += [f"{type_}: a title without {entry.names(r)!r}: {x['title']}"
                     for x in rows if entry.names(r) not in x["title"]]
    actor = entry.actor(r)
    for x in rows:  # MISP's shape: who, when, what
        if x["user_id"] != actor or not x["email"] or not x["org"] or not x["title"] \
                or x["created"] is None:
            problems.append(f"{type_}: a row not in MISP's shape or not naming user {actor}: "
                            f"{x}")
    return problems


def test_commands_that_do_not_write_change_nothing(astack, records):
    """Every command the catalog marks as not writing, run with valid arguments, leaves
    every table as it was (and so no audit row)."""
    cat = catalog()
    fill = records.fill
    reads = [c for c in cat if not c["writes"]]
    assert len(reads) > 15, [c["type"] for c in reads]
    sent = []
    for c in reads:
        args = fill.required(c)
        args.update(fill.context(c["type"], ""))
        if c["type"] == "mail.status":  # the recipients of a mail-out
            args["job"] = records.mail_job
        sent.append(astack.command(c["type"], args))
    before = db_digest(astack)
    replies = send_all(astack, sent)
    after = db_digest(astack)
    answered = {c["type"]: replies.get(c["id"]) for c in sent}
    internal = {t: r for t, r in answered.items()
                if r is None or (not r["ok"] and r["error"]["code"] == "internal")}
    assert not internal, internal
    refused = {t: r for t, r in answered.items() if r is None or not r["ok"]}
    assert not refused, refused
    assert not digest_changes(before, after), digest_changes(before, after)


def test_every_writing_command_leaves_its_documented_audit_rows(astack, records):
    r = records
    problems = []
    for type_, entry in AUDIT.items():
        if type_.startswith("worker.") and r.workers is None:
            r.workers = Workers(astack)
        mark = astack.rows("SELECT COALESCE(MAX(id), 0) AS m FROM logs")[0]["m"]
        reply = run(astack, r, type_, entry)
        if reply.get("ok") is not True:
            problems.append(f"{type_}: the valid run was refused: {reply}")
            continue
        rows = astack.rows("SELECT * FROM logs WHERE id > %s ORDER BY id", mark)
        problems += check_rows(r, type_, entry, reply["result"], rows)
    if r.workers:
        r.workers.started_by_hand.expected_dead = True  # stopped by worker.stop
    assert not problems, "\n".join(problems)
