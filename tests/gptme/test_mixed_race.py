"""coord agents racing gptme agents for the same tasks on one WAL file:
4 gptme-coordination processes (its own WorkClaimManager, signing with
its secret) against 4 coord processes (two through the extension's write
API, two through the `coord` command). First all race for 30 new tasks
and keep what they win; then 30 more tasks are churned, every grant
released at once by complete or abandon so the next claimer gets the next
epoch.

Asserted: one winner per (task, epoch), each new task won once at epoch 1,
per task the epochs are 1..n with no gap, no operation failed on either
side (a busy database is an error here, never an outcome), each surface
won, and every signed row left behind verifies in coord (`coord audit`)
and in gptme's HMAC code.
"""
import json
import multiprocessing
import random
import sqlite3
import subprocess
from pathlib import Path

from harness import COORD_BIN, KEYS, auth, connect_coord, gptme_manager, run_op, write_keys

HOLD = [f"hold:{i}" for i in range(30)]
TASKS = [f"race:{i}" for i in range(30)]
ROUNDS = 2
GPTME = ["gptme-0", "gptme-1", "gptme-2", "gptme-3"]
COORD_SQL = ["coord-sql-0", "coord-sql-1"]
COORD_CLI = ["coord-cli-0", "coord-cli-1"]
CTX = multiprocessing.get_context("fork")


class Gptme:
    """gptme-coordination's own WorkClaimManager, signing with its secret."""

    def __init__(self, db, agent):
        self.agent, self.work = agent, gptme_manager(db)

    def claim(self, task):
        c = self.work.claim(self.agent, task, ttl_minutes=60, secret=KEYS[self.agent])
        return ("granted", c.epoch) if c else ("denied", None)

    def release(self, task, epoch, complete):
        if complete:
            return self.work.complete(self.agent, task, result="done by gptme")
        return self.work.abandon(self.agent, task)


class CoordSql:
    """coord's write API in SQL, on a connection with the extension loaded."""

    def __init__(self, db, agent):
        self.agent, self.conn = agent, connect_coord(db)

    def claim(self, task):
        return tuple(run_op(self.conn, "coord_claim", (task, self.agent, 60)))

    def release(self, task, epoch, complete):
        if complete:
            r = run_op(self.conn, "coord_complete", (task, self.agent, epoch, "done by coord"))
            return r[0] == "completed"
        return run_op(self.conn, "coord_abandon", (task, self.agent, epoch))[0] == "abandoned"


class CoordCli:
    """The `coord` command, one process per operation."""

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

    def release(self, task, epoch, complete):
        return self.run("complete" if complete else "abandon", task, "--epoch", str(epoch))["ok"]


def worker(surface, db, agent, seed, start, out):
    """Phase 1: try every `hold:` task once and keep what it wins (contested
    first claims). Phase 2: ROUNDS passes over the `race:` tasks, releasing
    each grant at once (complete or abandon, at random) so epochs climb."""
    wins, errors = [], []
    try:
        s = surface(db, agent)
        rng = random.Random(seed)
        start.wait()
        for task in rng.sample(HOLD, len(HOLD)):
            outcome, epoch = s.claim(task)
            if outcome == "granted":
                wins.append((task, epoch, agent))
            elif outcome != "denied":
                errors.append(f"{agent}: claim {task}: {outcome}")
        for _ in range(ROUNDS):
            for task in rng.sample(TASKS, len(TASKS)):
                outcome, epoch = s.claim(task)
                if outcome == "denied":
                    continue
                if outcome != "granted":
                    errors.append(f"{agent}: claim {task}: {outcome}")
                    continue
                wins.append((task, epoch, agent))
                if not s.release(task, epoch, rng.random() < 0.5):
                    errors.append(f"{agent}: lost its fresh claim on {task}@{epoch}")
    except Exception as e:  # any exception fails the race, and is reported
        errors.append(f"{agent}: {type(e).__name__}: {e}")
    out.put((wins, errors))


def test_four_coord_agents_race_four_gptme_agents(tmp_path, monkeypatch):
    secrets = write_keys(tmp_path / "secrets")
    monkeypatch.setenv("COORDINATION_SECRETS_DIR", str(secrets))
    db = tmp_path / "race.db"
    gptme_manager(db).db.close()  # gptme creates the file and WAL mode, as it would
    setup = connect_coord(db)
    setup.execute("SELECT coord_init()")
    assert setup.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    setup.close()

    start, out = CTX.Event(), CTX.Queue()
    workers = [(Gptme, a) for a in GPTME] + [(CoordSql, a) for a in COORD_SQL] \
        + [(CoordCli, a) for a in COORD_CLI]
    procs = [CTX.Process(target=worker, args=(f, db, a, 1000 + i, start, out))
             for i, (f, a) in enumerate(workers)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    errors = [e for _, errs in results for e in errs]
    wins = [w for ws, _ in results for w in ws]
    assert errors == []
    pairs = [(t, e) for t, e, _ in wins]
    assert len(pairs) == len(set(pairs)), "two winners for one (task, epoch)"
    by_task = {}
    for t, e, _ in wins:
        by_task.setdefault(t, []).append(e)
    assert sorted(by_task) == sorted(HOLD + TASKS), "every task was won at least once"
    for t in HOLD:
        assert by_task[t] == [1], f"{t}: one winner of the first claim, at epoch 1"
    for t, epochs in by_task.items():
        assert sorted(epochs) == list(range(1, len(epochs) + 1)), f"{t}: epochs {sorted(epochs)}"
    winners = {a for _, _, a in wins}
    print(f"{len(wins)} grants; by agent:", {a: sum(1 for w in wins if w[2] == a) for a in sorted(winners)})
    assert winners & set(GPTME) and winners & set(COORD_SQL) and winners & set(COORD_CLI), winners

    # the file as both sides leave it
    check = sqlite3.connect(db)
    rows = check.execute("SELECT task_id, claimer, epoch, expires_at, hmac, status FROM work").fetchall()
    assert {r[0]: r[2] for r in rows} == {t: len(e) for t, e in by_task.items()}
    signed = [r for r in rows if r[4] is not None]
    assert len(signed) > len(HOLD), "held and completed rows keep their MAC"
    for task, claimer, epoch, expires, mac, status in signed:
        assert status == ("claimed" if task in HOLD else "completed"), task
        assert auth.verify_hmac(KEYS[claimer], mac, claimer, task, epoch, expires), task
    audit = subprocess.run([COORD_BIN, "--db", str(db), "--json", "audit"],
                           capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    assert report["work"]["verified"] == len(signed), report
