"""Bad input harms nothing, across the catalog (design.md, guarantee 5).

For every command of the catalog (`adminbus-catalog --json`) and every argument, hostile
values are generated from what the catalog says of it: each wrong type (an empty map or a
list where a scalar is wanted, nil, a float, bin, ext), its limits + 1 (characters or bytes,
integers, entries), invalid UTF-8, NUL, white space alone, values outside an enum, bad
entries of lists and maps, nesting past the decoder's limit; and per command: every
required argument missing, an unknown argument, args that are not a map, an argument
given twice. A table adds what only the handlers can refuse (an address that is not one,
a password below the policy, a time that is not one, records that do not exist, names
already taken).

They are sent pipelined on one DEALER as the site administrator, without any credential,
and with credentials that fail (unknown, expired, of a disabled user, from outside the
key's allowed addresses). Every reply must be an error, never `internal`, with its
documented code and field. A digest of the whole database (every table's row count and
CHECKSUM TABLE) is taken before and after: nothing may change but what the documented
refusals record, compared table by table and row by row — a stored reply in
`command_ids` for each `conflict`, an `auth_fail` audit row for each refused credential,
a failed login's `login_fail` row and brute-force row. Then the engine still serves.
"""

import uuid
from collections import Counter

import msgpack
import pytest

from catalog_args import LIST_ENTRIES, Fill, catalog, db_digest, digest_changes, send_all
from conftest import Stack, running
from helpers import admin

NEST = 40  # deeper than the decoder's limit (32 levels, the command map included)
EXT = msgpack.ExtType(5, b"\x01")
WRONG_TYPES = {  # what each kind of argument is given instead of its own type
    "string": [1, -1, True, None, 1.5, b"bin", EXT, [], {}, ["x"], {"k": "v"}],
    "integer": ["1", True, None, 1.5, b"\x01", EXT, [], {}, [1], {"k": 1}],
    "boolean": ["true", 1, 0, None, 1.5, b"\x01", EXT, [], {}, [True]],
    "uuid": [1, True, None, 1.5, b"bin", EXT, [], {}, "not-a-uuid",
             "5f6c3a1e8b2d4c1a9e7f0a1b2c3d4e5f", "{5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f}",
             "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5g", "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f0"],
    "enum": [1, True, None, 1.5, b"bin", EXT, [], {}, "", "no-such-choice"],
    "map": ["x", 1, True, None, 1.5, b"bin", EXT, [], ["x"]],
    "list": ["x", 1, True, None, 1.5, b"bin", EXT, {}, {"type": "noop"}],
    "strings": ["x", 1, True, None, 1.5, b"bin", EXT, {}, [1], [None], [[]], [{}], [b"x"]],
    # A scalar takes a string, an integer, true, false or nil: not a float, bin, ext or
    # container.
    "scalar": [1.5, b"bin", EXT, [], {}, ["x"], {"k": "v"}],
}
BAD_UTF8 = "BADUTF8"  # a marker whose first byte the frame gets as 0xff (see pack)


def holds(value, test):
    """True when a string anywhere in value (keys included) passes test."""
    if isinstance(value, str):
        return test(value)
    if isinstance(value, dict):
        return any(holds(k, test) or holds(v, test) for k, v in value.items())
    if isinstance(value, list):
        return any(holds(v, test) for v in value)
    return False


def nested(depth):
    v = "deep"
    for _ in range(depth):
        v = [v]
    return v


