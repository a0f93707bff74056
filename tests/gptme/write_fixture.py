"""Writes a fixture directory the way tests/fixtures/gptme is laid out
(coord.db, secrets/, expected.json), every row written by the vendored
gptme-coordination package itself, one or more rows per operation: claim
(new, submitted, renewed, completed, reclaimed after completion, abandon
and expiry), abandon, legacy unsigned, tampered, unknown agent; and
messages sent direct, broadcast, on a channel, unsigned and tampered.
`expected.json` says, per row, what gptme's own HMAC code decides, so the
component's hosts (tests/component.sh) are checked against gptme, not
against coord.

usage: write_fixture.py OUT_DIR
"""
import json
import sqlite3
import sys
from pathlib import Path

from harness import KEYS, CoordinationDB, MessageBus, WorkClaimManager, auth, write_keys

KNOWN = ("alice", "bob")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    secrets = out / "secrets"
    write_keys(secrets)
    for f in secrets.glob("*.secret"):
        if f.stem not in KNOWN:  # the readers know alice and bob only
            f.unlink()
    db = CoordinationDB(out / "coord.db")
    work, bus = WorkClaimManager(db), MessageBus(db)
    a, b, s = KEYS["alice"], KEYS["bob"], KEYS["gptme-0"]

    work.claim("alice", "op:claim-new", secret=a)
    work.submit("op:submitted", metadata="m")
    work.claim("bob", "op:submitted", secret=b)
    work.claim("alice", "op:renewed", ttl_minutes=5, secret=a)
    work.claim("alice", "op:renewed", ttl_minutes=90, secret=a)
    work.claim("alice", "op:completed", secret=a)
    work.complete("alice", "op:completed", result="shipped")
    work.claim("alice", "op:reclaimed-after-complete", secret=a)
    work.complete("alice", "op:reclaimed-after-complete")
    work.claim("bob", "op:reclaimed-after-complete", secret=b)
    work.claim("alice", "op:abandoned", secret=a)
    work.abandon("alice", "op:abandoned", reason="blocked")
    work.claim("alice", "op:reclaimed-after-abandon", secret=a)
    work.abandon("alice", "op:reclaimed-after-abandon")
    work.claim("bob", "op:reclaimed-after-abandon", secret=b)
    work.claim("alice", "op:reclaimed-after-expiry", secret=a)
    db.conn.execute("UPDATE work SET expires_at = datetime('now', '-1 minute')"
                    " WHERE task_id = 'op:reclaimed-after-expiry'")
    work.claim("bob", "op:reclaimed-after-expiry", secret=b)
    work.claim("alice", "op:legacy-unsigned")
    work.claim("gptme-0", "op:unknown-agent", secret=s)
    work.claim("alice", "op:tampered-epoch", secret=a)
    db.conn.execute("UPDATE work SET epoch = 7 WHERE task_id = 'op:tampered-epoch'")
    work.claim("bob", "op:ünïcödé/日本", secret=b)

    bus.send("alice", "to bob", recipient="bob", secret=a)
    bus.send("alice", "to everyone", secret=a)
    bus.send("bob", "deploy at 5", recipient="alice", channel="ops", secret=b)
    bus.send("bob", "ünïcödé \"quoted\" \\ 日本", secret=b)
    bus.send("alice", "unsigned", recipient="bob")
    bus.send("gptme-0", "from an unknown agent", secret=s)
    bus.send("alice", "tampered", recipient="bob", secret=a)
    db.conn.execute("UPDATE messages SET body = 'tampered!' WHERE body = 'tampered'")
    db.close()

    # expected: what gptme's own code says of each row, with the known keys
    raw = sqlite3.connect(out / "coord.db")
    expected = {"work": {}, "messages": {}}
    for task, claimer, epoch, expires, mac in raw.execute(
            "SELECT task_id, claimer, epoch, expires_at, hmac FROM work ORDER BY rowid"):
        key = KEYS.get(claimer) if claimer in KNOWN else None
        expected["work"][task] = bool(mac and key and auth.verify_hmac(key, mac, claimer, task, epoch, expires))
    for mid, sender, recipient, channel, body, mac in raw.execute(
            "SELECT id, sender, recipient, channel, body, hmac FROM messages ORDER BY id"):
        key = KEYS.get(sender) if sender in KNOWN else None
        expected["messages"][str(mid)] = bool(
            mac and key and auth.verify_hmac(key, mac, sender, recipient or "", channel, body))
    raw.close()
    want_true = {"op:claim-new", "op:submitted", "op:renewed", "op:completed",
                 "op:reclaimed-after-complete", "op:reclaimed-after-abandon",
                 "op:reclaimed-after-expiry", "op:ünïcödé/日本"}
    got_true = {t for t, ok in expected["work"].items() if ok}
    if got_true != want_true:
        sys.exit(f"gptme's own verification disagrees with this script: {sorted(got_true ^ want_true)}")
    expected["secrets_dir"] = "secrets"
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
