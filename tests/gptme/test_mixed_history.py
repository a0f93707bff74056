"""Signed history (issue 12, docs/history.md) on one file shared by a mixed
fleet: gptme-coordination agents (its own Python API, unmodified) beside
coord agents (the extension's write API and the `coord` command).

Asserted, on the same file:
- every row gptme writes reads history 'no_history' and verifies as before;
  every row coord writes last reads 'matches';
- `coord --json list all`, `inbox --all` and `audit` agree with the views;
- `coord audit --json` exits 0 with no history problem while nobody
  rewrites a row coord wrote;
- gptme's own code reads every row coord wrote (its HMAC check passes, its
  claims are honoured) and none of its writes fails;
- a task that coord claimed and gptme then completed reads 'changed', and
  audit names it and exits 1;
- 4 coord agents racing 4 gptme agents (processes) for a few seconds leave
  a gapless, verifying log with exactly one event per coord write, and each
  task's history follows from who wrote it last.
"""
import json
import multiprocessing
import os
import random
import sqlite3
import subprocess
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from harness import COORD_BIN, KEYS, MessageBus, auth, connect_coord, gptme_manager, run_op, write_keys

CTX = multiprocessing.get_context("fork")


def make_db(tmp_path, monkeypatch, name="fleet.db"):
    """A file made by gptme (as its agents make it), then coord_init; keys in
    a secrets dir, the audit's witness in a temp XDG_STATE_HOME."""
    for k in list(os.environ):
        if k.startswith("COORDINATION_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("COORDINATION_SECRETS_DIR", str(write_keys(tmp_path / "secrets")))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    g = gptme_manager(path)
    c = connect_coord(path)
    c.execute("SELECT coord_init()")
    c.row_factory = sqlite3.Row
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    return SimpleNamespace(path=path, g=g, bus=MessageBus(g.db), c=c)


@pytest.fixture
def db(tmp_path, monkeypatch):
    return make_db(tmp_path, monkeypatch)


def run_cli(path, *args, agent=None):
    """`coord --json ...`: (exit code, parsed stdout). Exit 0 or 1 only, and
    nothing on stderr."""
    cmd = [COORD_BIN, "--db", str(path), "--json", *(["--as", agent] if agent else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1) and not done.stderr, (cmd, done.returncode, done.stderr)
    return done.returncode, json.loads(done.stdout)


def cli(path, *args, agent=None):
    return run_cli(path, *args, agent=agent)[1]


# whether this build's `list` and `inbox` JSON carry "history" (the lead's
# change); when they do, it must equal the view's
CLI_HISTORY = {}


def read_all(d):
    """The file as coord reads it, checked for agreement between the views,
    `coord list all`, `coord inbox --all` and `coord audit`. Returns
    (tasks by id, messages by id, audit exit code, audit report)."""
    d.c.row_factory = sqlite3.Row
    work = {r["task_id"]: dict(r) for r in d.c.execute("SELECT * FROM coord_work")}
    msgs = {r["id"]: dict(r) for r in d.c.execute("SELECT * FROM coord_messages")}

    listed = {r["task_id"]: r for r in cli(d.path, "list", "all")}
    assert set(listed) == set(work)
    has = {"history" in r for r in listed.values()}
    assert len(has) <= 1, "some rows of `coord list` carry history, some do not"
    CLI_HISTORY["list"] = has.pop() if has else CLI_HISTORY.get("list")
    for t, v in work.items():
        for k in ("claimer", "epoch", "claimed_at", "expires_at", "status", "state", "result",
                  "completed_at", "verification", "verified"):
            assert listed[t][k] == v[k], (t, k, listed[t], v)
        if "history" in listed[t]:
            assert listed[t]["history"] == v["history"], (t, listed[t], v)

    inbox = {m["id"]: m for m in cli(d.path, "inbox", "--all")}
    assert set(inbox) == set(msgs)
    has = {"history" in m for m in inbox.values()}
    assert len(has) <= 1, "some rows of `coord inbox` carry history, some do not"
    CLI_HISTORY["inbox"] = has.pop() if has else CLI_HISTORY.get("inbox")
    assert None in CLI_HISTORY.values() or CLI_HISTORY["list"] == CLI_HISTORY["inbox"], CLI_HISTORY
    for i, v in msgs.items():
        for k in ("sender", "recipient", "channel", "body", "created_at", "verification", "verified"):
            assert inbox[i][k] == v[k], (i, k, inbox[i], v)
        if "history" in inbox[i]:
            assert inbox[i]["history"] == v["history"], (i, inbox[i], v)

    rc, report = run_cli(d.path, "audit")
    h = report["history"]
    events = d.c.execute("SELECT count(*) FROM coord_events").fetchone()[0]
    assert h["events"] == events
    assert h["work_history"] == dict(Counter(v["history"] for v in work.values()))
    assert h["message_history"] == dict(Counter(v["history"] for v in msgs.values()))
    assert report["work"]["verified"] == sum(v["verification"] == "verified" for v in work.values())
    assert report["messages"]["verified"] == sum(v["verification"] == "verified" for v in msgs.values())
    assert report["findings"] == [] and report["witness"] == []
    assert rc == (0 if report["ok"] else 1)
    assert report["ok"] == (h["problems"] == [])
    return work, msgs, rc, report


def log(d):
    d.c.row_factory = sqlite3.Row
    return [dict(r) for r in d.c.execute("SELECT * FROM coord_log ORDER BY seq")]


def assert_log_sound(d):
    """seq 1..n with no gap, every event verifies, its chain and actor ok."""
    events = log(d)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    bad = [(e["seq"], e["op"], e["subject"], e["agent"], e["verification"], e["chain"], e["actor"])
           for e in events if (e["verification"], e["chain"], e["actor"]) != ("verified", "ok", "ok")]
    assert bad == []
    return events


def gptme_reads_everything(d):
    """gptme's own code on every row: each signed claim verifies with its
    HMAC check, and each signed message reads verified in its inbox."""
    raw = sqlite3.connect(str(d.path))
    rows = raw.execute("SELECT task_id, claimer, epoch, expires_at, hmac FROM work").fetchall()
    for task, claimer, epoch, expires, mac in rows:
        if mac is not None:
            assert auth.verify_hmac(KEYS[claimer], mac, claimer, task, epoch, expires), task
        assert d.g.get(task).epoch == epoch
    signed = {mid for mid, mac in raw.execute("SELECT id, hmac FROM messages") if mac is not None}
    recipients = {r for (r,) in raw.execute("SELECT DISTINCT recipient FROM messages")} - {None}
    raw.close()
    seen = {}
    for agent in recipients | {"nobody-in-particular"}:
        for m in d.bus.inbox(agent, secrets=KEYS):
            seen[m.id] = m.verified
    assert {i for i, ok in seen.items() if ok} == signed
    return len(rows), len(signed)


# --- interleaved, one operation at a time -----------------------------------

def test_interleaved_fleet_history(db):
    g, bus, c, p = db.g, db.bus, db.c, db.path
    sql = lambda view, args, cols="outcome, epoch": tuple(run_op(c, view, args, cols))  # noqa: E731

    # gptme claims, coord claims through SQL and the CLI, gptme sends
    assert g.claim("gptme-0", "g1", ttl_minutes=30, secret=KEYS["gptme-0"]).epoch == 1
    assert sql("coord_claim", ("c1", "coord-sql-0", 30)) == ("granted", 1)
    assert cli(p, "claim", "c2", "--ttl", "30", agent="coord-cli-0")["outcome"] == "granted"
    bus.send("gptme-1", "hello coord", recipient="coord-sql-0", secret=KEYS["gptme-1"])
    # coord renews through both surfaces; gptme renews its own
    assert sql("coord_claim", ("c1", "coord-sql-0", 90)) == ("renewed", 1)
    assert cli(p, "claim", "c2", "--ttl", "90", agent="coord-cli-0")["outcome"] == "renewed"
    assert g.claim("gptme-0", "g1", ttl_minutes=90, secret=KEYS["gptme-0"]).epoch == 1
    # gptme honours coord's live claims (and writes nothing)
    assert g.claim("gptme-1", "c1", secret=KEYS["gptme-1"]) is None
    assert g.claim("gptme-2", "c2", secret=KEYS["gptme-2"]) is None
    assert {w.task_id for w in g.list_claimed()} == {"g1", "c1", "c2"}
    # coord sends through both surfaces; gptme sends signed and unsigned
    assert cli(p, "send", "to everyone from the cli", agent="coord-cli-1")["outcome"] == "sent"
    assert sql("coord_send", ("coord-sql-1", "gptme-0", "ops", "deploy at 5"), "outcome") == ("sent",)
    bus.send("gptme-2", "broadcast from gptme", secret=KEYS["gptme-2"])
    bus.send("gptme-3", "legacy unsigned", recipient="coord-cli-0")
    # gptme completes its own; coord completes and abandons its own
    assert g.complete("gptme-0", "g1", result="gptme did it")
    assert sql("coord_complete", ("c1", "coord-sql-0", 1, "coord did it"), "outcome") == ("completed",)
    assert cli(p, "abandon", "c2", "--epoch", "1", agent="coord-cli-0")["ok"]
    # gptme's own tasks: one held, one completed, one abandoned (unsigned)
    assert g.claim("gptme-1", "g2", secret=KEYS["gptme-1"]).epoch == 1
    assert g.claim("gptme-2", "g3", secret=KEYS["gptme-2"]).epoch == 1
    assert g.complete("gptme-2", "g3")
    assert g.claim("gptme-3", "g4", secret=KEYS["gptme-3"]).epoch == 1
    assert g.abandon("gptme-3", "g4", reason="blocked")
    # submits from both sides; coord takes over gptme-written tasks
    assert g.submit("s1", metadata="from gptme").status == "available"
    assert cli(p, "submit", "s2", agent="coord-cli-1")["outcome"] == "submitted"
    assert sql("coord_claim", ("s1", "coord-sql-1", 60)) == ("granted", 1)
    assert cli(p, "claim", "g1", agent="coord-cli-1")["outcome"] == "granted"  # gptme completed it
    assert sql("coord_claim", ("c2", "coord-sql-1", 60)) == ("granted", 2)  # coord abandoned it
    assert sql("coord_complete", ("c2", "coord-sql-1", 2, None), "outcome") == ("completed",)
    assert cli(p, "claim", "s2", agent="coord-cli-0")["outcome"] == "granted"
    assert g.claim("gptme-3", "s2", secret=KEYS["gptme-3"]) is None  # honoured again
    assert g.claim("gptme-3", "g1", secret=KEYS["gptme-3"]) is None

    work, msgs, rc, report = read_all(db)
    # (status, claimer, epoch, verification, history): coord last => matches,
    # gptme only => no_history with gptme's own verification
    want = {
        "c1": ("completed", "coord-sql-0", 1, "verified", "matches"),
        "c2": ("completed", "coord-sql-1", 2, "verified", "matches"),
        "g1": ("claimed", "coord-cli-1", 2, "verified", "matches"),
        "s1": ("claimed", "coord-sql-1", 1, "verified", "matches"),
        "s2": ("claimed", "coord-cli-0", 1, "verified", "matches"),
        "g2": ("claimed", "gptme-1", 1, "verified", "no_history"),
        "g3": ("completed", "gptme-2", 1, "verified", "no_history"),
        "g4": ("abandoned", None, 1, "unsigned", "no_history"),
    }
    assert {t: (v["status"], v["claimer"], v["epoch"], v["verification"], v["history"])
            for t, v in work.items()} == want
    got = {m["body"]: (m["sender"], m["verification"], m["history"]) for m in msgs.values()}
    assert got == {
        "hello coord": ("gptme-1", "verified", "no_history"),
        "to everyone from the cli": ("coord-cli-1", "verified", "matches"),
        "deploy at 5": ("coord-sql-1", "verified", "matches"),
        "broadcast from gptme": ("gptme-2", "verified", "no_history"),
        "legacy unsigned": ("gptme-3", "unsigned", "no_history"),
    }
    # one event per coord write, in order, all sound
    events = assert_log_sound(db)
    assert [(e["op"], e["subject"], e["agent"]) for e in events] == [
        ("claim", "c1", "coord-sql-0"), ("claim", "c2", "coord-cli-0"),
        ("renew", "c1", "coord-sql-0"), ("renew", "c2", "coord-cli-0"),
        ("send", str(next(i for i, m in msgs.items() if m["body"] == "to everyone from the cli")),
         "coord-cli-1"),
        ("send", str(next(i for i, m in msgs.items() if m["body"] == "deploy at 5")), "coord-sql-1"),
        ("complete", "c1", "coord-sql-0"), ("abandon", "c2", "coord-cli-0"),
        ("submit", "s2", "coord-cli-1"), ("claim", "s1", "coord-sql-1"),
        ("claim", "g1", "coord-cli-1"), ("claim", "c2", "coord-sql-1"),
        ("complete", "c2", "coord-sql-1"), ("claim", "s2", "coord-cli-0"),
    ]
    assert (rc, report["ok"], report["history"]["problems"]) == (0, True, [])
    print("coord list/inbox JSON carry history:", CLI_HISTORY)
    # a second audit (the witness now has a memory of this log) agrees
    assert run_cli(p, "audit")[0] == 0
    # gptme reads every row, coord's included
    assert gptme_reads_everything(db) == (8, 4)
    w = g.get("c1")
    assert (w.status, w.result, w.claimer, w.epoch) == ("completed", "coord did it", "coord-sql-0", 1)
    assert [m.body for m in bus.inbox("gptme-0", channel="ops", secrets=KEYS)] == ["deploy at 5"]


# --- changed outside history -------------------------------------------------

def test_a_coord_claim_completed_through_gptme_reads_changed(db):
    g, c, p = db.g, db.c, db.path
    assert cli(p, "claim", "t", "--ttl", "30", agent="alice")["outcome"] == "granted"
    assert tuple(run_op(c, "coord_claim", ("other", "bob", 30))) == ("granted", 1)
    work, _, rc, report = read_all(db)
    assert (work["t"]["history"], rc) == ("matches", 0)
    claim_seq = next(e["seq"] for e in log(db) if e["subject"] == "t")

    # alice's gptme agent completes the claim her coord agent made
    assert g.complete("alice", "t", result="done in gptme")
    work, _, rc, report = read_all(db)
    t = work["t"]
    # the four signed fields are still alice's: gptme and coord verify them;
    # history says the row is not what its last signed event made it
    assert (t["status"], t["result"], t["verification"], t["history"]) == \
        ("completed", "done in gptme", "verified", "changed")
    assert work["other"]["history"] == "matches"
    assert {e["seq"]: e["row"] for e in log(db)}[claim_seq] == "changed"
    assert rc == 1 and report["ok"] is False
    assert report["history"]["problems"] == [{
        "problem": "changed", "seq": claim_seq,
        "detail": f"event {claim_seq} (claim of t by alice): the row now differs from this, "
                  "its last event (changed outside history)"}]
    assert report["history"]["work_history"] == {"changed": 1, "matches": 1}
    # gptme still reads it as its own completion
    assert gptme_reads_everything(db) == (2, 0)
    assert g.get("t").status == "completed"
    # the human audit names the task too, and exits 1
    done = subprocess.run([COORD_BIN, "--db", str(p), "audit"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 1 and "claim of t by alice" in done.stdout, done.stdout


def test_a_coord_abandon_reclaimed_by_gptme_reads_changed(db):
    g, c = db.g, db.c
    assert tuple(run_op(c, "coord_claim", ("u", "coord-sql-0", 30))) == ("granted", 1)
    assert run_op(c, "coord_abandon", ("u", "coord-sql-0", 1))[0] == "abandoned"
    assert g.claim("gptme-0", "u", secret=KEYS["gptme-0"]).epoch == 2
    work, _, rc, report = read_all(db)
    assert (work["u"]["verification"], work["u"]["history"], work["u"]["claimer"]) == \
        ("verified", "changed", "gptme-0")
    assert rc == 1
    assert [(x["problem"], x["seq"]) for x in report["history"]["problems"]] == [("changed", 2)]
    assert "(abandon of u by coord-sql-0)" in report["history"]["problems"][0]["detail"]
    # coord writes it again after gptme lets go: matches again, audit clean
    assert g.complete("gptme-0", "u")
    assert tuple(run_op(c, "coord_claim", ("u", "coord-sql-1", 30))) == ("granted", 3)
    work, _, rc, report = read_all(db)
    assert (work["u"]["history"], rc, report["history"]["problems"]) == ("matches", 0, [])
    assert_log_sound(db)


# --- the mixed race ------------------------------------------------------------

TASKS = [f"race:{i}" for i in range(8)]
GPTME_ONLY = ["gptme-only:0", "gptme-only:1"]  # raced for by gptme agents only
FINAL = [f"final:{i}" for i in range(4)]  # claimed by everyone at the end, and kept
DURATION = 5.0  # seconds of racing
GPTME = ["gptme-0", "gptme-1", "gptme-2", "gptme-3"]
COORD_SQL = ["coord-sql-0", "coord-sql-1"]
COORD_CLI = ["coord-cli-0", "coord-cli-1"]
COORD = COORD_SQL + COORD_CLI


class Gptme:
    def __init__(self, db, agent):
        self.agent, self.work = agent, gptme_manager(db)
        self.bus = MessageBus(self.work.db)

    def claim(self, task):
        c = self.work.claim(self.agent, task, ttl_minutes=60, secret=KEYS[self.agent])
        return ("granted", c.epoch) if c else ("denied", None)

    def renew(self, task, epoch):
        c = self.work.claim(self.agent, task, ttl_minutes=90, secret=KEYS[self.agent])
        return c is not None and c.epoch == epoch

    def release(self, task, epoch, complete):
        if complete:
            return self.work.complete(self.agent, task, result=f"{self.agent} done")
        return self.work.abandon(self.agent, task)

    def send(self, body, to):
        return self.bus.send(self.agent, body, recipient=to, secret=KEYS[self.agent]).id is not None


class CoordSql:
    def __init__(self, db, agent):
        self.agent, self.conn = agent, connect_coord(db)

    def claim(self, task):
        return tuple(run_op(self.conn, "coord_claim", (task, self.agent, 60)))

    def renew(self, task, epoch):
        return tuple(run_op(self.conn, "coord_claim", (task, self.agent, 90))) == ("renewed", epoch)

    def release(self, task, epoch, complete):
        if complete:
            r = run_op(self.conn, "coord_complete", (task, self.agent, epoch, f"{self.agent} done"))
            return r[0] == "completed"
        return run_op(self.conn, "coord_abandon", (task, self.agent, epoch))[0] == "abandoned"

    def send(self, body, to):
        return run_op(self.conn, "coord_send", (self.agent, to, None, body), "outcome")[0] == "sent"


class CoordCli:
    def __init__(self, db, agent):
        self.db, self.agent = db, agent

    def run(self, *args):
        done = subprocess.run([COORD_BIN, "--db", str(self.db), "--as", self.agent, "--json", *args],
                              capture_output=True, text=True, timeout=60)
        if done.returncode not in (0, 1) or done.stderr:
            raise RuntimeError(f"coord {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return json.loads(done.stdout)

    def claim(self, task):
        r = self.run("claim", task, "--ttl", "60")
        return r["outcome"], r["epoch"]

    def renew(self, task, epoch):
        r = self.run("claim", task, "--ttl", "90")
        return (r["outcome"], r["epoch"]) == ("renewed", epoch)

    def release(self, task, epoch, complete):
        if complete:
            return self.run("complete", task, "--epoch", str(epoch), "--result", f"{self.agent} done")["ok"]
        return self.run("abandon", task, "--epoch", str(epoch))["ok"]

    def send(self, body, to):
        return self.run("send", body, *(["--to", to] if to else []))["outcome"] == "sent"


def racer(surface, db, agent, seed, start, finals, out):
    """Until the deadline: claim a random task; on a grant, maybe renew, then
    complete or abandon it; now and then send a message. Then, all together
    (a barrier), try every FINAL task once and keep what it wins. Every
    write that succeeded is counted by op; any failed write or exception is
    an error."""
    wins, sent, errors, ops = [], [], [], Counter()
    try:
        s = surface(db, agent)
        rng = random.Random(seed)
        start.wait()
        deadline = time.monotonic() + DURATION
        n = 0
        while time.monotonic() < deadline:
            # a pause between operations, so that no writer in a tight loop
            # starves the others (SQLite's busy handler backs off unfairly)
            time.sleep(rng.uniform(0.002, 0.02))
            n += 1
            if rng.random() < 0.15:
                body = f"{agent} #{n}"
                to = rng.choice([None] + GPTME + COORD)
                if s.send(body, to):
                    sent.append(body)
                    ops["send"] += 1
                else:
                    errors.append(f"{agent}: send failed")
                continue
            task = rng.choice(TASKS + (GPTME_ONLY if agent in GPTME else []))
            outcome, epoch = s.claim(task)
            if outcome == "denied":
                continue
            if outcome != "granted":
                errors.append(f"{agent}: claim {task}: {outcome}")
                continue
            ops["claim"] += 1
            wins.append((task, epoch, agent))
            if rng.random() < 0.3:
                if not s.renew(task, epoch):
                    errors.append(f"{agent}: could not renew {task}@{epoch}")
                    continue
                ops["renew"] += 1
            complete = rng.random() < 0.5
            if not s.release(task, epoch, complete):
                errors.append(f"{agent}: lost its fresh claim on {task}@{epoch}")
                continue
            ops["complete" if complete else "abandon"] += 1
        finals.wait(timeout=120)
        for task in rng.sample(FINAL, len(FINAL)):
            time.sleep(rng.uniform(0.002, 0.05))
            outcome, epoch = s.claim(task)
            if outcome == "granted":
                ops["claim"] += 1
                wins.append((task, epoch, agent))
            elif outcome != "denied":
                errors.append(f"{agent}: claim {task}: {outcome}")
    except Exception as e:  # any exception fails the race, and is reported
        errors.append(f"{agent}: {type(e).__name__}: {e}")
        finals.abort()  # nobody waits for a racer that is gone
    out.put((agent, wins, sent, errors, dict(ops)))


def test_four_coord_agents_race_four_gptme_agents_with_history(tmp_path, monkeypatch):
    d = make_db(tmp_path, monkeypatch, "race.db")
    d.g.db.close()
    workers = [(Gptme, a) for a in GPTME] + [(CoordSql, a) for a in COORD_SQL] \
        + [(CoordCli, a) for a in COORD_CLI]
    start, finals, out = CTX.Event(), CTX.Barrier(len(workers)), CTX.Queue()
    procs = [CTX.Process(target=racer, args=(f, d.path, a, 2000 + i, start, finals, out))
             for i, (f, a) in enumerate(workers)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    errors = [e for *_, errs, _ in results for e in errs]
    assert errors == [], errors
    wins = [w for _, ws, *_ in results for w in ws]
    ops = {agent: Counter(o) for agent, *_, o in results}
    sent = {body: agent for agent, _, bodies, *_ in results for body in bodies}
    print(f"{len(wins)} grants, {len(sent)} messages; ops by agent:",
          {a: dict(o) for a, o in sorted(ops.items())})
    assert len({(t, e) for t, e, _ in wins}) == len(wins), "two winners for one (task, epoch)"
    by_task = {}
    for t, e, a in wins:
        by_task.setdefault(t, {})[e] = a
    for t, epochs in by_task.items():
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), (t, sorted(epochs))
    for t in FINAL:
        assert list(by_task[t]) == [1], f"{t}: one winner of the first claim"
    # both sides won, and both sides sent
    winners = {a for *_, a in wins}
    assert winners & set(GPTME) and winners & set(COORD_SQL) and winners & set(COORD_CLI), winners
    assert set(sent.values()) & set(GPTME) and set(sent.values()) & set(COORD)

    # the log: gapless, every event verifies, chain and actor ok, and exactly
    # one event per coord write (by agent and op), none for gptme's
    events = assert_log_sound(d)
    assert Counter((e["agent"], e["op"]) for e in events) == \
        Counter({(a, op): n for a in COORD for op, n in ops[a].items()})

    # who wrote each task last: the winner of its highest epoch (nobody else
    # can write it until that winner lets go, and the next grant is a higher
    # epoch); coord last => matches; gptme last => changed if coord ever
    # wrote it, else no_history
    want = {}
    for t, epochs in by_task.items():
        last = epochs[max(epochs)]
        if last in COORD:
            want[t] = "matches"
        else:
            want[t] = "changed" if set(epochs.values()) & set(COORD) else "no_history"
    work, msgs, rc, report = read_all(d)
    assert {t: v["history"] for t, v in work.items()} == want
    assert {t: v["epoch"] for t, v in work.items()} == {t: max(e) for t, e in by_task.items()}
    for t in GPTME_ONLY:
        assert want[t] == "no_history", (t, by_task[t])
    for t, v in work.items():
        if t in FINAL:  # held by its one winner, signed
            assert (v["status"], v["claimer"], v["verification"]) == \
                ("claimed", by_task[t][1], "verified"), (t, v)
            continue
        # a released row: completed keeps its signed holder, abandoned has none
        assert v["verification"] == ("verified" if v["status"] == "completed" else "unsigned"), (t, v)
        assert v["status"] in ("completed", "abandoned"), (t, v)
    assert {m["body"]: m["history"] for m in msgs.values()} == \
        {b: "matches" if a in COORD else "no_history" for b, a in sent.items()}
    assert {m["verification"] for m in msgs.values()} == {"verified"}

    # audit: a problem for exactly each task gptme rewrote after coord, the
    # last coord event of that task named; exit 1 if any, else 0
    changed = {t for t, h in want.items() if h == "changed"}
    last_event = {}
    for e in events:
        last_event[e["subject"]] = e["seq"]
    assert sorted((p["problem"], p["seq"]) for p in report["history"]["problems"]) == \
        sorted(("changed", last_event[t]) for t in changed)
    for p in report["history"]["problems"]:
        subject = next(e["subject"] for e in events if e["seq"] == p["seq"])
        assert f" of {subject} by " in p["detail"], p
    assert rc == (1 if changed else 0)
    print("history:", dict(Counter(want.values())), "audit exit", rc)

    # gptme reads every row and message coord wrote
    d.g = gptme_manager(d.path)
    d.bus = MessageBus(d.g.db)
    assert gptme_reads_everything(d)[1] == len(sent)
    # and honours the claims held at the end, coord's and its own
    assert {(w.task_id, w.claimer) for w in d.g.list_claimed()} == {(t, by_task[t][1]) for t in FINAL}
    for t in FINAL:
        other = next(a for a in GPTME if a != by_task[t][1])
        assert d.g.claim(other, t, secret=KEYS[other]) is None, t
    print("final holders:", {t: by_task[t][1] for t in FINAL})
