"""One soak agent: until the deadline, submits, claims, renews, completes,
abandons and sends at random; reads its inbox as it goes. Logs every
attempt with the wall-clock time before BEGIN and after COMMIT (or the
error), then drains its inbox once the parent says every sender stopped.

argv: db agent key_hex deadline(epoch s) busy_timeout_s log done_file drain_file seed"""
import json
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "extension"))
from common import connect, run_op  # noqa: E402

db, agent, key_hex, deadline, timeout, log_path, done, drain, seed = sys.argv[1:]
deadline, rng = float(deadline), random.Random(int(seed))
conn = connect(db, timeout=float(timeout))
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("SELECT coord_key_add(?, ?)", (agent, bytes.fromhex(key_hex)))
# a submit's event is signed by the connection's agent (unsigned without one)
conn.execute("SELECT coord_set_agent(?)", (agent,))
out = open(log_path, "w")
TASKS = [f"task:{i}" for i in range(12)]
AGENTS = [f"agent-{i}" for i in range(8)]
held, seq, last_seen = {}, 0, 0


def log(**e):
    out.write(json.dumps(e) + "\n")


def txn(view, values):
    return run_op(conn, view, values, "outcome, epoch, message_id, holder")


def read_inbox():
    global last_seen
    rows = conn.execute(
        "SELECT id FROM coord_messages WHERE (recipient = ? OR recipient IS NULL) AND id > ? ORDER BY id",
        (agent, last_seen)).fetchall()
    for (mid,) in rows:
        log(op="recv", id=mid)
        last_seen = mid


while time.time() < deadline:
    t = rng.choice(TASKS)
    roll = rng.random()
    before = time.time()
    try:
        if roll < 0.03:
            # submitted (a new task), resubmitted (an abandoned one) or exists
            outcome, epoch, _, _ = txn("coord_submit", (t, None))
            log(op=outcome, task=t, epoch=epoch, b=before, a=time.time())
        elif roll < 0.25:
            seq += 1
            body = f"{agent}:{seq}"
            to = rng.choice(AGENTS + [None])
            try:
                _, _, mid, _ = txn("coord_send", (agent, to, None, body))
                log(op="send", ok=True, id=mid, body=body, to=to, b=before, a=time.time())
            except sqlite3.OperationalError:
                log(op="send", ok=False, body=body, b=before, a=time.time())
                raise
        elif roll < 0.35:
            read_inbox()
        elif t in held:
            op = rng.choice(["renew", "coord_complete", "coord_abandon"])
            if op == "renew":
                outcome, epoch, _, _ = txn("coord_claim", (t, agent, rng.choice([0.01, 0.02, 1])))
            elif op == "coord_complete":
                outcome, epoch, _, _ = txn(op, (t, agent, held[t], "done"))
            else:
                outcome, epoch, _, _ = txn(op, (t, agent, held[t]))
            log(op=outcome, task=t, epoch=epoch, b=before, a=time.time())
            if outcome == "renewed":
                held[t] = epoch
            else:
                del held[t]
        else:
            outcome, epoch, _, holder = txn("coord_claim", (t, agent, rng.choice([0.01, 0.02, 1])))
            log(op=outcome, task=t, epoch=epoch, holder=holder, b=before, a=time.time())
            if outcome in ("granted", "renewed"):
                held[t] = epoch
    except sqlite3.OperationalError as e:
        if "locked" not in str(e) and "busy" not in str(e):
            raise
        log(op="busy", task=t, b=before, a=time.time())

open(done, "w").close()
while not os.path.exists(drain):
    time.sleep(0.01)
read_inbox()
out.close()
