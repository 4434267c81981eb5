"""Text limits end to end: what the catalog accepts, the database holds.

The catalog counts lengths in characters (docs/protocol.md); a character of UTF-8 takes up
to 4 bytes, and the columns must hold the catalog's limits in any script
(docs/architecture.md, "Text limits: characters, and columns that hold them"). Here:

- organisations' description and contacts at 65,535 characters of 2, 3 and 4 bytes;
- job unique keys: UTF-8, compared byte for byte, an existing job reported in its state;
- names of white space alone, and NUL characters, refused precisely;
- a sweep generated from the catalog (`adminbus-catalog --json`): every text argument of
  every command, at its limit in 4-byte characters (or in bytes, for the few the catalog
  counts in bytes), answered without `internal` (and never refused for its length), and
  one character more refused as `invalid` naming it.

One stack for the file (its frames may be 1 MiB: 65,535 four-byte characters are 256 KiB);
the sweep sends its commands pipelined on one DEALER socket.
"""

import msgpack
import pytest

from catalog_args import LIST_ENTRIES, Fill, catalog, send_all
from conftest import Stack, running
from helpers import assert_error

SMILE = "\U0001F600"  # 4 bytes of UTF-8
TEXT_MAX = 65535


@pytest.fixture(scope="module")
def wide(mariadb, tmp_path_factory):
    """A broker and engine that take frames of up to 1 MiB (the default max_frame)."""
    with running(Stack(mariadb, tmp_path_factory.mktemp("limits") / "home",
                       max_frame=1 << 20)) as s:
        yield s


def ok(stack, type_, args):
    """stack.ok() whose failure message shows the reply, not arguments of 256 KiB."""
    r = stack.cmd(type_, args)
    assert r.get("ok") is True, f"{type_} failed: {r!r:.600}"
    return r["result"]


# --- organisations: description and contacts in any script ------------------------------


@pytest.mark.parametrize("char, n", [("é", 40000), ("€", 30000), ("é", TEXT_MAX),
                                     ("€", TEXT_MAX), (SMILE, TEXT_MAX)])
def test_org_text_fields_hold_their_limit_in_any_script(wide, char, n):
    text = char * n
    name = f"Script {ord(char):x} {n}"
    for field in ("description", "contacts"):
        org = ok(wide, "org.add", {"name": f"{name} {field}", field: text})
        assert org[field] == text
        row = wide.rows(f"SELECT `{field}` AS v FROM organisations WHERE id = %s", org["id"])
        assert row[0]["v"] == text
        edited = ok(wide, "org.edit", {"org": str(org["id"]), field: text[:-1] + "x"})
        assert edited[field] == text[:-1] + "x"


def test_org_text_over_the_limit_is_invalid_naming_the_field(wide):
    before = wide.counts()
    for field in ("description", "contacts"):
        r = wide.cmd("org.add", {"name": "Too long", field: SMILE * (TEXT_MAX + 1)})
        err = assert_error(r, "invalid", field)
        assert "65535" in err["message"] and "characters" in err["message"], err
    assert wide.counts() == before


# --- job unique keys ------------------------------------------------------------------------


def test_unique_keys_are_utf8_and_compared_byte_for_byte(wide):
    first = wide.ok("job.enqueue", {"type": "noop", "unique_key": "café"})
    assert first["existed"] is False and first["state"] == "queued", first
    again = wide.ok("job.enqueue", {"type": "noop", "unique_key": "café"})
    assert again["id"] == first["id"] and again["existed"] is True, again

    ids = {}
    for key in ("Nightly", "NIGHTLY", "nightly", "Nightly ", "cafe", "cafe\u0301", SMILE * 191):
        r = wide.ok("job.enqueue", {"type": "noop", "unique_key": key})
        assert r["existed"] is False, (key, r)
        ids[key] = r["id"]
    assert len(set(ids.values())) == len(ids)
    stored = wide.rows("SELECT unique_key AS k FROM jobs WHERE id = %s", ids[SMILE * 191])
    assert stored[0]["k"] == SMILE * 191

    many = wide.ok("job.enqueue_many", {"jobs": [{"type": "noop", "unique_key": "Nightly"},
                                                 {"type": "noop", "unique_key": "naïve"}]})
    assert many["existed"] == [True, False], many
    assert many["ids"][0] == ids["Nightly"]


def test_an_existing_job_is_reported_as_it_is(wide):
    """The reply of a unique key that found a job gives that job's real state, queue and
    type (documented states only), not the request's."""
    documented = {"queued", "running", "retrying", "done", "failed", "cancelled"}
    job = wide.ok("job.enqueue", {"type": "sleep", "args": {"ms": 5},
                                  "unique_key": "report-me"})
    again = wide.ok("job.enqueue", {"type": "noop", "unique_key": "report-me"})
    assert again == {"id": job["id"], "queue": "default", "type": "sleep", "state": "queued",
                     "existed": True}, again
    wide.ok("job.cancel", {"job": job["id"]})
    again = wide.ok("job.enqueue", {"type": "sleep", "unique_key": "report-me"})
    assert again["state"] == "cancelled" and again["existed"] is True, again
    assert again["state"] in documented


