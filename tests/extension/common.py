"""Shared helpers for the extension tests: load the built libcoord into
Debian's /usr/bin/python3 sqlite3 module (pyenv's python3 cannot load
extensions), copy the gptme fixture, write key files."""
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
import gptme_ref  # noqa: E402

EXT = os.environ.get("COORD_EXT", str(REPO / "target" / "release" / "libcoord"))
FIXTURE = pathlib.Path(os.environ.get("COORD_FIXTURE", REPO / "tests" / "fixtures" / "gptme"))
VECTORS = json.loads((REPO / "tests" / "vectors.json").read_text())

ALICE = b"alice-test-key-0123456789abcdef0123456789abcdef"
BOB = b"bob-test-key-0123456789abcdef0123456789abcdef"


def connect(path=":memory:", load=True, timeout=5.0):
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=timeout)
    conn.row_factory = sqlite3.Row
    if load:
        conn.enable_load_extension(True)
        conn.load_extension(EXT)
        conn.enable_load_extension(False)
    return conn


def write_key(directory, agent, key: bytes, mode=0o600, name=None):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    p = directory / (name or f"{agent}.secret")
    p.write_bytes(key + b"\n")
    os.chmod(p, mode)
    return p


def copy_fixture(dest):
    """The fixture, writable, secrets at 0600 (the originals are read-only)."""
    dest = pathlib.Path(dest)
    shutil.copytree(FIXTURE, dest / "gptme")
    root = dest / "gptme"
    os.chmod(root, 0o700)
    os.chmod(root / "coord.db", 0o600)
    os.chmod(root / "secrets", 0o700)
    for f in (root / "secrets").iterdir():
        os.chmod(f, 0o600)
    return root


class EnvSandbox:
    """Isolates key lookup: a temp working directory, no COORDINATION_* variables."""

    def __enter__(self):
        self.saved_env = dict(os.environ)
        self.saved_cwd = os.getcwd()
        for k in list(os.environ):
            if k.startswith("COORDINATION_"):
                del os.environ[k]
        self.tmp = tempfile.TemporaryDirectory()
        self.path = pathlib.Path(self.tmp.name)
        os.chdir(self.path)
        return self

    def __exit__(self, *exc):
        os.chdir(self.saved_cwd)
        os.environ.clear()
        os.environ.update(self.saved_env)
        self.tmp.cleanup()


def run_op(conn, view, values, columns="outcome, epoch"):
    """One write-API operation (an INSERT into `view`) in its own BEGIN
    IMMEDIATE transaction; returns `columns` of its coord_result row. Any
    error rolls back and propagates: a busy database is never an outcome."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"INSERT INTO {view} VALUES ({', '.join('?' for _ in values)})", values)
        row = conn.execute(f"SELECT {columns} FROM coord_result").fetchone()
        conn.execute("COMMIT")
        return row
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
