#!/usr/bin/python3
"""coord's SQL-level and process-level benchmarks, each against a baseline
measured in the same run. Run by bench/run.sh with Debian's /usr/bin/python3
(its sqlite3 module can load extensions).

Prints one JSON object on stdout (results), progress on stderr.
"""
import hmac
import json
import os
import pathlib
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
EXT = os.environ.get("COORD_EXT", str(REPO / "target" / "release" / "libcoord"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
CLAIMS = int(os.environ.get("BENCH_CLAIMS", "20000"))
KEYS = {f"agent-{i}": f"agent-{i}-secret-0123456789abcdef0123456789abcdef".encode() for i in range(4)}
EXPIRES = "2026-11-27 07:05:03"
sys.path.insert(0, str(REPO / "tests" / "python"))
import gptme_ref  # noqa: E402  (gptme-coordination's rule, the one reference)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def connect(path, load=True):
    c = sqlite3.connect(str(path), isolation_level=None, timeout=60)
    if load:
        c.enable_load_extension(True)
        c.load_extension(EXT)
        c.enable_load_extension(False)
        for agent, key in KEYS.items():
            c.execute("SELECT coord_key_add(?, ?)", (agent, key))
    return c


def stats(samples):
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples), "runs": len(samples)}


def timed(fn, runs=RUNS):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return stats(out)


# --- the way gptme-coordination users verify today: HMAC in Python --------
def py_mac(agent, *fields):
    key = KEYS.get(agent)
    if key is None:
        return None
    return gptme_ref.sign(key, fields)


def py_verify(agent, mac, *fields):
    good = py_mac(agent, *fields)
    return int(bool(mac) and good is not None and hmac.compare_digest(good, mac))


def make_rows(path):
    c = connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("SELECT coord_init()")
    c.execute("BEGIN")
    c.execute(
        "WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < ?2) "
        "INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) "
        "SELECT 'github:gptme/gptme#' || value, 'agent-' || (value % 4), value % 50, ?1, 'claimed', NULL "
        "FROM n", (EXPIRES, ROWS))
    c.execute("COMMIT")
    # coord_sign runs only as a top-level SELECT that names no table
    # (SECURITY.md), so each row is signed by its own SELECT.
    rows = c.execute("SELECT claimer, task_id, epoch, expires_at, rowid FROM work").fetchall()
    macs = [(c.execute("SELECT coord_sign(?, ?, ?, ?, ?)", (a, a, t, e, x)).fetchone()[0], rid)
            for a, t, e, x, rid in rows]
    c.execute("BEGIN")
    c.executemany("UPDATE work SET hmac = ? WHERE rowid = ?", macs)
    c.execute("COMMIT")
    c.close()


def per_row(path):
    c = connect(path)
    c.create_function("py_verify", -1, py_verify)
    c.create_function("py_sign", -1, py_mac)
    args = "claimer, hmac, claimer, task_id, epoch, expires_at"
    sign_args = "claimer, claimer, task_id, epoch, expires_at"
    queries = {
        "baseline_builtin": f"SELECT count(max({args})) FROM work",
        "coord_verify": f"SELECT sum(coord_verify({args})) FROM work",
        "coord_work_view": "SELECT sum(verified) FROM coord_work",
        "python_verify": f"SELECT sum(py_verify({args})) FROM work",
        "python_sign": f"SELECT count(py_sign({sign_args})) FROM work",
    }
    res = {}
    for name, sql in queries.items():
        got = c.execute(sql).fetchone()[0]
        assert got == ROWS, (name, got)
        res[name] = timed(lambda: c.execute(sql).fetchone())
        log(f"  {name}: median {res[name]['median']:.3f} s")
    # Signing, one direct call per row (the only way coord_sign runs).
    fields = c.execute("SELECT claimer, claimer, task_id, epoch, expires_at FROM work").fetchall()
    res["coord_sign_direct"] = timed(
        lambda: [c.execute("SELECT coord_sign(?, ?, ?, ?, ?)", f).fetchone() for f in fields])
    log(f"  coord_sign_direct: median {res['coord_sign_direct']['median']:.3f} s")
    res["python_sign_direct"] = timed(
        lambda: [c.execute("SELECT py_sign(?, ?, ?, ?, ?)", f).fetchone() for f in fields])
    log(f"  python_sign_direct: median {res['python_sign_direct']['median']:.3f} s")
    c.close()
    return res