class Case:
    """One hostile command: its type and args, the code and field of its refusal, what it
    tries (for the failure message); bad_utf8: the BAD_UTF8 marker in args becomes invalid
    UTF-8 in the frame; dup: the argument given twice; id: the command id (else a new one);
    handler: refused only by the handler, after authentication (else in phase one)."""

    def __init__(self, type_, args, code, field, what, bad_utf8=False, dup=None, id=None,
                 handler=False):
        self.type, self.args, self.code, self.field, self.what = type_, args, code, field, what
        self.bad_utf8, self.dup, self.id = bad_utf8, dup, id
        self.handler = handler  # refused by the handler, after authentication

    def pack(self, stack, envelope):
        """(id, frame) with the envelope's credential keys replaced by envelope's."""
        cmd = stack.command(self.type, id=self.id)
        cmd["args"] = self.args  # as it is: stack.command would make nil a map
        del cmd["auth"]
        cmd.update(envelope)
        body = msgpack.packb(cmd, use_bin_type=True)
        if self.bad_utf8:  # same length: the str headers stay right
            marker = BAD_UTF8.encode()
            assert body.count(marker) == 1, self.what
            body = body.replace(marker, b"\xff" + marker[1:])
        if self.dup:  # an argument given twice: a map of one more pair than python packs
            body = dup_arg(body, cmd, self.dup)
        return cmd["id"], body


def dup_arg(body, cmd, name):
    """The frame of cmd with args[name] given twice (msgpack allows repeated keys; python's
    dict cannot hold them)."""
    args = cmd["args"]
    others = {k: v for k, v in args.items() if k != name}
    pair = msgpack.packb(name) + msgpack.packb(args[name], use_bin_type=True)
    head = msgpack.packb(dict(others, **{name: args[name]}), use_bin_type=True)
    n = len(args) + 1
    assert n < 16, "fixmap only"
    new_args = bytes([0x80 | n]) + head[1:] + pair
    old_args = msgpack.packb(args, use_bin_type=True)
    assert body.count(old_args) == 1
    return body.replace(old_args, new_args)


