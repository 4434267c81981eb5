#!/usr/bin/python3
"""A small adminbus automation client: pyzmq and msgpack, nothing else (docs/protocol.md).

It adds an organisation, lists the organisations and searches the audit log.

    set -a; . var/env; set +a          # ADMINBUS_URL and ADMINBUS_AUTHKEY, as ops/run wrote them
    python3 tests/e2e/example_client.py "ACME CERT"

Every command carries an id of our choosing. If no reply comes (engine restarting, network
hiccup), we send the very same command again, same id, on a fresh socket: the engine
applies it at most once and returns the stored reply.

When the broker's endpoints use ZeroMQ CURVE (bound beyond loopback, or curve=on), the client
connects with a key pair whose public key the broker's operator allowed
(`adminctl curve allow KEY`): set ADMINBUS_CURVE_SERVERKEY (`adminctl curve server-key` on the
broker's host) and ADMINBUS_CURVE_KEYFILE (a file from `adminctl curve keygen FILE`), or
ADMINBUS_CURVE_PUBLICKEY and ADMINBUS_CURVE_SECRETKEY. ops/run puts them in var/env for its
operator. Keys go in the environment or a file, never on the command line.
"""

import os
import sys
import uuid

import msgpack
import zmq
import zmq.auth

URL = os.environ["ADMINBUS_URL"]  # e.g. tcp://127.0.0.1:7810
AUTHKEY = os.environ["ADMINBUS_AUTHKEY"]


def curve_options(sock):
    """Make sock a CURVE client when ADMINBUS_CURVE_SERVERKEY is set (before connect)."""
    server = os.environ.get("ADMINBUS_CURVE_SERVERKEY")
    if not server:
        return  # loopback or ipc:// without curve=on: plain
    keyfile = os.environ.get("ADMINBUS_CURVE_KEYFILE")
    if keyfile:
        public, secret = zmq.auth.load_certificate(keyfile)  # the ZeroMQ certificate layout
    else:
        public = os.environ["ADMINBUS_CURVE_PUBLICKEY"].encode()
        secret = os.environ["ADMINBUS_CURVE_SECRETKEY"].encode()
    sock.curve_serverkey = server.encode()
    sock.curve_publickey = public
    sock.curve_secretkey = secret


class CommandError(Exception):
    def __init__(self, error):
        super().__init__(f"{error['code']}: {error['message']}"
                         + (f" (field {error['field']})" if error.get("field") else ""))
        self.error = error


def call(ctx, type, args, timeout_ms=5000, attempts=5):
    """Send one command and return its result; raise CommandError on an error reply."""
    command = {"v": 1, "id": str(uuid.uuid4()), "type": type, "args": args, "auth": AUTHKEY}
    body = msgpack.packb(command)
    for _ in range(attempts):
        sock = ctx.socket(zmq.DEALER)  # DEALER: an empty frame, then the command
        sock.setsockopt(zmq.LINGER, 0)
        curve_options(sock)
        sock.connect(URL)
        try:
            sock.send_multipart([b"", body])
            if sock.poll(timeout_ms):
                _empty, raw = sock.recv_multipart()
                reply = msgpack.unpackb(raw)
                if reply["ok"]:
                    return reply["result"]
                raise CommandError(reply["error"])
        finally:
            sock.close()
        # no reply: retry with the same id (safe, see above)
    raise TimeoutError(f"no reply from {URL} for {type} after {attempts} attempts")


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "ACME CERT"
    ctx = zmq.Context()
    try:
        org = call(ctx, "org.add", {"name": name, "nationality": "LU", "sector": "CERT",
                                    "type": "CSIRT", "description": "added by example_client"})
        print(f"added organisation {org['id']}: {org['name']} ({org['uuid']})")

        page = call(ctx, "org.list", {"scope": "all", "limit": 100})
        print(f"{page['total']} organisation(s):")
        for o in page["items"]:
            print(f"  {o['id']:>5}  {o['name']:<30} {'local' if o['local'] else 'external':<8}"
                  f" users: {o['user_count']}")

        log = call(ctx, "log.search", {"model": "Organisation", "action": "add", "limit": 5})
        print(f"latest of {log['total']} organisation additions in the audit log:")
        for row in log["items"]:
            print(f"  #{row['id']} by {row['email']}: {row['title']}")
    except CommandError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 1
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
