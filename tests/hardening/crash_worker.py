"""One writer for the crash loop: submits, claims, renews, completes,
abandons and sends on a shared database until it is killed. Each operation
runs in BEGIN IMMEDIATE ... COMMIT; only after COMMIT returned does it
append one JSON line to its log and fsync it, so the log holds only
committed work. Before "ready" it logs {"op": "start"}: the entries between
two starts are one run, and only a run's last committed operation can be
missing from the log (the kill came between COMMIT and the fsync).

argv: db agent key_hex log journal_mode seed
Prints "ready" once set up."""
import json
import os
import random
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "extension"))
from common import connect, run_op  # noqa: E402

db, agent, key_hex, log_path, journal, seed = sys.argv[1:]
rng = random.Random(int(seed))
conn = connect(db, timeout=10)
conn.execute(f"PRAGMA journal_mode={journal}")
conn.execute("PRAGMA synchronous=FULL")
conn.execute("SELECT coord_key_add(?, ?)", (agent, bytes.fromhex(key_hex)))
# a submit's event is signed by the connection's agent (unsigned without one)
conn.execute("SELECT coord_set_agent(?)", (agent,))
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
TASKS = [f"task:{i}" for i in range(8)]
held = {}
seq = 0


def txn(view, values):
    return run_op(conn, view, values, "outcome, epoch, message_id")


def record(**entry):
    os.write(log, (json.dumps(entry) + "\n").encode())
    os.fsync(log)


record(op="start", pid=os.getpid())
print("ready", flush=True)
while True:
    t = rng.choice(TASKS)
    roll = rng.random()
    if roll < 0.05:
        # submitted (a new task), resubmitted (an abandoned one) or exists
        outcome, epoch, _ = txn("coord_submit", (t, None))
        record(op=outcome, task=t, epoch=epoch)
    elif roll < 0.3:
        seq += 1
        body = f"{agent}:{seq}:{os.getpid()}"
        outcome, _, mid = txn("coord_send", (agent, rng.choice(["agent-0", "agent-1", None]), None, body))
        record(op="send", id=mid, body=body)
    elif t in held:
        op = rng.choice(["claim", "coord_complete", "coord_abandon"])
        if op == "claim":
            outcome, epoch, _ = txn("coord_claim", (t, agent, 0.05))
        elif op == "coord_complete":
            outcome, epoch, _ = txn(op, (t, agent, held[t], "done"))
        else:
            outcome, epoch, _ = txn(op, (t, agent, held[t]))
        if outcome != "renewed":
            del held[t]
        record(op=outcome, task=t, epoch=epoch)
    else:
        outcome, epoch, _ = txn("coord_claim", (t, agent, 0.05))
        if outcome in ("granted", "renewed"):
            held[t] = epoch
        record(op=outcome, task=t, epoch=epoch)