def text_limit_values(arg):
    """Strings just past the limits of a text argument (characters, or bytes)."""
    out = []
    if arg["bytes"]:  # one byte more, in a multi-byte character or not
        out.append(("max+1 bytes", "x" * (arg["max"] + 1)))
        out.append(("max+1 bytes (é)", "é" * ((arg["max"] + 2) // 2)))
    else:
        out.append(("max+1 characters", "x" * (arg["max"] + 1)))
        out.append(("max+1 four-byte characters", "\U0001F600" * (arg["max"] + 1)))
    if arg["min"] > 0:
        out.append(("below min", "x" * (arg["min"] - 1)))
    return out


def value_cases(cmd, arg, base, field, prefix=""):
    """Hostile values for one argument: [(what, args, field)] where field is what the
    refusal must name."""
    name, kind = arg["name"], arg["type"]
    out = []

    def with_value(what, value, f=field):
        out.append((f"{prefix}{name}: {what}", dict(base, **{name: value}), f))

    for v in WRONG_TYPES[kind]:
        with_value(f"{type(v).__name__} {v!r:.40}", v)
    if kind in ("string", "scalar"):
        for what, v in text_limit_values(arg):
            with_value(what, v)
        with_value("NUL", "a\x00b")
        with_value("invalid UTF-8", "a" + BAD_UTF8)
        if arg["not_blank"]:
            with_value("blank", " \t\u3000")
    elif kind == "integer":
        for what, v in (("max+1", arg["max"] + 1), ("min-1", arg["min"] - 1),
                        ("2^64-1", 2 ** 64 - 1), ("-2^63", -2 ** 63)):
            if -2 ** 63 <= v < 2 ** 64 and not arg["min"] <= v <= arg["max"]:
                with_value(what, v)
        with_value("NUL in a string", "1\x00")
    elif kind == "boolean":
        with_value("invalid UTF-8 in a string", BAD_UTF8)
    elif kind == "enum":
        first = arg["choices"][0]
        if first.upper() != first:
            with_value("a choice in upper case", first.upper())
        with_value("a choice with a space", first + " ")
        with_value("a choice with NUL", first + "\x00")
        with_value("invalid UTF-8", BAD_UTF8)
    elif kind == "strings":
        entry = arg["choices"][0] if arg["choices"] else "x"
        with_value("max+1 entries", [f"{entry}{i}" for i in range(arg["max"] + 1)])
        if arg["min"] > 0:
            with_value("no entry", [])
        with_value("an entry twice", [entry, entry])
        with_value("an entry with NUL", [entry + "\x00"])
        with_value("an entry not UTF-8", [BAD_UTF8])
        if arg["choices"]:
            with_value("an entry not a choice", ["no-such-choice"])
        else:
            with_value("an empty entry", [""])
            with_value("an entry of 256 characters", ["x" * 256])
    elif kind == "map":
        with_value("max+1 entries", {f"k{i}": i for i in range(arg["max"] + 1)})
        with_value("a map value", {"k": {"a": 1}})
        with_value("a list value", {"k": [1]})
        with_value("an empty key", {"": 1})
        with_value("a key of 65 bytes", {"k" * 65: 1})
        with_value("an integer key", {1: "x"})
        with_value("NUL in a value", {"k": "a\x00"})
        with_value("a value not UTF-8", {"k": BAD_UTF8})
    elif kind == "list":
        entry = {"type": "noop"}
        with_value("max+1 entries", [entry] * (arg["max"] + 1))
        if arg["min"] > 0:
            with_value("no entry", [])
        with_value("an entry not a map", [entry, "x"], f"{field}[1]")
        with_value("NUL in an entry", [{"type": "noop\x00"}])
        with_value("an entry not UTF-8", [{"type": BAD_UTF8}])
    return out


def generic_cases(cat, fill):
    """Every hostile value of every argument of every command, and the per-command ones.
    The catalog refuses them in phase one, before any credential is looked at, except the
    values inside the entries of a list argument: its handler checks each entry against
    the catalog (handler=True), and names it (jobs[0].type)."""
    by_type = {c["type"]: c for c in cat}
    cases = []
    for cmd in cat:
        t = cmd["type"]
        base = fill.required(cmd)
        for arg in cmd["args"]:
            for what, args, field in value_cases(cmd, arg, base, arg["name"]):
                cases.append(Case(t, args, "invalid", field, f"{t} {what}",
                                  bad_utf8=holds(args, lambda x: BAD_UTF8 in x)))
            if arg["type"] == "list":
                inner_cmd = by_type[LIST_ENTRIES[(t, arg["name"])]]
                inner_base = fill.required(inner_cmd)
                for inner in inner_cmd["args"]:
                    for what, entry, field in value_cases(inner_cmd, inner, inner_base,
                                                          f"{arg['name']}[0].{inner['name']}",
                                                          prefix=f"{arg['name']}[0]."):
                        # The decoder refuses a bad string anywhere in args, naming the
                        # argument holding it; the handler checks the rest of an entry.
                        decoder = holds(entry, lambda x: BAD_UTF8 in x or "\x00" in x)
                        cases.append(Case(t, dict(base, **{arg["name"]: [entry]}), "invalid",
                                          arg["name"] if decoder else field, f"{t} {what}",
                                          bad_utf8=holds(entry, lambda x: BAD_UTF8 in x),
                                          handler=not decoder))
                    missing = {k: v for k, v in inner_base.items() if k != inner["name"]}
                    if inner["required"]:
                        cases.append(Case(t, dict(base, **{arg["name"]: [missing]}), "invalid",
                                          f"{arg['name']}[0].{inner['name']}",
                                          f"{t} {arg['name']}[0] without {inner['name']}",
                                          handler=True))
        for arg in cmd["args"]:
            if arg["required"]:
                args = {k: v for k, v in base.items() if k != arg["name"]}
                cases.append(Case(t, args, "invalid", arg["name"], f"{t} without {arg['name']}"))
        cases += [
            Case(t, dict(base, colour="red"), "invalid", "colour", f"{t} unknown argument"),
            Case(t, dict(base, **{BAD_UTF8: 1}), "invalid", "args",
                 f"{t} an argument name not UTF-8", bad_utf8=True),
            Case(t, dict(base, **{"na\x00me": 1}), "invalid", "args",
                 f"{t} an argument name with NUL"),
            Case(t, dict(base, **{"deep": nested(NEST)}), "invalid", "args",
                 f"{t} nested {NEST} deep"),
        ]
        for args in ([], "args", None, 1, [base]):
            cases.append(Case(t, args, "invalid", "args", f"{t} args {args!r:.20}"))
        if base:
            first = next(iter(base))
            cases.append(Case(t, dict(base), "invalid", first, f"{t} {first} given twice",
                              dup=first))
        if cmd["args"]:  # a real argument nested too deep: the decoder's limit still holds
            a = cmd["args"][0]["name"]
            cases.append(Case(t, dict(base, **{a: nested(NEST)}), "invalid", "args",
                              f"{t} {a} nested {NEST} deep"))
    return cases


@pytest.fixture(scope="module")
def bstack(mariadb, tmp_path_factory):
    """Frames up to 1 MiB: the longest text arguments past their limit in four-byte
    characters (65,536 × 4 bytes) must reach the catalog, not the frame limit."""
    with running(Stack(mariadb, tmp_path_factory.mktemp("bad") / "home",
                       max_frame=1 << 20)) as s:
        yield s


class Records:
    """What the handler cases name, and the credentials that fail, made before the digest."""

    def __init__(self, stack):
        self.fill = Fill(stack)
        self.admin = admin(stack)
        self.user = stack.rows("SELECT id FROM users WHERE email = %s", self.fill.user)[0]["id"]
        s = stack
        self.expired = self.user_key(s, "expired.key@example.org")
        s.rows("UPDATE auth_keys SET expiration = UTC_TIMESTAMP(3) - INTERVAL 1 DAY "
               "WHERE user_id = %s", self.expired[0])
        self.disabled = self.user_key(s, "disabled.user@example.org")
        s.ok("user.disable", {"user": "disabled.user@example.org"})
        uid = s.ok("user.add", {"email": "elsewhere@example.org", "org": self.fill.org,
                                "role": "3"})["id"]
        key = s.ok("authkey.add", {"user": str(uid), "allowed_ips": ["10.0.0.0/8"]})
        self.elsewhere = (uid, key["authkey"])
        self.used_id = str(uuid.uuid4())  # a committed command's id, re-sent with other args
        s.ok("org.add", {"name": "Used Id Org"}, id=self.used_id)

    @staticmethod
    def user_key(stack, email):
        uid = stack.ok("user.add", {"email": email, "org": "1", "role": "3"})["id"]
        return uid, stack.ok("authkey.add", {"user": str(uid)})["authkey"]


def handler_cases(r):
    """Values the catalog lets through and the handler refuses: (type, args, code, field).
    Conflicts are stored (their command ids with their replies), the rest write nothing."""
    f = r.fill
    none = "no-such-record"
    return [
        # not what the argument must be
        ("user.add", {"email": "not-an-address", "org": f.org}, "invalid", "email"),
        ("user.add", {"email": "a b@example.org", "org": f.org}, "invalid", "email"),
        ("user.add", {"email": "pw@example.org", "org": f.org, "password": "short"},
         "invalid", "password"),
        ("user.add", {"email": "key@example.org", "org": f.org, "gpgkey": "not a key"},
         "invalid", "gpgkey"),
        ("user.edit", {"user": f.user, "email": "not-an-address"}, "invalid", "email"),
        ("user.edit", {"user": f.user, "gpgkey": "-----BEGIN PGP PUBLIC KEY BLOCK-----"},
         "invalid", "gpgkey"),
        ("user.change_pw", {"user": f.user, "password": "short"}, "invalid", "password"),
        ("authkey.add", {"user": f.user, "expiration": "yesterday"}, "invalid", "expiration"),
        ("authkey.add", {"user": f.user, "expiration": "2000-01-01"}, "invalid", "expiration"),
        ("authkey.add", {"user": f.user, "allowed_ips": ["999.1.1.1"]}, "invalid",
         "allowed_ips"),
        ("authkey.add", {"user": f.user, "allowed_ips": ["10.0.0.0/33"]}, "invalid",
         "allowed_ips"),
        ("authkey.edit", {"authkey_id": f.authkey, "expiration": "soon"}, "invalid",
         "expiration"),
        ("authkey.edit", {"authkey_id": f.authkey, "allowed_ips": ["10.0.0.0/8"],
                          "any_ip": True}, "invalid", "any_ip"),
        ("auth.logout", {}, "invalid", "all"),
        ("user.by_ip", {"ip": "not-an-ip"}, "invalid", "ip"),
        ("org.merge", {"org": f.org, "into": f.org}, "invalid", "into"),
        ("role.edit", {"role": f.role, "perms": ["tagger"], "no_perms": ["tagger"]},
         "invalid", "no_perms"),
        ("task.set", {"task": f.task, "time": "25:61"}, "invalid", "time"),
        ("task.set", {"task": f.task, "next": "not a time"}, "invalid", "next"),
        ("setting.set", {"name": "MISP.default_event_distribution", "value": "abc"},
         "invalid", "value"),
        ("setting.baseurl", {"baseurl": "not a url"}, "invalid", "baseurl"),
        ("job.enqueue", {"type": "no.such.type"}, "invalid", "type"),
        ("job.enqueue", {"type": "sleep", "args": {"ms": "long"}}, "invalid", "args.ms"),
        ("job.enqueue", {"type": "sleep", "args": {"ms": 3600001}}, "invalid", "args.ms"),
        ("job.enqueue", {"type": "noop", "args": {"nope": 1}}, "invalid", "args.nope"),
        ("job.enqueue_many", {"jobs": [{"type": "noop"}, {"type": "sleep",
                                                          "args": {"ms": "x"}}]},
         "invalid", "jobs[1].args.ms"),
        ("job.enqueue_many", {"jobs": [{"type": "noop"}, {"type": "no.such"}]}, "invalid",
         "jobs[1].type"),
        ("backup.run", {"encrypt_to": "no such key"}, "invalid", "encrypt_to"),
        ("worker.restart", {}, "invalid", "worker"),
        ("worker.restart", {"worker": "nohost:1:default", "all": True}, "invalid", "all"),
        ("worker.cleanup", {}, "invalid", "worker"),
        ("mail.contact", {"subject": "s", "message": "m"}, "invalid", "user"),
        ("mail.contact", {"user": f.user, "subject": "two\r\nlines", "message": "m"},
         "invalid", "subject"),
        ("mail.contact", {"user": f.user, "welcome": True, "subject": "s", "message": "m"},
         "invalid", "welcome"),
        ("mail.contact", {"future": "not an address", "subject": "s", "message": "m"},
         "invalid", "future"),
        ("mail.test", {"to": "not an address"}, "invalid", "to"),
        # records that do not exist
        ("org.edit", {"org": none, "description": "x"}, "not_found", "org"),
        ("org.delete", {"org": none}, "not_found", "org"),
        ("org.merge", {"org": none, "into": f.org}, "not_found", "org"),
        ("role.edit", {"role": none, "perms": ["tagger"]}, "not_found", "role"),
        ("role.delete", {"role": none}, "not_found", "role"),
        ("role.set_default", {"role": none}, "not_found", "role"),
        ("user.add", {"email": "orphan@example.org", "org": none}, "not_found", "org"),
        ("user.edit", {"user": "nobody@example.org", "contactalert": True}, "not_found",
         "user"),
        ("user.delete", {"user": "nobody@example.org"}, "not_found", "user"),
        ("user.disable", {"user": "nobody@example.org"}, "not_found", "user"),
        ("user.authkey", {"user": "nobody@example.org", "reset": True}, "not_found", "user"),
        ("authkey.add", {"user": "nobody@example.org"}, "not_found", "user"),
        ("authkey.delete", {"authkey_id": 999999}, "not_found", "authkey_id"),
        ("otp.enrol", {"user": "nobody@example.org"}, "not_found", "user"),
        ("job.cancel", {"job": 999999}, "not_found", "job"),
        ("job.retry", {"job": 999999}, "not_found", "job"),
        ("task.run", {"task": 999999}, "not_found", "task"),
        ("worker.pause", {"worker": "nohost:1:default"}, "not_found", "worker"),
        ("worker.kill", {"worker": "nohost:1:default"}, "not_found", "worker"),
        ("setting.set", {"name": "No.such_setting", "value": "x"}, "not_found", "name"),
        ("setting.reset", {"name": "No.such_setting"}, "not_found", "name"),
        ("user.reset_password", {"user": "nobody@example.org"}, "not_found", "user"),
        ("user.gpg_fetch", {"user": "nobody@example.org"}, "not_found", "user"),
        # names taken, states that forbid: conflicts, stored with their id
        ("org.add", {"name": "Sweep Org"}, "conflict", "name"),
        ("role.add", {"name": "Sweep Role"}, "conflict", "name"),
        ("user.add", {"email": f.user, "org": f.org}, "conflict", "email"),
        ("org.delete", {"org": f.org}, "conflict", "org"),
        ("role.delete", {"role": f.role}, "conflict", "role"),
        ("job.retry", {"job": f.job}, "conflict", "job"),
    ]


def failing_credentials(r):
    """Credentials refused in phase two, each naming another user (the unknown key names
    none: 0): [(envelope, the user id its auth_fail row names)]. One command each: every
    failure is then the first of its user and source, which writes its row at once."""
    unknown = "Zz9" + uuid.uuid4().hex + "Qx7aa"  # 40 characters, the form of a key
    return [({"auth": unknown}, 0), ({"auth": r.expired[1]}, r.expired[0]),
            ({"auth": r.disabled[1]}, r.disabled[0]),
            ({"auth": r.elsewhere[1]}, r.elsewhere[0])]


# The tables a documented refusal writes to, and how their rows are told apart.
RECORDED = {"logs": ("id",), "command_ids": ("user_id", "cmd_id"), "bruteforces": ("id",)}


def snapshot(stack):
    """The digest of every table, and the rows of the tables refusals may add to."""
    rows = {}
    for table, key in RECORDED.items():
        rows[table] = {tuple(x[k] for k in key): x for x in stack.rows(f"SELECT * FROM {table}")}
    return db_digest(stack), rows


def added(before, after):
    """{table: [new rows]}, and what changed or vanished among the old rows (text)."""
    new, problems = {}, []
    for table in RECORDED:
        old, now = before[1][table], after[1][table]
        for k, row in old.items():
            if now.get(k) != row:
                problems.append(f"{table} {k}: {row} became {now.get(k)}")
        new[table] = [now[k] for k in now if k not in old]
    return new, problems


def check_reply(case, reply, code, field):
    """What is wrong with reply to case (None when it is right)."""
    if reply is None:
        return f"{case.what}: no reply"
    if "undecodable" in reply:
        return f"{case.what}: the reply is not valid UTF-8: {reply['undecodable'][:200]!r}"
    if reply.get("ok") is not False or "result" in reply:
        return f"{case.what}: not refused: {reply!r:.300}"
    err = reply["error"]
    if err["code"] != code or err.get("field") != field or not err.get("message"):
        return f"{case.what}: want {code} on {field}, got {err}"
    return None


def test_every_command_refuses_hostile_arguments_and_changes_nothing(bstack):
    s = bstack
    r = Records(s)
    cat = catalog()
    generic = generic_cases(cat, r.fill)
    handler = [Case(t, a, code, field, f"{t} {a!r:.80} (handler)", handler=True)
               for t, a, code, field in handler_cases(r)]
    handler += [c for c in generic if c.handler]
    generic = [c for c in generic if not c.handler]
    failing = failing_credentials(r)
    admin_key = {"auth": s.key}
    # (case, envelope, code, field): what each must get
    plan = [(c, admin_key, c.code, c.field) for c in generic + handler]
    plan += [(c, {}, c.code, c.field) for c in generic]
    plan += [(c, {}, "unauthenticated", "auth") for c in handler]
    plan += [(c, failing[i % len(failing)][0], c.code, c.field) for i, c in enumerate(generic)]
    # Phase two: each failing credential once, on a command its handler would refuse.
    probe = handler[0]
    plan += [(probe, env, "unauthenticated", "auth") for env, _ in failing]
    login = Case("auth.login", {"email": r.fill.user, "password": "not the password"},
                 "unauthenticated", None, "auth.login with a wrong password")
    plan.append((login, {}, "unauthenticated", None))
    reused = Case("org.add", {"name": "Another Org"}, "conflict", "id",
                  "a committed command's id with other arguments", id=r.used_id)
    plan.append((reused, admin_key, "conflict", "id"))
    assert len({c.type for c, *_ in plan}) == len(cat)

    frames, expect = [], {}
    for case, env, code, field in plan:
        cid, body = case.pack(s, env)
        frames.append((cid, body))
        expect[cid] = (case, code, field)
    assert len(expect) == len(frames)

    before = snapshot(s)
    replies = send_all(s, frames)
    after = snapshot(s)

    problems = [p for cid, (case, code, field) in expect.items()
                if (p := check_reply(case, replies.get(cid), code, field))]
    codes = Counter(rp["error"]["code"] for rp in replies.values() if "error" in rp)
    print(f"{len(frames)} hostile commands ({len(generic)} generic, {len(handler)} for the "
          f"handlers, each as the admin and without a credential); replies {dict(codes)}")

    # What the documented refusals record, and nothing else.
    new, changed = added(before, after)
    problems += changed
    conflicts = {cid for cid, (case, code, _) in expect.items()
                 if code == "conflict" and case is not reused}
    stored = {row["cmd_id"] for row in new["command_ids"]}
    if stored != conflicts or any(row["user_id"] != r.admin["id"] for row in new["command_ids"]):
        extra = [expect[c][0].what if c in expect else c for c in sorted(stored - conflicts)]
        problems.append(f"command_ids: {len(stored)} stored for {len(conflicts)} conflicts; "
                        f"not conflicts: {extra[:10]}; conflicts not stored: "
                        f"{[expect[c][0].what for c in sorted(conflicts - stored)][:10]}")
    for row in new["command_ids"]:
        if msgpack.unpackb(row["reply"], raw=False) != replies.get(row["cmd_id"]):
            problems.append(f"command_ids {row['cmd_id']}: a stored reply not the one sent")
    want_logs = Counter([("User", "auth_fail", uid) for _, uid in failing] +
                        [("User", "login_fail", r.user)])
    got_logs = Counter((x["model"], x["action"], x["model_id"]) for x in new["logs"])
    if got_logs != want_logs:
        problems.append(f"logs: added {dict(got_logs)}, the refusals record {dict(want_logs)}")
    if [x["username"] for x in new["bruteforces"]] != [r.fill.user]:
        problems.append(f"bruteforces: added {new['bruteforces']}, the failed login records one")
    # The tables above are compared row by row; every other one by its digest.
    for table in RECORDED:
        if after[0][table][0] != before[0][table][0] + len(new[table]):
            problems.append(f"{table}: {before[0][table][0]} rows, then {after[0][table][0]}")
    problems += [f"changed: {c}" for c in digest_changes(before[0], after[0])
                 if c.split(":")[0] not in RECORDED]
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:80])

    # The engine still serves.
    org = s.ok("org.add", {"name": "After The Sweep"})
    assert s.count("organisations", "id = %s", org["id"]) == 1
