"""Signed history in the component, against the extension's own views.

    COORD_WASM=... COORD_LIBCOORD=target/release/libcoord COORD_HISTORY=... \\
        target/venv/bin/python -m pytest tests/component/test_signed_history.py

COORD_HISTORY is the directory tests/component/history_fixture.py writes:
databases whose events the extension's write API wrote, and copies attacked
with plain SQL (an event deleted, two swapped, one edited, the last one
deleted). Each test reads the rows from the database file itself and asks the
extension (coord_log, coord_checkpoint_log, coord_checkpoint_status) with the
same keys the component holds: the component must answer as the extension
does, row for row.
"""
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from coord_wasm import CoordError, Keyring, Signing, checkpoint, event, position
from history_fixture import READER_KEYS, connect

DATABASES = ["intact", "gap", "swapped", "edited", "truncated"]
STATUS = lambda s: s.replace("-", "_")  # noqa: E731 (WIT -> SQL spelling)


@pytest.fixture
def kr(signing: Signing) -> Keyring:
    """The component's keyring with the reader's keys (none of carol's)."""
    return signing.keyring_from_keys(
        [(a, s.encode(), r) for a, s, r in READER_KEYS])


@pytest.fixture
def sql(libcoord: str, history_dir: Path, tmp_path: Path, monkeypatch):
    """A function opening a copy of one database with the extension and the
    reader's keys, and no others (no COORDINATION_* variables, an empty
    secrets directory)."""
    import os
    for k in list(os.environ):
        if k.startswith("COORDINATION_"):
            monkeypatch.delenv(k)
    (tmp_path / "no-secrets").mkdir()
    monkeypatch.setenv("COORDINATION_SECRETS_DIR", str(tmp_path / "no-secrets"))
    conns = []

    def open_db(name: str) -> sqlite3.Connection:
        copy = tmp_path / f"{name}.db"
        if not copy.exists():
            shutil.copyfile(history_dir / f"{name}.db", copy)
        conn = connect(libcoord, copy, READER_KEYS)
        conns.append(conn)
        return conn

    yield open_db
    for c in conns:
        c.close()


def events_of(db: sqlite3.Connection) -> list:
    """The coord_events rows as stored, as WIT events, in seq order."""
    return [event(*row) for row in db.execute(
        "SELECT seq, prev, op, subject, at, agent, state, hmac FROM main.coord_events ORDER BY seq")]


def log_of(db: sqlite3.Connection) -> list:
    return [tuple(r) for r in db.execute(
        "SELECT seq, link, verification, chain FROM coord_log ORDER BY seq")]


def report_rows(report) -> list:
    return [(c.seq, c.link, STATUS(c.status), c.chain) for c in report.events]


@pytest.mark.parametrize("name", DATABASES)
def test_check_log_reads_as_coord_log_row_for_row(signing, kr, sql, name) -> None:
    db = sql(name)
    events = events_of(db)
    log = log_of(db)
    report = signing.check_log(kr, events)
    assert report_rows(report) == log
    assert report.size == len(log)
    assert report.origin == (log[0][1] if log[0][0] == 1 else None)
    assert report.head == log[-1][1]
    assert report.intact == all(ch == "ok" and st != "bad_mac" for _, _, st, ch in log)


@pytest.mark.parametrize("name", DATABASES)
def test_each_event_alone_reads_as_coord_log(signing, kr, sql, name) -> None:
    db = sql(name)
    got = [(e.seq, signing.event_link(e), STATUS(kr.event_status(e))) for e in events_of(db)]
    assert got == [(s, link, st) for s, link, st, _ in log_of(db)]


def test_the_attacks_read_as_what_they_are(signing, kr, sql) -> None:
    """Not only equal to coord_log: each attack named where it was made."""
    chains = {}
    for name in DATABASES:
        report = signing.check_log(kr, events_of(sql(name)))
        chains[name] = {c.seq: (STATUS(c.status), c.chain) for c in report.events}
        assert report.intact == (name in ("intact", "truncated")), name
    intact = chains["intact"]
    assert {ch for _, ch in intact.values()} == {"ok"}
    assert {st for st, _ in intact.values()} == {"verified", "retired_key", "unsigned",
                                                 "unknown_agent"}
    assert intact[6] == ("unsigned", "ok")          # a submit by no agent
    assert intact[10] == ("unknown_agent", "ok")    # carol, whose key we lack
    assert intact[1] == ("retired_key", "ok")       # alice's first key
    assert intact[12] == ("verified", "ok")         # alice's second key
    assert 3 not in chains["gap"] and chains["gap"][4][1] == "gap"
    assert [chains["swapped"][s][1] for s in (6, 7, 8)] == ["broken"] * 3
    assert chains["swapped"][6][0] == "bad_mac"     # seq is signed
    assert chains["edited"][5] == ("bad_mac", "ok")
    assert chains["edited"][6][1] == "broken"
    assert max(chains["truncated"]) == 13