def peak_rss(path):
    """Peak RSS (KiB) of the sqlite3 shell running each query, child by child."""
    out = {}
    args = "claimer, hmac, claimer, task_id, epoch, expires_at"
    for name, sql in {
        "baseline_builtin": f"SELECT count(max({args})) FROM work;",
        "coord_verify": f"SELECT sum(coord_verify({args})) FROM work;",
        "coord_work_view": "SELECT sum(verified) FROM coord_work;",
    }.items():
        script = "".join(f"SELECT coord_key_add('{a}', '{k.decode()}');\n" for a, k in KEYS.items())
        samples = []
        for _ in range(RUNS):
            # GNU time forks the shell from its own small process: a child
            # forked from this Python would report Python's peak RSS (Linux
            # carries the pre-exec high-water mark into ru_maxrss).
            r = subprocess.run(["/usr/bin/time", "-f", "%M", "sqlite3", "-batch", str(path)],
                               input=f".load {EXT}\n{script}{sql}\n", text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
            samples.append(int(r.stderr.strip().splitlines()[-1]))
        out[name] = stats(samples)
        log(f"  rss {name}: {out[name]['median']} KiB")
    return out


# --- claims: one per transaction --------------------------------------------
def claim_db(d, name):
    path = pathlib.Path(d) / name
    c = connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("SELECT coord_init()")
    return c


def claims_coord(c, tasks):
    for t in tasks:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO coord_claim VALUES (?, 'agent-1', 60)", (t,))
        outcome = c.execute("SELECT outcome FROM coord_result").fetchone()[0]
        c.execute("COMMIT")
        assert outcome == "granted", outcome


PLAIN_CAS = """
INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status)
VALUES (?1, ?2, 1, datetime('now'), datetime('now', '+60 minutes'), 'claimed')
ON CONFLICT(task_id) DO UPDATE SET
    claimer = excluded.claimer, epoch = work.epoch + 1, claimed_at = excluded.claimed_at,
    expires_at = excluded.expires_at, status = 'claimed'
WHERE work.status != 'claimed' OR work.expires_at <= datetime('now')
"""


def claims_plain(c, tasks):
    """The same compare-and-swap in plain SQL, no signing: one conditional
    upsert, rows affected checked."""
    for t in tasks:
        c.execute("BEGIN IMMEDIATE")
        cur = c.execute(PLAIN_CAS, (t, "agent-1"))
        c.execute("COMMIT")
        assert cur.rowcount == 1


def claims_python(c, tasks):
    """The way the Python package claims: BEGIN IMMEDIATE, read, decide in
    Python, conditional write, HMAC in Python."""
    for t in tasks:
        c.execute("BEGIN IMMEDIATE")
        row = c.execute("SELECT claimer, epoch, expires_at, status, datetime('now') FROM work WHERE task_id = ?",
                        (t,)).fetchone()
        now = c.execute("SELECT datetime('now'), datetime('now', '+60 minutes')").fetchone()
        if row is None:
            epoch = 1
            mac = py_mac("agent-1", "agent-1", t, epoch, now[1])
            c.execute("INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, hmac) "
                      "VALUES (?, 'agent-1', ?, ?, ?, 'claimed', ?)", (t, epoch, now[0], now[1], mac))
        else:
            raise AssertionError("fresh tasks only")
        c.execute("COMMIT")


def claims(d):
    res = {}
    for name, fn in [("plain_sql_unsigned", claims_plain), ("coord", claims_coord), ("python_client", claims_python)]:
        samples = []
        for run in range(RUNS):
            c = claim_db(d, f"claims-{name}-{run}.db")
            tasks = [f"task:{run}:{i}" for i in range(CLAIMS)]
            t = time.perf_counter()
            fn(c, tasks)
            samples.append(CLAIMS / (time.perf_counter() - t))
            c.close()
        res[name] = stats(samples)
        log(f"  claims {name}: median {res[name]['median']:.0f}/s")
    return res


# --- contention: N processes racing over the same tasks ---------------------
WORKER = r"""
import json, os, sqlite3, sys, time, random
db, agent, start, ntasks, seconds, ext, key = sys.argv[1:]
c = sqlite3.connect(db, isolation_level=None, timeout=60)
c.enable_load_extension(True); c.load_extension(ext)
c.execute("PRAGMA synchronous=NORMAL")
c.execute("SELECT coord_key_add(?, ?)", (agent, key))
tasks = [f"t:{i}" for i in range(int(ntasks))]
rng = random.Random(agent)
while not os.path.exists(start):
    time.sleep(0.0005)
end = time.perf_counter() + float(seconds)
attempts, grants = 0, []
while time.perf_counter() < end:
    t = rng.choice(tasks)
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO coord_claim VALUES (?, ?, 60)", (t, agent))
    outcome, epoch = c.execute("SELECT outcome, epoch FROM coord_result").fetchone()
    c.execute("COMMIT")
    attempts += 1
    if outcome == "granted":
        grants.append([t, epoch])
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO coord_abandon VALUES (?, ?, ?)", (t, agent, epoch))
        c.execute("COMMIT")
print(json.dumps({"attempts": attempts, "grants": grants}))
"""


def contention(d, seconds=3.0, ntasks=50):
    res = {}
    for n in (1, 2, 4, 8):
        samples, violations = [], 0
        for run in range(RUNS):
            path = pathlib.Path(d) / f"race-{n}-{run}.db"
            c = claim_db(d, path.name)
            c.close()
            start = pathlib.Path(d) / f"go-{n}-{run}"
            procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), f"agent-{i}", str(start),
                                       str(ntasks), str(seconds), EXT, KEYS.get(f"agent-{i}", b"k" * 40).decode()],
                                      stdout=subprocess.PIPE, text=True) for i in range(n)]
            time.sleep(0.3)
            start.touch()
            reports = [json.loads(p.communicate()[0]) for p in procs]
            attempts = sum(r["attempts"] for r in reports)
            samples.append(attempts / seconds)
            seen = {}
            for r in reports:
                for t, e in r["grants"]:
                    seen.setdefault(t, []).append(e)
            for t, es in seen.items():
                if sorted(es) != list(range(1, len(es) + 1)):
                    violations += 1
        res[str(n)] = dict(stats(samples), violations=violations)
        log(f"  contention {n} procs: median {res[str(n)]['median']:.0f} attempts/s, violations {violations}")
    return res


def main():
    out = {"rows": ROWS, "claims": CLAIMS, "runs": RUNS,
           "sqlite_version": sqlite3.sqlite_version}
    with tempfile.TemporaryDirectory() as d:
        db = pathlib.Path(d) / "rows.db"
        log(f"generating {ROWS} signed rows")
        t = time.perf_counter()
        make_rows(db)
        out["generate_s"] = time.perf_counter() - t
        log("per-row SQL")
        out["per_row"] = per_row(db)
        log("peak RSS")
        out["rss_kib"] = peak_rss(db)
        log("claims")
        out["claims_per_s"] = claims(d)
        log("contention")
        out["contention"] = contention(d)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
