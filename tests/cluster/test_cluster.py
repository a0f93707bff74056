"""coord on a three-node libSQL cluster (run by tests/cluster.sh, inside
tests/cluster/cluster.sh, which exports the nodes' URLs).

Every test talks to the real nodes: the coord command (signing and
verifying on the client), and raw Hrana-over-HTTP for what a plain SQL
client or a forger would send. Waits are polls with a bounded timeout.
Run with pytest (target/venv); the tests run in file order, and the first
makes the agents' keys the others use.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

COORD = os.environ["COORD_BIN"]
PRIMARY = os.environ["COORD_PRIMARY"]
REPLICA1 = os.environ["COORD_REPLICA1"]
REPLICA2 = os.environ["COORD_REPLICA2"]
NODES = {"primary": PRIMARY, "replica1": REPLICA1, "replica2": REPLICA2}
SQLD = os.environ["COORD_SQLD"]
CLUSTER_DIR = os.environ["COORD_CLUSTER_DIR"]
AGENTS = {"alice": "primary", "bob": "replica1", "carol": "replica2"}

WORK = tempfile.mkdtemp(prefix="coord-cluster-test.")
SECRETS = os.path.join(WORK, "secrets")
# Processes this test started itself (the restarted primary, the
# wrong-hash node): stopped by pid at the end.
STARTED = []


# --- helpers ---------------------------------------------------------------

def coord(url, *args, agent=None, check=None, timeout=60):
    env = dict(os.environ, COORDINATION_SECRETS_DIR=SECRETS)
    env.pop("COORDINATION_AGENT", None)
    cmd = [COORD, "--db", url, "--json"] + (["--as", agent] if agent else []) + list(args)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                       cwd=WORK)
    if check is not None and p.returncode != check:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}, expected {check}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def coord_json(url, *args, **kw):
    return json.loads(coord(url, *args, **kw).stdout)


def hrana(url, stmts, baton=None, timeout=10):
    """Runs statements on one stream; returns (baton, [rows or ('error', msg)])."""
    reqs = [{"type": "execute", "stmt": {"sql": s}} for s in stmts]
    body = json.dumps({"baton": baton, "requests": reqs}).encode()
    req = urllib.request.Request(url + "/v2/pipeline", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        d = json.load(r)
    out = []
    for res in d["results"]:
        if res["type"] == "ok":
            rows = res["response"]["result"]["rows"]
            out.append([[c.get("value") for c in row] for row in rows])
        else:
            out.append(("error", res["error"]["message"]))
    return d["baton"], out


def q(url, sql):
    _, [rows] = hrana(url, [sql])
    if isinstance(rows, tuple):
        raise AssertionError(f"{url}: {sql}: {rows[1]}")
    return rows


def poll(what, fn, timeout=30.0):
    """Calls fn until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (AssertionError, OSError, urllib.error.URLError, json.JSONDecodeError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def key_hex(agent):
    with open(os.path.join(SECRETS, agent + ".secret")) as f:
        return f.read().strip()


def server_side_statuses(url, table_sql):
    """The server's own TEMP view, with this test's keys added on the stream."""
    adds = [f"SELECT coord_key_add('{a}', '{key_hex(a)}')" for a in AGENTS]
    _, res = hrana(url, adds + [table_sql])
    errors = [r for r in res if isinstance(r, tuple)]
    assert not errors, errors
    return res[-1]


def health(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


# --- tests -----------------------------------------------------------------

def test_setup_and_extension_on_every_node():
    for a in AGENTS:
        coord(PRIMARY, "keygen", a, check=0)
    rep = coord_json(REPLICA1, "init", check=0)  # forwarded to the primary
    assert rep["added_columns"] == [], rep
    # the one migration, as on a file: on a current schema it writes nothing
    [[before]] = q(PRIMARY, "PRAGMA schema_version")
    for url in (PRIMARY, REPLICA2):
        coord(url, "init", check=0)
    [[after]] = q(PRIMARY, "PRAGMA schema_version")
    assert after == before, f"coord init on a current schema moved schema_version {before} -> {after}"
    for name, url in NODES.items():
        [[version]] = q(url, "SELECT coord_version()")
        assert version == "0.1.0", (name, version)
        temp = {r[0] for r in q(url, "SELECT name FROM sqlite_temp_master")}
        assert {"coord_work", "coord_messages", "coord_claim", "coord_result"} <= temp, (name, temp)
        # The schema reached every node (replication), built-in SQL only.
        poll(f"schema on {name}", lambda: q(url, "SELECT count(*) FROM main.sqlite_schema "
                                                 "WHERE name IN ('work', 'messages', 'coord_gate')")
             == [["3"]])
        stored = q(url, "SELECT sql FROM main.sqlite_schema WHERE sql LIKE '%coord\\_%' ESCAPE '\\' "
                        "AND type IN ('view', 'trigger') AND sql LIKE '%coord_sign%'")
        assert stored == [], (name, stored)


def test_planted_view_cannot_redefine_verification():
    # A writer plants views named like coord's, saying every row is verified.
    _, res = hrana(PRIMARY, [
        "CREATE VIEW main.coord_work AS SELECT 'x' AS task_id, 'verified' AS verification, 1 AS verified",
        "CREATE VIEW main.coord_messages AS SELECT 'verified' AS verification",
    ])
    assert not [r for r in res if isinstance(r, tuple)], res
    try:
        for name, url in NODES.items():
            poll(f"planted view on {name}",
                 lambda: q(url, "SELECT count(*) FROM main.sqlite_schema WHERE name = 'coord_work'")
                 == [["1"]])
            # Unqualified names resolve to TEMP first: coord's view wins.
            rows = q(url, "SELECT count(*) FROM coord_work WHERE task_id = 'x'")
            assert rows == [["0"]], (name, rows)
            # sqld refuses CREATE TEMP from clients, so a client cannot even
            # replace its own stream's views.
            _, [r] = hrana(url, ["CREATE TEMP VIEW coord_work AS SELECT 1"])
            assert isinstance(r, tuple) and "unsupported statement" in r[1], (name, r)
    finally:
        hrana(PRIMARY, ["DROP VIEW main.coord_work", "DROP VIEW main.coord_messages"])


RACE_TASKS = [f"race:{i}" for i in range(24)]
WINNERS = {}


def test_race_through_three_nodes():
    # Every task is claimed at once by three agents, each through a
    # different node: alice on the primary, bob and carol on the replicas.
    # The three claims of a task are submitted back to back, in a random
    # order, so that each node gets its chance to arrive first.
    rng = random.Random(os.environ.get("COORD_RACE_SEED", "7"))
    jobs = []
    for t in RACE_TASKS:
        order = list(AGENTS)
        rng.shuffle(order)
        jobs += [(t, a) for a in order]

    def claim(job):
        t, a = job
        p = coord(NODES[AGENTS[a]], "claim", t, "--ttl", "30", agent=a)
        assert p.returncode in (0, 1), (t, a, p.returncode, p.stderr)
        return t, a, json.loads(p.stdout)

    with ThreadPoolExecutor(max_workers=9) as ex:
        results = list(ex.map(claim, jobs))
    wins_per_node = {n: 0 for n in NODES}
    denied = 0
    for t in RACE_TASKS:
        outs = [(a, r) for (tt, a, r) in results if tt == t]
        granted = [a for a, r in outs if r["outcome"] == "granted"]
        assert len(granted) == 1, (t, outs)
        assert all(r["outcome"] == "denied" and r["holder"] == granted[0]
                   for a, r in outs if a != granted[0]), (t, outs)
        assert [r["epoch"] for a, r in outs if a == granted[0]] == [1], (t, outs)
        WINNERS[t] = granted[0]
        wins_per_node[AGENTS[granted[0]]] += 1
        denied += len(outs) - 1
    print(f"  race: {len(RACE_TASKS)} tasks, {len(jobs)} claims: one winner each; "
          f"wins per node {wins_per_node}; {denied} denied")
    # What the primary holds is what was granted.
    rows = {t: c for t, c in q(PRIMARY, "SELECT task_id, claimer FROM work WHERE task_id LIKE 'race:%'")}
    assert rows == WINNERS, (rows, WINNERS)


def test_signatures_verify_on_every_node():
    assert WINNERS, "needs the race"
    # A message signed on one node, too.
    coord(REPLICA2, "send", "hello from carol", "--to", "alice", agent="carol", check=0)
    for name, url in NODES.items():
        def listed():
            rows = coord_json(url, "list", check=0)
            mine = {r["task_id"]: r for r in rows if r["task_id"].startswith("race:")}
            return mine if len(mine) == len(RACE_TASKS) else None
        rows = poll(f"every race row on {name}", listed)
        # Verified by the coord command on this machine, with its keys.
        for t, r in rows.items():
            assert r["claimer"] == WINNERS[t] and r["verification"] == "verified", (name, r)
        inbox = poll(f"carol's message on {name}",
                     lambda: [m for m in coord_json(url, "inbox", agent="alice", check=0)
                              if m["body"] == "hello from carol"])
        assert inbox[0]["verification"] == "verified", (name, inbox)
        # And by the node's own TEMP view, given the keys on that stream.
        st = server_side_statuses(
            url, "SELECT verification, count(*) FROM coord_work WHERE task_id LIKE 'race:%' "
                 "GROUP BY verification")
        assert st == [["verified", str(len(RACE_TASKS))]], (name, st)


def test_forgery_through_a_replica_detected_everywhere():
    assert WINNERS, "needs the race"
    victim = next(t for t, a in WINNERS.items() if a == "alice")
    # Through a replica (forwarded to the primary): take alice's claim over
    # as bob with a made-up MAC, and plant a new claim as carol.
    fake = "A" * 43 + "="
    _, res = hrana(REPLICA1, [
        f"UPDATE work SET claimer = 'bob', hmac = '{fake}' WHERE task_id = '{victim}'",
        f"INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, hmac) "
        f"VALUES ('forged:1', 'carol', 1, datetime('now'), datetime('now', '+1 hour'), 'claimed', '{fake}')",
    ])
    assert not [r for r in res if isinstance(r, tuple)], res
    for name, url in NODES.items():
        def audited():
            p = coord(url, "audit")
            return p if "forged:1" in p.stdout else None
        p = poll(f"the forgery on {name}", audited)
        assert p.returncode == 1, (name, p.returncode, p.stderr)
        rep = json.loads(p.stdout)
        bad = sorted(f["task_id"] for f in rep["findings"] if f["verification"] == "bad_mac")
        assert bad == sorted([victim, "forged:1"]), (name, rep)
        st = dict(map(tuple, server_side_statuses(
            url, f"SELECT task_id, verification FROM coord_work "
                 f"WHERE task_id IN ('{victim}', 'forged:1')")))
        assert st == {victim: "bad_mac", "forged:1": "bad_mac"}, (name, st)
    # Put the victim back as alice holds it, for the tests after this one.
    hrana(PRIMARY, [f"DELETE FROM work WHERE task_id IN ('{victim}', 'forged:1')"])
    coord(PRIMARY, "claim", victim, "--ttl", "30", agent="alice", check=0)


def test_a_write_the_server_rewrites_is_refused_and_nothing_commits():
    # Someone who can write the server's schema plants triggers that rewrite
    # coord's rows as they land. The check of sql/writes.sql, the same one
    # the write API runs on a file, runs on the primary inside the client's
    # transaction: the write is an error and nothing of it is committed.
    _, res = hrana(PRIMARY, [
        "CREATE TRIGGER rewrite_claim AFTER INSERT ON work WHEN NEW.task_id GLOB 'rewrite:*' "
        "BEGIN UPDATE work SET claimer = 'mallory' WHERE task_id = NEW.task_id; END",
        "CREATE TRIGGER rewrite_send AFTER INSERT ON messages WHEN NEW.body GLOB 'rewrite*' "
        "BEGIN UPDATE messages SET body = 'pay mallory' WHERE id = NEW.id; END",
    ])
    assert not [r for r in res if isinstance(r, tuple)], res
    try:
        for url in (PRIMARY, REPLICA1):
            p = coord(url, "claim", "rewrite:1", agent="bob", check=2)
            assert "did not apply; nothing was committed" in p.stderr, p.stderr
            p = coord(url, "send", "rewrite me", agent="bob", check=2)
            assert "not written as decided; nothing was committed" in p.stderr, p.stderr
        assert q(PRIMARY, "SELECT count(*) FROM work WHERE task_id GLOB 'rewrite:*'") == [["0"]]
        assert q(PRIMARY, "SELECT count(*) FROM messages WHERE body = 'pay mallory' "
                          "OR body GLOB 'rewrite*'") == [["0"]]
    finally:
        hrana(PRIMARY, ["DROP TRIGGER rewrite_claim", "DROP TRIGGER rewrite_send"])
    # Without the plants the same writes land.
    assert coord_json(PRIMARY, "claim", "rewrite:1", agent="bob", check=0)["outcome"] == "granted"
    hrana(PRIMARY, ["DELETE FROM work WHERE task_id = 'rewrite:1'"])


def start_node(args, log):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    env["COORDINATION_SECRETS_DIR"] = os.path.join(CLUSTER_DIR, "no-keys")
    f = open(log, "ab")
    p = subprocess.Popen([SQLD] + args, stdout=f, stderr=subprocess.STDOUT, env=env,
                         cwd=CLUSTER_DIR)
    STARTED.append(p)
    return p


def test_primary_killed_and_restarted_loses_no_granted_claim():
    tasks = [f"failover:{i}" for i in range(40)]
    granted = {}
    errors = []
    samples = []
    failed_on = {}

    def worker(agent):
        url = NODES[AGENTS[agent]]
        for t in tasks:
            if int(t.split(":")[1]) % 3 != list(AGENTS).index(agent):
                continue
            p = coord(url, "--busy-timeout", "3000", "claim", t, "--ttl", "30", agent=agent,
                      timeout=120)
            if p.returncode == 0:
                r = json.loads(p.stdout)
                assert r["outcome"] == "granted", r
                granted[t] = (agent, r["epoch"])
            else:
                # While the primary is down a write fails or times out: an
                # error (exit 2), never a false "granted".
                assert p.returncode == 2, (t, p.returncode, p.stdout, p.stderr)
                errors.append(t)
                samples.append(p.stderr.strip())
                failed_on[AGENTS[agent]] = failed_on.get(AGENTS[agent], 0) + 1

    pid = int(os.environ["COORD_PRIMARY_PID"])
    args = os.environ["COORD_PRIMARY_ARGS"].splitlines()
    with ThreadPoolExecutor(max_workers=3) as ex:
        futs = [ex.submit(worker, a) for a in AGENTS]
        poll("a few claims before the kill", lambda: len(granted) >= 6, timeout=60)
        before_kill = dict(granted)
        os.kill(pid, signal.SIGKILL)
        poll("the primary to be gone", lambda: not health(PRIMARY), timeout=10)
        down_at = time.monotonic()
        # Let the workers run into the outage for a moment, then restart.
        poll("claims to fail while the primary is down", lambda: len(errors) >= 3, timeout=60)
        start_node(args, os.path.join(CLUSTER_DIR, "primary.log"))
        poll("the restarted primary", lambda: health(PRIMARY), timeout=60)
        down_s = time.monotonic() - down_at
        for f in futs:
            f.result()
    # Every claim that was reported granted, before or after the kill, is
    # on the restarted primary and on both replicas, with its MAC.
    for name, url in NODES.items():
        def all_there():
            rows = {r["task_id"]: r for r in coord_json(url, "list", check=0)
                    if r["task_id"].startswith("failover:")}
            return rows if all(t in rows for t in granted) else None
        rows = poll(f"granted claims on {name} after the restart", all_there, timeout=60)
        for t, (agent, epoch) in granted.items():
            r = rows[t]
            assert (r["claimer"], r["epoch"], r["verification"]) == (agent, epoch, "verified"), (name, r)
    # The tasks that failed during the outage can be claimed now, through
    # a replica: writes flow again.
    for t in errors:
        p = coord(REPLICA1, "claim", t, "--ttl", "30", agent="bob", timeout=60)
        r = json.loads(p.stdout) if p.stdout else {}
        assert p.returncode in (0, 1) and r.get("outcome") in ("granted", "denied"), (t, p.stdout, p.stderr)
    print(f"  failover: {len(granted)} claims granted ({len(before_kill)} before the kill), "
          f"{len(errors)} refused with an error while the primary was down {failed_on} "
          f"(down {down_s:.1f} s); after restart all {len(granted)} granted claims present "
          f"and verified on all 3 nodes; 0 lost")
    print(f"  failover: a claim during the outage said: {samples[0][:300]}")


def test_wrong_extension_hash_refuses_to_start():
    d = os.path.join(CLUSTER_DIR, "wrong-ext")
    os.makedirs(d)
    shutil.copy(os.path.join(CLUSTER_DIR, "ext", "libcoord.so"), d)
    with open(os.path.join(d, "trusted.lst"), "w") as f:
        f.write("0" * 64 + "  libcoord.so\n")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = os.path.join(CLUSTER_DIR, "wrong-ext.log")
    p = start_node(["--no-welcome", "-d", os.path.join(CLUSTER_DIR, "wrong-ext-data"), "-e", d,
                    "--http-listen-addr", f"127.0.0.1:{port}"], log)
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("a node with a wrong extension hash kept running")
    assert rc != 0, rc
    assert not health(f"http://127.0.0.1:{port}")
    with open(log, errors="replace") as f:
        text = f.read()
    line = next((l for l in text.splitlines() if "sha256 differs for libcoord.so" in l), None)
    assert line, text[-2000:]
    print(f"  wrong hash: sqld exited with status {rc}: {line.strip()[:200]}")


BIG = 50_000


def timed(fn, runs=3):
    """The fastest of `runs` calls of fn, in seconds (printed, never asserted)."""
    best = None
    for _ in range(runs):
        t0 = time.monotonic()
        fn()
        dt = time.monotonic() - t0
        best = dt if best is None else min(best, dt)
    return best


def test_reads_copy_only_what_they_show_from_a_big_database():
    """`list available` and `inbox` on a server holding 50,000 completed
    tasks and 50,000 other agents' messages get their few rows (filtered
    and paged on the server, verified here); `status` and `audit`, which
    need every row, page through all of them instead of failing with
    "Response is too large"."""
    url = REPLICA1
    coord(PRIMARY, "submit", "big:open-1", check=0)
    coord(PRIMARY, "submit", "big:open-2", check=0)
    coord(PRIMARY, "send", "for alice", "--to", "alice", agent="bob", check=0)
    coord(PRIMARY, "send", "for everyone", agent="carol", check=0)

    def small():
        avail = coord_json(url, "list", "available")
        inbox = coord_json(url, "inbox", agent="alice")
        return avail, inbox

    poll("the small rows on replica1", lambda: {"for alice", "for everyone"}
         <= {m["body"] for m in small()[1]})
    before = {"list available": timed(lambda: coord(url, "list", "available", check=0)),
              "inbox": timed(lambda: coord(url, "inbox", agent="alice", check=0))}
    want_avail = {t["task_id"] for t in small()[0]}
    want_inbox = [(m["body"], m["verification"]) for m in small()[1]]
    assert {"big:open-1", "big:open-2"} <= want_avail
    assert ("for alice", "verified") in want_inbox and ("for everyone", "verified") in want_inbox

    seq = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BIG}) ")
    _, res = hrana(PRIMARY, [
        seq + "INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, "
              "completed_at, result) SELECT 'big:done-' || i, 'agent-' || (i % 97), 1, "
              "'2026-01-01 00:00:00', '2026-01-01 01:00:00', 'completed', "
              "'2026-01-01 00:30:00', 'ok' FROM n",
        seq + "INSERT INTO messages(sender, recipient, channel, body) "
              "SELECT 'agent-' || (i % 97), 'agent-' || (i % 89), 'general', "
              "'progress report number ' || i FROM n",
    ], timeout=120)
    assert not [r for r in res if isinstance(r, tuple)], res
    poll("the big rows on replica1",
         lambda: int(q(url, "SELECT count(*) FROM messages")[0][0]) >= BIG + 2, timeout=60)

    avail, inbox = small()
    assert {t["task_id"] for t in avail} == want_avail, "the same few available tasks"
    assert [(m["body"], m["verification"]) for m in inbox] == want_inbox, "the same inbox"
    after = {"list available": timed(lambda: coord(url, "list", "available", check=0)),
             "inbox": timed(lambda: coord(url, "inbox", agent="alice", check=0))}
    # every row, paged: counts that only a full copy can give
    st = coord_json(url, "status")
    assert st["tasks"].get("completed", 0) >= BIG, st["tasks"]
    assert sum(st["message_verification"].values()) >= BIG + 2, st["message_verification"]
    t0 = time.monotonic()
    # exit 1: the log names what earlier tests did to this shared database
    # (the rewrite:1 row deleted after its granted claim's event)
    audit = coord_json(url, "audit", check=1)
    assert audit["findings"] == [], audit
    assert {p["problem"] for p in audit["history"]["problems"]} == {"deleted"}, audit
    t_audit = time.monotonic() - t0
    assert audit["messages"]["unsigned"] >= BIG and audit["work"]["bad_mac"] == 0, audit
    limited = coord_json(url, "inbox", "--all", "--limit", "1500")
    ids = [m["id"] for m in limited]
    assert len(limited) == 1500 and ids == sorted(ids), "1500 messages, oldest first"
    assert limited[-1]["body"] == f"progress report number {BIG}", "ending with the newest"
    for k in before:
        print(f"  big database: {k} {before[k] * 1000:.0f} ms on a few rows, "
              f"{after[k] * 1000:.0f} ms beside {BIG} completed tasks and {BIG} other messages "
              f"(ratio {after[k] / before[k]:.2f})")
    print(f"  big database: status and audit page through all {2 * BIG} rows; audit took "
          f"{t_audit:.1f} s")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    """Stops the processes the tests started themselves (the restarted
    primary, the wrong-hash node) and removes the work directory."""
    yield
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(WORK, ignore_errors=True)
