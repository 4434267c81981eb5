"""org.merge end to end (issue 5, acceptance 5): a merge moves users, jobs and the audit rows
naming the old organisation, with nothing left pointing at it (every column of the database
that refers to an organisation is looked at, found through information_schema, so a table
added later cannot be forgotten); an engine killed in the middle of a merge leaves the old
state whole, and the same command sent again after a restart completes it."""

import re

import msgpack

from helpers import admin, assert_error, audit_rows, ctl_json, wait_for

# Columns that refer to an organisation: org, org_id, orgc_id (MISP's creator org),
# remote_org_id, event_org_id, … Those named org hold its name (logs.org), the others its id.
ORG_COLUMN = re.compile(r"^org$|^(.+_)?orgc?_id$")


def org_columns(stack):
    """{"table.column": "name" | "id"} for every column of this database that refers to an
    organisation, except the organisations table's own and admin_settings (whose value
    host_org_id is refused as a merge source)."""
    rows = stack.rows("SELECT table_name AS t, column_name AS c FROM information_schema.columns "
                      "WHERE table_schema = DATABASE()")
    return {f"{r['t']}.{r['c']}": ("name" if r["c"] == "org" else "id")
            for r in rows if ORG_COLUMN.match(r["c"]) and r["t"] != "organisations"}


def pointing_at(stack, org_id, name):
    """{"table.column": rows} of every org column still pointing at the organisation."""
    found = {}
    for col, kind in org_columns(stack).items():
        table, column = col.split(".")
        n = stack.count(table, f"`{column}` = %s", name if kind == "name" else org_id)
        if n:
            found[col] = n
    return found


def seed(stack, old, new):
    """Users, a job and audit rows of the organisation `old` (and one user of `new`).
    A job takes its org from the caller and an audit row from the acting user, and the
    only key here is the site administrator's (host organisation): the job and the audit
    rows of `old` are marked as such in SQL, as if a user of `old` had made them."""
    users = [stack.ok("user.add", {"email": f"u{i}@old.example", "org": old["name"]})["id"]
             for i in range(3)]
    stack.ok("user.add", {"email": "n0@new.example", "org": new["name"]})
    job = stack.ok("job.enqueue", {"type": "noop"})["id"]
    with stack.db.cursor() as c:
        c.execute("UPDATE jobs SET org_id = %s WHERE id = %s", (old["id"], job))
        for i in range(4):
            c.execute("INSERT INTO logs (title, created, model, model_id, action, user_id, "
                      "email, org) VALUES (%s, UTC_TIMESTAMP(3), 'User', %s, 'edit', %s, %s, %s)",
                      (f"User ({users[0]}): u0@old.example", users[0], users[0],
                       "u0@old.example", old["name"]))
    return users, job


def state(stack, old, new, users, job):
    """Where the seeded rows are now."""
    return {
        "orgs": sorted(r["name"] for r in stack.rows(
            "SELECT name FROM organisations WHERE id IN (%s, %s)", old["id"], new["id"])),
        "users": sorted({r["org_id"] for r in stack.rows(
            "SELECT org_id FROM users WHERE id IN (%s, %s, %s)", *users)}),
        "job": stack.rows("SELECT org_id FROM jobs WHERE id = %s", job)[0]["org_id"],
        "logs_old": stack.count("logs", "org = %s", old["name"]),
        "logs_new": stack.count("logs", "org = %s", new["name"]),
        "merge_rows": len(audit_rows(stack, model="Organisation", action="merge")),
    }


def two_orgs(stack):
    old = stack.ok("org.add", {"name": "Old Org", "sector": "merged away"})
    new = stack.ok("org.add", {"name": "New Org"})
    return old, new


