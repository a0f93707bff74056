"""The component and the SQLite extension sign and verify the same rows.

    COORD_WASM=... COORD_LIBCOORD=target/release/libcoord COORD_FIXTURE_SHARED=... \\
        COORD_FIXTURE_GPTME=... target/venv/bin/python -m pytest tests/component/test_crosscheck.py

Needs a Python whose sqlite3 can load extensions (Debian's /usr/bin/python3,
or a venv made from it, as target/venv is). COORD_LIBCOORD is the extension
without its suffix. Rows the component signs verify with coord_verify in
SQL, rows SQL signs verify in the component, and both report the same
status for every verify vector and every fixture row.
"""
import sqlite3
from pathlib import Path

import pytest

from coord_wasm import Keyring, Signing, claim, message
from vectors import VECTORS, describe, vector_keys

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

# The rows signed both ways: every claim and message vector, and one more of
# each. Vectors repeat task ids and the table's key is unique, so each
# claim's task id gets its index as a prefix.
CLAIMS = [c["fields"] for c in VECTORS["sign"] if c["description"].startswith("claim")]
CLAIMS.append(["carol", "task:rotate", 2, "2026-11-27 08:00:00"])
CLAIMS = [(claimer, f"{i}:{task}", epoch, expires)
          for i, (claimer, task, epoch, expires) in enumerate(CLAIMS)]
MESSAGES = [c["fields"] for c in VECTORS["sign"] if c["description"].startswith("message")]
MESSAGES.append(["alice", "", "ops", "DEL\x7f and \U0001F600 and \\ \""])
MESSAGES = [(i, sender, recipient or None, channel, body)
            for i, (sender, recipient, channel, body) in enumerate(MESSAGES, start=1)]


def claim_id(row: tuple) -> str:
    return row[1]


def message_id(row: tuple) -> str:
    return str(row[0])


def connect(libcoord: str) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.enable_load_extension(True)
    db.load_extension(libcoord)
    db.enable_load_extension(False)
    return db


@pytest.fixture
def db(libcoord: str) -> sqlite3.Connection:
    """An in-memory database with the extension loaded."""
    return connect(libcoord)


@pytest.fixture
def vdb(db: sqlite3.Connection) -> sqlite3.Connection:
    """`db` with the vectors' keys loaded and the two tables created."""
    for agent, secret, retired in vector_keys(VECTORS):
        if retired:
            db.execute("SELECT coord_key_add(?, ?, 'retired')", (agent, secret.decode()))
        else:
            db.execute("SELECT coord_key_add(?, ?)", (agent, secret.decode()))
    db.executescript(SCHEMA)
    return db


@pytest.fixture
def kr(signing: Signing) -> Keyring:
    """The component's keyring with the same keys."""
    return signing.keyring_from_keys(vector_keys(VECTORS))


def insert_component_signed(db: sqlite3.Connection, kr: Keyring, claims, messages) -> None:
    for claimer, task, epoch, expires in claims:
        mac = kr.sign_claim(claim(claimer, task, epoch, expires))
        db.execute("INSERT INTO work VALUES (?, ?, ?, ?, ?)", (task, claimer, epoch, expires, mac))
    for mid, sender, recipient, channel, body in messages:
        mac = kr.sign_message(message(sender, recipient, channel, body))
        db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                   (mid, sender, recipient, channel, body, mac))


def test_rows_to_sign() -> None:
    assert len(CLAIMS) >= 10
    assert len(MESSAGES) >= 3


# --- the component signs, SQL verifies -----------------------------------------

@pytest.mark.parametrize("row", CLAIMS, ids=claim_id)
def test_component_signed_claim_verifies_in_sql(vdb, kr, row) -> None:
    insert_component_signed(vdb, kr, [row], [])
    assert vdb.execute(f"SELECT {CLAIM_SQL}, {CLAIM_STATUS_SQL} FROM work").fetchall() \
        == [(1, "verified")]


@pytest.mark.parametrize("row", MESSAGES, ids=message_id)
def test_component_signed_message_verifies_in_sql(vdb, kr, row) -> None:
    insert_component_signed(vdb, kr, [], [row])
    assert vdb.execute(f"SELECT {MESSAGE_SQL}, {MESSAGE_STATUS_SQL} FROM messages").fetchall() \
        == [(1, "verified")]


def test_tampered_component_signed_rows_fail_in_sql(vdb, kr) -> None:
    insert_component_signed(vdb, kr, CLAIMS, MESSAGES)
    vdb.execute("UPDATE work SET epoch = CASE WHEN epoch > 0 THEN epoch - 1 ELSE epoch + 1 END")
    vdb.execute("UPDATE messages SET body = body || '!'")
    verified = vdb.execute(f"SELECT count(*) FROM work WHERE {CLAIM_SQL} = 1").fetchone()[0]
    verified += vdb.execute(f"SELECT count(*) FROM messages WHERE {MESSAGE_SQL} = 1").fetchone()[0]
    assert verified == 0


