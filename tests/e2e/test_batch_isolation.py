"""A batch is one transaction, and each writing command of it that may write more than once
runs inside its own SAVEPOINT: a command that fails after it wrote leaves nothing, and the
commands beside it stand (docs/architecture.md, "The apply loop").

No command fails after a write of its own on purpose, so the test makes one fail: a trigger
in the test's database refuses to delete one user. `user.delete` deletes the user's
authkeys, then the user; here the second statement fails after the first changed rows.
tests/mutants/savepoint-skipped.patch is the break this test must catch."""

import uuid

import msgpack

from helpers import admin, assert_error, audit_rows

DOOMED = "doomed@example.org"


def send_together(stack, cmds, timeout=60):
    """Send cmds back to back on one DEALER (so that they share a batch, as a pipelining
    client's do) and return their replies by id."""
    s = stack.socket()
    try:
        for c in cmds:
            s.send_multipart([b"", msgpack.packb(c, use_bin_type=True)])
        replies = {}
        while len(replies) < len(cmds):
            assert s.poll(timeout * 1000), f"{len(cmds) - len(replies)} replies missing"
            r = msgpack.unpackb(s.recv_multipart()[-1], raw=False)
            replies[r["id"]] = r
        return replies
    finally:
        s.close()


def test_a_failing_command_leaves_no_partial_write(stack):
    org = admin(stack)["org_name"]
    doomed = stack.ok("user.add", {"email": DOOMED, "org": org, "role": "User"})
    stack.ok("authkey.add", {"user": DOOMED, "comment": "must survive"})
    keys = stack.count("auth_keys", "user_id = %s", doomed["id"])
    assert keys == 1
    stack.rows("CREATE TRIGGER refuse_doomed BEFORE DELETE ON users FOR EACH ROW "
               f"IF OLD.email = '{DOOMED}' THEN "
               "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF")

    cmds = [stack.command("org.add", {"name": "beside-1"}, id=str(uuid.uuid4())),
            stack.command("user.delete", {"user": DOOMED}, id=str(uuid.uuid4())),
            stack.command("org.add", {"name": "beside-2"}, id=str(uuid.uuid4()))]
    replies = send_together(stack, cmds)

    # the failing command: an error, and nothing of it left (its authkeys came back)
    assert_error(replies[cmds[1]["id"]], "internal")
    assert stack.count("users", "id = %s", doomed["id"]) == 1
    assert stack.count("auth_keys", "user_id = %s", doomed["id"]) == keys
    assert not audit_rows(stack, model="User", action="delete")
    assert stack.count("command_ids", "cmd_id = %s", cmds[1]["id"]) == 0
    # the commands beside it stand
    for c in (cmds[0], cmds[2]):
        assert replies[c["id"]]["ok"] is True, replies[c["id"]]
        made = replies[c["id"]]["result"]
        assert stack.count("organisations", "id = %s", made["id"]) == 1
        assert len(audit_rows(stack, model="Organisation", action="add",
                              model_id=made["id"])) == 1

    # once the trigger is gone the same command, sent again, deletes the user and its keys
    stack.rows("DROP TRIGGER refuse_doomed")
    again = send_together(stack, [cmds[1]])[cmds[1]["id"]]
    assert again["ok"] is True, again
    assert stack.count("users", "id = %s", doomed["id"]) == 0
    assert stack.count("auth_keys", "user_id = %s", doomed["id"]) == 0
