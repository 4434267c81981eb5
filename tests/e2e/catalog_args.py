"""The command catalog as the end-to-end tests see it, and valid arguments for its commands.

Shared by the sweeps that walk the whole catalog (`adminbus-catalog --json`): the text
limits (test_limits.py), bad input (test_catalog_bad_input.py) and the audit of every
writing command (test_catalog_audit.py). A sweep takes, for the arguments it does not
test, the valid values Fill gives, and sends its commands pipelined with send_all.
"""

import json
import subprocess
import time
import uuid

import msgpack

from conftest import BIN

# The entries of a list argument are the arguments of another command.
LIST_ENTRIES = {("job.enqueue_many", "jobs"): "job.enqueue"}


def catalog():
    """Every command of the catalog: [{type, cli, summary, permission, writes, args:
    [{name, type, required, positional, not_blank, bytes, min, max, choices}]}]."""
    out = subprocess.run([str(BIN / "adminbus-catalog"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def send_all(stack, commands, timeout=180, window=500):
    """Send every command pipelined on one DEALER, at most window of them unanswered at a
    time (so that no queue on the way reaches its high-water mark); return {id: reply}. A
    command is a map (packed here) or (id, raw bytes) for a frame built by hand. A reply
    that is not valid UTF-8 is kept as {"undecodable": raw bytes}. Stops waiting when the
    broker or the engine has died."""
    sock = stack.socket()
    try:
        replies, sent, deadline = {}, 0, time.monotonic() + timeout
        while len(replies) < len(commands) and time.monotonic() < deadline:
            while sent < len(commands) and sent - len(replies) < window:
                c = commands[sent]
                body = c[1] if isinstance(c, tuple) else msgpack.packb(c, use_bin_type=True)
                sock.send_multipart([b"", body])
                sent += 1
            if not sock.poll(500):
                if any(not d.alive() for d in stack.daemons() if d is not None):
                    break  # no more replies will come: the test fails on those missing
                continue
            _, raw = sock.recv_multipart()
            try:
                reply = msgpack.unpackb(raw, raw=False)
            except UnicodeDecodeError:
                rid = msgpack.unpackb(raw, raw=True).get(b"id", b"").decode("ascii", "replace")
                reply = {"id": rid, "undecodable": raw}
            replies[reply["id"]] = reply
        return replies
    finally:
        sock.close()


class Fill:
    """Valid values for the arguments a case does not test: records made once, names made
    fresh per case (a case's value under test is unique too, so cases never collide)."""

    def __init__(self, stack=None):
        """Records made on stack; without one, placeholders (for commands refused before
        any look-up)."""
        self.n = 0
        if stack is None:
            self.org = self.role = "1"
            self.user = "nobody@example.org"
            self.authkey = self.job = self.task = 1
            return
        self.org = str(stack.ok("org.add", {"name": "Sweep Org"})["id"])
        self.role = str(stack.ok("role.add", {"name": "Sweep Role"})["id"])
        self.user = "sweep.target@example.org"
        stack.ok("user.add", {"email": self.user, "org": self.org, "role": self.role})
        self.authkey = stack.ok("authkey.add", {"user": self.user})["id"]
        self.job = stack.ok("job.enqueue", {"type": "noop"})["id"]
        tasks = stack.ok("task.list")["items"]
        self.task = next(t["id"] for t in tasks if t["type"] == "jobs.purge")

    def fresh(self, what):
        self.n += 1
        return f"sweep-{what}-{self.n}"

    def value(self, cmd, arg):
        """A valid value for arg of command cmd (its name decides, then its type)."""
        name, kind = arg["name"], arg["type"]
        by_name = {
            "org": self.org, "into": self.org, "user": self.user, "role": self.role,
            "authkey_id": self.authkey, "job": self.job, "task": self.task,
            "ip": "192.0.2.1", "to": "sweep.to@example.org", "type": "noop", "value": "x",
            "baseurl": "https://misp.example.org", "worker": "nohost:1:default",
            "jobs": [{"type": "noop"}],
        }
        if name == "name":  # org.add, role.add: unique; setting.*: a text setting
            return "MISP.welcome_text_top" if cmd.startswith("setting.") else self.fresh("name")
        if name == "email":
            return self.user if cmd == "auth.login" else f"{self.fresh('user')}@example.org"
        if name in by_name:
            return by_name[name]
        if kind == "enum":
            return arg["choices"][0]
        if kind == "integer":
            return max(arg["min"], 1)
        if kind == "boolean":
            return False
        if kind == "uuid":
            return str(uuid.uuid4())
        return "sweep"

    def required(self, cmd):
        """Valid values for every required argument of cmd (a catalog entry)."""
        return {a["name"]: self.value(cmd["type"], a) for a in cmd["args"] if a["required"]}

    def context(self, cmd, name):
        """Arguments a command needs beyond its required ones for the case of argument
        name to reach its handler's work (rules between arguments)."""
        if cmd == "mail.contact":
            who = {"future": "sweep.future@example.org"} if name in ("future", "gpgkey") \
                else {"user": self.user}
            return dict(who, subject="Sweep", message="Sweep")
        if cmd == "auth.login" and name != "password":
            return {"password": "not the password"}
        return {}


def tables(stack):
    """Every base table of the stack's database."""
    return [r[f"Tables_in_{stack.database}"] for r in
            stack.rows("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")]


def db_digest(stack):
    """{table: (rows, CHECKSUM TABLE)} for every table of the database: any insert, update
    or delete of any table changes its entry."""
    out = {}
    for t in tables(stack):
        checksum = stack.rows(f"CHECKSUM TABLE `{t}`")[0]["Checksum"]
        out[t] = (stack.count(t), checksum)
    return out


def digest_changes(before, after):
    """The tables whose digest differs, as text (empty when none does)."""
    return [f"{t}: rows {before.get(t, (None,))[0]} -> {after.get(t, (None,))[0]}, "
            f"checksum {before.get(t, (None, None))[1]} -> {after.get(t, (None, None))[1]}"
            for t in sorted(set(before) | set(after)) if before.get(t) != after.get(t)]
