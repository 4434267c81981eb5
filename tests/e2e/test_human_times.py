"""Times in adminctl's human output are ISO 8601 UTC, every one of them: `modified` (roles,
users), `expires` (a login's session), `first_seen` and `last_seen` (a user's addresses),
`last_run` and `next_execution_time` (tasks, the latter in MISP's unix seconds) as much
as `created`. --json keeps the wire's numbers. The rule is the wire's naming convention
(docs/protocol.md, "Times"), so no epoch number is left in any of these outputs."""

import json
import re
import time

ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
EPOCH = re.compile(r"(?<![\d.])1\d{9}(\d{3})?(?![\d.])")  # unix seconds or ms of our era


def ctl(stack, *args, stdin=None):
    rc, out, err = stack.adminctl(*args, stdin=stdin)
    assert rc == 0, f"adminctl {' '.join(args)}: {rc}\n{out}\n{err}"
    return out


def field(out, name):
    """The value of a `name: value` line of human output."""
    m = re.search(rf"^\s*{name}:\s+(\S+)\s*$", out, re.M)
    assert m, f"no {name} in:\n{out}"
    return m.group(1)


def column(out, name):
    """The values of column name in a human table."""
    lines = out.splitlines()
    head = lines[0]
    start = head.index(name.upper())
    return [ln[start:].split()[0] for ln in lines[1:] if ln.strip() and " of " not in ln]


def test_every_time_is_iso_8601(stack):
    role = ctl(stack, "role", "add", "--name", "Analyst", "--permission", "manage_org")
    assert re.fullmatch(ISO_MS, field(role, "modified")), role
    assert re.fullmatch(ISO_MS, field(role, "created")), role
    added = json.loads(ctl(stack, "--json", "user", "add", "--email", "ana@circl.lu", "--org",
                           "1", "--role", "User"))
    users = ctl(stack, "user", "list")
    assert all(re.fullmatch(ISO_MS, v) for v in column(users, "modified")), users

    login = ctl(stack, "auth", "login", "ana@circl.lu", "--password-stdin",
                stdin=added["password"] + "\n")
    assert re.fullmatch(ISO_MS, field(login, "expires")), login
    ips = ctl(stack, "user", "ips", "ana@circl.lu")
    for name in ("first_seen", "last_seen"):
        [seen] = column(ips, name)
        assert re.fullmatch(ISO_MS, seen), ips

    ctl(stack, "task", "run", "6")  # jobs.purge, now: the task's last_run is set
    deadline = time.monotonic() + 30
    while not {t["id"]: t for t in json.loads(ctl(stack, "--json", "task", "list"))["items"]}[6][
            "last_run"]:
        assert time.monotonic() < deadline, "task 6 has no last_run"
        time.sleep(0.1)
    tasks = ctl(stack, "task", "list")
    assert re.fullmatch(ISO_MS, column(tasks, "last_run")[5]), tasks
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        column(tasks, "next_execution_time")[5]), tasks

    for out in (role, users, login, ips, tasks):
        assert not EPOCH.search(out), f"an epoch number in human output:\n{out}"
    # --json: the wire's numbers, unchanged
    raw = json.loads(ctl(stack, "--json", "role", "view", "Analyst"))
    assert isinstance(raw["modified"], int) and raw["modified"] > 10**12
