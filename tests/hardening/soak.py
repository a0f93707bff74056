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
- every row verifies;
- a full replay of the signed event log (docs/history.md) through the
  coord_log view: seq gapless 1..n; every event verified, chain ok, actor
  ok; every task and message row has history 'matches' and the last event
  of each subject reads row 'matches'; the number of events equals the
  successful operations the workers logged (grants, renews, completes,
  abandons, sends, submits and resubmits), and each agent's events in seq
  order are exactly its successful operations in the order it made them,
  so a busy or failed operation left no event (and a failed send's body is
  in no event); the log's order agrees with real time (no event is ordered
  before one that committed before it began) and its clock never goes
  backwards;
- `coord --db FILE --json audit` exits 0 with no finding, no history or
  witness problem, and the view's event count, origin and head.
Prints the event count and how long the replay and the audit took.

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
from common import REPO, connect, write_key  # noqa: E402

COORD = os.environ.get("COORD_BIN", str(REPO / "crates" / "coord-cli" / "target" / "release" / "coord"))
# a successful outcome -> the op of its event; every other outcome (denied,
# lost_lease, exists, busy, ...) must leave none
EVENT_OP = {"granted": "claim", "renewed": "renew", "completed": "complete", "abandoned": "abandon",
            "submitted": "submit", "resubmitted": "submit"}

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
        # abandoned, or submitted/resubmitted and not claimed since: no holder, no MAC
        released = r["status"] in ("abandoned", "available") and r["claimer"] is None and r["hmac"] is None
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

    # the full replay of the signed log
    t0 = time.time()
    log = conn.execute("SELECT * FROM coord_log ORDER BY seq").fetchall()
    history = {"coord_work": dict(conn.execute("SELECT task_id, history FROM coord_work")),
               "coord_messages": dict(conn.execute("SELECT id, history FROM coord_messages"))}
    replay = time.time() - t0
    seqs = [r["seq"] for r in log]
    if seqs != list(range(1, len(log) + 1)):
        fail(f"event seq not gapless: {len(log)} events, max {max(seqs, default=0)}, "
             f"missing {sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))[:10]}")
    for r in log:
        if (r["verification"], r["chain"], r["actor"]) != ("verified", "ok", "ok"):
            fail(f"event {r['seq']} ({r['op']} {r['subject']} by {r['agent']}): verification "
                 f"{r['verification']}, chain {r['chain']}, actor {r['actor']}")
        if r["row"] not in ("superseded", "matches"):
            fail(f"event {r['seq']} ({r['op']} {r['subject']}): row {r['row']}")
    for view, rows in history.items():
        for key, h in rows.items():
            if h != "matches":
                fail(f"{view} {key}: history {h}")
    if {r["subject"] for r in log if r["op"] != "send"} != set(work) \
            or {r["subject"] for r in log if r["op"] == "send"} != {str(m) for m in msgs}:
        fail("the events' subjects are not exactly the task and message rows")
    # one event per successful operation, each agent's in its own order
    ok_ops = {a: [e for e in es if e["op"] in EVENT_OP or (e["op"] == "send" and e["ok"])]
              for a, es in logs.items()}
    successes = sum(len(v) for v in ok_ops.values())
    if len(log) != successes:
        fail(f"{len(log)} events but the workers logged {successes} successful operations")

    def log_key(e):
        if e["op"] == "send":
            return ("send", str(e["id"]), e["body"])
        return (EVENT_OP[e["op"]], e["task"], e["epoch"])

    def event_key(r):
        state = json.loads(r["state"])
        return (r["op"], r["subject"], state[4] if r["op"] == "send" else state[2])

    by_agent = collections.defaultdict(list)
    for r in log:
        by_agent[r["agent"]].append(r)
    if set(by_agent) - set(keys):
        fail(f"events by agents that never wrote: {sorted(set(by_agent) - set(keys))}")
    timed = {}  # seq -> the logged entry of the operation that committed it
    for a in keys:
        want = [log_key(e) for e in ok_ops[a]]
        got = [event_key(r) for r in by_agent.get(a, [])]
        if want != got:
            n = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), min(len(want), len(got)))
            fail(f"{a}: {len(want)} successful operations, {len(got)} events; first difference at #{n}: "
                 f"logged {want[n:n + 2]}, events {got[n:n + 2]}")
        else:
            timed.update((r["seq"], e) for r, e in zip(by_agent.get(a, []), ok_ops[a]))
    failed_bodies = {e["body"] for es in logs.values() for e in es if e["op"] == "send" and not e["ok"]}
    for r in log:
        if r["op"] == "send" and json.loads(r["state"])[4] in failed_bodies:
            fail(f"event {r['seq']}: a send that failed busy has an event")
    # real time: an operation that committed before another began has the
    # earlier seq; and the events' clock never goes backwards
    latest_begin, inversions, backwards = (0.0, None), 0, 0
    for r in log:
        e = timed.get(r["seq"])
        if e is None:
            continue
        if e["a"] < latest_begin[0]:
            inversions += 1
            if inversions <= 5:
                fail(f"event {r['seq']} ({r['op']} {r['subject']}) committed at {e['a']:.3f}, before event "
                     f"{latest_begin[1]} began at {latest_begin[0]:.3f}, yet is ordered after it")
        if e["b"] > latest_begin[0]:
            latest_begin = (e["b"], r["seq"])
    for prev, r in zip(log, log[1:]):
        if r["at"] < prev["at"]:
            backwards += 1
            if backwards <= 5:
                fail(f"event {r['seq']} at {r['at']} is before event {prev['seq']} at {prev['at']}")
    if inversions > 5 or backwards > 5:
        fail(f"{inversions} real-time inversions, {backwards} clock steps backwards in all")

    # coord audit on the file, timed: it must read the same log, clean
    secrets = d / "secrets"
    for a, k in keys.items():
        write_key(secrets, a, k)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_SECRET_")}
    env.update(XDG_STATE_HOME=str(d / "state"), COORDINATION_SECRETS_DIR=str(secrets))
    t0 = time.time()
    p = subprocess.run([COORD, "--db", str(db), "--json", "audit"], capture_output=True, text=True,
                       env=env, cwd=d)
    audit_s = time.time() - t0
    try:
        a = json.loads(p.stdout)
        h = a["history"]
        want = {"events": len(log), "origin": log[0]["link"] if log else None,
                "head": log[-1]["link"] if log else None, "problems": []}
        if p.returncode != 0 or not a["ok"] or a["findings"] or a["witness"] \
                or {k: h[k] for k in want} != want:
            fail(f"audit exited {p.returncode}: ok {a['ok']}, findings {a['findings'][:3]}, "
                 f"witness {a['witness']}, history problems {h['problems'][:5]}, events {h['events']}")
        if h["work_history"] != {"matches": len(work)} or h["message_history"] != {"matches": len(msgs)}:
            fail(f"audit: work history {h['work_history']}, message history {h['message_history']}")
    except (ValueError, KeyError, TypeError) as e:
        fail(f"audit exited {p.returncode} ({e!r}): {p.stdout[-300:]!r} {p.stderr[-500:]!r}")

    elapsed = time.time() - start
    total = sum(v for k, v in ops.items() if k != "recv")
    print(f"soak: {N} processes for {seconds:.0f}s ({elapsed:.0f}s in all): {total} operations, "
          f"{ops['recv']} inbox reads delivered", file=sys.stderr)
    for k in sorted(ops):
        print(f"soak: {k}: {ops[k]}")
    for op, n in sorted(collections.Counter(r["op"] for r in log).items()):
        print(f"soak: events: {op}: {n}")
    print(f"soak: {len(log)} events for {successes} successful operations; replay through coord_log "
          f"{replay * 1000:.0f} ms, coord audit {audit_s * 1000:.0f} ms")
    print(f"soak: tasks {len(work)}, highest epoch {max((r['epoch'] for r in work.values()), default=0)}, "
          f"messages {len(msgs)}, deliveries {deliveries}, violations {len(violations)}")
sys.exit(1 if violations else 0)
