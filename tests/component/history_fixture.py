"""Writes signed-history databases with the SQLite extension's write API, and
what the extension's own views say of them, for the component's hosts.

usage: history_fixture.py LIBCOORD OUT_DIR

LIBCOORD is the extension without its suffix (target/release/libcoord). In
OUT_DIR it writes:

  intact.db     a log of 14 events written by coord's write API (INSERTs into
                coord_submit, coord_claim, coord_complete, coord_abandon,
                coord_send) by three agents: alice, whose key is rotated
                half-way, bob, carol (whose key the reader does not hold), and
                a submit made with no agent (an unsigned event); plus two
                checkpoints the extension signed (coord_sign_checkpoint): bob's
                at size 5, alice's of the whole log.
  gap.db        event 3 deleted
  swapped.db    events 6 and 7 swapped (each renumbered into the other's place)
  edited.db     event 5's state edited (its result)
  truncated.db  the last event deleted (alice's checkpoint is now ahead)
  history.json  {"keys": [...], "databases": {name: {"events", "log",
                "checkpoints"}}}: the reader's keys, each database's
                coord_events rows as stored, its coord_log rows (seq, link,
                verification, chain) and its checkpoints with
                coord_checkpoint_log's verification and consistency, read by a
                connection holding only the reader's keys.

The attacks are plain SQL on the file with coord not loaded and its
append-only triggers dropped, as in tests/extension/test_history.py.
"""
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

# Keys: alice's first key signs the first half of the log and is retired
# before the second half, which her second key signs.
ALICE_1 = "alice-history-key-1-0123456789abcdef0123456789abcdef"
ALICE_2 = "alice-history-key-2-0123456789abcdef0123456789abcdef"
BOB = "bob-history-key-0123456789abcdef0123456789abcdef"
CAROL = "carol-history-key-0123456789abcdef0123456789abcdef"

# What the reader holds (and so the component's keyring): no key of carol's.
READER_KEYS = [("alice", ALICE_1, True), ("alice", ALICE_2, False), ("bob", BOB, False)]

EVENT_COLUMNS = ("seq", "prev", "op", "subject", "at", "agent", "state", "hmac")
LOG_COLUMNS = ("seq", "link", "verification", "chain")
CHECKPOINT_COLUMNS = ("id", "agent", "origin", "size", "head", "at", "hmac",
                      "verification", "consistency")


def connect(libcoord: str, path: Path, keys) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(libcoord)
    conn.enable_load_extension(False)
    for agent, secret, retired in keys:
        if retired:
            conn.execute("SELECT coord_key_add(?, ?, 'retired')", (agent, secret))
        else:
            conn.execute("SELECT coord_key_add(?, ?)", (agent, secret))
    return conn


def op(conn: sqlite3.Connection, agent, sql: str, args=()) -> None:
    conn.execute("SELECT coord_set_agent(?)", (agent,))
    conn.execute(sql, args)