def check_merged(stack, old, new, users, job, result):
    assert result["merged"] == {"id": old["id"], "name": old["name"], "uuid": old["uuid"]}
    assert result["into"] == {"id": new["id"], "name": new["name"], "uuid": new["uuid"]}
    # the reply names every org column the database has: none was forgotten
    assert set(result["moved"]) == set(org_columns(stack)), result["moved"]
    assert result["moved"]["users.org_id"] == 3 and result["moved"]["jobs.org_id"] == 1
    assert result["moved"]["logs.org"] == 4
    assert pointing_at(stack, old["id"], old["name"]) == {}
    assert stack.count("organisations", "id = %s", old["id"]) == 0
    s = state(stack, old, new, users, job)
    assert s["users"] == [new["id"]] and s["job"] == new["id"] and s["logs_old"] == 0
    assert stack.ok("org.view", {"org": new["name"]})["user_count"] == 4
    # one audit row, MISP's action merge, on the organisation merged away
    rows = audit_rows(stack, model="Organisation", action="merge")
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["model_id"] == old["id"] and row["email"] == admin(stack)["email"]
    assert row["title"] == (f"Organisation ({old['id']}): Old Org merged into New Org "
                            f"({new['id']})")
    for item in (f"id ({old['id']}) => ({new['id']})", "name (Old Org) => (New Org)",
                 "users.org_id () => (3)", "jobs.org_id () => (1)", "logs.org () => (4)"):
        assert item in row["change"], row["change"]
    # the history of the old organisation itself (its add) stays, on its id
    assert audit_rows(stack, model="Organisation", action="add", model_id=old["id"])


def test_merge_moves_users_jobs_and_audit_references(stack):
    old, new = two_orgs(stack)
    users, job = seed(stack, old, new)
    before = state(stack, old, new, users, job)
    assert before["users"] == [old["id"]] and before["job"] == old["id"]
    assert before["logs_old"] == 4
    assert set(pointing_at(stack, old["id"], old["name"])) == {
        "users.org_id", "jobs.org_id", "logs.org"}

    result = ctl_json(stack, "org", "merge", "Old Org", "--into", str(new["id"]))
    check_merged(stack, old, new, users, job, result)
    assert stack.count("logs", "org = %s", new["name"]) == 4


def test_every_org_column_of_the_schema_is_covered(stack):
    """The merge names each column it rewrites; the database's own list of org columns must
    be exactly that, whatever migrations added."""
    cols = org_columns(stack)
    assert {"users.org_id", "jobs.org_id", "logs.org"} <= set(cols), cols
    a = stack.ok("org.add", {"name": "A"})
    b = stack.ok("org.add", {"name": "B"})
    result = stack.ok("org.merge", {"org": a["uuid"], "into": "B"})
    assert set(result["moved"]) == set(cols)
    assert all(n == 0 for n in result["moved"].values()), result
    assert stack.count("organisations", "id = %s", a["id"]) == 0
    assert stack.count("organisations", "id = %s", b["id"]) == 1

    # adminctl's plain rendering of the reply
    c = stack.ok("org.add", {"name": "C"})
    rc, out, err = stack.adminctl("org", "merge", "C", "--into", "B")
    assert rc == 0, (out, err)
    assert "users.org_id" in out and "merged" in out, out
    assert stack.count("organisations", "id = %s", c["id"]) == 0


def test_refusals_change_nothing(stack):
    old, new = two_orgs(stack)
    stack.ok("user.add", {"email": "u@old.example", "org": old["name"]})
    host = admin(stack)
    before = stack.counts()  # a conflict uses up its command id (the reply is stored)
    cases = [
        ({"org": "Old Org", "into": "Old Org"}, "invalid", "into"),
        ({"org": str(old["id"]), "into": old["uuid"]}, "invalid", "into"),
        ({"org": "No Such Org", "into": "New Org"}, "not_found", "org"),
        ({"org": "Old Org", "into": "No Such Org"}, "not_found", "into"),
        ({"org": host["org_name"], "into": "New Org"}, "conflict", "org"),
    ]
    for args, code, field in cases:
        err = assert_error(stack.cmd("org.merge", args), code, field)
        if code == "conflict":
            assert "host organisation" in err["message"], err
            before["command_ids"] += 1
    assert stack.counts() == before
    assert stack.count("users", "org_id = %s", old["id"]) == 1
    # delete is refused while users belong to the organisation (merge them instead)
    err = assert_error(stack.cmd("org.delete", {"org": "Old Org"}), "conflict", "org")
    assert "1 user" in err["message"], err
    before["command_ids"] += 1
    assert stack.counts() == before