def test_job_input_cuts_text_arguments_on_character_boundaries(wide):
    """job_input keeps 64 bytes of a text argument: cut between characters, never inside
    one (30 × "€" is 90 bytes; 64 is not a multiple of 3)."""
    job = wide.ok("job.enqueue", {"type": "noop", "args": {"record": "€" * 30}})
    row = wide.rows("SELECT job_input AS i FROM jobs WHERE id = %s", job["id"])[0]
    assert row["i"] == "record=" + "€" * 21, row


def test_names_beyond_the_basic_plane_are_told_apart(wide):
    """Names stay case-insensitive, but two names that differ in a character beyond U+FFFF
    (an emoji) are two names: found, changed and deleted apart."""
    red, green = "ACME \U0001F34E", "ACME \U0001F34F"
    a = wide.ok("org.add", {"name": red})
    b = wide.ok("org.add", {"name": green})
    assert wide.ok("org.view", {"org": green})["id"] == b["id"]
    assert_error(wide.cmd("org.add", {"name": "acme \U0001F34F"}), "conflict", "name")
    wide.ok("org.delete", {"org": green})
    assert wide.ok("org.view", {"org": red})["id"] == a["id"]
    assert_error(wide.cmd("org.view", {"org": green}), "not_found", "org")
    r1 = wide.ok("role.add", {"name": "Role \U0001F34E"})
    r2 = wide.ok("role.add", {"name": "Role \U0001F34F"})
    assert r1["id"] != r2["id"]
    assert wide.ok("role.view", {"role": "Role \U0001F34F"})["id"] == r2["id"]


def test_envelope_text_keys_at_their_byte_limits(wide):
    """The envelope's own strings are limited in bytes (docs/protocol.md): at the limit in
    multi-byte characters they are answered (never `internal`), one byte more is invalid."""
    for auth in ("\u20ac" * 42, SMILE * 32):  # 126 and 128 bytes: not keys, refused as such
        assert_error(wide.cmd("auth.whoami", auth=auth), "unauthenticated")
    for key in ("key", "reply_to"):
        cmd = wide.command("auth.whoami")
        cmd[key] = SMILE * 63 + "abc"  # 255 bytes
        assert wide.send(cmd)["ok"] is True
        cmd = wide.command("auth.whoami")
        cmd[key] = SMILE * 64  # 256 bytes
        err = assert_error(wide.send(cmd), "invalid", key)
        assert "bytes" in err["message"], err
    cmd = wide.command("auth.whoami")
    del cmd["auth"]
    cmd["session"] = SMILE * 32
    assert_error(wide.send(cmd), "unauthenticated")


# --- blank names, NUL ------------------------------------------------------------------------


def test_blank_organisation_name_is_invalid(wide):
    before = wide.counts()
    for blank in ("   ", "\t", " \u00a0\u3000 "):
        err = assert_error(wide.cmd("org.add", {"name": blank}), "invalid", "name")
        assert "blank" in err["message"], err
    host = wide.rows("SELECT id FROM organisations ORDER BY id LIMIT 1")[0]["id"]
    assert_error(wide.cmd("org.edit", {"org": str(host), "name": "  "}), "invalid", "name")
    assert wide.counts() == before
    assert wide.ok("org.add", {"name": "  Spaced  "})["name"] == "  Spaced  "


def test_nul_is_refused_as_nul(wide):
    err = assert_error(wide.cmd("org.add", {"name": "a\x00b"}), "invalid", "name")
    assert err["message"] == "name contains a NUL character", err
    err = assert_error(wide.cmd("job.enqueue", {"type": "noop", "args": {"record": "a\x00"}}),
                       "invalid", "args")
    assert "contains a NUL character" in err["message"], err
    # Bytes that are not UTF-8 are still said to be so (python-msgpack writes only valid
    # UTF-8: patch a lone continuation byte into the packed name).
    body = msgpack.packb(wide.command("org.add", {"name": "abc"}), use_bin_type=True)
    err = assert_error(wide.send(body.replace(b"\xa3abc", b"\xa3a\x80c")), "invalid", "name")
    assert err["message"] == "name is not valid UTF-8", err


# --- the sweep, generated from the catalog ---------------------------------------------------

def text_kind(arg):
    return arg["type"] in ("string", "scalar", "strings")


def cases(cat, fill):
    """One (command type, field, args with the value at its limit, args with one character
    more) per text argument; field names the argument as a refusal does (jobs[0].type for
    an argument of a list's entry)."""
    by_type = {c["type"]: c for c in cat}
    out = []
    for cmd in cat:
        for arg in cmd["args"]:
            if text_kind(arg):
                out.append(case(cmd, arg, fill, None))
            elif arg["type"] == "list":
                entry_cmd = LIST_ENTRIES.get((cmd["type"], arg["name"]))
                assert entry_cmd, (f"{cmd['type']}.{arg['name']} is a list: say in LIST_ENTRIES "
                                   "whose arguments its entries are")
                for inner in by_type[entry_cmd]["args"]:
                    if text_kind(inner):
                        out.append(case(by_type[entry_cmd], inner, fill, (cmd, arg["name"])))
    return out


