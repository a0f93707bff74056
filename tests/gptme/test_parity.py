"""coord beside the real gptme-coordination package (vendored in
../shared/vendor/gptme-coordination), on one database: the rows and
decisions where the two once differed (issue 16), each a test.

Run by tests/gptme/run.sh (pytest in a venv of Debian's python3)."""
import multiprocessing
import os
import sqlite3
import sys
import time
import unittest

from harness import REPO, CoordinationDB, WorkClaimManager, auth

sys.path.insert(0, str(REPO / "tests" / "extension"))
from common import ALICE, BOB, EnvSandbox, connect, gptme_ref, run_op, write_key  # noqa: E402

# coord's stored triggers, as sql/triggers.sql defines them
STORED_TRIGGERS = (REPO / "crates/coord-sql/sql/triggers.sql").read_text().count("\nCREATE TRIGGER ")


def hold_write_lock(path, seconds, ready):
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO messages(sender, body) VALUES ('gptme', 'writing')")
    ready.set()
    time.sleep(seconds)
    c.execute("COMMIT")


class Parity(unittest.TestCase):
    def setUp(self):
        self.sandbox = EnvSandbox().__enter__()
        self.dir = self.sandbox.path
        self.db = self.dir / "coord.db"

    def tearDown(self):
        self.sandbox.__exit__(None, None, None)

    def coord(self, **kw):
        conn = connect(self.db, **kw)
        conn.execute("SELECT coord_init()")
        return conn

    def gptme(self):
        return WorkClaimManager(CoordinationDB(self.db))

    def test_abandon_writes_gptmes_row_and_gptme_offers_the_task_at_once(self):
        conn = self.coord()
        conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
        self.assertEqual(run_op(conn, "coord_claim", ("t", "alice", 60), "outcome")[0], "granted")
        self.assertEqual(run_op(conn, "coord_abandon", ("t", "alice", 1), "outcome")[0], "abandoned")
        row = conn.execute("SELECT claimer, epoch, expires_at, completed_at, hmac, status, result"
                           " FROM work").fetchone()
        self.assertEqual(tuple(row), (None, 1, None, None, None, "abandoned", None))
        # the row gptme's own abandon writes, column for column
        g = self.gptme()
        self.assertIn("t", [c.task_id for c in g.list_available()])
        other = self.dir / "g.db"
        gw = WorkClaimManager(CoordinationDB(other))
        gw.claim("alice", "t")
        gw.abandon("alice", "t")
        gr = gw.db.conn.execute("SELECT claimer, epoch, expires_at, completed_at, hmac, status, result"
                                " FROM work").fetchone()
        self.assertEqual(tuple(gr), tuple(row))
        # and the next claim, by either side, fences at epoch 2
        self.assertEqual(tuple(run_op(conn, "coord_claim", ("t", "bob", 60), "outcome, epoch")), ("granted", 2))

    def test_a_claim_is_live_through_its_expiry_second(self):
        conn = self.coord()
        conn.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status)"
                     " VALUES ('t', 'alice', 1, NULL, 'claimed')")
        seen = 0
        for _ in range(20):
            conn.execute("UPDATE work SET expires_at = datetime('now')")
            state, same = conn.execute(
                "SELECT state, expires_at = datetime('now') FROM coord_work").fetchone()
            outcome, now, expires = run_op(conn, "coord_claim", ("t", "bob", 60), "outcome, now, expires_at")
            if same:
                self.assertEqual(state, "claimed")
            if now == expires:
                # gptme: expires_at >= now is live, so another claimer is denied
                self.assertEqual(outcome, "denied")
                seen += 1
                break
        self.assertGreater(seen, 0, "never caught expires_at == now")

    def test_key_bytes_match_gptme_at_the_edges(self):
        secrets = self.dir / "secrets"
        os.environ["COORDINATION_SECRETS_DIR"] = str(secrets)
        cases = []
        # an env value is used exactly as it is, trailing newline included
        os.environ["COORDINATION_SECRET_ENVNL"] = ALICE.decode() + "\n"
        cases.append("envnl")
        # an empty variable is skipped: gptme goes on to the file
        os.environ["COORDINATION_SECRET_EMPTY"] = ""
        write_key(secrets, "empty", BOB)
        cases.append("empty")
        # a file is stripped as bytes.strip() does, \x0b and \x0c included
        (secrets / "vt.secret").write_bytes(b"\x0b\x0c " + BOB + b"\x0c\x0b\n")
        os.chmod(secrets / "vt.secret", 0o600)
        cases.append("vt")
        conn = self.coord()
        for agent in cases:
            with self.subTest(agent=agent):
                key = auth.resolve_secret(agent)
                self.assertIsNotNone(key)
                mac = conn.execute("SELECT coord_sign(?, 'x')", (agent,)).fetchone()[0]
                self.assertEqual(mac, gptme_ref.sign(key, ["x"]))

    def test_init_waits_for_a_writer_and_writes_nothing_when_current(self):
        self.coord().close()
        conn = connect(self.db, timeout=10)
        before = conn.execute("PRAGMA schema_version").fetchone()[0]
        for _ in range(3):
            self.assertEqual(conn.execute("SELECT coord_init()").fetchone()[0], "coord schema ready")
        self.assertEqual(conn.execute("PRAGMA schema_version").fetchone()[0], before)
        # a database gptme made: coord_init migrates it while gptme writes,
        # waiting out the writer instead of failing with "database is locked"
        os.remove(self.db)
        self.gptme()
        ready = multiprocessing.Event()
        p = multiprocessing.Process(target=hold_write_lock, args=(self.db, 1.0, ready))
        p.start()
        ready.wait(10)
        late = connect(self.db, timeout=10)
        t0 = time.monotonic()
        self.assertTrue(late.execute("SELECT coord_init()").fetchone()[0].startswith("coord schema ready"))
        self.assertGreater(time.monotonic() - t0, 0.5, "did not wait for the writer")
        self.assertEqual(late.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
                                      " AND name LIKE 'coord_%'").fetchone()[0],
                         STORED_TRIGGERS)
        p.join(10)
        self.assertEqual(p.exitcode, 0)

    def test_init_refuses_a_foreign_work_table_and_changes_nothing(self):
        raw = sqlite3.connect(str(self.db), isolation_level=None)
        raw.execute("CREATE TABLE work(id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("INSERT INTO work(name) VALUES ('mine')")
        raw.close()
        conn = connect(self.db)
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            conn.execute("SELECT coord_init()")
        msg = str(cm.exception)
        self.assertIn("main.work is not gptme-coordination's work table", msg)
        self.assertIn("lacks task_id, claimer, epoch, claimed_at, expires_at, status, result, metadata", msg)
        self.assertIn("nothing was changed", msg)
        self.assertNotIn("CREATE TABLE", msg)
        raw = sqlite3.connect(str(self.db))
        self.assertEqual([r[0] for r in raw.execute("SELECT name FROM sqlite_schema")], ["work"])
        self.assertEqual(raw.execute("SELECT * FROM work").fetchall(), [(1, "mine")])


if __name__ == "__main__":
    unittest.main()
