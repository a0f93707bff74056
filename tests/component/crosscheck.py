"""The component and the SQLite extension sign and verify the same rows.

usage: crosscheck.py COMPONENT LIBCOORD VECTORS FIXTURE_DIR

Needs a Python whose sqlite3 can load extensions (Debian's /usr/bin/python3,
or a venv made from it). LIBCOORD is the extension without its suffix
(target/release/libcoord). Rows the component signs verify with coord_verify
in SQL, rows SQL signs verify in the component, and both report the same
status for every verify vector and every fixture row.
"""
import json
import sqlite3
import sys
from pathlib import Path

from coord_wasm import Signing, Tally, claim, message

SCHEMA = """
CREATE TABLE work (task_id TEXT PRIMARY KEY, claimer TEXT, epoch INTEGER NOT NULL,
                   expires_at TEXT, hmac TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT,
                       channel TEXT NOT NULL, body TEXT NOT NULL, hmac TEXT);
"""

CLAIM_SQL = "coord_verify(claimer, hmac, claimer, task_id, epoch, expires_at)"
CLAIM_STATUS_SQL = "coord_verify_status(claimer, hmac, claimer, task_id, epoch, expires_at)"
MESSAGE_SQL = "coord_verify(sender, hmac, sender, coalesce(recipient, ''), channel, body)"
MESSAGE_STATUS_SQL = ("coord_verify_status(sender, hmac, sender, coalesce(recipient, ''), "
                      "channel, body)")


def connect(libcoord: str) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.enable_load_extension(True)
    db.load_extension(libcoord)
    db.enable_load_extension(False)
    return db


def load_vector_keys(db: sqlite3.Connection, v: dict) -> list:
    keys = []
    for agent, k in v["keys"].items():
        for r in k.get("retired", []):
            db.execute("SELECT coord_key_add(?, ?, 'retired')", (agent, r))
            keys.append((agent, r.encode(), True))
        db.execute("SELECT coord_key_add(?, ?)", (agent, k["current"]))
        keys.append((agent, k["current"].encode(), False))
    return keys


def signed_rows(t: Tally, s: Signing, db: sqlite3.Connection, v: dict) -> None:
    kr = s.keyring_from_keys(load_vector_keys(db, v))
    db.executescript(SCHEMA)
    claims = [c["fields"] for c in v["sign"] if c["description"].startswith("claim")]
    claims.append(["carol", "task:rotate", 2, "2026-11-27 08:00:00"])
    msgs = [c["fields"] for c in v["sign"] if c["description"].startswith("message")]
    msgs.append(["alice", "", "ops", "DEL\x7f and \U0001F600 and \\ \""])
    t.check("cross-check: rows to sign", len(claims) >= 10 and len(msgs) >= 3,
            (len(claims), len(msgs)))

    # Component signs, SQL verifies.
    for i, (claimer, task, epoch, expires) in enumerate(claims):
        task = f"{i}:{task}"  # vectors repeat task ids; the table's key is unique
        mac = kr.sign_claim(claim(claimer, task, epoch, expires))
        db.execute("INSERT INTO work VALUES (?, ?, ?, ?, ?)", (task, claimer, epoch, expires, mac))
    for i, (sender, recipient, channel, body) in enumerate(msgs, start=1):
        mac = kr.sign_message(message(sender, recipient or None, channel, body))
        db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                   (i, sender, recipient or None, channel, body, mac))
    for task, ok, st in db.execute(f"SELECT task_id, {CLAIM_SQL}, {CLAIM_STATUS_SQL} FROM work"):
        t.check(f"component-signed claim verifies in SQL: {task!r}",
                ok == 1 and st == "verified", (ok, st))
    for mid, ok, st in db.execute(
            f"SELECT id, {MESSAGE_SQL}, {MESSAGE_STATUS_SQL} FROM messages"):
        t.check(f"component-signed message verifies in SQL: {mid}",
                ok == 1 and st == "verified", (ok, st))
    # A changed row fails in SQL too.
    db.execute("UPDATE work SET epoch = CASE WHEN epoch > 0 THEN epoch - 1 ELSE epoch + 1 END")
    db.execute("UPDATE messages SET body = body || '!'")
    bad = db.execute(f"SELECT count(*) FROM work WHERE {CLAIM_SQL} = 1").fetchone()[0]
    bad += db.execute(f"SELECT count(*) FROM messages WHERE {MESSAGE_SQL} = 1").fetchone()[0]
    t.check("tampered component-signed rows fail in SQL", bad == 0, bad)

    # SQL signs, the component verifies. coord_sign runs only as a
    # top-level SELECT that names no table, so each row is signed by one
    # such SELECT and the MAC written by a second statement.
    for rowid, claimer, task, epoch, expires in db.execute(
            "SELECT rowid, claimer, task_id, epoch, expires_at FROM work").fetchall():
        mac = db.execute("SELECT coord_sign(?, ?, ?, ?, ?)",
                         (claimer, claimer, task, epoch, expires)).fetchone()[0]
        db.execute("UPDATE work SET hmac = ? WHERE rowid = ?", (mac, rowid))
    for mid, sender, recipient, channel, body in db.execute(
            "SELECT id, sender, recipient, channel, body FROM messages").fetchall():
        mac = db.execute("SELECT coord_sign(?, ?, ?, ?, ?)",
                         (sender, sender, recipient or "", channel, body)).fetchone()[0]
        db.execute("UPDATE messages SET hmac = ? WHERE id = ?", (mac, mid))
    for claimer, task, epoch, expires, mac in db.execute(
            "SELECT claimer, task_id, epoch, expires_at, hmac FROM work"):
        c = claim(claimer, task, epoch, expires)
        t.run(f"SQL-signed claim verifies in the component: {task!r}",
              lambda c=c, mac=mac: (kr.claim_status(c, mac) == "verified"
                                    and kr.sign_claim(c) == mac, mac))
    for mid, sender, recipient, channel, body, mac in db.execute(
            "SELECT id, sender, recipient, channel, body, hmac FROM messages"):
        m = message(sender, recipient, channel, body)
        t.run(f"SQL-signed message verifies in the component: {mid}",
              lambda m=m, mac=mac: (kr.verify_message(m, mac) and kr.sign_message(m) == mac, mac))

    # Arbitrary field lists: same MAC both ways, reals and NULLs included.
    for case in v["sign"]:
        f = case["fields"]
        ph = ", ".join("?" * len(f))
        sql_mac = db.execute(f"SELECT coord_sign(?{', ' if f else ''}{ph})",
                             (case["agent"], *f)).fetchone()[0]
        t.run(f"same MAC in SQL and the component: {case['description']}",
              lambda case=case, f=f, sql_mac=sql_mac: (
                  sql_mac == kr.sign(case["agent"], f) == case["mac"], sql_mac))

    # Every verify vector: the same status in SQL and the component.
    for case in v["verify"]:
        f = case["fields"]
        ph = ", ".join("?" * len(f))
        sql_st = db.execute(f"SELECT coord_verify_status(?, ?, {ph})",
                            (case["agent"], case["mac"], *f)).fetchone()[0]
        t.run(f"same status in SQL and the component: {case['description']}",
              lambda case=case, f=f, sql_st=sql_st: (
                  sql_st == kr.status(case["agent"], case["mac"], f).replace("-", "_")
                  == case["status"], sql_st))


