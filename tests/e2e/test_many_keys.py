"""Many users' keys in one batch: each command is run as the user its own key names
(the engine authenticates each distinct key of a batch once and must never mix them up)."""

import hashlib
import hmac
import secrets
import string

import msgpack
import zmq

KEYS = 40  # more distinct keys than any fixed-size cache would hold


def add_key_user(stack, n, secret):
    """A site administrator of the host organisation with a fresh authkey (by SQL: user
    management commands arrive with issue 5). Returns (user id, raw key)."""
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    digest = hmac.new(secret, key.encode(), hashlib.sha256).digest()
    stack.rows("INSERT INTO users (email, org_id, role_id, date_created, date_modified) "
               "VALUES (%s, 1, 1, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))", f"admin{n}@keys.test")
    uid = stack.rows("SELECT id FROM users WHERE email = %s", f"admin{n}@keys.test")[0]["id"]
    stack.rows("INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, created) "
               "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))", uid, digest, key[:4], key[-4:])
    return uid, key


def test_each_command_runs_as_its_own_key(stack):
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    users = [add_key_user(stack, n, secret) for n in range(KEYS)]
    sock = stack.socket()
    sent = {}
    for uid, key in users:  # pipelined: they arrive together and share batches
        for kind in ("auth.whoami", "org.add"):
            cmd = stack.command(kind, {"name": f"by-{uid}"} if kind == "org.add" else {},
                                auth=key)
            sent[cmd["id"]] = (kind, uid)
            sock.send_multipart([b"", msgpack.packb(cmd)])
    replies = {}
    while len(replies) < len(sent) and sock.poll(10000):
        r = msgpack.unpackb(sock.recv_multipart()[-1])
        replies[r["id"]] = r
    sock.close()
    assert len(replies) == len(sent)
    for cid, (kind, uid) in sent.items():
        r = replies[cid]
        assert r["ok"] is True, r
        if kind == "auth.whoami":
            assert r["result"]["user"]["id"] == uid
        else:
            assert r["result"]["created_by"] == uid
            row = stack.rows("SELECT user_id FROM logs WHERE model = 'Organisation' "
                             "AND action = 'add' AND model_id = %s", r["result"]["id"])
            assert [x["user_id"] for x in row] == [uid]


def test_refused_keys_inside_a_batch_read_ahead(stack):
    """The engine reads a batch's keys ahead, 64 digests per statement: refusals (unknown,
    expired, a disabled user's, a malformed key) must come out per key, right, and
    audited, among accepted keys of the same batch, and past one chunk of 64."""
    secret = bytes.fromhex((stack.home / "secrets" / "server.key").read_text().strip())
    good = [add_key_user(stack, n, secret) for n in range(70)]
    expired_uid, expired = add_key_user(stack, 100, secret)
    stack.rows("UPDATE auth_keys SET expiration = UTC_TIMESTAMP(3) - INTERVAL 1 DAY "
               "WHERE user_id = %s", expired_uid)
    disabled_uid, disabled = add_key_user(stack, 101, secret)
    stack.rows("UPDATE users SET disabled = 1 WHERE id = %s", disabled_uid)
    unknown = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
    # a row per refused key, not one per source and window (test_flood.py)
    stack.ok("setting.set", {"name": "Security.auth_fail_log_window", "value": 0})
    fails_before = stack.count("logs", "action = 'auth_fail'")
    wanted = {expired: "expired", disabled: "disabled", unknown: "not valid",
              "short-key": "malformed"}
    sock = stack.socket()
    sent = {}
    order = [k for _, k in good[:35]] + list(wanted) + [k for _, k in good[35:]]
    for key in order:  # pipelined: they arrive together and share batches
        cmd = stack.command("auth.whoami", {}, auth=key)
        sent[cmd["id"]] = key
        sock.send_multipart([b"", msgpack.packb(cmd)])
    replies = {}
    while len(replies) < len(sent) and sock.poll(10000):
        r = msgpack.unpackb(sock.recv_multipart()[-1])
        replies[r["id"]] = r
    sock.close()
    assert len(replies) == len(sent)
    uid_of = {k: uid for uid, k in good}
    for cid, key in sent.items():
        r = replies[cid]
        if key in wanted:
            assert r["ok"] is False and r["error"]["code"] == "unauthenticated", r
            assert wanted[key] in r["error"]["message"], r
        else:
            assert r["ok"] is True and r["result"]["user"]["id"] == uid_of[key], r
    assert stack.count("logs", "action = 'auth_fail'") == fails_before + len(wanted)
