"""Signed history attacked on the three-node libSQL cluster (issue 12; run
by tests/cluster.sh after test_cluster.py, inside tests/cluster/cluster.sh).

A forger who can send raw SQL to the primary (Hrana over HTTP, no coord
keys of the victims, coord's append-only triggers dropped first) deletes,
reorders, edits and replays the log and the rows, and puts back an older
copy of the whole database. Each attack must be named by `coord audit
--json` (exit 1) through the primary and through both replicas, and by the
nodes' own TEMP views (coord_log, coord_work's and coord_messages'
`history` column, coord_checkpoint_log) read on the replicas.
docs/history.md says what each name means.

The cluster is shared with test_cluster.py and the tests here run in file
order: every test uses its own task ids, its own witness directory
($XDG_STATE_HOME), asserts only about its own subjects, and puts back what
it broke, so that the rollback test, last, starts from an intact chain
(a witness does not move forward over a gap or a broken link).

This file makes its own agents' keys (dave holds the tasks, erin is
another agent, mallory is a known agent who forges with his own key):
test_cluster.py removes its key directory when its module ends, and
stops the primary its failover test restarted: the fixture starts it
again (same data, same ports) and stops it, by its pid, at the end.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import gptme_ref  # noqa: E402

COORD = os.environ["COORD_BIN"]
PRIMARY = os.environ["COORD_PRIMARY"]
REPLICA1 = os.environ["COORD_REPLICA1"]
REPLICA2 = os.environ["COORD_REPLICA2"]
REPLICAS = {"replica1": REPLICA1, "replica2": REPLICA2}
CLUSTER_DIR = os.environ["COORD_CLUSTER_DIR"]
AGENTS = ("dave", "erin", "mallory")

WORK = tempfile.mkdtemp(prefix="coord-cluster-history.")
SECRETS = os.path.join(WORK, "secrets")
# This run's task ids: fresh even when the file runs twice on one cluster.
RUN = secrets.token_hex(3)
EVENT_COLS = ("seq", "prev", "op", "subject", "at", "agent", "state", "hmac")
WORK_COLS = ("task_id", "claimer", "epoch", "claimed_at", "expires_at", "status", "result",
             "metadata", "completed_at", "hmac")
TASK_STATE = WORK_COLS[:-1]
APPEND_ONLY = ("coord_events_no_update", "coord_events_no_delete")


# --- helpers ---------------------------------------------------------------

def task(name):
    return f"hist-{RUN}:{name}"


def coord(url, *args, agent=None, xdg, check=None, timeout=120):
    """The coord command as a client machine runs it: this file's keys,
    and a witness in `xdg` (the test's own $XDG_STATE_HOME)."""
    env = dict(os.environ, COORDINATION_SECRETS_DIR=SECRETS, XDG_STATE_HOME=xdg)
    env.pop("COORDINATION_AGENT", None)
    cmd = [COORD, "--db", url, "--json"] + (["--as", agent] if agent else []) + list(args)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=WORK)
    if check is not None and p.returncode != check:
        raise AssertionError(f"{' '.join(cmd)}: exit {p.returncode}, expected {check}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def op(url, *args, agent, xdg):
    """One write, which must succeed. The busy timeout is generous: a
    replica may still be applying a forger's 100,000-row write (the
    rollback test's snapshot) on a loaded machine."""
    return json.loads(coord(url, "--busy-timeout", "30000", *args, agent=agent, xdg=xdg,
                            check=0).stdout)


def audit(url, xdg):
    """`coord audit --json`: (exit status, report)."""
    p = coord(url, "audit", xdg=xdg)
    assert p.returncode in (0, 1), (url, p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def cell(v):
    """A Python value as a Hrana value; a dict is passed through (a value
    as read, typed)."""
    if isinstance(v, dict):
        return v
    if v is None:
        return {"type": "null"}
    if isinstance(v, bool) or isinstance(v, int):
        return {"type": "integer", "value": str(int(v))}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    return {"type": "text", "value": str(v)}


def hrana(url, stmts, timeout=60, typed=False):
    """Runs statements (SQL, or (SQL, [args])) on one stream; returns
    [rows or ('error', msg)]. Values are Hrana's text unless `typed`, then
    the typed cells themselves (to write back as read)."""
    reqs = []
    for s in stmts:
        sql, args = (s, []) if isinstance(s, str) else s
        reqs.append({"type": "execute", "stmt": {"sql": sql, "args": [cell(a) for a in args]}})
    reqs.append({"type": "close"})
    body = json.dumps({"baton": None, "requests": reqs}).encode()
    req = urllib.request.Request(url + "/v2/pipeline", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        d = json.load(r)
    out = []
    for res in d["results"][:-1]:
        if res["type"] == "ok":
            rows = res["response"]["result"]["rows"]
            out.append([list(row) if typed else [c.get("value") for c in row] for row in rows])
        else:
            out.append(("error", res["error"]["message"]))
    return out


def forge(stmts, url=PRIMARY):
    """The forger: raw SQL on the primary, coord's append-only triggers
    dropped first, all in one transaction. Every statement must succeed."""
    res = hrana(url, ["BEGIN"] + [f"DROP TRIGGER IF EXISTS {t}" for t in APPEND_ONLY]
                + list(stmts) + ["COMMIT"])
    errors = [r for r in res if isinstance(r, tuple)]
    assert not errors, errors
    return res


def q(url, sql, args=(), typed=False):
    [rows] = hrana(url, [(sql, list(args))], typed=typed)
    if isinstance(rows, tuple):
        raise AssertionError(f"{url}: {sql}: {rows[1]}")
    return rows


def poll(what, fn, timeout=60.0):
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


def key(agent):
    with open(os.path.join(SECRETS, agent + ".secret"), "rb") as f:
        return f.read().strip()


# How often a replica ran one stream's statements without the keys added
# on that stream (see on_node); printed at the end.
KEYLESS = []


def on_node(url, sql, args=()):
    """A node's own TEMP views, with this file's keys added on the stream.
    The keys live on the node's connection. Outside a transaction, a
    replica that had just received the primary's first writes was seen (in
    about half of the runs, within its first second) to run a later
    statement of the same pipeline on a connection without them
    (coord_key_add answered, the next coord_can_sign said no); inside
    BEGIN it was not seen. So: one read transaction, the query bracketed by
    checks that the keys are there, and a pipeline that lost them anyway
    run again (and counted)."""
    adds = [f"SELECT coord_key_add('{a}', '{key(a).decode()}')" for a in AGENTS]
    have = "SELECT " + " AND ".join(f"coord_can_sign('{a}')" for a in AGENTS)
    for attempt in range(20):
        res = hrana(url, ["BEGIN"] + adds + [have, (sql, list(args)), have, "COMMIT"])
        errors = [r for r in res if isinstance(r, tuple)]
        assert not errors, errors
        res = res[:-1]
        if res[-3] == [["1"]] and res[-1] == [["1"]]:
            return res[-2]
        KEYLESS.append((url, sql[:40], res[-3], res[-1]))
        time.sleep(0.2)
    raise AssertionError(f"{url}: the keys added on a stream were never there for its query")


def events(url, subject):
    """seq -> event (a dict of coord_events' columns, typed cells) of one subject."""
    rows = q(url, f"SELECT {', '.join(EVENT_COLS)} FROM main.coord_events WHERE subject = ?1 "
                  f"ORDER BY seq", [subject], typed=True)
    return {int(r[0]["value"]): dict(zip(EVENT_COLS, r)) for r in rows}


def work_row(url, task_id):
    rows = q(url, f"SELECT {', '.join(WORK_COLS)} FROM main.work WHERE task_id = ?1",
             [task_id], typed=True)
    return dict(zip(WORK_COLS, rows[0])) if rows else None


def text(c):
    return c.get("value")


def log_size(url):
    return int(q(url, "SELECT count(*) FROM main.coord_events")[0][0])


EVENT_RE = re.compile(r"^event (\d+) \((\w+) of (.*) by (.*?)\)")


def problems(rep, subject=None):
    """(problem, seq, op, subject) of the history problems audit names,
    those of `subject` only when given."""
    out = []
    for p in rep["history"]["problems"]:
        if p["seq"] is None:
            continue  # a checkpoint's: not about one event (checkpoint_problems)
        m = EVENT_RE.match(p["detail"])
        assert m, p
        assert int(m.group(1)) == p["seq"], p
        if subject is None or m.group(3) == subject:
            out.append((p["problem"], p["seq"], m.group(2), m.group(3)))
    return sorted(out, key=lambda x: (x[1], x[0]))


def checkpoint_problems(rep):
    return sorted((p["problem"], p["detail"]) for p in rep["history"]["problems"]
                  if p["seq"] is None)


def replicated(what, check):
    """Waits until every replica shows the forger's write (a raw read)."""
    for name, url in REPLICAS.items():
        poll(f"{what} on {name}", lambda: check(url))


def triggers_back(xdg):
    """The next coord client's migration reinstalls the append-only
    triggers the forger dropped."""
    coord(PRIMARY, "init", xdg=xdg, check=0)
    rows = q(PRIMARY, "SELECT name FROM main.sqlite_schema WHERE type = 'trigger' "
                      "AND name IN ('coord_events_no_update', 'coord_events_no_delete')")
    assert sorted(r[0] for r in rows) == sorted(APPEND_ONLY), rows
    # (in a transaction rolled back, should the triggers not be there)
    res = hrana(PRIMARY, ["BEGIN", "DELETE FROM main.coord_events WHERE seq = 1",
                          "UPDATE main.coord_events SET seq = seq WHERE seq = 1", "ROLLBACK"])
    assert all(isinstance(r, tuple) and "append-only" in r[1] for r in res[1:3]), res


@pytest.fixture
def xdg():
    """A fresh $XDG_STATE_HOME: this test's own witness."""
    d = tempfile.mkdtemp(prefix="xdg.", dir=WORK)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def health(url):
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="module", autouse=True)
def _cluster():
    """The primary up (test_cluster.py's failover test restarts it as its
    own process and stops it when its module ends: then it is started
    again here, on the same data and ports, and stopped by its pid at the
    end), and this file's keys."""
    started = None
    if not health(PRIMARY):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
        env["COORDINATION_SECRETS_DIR"] = os.path.join(CLUSTER_DIR, "no-keys")
        log = open(os.path.join(CLUSTER_DIR, "primary.log"), "ab")
        started = subprocess.Popen([os.environ["COORD_SQLD"]]
                                   + os.environ["COORD_PRIMARY_ARGS"].splitlines(),
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=CLUSTER_DIR)
        log.close()
        poll("the primary, started again", lambda: health(PRIMARY))
    try:
        d = tempfile.mkdtemp(prefix="setup.", dir=WORK)
        for a in AGENTS:
            coord(PRIMARY, "keygen", a, xdg=d, check=0)
        coord(PRIMARY, "init", xdg=d, check=0)
        # the replicas follow the primary again
        poll("writes through replica1", lambda: coord(
            REPLICA1, "submit", task("replicas-up"), agent="erin", xdg=d).returncode == 0)
        yield
    finally:
        if KEYLESS:
            print(f"\n  on_node: {len(KEYLESS)} pipeline(s) ran without their stream's keys "
                  f"and were run again: {KEYLESS[:3]}")
        if started is not None and started.poll() is None:
            started.kill()
            started.wait()
        shutil.rmtree(WORK, ignore_errors=True)


# --- the attacks -----------------------------------------------------------

def test_server_log_is_signed_and_chained(xdg):
    """Before any attack: a task's events, written through a replica and the
    primary, verify and chain on every node, and its row matches."""
    t = task("clean")
    op(REPLICA1, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    op(PRIMARY, "complete", t, "--result", "done", agent="dave", xdg=xdg)
    ev = events(PRIMARY, t)
    assert [text(e["op"]) for e in ev.values()] == ["submit", "claim", "complete"], ev
    seqs = list(ev)
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        poll(f"{t}'s events on {name}", lambda: len(events(url, t)) == 3)
        rows = on_node(url, "SELECT seq, verification, chain, actor, row FROM coord_log "
                            "WHERE subject = ?1 ORDER BY seq", [t])
        assert rows == [[str(seqs[0]), "verified", "ok", "ok", "superseded"],
                        [str(seqs[1]), "verified", "ok", "ok", "superseded"],
                        [str(seqs[2]), "verified", "ok", "ok", "matches"]], (name, rows)
        assert on_node(url, "SELECT history FROM coord_work WHERE task_id = ?1", [t]) \
            == [["matches"]], name
        rc, rep = audit(url, xdg + "/" + name)
        assert problems(rep, t) == [], (name, rep["history"])
        assert rep["witness"] == [], (name, rep["witness"])


def test_a_deleted_event_is_a_gap_and_a_rollback(xdg):
    t = task("deleted-event")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(PRIMARY, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    op(REPLICA2, "claim", t, "--ttl", "60", agent="dave", xdg=xdg)
    ev = events(PRIMARY, t)
    claim, renew = [s for s, e in ev.items() if text(e["op"]) in ("claim", "renew")]
    assert renew == claim + 1, ev
    # this client has read the log up to here
    rc, rep = audit(PRIMARY, xdg)
    assert problems(rep, t) == [] and rep["witness"] == [], rep
    size = log_size(PRIMARY)
    gone = ev[claim]
    forge([("DELETE FROM main.coord_events WHERE seq = ?1", [claim])])
    try:
        replicated("the deleted event", lambda url: not events(url, t).get(claim))
        rc, rep = audit(PRIMARY, xdg)
        assert rc == 1
        assert problems(rep, t) == [("gap", renew, "renew", t)], rep["history"]["problems"]
        # the log is one shorter than this client saw: its newest events
        # deleted, or an older copy
        assert [w["problem"] for w in rep["witness"]] == ["rollback"], rep["witness"]
        assert f"saw {size} events" in rep["witness"][0]["detail"], rep["witness"]
        for name, url in REPLICAS.items():
            rc, rep = audit(url, xdg + "/" + name)
            assert rc == 1 and problems(rep, t) == [("gap", renew, "renew", t)], (name, rep)
            assert on_node(url, "SELECT chain FROM coord_log WHERE seq = ?1", [renew]) \
                == [["gap"]], name
    finally:
        forge([(f"INSERT INTO main.coord_events({', '.join(EVENT_COLS)}) "
                f"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", [gone[c] for c in EVENT_COLS])])
    triggers_back(xdg)
    replicated("the event put back", lambda url: claim in events(url, t))
    rc, rep = audit(REPLICA1, xdg + "/after")
    assert problems(rep, t) == [], rep["history"]["problems"]


def test_a_deleted_work_row_is_reported(xdg):
    t = task("deleted-row")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    [(claim, _)] = [(s, e) for s, e in events(PRIMARY, t).items() if text(e["op"]) == "claim"]
    row = work_row(PRIMARY, t)
    forge([("DELETE FROM main.work WHERE task_id = ?1", [t])])
    try:
        replicated("the deleted row", lambda url: work_row(url, t) is None)
        for name, url in {"primary": PRIMARY, **REPLICAS}.items():
            rc, rep = audit(url, xdg + "/" + name)
            assert rc == 1, name
            assert problems(rep, t) == [("deleted", claim, "claim", t)], (name, rep["history"])
            # no row is left to fail its MAC: only the log knows
            assert not [f for f in rep["findings"] if f.get("task_id") == t], rep["findings"]
            assert on_node(url, "SELECT row FROM coord_log WHERE seq = ?1", [claim]) \
                == [["deleted"]], name
    finally:
        forge([(f"INSERT INTO main.work({', '.join(WORK_COLS)}) "
                f"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", [row[c] for c in WORK_COLS])])
    triggers_back(xdg)
    replicated("the row put back", lambda url: work_row(url, t) is not None)
    rc, rep = audit(REPLICA2, xdg + "/after")
    assert problems(rep, t) == [], rep["history"]["problems"]


def write_events(ev, moves):
    """Statements writing, for each (src, dst) in moves, the contents (all
    but seq) of event src as read in ev at seq dst."""
    cols = EVENT_COLS[1:]
    sets = ", ".join(f"{c} = ?{i + 2}" for i, c in enumerate(cols))
    return [(f"UPDATE main.coord_events SET {sets} WHERE seq = ?1",
             [dst] + [ev[src][c] for c in cols]) for src, dst in moves]


def test_two_reordered_events_break_the_chain(xdg):
    t = task("reordered")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(PRIMARY, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "60", agent="dave", xdg=xdg)
    op(REPLICA2, "complete", t, "--result", "done", agent="dave", xdg=xdg)
    ev = events(PRIMARY, t)
    sub, claim, renew, done = ev
    assert [claim, renew, done] == [sub + 1, sub + 2, sub + 3], ev
    # the renewal now comes before the claim it renews
    forge(write_events(ev, [(claim, renew), (renew, claim)]))
    try:
        replicated("the swap", lambda url: text(events(url, t)[claim]["op"]) == "renew")
        want = [("bad_mac", claim, "renew", t), ("broken", claim, "renew", t),
                ("bad_mac", renew, "claim", t), ("broken", renew, "claim", t),
                # the completion names the renewal's old link, no longer there
                ("broken", done, "complete", t)]
        for name, url in {"primary": PRIMARY, **REPLICAS}.items():
            rc, rep = audit(url, xdg + "/" + name)
            assert rc == 1, name
            assert problems(rep, t) == want, (name, rep["history"]["problems"])
            rows = on_node(url, "SELECT seq, op, verification, chain FROM coord_log "
                                "WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq", [sub, done])
            assert rows == [[str(sub), "submit", "verified", "ok"],
                            [str(claim), "renew", "bad_mac", "broken"],
                            [str(renew), "claim", "bad_mac", "broken"],
                            [str(done), "complete", "verified", "broken"]], (name, rows)
    finally:
        forge(write_events(ev, [(claim, claim), (renew, renew)]))
    triggers_back(xdg)
    replicated("the order put back", lambda url: text(events(url, t)[claim]["op"]) == "claim")
    rc, rep = audit(REPLICA1, xdg + "/after")
    assert problems(rep, t) == [], rep["history"]["problems"]


def test_an_edited_result_fails_its_mac_and_the_next_link(xdg):
    t, after = task("edited"), task("edited-next")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(PRIMARY, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    op(REPLICA1, "complete", t, "--result", "42 widgets", agent="dave", xdg=xdg)
    op(PRIMARY, "submit", after, agent="erin", xdg=xdg)
    ev = events(PRIMARY, t)
    done = max(ev)
    [nxt] = events(PRIMARY, after)
    assert text(ev[done]["op"]) == "complete" and nxt == done + 1, (ev, nxt)
    state = json.loads(text(ev[done]["state"]))
    assert state[TASK_STATE.index("result")] == "42 widgets", state
    state[TASK_STATE.index("result")] = "4200 widgets"
    forged = gptme_ref.canonical(state).decode()
    # the event and the row agree again, so the row alone looks fine
    forge([("UPDATE main.coord_events SET state = ?2 WHERE seq = ?1", [done, forged]),
           ("UPDATE main.work SET result = '4200 widgets' WHERE task_id = ?1", [t])])
    try:
        replicated("the edit", lambda url: text(events(url, t)[done]["state"]) == forged)
        for name, url in {"primary": PRIMARY, **REPLICAS}.items():
            rc, rep = audit(url, xdg + "/" + name)
            assert rc == 1, name
            assert problems(rep, t) == [("bad_mac", done, "complete", t)], (name, rep["history"])
            assert problems(rep, after) == [("broken", nxt, "submit", after)], \
                (name, rep["history"])
            assert rep["history"]["work_history"].get("unverified_event", 0) >= 1, rep["history"]
            # the row's four signed fields are untouched: it still verifies
            assert not [f for f in rep["findings"] if f.get("task_id") == t], rep["findings"]
            assert on_node(url, "SELECT verification, history FROM coord_work WHERE task_id = ?1",
                           [t]) == [["verified", "unverified_event"]], name
    finally:
        forge([("UPDATE main.coord_events SET state = ?2 WHERE seq = ?1", [done, ev[done]["state"]]),
               ("UPDATE main.work SET result = '42 widgets' WHERE task_id = ?1", [t])])
    triggers_back(xdg)
    replicated("the result put back", lambda url: events(url, t)[done]["state"] == ev[done]["state"])
    rc, rep = audit(REPLICA2, xdg + "/after")
    assert problems(rep, t) == [] and problems(rep, after) == [], rep["history"]["problems"]


def test_an_old_claim_row_replayed_reads_changed(xdg):
    """dave's first claim row, with its valid MAC, put back after he renewed
    and completed the task: every row still verifies; the log says the row
    is not what its last event made it."""
    t = task("replayed")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    old = work_row(PRIMARY, t)
    op(REPLICA2, "claim", t, "--ttl", "90", agent="dave", xdg=xdg)
    op(PRIMARY, "complete", t, "--result", "shipped", agent="dave", xdg=xdg)
    done = max(events(PRIMARY, t))
    now = work_row(PRIMARY, t)
    assert text(now["expires_at"]) != text(old["expires_at"]) and text(now["status"]) == "completed"
    sets = ", ".join(f"{c} = ?{i + 2}" for i, c in enumerate(WORK_COLS[1:]))
    forge([(f"UPDATE main.work SET {sets} WHERE task_id = ?1",
            [t] + [old[c] for c in WORK_COLS[1:]])])
    replicated("the replayed row", lambda url: text(work_row(url, t)["status"]) == "claimed")
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        assert problems(rep, t) == [("changed", done, "complete", t)], (name, rep["history"])
        # the replayed MAC is dave's and verifies: no row finding
        assert not [f for f in rep["findings"] if f.get("task_id") == t], rep["findings"]
        assert on_node(url, "SELECT claimer, verification, history FROM coord_work "
                            "WHERE task_id = ?1", [t]) == [["dave", "verified", "changed"]], name
        assert on_node(url, "SELECT row FROM coord_log WHERE seq = ?1", [done]) \
            == [["changed"]], name
    forge([(f"UPDATE main.work SET {sets} WHERE task_id = ?1",
            [t] + [now[c] for c in WORK_COLS[1:]])])
    triggers_back(xdg)


def test_a_replayed_claim_of_an_earlier_epoch_reads_changed(xdg):
    """dave abandons, erin claims (epoch 2); the forger drops the epoch
    trigger and puts dave's epoch-1 row back with its valid MAC."""
    t = task("replayed-epoch")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(PRIMARY, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    old = work_row(PRIMARY, t)
    op(REPLICA1, "abandon", t, agent="dave", xdg=xdg)
    r = op(REPLICA2, "claim", t, "--ttl", "30", agent="erin", xdg=xdg)
    assert (r["outcome"], r["epoch"]) == ("granted", 2), r
    last = max(events(PRIMARY, t))
    now = work_row(PRIMARY, t)
    sets = ", ".join(f"{c} = ?{i + 2}" for i, c in enumerate(WORK_COLS[1:]))
    forge(["DROP TRIGGER IF EXISTS coord_work_epoch_up",
           (f"UPDATE main.work SET {sets} WHERE task_id = ?1", [t] + [old[c] for c in WORK_COLS[1:]])])
    replicated("the replayed epoch", lambda url: text(work_row(url, t)["claimer"]) == "dave")
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        assert problems(rep, t) == [("changed", last, "claim", t)], (name, rep["history"])
        assert not [f for f in rep["findings"] if f.get("task_id") == t], rep["findings"]
        assert on_node(url, "SELECT claimer, epoch, verification, history FROM coord_work "
                            "WHERE task_id = ?1", [t]) == [["dave", "1", "verified", "changed"]], name
    forge([(f"UPDATE main.work SET {sets} WHERE task_id = ?1", [t] + [now[c] for c in WORK_COLS[1:]])])
    triggers_back(xdg)
    assert q(PRIMARY, "SELECT count(*) FROM main.sqlite_schema WHERE name = 'coord_work_epoch_up'") \
        == [["1"]]


def test_a_completion_by_a_non_holder_with_plain_sql(xdg):
    """mallory completes dave's claim in dave's name with plain SQL: the
    four signed fields are dave's, so the row verifies; its history is
    changed."""
    t = task("plain-completion")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA2, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    claim = max(events(PRIMARY, t))
    forge([("UPDATE main.work SET status = 'completed', result = 'mallory did it', "
            "completed_at = datetime('now') WHERE task_id = ?1", [t])])
    replicated("the plain completion", lambda url: text(work_row(url, t)["status"]) == "completed")
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        assert problems(rep, t) == [("changed", claim, "claim", t)], (name, rep["history"])
        assert not [f for f in rep["findings"] if f.get("task_id") == t], rep["findings"]
        assert on_node(url, "SELECT status, verification, history FROM coord_work "
                            "WHERE task_id = ?1", [t]) == [["completed", "verified", "changed"]], name
        listed = {r["task_id"]: r for r in json.loads(
            coord(url, "list", xdg=xdg, check=0).stdout)}
        assert listed[t]["verification"] == "verified", listed[t]


def test_a_completion_mallory_signs_himself_names_him_not_the_holder(xdg):
    """mallory also appends a well-formed event for his completion, signed
    with his own key and chained to the head: it verifies and links, and
    the log names him as not the holder."""
    t = task("signed-completion")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    at = "2026-12-07 12:00:00"
    # read the head and append in the forger's one transaction
    forge([("UPDATE main.work SET status = 'completed', result = 'mallory', completed_at = ?2 "
            "WHERE task_id = ?1", [t, at])])
    row = work_row(PRIMARY, t)
    state = gptme_ref.canonical([(int(text(row[c])) if c == "epoch" else text(row[c]))
                                 for c in TASK_STATE]).decode()
    [[seq, head]] = q(PRIMARY, "SELECT seq, link FROM coord_log ORDER BY seq DESC LIMIT 1")
    seq = int(seq) + 1
    mac = gptme_ref.sign(key("mallory"), ["mallory", "coord:event/1", seq, head, "complete", t,
                                          at, state])
    forge([(f"INSERT INTO main.coord_events({', '.join(EVENT_COLS)}) "
            f"VALUES (?1, ?2, 'complete', ?3, ?4, 'mallory', ?5, ?6)", [seq, head, t, at, state, mac])])
    triggers_back(xdg)
    replicated("mallory's event", lambda url: seq in events(url, t))
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        assert problems(rep, t) == [("not_holder", seq, "complete", t)], (name, rep["history"])
        assert on_node(url, "SELECT verification, chain, actor, row FROM coord_log WHERE seq = ?1",
                       [seq]) == [["verified", "ok", "not_holder", "matches"]], name
        assert on_node(url, "SELECT verification, history FROM coord_work WHERE task_id = ?1",
                       [t]) == [["verified", "not_holder"]], name
    # the chain is intact: coord's next write extends mallory's event
    op(PRIMARY, "submit", task("after-mallory"), agent="erin", xdg=xdg)
    assert on_node(PRIMARY, "SELECT chain FROM coord_log WHERE subject = ?1",
                   [task("after-mallory")]) == [["ok"]]


def test_a_changed_and_a_deleted_message_are_reported(xdg):
    op(REPLICA1, "send", f"{task('msg')}: ship it", "--to", "erin", agent="dave", xdg=xdg)
    [[mid]] = q(PRIMARY, "SELECT max(id) FROM main.messages WHERE body = ?1",
                [f"{task('msg')}: ship it"])
    # the event names the message by its id as text (docs/history.md)
    [send] = events(PRIMARY, mid)
    rows = q(PRIMARY, "SELECT id, sender, recipient, channel, body, hmac, created_at "
                      "FROM main.messages WHERE id = ?1", [int(mid)], typed=True)
    for name, url in REPLICAS.items():
        poll(f"the message on {name}", lambda: on_node(
            url, "SELECT verification, history FROM coord_messages WHERE id = ?1", [int(mid)])
             == [["verified", "matches"]])
    # the body changed, the MAC kept (the stale-MAC trigger dropped too)
    forge(["DROP TRIGGER IF EXISTS coord_messages_stale_mac",
           ("UPDATE main.messages SET body = 'pay mallory' WHERE id = ?1", [int(mid)])])
    replicated("the changed body", lambda url: q(
        url, "SELECT body FROM main.messages WHERE id = ?1", [int(mid)]) == [["pay mallory"]])
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/changed-" + name)
        assert rc == 1, name
        assert problems(rep, mid) == [("changed", send, "send", mid)], (name, rep["history"])
        assert [f["verification"] for f in rep["findings"] if f.get("id") == int(mid)] \
            == ["bad_mac"], rep["findings"]
        assert on_node(url, "SELECT verification, history FROM coord_messages WHERE id = ?1",
                       [int(mid)]) == [["bad_mac", "changed"]], name
    forge([("DELETE FROM main.messages WHERE id = ?1", [int(mid)])])
    try:
        replicated("the deleted message", lambda url: q(
            url, "SELECT count(*) FROM main.messages WHERE id = ?1", [int(mid)]) == [["0"]])
        for name, url in {"primary": PRIMARY, **REPLICAS}.items():
            rc, rep = audit(url, xdg + "/deleted-" + name)
            assert rc == 1, name
            assert problems(rep, mid) == [("deleted", send, "send", mid)], (name, rep["history"])
            assert on_node(url, "SELECT row FROM coord_log WHERE seq = ?1", [send]) \
                == [["deleted"]], name
    finally:
        forge([("INSERT INTO main.messages(id, sender, recipient, channel, body, hmac, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", rows[0])])
    triggers_back(xdg)
    replicated("the message put back", lambda url: q(
        url, "SELECT count(*) FROM main.messages WHERE id = ?1", [int(mid)]) == [["1"]])
    rc, rep = audit(REPLICA2, xdg + "/after")
    assert problems(rep, mid) == [], rep["history"]["problems"]


def test_the_newest_event_deleted_and_written_over_is_a_fork(xdg):
    """The forger deletes the log's newest event (dave's completion) and
    puts the row back as dave's claim left it; the next client write takes
    the freed seq and chains to the event before, so the log is a clean
    chain again and every row matches. A client that had read the old
    head knows: the event at that size is not the one it saw."""
    t = task("truncated")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    claimed = work_row(PRIMARY, t)
    op(REPLICA2, "complete", t, "--result", "done", agent="dave", xdg=xdg)
    done = max(events(PRIMARY, t))
    size = log_size(PRIMARY)
    assert q(PRIMARY, "SELECT max(seq) FROM main.coord_events") == [[str(done)]]
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        poll(f"{size} events on {name}", lambda: log_size(url) == size)
        rc, rep = audit(url, xdg + "/" + name)
        assert rep["witness"] == [] and problems(rep, t) == [], (name, rep)
        assert not [p for p in problems(rep) if p[0] in ("gap", "broken")], rep["history"]
    sets = ", ".join(f"{c} = ?{i + 2}" for i, c in enumerate(WORK_COLS[1:]))
    forge([("DELETE FROM main.coord_events WHERE seq = ?1", [done]),
           (f"UPDATE main.work SET {sets} WHERE task_id = ?1",
            [t] + [claimed[c] for c in WORK_COLS[1:]])])
    triggers_back(xdg)
    op(REPLICA1, "submit", task("over-the-gap"), agent="erin", xdg=xdg)
    assert list(events(PRIMARY, task("over-the-gap"))) == [done]
    replicated("the event written over", lambda url: done in events(url, task("over-the-gap")))
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        # the log itself is clean about both tasks ...
        assert problems(rep, t) == [] and problems(rep, task("over-the-gap")) == [], rep["history"]
        assert on_node(url, "SELECT status, verification, history FROM coord_work "
                            "WHERE task_id = ?1", [t]) == [["claimed", "verified", "matches"]]
        # ... only this client's witness knows
        assert [(w["problem"], w["seq"]) for w in rep["witness"]] == [("fork", done)], \
            (name, rep["witness"])
    rc, rep = audit(REPLICA2, xdg + "/fresh")
    assert rep["witness"] == [], rep["witness"]


def witnessed(xdg_dir):
    """The sizes this client's witness remembers, per log file."""
    d = os.path.join(xdg_dir, "coord")
    out = {}
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if f.startswith("log-"):
            with open(os.path.join(d, f)) as fh:
                out[f] = json.load(fh)["size"]
    return out


def warnings(p):
    return [l for l in p.stderr.splitlines() if l.startswith("coord: warning: ")]


def test_every_read_checks_what_the_log_grew_by(xdg):
    """`list` and `inbox` through a replica run the witness's cheap check:
    a client that has read the log once fetches only the events after what
    it saw, and a new event that does not follow on is a warning (the read
    still shows the rows); once the log is whole again the witness moves
    on."""
    t = task("read-witness")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(PRIMARY, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    size = log_size(PRIMARY)
    replicated("the claim", lambda url: log_size(url) == size)
    reader = xdg + "/reader"
    p = coord(REPLICA1, "list", "all", xdg=reader, check=0)
    assert warnings(p) == [], p.stderr
    seen = witnessed(reader)
    # one memory, for this URL, of the whole log
    assert list(seen.values()) == [size], seen
    [name] = seen
    assert re.fullmatch(r"log-[0-9a-f]{64}-[0-9a-f]{32}\.json", name), name

    op(PRIMARY, "claim", t, "--ttl", "60", agent="dave", xdg=xdg)
    op(PRIMARY, "send", f"{t}: renewed", "--to", "erin", agent="dave", xdg=xdg)
    ev = events(PRIMARY, t)
    renew = max(ev)
    assert text(ev[renew]["op"]) == "renew", ev
    gone = ev[renew]
    forge([("DELETE FROM main.coord_events WHERE seq = ?1", [renew])])
    try:
        replicated("the deleted event", lambda url: renew not in events(url, t))
        for args, agent in ((("list", "all"), None), (("inbox",), "erin")):
            p = coord(REPLICA1, *args, agent=agent, xdg=reader, check=0)
            w = warnings(p)
            assert len(w) == 1 and "GAP" in w[0] and f"event {renew + 1}" in w[0], (args, w)
            assert t in p.stdout or "renewed" in p.stdout, (args, p.stdout)
        # remembered only up to the last event that followed on
        assert witnessed(reader) == {name: renew - 1}, witnessed(reader)
        st = json.loads(coord(REPLICA1, "status", xdg=reader, check=0).stdout)
        assert [w["problem"] for w in st["witness"]] == ["gap"], st["witness"]
    finally:
        forge([(f"INSERT INTO main.coord_events({', '.join(EVENT_COLS)}) "
                f"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", [gone[c] for c in EVENT_COLS])])
    triggers_back(xdg)
    replicated("the event put back", lambda url: renew in events(url, t))
    now = log_size(PRIMARY)
    replicated("every event", lambda url: log_size(url) == now)
    p = coord(REPLICA1, "list", "all", xdg=reader, check=0)
    assert warnings(p) == [], p.stderr
    assert witnessed(reader) == {name: now}, witnessed(reader)


def test_an_older_copy_of_the_whole_database_is_a_rollback(xdg):
    """A client audits; the forger then writes back a copy of every row of
    work, messages and coord_events taken a few operations earlier. The
    copy is consistent (every MAC and link verifies, every row matches its
    last event); only the client's witness, outside the database, knows."""
    t = task("rolled-back")
    op(PRIMARY, "submit", t, agent="dave", xdg=xdg)
    op(REPLICA1, "claim", t, "--ttl", "30", agent="dave", xdg=xdg)
    tables = ("work", "messages", "coord_events")
    forge([f"DROP TABLE IF EXISTS main.snap_{n}" for n in tables]
          + [f"CREATE TABLE main.snap_{n} AS SELECT * FROM main.{n}" for n in tables])
    old_size = log_size(PRIMARY)
    replicated("the snapshot", lambda url: q(url, "SELECT count(*) FROM main.snap_coord_events")
               == [[str(old_size)]])
    try:
        op(REPLICA2, "claim", t, "--ttl", "60", agent="dave", xdg=xdg)
        op(PRIMARY, "complete", t, "--result", "done", agent="dave", xdg=xdg)
        op(REPLICA1, "send", f"{t} is done", "--to", "erin", agent="dave", xdg=xdg)
        size = log_size(PRIMARY)
        assert size == old_size + 3
        # dave also signs a checkpoint of the newer log, on his machine,
        # and stores it (the forger's copy leaves coord_checkpoints alone)
        [[origin]] = q(PRIMARY, "SELECT link FROM coord_log WHERE seq = 1")
        [[head]] = q(PRIMARY, "SELECT link FROM coord_log ORDER BY seq DESC LIMIT 1")
        at = "2026-12-08 01:00:00"
        mac = gptme_ref.sign(key("dave"), ["dave", "coord:checkpoint/1", origin, size, head, at])
        [[cp]] = q(PRIMARY, "INSERT INTO main.coord_checkpoints(agent, origin, size, head, at, hmac) "
                            "VALUES ('dave', ?1, ?2, ?3, ?4, ?5) RETURNING id",
                   [origin, size, head, at, mac])
        assert on_node(PRIMARY, "SELECT verification, consistency FROM coord_checkpoint_log "
                                "WHERE id = ?1", [int(cp)]) == [["verified", "consistent"]]
        # each node's reader has seen the newer log (its own witness)
        for name, url in {"primary": PRIMARY, **REPLICAS}.items():
            poll(f"{size} events on {name}", lambda: log_size(url) == size)
            rc, rep = audit(url, xdg + "/" + name)
            assert problems(rep, t) == [] and rep["witness"] == [], (name, rep)
            assert not [p for p in problems(rep) if p[0] in ("gap", "broken")], \
                ("the witness only moves over an intact chain", name, rep["history"])
            assert rep["history"]["events"] == size, (name, rep["history"])
        forge([s for n in tables for s in (f"DELETE FROM main.{n}",
                                            f"INSERT INTO main.{n} SELECT * FROM main.snap_{n}")])
    finally:
        hrana(PRIMARY, [f"DROP TABLE IF EXISTS main.snap_{n}" for n in tables])
    triggers_back(xdg)
    replicated("the older copy", lambda url: log_size(url) == old_size)
    for name, url in {"primary": PRIMARY, **REPLICAS}.items():
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1, name
        # the copy is consistent: nothing about the task itself
        assert problems(rep, t) == [], (name, rep["history"]["problems"])
        assert on_node(url, "SELECT status, verification, history FROM coord_work "
                            "WHERE task_id = ?1", [t]) == [["claimed", "verified", "matches"]], name
        assert [w["problem"] for w in rep["witness"]] == ["rollback"], (name, rep["witness"])
        assert f"saw {size} events" in rep["witness"][0]["detail"], rep["witness"]
        assert f"now has {old_size}" in rep["witness"][0]["detail"], rep["witness"]
        # dave's checkpoint, left in the database, is ahead of the log too
        assert [p for p, d in checkpoint_problems(rep) if f"checkpoint {cp} " in d] \
            == ["checkpoint_ahead"], rep["history"]["problems"]
        assert on_node(url, "SELECT consistency FROM coord_checkpoint_log WHERE id = ?1",
                       [int(cp)]) == [["ahead"]], name
        # reported again until someone looks: the memory does not move back
        rc, rep = audit(url, xdg + "/" + name)
        assert rc == 1 and [w["problem"] for w in rep["witness"]] == ["rollback"], name
    # a reader that never saw the newer log, and no checkpoint of it, cannot tell
    hrana(PRIMARY, [("DELETE FROM main.coord_checkpoints WHERE id = ?1", [int(cp)])])
    replicated("the checkpoint gone", lambda url: q(
        url, "SELECT count(*) FROM main.coord_checkpoints WHERE id = ?1", [int(cp)]) == [["0"]])
    rc, rep = audit(REPLICA1, xdg + "/fresh")
    assert rep["witness"] == [] and problems(rep, t) == [], rep
    assert not [p for p, d in checkpoint_problems(rep) if f"checkpoint {cp} " in d], rep["history"]
