#!/usr/bin/env python3
"""Writes tests/vectors.json: coord's signing rule, computed by the reference.

The reference is gptme-coordination's rule written with nothing but Python's
standard library: HMAC-SHA256 over json.dumps(list(fields), sort_keys=True,
separators=(",", ":")) (ensure_ascii left at True), base64 with padding.
Every host's tests read the file this writes; run it again only to add
vectors, never to make a failing host pass.
"""
import base64
import json
import pathlib

from gptme_ref import canonical, sign as mac


KEYS = {
    "alice": {"current": "alice-secret-0123456789abcdef0123456789abcdef"},
    "bob-autonomous-opus-3a9f": {"current": "bob-secret-0123456789abcdef0123456789abcdef"},
    "carol": {
        "current": "carol-key-2-0123456789abcdef0123456789abcdef",
        "retired": ["carol-key-1-0123456789abcdef0123456789abcdef"],
    },
}

SIGN = [
    ("claim", "alice", ["alice", "github:gptme/gptme#2362", 1, "2076-11-14 06:05:02"]),
    ("claim", "bob-autonomous-opus-3a9f", ["bob-autonomous-opus-3a9f", "cascade:task:42", 1, "2076-11-14 06:05:02"]),
    ("claim, quote and backslash", "alice", ["alice", 'quote"back\\slash', 1, "2076-11-14 06:05:02"]),
    ("claim, tab and newline", "alice", ["alice", "tab\there\nnewline", 7, "2026-11-27 07:05:03"]),
    ("claim, non-ASCII", "alice", ["alice", "café-naïve", 2, "2026-11-27 07:05:03"]),
    ("claim, CJK", "bob-autonomous-opus-3a9f", ["bob-autonomous-opus-3a9f", "blog:日本語", 3, "2026-11-27 07:05:03"]),
    ("claim, astral", "alice", ["alice", "emoji:😀🎉", 1, "2026-11-27 07:05:03"]),
    ("claim, control characters and DEL", "alice", ["alice", "\x00\x01\x08\x0b\x0c\x1f\x7f/", 1, "x"]),
    ("claim, epoch bounds", "alice", ["alice", "t", -9223372036854775808, "x"]),
    ("claim, epoch max", "alice", ["alice", "t", 9223372036854775807, "x"]),
    ("message, broadcast", "alice", ["alice", "", "ops", "hello"]),
    ("message, targeted", "bob-autonomous-opus-3a9f", ["bob-autonomous-opus-3a9f", "alice", "general", 'line1\nline2 "quoted" \\ back']),
    ("message, snowman", "bob-autonomous-opus-3a9f", ["bob-autonomous-opus-3a9f", "alice", "ops", "café ☃"]),
    ("null field", "alice", ["alice", None, 0, None]),
    ("empty list", "alice", []),
    ("empty strings", "alice", ["", "", ""]),
    ("reals", "alice", [1.5, 0.1, 1e16, 1e-05, -0.0, 123456789012345.6, 5e-324]),
    ("signed by the current key after rotation", "carol", ["carol", "task:rotate", 2, "2026-11-27 08:00:00"]),
]

VERIFY = [
    # (description, agent, fields, mac source, expected status)
    ("current key", "alice", ["alice", "t1", 1, "x"], ("alice", None), "verified"),
    ("retired key", "carol", ["carol", "t1", 1, "x"], ("carol", 0), "retired_key"),
    ("current key after rotation", "carol", ["carol", "t1", 2, "x"], ("carol", None), "verified"),
    ("tampered epoch", "alice", ["alice", "t1", 2, "x"], ("alice", None, ["alice", "t1", 1, "x"]), "bad_mac"),
    ("wrong key", "alice", ["alice", "t1", 1, "x"], ("bob-autonomous-opus-3a9f", None), "bad_mac"),
    ("unknown agent", "stranger", ["stranger", "t1", 1, "x"], ("alice", None), "unknown_agent"),
    ("unsigned: NULL mac", "alice", ["alice", "t1", 1, "x"], None, "unsigned"),
    ("unsigned: empty mac", "alice", ["alice", "t1", 1, "x"], "", "unsigned"),
    ("unsigned beats unknown agent", "stranger", ["stranger", "t1", 1, "x"], None, "unsigned"),
    ("malformed mac", "alice", ["alice", "t1", 1, "x"], "not base64 at all", "bad_mac"),
    ("mac of 31 bytes", "alice", ["alice", "t1", 1, "x"], base64.b64encode(bytes(31)).decode(), "bad_mac"),
    ("mac without padding", "alice", ["alice", "t1", 1, "x"], ("alice", None, None, "strip"), "bad_mac"),
    ("hex mac (the seed article's form)", "alice", ["alice", "t1", 1, "x"], ("alice", None, None, "hex"), "bad_mac"),
]


def key_bytes(agent, retired_index=None):
    k = KEYS[agent]
    return (k["current"] if retired_index is None else k["retired"][retired_index]).encode()


def main():
    out = {
        "about": (
            "coord's signing rule, computed by tests/python/make_vectors.py with Python's standard library. "
            "canonical = json.dumps(list(fields), sort_keys=True, separators=(',', ':')) as UTF-8; "
            "mac = base64(HMAC-SHA256(key, canonical)). Keys are the UTF-8 bytes of the strings below."
        ),
        "keys": KEYS,
        "sign": [],
        "verify": [],
    }
    for desc, agent, fields in SIGN:
        out["sign"].append({
            "description": desc,
            "agent": agent,
            "fields": fields,
            "canonical": canonical(fields).decode(),
            "mac": mac(key_bytes(agent), fields),
        })
    for desc, agent, fields, src, status in VERIFY:
        if src is None or isinstance(src, str):
            m = src
        else:
            signer, idx, *rest = src
            signed = rest[0] if rest and rest[0] is not None else fields
            m = mac(key_bytes(signer, idx), signed)
            if len(rest) > 1 and rest[1] == "strip":
                m = m.rstrip("=")
            elif len(rest) > 1 and rest[1] == "hex":
                m = base64.b64decode(m).hex()
        out["verify"].append({"description": desc, "agent": agent, "fields": fields, "mac": m, "status": status})
    path = pathlib.Path(__file__).resolve().parent.parent / "vectors.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
