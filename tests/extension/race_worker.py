"""One racing agent: waits for the start file, then tries to claim every task
once (in its own random order); each grant is logged and released at once
with an epoch-checked abandon, so the next claimer gets epoch + 1.

argv: db agent key tasks start_file busy_timeout_s seed
prints one JSON line: {"grants": [[task, epoch], ...], "busy": n, "denied": n}
"""
import json
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import connect, run_op  # noqa: E402

db, agent, key, ntasks, start, timeout, seed = sys.argv[1:]
conn = connect(db, timeout=float(timeout))
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("SELECT coord_key_add(?, ?)", (agent, key))
tasks = [f"task:{i}" for i in range(int(ntasks))]
random.Random(int(seed)).shuffle(tasks)

while not os.path.exists(start):
    time.sleep(0.001)

grants, busy, denied = [], 0, 0


def attempt(view, values):
    """One operation; None if the database stayed busy past the timeout (an
    error, counted, never an outcome)."""
    global busy
    try:
        return run_op(conn, view, values, "outcome, epoch")
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            busy += 1
            return None
        raise


for t in tasks:
    r = attempt("coord_claim", (t, agent, 60))
    if r is None:
        continue
    outcome, epoch = r
    if outcome == "granted":
        grants.append([t, epoch])
        # release it; retry while busy: a held lease would only make others wait
        while (r := attempt("coord_abandon", (t, agent, epoch))) is None:
            pass
        assert r[0] == "abandoned", r
    elif outcome == "denied":
        denied += 1
    else:
        raise SystemExit(f"unexpected outcome {outcome}")

print(json.dumps({"grants": grants, "busy": busy, "denied": denied}))
