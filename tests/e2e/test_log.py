"""log.search: the manual's filters and paging, checked against the logs table itself."""

from helpers import admin, assert_error, ctl_json

LOG_FIELDS = {"id", "title", "created", "model", "model_id", "action", "user_id", "email", "org",
              "change", "description", "ip"}


def make_history(stack):
    """A few organisations added, edited and deleted: a dozen audit rows."""
    for name in ("Apple CERT", "Banana SOC", "Cherry CSIRT", "Date ISAC"):
        stack.ok("org.add", {"name": name, "sector": "Fruit"})
    stack.ok("org.edit", {"org": "Apple CERT", "description": "crunchy"})
    stack.ok("org.edit", {"org": "Banana SOC", "description": "yellow", "nationality": "EC"})
    stack.ok("org.edit", {"org": "Banana SOC", "name": "Banana CERT"})
    stack.ok("org.delete", {"org": "Date ISAC"})
    # a failed authentication is audited too (by another "user": nobody)
    stack.cmd("auth.whoami", auth="y" * 40)


def search_all(stack, **filters):
    """Every row log.search returns for filters, following the pages."""
    items, page = [], 1
    while True:
        res = stack.ok("log.search", dict(filters, page=page, limit=3))
        assert res["page"] == page and res["limit"] == 3
        items += res["items"]
        if len(items) >= res["total"] or not res["items"]:
            assert len(items) == res["total"]
            return items
        page += 1


def ids_where(stack, where, *params):
    return [r["id"] for r in stack.rows(f"SELECT id FROM logs WHERE {where} ORDER BY id DESC",
                                        *params)]


def test_filters_match_the_table(stack):
    me = admin(stack)
    make_history(stack)
    everything = search_all(stack)
    assert [r["id"] for r in everything] == ids_where(stack, "1")  # newest first, all of them
    for r in everything:
        assert set(r) >= LOG_FIELDS, sorted(r)

    email_part = me["email"].split("@")[0][1:]
    org_part = me["org_name"][1:-1] if len(me["org_name"]) > 2 else me["org_name"]
    cases = [
        ({"email": email_part}, "email LIKE %s", f"%{email_part}%"),
        ({"org": org_part}, "org LIKE %s", f"%{org_part}%"),
        ({"action": "edit"}, "action = %s", "edit"),
        ({"action": "auth_fail"}, "action = %s", "auth_fail"),
        ({"model": "Organisation"}, "model = %s", "Organisation"),
        ({"change": "yellow"}, "`change` LIKE %s", "%yellow%"),
        ({"change": "Banana"}, "`change` LIKE %s", "%Banana%"),
    ]
    title = stack.rows("SELECT title FROM logs WHERE action = 'edit' ORDER BY id LIMIT 1")[0]
    word = title["title"][2:12]
    cases.append(({"title": word}, "title LIKE %s", f"%{word}%"))
    for filters, where, param in cases:
        got = [r["id"] for r in search_all(stack, **filters)]
        want = ids_where(stack, where, param)
        assert want, f"no rows for {filters}: the test's history is too small"
        assert got == want, (filters, got, want)

    # filters combine with AND
    got = [r["id"] for r in search_all(stack, model="Organisation", action="edit", change="Banana")]
    assert got == ids_where(stack, "model = 'Organisation' AND action = 'edit' AND "
                                   "`change` LIKE '%%Banana%%'")
    assert len(got) == 1

    # the rows carry what the table holds
    one = search_all(stack, action="delete")
    assert len(one) == 1
    row = stack.rows("SELECT * FROM logs WHERE id = %s", one[0]["id"])[0]
    for col in ("title", "model", "model_id", "action", "user_id", "email", "org", "change"):
        assert one[0][col] == row[col], col
    assert isinstance(one[0]["created"], int)  # unix ms on the wire

    # nothing found is an empty page, not an error
    res = stack.ok("log.search", {"email": "nobody-at-all"})
    assert res["items"] == [] and res["total"] == 0


def test_paging(stack):
    make_history(stack)
    total = stack.count("logs")
    first = stack.ok("log.search", {"limit": 2})
    assert first["total"] == total and first["page"] == 1 and len(first["items"]) == 2
    pages = [stack.ok("log.search", {"limit": 2, "page": p}) for p in range(1, total // 2 + 2)]
    seen = [r["id"] for p in pages for r in p["items"]]
    assert seen == ids_where(stack, "1")
    beyond = stack.ok("log.search", {"limit": 2, "page": 1000})
    assert beyond["items"] == [] and beyond["total"] == total
    assert_error(stack.cmd("log.search", {"limit": 0}), "invalid", "limit")
    assert_error(stack.cmd("log.search", {"page": 0}), "invalid", "page")


def test_adminctl_log_search(stack):
    make_history(stack)
    res = ctl_json(stack, "log", "search", "--model", "Organisation", "--action", "edit")
    assert [r["id"] for r in res["items"]] == ids_where(
        stack, "model = 'Organisation' AND action = 'edit'")
    rc, out, err = stack.adminctl("log", "search", "--action", "delete")
    assert rc == 0 and "delete" in out, (rc, out, err)