def at_length(arg, n, first):
    """The value of arg at length n (characters, or bytes when the catalog says so) made of
    four-byte characters, the first one unique to the case; a list of one such string of
    1-255 characters for a strings argument (n past max: one character more)."""
    if arg["type"] == "strings":
        return [first + SMILE * 254 + (SMILE if n > arg["max"] else "")]
    if arg.get("bytes"):  # whole characters: as many as fit, one more when past the limit
        n = n // 4 + (n % 4 > 0 and n > arg["max"])
    return first + SMILE * (n - 1) if n > 0 else ""


def case(cmd, arg, fill, outer):
    base = fill.required(cmd)
    base.update(fill.context(cmd["type"], arg["name"]))
    first = chr(0x1F300 + fill.n % 0x2FF)  # still four bytes in UTF-8
    fill.n += 1
    limit = arg["max"] if arg["type"] != "strings" else 1
    at = dict(base, **{arg["name"]: at_length(arg, limit, first)})
    over = dict(base, **{arg["name"]: at_length(arg, arg["max"] + 1, first)})
    field = arg["name"]
    if outer:  # a text argument of an entry of a list argument
        outer_cmd, list_name = outer
        at, over = {list_name: [at]}, {list_name: [over]}
        field = f"{list_name}[0].{arg['name']}"
        cmd = outer_cmd
    return cmd["type"], field, at, over


def sent_value(command, field):
    return command["args"].get(field)


def echoed(result, field):
    """The value of field in a result that shows it (a record), else None."""
    return result.get(field) if isinstance(result, dict) else None


# Refusals a value at the limit may get from the handler: it names nothing that exists
# (not_found), collides (conflict), needs what this stack has not (unavailable), or is not
# what the argument must be (invalid: an address, a key, a time). Never `internal`, never
# silence, never refused for its length.
AT_LIMIT_OK = {"invalid", "not_found", "conflict", "unavailable"}


def test_every_text_argument_at_its_limit_in_four_byte_characters(wide):
    cat = catalog()
    fill = Fill(wide)
    all_cases = cases(cat, fill)
    assert len(all_cases) > 60, len(all_cases)
    sent, what = [], {}
    for type_, field, at, over in all_cases:
        for label, args in (("at", at), ("over", over)):
            c = wide.command(type_, args)
            sent.append(c)
            what[c["id"]] = (type_, field, label)
    replies = send_all(wide, sent)

    problems, outcomes = [], {}
    for c in sent:
        type_, field, label = what[c["id"]]
        r = replies.get(c["id"])
        where = f"{type_} {field} ({label} the limit)"
        if r is None:
            problems.append(f"{where}: no reply")
            continue
        if "undecodable" in r:
            problems.append(f"{where}: the reply is not valid UTF-8: {r['undecodable'][:300]!r}")
            continue
        code = "ok" if r["ok"] else r["error"]["code"]
        outcomes.setdefault(code, 0)
        outcomes[code] += 1
        err = r.get("error", {})
        if label == "at":
            allowed = AT_LIMIT_OK | {"ok"} | ({"unauthenticated"} if type_ == "auth.login"
                                              else set())
            if code not in allowed:
                problems.append(f"{where}: {r}")
            elif code == "invalid" and err.get("field") == field and "too long" in err["message"]:
                problems.append(f"{where}: refused for its length at the limit: {r}")
            elif code == "ok" and echoed(r["result"], field) not in (None, sent_value(c, field)):
                problems.append(f"{where}: the reply holds another {field}: "
                                f"{echoed(r['result'], field)!r:.200}")
        elif code != "invalid" or err.get("field") != field:
            problems.append(f"{where}: want invalid on {field}, got {r}")
    print(f"{len(all_cases)} text arguments; outcomes {outcomes}")
    assert not problems, "\n".join(problems)


def test_not_blank_arguments_refuse_white_space(wide):
    """Every argument the catalog marks not blank (names, references) refuses a value of
    white space alone as invalid, naming it."""
    cat = catalog()
    fill = Fill()
    marked = [(c, a) for c in cat for a in c["args"] if a.get("not_blank")]
    names = {f"{c['type']}.{a['name']}" for c, a in marked}
    assert {"org.add.name", "org.edit.name", "role.add.name", "user.add.email",
            "org.delete.org"} <= names, names
    sent, what = [], {}
    for c, a in marked:
        args = fill.required(c)
        args.update(fill.context(c["type"], a["name"]))
        args[a["name"]] = " " * max(a["min"], 3)
        cmd = wide.command(c["type"], args)
        sent.append(cmd)
        what[cmd["id"]] = (c["type"], a["name"])
    before = wide.counts()
    replies = send_all(wide, sent)
    problems = []
    for cmd in sent:
        type_, name = what[cmd["id"]]
        r = replies.get(cmd["id"])
        if r is None or r["ok"] or r["error"]["code"] != "invalid" \
                or r["error"].get("field") != name or "blank" not in r["error"]["message"]:
            problems.append(f"{type_} {name}: {r}")
    assert not problems, "\n".join(problems)
    assert wide.counts() == before
