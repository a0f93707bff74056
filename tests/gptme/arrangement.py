"""A pytest plugin that runs gptme-coordination's own, unmodified test suite
with coord in the room. Load it with `-p arrangement` and choose the
arrangement with $COORD_ARRANGEMENT:

- `init`: every database the suite opens is created first by `coord init`
  (the CLI at $COORD_BIN), so gptme works on coord's schema and triggers.
- `loaded`: coord's extension ($COORD_EXT) is loaded into each connection
  gptme opens, and `SELECT coord_init()` runs on it every time, as a host
  that embeds coord in gptme's process would do.

The plugin only wraps `CoordinationDB.conn`; gptme's code and tests run as
they are. The session fails if the arrangement never took effect, so a
broken hook cannot pass as a green run.
"""
import os
import subprocess

import pytest
from gptme_coordination.db import CoordinationDB

ARRANGEMENT = os.environ.get("COORD_ARRANGEMENT", "")
COORD_BIN = os.environ.get("COORD_BIN", "")
COORD_EXT = os.environ.get("COORD_EXT", "")

# Databases prepared by coord in this process (forked workers add to their
# own copy, which is lost, so only the parent's count is reported).
prepared = 0


def _coord_init_file(path):
    """`coord init --db PATH` before gptme first opens a new file."""
    global prepared
    if path.exists():
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    done = subprocess.run([COORD_BIN, "--db", str(path), "init"], env=env,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"coord init --db {path} failed: {done.stderr.strip()}")
    prepared += 1


def _load_coord(conn):
    """coord's extension into gptme's connection, then coord_init() on it."""
    global prepared
    conn.enable_load_extension(True)
    try:
        conn.load_extension(COORD_EXT)
    finally:
        conn.enable_load_extension(False)
    conn.execute("SELECT coord_init()")
    # the functions really are there, on gptme's own connection
    if not conn.execute("SELECT coord_version()").fetchone()[0]:
        raise RuntimeError("coord_version() returned nothing")
    prepared += 1


def pytest_configure(config):
    if ARRANGEMENT not in ("init", "loaded"):
        raise pytest.UsageError(f"COORD_ARRANGEMENT must be init or loaded, not {ARRANGEMENT!r}")
    if ARRANGEMENT == "init" and not os.access(COORD_BIN, os.X_OK):
        raise pytest.UsageError(f"COORD_BIN is not an executable: {COORD_BIN!r}")
    if ARRANGEMENT == "loaded" and not os.path.exists(COORD_EXT + ".so"):
        raise pytest.UsageError(f"COORD_EXT.so does not exist: {COORD_EXT!r}")

    plain = CoordinationDB.conn.fget

    def conn(self):
        first = self._conn is None
        if first and ARRANGEMENT == "init":
            _coord_init_file(self.db_path)
        c = plain(self)
        if first and ARRANGEMENT == "loaded":
            _load_coord(c)
        return c

    CoordinationDB.conn = property(conn)


def pytest_terminal_summary(terminalreporter):
    verb = "created by coord init" if ARRANGEMENT == "init" else "opened with coord_init()"
    terminalreporter.write_line(f"coord arrangement {ARRANGEMENT}: {prepared} databases {verb}")


def pytest_sessionfinish(session, exitstatus):
    if prepared == 0 and exitstatus == 0:
        session.exitstatus = 1
        print(f"coord arrangement {ARRANGEMENT}: never took effect")
