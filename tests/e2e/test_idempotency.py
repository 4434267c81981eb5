"""Effectively once: a command id seen again returns the stored reply and changes nothing."""

import uuid

from helpers import assert_error


def rows_for(stack, cmd_id, name):
    return (stack.count("organisations", "name = %s", name),
            stack.count("logs", "model = 'Organisation' AND action = 'add' AND model_id IN "
                                "(SELECT id FROM organisations WHERE name = %s)", name),
            stack.count("command_ids", "cmd_id = %s", cmd_id))


def test_same_id_twice(stack):
    cid = str(uuid.uuid4())
    args = {"name": "Twice", "sector": "Test"}
    logs_before = stack.count("logs")
    first = stack.cmd("org.add", args, id=cid)
    assert first["ok"] is True and first["id"] == cid
    second = stack.cmd("org.add", args, id=cid)
    assert second == first
    assert rows_for(stack, cid, "Twice") == (1, 1, 1)
    assert stack.count("logs") == logs_before + 1
    # a third time on the CLI, with --id: the same again
    rc, out, err = stack.adminctl("--json", "--id", cid, "org", "add", "--name", "Twice",
                                  "--sector", "Test")
    assert rc == 0, (rc, out, err)
    assert rows_for(stack, cid, "Twice") == (1, 1, 1)


def test_same_id_across_engine_restart(stack):
    cid = str(uuid.uuid4())
    args = {"name": "Survivor", "description": "kept across kill -9"}
    first = stack.cmd("org.add", args, id=cid)
    assert first["ok"] is True
    stack.kill_engine()
    stack.start_engine()
    again = stack.cmd("org.add", args, id=cid)
    assert again == first
    assert rows_for(stack, cid, "Survivor") == (1, 1, 1)
    # and an edit, replayed after a restart, is not applied twice
    eid = str(uuid.uuid4())
    e1 = stack.cmd("org.edit", {"org": "Survivor", "description": "edited"}, id=eid)
    assert e1["ok"] is True
    stack.kill_engine()
    stack.start_engine()
    assert stack.cmd("org.edit", {"org": "Survivor", "description": "edited"}, id=eid) == e1
    assert stack.count("logs", "action = 'edit'") == 1


def test_same_id_different_args_is_a_conflict(stack):
    cid = str(uuid.uuid4())
    assert stack.cmd("org.add", {"name": "Original"}, id=cid)["ok"] is True
    before = stack.counts()
    err = assert_error(stack.cmd("org.add", {"name": "Impostor"}, id=cid), "conflict")
    assert err.get("field") in (None, "id"), err
    assert_error(stack.cmd("org.edit", {"org": "Original", "sector": "x"}, id=cid), "conflict")
    assert stack.counts() == before
    assert stack.count("organisations", "name = 'Impostor'") == 0


def test_refused_command_does_not_use_up_its_id(stack):
    cid = str(uuid.uuid4())
    before = stack.counts()
    assert_error(stack.cmd("org.add", {"name": "n" * 256}, id=cid), "invalid", "name")
    assert_error(stack.cmd("org.view", {"org": "Nobody"}, id=cid), "not_found")
    assert_error(stack.cmd("org.add", {"name": "Later"}, id=cid, auth="w" * 40),
                 "unauthenticated")
    after_refusals = stack.counts()
    assert after_refusals["organisations"] == before["organisations"]
    assert after_refusals["command_ids"] == before["command_ids"]
    ok = stack.cmd("org.add", {"name": "Later"}, id=cid)
    assert ok["ok"] is True, ok
    assert rows_for(stack, cid, "Later") == (1, 1, 1)


def test_a_conflict_uses_up_its_id_and_a_retry_gets_the_stored_reply(stack):
    """A conflict (here a duplicate name) is stored like a success (docs/protocol.md,
    "Effectively once"): its id is used up, and a retry gets the same answer even once the
    cause is gone, while the same id with other arguments is a conflict on the id."""
    stack.ok("org.add", {"name": "Taken"})
    cid = str(uuid.uuid4())
    args = {"name": "Taken", "description": "a duplicate"}
    first = stack.cmd("org.add", args, id=cid)
    err = assert_error(first, "conflict", "name")
    assert "Taken" in err["message"], err
    assert stack.count("command_ids", "cmd_id = %s", cid) == 1
    before = stack.counts()
    assert stack.cmd("org.add", args, id=cid) == first  # the stored reply, word for word
    assert stack.counts() == before
    # The cause goes away: the same command now could succeed, but the id has its answer.
    stack.ok("org.delete", {"org": "Taken"})
    assert stack.count("organisations", "name = 'Taken'") == 0
    after_delete = stack.counts()
    assert after_delete["command_ids"] == before["command_ids"] + 1  # the delete's own id
    assert stack.cmd("org.add", args, id=cid) == first
    assert stack.count("organisations", "name = 'Taken'") == 0
    # The same id with other arguments: conflict on the id, nothing applied.
    assert_error(stack.cmd("org.add", {"name": "Taken"}, id=cid), "conflict", "id")
    assert_error(stack.cmd("org.add", {"name": "Fresh"}, id=cid), "conflict", "id")
    assert stack.count("organisations", "name IN ('Taken', 'Fresh')") == 0
    assert stack.counts() == after_delete
    assert stack.count("command_ids", "cmd_id = %s", cid) == 1