@pytest.mark.parametrize("name", DATABASES)
def test_a_suffix_after_a_position_reads_as_the_whole_log(signing, kr, sql, name) -> None:
    db = sql(name)
    events, log = events_of(db), log_of(db)
    origin = log[0][1]
    for k in range(len(events)):
        seq, link = log[k][0], log[k][1]
        report = signing.check_log(kr, events[k + 1:], position(origin, seq, link))
        assert report_rows(report) == log[k + 1:], k
        assert report.size == seq + len(events) - k - 1
        assert report.origin == origin
        assert report.head == log[-1][1]


def test_a_suffix_after_the_wrong_position(signing, kr, sql) -> None:
    db = sql("intact")
    events, log = events_of(db), log_of(db)
    after = lambda size, head: position(log[0][1], size, head)  # noqa: E731
    # another head: the first event is broken; a smaller size: a gap
    assert signing.check_log(kr, events[5:], after(5, log[3][1])).events[0].chain == "broken"
    assert signing.check_log(kr, events[5:], after(4, log[3][1])).events[0].chain == "gap"
    # no events after the head: the log is where it was
    empty = signing.check_log(kr, [], after(14, log[13][1]))
    assert (empty.events, empty.size, empty.head, empty.intact) == ([], 14, log[13][1], True)


def test_an_empty_log(signing, kr) -> None:
    report = signing.check_log(kr, [])
    assert (report.events, report.size, report.origin, report.head, report.intact) \
        == ([], 0, None, None, True)


def test_the_component_signs_each_event_as_the_extension_did(signing, kr, sql) -> None:
    db = sql("intact")
    signed = 0
    for e, (_, _, status, _) in zip(events_of(db), log_of(db)):
        if status == "verified":
            assert kr.sign_event(e) == e.hmac
            signed += 1
        elif status == "unsigned":
            with pytest.raises(CoordError) as err:
                kr.sign_event(e)     # the empty agent has no key
            assert err.value.tag == "unknown-agent"
        elif status == "unknown_agent":
            with pytest.raises(CoordError) as err:
                kr.sign_event(e)
            assert (err.value.tag, err.value.payload) == ("unknown-agent", "carol")
    assert signed == 6


@pytest.mark.parametrize("name", DATABASES)
def test_checkpoints_read_as_coord_checkpoint_log(signing, kr, sql, name) -> None:
    db = sql(name)
    events = events_of(db)
    rows = db.execute("SELECT agent, origin, size, head, at, hmac, verification, consistency "
                      "FROM coord_checkpoint_log ORDER BY id").fetchall()
    assert len(rows) == 2
    for *cp, verification, consistency in rows:
        c = checkpoint(*cp)
        assert STATUS(kr.checkpoint_status(c)) == verification
        assert signing.checkpoint_consistency(c, events) == consistency
        # signed by the extension: the component signs it to the same MAC
        assert kr.sign_checkpoint(c) == c.hmac


def test_checkpoint_verdicts_name_the_attacks(signing, sql) -> None:
    got = {name: [r[0] for r in sql(name).execute(
        "SELECT consistency FROM coord_checkpoint_log ORDER BY id")] for name in DATABASES}
    # bob's at size 5, alice's at 14
    assert got["edited"] == ["fork", "consistent"]
    assert got["truncated"] == ["consistent", "ahead"]
    assert got["intact"] == ["consistent", "consistent"]


def test_a_checkpoint_the_component_signs_verifies_in_the_extension(signing, kr, sql) -> None:
    db = sql("intact")
    report = signing.check_log(kr, events_of(db))
    c = checkpoint("bob", report.origin, report.size, report.head, "2026-12-08 02:00:00", None)
    mac = kr.sign_checkpoint(c)
    assert db.execute("SELECT coord_checkpoint_status('bob', ?, ?, ?, ?, ?)",
                      (mac, c.origin, c.size, c.head, c.at)).fetchone()[0] == "verified"
    db.execute("INSERT INTO coord_checkpoints(agent, origin, size, head, at, hmac) "
               "VALUES ('bob', ?, ?, ?, ?, ?)", (c.origin, c.size, c.head, c.at, mac))
    assert tuple(db.execute("SELECT verification, consistency FROM coord_checkpoint_log "
                            "ORDER BY id DESC LIMIT 1").fetchone()) == ("verified", "consistent")
    # and a changed one does not
    forged = checkpoint("bob", c.origin, c.size - 1, c.head, c.at, mac)
    assert kr.checkpoint_status(forged) == "bad-mac"
    assert db.execute("SELECT coord_checkpoint_status('bob', ?, ?, ?, ?, ?)",
                      (mac, c.origin, c.size - 1, c.head, c.at)).fetchone()[0] == "bad_mac"


