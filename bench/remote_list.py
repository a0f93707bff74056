"""A remote `coord list` after one new event: 100,000 tasks against 100
(issue 12). Each database is built locally with the extension's write API
(every task submitted, claimed and completed, 10 left claimed live, so the
log holds 3 events per task), then served by one sqld node on 127.0.0.1.
A client reads it once (its witness then holds the whole log), and then,
ROUNDS times: one new event (a claim of a fresh task), then a timed
`coord --db URL list claimed`. Prints the medians and their ratio, and
the same for `list all` (which must copy every row it shows: the floor).

usage: remote_list.py SQLD COORD LIBCOORD [big] [small] [rounds]
Not a test: nothing fails on a missed target."""
import os
import pathlib
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SQLD, COORD, EXT = sys.argv[1:4]
BIG = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
SMALL = int(sys.argv[5]) if len(sys.argv) > 5 else 100
ROUNDS = int(sys.argv[6]) if len(sys.argv) > 6 else 7
LIVE = 10
KEY = "aa" * 32
WORK = pathlib.Path(tempfile.mkdtemp(prefix="coord-remote-list."))
(WORK / "secrets").mkdir(mode=0o700)
(WORK / "secrets" / "alice.secret").write_text(KEY + "\n")
os.chmod(WORK / "secrets" / "alice.secret", 0o600)


def build(path, n):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.enable_load_extension(True)
    c.load_extension(EXT)
    c.execute("SELECT coord_init()")
    c.execute("SELECT coord_key_add('alice', ?)", (KEY,))
    c.execute("SELECT coord_set_agent('alice')")
    c.execute("BEGIN")
    for i in range(n):
        t = f"task-{i:06d}"
        c.execute("INSERT INTO coord_submit VALUES (?, NULL)", (t,))
        c.execute("INSERT INTO coord_claim VALUES (?, 'alice', 600)", (t,))
        if i >= LIVE:
            c.execute("INSERT INTO coord_complete VALUES (?, 'alice', NULL, 'done')", (t,))
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("PRAGMA journal_mode=DELETE")
    (events,) = c.execute("SELECT count(*) FROM coord_events").fetchone()
    c.close()
    return events


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(db):
    """One sqld node whose database is `db` (copied into its data dir)."""
    data = WORK / (db.stem + "-sqld")
    (data / "dbs" / "default").mkdir(parents=True)
    shutil.copy(db, data / "dbs" / "default" / "data")
    port = free_port()
    p = subprocess.Popen([SQLD, "--no-welcome", "-d", str(data),
                          "--http-listen-addr", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=WORK)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return p, url
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit(f"sqld did not start on {url}")


def coord(url, *args, agent=None):
    env = dict(os.environ, COORDINATION_SECRETS_DIR=str(WORK / "secrets"),
               XDG_STATE_HOME=str(WORK / ("state-" + url.rsplit(":", 1)[1])))
    env.pop("COORDINATION_AGENT", None)
    cmd = [COORD, "--db", url, "--json"] + (["--as", agent] if agent else []) + list(args)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if done.returncode != 0 or done.stderr.strip():
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return dt, done.stdout


def measure(db, n):
    p, url = serve(db)
    try:
        first, _ = coord(url, "list", "claimed")
        claimed, every = [], []
        for r in range(ROUNDS):
            coord(url, "submit", f"new-{r}")
            coord(url, "claim", f"new-{r}", agent="alice")
            dt, out = coord(url, "list", "claimed")
            assert out.count('"task_id"') == LIVE + r + 1, out[:200]
            claimed.append(dt)
            dt, out = coord(url, "list", "all")
            assert out.count('"task_id"') == n + r + 1
            every.append(dt)
        return first, statistics.median(claimed), statistics.median(every)
    finally:
        p.kill()
        p.wait()


try:
    res = {}
    for n in (SMALL, BIG):
        db = WORK / f"db-{n}.db"
        t0 = time.perf_counter()
        events = build(db, n)
        print(f"built {n} tasks, {events} events, {db.stat().st_size // 1024} KiB "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        res[n] = measure(db, n)
    (f_s, c_s, a_s), (f_b, c_b, a_b) = res[SMALL], res[BIG]
    print()
    print(f"| read | {SMALL} tasks (s) | {BIG} tasks (s) | ratio |")
    print("|---|---|---|---|")
    print(f"| first `list claimed` (no witness yet: the whole log) | {f_s:.3f} | {f_b:.3f} | {f_b / f_s:.1f}x |")
    print(f"| `list claimed` after one new event (median of {ROUNDS}) | {c_s:.3f} | {c_b:.3f} | {c_b / c_s:.2f}x |")
    print(f"| `list all` after one new event (median of {ROUNDS}) | {a_s:.3f} | {a_b:.3f} | {a_b / a_s:.1f}x |")
finally:
    shutil.rmtree(WORK, ignore_errors=True)
