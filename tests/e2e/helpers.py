"""Small helpers shared by the end-to-end tests."""

import json
import re

UUID_LOWER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ctl_json(stack, *args, expect_rc=0):
    """Run `adminctl --json ARGS`, check its exit code, return the parsed JSON result.
    (A reply-shaped document {ok, result|error} is unwrapped to its result or error.)"""
    rc, out, err = stack.adminctl("--json", *args)
    assert rc == expect_rc, f"adminctl {' '.join(map(str, args))}: rc {rc}\n{out}\n{err}"
    doc = json.loads(out)
    if isinstance(doc, dict) and "ok" in doc and ("result" in doc or "error" in doc):
        return doc.get("result", doc.get("error"))
    return doc


def error_of(reply):
    """The error map of a reply that must be an error."""
    assert reply.get("ok") is False, f"expected an error reply, got {reply!r}"
    assert "result" not in reply, reply
    err = reply["error"]
    assert isinstance(err.get("message"), str) and err["message"], reply
    return err


def assert_error(reply, code, field=None):
    err = error_of(reply)
    assert err["code"] == code, f"expected {code}, got {reply!r}"
    if field is not None:
        assert err.get("field") == field, f"expected field {field!r}, got {reply!r}"
    return err


def audit_rows(stack, model=None, action=None, model_id=None):
    where, params = ["1"], []
    for col, val in (("model", model), ("action", action), ("model_id", model_id)):
        if val is not None:
            where.append(f"`{col}` = %s")
            params.append(val)
    return stack.rows(f"SELECT * FROM logs WHERE {' AND '.join(where)} ORDER BY id", *params)


def admin(stack):
    """The site administrator and host organisation, as the database has them."""
    rows = stack.rows(
        "SELECT u.id, u.email, o.id AS org_id, o.name AS org_name, o.uuid AS org_uuid "
        "FROM users u JOIN organisations o ON o.id = u.org_id ORDER BY u.id LIMIT 1")
    assert rows, "no site administrator in the database"
    return rows[0]