def test_merge_is_idempotent_by_command_id(stack):
    old, new = two_orgs(stack)
    cmd = stack.command("org.merge", {"org": "Old Org", "into": "New Org"})
    first = stack.send(cmd)
    assert first["ok"] is True, first
    again = stack.send(cmd)
    assert again == first
    assert len(audit_rows(stack, model="Organisation", action="merge")) == 1


# --- the interrupted merge -----------------------------------------------------------------

def test_engine_killed_mid_merge_leaves_the_old_state(stack):
    old, new = two_orgs(stack)
    users, job = seed(stack, old, new)
    before = state(stack, old, new, users, job)
    cmd = stack.command("org.merge", {"org": "Old Org", "into": "New Org"})

    # Another connection locks one audit row of the old organisation: the merge rewrites
    # the audit log last, so it blocks there, after moving the users and the job.
    blocker = stack.mariadb.connect(stack.database)
    blocker.autocommit(False)
    with blocker.cursor() as c:
        c.execute("SELECT id FROM logs WHERE org = %s ORDER BY id LIMIT 1 FOR UPDATE",
                  (old["name"],))
        assert c.fetchone()
    client = stack.socket()
    try:
        try:
            client.send_multipart([b"", msgpack.packb(cmd)])

            def blocked():  # the engine's connection, waiting for a row lock of logs
                rows = stack.rows("SELECT p.id AS thread FROM information_schema.processlist p "
                                  "JOIN information_schema.innodb_trx t "
                                  "ON t.trx_mysql_thread_id = p.id "
                                  "WHERE p.db = DATABASE() AND p.command = 'Execute' "
                                  "AND p.info LIKE 'UPDATE logs SET org%%' "
                                  "AND t.trx_state = 'LOCK WAIT'")
                return rows[0] if rows else None

            # (InnoDB refreshes what innodb_trx shows only when nobody read it for 100 ms)
            waiting = wait_for("the merge waits for the locked audit row", blocked, every=0.25)
            # Mid-way indeed: its uncommitted updates (users, job) are there, seen dirty.
            dirty = stack.mariadb.connect(stack.database)
            with dirty.cursor() as c:
                c.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
                c.execute("SELECT DISTINCT org_id FROM users WHERE id IN (%s, %s, %s)", users)
                assert [r["org_id"] for r in c.fetchall()] == [new["id"]]
                c.execute("SELECT org_id FROM jobs WHERE id = %s", (job,))
                assert c.fetchone()["org_id"] == new["id"]
            dirty.close()

            stack.kill_engine()  # SIGKILL, by pid
        finally:
            blocker.rollback()
            blocker.close()

        # The server rolls the dead engine's transaction back as it closes its connection;
        # then the old state is whole.
        def gone():
            return not stack.rows("SELECT 1 FROM information_schema.processlist "
                                  "WHERE id = %s", waiting["thread"])

        wait_for("the killed engine's connection is closed", gone)
        assert state(stack, old, new, users, job) == before
        assert set(pointing_at(stack, old["id"], old["name"])) == {
            "users.org_id", "jobs.org_id", "logs.org"}
        assert stack.count("command_ids", "cmd_id = %s", cmd["id"]) == 0

        # No reply from the killed engine: the first that reaches the merge's client is that
        # of a command it sends to the new engine (one from the old would have come first).
        stack.start_engine()
        probe = stack.command("auth.whoami")
        client.send_multipart([b"", msgpack.packb(probe)])
        assert client.poll(30000), "no reply to the probe"
        first = msgpack.unpackb(client.recv_multipart()[-1])
        assert first["id"] == probe["id"], f"a reply came from a killed engine: {first}"
    finally:
        client.close()

    # Started again, the same command (same id) completes the merge.
    reply = stack.send(cmd)
    assert reply["ok"] is True, reply
    check_merged(stack, old, new, users, job, reply["result"])
    assert stack.send(cmd) == reply  # and a repeat is answered from the store

