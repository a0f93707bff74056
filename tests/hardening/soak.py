"""Soak: 8 processes (6 with a 10 s busy timeout, 2 with 5 ms so that busy
errors happen) claim, renew, complete, abandon and send on one WAL
database for a bounded time, then the logs and the database are checked:

- one holder per task at any time: each (task, epoch) granted exactly once;
  every renew/complete/abandon at an epoch is by that epoch's grantee; no
  such operation began after the next epoch's grant had committed;
- gapless epochs: each task's granted epochs are 1..n and the database
  holds epoch n;
- every message delivered once: each is in the database once with its
  body, and every recipient (or everyone, for a broadcast) read it exactly
  once; nothing that was not logged as sent is there;
- no busy error reported as success: a send that failed busy is not in the
  database, and no epoch exists without a logged grant;
- every row verifies.

usage: soak.py [seconds] (default 120)"""
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "extension"))
from common import connect  # noqa: E402

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 120
N = 8
violations = []


def fail(msg):
    if len(violations) < 50:
        print("VIOLATION:", msg, file=sys.stderr)
    violations.append(msg)


with tempfile.TemporaryDirectory() as d:
    d = pathlib.Path(d)
    db = d / "soak.db"
    conn = connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("SELECT coord_init()")
    keys = {f"agent-{i}": os.urandom(32).hex().encode() for i in range(N)}
    start = time.time()
    deadline = start + 2 + seconds  # 2 s for the workers to start
    procs = []
    for i, (a, k) in enumerate(keys.items()):
        timeout = 0.005 if i >= 6 else 10
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE / "soak_worker.py"), str(db), a, k.hex(), str(deadline), str(timeout),
             str(d / f"{a}.log"), str(d / f"{a}.done"), str(d / "drain"), str(i)]))
    while not all((d / f"{a}.done").exists() for a in keys) and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (d / "drain").touch()
    for i, p in enumerate(procs):
        if p.wait(timeout=120) != 0:
            fail(f"agent-{i} exited {p.returncode}")

    logs = {a: [json.loads(l) for l in (d / f"{a}.log").read_text().splitlines()] for a in keys}
    ops = collections.Counter(e["op"] for es in logs.values() for e in es)
    grants = collections.defaultdict(list)          # (task, epoch) -> [(agent, entry)]
    by_epoch = collections.defaultdict(list)        # (task, epoch) -> successful ops after grant
    for a, es in logs.items():
        for e in es:
            if e["op"] == "granted":
                grants[(e["task"], e["epoch"])].append((a, e))
            elif e["op"] in ("renewed", "completed", "abandoned"):
                by_epoch[(e["task"], e["epoch"])].append((a, e))
    for k, g in grants.items():
        if len(g) != 1:
            fail(f"{k} granted {len(g)} times: {[x[0] for x in g]}")
    for k, acts in by_epoch.items():
        if k not in grants:
            fail(f"{k}: {acts[0][1]['op']} at an epoch nobody was granted")
            continue
        holder = grants[k][0][0]
        nxt = grants.get((k[0], k[1] + 1))
        for a, e in acts:
            if a != holder:
                fail(f"{k}: {a} {e['op']} but {holder} holds it")
            if nxt and e["b"] > nxt[0][1]["a"]:
                fail(f"{k}: {a} {e['op']} began {e['b'] - nxt[0][1]['a']:.3f}s after epoch {k[1] + 1} "
                     f"was granted to {nxt[0][0]}: two holders")
    for k in keys:
        conn.execute("SELECT coord_key_add(?, ?)", (k, keys[k]))
    work = {r["task_id"]: r for r in conn.execute("SELECT * FROM coord_work")}
    for t, r in work.items():
        epochs = sorted(e for (task, e) in grants if task == t)
        if epochs != list(range(1, r["epoch"] + 1)):
            fail(f"{t}: granted epochs {epochs[:5]}... (n={len(epochs)}) but the task is at epoch {r['epoch']}")
        released = r["status"] == "abandoned" and r["claimer"] is None and r["hmac"] is None
        if r["verification"] != "verified" and not released:
            fail(f"{t}: {r['verification']}")

    msgs = {r["id"]: r for r in conn.execute("SELECT id, sender, recipient, body, verification FROM coord_messages")}
    sent = {}
    for a, es in logs.items():
        for e in es:
            if e["op"] == "send" and e["ok"]:
                sent[e["id"]] = e
    bodies = collections.Counter(m["body"] for m in msgs.values())
    failed_bodies = {e["body"] for es in logs.values() for e in es if e["op"] == "send" and not e["ok"]}
    for mid, m in msgs.items():
        if mid not in sent or sent[mid]["body"] != m["body"]:
            fail(f"message {mid} ({m['body']}) in the database but never logged as sent")
        if bodies[m["body"]] != 1:
            fail(f"message body {m['body']} stored {bodies[m['body']]} times")
        if m["body"] in failed_bodies:
            fail(f"message {m['body']} failed busy but was stored")
        if m["verification"] != "verified":
            fail(f"message {mid}: {m['verification']}")
    for mid in sent:
        if mid not in msgs:
            fail(f"sent message {mid} missing")
    deliveries = 0
    for a, es in logs.items():
        got = collections.Counter(e["id"] for e in es if e["op"] == "recv")
        want = {mid for mid, m in msgs.items() if m["recipient"] in (a, None)}
        dup = [mid for mid, c in got.items() if c > 1]
        if dup:
            fail(f"{a} read messages {dup[:5]} more than once")
        if set(got) != want:
            fail(f"{a}: missed {sorted(want - set(got))[:5]}, unexpected {sorted(set(got) - want)[:5]}")
        deliveries += sum(got.values())
    ic = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if ic != "ok":
        fail(f"integrity_check: {ic}")

    elapsed = time.time() - start
    total = sum(v for k, v in ops.items() if k != "recv")
    print(f"soak: {N} processes for {seconds:.0f}s ({elapsed:.0f}s in all): {total} operations, "
          f"{ops['recv']} inbox reads delivered", file=sys.stderr)
    for k in sorted(ops):
        print(f"soak: {k}: {ops[k]}")
    print(f"soak: tasks {len(work)}, highest epoch {max((r['epoch'] for r in work.values()), default=0)}, "
          f"messages {len(msgs)}, deliveries {deliveries}, violations {len(violations)}")
sys.exit(1 if violations else 0)
