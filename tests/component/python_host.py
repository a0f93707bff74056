"""Python host for coord's WASI component (wasmtime's component API).

usage: python_host.py COMPONENT VECTORS FIXTURE_DIR

FIXTURE_DIR is a writable copy of tests/fixtures/gptme. Prints ok/FAIL
lines and `python host: N passed, N failed`; exits 1 on any failure.
"""
import hashlib
import hmac
import json
import sqlite3
import sys
from pathlib import Path

from coord_wasm import CoordError, Signing, Tally, claim, message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import gptme_ref  # noqa: E402

ALICE = b"alice-secret-0123456789abcdef0123456789abcdef"


def reference_mac(key: bytes, fields: list) -> str:
    """gptme-coordination's rule, from the one reference (tests/python)."""
    return gptme_ref.sign(key, fields)


def vector_keys(v: dict) -> list:
    keys = []
    for agent, k in v["keys"].items():
        keys += [(agent, r.encode(), True) for r in k.get("retired", [])]
        keys.append((agent, k["current"].encode(), False))
    return keys


def vectors(t: Tally, s: Signing, v: dict) -> None:
    kr = s.keyring_from_keys(vector_keys(v))
    t.check("vectors: at least 15 sign cases", len(v["sign"]) >= 15, len(v["sign"]))
    for case in v["sign"]:
        f, agent, want = case["fields"], case["agent"], case["mac"]

        def sign_case(case=case, f=f, agent=agent, want=want):
            got = s.canonical(f)
            if got != case["canonical"].encode():
                return False, f"canonical {got!r}"
            mac = kr.sign(agent, f)
            if mac != want:
                return False, f"mac {mac}"
            if kr.status(agent, mac, f) != "verified" or not kr.verify(agent, mac, f):
                return False, "does not verify"
            desc = case["description"]
            if desc.startswith("claim"):
                c = claim(*f)
                if kr.sign_claim(c) != want or kr.claim_status(c, want) != "verified":
                    return False, "claim form differs"
            if desc.startswith("message"):
                m = message(f[0], f[1] or None, f[2], f[3])
                if kr.sign_message(m) != want or not kr.verify_message(m, want):
                    return False, "message form differs"
            return True, ""

        t.run(f"sign vector: {case['description']}", sign_case)
    for case in v["verify"]:
        def verify_case(case=case):
            f, agent, mac, want = case["fields"], case["agent"], case["mac"], case["status"]
            st = kr.status(agent, mac, f).replace("-", "_")
            ok = kr.verify(agent, mac, f)
            cst = kr.claim_status(claim(*f), mac).replace("-", "_")
            authentic = want in ("verified", "retired_key")
            return (st == want and cst == want and ok == authentic), f"{st} {cst} {ok}"

        t.run(f"verify vector: {case['description']}", verify_case)


def fixture(t: Tally, s: Signing, fixture_dir: Path) -> None:
    kr = s.keyring()
    loaded = 0
    for secret in sorted((fixture_dir / "secrets").glob("*.secret")):
        kr.add_key(secret.name[: -len(".secret")], secret.read_bytes().strip())
        loaded += 1
    t.check("fixture: keys loaded", loaded >= 2, loaded)
    expected = json.loads((fixture_dir / "expected.json").read_text())
    db = sqlite3.connect(fixture_dir / "coord.db")
    for task, claimer, epoch, expires, mac in db.execute(
            "SELECT task_id, claimer, epoch, expires_at, hmac FROM work"):
        def work_row(task=task, claimer=claimer, epoch=epoch, expires=expires, mac=mac):
            if claimer is None or expires is None:
                # Unclaimed row: the generic form, NULLs as null.
                got = kr.verify(claimer or "", mac, [claimer, task, epoch, expires])
            else:
                got = kr.verify_claim(claim(claimer, task, epoch, expires), mac)
            return got == expected["work"][task], f"verify {got}"

        t.run(f"fixture work {task!r}", work_row)
    for mid, sender, recipient, channel, body, mac in db.execute(
            "SELECT id, sender, recipient, channel, body, hmac FROM messages"):
        def message_row(mid=mid, sender=sender, recipient=recipient, channel=channel,
                        body=body, mac=mac):
            got = kr.verify_message(message(sender, recipient, channel, body), mac)
            return got == expected["messages"][str(mid)], f"verify {got}"

        t.run(f"fixture message {mid}", message_row)
    t.check("fixture: rows seen", len(expected["work"]) + len(expected["messages"]) > 10)


def error_tag(fn):
    try:
        fn()
    except CoordError as e:
        return e.tag, e.payload
    return None, None


