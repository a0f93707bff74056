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
  once, with its body;
- the signed event log (docs/history.md), read through the coord_log view:
  seq is gapless 1..max; every event verifies, is in the chain and was made
  by an agent allowed to (verification 'verified', chain 'ok', actor 'ok');
  the events seen at the last check are still there, unchanged (same link);
  every work and messages row has history 'matches' in coord_work and
  coord_messages (no state change without its event), and the last event of
  each subject reads row 'matches' (no event without its state change; the
  subjects of the events are exactly the rows);
- every operation a writer logged after COMMIT has its event, in the
  writer's order: one agent's events in seq order are its logged
  operations, run after run, with at most one more event at the end of
  each run (committed, then killed before the log line was fsync'd).

At the end of each mode (and after its first iteration, so that the witness
has something to compare with) `coord --db FILE --json audit` must exit 0
with no finding, no history problem and no witness problem, and agree with
the view on the event count, origin, head and per-row history
(XDG_STATE_HOME and the key directory are in the loop's temp dir).

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
from common import REPO, connect, write_key  # noqa: E402

COORD = os.environ.get("COORD_BIN", str(REPO / "crates" / "coord-cli" / "target" / "release" / "coord"))
# a worker's logged outcome -> the op of the event it committed (other
# outcomes, denied, lost_lease, exists, ..., change nothing and log nothing)
EVENT_OP = {"granted": "claim", "renewed": "renew", "completed": "complete", "abandoned": "abandon",
            "submitted": "submit", "resubmitted": "submit", "send": "send"}

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
rng = random.Random(int(os.environ.get("COORD_CRASH_SEED", time.time_ns())))
violations = []
stats = collections.Counter()


def fail(msg):
    violations.append(msg)
    print("VIOLATION:", msg, file=sys.stderr)


def event_key(r):
    """What identifies an event to a writer: op, subject and the epoch the
    task is at (the body, for a message)."""
    state = json.loads(r["state"])
    return (r["op"], r["subject"], state[4] if r["op"] == "send" else state[2])


def log_key(e):
    if e["op"] == "send":
        return ("send", str(e["id"]), e["body"])
    return (EVENT_OP[e["op"]], e["task"], e["epoch"]) if e["op"] in EVENT_OP else None


def align(events, runs):
    """The fewest unlogged events with which `events` (one agent's, in seq
    order) is its `runs` of logged operations, each followed by at most one
    unlogged event; None if there is no such reading."""
    reach = {0: 0}  # position in events -> fewest unlogged events so far
    for run in runs:
        nxt = {}
        for i, extra in reach.items():
            if events[i:i + len(run)] == run:
                j = i + len(run)
                nxt[j] = min(nxt.get(j, extra), extra)
                if j < len(events):
                    nxt[j + 1] = min(nxt.get(j + 1, extra + 1), extra + 1)
        reach = nxt
    return reach.get(len(events))


def check_history(conn, keys, entries, work, msgs, seen, mode, final):
    log = conn.execute("SELECT * FROM coord_log ORDER BY seq").fetchall()
    seqs = [r["seq"] for r in log]
    if seqs != list(range(1, len(log) + 1)):
        gaps = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        fail(f"{mode}: event seq not gapless 1..{max(seqs, default=0)}: missing {gaps[:10]}")
    bad = [(r["seq"], r["op"], r["subject"], r["verification"], r["chain"], r["actor"])
           for r in log if (r["verification"], r["chain"], r["actor"]) != ("verified", "ok", "ok")]
    if bad:
        fail(f"{mode}: {len(bad)} events do not verify/chain/actor: {bad[:5]}")
    # what the last check saw is still there, unchanged (no committed event lost)
    links = [r["link"] for r in log]
    if links[:len(seen["links"])] != seen["links"]:
        n = next((i for i, (a, b) in enumerate(zip(links, seen["links"])) if a != b), len(links))
        fail(f"{mode}: the log had {len(seen['links'])} events at the last check, now {len(links)}; "
             f"first difference at seq {n + 1}")
    seen["links"] = links
    # no event without its state change: each subject's last event matches its row
    for r in log:
        if r["row"] not in ("superseded", "matches"):
            fail(f"{mode}: event {r['seq']} ({r['op']} {r['subject']}): row {r['row']}")
    task_subjects = {r["subject"] for r in log if r["op"] != "send"}
    msg_subjects = {r["subject"] for r in log if r["op"] == "send"}
    if task_subjects != set(work) or msg_subjects != {str(m) for m in msgs}:
        fail(f"{mode}: event subjects and rows differ: tasks without events "
             f"{sorted(set(work) - task_subjects)[:5]}, events without tasks {sorted(task_subjects - set(work))[:5]}, "
             f"messages without events {sorted({str(m) for m in msgs} - msg_subjects)[:5]}, "
             f"events without messages {sorted(msg_subjects - {str(m) for m in msgs})[:5]}")
    # no state change without its event
    for view, key in (("coord_work", "task_id"), ("coord_messages", "id")):
        for r in conn.execute(f"SELECT {key}, history FROM {view} WHERE history IS NOT 'matches'"):
            fail(f"{mode}: {view} {r[0]}: history {r[1]}")
    # every logged operation has its event, in the writer's order
    by_agent = collections.defaultdict(list)
    for r in log:
        by_agent[r["agent"]].append(event_key(r))
    if set(by_agent) - set(keys):
        fail(f"{mode}: events by agents that never wrote: {sorted(set(by_agent) - set(keys))}")
    unlogged = 0
    for agent, es in entries.items():
        runs = []
        for e in es:
            if e["op"] == "start":
                runs.append([])
            elif log_key(e) is not None:
                runs[-1].append(log_key(e))
        extra = align(by_agent.get(agent, []), runs)
        if extra is None:
            mine = by_agent.get(agent, [])
            flat = [k for run in runs for k in run]
            n = next((i for i, (a, b) in enumerate(zip(mine, flat)) if a != b), min(len(mine), len(flat)))
            fail(f"{mode}: {agent}'s {len(flat)} logged operations ({len(runs)} runs) are not its "
                 f"{len(mine)} events: first difference at #{n}: log {flat[n:n + 2]}, events {mine[n:n + 2]}")
        else:
            unlogged += extra
    stats["event checks"] += len(log)
    if final:
        stats[f"{mode}: events"] = len(log)
        stats[f"{mode}: events committed but not logged (killed before the fsync)"] = unlogged
        for op, n in collections.Counter(r["op"] for r in log).items():
            stats[f"{mode}: events: {op}"] = n
    return log


def audit(d, db, keys, log, work, msgs, mode, when):
    """coord audit on the file: exit 0, nothing found, and the same log."""
    env = dict(os.environ, XDG_STATE_HOME=str(d / "state"), COORDINATION_SECRETS_DIR=str(d / "secrets"))
    for k in [k for k in env if k.startswith("COORDINATION_SECRET_")]:
        del env[k]
    t0 = time.time()
    p = subprocess.run([COORD, "--db", str(db), "--json", "audit"], capture_output=True, text=True, env=env,
                       cwd=d)
    stats[f"{mode}: audit {when}: ms"] = round((time.time() - t0) * 1000)
    try:
        a = json.loads(p.stdout)
    except ValueError:
        fail(f"{mode}: audit {when} exited {p.returncode}: {p.stdout[-300:]!r} {p.stderr[-500:]!r}")
        return
    h = a.get("history", {})
    want = {"events": len(log), "origin": log[0]["link"] if log else None,
            "head": log[-1]["link"] if log else None,
            "work_history": {"matches": len(work)} if work else {},
            "message_history": {"matches": len(msgs)} if msgs else {}, "problems": []}
    got = {k: h.get(k) for k in want}
    if p.returncode != 0 or not a.get("ok") or a.get("findings") or a.get("witness") or got != want:
        fail(f"{mode}: audit {when} exited {p.returncode}: ok {a.get('ok')}, findings {a.get('findings')}, "
             f"witness {a.get('witness')}, history {got} (the view: {want}) {p.stderr[-300:]!r}")


def check(db, keys, logs, max_epoch, mode, seen, final=False):
    conn = connect(db)
    for agent, key in keys.items():
        conn.execute("SELECT coord_key_add(?, ?)", (agent, key))
    ic = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if ic != "ok":
        fail(f"{mode}: integrity_check: {ic}")
    for view, kind in (("coord_work", "claim"), ("coord_messages", "message")):
        # an abandoned task carries no holder and no MAC (gptme's row), nor
        # does one submitted or resubmitted and not claimed since
        released = " AND NOT (status IN ('abandoned', 'available') AND claimer IS NULL AND hmac IS NULL)" \
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
    last_op = dict(conn.execute("SELECT subject, op FROM coord_events WHERE seq IN "
                                "(SELECT max(seq) FROM coord_events WHERE op <> 'send' GROUP BY subject)"))
    entries = {}
    for agent, path in zip(keys, logs):
        entries[agent] = []
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                fail(f"{mode}: torn log line {line!r} (the log is fsync'd line by line)")
                continue
            entries[agent].append(e)
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
                        and w["status"] != e["op"] \
                        and not (e["op"] == "abandoned" and w["status"] == "available"
                                 and last_op.get(e["task"]) == "submit"):
                    # (an abandoned task resubmitted is available at the same epoch)
                    fail(f"{mode}: logged {e} but the task is {w['status']} at that epoch")
    stats["row checks"] += len(work) + len(msgs)
    log = check_history(conn, keys, entries, work, msgs, seen, mode, final)
    conn.close()
    return log, work, msgs


def run(mode, n):
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        db = d / "crash.db"
        conn = connect(db)
        conn.execute(f"PRAGMA journal_mode={mode}")
        conn.execute("SELECT coord_init()")
        conn.close()
        keys = {f"agent-{i}": os.urandom(32).hex().encode() for i in range(2)}
        for a, k in keys.items():
            write_key(d / "secrets", a, k)  # for coord audit
        logs = [d / f"agent-{i}.log" for i in range(2)]
        max_epoch = {}
        seen = {"links": []}
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
            log, work, msgs = check(db, keys, logs, max_epoch, mode, seen, final=(it == n - 1))
            if it == 0 or it == n - 1:
                audit(d, db, keys, log, work, msgs, mode, "first" if it == 0 else "last")
            stats[f"{mode} iterations"] += 1
        stats[f"{mode}: final max epoch"] = max(max_epoch.values(), default=0)


start = time.time()
run("wal", (iterations + 1) // 2)
run("delete", iterations // 2)
for k in sorted(stats):
    print(f"crash: {k}: {stats[k]}")
print(f"crash: {iterations} iterations in {time.time() - start:.0f}s, {len(violations)} violations")
sys.exit(1 if violations else 0)
