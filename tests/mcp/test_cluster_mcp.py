"""`coord mcp` on the libSQL server backend (run by tests/mcp/run.sh inside
tests/cluster/cluster.sh, which exports the nodes' URLs): two servers as two
agents, alice's on the primary and bob's on a replica, race for the same
tasks through the official MCP Python SDK; a message and a forged row are
read back verified and marked. Same code path as on a file: coord-db's
Server backend under the same tools."""

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import call

COORD = os.environ["COORD_BIN"]
PRIMARY = os.environ["COORD_PRIMARY"]
REPLICA = os.environ["COORD_REPLICA1"]
WORK = tempfile.mkdtemp(prefix="coord-mcp-cluster.")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
ENV["COORDINATION_SECRETS_DIR"] = os.path.join(WORK, "secrets")


def coord(*args):
    return subprocess.run([COORD, *args], env=ENV, cwd=WORK, capture_output=True, text=True,
                          check=True, timeout=60)


@contextlib.asynccontextmanager
async def session(url, agent):
    p = StdioServerParameters(command=COORD, args=["--db", url, "--as", agent, "mcp"],
                              env=ENV, cwd=WORK)
    async with stdio_client(p) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            yield s


def hrana(url, sql):
    body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": sql}},
                                    {"type": "close"}]}).encode()
    req = urllib.request.Request(url + "/v2/pipeline", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        d = json.load(r)
    assert d["results"][0]["type"] == "ok", d


def test_two_agents_race_on_a_cluster():
    coord("--db", PRIMARY, "init")
    coord("keygen", "alice")
    coord("keygen", "bob")
    tasks = [f"cluster-race:{i}" for i in range(6)]

    async def main():
        async with session(PRIMARY, "alice") as a, session(REPLICA, "bob") as b:
            me, _ = await call(b, "whoami")
            assert me["db"] == REPLICA

            async def claim_all(s, order):
                return {t: (await call(s, "claim", {"task_id": t}))[0] for t in order}
            ra, rb = await asyncio.gather(claim_all(a, tasks), claim_all(b, tasks[::-1]))
            wins = {"alice": 0, "bob": 0}
            for t in tasks:
                assert sorted([ra[t]["outcome"], rb[t]["outcome"]]) == ["denied", "granted"], t
                winner = ra[t] if ra[t]["outcome"] == "granted" else rb[t]
                wins[winner["agent"]] += 1
            print(f"cluster race over {len(tasks)} tasks: alice won {wins['alice']}, "
                  f"bob won {wins['bob']}")

            r, _ = await call(a, "send", {"body": "from the primary", "to": "bob"})
            assert (r["outcome"], r["signed"]) == ("sent", True)
            hrana(PRIMARY, "INSERT INTO work (task_id, claimer, epoch, status, claimed_at,"
                           " expires_at, hmac) VALUES ('cluster-forged', 'bob', 1, 'claimed',"
                           " datetime('now'), datetime('now', '+1 hour'),"
                           " 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')")
            # The replica catches up within a bounded wait.
            deadline = time.monotonic() + 20
            while True:
                r, _ = await call(b, "inbox")
                if r["messages"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert [(m["sender"], m["body"], m["verification"]) for m in r["messages"]] == \
                [("alice", "from the primary", "verified")]
            r, _ = await call(a, "list")
            marks = {t["task_id"]: t["verification"] for t in r["tasks"]}
            assert marks.pop("cluster-forged") == "bad_mac"
            assert set(marks.values()) == {"verified"} and len(marks) == len(tasks)
            r, _ = await call(a, "audit")
            assert r["ok"] is False and [f["key"] for f in r["findings"]] == ["cluster-forged"]

    asyncio.run(asyncio.wait_for(main(), 120))
