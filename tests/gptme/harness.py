"""What the tests beside gptme-coordination share: the vendored package on
sys.path, coord's built extension and CLI, one key per agent, and the two
ways of acting on one database (gptme's classes, coord's write API).

Runs under a venv of Debian's /usr/bin/python3 (its sqlite3 loads
extensions); tests/gptme/run.sh makes it."""
import os
import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENDOR = Path(os.environ.get("COORD_GPTME", REPO.parent / "shared" / "vendor" / "gptme-coordination"))
sys.path.insert(0, str(VENDOR / "src"))

from gptme_coordination import auth  # noqa: E402,F401
from gptme_coordination.db import CoordinationDB  # noqa: E402
from gptme_coordination.messages import MessageBus  # noqa: E402,F401
from gptme_coordination.work import WorkClaimManager  # noqa: E402

# one write-API runner for every Python test: BEGIN IMMEDIATE, the INSERT,
# coord_result, COMMIT (errors, busy included, roll back and propagate)
sys.path.insert(0, str(REPO / "tests" / "extension"))
from common import run_op  # noqa: E402,F401

EXT = os.environ.get("COORD_EXT", str(REPO / "target" / "release" / "libcoord"))
COORD_BIN = os.environ.get("COORD_BIN", str(REPO / "crates" / "coord-cli" / "target" / "release" / "coord"))

AGENTS = ["alice", "bob", "gptme-0", "gptme-1", "gptme-2", "gptme-3",
          "coord-sql-0", "coord-sql-1", "coord-cli-0", "coord-cli-1"]
# 32 bytes or more (coord refuses shorter keys), distinct per agent
KEYS = {a: f"{a}-key-0123456789abcdef0123456789abcdef".encode() for a in AGENTS}


def write_keys(directory: Path) -> Path:
    """Every agent's key as gptme stores it: <id>.secret, mode 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for agent, key in KEYS.items():
        p = directory / f"{agent}.secret"
        p.write_bytes(key + b"\n")
        os.chmod(p, 0o600)
    return directory


def gptme_manager(db) -> WorkClaimManager:
    return WorkClaimManager(CoordinationDB(Path(db)))


def connect_coord(db, timeout=10.0) -> sqlite3.Connection:
    """A connection with coord loaded; keys come from the usual resolution
    ($COORDINATION_SECRETS_DIR in these tests)."""
    conn = sqlite3.connect(str(db), isolation_level=None, timeout=timeout)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.enable_load_extension(False)
    return conn