# --- SQL signs, the component verifies -----------------------------------------
# coord_sign runs only as a top-level SELECT that names no table, so a row is
# signed by one such SELECT, written by a second statement and read back.

@pytest.mark.parametrize("row", CLAIMS, ids=claim_id)
def test_sql_signed_claim_verifies_in_the_component(vdb, kr, row) -> None:
    claimer, task, epoch, expires = row
    mac = vdb.execute("SELECT coord_sign(?, ?, ?, ?, ?)",
                      (claimer, claimer, task, epoch, expires)).fetchone()[0]
    vdb.execute("INSERT INTO work VALUES (?, ?, ?, ?, ?)", (task, claimer, epoch, expires, mac))
    (claimer, task, epoch, expires, mac), = vdb.execute(
        "SELECT claimer, task_id, epoch, expires_at, hmac FROM work")
    c = claim(claimer, task, epoch, expires)
    assert kr.claim_status(c, mac) == "verified"
    assert kr.sign_claim(c) == mac


@pytest.mark.parametrize("row", MESSAGES, ids=message_id)
def test_sql_signed_message_verifies_in_the_component(vdb, kr, row) -> None:
    mid, sender, recipient, channel, body = row
    mac = vdb.execute("SELECT coord_sign(?, ?, ?, ?, ?)",
                      (sender, sender, recipient or "", channel, body)).fetchone()[0]
    vdb.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                (mid, sender, recipient, channel, body, mac))
    (sender, recipient, channel, body, mac), = vdb.execute(
        "SELECT sender, recipient, channel, body, hmac FROM messages")
    m = message(sender, recipient, channel, body)
    assert kr.verify_message(m, mac)
    assert kr.sign_message(m) == mac


# --- every vector: the same answer in SQL and the component --------------------

@pytest.mark.parametrize("case", VECTORS["sign"], ids=describe)
def test_same_mac_in_sql_and_the_component(vdb, kr, case: dict) -> None:
    """Arbitrary field lists, reals and NULLs included."""
    f = case["fields"]
    ph = ", ".join("?" * len(f))
    sql_mac = vdb.execute(f"SELECT coord_sign(?{', ' if f else ''}{ph})",
                          (case["agent"], *f)).fetchone()[0]
    assert sql_mac == kr.sign(case["agent"], f) == case["mac"]


@pytest.mark.parametrize("case", VECTORS["verify"], ids=describe)
def test_same_status_in_sql_and_the_component(vdb, kr, case: dict) -> None:
    f = case["fields"]
    ph = ", ".join("?" * len(f))
    sql_st = vdb.execute(f"SELECT coord_verify_status(?, ?, {ph})",
                         (case["agent"], case["mac"], *f)).fetchone()[0]
    assert sql_st == kr.status(case["agent"], case["mac"], f).replace("-", "_") == case["status"]


# --- the fixtures: per row, SQL and the component give the same status ---------

@pytest.fixture
def fx(signing: Signing, db: sqlite3.Connection, fixture_dir: Path):
    """The fixture attached as `fx`, its keys in both the component and SQL."""
    kr = signing.keyring()
    for secret in sorted((fixture_dir / "secrets").glob("*.secret")):
        agent, key = secret.name[: -len(".secret")], secret.read_bytes().strip()
        kr.add_key(agent, key)
        db.execute("SELECT coord_key_add(?, ?)", (agent, key.decode()))
    db.execute("ATTACH ? AS fx", (str(fixture_dir / "coord.db"),))
    return db, kr


def test_fixture_work_rows_agree(fx) -> None:
    db, kr = fx
    sql, component = {}, {}
    for task, claimer, epoch, expires, mac, sql_st in db.execute(
            f"SELECT task_id, claimer, epoch, expires_at, hmac, {CLAIM_STATUS_SQL} FROM fx.work"):
        if claimer is None or expires is None:
            st = kr.status(claimer or "", mac, [claimer, task, epoch, expires])
        else:
            st = kr.claim_status(claim(claimer, task, epoch, expires), mac)
        sql[task], component[task] = sql_st, st.replace("-", "_")
    assert component == sql


def test_fixture_message_rows_agree(fx) -> None:
    db, kr = fx
    sql, component = {}, {}
    for mid, sender, recipient, channel, body, mac, sql_st in db.execute(
            f"SELECT id, sender, recipient, channel, body, hmac, {MESSAGE_STATUS_SQL}"
            " FROM fx.messages"):
        st = kr.message_status(message(sender, recipient, channel, body), mac)
        sql[mid], component[mid] = sql_st, st.replace("-", "_")
    assert component == sql


def test_fixture_rows_compared(fx) -> None:
    db, _ = fx
    n = db.execute("SELECT (SELECT count(*) FROM fx.work) + (SELECT count(*) FROM fx.messages)")
    assert n.fetchone()[0] > 10