def write(libcoord: str, path: Path) -> None:
    first = connect(libcoord, path, [("alice", ALICE_1, False), ("bob", BOB, False),
                                     ("carol", CAROL, False)])
    first.execute("SELECT coord_init()")
    op(first, "alice", "INSERT INTO coord_submit VALUES ('t1', NULL)")                  # 1
    op(first, "alice", "INSERT INTO coord_claim VALUES ('t1', 'alice', 30)")            # 2
    op(first, "alice", "INSERT INTO coord_claim VALUES ('t1', 'alice', 60)")            # 3 renew
    op(first, "alice", "INSERT INTO coord_send VALUES ('alice', 'bob', NULL, 'hi bob')")  # 4
    op(first, "alice", "INSERT INTO coord_complete VALUES ('t1', 'alice', NULL, 'done')")  # 5
    op(first, None, "INSERT INTO coord_submit VALUES ('t2', '{\"p\":1}')")              # 6 unsigned
    op(first, "bob", "INSERT INTO coord_claim VALUES ('t2', 'bob', 30)")                # 7
    op(first, "bob", "INSERT INTO coord_send VALUES ('bob', NULL, 'ops', ?)",
       ("ünïcödé \"quoted\" \\ 日本 \U0001F600",))                                       # 8
    op(first, "bob", "INSERT INTO coord_abandon VALUES ('t2', 'bob', NULL)")            # 9
    op(first, "carol", "INSERT INTO coord_submit VALUES ('t3', NULL)")                  # 10
    op(first, "carol", "INSERT INTO coord_claim VALUES ('t3', 'carol', 30)")            # 11
    first.close()
    # alice's key rotated: her second key signs from here on
    second = connect(libcoord, path, [("alice", ALICE_2, False), ("bob", BOB, False)])
    op(second, "alice", "INSERT INTO coord_submit VALUES ('t4', NULL)")                 # 12
    op(second, "alice", "INSERT INTO coord_claim VALUES ('t4', 'alice', 30)")           # 13
    op(second, "bob", "INSERT INTO coord_claim VALUES ('t2', 'bob', 30)")               # 14
    # checkpoints, signed by the extension: bob's at size 5, alice's at the head
    for agent, size in (("bob", 5), ("alice", None)):
        origin, = second.execute("SELECT link FROM coord_log WHERE seq = 1").fetchone()
        size, head = second.execute(
            "SELECT seq, link FROM coord_log WHERE seq = coalesce(?, (SELECT max(seq) FROM coord_log))",
            (size,)).fetchone()
        at = "2026-12-08 01:00:00"
        mac, = second.execute("SELECT coord_sign_checkpoint(?, ?, ?, ?, ?)",
                              (agent, origin, size, head, at)).fetchone()
        second.execute("INSERT INTO coord_checkpoints(agent, origin, size, head, at, hmac) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (agent, origin, size, head, at, mac))
    n, = second.execute("SELECT count(*) FROM coord_events").fetchone()
    assert n == 14, n
    second.close()


def attack(src: Path, dst: Path, *sql: str) -> None:
    """A copy of src, changed by plain SQL with coord not loaded."""
    shutil.copyfile(src, dst)
    raw = sqlite3.connect(str(dst), isolation_level=None)
    raw.executescript("DROP TRIGGER IF EXISTS coord_events_no_update;"
                      "DROP TRIGGER IF EXISTS coord_events_no_delete;")
    for s in sql:
        raw.execute(s)
    raw.close()


def edit_state(path: Path, seq: int) -> None:
    """Changes a character of event seq's state (still JSON text)."""
    raw = sqlite3.connect(str(path), isolation_level=None)
    state, = raw.execute("SELECT state FROM coord_events WHERE seq = ?", (seq,)).fetchone()
    assert '"done"' in state, state
    raw.execute("UPDATE coord_events SET state = ? WHERE seq = ?",
                (state.replace('"done"', '"forged"'), seq))
    raw.close()


def read(libcoord: str, path: Path) -> dict:
    conn = connect(libcoord, path, READER_KEYS)
    conn.row_factory = sqlite3.Row
    rows = lambda sql, cols: [{c: r[c] for c in cols} for r in conn.execute(sql)]
    out = {
        "events": rows("SELECT * FROM coord_events ORDER BY seq", EVENT_COLUMNS),
        "log": rows("SELECT * FROM coord_log ORDER BY seq", LOG_COLUMNS),
        "checkpoints": rows("SELECT * FROM coord_checkpoint_log ORDER BY id", CHECKPOINT_COLUMNS),
    }
    conn.close()
    for e in out["events"]:
        # the component's event is all text but seq: a stored value of any
        # other type would be a bug of the writer (or an attack not made here)
        for c in EVENT_COLUMNS[1:7]:
            assert isinstance(e[c], str), (path, e)
    return out


def main() -> None:
    libcoord, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    # keys only from here: no COORDINATION_SECRET_* and an empty secrets dir
    for k in list(os.environ):
        if k.startswith("COORDINATION_"):
            del os.environ[k]
    empty = tempfile.mkdtemp()
    os.environ["COORDINATION_SECRETS_DIR"] = empty
    intact = out / "intact.db"
    for f in out.glob("*.db"):
        f.unlink()
    write(libcoord, intact)
    attack(intact, out / "gap.db", "DELETE FROM coord_events WHERE seq = 3")
    attack(intact, out / "swapped.db",
           "UPDATE coord_events SET seq = -seq WHERE seq IN (6, 7)",
           "UPDATE coord_events SET seq = 7 WHERE seq = -6",
           "UPDATE coord_events SET seq = 6 WHERE seq = -7")
    attack(intact, out / "edited.db")
    edit_state(out / "edited.db", 5)
    attack(intact, out / "truncated.db", "DELETE FROM coord_events WHERE seq = 14")
    databases = {p.stem: read(libcoord, p) for p in sorted(out.glob("*.db"))}
    keys = [{"agent": a, "secret": s, "retired": r} for a, s, r in READER_KEYS]
    (out / "history.json").write_text(
        json.dumps({"keys": keys, "databases": databases}, ensure_ascii=False, indent=1))
    os.rmdir(empty)


if __name__ == "__main__":
    main()
