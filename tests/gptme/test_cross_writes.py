"""Cross-writes, operation by operation, on one database: what
gptme-coordination writes reads `verified` in coord (its views and the
`coord` command), and what coord writes (write API and CLI) verifies in
gptme's HMAC code and is honoured by gptme's claim logic. The component
reads the same gptme-written rows through tests/gptme/write_fixture.py,
run by tests/component.sh.
"""
import json
import os
import sqlite3
import subprocess
from types import SimpleNamespace

import pytest
from harness import COORD_BIN, KEYS, MessageBus, auth, connect_coord, gptme_manager, run_op, write_keys


@pytest.fixture
def db(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("COORDINATION_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("COORDINATION_SECRETS_DIR", str(write_keys(tmp_path / "secrets")))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "coord.db"
    g = gptme_manager(path)  # gptme makes the file, as its agents do
    c = connect_coord(path)
    c.execute("SELECT coord_init()")
    return SimpleNamespace(path=path, g=g, bus=MessageBus(g.db), c=c)


def cli(d, *args, agent=None):
    cmd = [COORD_BIN, "--db", str(d.path), "--json", *(["--as", agent] if agent else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def in_coord(d, task):
    """The task as coord's view and coord's CLI read it; the two must agree."""
    d.c.row_factory = sqlite3.Row
    view = dict(d.c.execute("SELECT * FROM coord_work WHERE task_id = ?", (task,)).fetchone())
    listed = {r["task_id"]: r for r in cli(d, "list", "all")}[task]
    for k in ("claimer", "epoch", "expires_at", "status", "state", "verification"):
        assert listed[k] == view[k], (k, listed, view)
    return view


def raw(d, task):
    d.c.row_factory = sqlite3.Row
    return dict(d.c.execute("SELECT * FROM main.work WHERE task_id = ?", (task,)).fetchone())


def gptme_verifies(d, task):
    r = raw(d, task)
    return r["hmac"] is not None and auth.verify_hmac(
        KEYS[r["claimer"]], r["hmac"], r["claimer"], r["task_id"], r["epoch"], r["expires_at"])


# --- gptme writes, coord reads ---------------------------------------------

def test_gptme_claim_of_a_new_task_verifies_in_coord(db):
    c = db.g.claim("alice", "t", secret=KEYS["alice"])
    v = in_coord(db, "t")
    assert (v["verification"], v["epoch"], v["claimer"], v["state"]) == ("verified", 1, "alice", "claimed")
    assert v["expires_at"] == c.expires_at.strftime("%Y-%m-%d %H:%M:%S")


def test_gptme_claim_of_a_submitted_task_verifies_in_coord(db):
    db.g.submit("t", metadata="m")
    assert in_coord(db, "t")["verification"] == "unsigned"  # submitted: nobody signed
    db.g.claim("bob", "t", secret=KEYS["bob"])
    v = in_coord(db, "t")
    assert (v["verification"], v["epoch"], v["claimer"]) == ("verified", 1, "bob")


def test_gptme_renewal_verifies_in_coord_at_the_same_epoch(db):
    db.g.claim("alice", "t", ttl_minutes=5, secret=KEYS["alice"])
    before = in_coord(db, "t")
    db.g.claim("alice", "t", ttl_minutes=90, secret=KEYS["alice"])
    after = in_coord(db, "t")
    assert after["verification"] == "verified" and after["epoch"] == before["epoch"] == 1
    assert after["expires_at"] > before["expires_at"]


def test_gptme_complete_keeps_the_row_verified_and_coord_reclaims_at_epoch_2(db):
    db.g.claim("alice", "t", secret=KEYS["alice"])
    assert db.g.complete("alice", "t", result="shipped")
    v = in_coord(db, "t")
    assert (v["verification"], v["status"], v["result"]) == ("verified", "completed", "shipped")
    assert tuple(run_op(db.c, "coord_claim", ("t", "bob", 60))) == ("granted", 2)
    assert in_coord(db, "t")["verification"] == "verified" and gptme_verifies(db, "t")


def test_gptme_abandon_reads_unsigned_and_coord_claims_at_the_next_epoch(db):
    db.g.claim("alice", "t", secret=KEYS["alice"])
    assert db.g.abandon("alice", "t", reason="blocked")
    v = in_coord(db, "t")
    assert (v["verification"], v["status"], v["claimer"], v["result"]) == \
        ("unsigned", "abandoned", None, "blocked")
    assert cli(db, "claim", "t", agent="bob")["outcome"] == "granted"
    assert in_coord(db, "t")["epoch"] == 2 and gptme_verifies(db, "t")


def test_gptme_reclaims_of_expired_abandoned_and_completed_tasks_verify_in_coord(db):
    for t in ("exp", "ab", "done"):
        db.g.claim("alice", t, secret=KEYS["alice"])
    db.c.execute("UPDATE work SET expires_at = datetime('now', '-1 second') WHERE task_id = 'exp'")
    db.g.abandon("alice", "ab")
    db.g.complete("alice", "done")
    for t in ("exp", "ab", "done"):
        assert db.g.claim("bob", t, secret=KEYS["bob"]) is not None, t
        v = in_coord(db, t)
        assert (v["verification"], v["epoch"], v["claimer"]) == ("verified", 2, "bob"), t


def test_gptme_rows_without_a_secret_or_tampered_never_verify_in_coord(db):
    db.g.claim("alice", "legacy")  # no secret: gptme's legacy mode
    assert in_coord(db, "legacy")["verification"] == "unsigned"
    db.g.claim("alice", "t", secret=KEYS["alice"])
    db.c.execute("UPDATE work SET claimer = 'bob' WHERE task_id = 't'")
    # coord's stored trigger clears a MAC whose fields changed without it
    assert in_coord(db, "t")["verification"] == "unsigned"
    db.g.claim("alice", "u", secret=KEYS["alice"])
    db.c.execute("UPDATE work SET hmac = ? WHERE task_id = 'u'", (auth.compute_hmac(
        KEYS["bob"], "alice", "u", 1, raw(db, "u")["expires_at"]),))
    assert in_coord(db, "u")["verification"] == "bad_mac"
    assert cli(db, "audit")["work"]["bad_mac"] == 1


def test_gptme_messages_verify_in_coord_for_every_kind_of_send(db):
    db.bus.send("alice", "to bob", recipient="bob", secret=KEYS["alice"])
    db.bus.send("alice", "to all", secret=KEYS["alice"])
    db.bus.send("bob", "deploy at 5", recipient="alice", channel="ops", secret=KEYS["bob"])
    db.bus.send("bob", "legacy", recipient="alice")
    db.c.row_factory = sqlite3.Row
    got = {r["body"]: r["verification"] for r in db.c.execute("SELECT * FROM coord_messages")}
    assert got == {"to bob": "verified", "to all": "verified", "deploy at 5": "verified",
                   "legacy": "unsigned"}
    bob = {m["body"]: m["verification"] for m in cli(db, "inbox", agent="bob")}
    assert bob == {"to bob": "verified", "to all": "verified"}
    alice = {m["body"]: m["verification"] for m in cli(db, "inbox", agent="alice")}
    assert alice == {"to all": "verified", "deploy at 5": "verified", "legacy": "unsigned"}
    ops = cli(db, "inbox", "--channel", "ops", agent="alice")
    assert [(m["body"], m["channel"]) for m in ops] == [("deploy at 5", "ops")]


def test_odd_recipients_read_the_same_in_coord_and_in_gptme(db):
    """gptme signs `recipient or ""` from the value it was given, and checks
    `recipient or ""` from the value stored. '' signs as ''; 0 is stored as
    the text '0' (TEXT affinity), which gptme itself no longer verifies:
    coord must say what gptme says in both cases."""
    db.bus.send("alice", "to empty", recipient="", secret=KEYS["alice"])
    db.bus.send("alice", "to zero", recipient=0, secret=KEYS["alice"])
    db.c.row_factory = sqlite3.Row
    coord = {r["body"]: (r["recipient"], r["verified"])
             for r in db.c.execute("SELECT * FROM coord_messages")}
    gptme = {m.body: (m.recipient, m.verified)
             for to in ("", "0") for m in db.bus.inbox(to, secrets=KEYS)}
    assert coord == {"to empty": ("", 1), "to zero": ("0", 0)}
    assert {k: (r, bool(v)) for k, (r, v) in coord.items()} == gptme


# --- coord writes, gptme reads ---------------------------------------------

@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_claim_verifies_in_gptme_and_gptme_honours_it(db, surface):
    if surface == "sql":
        assert tuple(run_op(db.c, "coord_claim", ("t", "alice", 30))) == ("granted", 1)
    else:
        assert cli(db, "claim", "t", "--ttl", "30", agent="alice")["outcome"] == "granted"
    assert gptme_verifies(db, "t")
    assert db.g.claim("bob", "t", secret=KEYS["bob"]) is None  # a live claim: gptme denies bob
    assert [c.task_id for c in db.g.list_claimed("alice")] == ["t"]
    assert "t" not in [c.task_id for c in db.g.list_available()]
    assert db.g.complete("alice", "t", result="by gptme")  # the holder completes it in gptme
    assert raw(db, "t")["status"] == "completed" and gptme_verifies(db, "t")


@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_renewal_verifies_in_gptme_at_the_same_epoch(db, surface):
    run_op(db.c, "coord_claim", ("t", "alice", 5))
    before = raw(db, "t")
    if surface == "sql":
        assert tuple(run_op(db.c, "coord_claim", ("t", "alice", 90))) == ("renewed", 1)
    else:
        assert cli(db, "claim", "t", "--ttl", "90", agent="alice")["outcome"] == "renewed"
    after = raw(db, "t")
    assert after["epoch"] == 1 and after["expires_at"] > before["expires_at"]
    assert after["hmac"] != before["hmac"] and gptme_verifies(db, "t")


@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_complete_reads_completed_in_gptme_which_reclaims_at_epoch_2(db, surface):
    run_op(db.c, "coord_claim", ("t", "alice", 60))
    if surface == "sql":
        assert run_op(db.c, "coord_complete", ("t", "alice", 1, "shipped"))[0] == "completed"
    else:
        assert cli(db, "complete", "t", "--result", "shipped", "--epoch", "1", agent="alice")["ok"]
    w = db.g.get("t")
    assert (w.status, w.result, w.claimer) == ("completed", "shipped", "alice")
    assert w.completed_at is not None and gptme_verifies(db, "t")
    again = db.g.claim("bob", "t", secret=KEYS["bob"])
    assert (again.epoch, again.claimer) == (2, "bob")
    assert in_coord(db, "t")["verification"] == "verified"


@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_abandon_is_offered_by_gptme_at_once(db, surface):
    run_op(db.c, "coord_claim", ("t", "alice", 60))
    if surface == "sql":
        assert run_op(db.c, "coord_abandon", ("t", "alice", 1))[0] == "abandoned"
    else:
        assert cli(db, "abandon", "t", "--epoch", "1", agent="alice")["ok"]
    assert [c.task_id for c in db.g.list_available()] == ["t"]
    assert db.g.claim("bob", "t", secret=KEYS["bob"]).epoch == 2


@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_submit_is_offered_and_claimed_by_gptme(db, surface):
    if surface == "sql":
        assert run_op(db.c, "coord_submit", ("t", "meta"), "outcome")[0] == "submitted"
    else:
        assert cli(db, "submit", "t")["outcome"] == "submitted"
    assert [c.task_id for c in db.g.list_available()] == ["t"]
    assert db.g.claim("bob", "t", secret=KEYS["bob"]).epoch == 1


def test_submit_of_an_abandoned_task_resets_it_as_gptme_does(db, tmp_path):
    """Both sides' submit on an abandoned task: the same row, epoch kept."""
    rows = []
    for side in ("gptme", "coord"):
        path = tmp_path / f"{side}.db"
        g = gptme_manager(path)
        c = connect_coord(path)
        c.execute("SELECT coord_init()")
        g.claim("alice", "t", metadata="old", secret=KEYS["alice"])
        g.abandon("alice", "t", reason="blocked")
        if side == "gptme":
            g.submit("t", metadata="new")
        else:
            assert run_op(c, "coord_submit", ("t", "new"), "outcome")[0] == "resubmitted"
        rows.append(c.execute("SELECT claimer, epoch, claimed_at, expires_at, completed_at, status,"
                              " result, metadata, hmac FROM work").fetchone())
    assert rows[0] == rows[1] == (None, 1, None, None, None, "available", None, "new", None)


@pytest.mark.parametrize("surface", ["sql", "cli"])
def test_coord_messages_verify_in_gptmes_inbox(db, surface):
    sends = [("alice", "bob", None, "to bob"), ("alice", None, None, "to all"),
             ("bob", "alice", "ops", "deploy at 5")]
    for sender, to, channel, body in sends:
        if surface == "sql":
            assert run_op(db.c, "coord_send", (sender, to, channel, body), "outcome")[0] == "sent"
        else:
            args = ["send", body] + (["--to", to] if to else []) + (["--channel", channel] if channel else [])
            assert cli(db, *args, agent=sender)["outcome"] == "sent"
    for agent, want in (("bob", {"to bob", "to all"}), ("alice", {"to all", "deploy at 5"})):
        got = db.bus.inbox(agent, secrets=KEYS)
        assert {m.body for m in got} == want
        assert all(m.verified is True for m in got), [(m.body, m.verified) for m in got]
    assert [m.body for m in db.bus.inbox("alice", channel="ops", secrets=KEYS)] == ["deploy at 5"]
    # a body changed after signing reads unverified in gptme, too
    db.c.execute("UPDATE messages SET body = 'to all, from alice (not)' WHERE body = 'to all'")
    assert [m.verified for m in db.bus.inbox("bob", secrets=KEYS) if m.body.startswith("to all")] == [False]
