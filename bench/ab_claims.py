#!/usr/bin/python3
"""Claim throughput of two builds of the extension, A and B, side by side:
bash bench/ab_claims.sh A/libcoord.so B/libcoord.so (that script checks the
tools, then runs this file under Debian's /usr/bin/python3, whose sqlite3
module can load extensions).

Two measurements, each for three variants of one claim per transaction (WAL,
synchronous=NORMAL, a fresh task every time: the grant of a new task, as
sql_bench.py's claims benchmark):

- `plain`: sql_bench.claims_plain, the compare-and-swap in plain SQL with the
  extension loaded but not used. It should not move between builds: a control
  for the noise of the machine.
- `unsigned`: sql_bench.claims_coord, coord's write API, the claimer's key
  not held (the row gets a NULL MAC).
- `signed`: the same after coord_key_add('agent-1', ...), as sql_bench.py
  sets keys up (the row gets an HMAC).

1. Wall clock: claims/s of AB_CLAIMS claims (default 20000), each run a fresh
   process and database, AB_ROUNDS rounds (default 7) interleaved A B A B ...
   so that load from elsewhere falls on both builds alike; medians reported.
   AB_ROUNDS=0 skips it.
2. Instructions per claim under valgrind --tool=callgrind, which the load of
   the machine does not change: the whole process (Python, SQLite, coord)
   counted at two numbers of claims (AB_CG_CLAIMS, default "200 1200"), the
   difference divided by the difference, so that start-up, loading and
   schema creation cancel out. AB_CALLGRIND=0 skips it.

Prints a Markdown table on stdout (progress on stderr) and writes every
sample as JSON to AB_OUT (default target/bench/ab_claims.json).

Internal: `ab_claims.py run EXT VARIANT N` is one run, printing claims/s.
"""
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
VARIANTS = ("plain", "unsigned", "signed")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- one run (a child process) ----------------------------------------------
def run_one(ext, variant, n):
    sys.path.insert(0, str(HERE))
    import sql_bench  # the claim loops and keys of the main benchmark

    with tempfile.TemporaryDirectory() as d:
        c = sqlite3.connect(str(pathlib.Path(d) / "claims.db"), isolation_level=None, timeout=60)
        c.enable_load_extension(True)
        c.load_extension(ext)
        c.enable_load_extension(False)
        if variant == "signed":
            c.execute("SELECT coord_key_add(?, ?)", ("agent-1", sql_bench.KEYS["agent-1"]))
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("SELECT coord_init()")
        if variant != "plain":
            # one claim first: the variant signs, or does not, as named
            sql_bench.claims_coord(c, ["probe"])
            signed = c.execute("SELECT hmac IS NOT NULL FROM work WHERE task_id = 'probe'").fetchone()[0]
            assert signed == (variant == "signed"), (variant, signed)
        loop = sql_bench.claims_plain if variant == "plain" else sql_bench.claims_coord
        tasks = [f"task:{i}" for i in range(n)]
        t = time.perf_counter()
        loop(c, tasks)
        rate = n / (time.perf_counter() - t)
        c.close()
    print(f"{rate:.1f}")


# --- the driver -------------------------------------------------------------
def child(ext, variant, n, prefix=()):
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run([*prefix, sys.executable, str(HERE / "ab_claims.py"), "run", ext, variant, str(n)],
                          env=env, check=True, capture_output=True, text=True)