def fixture(t: Tally, s: Signing, db: sqlite3.Connection, fixture_dir: Path) -> None:
    """The gptme fixture: per row, SQL and the component give the same status."""
    kr = s.keyring()
    for secret in sorted((fixture_dir / "secrets").glob("*.secret")):
        agent, key = secret.name[: -len(".secret")], secret.read_bytes().strip()
        kr.add_key(agent, key)
        db.execute("SELECT coord_key_add(?, ?)", (agent, key.decode()))
    db.execute("ATTACH ? AS fx", (str(fixture_dir / "coord.db"),))
    n = 0
    for task, claimer, epoch, expires, mac, sql_st in db.execute(
            f"SELECT task_id, claimer, epoch, expires_at, hmac, {CLAIM_STATUS_SQL} FROM fx.work"):
        if claimer is None or expires is None:
            st = kr.status(claimer or "", mac, [claimer, task, epoch, expires])
        else:
            st = kr.claim_status(claim(claimer, task, epoch, expires), mac)
        t.check(f"fixture work {task!r}: SQL and component agree ({sql_st})",
                st.replace("-", "_") == sql_st, (st, sql_st))
        n += 1
    for mid, sender, recipient, channel, body, mac, sql_st in db.execute(
            f"SELECT id, sender, recipient, channel, body, hmac, {MESSAGE_STATUS_SQL}"
            " FROM fx.messages"):
        st = kr.message_status(message(sender, recipient, channel, body), mac)
        t.check(f"fixture message {mid}: SQL and component agree ({sql_st})",
                st.replace("-", "_") == sql_st, (st, sql_st))
        n += 1
    t.check("fixture: rows compared", n > 10, n)


def main() -> None:
    component, libcoord, vectors_path, fixture_dir = sys.argv[1:5]
    v = json.loads(Path(vectors_path).read_text())
    t = Tally()
    t.groups([
            ("signed rows", lambda: signed_rows(t, Signing(component), connect(libcoord), v)),
            ("fixture", lambda: fixture(t, Signing(component), connect(libcoord),
                                        Path(fixture_dir)))])
    t.finish("cross-check")


if __name__ == "__main__":
    main()
