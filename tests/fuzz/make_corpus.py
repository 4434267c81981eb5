#!/usr/bin/python3
"""Write the seed corpus of fuzz_envelope: a few valid commands and one of each kind of
invalid one (see broker/wire/envelope.h). Deterministic: rerun after changing the contract.

Usage: tests/fuzz/make_corpus.py [OUT_DIR]   (default: tests/fuzz/corpus/envelope)
Needs Debian's python3-msgpack (hence /usr/bin/python3)."""
import os
import sys

import msgpack

ID = "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f"


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def command(**changes):
    cmd = {"v": 1, "id": ID, "type": "org.add", "args": {"name": "CIRCL"}}
    cmd.update(changes)
    return pack(cmd)


def pairs(*kv):
    """A map packed pair by pair, so that keys may repeat."""
    body = b"".join(pack(k) + pack(v) for k, v in kv)
    return pack_map_header(len(kv)) + body


def pack_map_header(n):
    packer = msgpack.Packer()
    return packer.pack_map_header(n)


def nested(depth):
    value = None
    for _ in range(depth):
        value = {"a": value}
    return value


SEEDS = {
    # valid
    "valid_minimal": command(),
    "valid_all_keys": command(auth="k" * 40, session="s3ss", key="order-1",
                              reply_to="client-7", ts=1700000000123, type="log.search",
                              via="http",
                              args={"email": "admin@example.org", "limit": 10, "page": 1}),
    "valid_empty_args": command(type="auth.whoami", args={}),
    "valid_nested_utf8": command(args={"name": "caf\u00e9 \u20ac \U0001F600",
                                       "contacts": {"email": ["a@b.c", 1, True, None, 1.5]}}),
    "valid_upper_id": command(id=ID.upper()),
    # invalid: the frame
    "bad_not_msgpack": b"\xc1\x00garbage",
    "bad_not_map": pack([1, "id", {"v": 1}]),
    "bad_truncated": command()[:-3],
    "bad_trailing_bytes": command() + b"\xc0",
    "bad_huge_count": b"\x81\xa4args\xdd\xff\xff\xff\xff",  # 4 billion items in 5 bytes
    "bad_too_deep": command(args={"deep": nested(40)}),
    # invalid: the envelope
    "bad_unknown_key_ip": command(ip="10.0.0.1"),
    "bad_duplicate_key": pairs(("v", 1), ("id", ID), ("type", "org.add"), ("type", "org.edit"),
                               ("args", {})),
    "bad_missing_id": pack({"v": 1, "type": "org.add", "args": {}}),
    "bad_version": command(v=2),
    "bad_id": command(id="not-a-uuid"),
    "bad_type": command(type="Org.Add"),
    "bad_args_not_map": command(args=["name", "CIRCL"]),
    # python-msgpack writes only valid UTF-8: patch a surrogate into the packed bytes
    "bad_utf8_auth": command(auth="XYZ").replace(b"\xa3XYZ", b"\xa3\xed\xa0\x80"),
    "bad_bin_session": command(session=b"\x00\x01"),
    # NUL is valid UTF-8 but refused as such, in a value and in an argument's name
    "bad_nul_arg": command(args={"name": "a\x00b"}),
    "bad_nul_arg_name": command(args={"na\x00me": "CIRCL"}),
    "bad_nul_nested": command(args={"contacts": {"email": ["a\x00@b.c"]}}),
    "bad_via": command(via="cli"),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "envelope")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
