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