def test_an_event_the_component_signs_verifies_in_the_extension(signing, kr, sql) -> None:
    db = sql("intact")
    last = events_of(db)[-1]
    state = '["t9",null,0,null,null,"available",null,null,null]'
    e = event(last.seq + 1, signing.event_link(last), "submit", "t9", "2026-12-08 02:00:00",
              "bob", state, None)
    e.hmac = kr.sign_event(e)
    db.execute("INSERT INTO main.coord_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (e.seq, e.prev, e.op, e.subject, e.at, e.agent, e.state, e.hmac))
    row = db.execute("SELECT link, verification, chain FROM coord_log WHERE seq = ?",
                     (e.seq,)).fetchone()
    assert tuple(row) == (signing.event_link(e), "verified", "ok")
    assert report_rows(signing.check_log(kr, events_of(db))) == log_of(db)


def test_history_json_is_what_the_databases_say(history_dir: Path, sql) -> None:
    """The Node and Rust hosts read history.json: it must be these rows."""
    data = json.loads((history_dir / "history.json").read_text())
    assert sorted(data["databases"]) == sorted(DATABASES)
    for name in DATABASES:
        db = sql(name)
        assert [tuple(r.values()) for r in data["databases"][name]["log"]] == log_of(db)
        assert [tuple(r.values())[:8] for r in data["databases"][name]["events"]] == [
            tuple(r) for r in db.execute("SELECT * FROM main.coord_events ORDER BY seq")]


# --- odd events: the component and the extension's functions agree -----------

ODD_EVENTS = [
    # (description, seq, prev, op, subject, at, agent, state, hmac)
    ("no MAC", 1, "", "submit", "t", "now", "alice", "[]", None),
    ("empty MAC", 1, "", "submit", "t", "now", "alice", "[]", ""),
    ("not base64", 1, "", "submit", "t", "now", "alice", "[]", "===="),
    ("1 MiB MAC", 1, "", "submit", "t", "now", "alice", "[]", "A" * (1 << 20)),
    ("no agent, a MAC", 1, "", "submit", "t", "now", "", "[]", "AAAA"),
    ("path-like agent", 1, "", "submit", "t", "now", "../alice", "[]", "AAAA"),
    ("largest seq", 2**63 - 1, "x", "claim", "t", "now", "bob", "[]", "AAAA"),
    ("smallest seq", -2**63, "x", "claim", "t", "now", "bob", "[]", None),
    ("unicode everywhere", 7, "ünï", "cödé", "日本/\U0001F600", "\x7f\n\t", "bob", "[\"\\u00e9\"]",
     None),
    ("5 MiB state", 3, "p", "send", "12", "now", "bob", "x\U0001F600\n" * (1 << 20), None),
]


@pytest.mark.parametrize("case", ODD_EVENTS, ids=lambda c: c[0])
def test_odd_events_read_as_the_extensions_functions(signing, kr, sql, case) -> None:
    db = sql("intact")
    _, *row = case
    e = event(*row)
    args = (e.agent, e.hmac, e.seq, e.prev, e.op, e.subject, e.at, e.state)
    link, status = db.execute(
        "SELECT coord_event_link(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8), "
        "coord_event_status(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", args).fetchone()
    assert signing.event_link(e) == link
    assert STATUS(kr.event_status(e)) == status
    # signed by the component, it verifies in SQL (bob has a current key)
    if e.agent == "bob":
        mac = kr.sign_event(e)
        signed = (e.agent, mac, *args[2:])
        assert db.execute("SELECT coord_event_status(?, ?, ?, ?, ?, ?, ?, ?)",
                          signed).fetchone()[0] == "verified"
    report = signing.check_log(kr, [e])
    assert (report.events[0].link, STATUS(report.events[0].status)) == (link, status)


def test_bad_input_never_traps_and_the_instance_still_works(signing, kr, sql) -> None:
    events = events_of(sql("intact"))
    retired_only = signing.keyring_from_keys([("dave", b"d" * 32, True)])
    e = event(1, "", "submit", "t", "now", "dave", "[]", None)
    with pytest.raises(CoordError) as err:
        retired_only.sign_event(e)
    assert (err.value.tag, err.value.payload) == ("no-current-key", "dave")
    with pytest.raises(CoordError) as err:
        retired_only.sign_checkpoint(checkpoint("dave", "o", 1, "h", "now", None))
    assert err.value.tag == "no-current-key"
    # an empty keyring reads every signed event as unknown_agent, and still chains
    report = signing.check_log(signing.keyring(), events)
    assert {STATUS(c.status) for c in report.events} == {"unknown_agent", "unsigned"}
    assert {c.chain for c in report.events} == {"ok"}
    assert not signing.check_log(kr, events[::-1]).intact
    # 20,000 copies of one event: each a gap after the first, no trap
    many = signing.check_log(kr, [events[0]] * 20_000)
    assert (many.size, many.events[0].chain, many.events[1].chain) == (20_000, "ok", "gap")
    assert report_rows(signing.check_log(kr, events)) == log_of(sql("intact"))
