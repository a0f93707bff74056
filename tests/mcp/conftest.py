"""Helpers for the MCP tests: a coordination database with keys for two
agents in a temporary directory, and `coord mcp` servers on it driven by the
official MCP Python SDK over stdio."""

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

COORD = os.environ.get("COORD_BIN") or str(
    Path(__file__).resolve().parents[2] / "crates/coord-cli/target/release/coord"
)


class Env:
    """A database and a secrets directory, with keys for alice and bob."""

    def __init__(self, root: Path):
        self.root = root
        self.db = root / "coord.db"
        self.keys = root / "keys"
        # Nothing from the caller's environment: no agent, database or key.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("COORDINATION_")
            and k not in ("BOB_WORKSPACE", "AGENT_WORKSPACE", "WORKSPACE")
        }
        self.env["COORDINATION_SECRETS_DIR"] = str(self.keys)
        # this test's own witness of the log (docs/history.md)
        self.env["XDG_STATE_HOME"] = str(root / "state")
        self.coord("init")
        for agent in ("alice", "bob"):
            self.coord("keygen", agent)

    def coord(self, *args, check=True):
        return subprocess.run(
            [COORD, "--db", str(self.db), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def params(self, agent, *extra):
        return StdioServerParameters(
            command=COORD,
            args=["--db", str(self.db), "--as", agent, "mcp", *extra],
            env=self.env,
        )

    @contextlib.asynccontextmanager
    async def session(self, agent):
        """An initialized MCP client session with `coord --as agent mcp`."""
        async with stdio_client(self.params(agent)) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                yield s

    def rows(self):
        """Every row of work and messages, read with plain sqlite3."""
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            work = c.execute("SELECT * FROM work ORDER BY task_id").fetchall()
            msgs = c.execute("SELECT * FROM messages ORDER BY id").fetchall()
        return work, msgs

    def sql(self, statement, params=()):
        with contextlib.closing(sqlite3.connect(self.db)) as c:
            c.execute(statement, params)
            c.commit()

    def secret(self, agent):
        return (self.keys / f"{agent}.secret").read_text().strip()


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


async def call(s, tool, args=None):
    """A tool call that must succeed as a tool; returns (structured, text)."""
    r = await s.call_tool(tool, args or {})
    text = "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text")
    assert not r.is_error, f"{tool} {args}: {text}"
    return r.structured_content, text