def instructions(ext, variant, n):
    r = child(ext, variant, n, ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"])
    m = re.search(r"Collected : (\d+)", r.stderr)
    if not m:
        raise SystemExit(f"no callgrind total in:\n{r.stderr}")
    return int(m.group(1))


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def main(a_path, b_path):
    rounds = int(os.environ.get("AB_ROUNDS", "7"))
    claims = int(os.environ.get("AB_CLAIMS", "20000"))
    cg = [int(x) for x in os.environ.get("AB_CG_CLAIMS", "200 1200").split()]
    do_cg = os.environ.get("AB_CALLGRIND", "1") != "0"
    out = pathlib.Path(os.environ.get("AB_OUT", str(REPO / "target" / "bench" / "ab_claims.json")))

    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "nproc": os.cpu_count(), "sqlite_version": sqlite3.sqlite_version,
           "python": sys.version.split()[0], "rounds": rounds, "claims": claims,
           "loadavg_start": loadavg(), "builds": {}, "claims_per_s": {}, "instructions": {}}
    with tempfile.TemporaryDirectory() as d:
        # Each build copied under the name libcoord.so (SQLite derives the
        # entry point from the file name), so that a rebuild during the run
        # changes nothing measured.
        exts = {}
        for label, src in (("A", a_path), ("B", b_path)):
            dst = pathlib.Path(d) / label / "libcoord.so"
            dst.parent.mkdir()
            shutil.copyfile(src, dst)
            exts[label] = str(dst)
            res["builds"][label] = {"path": str(pathlib.Path(src).resolve()),
                                    "sha256": hashlib.sha256(dst.read_bytes()).hexdigest()}
        samples = {v: {"A": [], "B": []} for v in VARIANTS}
        for r in range(rounds):
            for v in VARIANTS:
                for label in ("A", "B"):
                    samples[v][label].append(float(child(exts[label], v, claims).stdout))
            log(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{v} A {samples[v]['A'][-1]:.0f} B {samples[v]['B'][-1]:.0f}" for v in VARIANTS))
        res["claims_per_s"] = samples
        if do_cg:
            lo, hi = cg
            for v in VARIANTS:
                for label in ("A", "B"):
                    counts = {n: instructions(exts[label], v, n) for n in (lo, hi)}
                    per = (counts[hi] - counts[lo]) / (hi - lo)
                    res["instructions"].setdefault(v, {})[label] = {"counts": counts, "per_claim": per}
                    log(f"callgrind {v} {label}: {per:.0f} instructions per claim")
    res["loadavg_end"] = loadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))

    def mmm(xs):
        return " / ".join(f"{x:.0f}" for x in (min(xs), statistics.median(xs), max(xs))) if xs else "-"

    def ratio(v):
        a, b = samples[v]["A"], samples[v]["B"]
        return f"{statistics.median(b) / statistics.median(a):.2f}x" if a else "-"

    print(f"{res['date']}, {res['nproc']} cores, load average {' '.join(res['loadavg_start'])} at the start, "
          f"{' '.join(res['loadavg_end'])} at the end; SQLite {res['sqlite_version']}, Python {res['python']}.")
    print(f"A: {res['builds']['A']['path']} (sha256 {res['builds']['A']['sha256'][:12]})")
    print(f"B: {res['builds']['B']['path']} (sha256 {res['builds']['B']['sha256'][:12]})")
    print()
    head = "| claim | A claims/s, min / median / max | B claims/s, min / median / max | B / A (medians) |"
    if do_cg:
        head += " A instructions per claim | B instructions per claim | B / A (instructions) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    names = {"plain": "plain SQL compare-and-swap, extension loaded, not used (control)",
             "unsigned": "coord_claim, no key held (NULL MAC)", "signed": "coord_claim, signed"}
    for v in VARIANTS:
        row = f"| {names[v]} | {mmm(samples[v]['A'])} | {mmm(samples[v]['B'])} | {ratio(v)} |"
        if do_cg:
            ia, ib = res["instructions"][v]["A"]["per_claim"], res["instructions"][v]["B"]["per_claim"]
            row += f" {ia:.0f} | {ib:.0f} | {ib / ia:.3f}x |"
        print(row)
    print()
    print(f"{claims} claims per run, {rounds} runs per cell interleaved A B A B; "
          + (f"instructions: whole process at {cg[0]} and {cg[1]} claims, the difference per claim." if do_cg else ""))
    log(f"samples: {out}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        run_one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        raise SystemExit(__doc__)