def bad_input(t: Tally, s: Signing) -> None:
    kr = s.keyring()
    kr.add_key("alice", ALICE)
    t.run("empty list: canonical is []", lambda: (s.canonical([]) == b"[]", ""))
    t.run("empty list: signs as Python does",
          lambda: (kr.sign("alice", []) == reference_mac(ALICE, []), ""))
    huge = [i if i % 2 == 0 else f"f{i}\u00e9" for i in range(100_000)]
    t.run("huge list (100k fields): same MAC as Python's hmac",
          lambda: (kr.sign("alice", huge) == reference_mac(ALICE, huge), ""))
    big = ["x\U0001F600\n" * (1 << 20)]
    t.run("huge text (5 MiB): same MAC as Python's hmac",
          lambda: (kr.sign("alice", big) == reference_mac(ALICE, big), ""))
    bad = ["a", ("text-bytes", b"a\xff\xfe")]
    for name, fn in [("sign", lambda: kr.sign("alice", bad)),
                     ("status", lambda: kr.status("alice", "x", bad)),
                     ("verify", lambda: kr.verify("alice", "x", bad)),
                     ("canonical", lambda: s.canonical(bad))]:
        tag = error_tag(fn)
        t.check(f"invalid UTF-8 text-bytes: {name} -> invalid-utf8(1)",
                tag == ("invalid-utf8", 1), tag)
    t.run("valid UTF-8 text-bytes encode like text",
          lambda: (s.canonical([("text-bytes", "caf\u00e9".encode())]) == b'["caf\\u00e9"]', ""))
    tag = error_tag(lambda: kr.sign("alice", [None, ("blob", b"\x01")]))
    t.check("blob: sign -> blob(1)", tag == ("blob", 1), tag)
    tag = error_tag(lambda: kr.sign("stranger", ["x"]))
    t.check("unknown agent: sign -> unknown-agent", tag == ("unknown-agent", "stranger"), tag)
    t.run("unknown agent: verify -> false, status unknown-agent",
          lambda: (kr.verify("stranger", "P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I=", ["x"])
                   is False and kr.status("stranger", "AAAA", ["x"]) == "unknown-agent", ""))
    for mac in ["", None, "not base64 at all", "====",
                "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E", "\x00\uffff\u00e9", "A" * (1 << 20)]:
        want = "unsigned" if not mac else "bad-mac"
        shown = repr(mac)[:26]
        t.run(f"malformed MAC {shown}: status {want}, verify false",
              lambda mac=mac, want=want: (
                  kr.status("alice", mac, ["alice"]) == want
                  and kr.verify("alice", mac, ["alice"]) is False, ""))
    tag, payload = error_tag(lambda: kr.add_key("bob", b"0" * 31))
    t.check("31-byte key refused: key-too-short{31,32}",
            tag == "key-too-short" and getattr(payload, "len", None) == 31
            and getattr(payload, "min", None) == 32, (tag, vars(payload) if payload else None))
    for agent in ["", "../alice", "a/b", "tab\there"]:
        tag, _ = error_tag(lambda agent=agent: kr.add_key(agent, ALICE))
        t.check(f"agent id {agent!r} refused", tag == "invalid-agent-id", tag)
    tag, _ = error_tag(lambda: s.keyring_from_keys([("alice", ALICE, False), ("bob", b"short", False)]))
    t.check("from-keys with a short key -> key-too-short", tag == "key-too-short", tag)
    # Rotation and retired keys.
    k1 = b"carol-key-1-0123456789abcdef0123456789abcdef"
    k2 = b"carol-key-2-0123456789abcdef0123456789abcdef"
    kr.add_key("carol", k1)
    c = claim("carol", "t1", 1, "x")
    old = kr.sign_claim(c)
    kr.add_key("carol", k2)
    t.run("rotation: old key's row is retired-key",
          lambda: (kr.claim_status(c, old) == "retired-key" and kr.verify_claim(c, old), ""))
    t.run("rotation: new rows sign with the new key",
          lambda: (kr.sign_claim(c) == reference_mac(k2, ["carol", "t1", 1, "x"]), ""))
    kr.add_retired_key("dave", b"dave-old-0123456789abcdef0123456789abcdef")
    tag = error_tag(lambda: kr.sign("dave", ["x"]))
    t.check("retired-only agent: sign -> no-current-key", tag == ("no-current-key", "dave"), tag)
    fp = kr.fingerprint("alice")
    want_fp = hmac.new(ALICE, b"coord key fingerprint v1", hashlib.sha256).hexdigest()[:16]
    t.check("fingerprint is the documented HMAC label", fp == want_fp, fp)
    t.check("no fingerprint without a current key", kr.fingerprint("dave") is None)
    t.check("agents listed in order", kr.agents() == ["alice", "carol", "dave"], kr.agents())
    t.run("remove-agent forgets its keys",
          lambda: (kr.remove_agent("carol") and kr.claim_status(c, old) == "unknown-agent", ""))
    t.run("instance still usable after bad input",
          lambda: (kr.sign("alice", []) == "YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw=", ""))


def main() -> None:
    component, vectors_path, fixture_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    v = json.loads(Path(vectors_path).read_text())
    t = Tally()
    s = Signing(component)
    print("component imports:", s.imports())
    print("component exports:", s.exports())
    t.check("component imports nothing", s.imports() == [], s.imports())
    t.check("component exports coord:signing/signing@0.1.0",
            s.exports() == ["coord:signing/signing@0.1.0"], s.exports())
    t.groups([("vectors", lambda: vectors(t, Signing(component), v)),
                      ("fixture", lambda: fixture(t, Signing(component), fixture_dir)),
                      ("bad input", lambda: bad_input(t, Signing(component)))])
    t.finish("python host")


if __name__ == "__main__":
    main()
