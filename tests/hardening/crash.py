"""Crash loop: writers killed with SIGKILL at random points of claims and
sends, in WAL and in rollback-journal (DELETE) mode, synchronous=FULL.
After every kill the database is reopened (recovering any hot journal or
WAL) and checked:

- PRAGMA integrity_check is ok;
- every claim and message row is fully there with a valid MAC (every
  writer holds its key, so every row it writes is signed);
- no task's epoch went down since the last check;
- every grant a writer logged after COMMIT is reflected (the task's epoch
  is at least the logged one), and a logged completion or abandonment at
  the task's current epoch is still there; every logged message is there,
  once, with its body.

usage: crash.py [iterations]   (split between WAL and DELETE)
Prints the figures; exits 1 on any violated invariant."""
import collections
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "extension"))
from common import connect  # noqa: E402

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
rng = random.Random(int(os.environ.get("COORD_CRASH_SEED", time.time_ns())))
violations = []
stats = collections.Counter()


def fail(msg):
    violations.append(msg)
    print("VIOLATION:", msg, file=sys.stderr)


def check(db, keys, logs, max_epoch, mode, final=False):
    conn = connect(db)
    for agent, key in keys.items():
        conn.execute("SELECT coord_key_add(?, ?)", (agent, key))
    ic = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if ic != "ok":
        fail(f"{mode}: integrity_check: {ic}")
    for view, kind in (("coord_work", "claim"), ("coord_messages", "message")):
        # an abandoned task carries no holder and no MAC (gptme's row)
        released = " AND NOT (status = 'abandoned' AND claimer IS NULL AND hmac IS NULL)" \
            if view == "coord_work" else ""
        for r in conn.execute(f"SELECT * FROM {view} WHERE verification <> 'verified'{released}"):
            fail(f"{mode}: {kind} row without a valid MAC: {dict(r)}")
    work = {r["task_id"]: r for r in conn.execute("SELECT * FROM work")}
    for t, r in work.items():
        if r["epoch"] < max_epoch.get(t, 0):
            fail(f"{mode}: {t} epoch went down {max_epoch[t]} -> {r['epoch']}")
        max_epoch[t] = r["epoch"]
    msgs = {r["id"]: r for r in conn.execute("SELECT id, body FROM messages")}
    bodies = collections.Counter(r["body"] for r in msgs.values())
    for path in logs:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                fail(f"{mode}: torn log line {line!r} (the log is fsync'd line by line)")
                continue
            if final:
                stats["logged after COMMIT: " + e["op"]] += 1
            if e["op"] == "send":
                m = msgs.get(e["id"])
                if m is None or m["body"] != e["body"] or bodies[e["body"]] != 1:
                    fail(f"{mode}: logged message {e} lost or duplicated")
            elif e["op"] in ("granted", "renewed", "completed", "abandoned"):
                w = work.get(e["task"])
                if w is None or w["epoch"] < e["epoch"]:
                    fail(f"{mode}: logged {e} lost (db: {dict(w) if w else None})")
                elif e["op"] in ("completed", "abandoned") and w["epoch"] == e["epoch"] \
                        and w["status"] != e["op"]:
                    fail(f"{mode}: logged {e} but the task is {w['status']} at that epoch")
    stats["row checks"] += len(work) + len(msgs)
    conn.close()


def run(mode, n):
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        db = d / "crash.db"
        conn = connect(db)
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.execute("SELECT coord_init()")
        conn.close()
        keys = {f"agent-{i}": os.urandom(32).hex().encode() for i in range(2)}
        logs = [d / f"agent-{i}.log" for i in range(2)]
        max_epoch = {}
        for it in range(n):
            procs = [subprocess.Popen(
                [sys.executable, str(HERE / "crash_worker.py"), str(db), a, k.hex(), str(logs[i]),
                 mode, str(rng.randrange(1 << 30))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i, (a, k) in enumerate(keys.items())]
            for p in procs:
                line = p.stdout.readline()
                if line.strip() != "ready":
                    fail(f"{mode}: worker did not start: {line!r} {p.stderr.read()[-500:]}")
            time.sleep(rng.uniform(0.0, 0.15))
            # kill one or both, the second a little later
            victims = procs if rng.random() < 0.5 else [rng.choice(procs)]
            for p in victims:
                p.send_signal(signal.SIGKILL)
                stats["kills"] += 1
                time.sleep(rng.uniform(0, 0.01))
            for p in procs:
                if p not in victims:
                    p.send_signal(signal.SIGKILL)
                    stats["kills"] += 1
            for p in procs:
                p.wait()
                err = p.stderr.read()
                if p.returncode != -signal.SIGKILL:
                    fail(f"{mode}: worker exited {p.returncode} before the kill: {err[-800:]}")
            hot = d / "crash.db-journal"
            if mode == "delete" and hot.exists() and hot.stat().st_size > 0:
                stats["delete: kills mid-transaction (hot journal rolled back)"] += 1
            check(db, keys, logs, max_epoch, mode, final=(it == n - 1))
            stats[f"{mode} iterations"] += 1
        stats[f"{mode}: final max epoch"] = max(max_epoch.values(), default=0)


start = time.time()
run("wal", (iterations + 1) // 2)
run("delete", iterations // 2)
for k in sorted(stats):
    print(f"crash: {k}: {stats[k]}")
print(f"crash: {iterations} iterations in {time.time() - start:.0f}s, {len(violations)} violations")
sys.exit(1 if violations else 0)
