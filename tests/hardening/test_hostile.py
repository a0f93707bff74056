"""Hostile database files: a database is data that anyone with write access
can change, schema included. Whatever a planted view, trigger, constraint,
index or look-alike object does, coord never signs or adds a key on its
behalf, and its verifying views and write API are never replaced.

Run: tests/hardening/hostile.sh (Debian's /usr/bin/python3: it can load
extensions)."""
import json
import pathlib
import sqlite3
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "extension"))
from common import ALICE, BOB, EnvSandbox, connect, gptme_ref  # noqa: E402

MALLORY = "m" * 40

# Every function, and how a stored (file) object may use it:
#   "never": DIRECTONLY, refused from any stored object whatever the pragma
#   "trusted": reads keys; refused when trusted_schema=OFF
#   "always": innocuous, allowed
FUNCTIONS = {
    "coord_version()": "always",
    "coord_canonical('a', 1)": "always",
    "coord_verify('alice', 'x', 'a')": "trusted",
    "coord_verify_status('alice', 'x', 'a')": "trusted",
    "coord_agent()": "trusted",
    "coord_sign('alice', 'a')": "never",
    "coord_try_sign('alice', 'a')": "never",
    f"coord_key_add('mallory', '{MALLORY}')": "never",
    f"coord_key_add('alice', '{MALLORY}', 'retired')": "never",
    "coord_key_remove('alice')": "never",
    "coord_key_reload()": "never",
    "coord_key_status('alice')": "never",
    "coord_can_sign('alice')": "never",
    "coord_set_agent('alice')": "never",
    "coord_init()": "never",
    "coord_fail('x')": "never",
}


def claim(conn, task, agent, ttl=60):
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO coord_claim VALUES (?, ?, ?)", (task, agent, ttl))
        r = dict(conn.execute("SELECT * FROM coord_result").fetchone())
        conn.execute("COMMIT")
        return r
    except Exception:
        conn.execute("ROLLBACK")
        raise


class Hostile(unittest.TestCase):
    def setUp(self):
        self.sandbox = EnvSandbox().__enter__()
        self.dir = self.sandbox.path
        self.db = self.dir / "hostile.db"

    def tearDown(self):
        self.sandbox.__exit__(None, None, None)

    def plant(self, *statements, init=True, with_coord=False):
        """Writes the attacker's schema with a plain sqlite3 (no coord), or
        with coord loaded when SQLite must resolve the functions it names."""
        if init:
            c = connect(self.db)
            c.execute("SELECT coord_init()")
            c.close()
        raw = connect(self.db) if with_coord else sqlite3.connect(str(self.db), isolation_level=None)
        for s in statements:
            raw.execute(s)
        raw.close()

    def victim(self, trusted=None):
        """A coord connection that holds alice's and bob's keys."""
        conn = connect(self.db)
        if trusted is not None:
            conn.execute(f"PRAGMA trusted_schema = {'ON' if trusted else 'OFF'}")
        conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
        conn.execute("SELECT coord_key_add('bob', ?)", (BOB,))
        return conn

    def assert_no_mallory(self, conn):
        self.assertEqual(conn.execute("SELECT coord_can_sign('mallory')").fetchone()[0], 0)
        status = json.loads(conn.execute("SELECT coord_key_status('alice')").fetchone()[0])
        self.assertTrue(status["can_sign"])
        self.assertEqual(status["retired"], [], "a planted object retired a key")

    # -- every function from every kind of stored object, both pragmas --------

    def test_function_matrix_views_and_triggers_under_both_pragmas(self):
        tried = 0
        for i, (call, rule) in enumerate(FUNCTIONS.items()):
            self.plant(f"CREATE VIEW v{i} AS SELECT {call} AS x",
                       f"CREATE TABLE t{i}(x)",
                       f"CREATE TRIGGER trg{i} AFTER INSERT ON t{i} BEGIN SELECT {call}; END",
                       init=(i == 0))
        for trusted in (True, False):
            conn = self.victim(trusted)
            for i, (call, rule) in enumerate(FUNCTIONS.items()):
                allowed = rule == "always" or (rule == "trusted" and trusted)
                for sql in (f"SELECT x FROM v{i}", f"INSERT INTO t{i} VALUES (1)"):
                    tried += 1
                    with self.subTest(call=call, sql=sql, trusted=trusted):
                        if allowed:
                            conn.execute(sql).fetchall()
                        else:
                            with self.assertRaisesRegex(sqlite3.DatabaseError, r"unsafe use of coord_"):
                                conn.execute(sql).fetchall()
            self.assert_no_mallory(conn)
            conn.close()
        print(f"\nhostile: {tried} stored-object calls tried", file=sys.stderr)

    def test_constraints_generated_columns_and_indexes_cannot_sign(self):
        # SQLite refuses non-deterministic functions in generated columns and
        # indexes at CREATE time, so the attacker writes them with a
        # deterministic function and then edits sqlite_master directly.
        edit = ["PRAGMA writable_schema = ON",
                "UPDATE sqlite_master SET sql = replace(sql, 'coord_canonical(', 'coord_sign(''alice'', ')"
                " WHERE name IN ('t', 'p_i')"]
        plants = {
            "check": [f"CREATE TABLE t(x CHECK (coord_key_add('mallory', '{MALLORY}') IS NOT NULL))"],
            "generated": ["CREATE TABLE t(x, y AS (coord_canonical(x)))", *edit],
            "index": ["CREATE TABLE t(x)", "CREATE INDEX p_i ON t(coord_canonical(x))", *edit],
            "partial index": ["CREATE TABLE t(x)",
                              "CREATE INDEX p_i ON t(x) WHERE coord_canonical(x) IS NOT NULL", *edit],
        }
        refused = 0
        for what, statements in plants.items():
            for trusted in (True, False):
                with self.subTest(what=what, trusted=trusted):
                    self.db = self.dir / f"{what}-{trusted}.db"
                    self.plant(*statements, with_coord=True)
                    try:
                        conn = self.victim(trusted)
                    except sqlite3.DatabaseError as e:
                        # coord will not even load on a schema SQLite calls malformed
                        self.assertRegex(str(e), "malformed database schema")
                        refused += 1
                        continue
                    with self.assertRaises(sqlite3.DatabaseError) as cm:
                        conn.execute("INSERT INTO t(x) VALUES ('a')")
                    self.assertRegex(str(cm.exception),
                                     "unsafe use of coord_|non-deterministic|malformed|refused: the calling statement")
                    refused += 1
                    self.assert_no_mallory(conn)
                    self.assertEqual(conn.execute("SELECT count(*) FROM t").fetchone()[0], 0)
                    conn.close()
        self.assertEqual(refused, 2 * len(plants))

    def test_check_constraints_cannot_add_keys_sign_or_switch_agents(self):
        # SQLite (3.40 at least) runs a function named in a CHECK constraint
        # from any write to the table, DIRECTONLY or not, whatever
        # trusted_schema says. Found by this suite: a CHECK on `work` could
        # make the connection trust the attacker's key as alice's, and the
        # attacker's forged claims then read as verified. coord's signing,
        # key and agent functions now run only from a top-level SELECT that
        # names no table (crates/coord-sql/src/caller.rs).
        evil_key = b"e" * 40
        calls = {
            "coord_key_add": f"coord_key_add('alice', '{evil_key.decode()}')",
            "coord_key_remove": "coord_key_remove('alice')",
            "coord_key_reload": "coord_key_reload()",
            "coord_set_agent": "coord_set_agent('alice')",
            "coord_sign": "coord_sign('alice', NEW.x)".replace("NEW.", ""),
            "coord_try_sign": "coord_try_sign('alice', x)",
            "coord_init": "coord_init()",
        }
        for name, call in calls.items():
            for trusted in (True, False):
                with self.subTest(name=name, trusted=trusted):
                    self.db = self.dir / f"check-{name}-{trusted}.db"
                    self.plant(f"CREATE TABLE t(x CHECK (({call}) IS NOT NULL))", with_coord=True)
                    conn = self.victim(trusted)
                    with self.assertRaisesRegex(sqlite3.DatabaseError, f"{name}: refused: the calling statement is not a SELECT"):
                        conn.execute("INSERT INTO t VALUES ('a')")
                    self.assertEqual(conn.execute("SELECT count(*) FROM t").fetchone()[0], 0)
                    self.assert_no_mallory(conn)
                    self.assertIsNone(conn.execute("SELECT coord_agent()").fetchone()[0])
                    # a read-only statement evaluates no CHECK: top-level use still works
                    mac = conn.execute("SELECT coord_sign('alice', 'x')").fetchone()[0]
                    self.assertEqual(mac, gptme_ref.sign(ALICE, ["x"]))
                    conn.close()

    def test_check_on_work_cannot_make_forged_claims_verify(self):
        evil_key = b"e" * 40
        forged = gptme_ref.sign(evil_key, ["alice", "task:9", 1, "2099-01-01 00:00:00"])
        self.plant(
            "CREATE TABLE work2 AS SELECT * FROM work",
            "DROP TABLE work",
            "CREATE TABLE work (task_id TEXT PRIMARY KEY, claimer TEXT, epoch INTEGER NOT NULL DEFAULT 0,"
            " claimed_at TEXT, expires_at TEXT, status TEXT NOT NULL DEFAULT 'available', result TEXT,"
            " metadata TEXT, completed_at TEXT, hmac TEXT,"
            f" CHECK (coord_key_add('alice', '{evil_key.decode()}') IS NOT NULL))",
            with_coord=True,
        )
        raw = sqlite3.connect(str(self.db), isolation_level=None)
        raw.execute("PRAGMA ignore_check_constraints = ON")
        raw.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) VALUES"
                    " ('task:9', 'alice', 1, '2099-01-01 00:00:00', 'claimed', ?)", (forged,))
        raw.close()
        conn = self.victim()
        with self.assertRaisesRegex(sqlite3.DatabaseError, "coord_key_add: refused"):
            claim(conn, "task:1", "bob")
        self.assertEqual(conn.execute("SELECT verification FROM coord_work WHERE task_id = 'task:9'").fetchone()[0],
                         "bad_mac")
        self.assertEqual(conn.execute("SELECT count(*) FROM work").fetchone()[0], 1)

    def test_triggers_fired_by_coords_own_writes_cannot_sign(self):
        # The attacker's trigger fires inside coord's TEMP write API: it is
        # still a stored object, so the whole operation fails and writes nothing.
        self.plant(
            "CREATE TABLE loot(mac)",
            "CREATE TRIGGER steal_claim AFTER INSERT ON work BEGIN "
            "INSERT INTO loot VALUES (coord_sign('alice', 'mallory', NEW.task_id, 99, NEW.expires_at)); END",
            "CREATE TRIGGER steal_send AFTER INSERT ON messages BEGIN "
            f"SELECT coord_key_add('mallory', '{MALLORY}'); END",
        )
        conn = self.victim()
        with self.assertRaisesRegex(sqlite3.DatabaseError, "unsafe use of coord_sign"):
            claim(conn, "task:1", "alice")
        with self.assertRaisesRegex(sqlite3.DatabaseError, "unsafe use of coord_key_add"):
            conn.execute("INSERT INTO coord_send VALUES ('alice', 'bob', NULL, 'hi')")
        for t in ("work", "messages", "loot"):
            self.assertEqual(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0], 0, t)
        self.assert_no_mallory(conn)

    def test_triggers_that_rewrite_signed_rows_never_make_them_verify(self):
        # The attacker drops coord's stale-MAC triggers and rewrites every
        # row coord writes to name mallory; the MAC no longer matches.
        self.plant(
            "DROP TRIGGER coord_work_stale_mac",
            "DROP TRIGGER coord_messages_stale_mac",
            "CREATE TRIGGER re_claim AFTER UPDATE ON work WHEN NEW.claimer = 'alice' BEGIN "
            "UPDATE work SET claimer = 'bob' WHERE task_id = NEW.task_id; END",
            "CREATE TRIGGER re_send AFTER INSERT ON messages BEGIN "
            "UPDATE messages SET sender = 'bob', body = 'pay mallory' WHERE id = NEW.id; END",
        )
        conn = self.victim()
        conn.execute("INSERT INTO coord_submit VALUES ('task:1', NULL)")
        try:
            claim(conn, "task:1", "alice")
        except sqlite3.DatabaseError as e:
            self.assertIn("did not apply", str(e))  # coord's own check caught it
        # coord's check of the row it wrote catches the rewrite: an error, and
        # the statement's writes are undone
        with self.assertRaisesRegex(sqlite3.DatabaseError, "coord_send: .*not written as decided"):
            conn.execute("INSERT INTO coord_send VALUES ('alice', NULL, NULL, 'hello')")
        self.assertEqual(conn.execute("SELECT count(*) FROM messages").fetchone()[0], 0)
        for view in ("coord_work", "coord_messages"):
            rows = conn.execute(f"SELECT verification FROM {view} WHERE hmac IS NOT NULL").fetchall()
            self.assertTrue(all(r[0] == "bad_mac" for r in rows), (view, [tuple(r) for r in rows]))
        self.assertEqual(conn.execute("SELECT count(*) FROM coord_messages WHERE verified").fetchone()[0], 0)

    def test_a_work_view_that_redirects_coords_writes_gets_no_forged_row(self):
        # `work` is the attacker's view over a table of its own; its INSTEAD
        # OF trigger keeps coord's MAC but writes mallory as the claimer.
        self.plant(
            "CREATE TABLE real_work(task_id TEXT PRIMARY KEY, claimer TEXT, epoch INTEGER NOT NULL DEFAULT 0,"
            " claimed_at TEXT, expires_at TEXT, status TEXT NOT NULL DEFAULT 'available', result TEXT,"
            " metadata TEXT, completed_at TEXT, hmac TEXT)",
            "CREATE VIEW work AS SELECT * FROM real_work",
            "CREATE TRIGGER work_upd INSTEAD OF UPDATE ON work BEGIN SELECT 1; END",
            "CREATE TRIGGER work_ins INSTEAD OF INSERT ON work BEGIN INSERT INTO real_work"
            "(task_id, claimer, epoch, claimed_at, expires_at, status, hmac) VALUES"
            "(NEW.task_id, 'mallory', NEW.epoch, NEW.claimed_at, NEW.expires_at, NEW.status, NEW.hmac); END",
            "CREATE TABLE messages(id INTEGER PRIMARY KEY, sender TEXT, recipient TEXT, channel TEXT,"
            " body TEXT, created_at TEXT, hmac TEXT)",
            "CREATE TABLE coord_gate(pattern TEXT PRIMARY KEY, note TEXT)",
            "CREATE TABLE coord_events(seq INTEGER PRIMARY KEY, prev TEXT NOT NULL, op TEXT NOT NULL,"
            " subject TEXT NOT NULL, at TEXT NOT NULL, agent TEXT NOT NULL, state TEXT NOT NULL,"
            " hmac TEXT)",
            init=False,
        )
        conn = self.victim()
        conn.execute("SELECT coord_key_add('mallory', ?)", (b"q" * 40,))
        with self.assertRaisesRegex(sqlite3.DatabaseError, "did not apply"):
            claim(conn, "task:1", "alice")
        self.assertEqual(conn.execute("SELECT count(*) FROM real_work").fetchone()[0], 0)
        self.assertEqual(conn.execute("SELECT count(*) FROM coord_events").fetchone()[0], 0)

    # -- look-alike objects ------------------------------------------------------

    def test_objects_named_like_coords_are_shadowed_by_temp(self):
        self.plant(
            "CREATE VIEW coord_work AS SELECT *, 'claimed' AS state, 'verified' AS verification, 1 AS verified FROM work",
            "CREATE VIEW coord_messages AS SELECT *, 'verified' AS verification, 1 AS verified FROM messages",
            "CREATE VIEW coord_inbox AS SELECT *, 'verified' AS verification, 1 AS verified FROM messages",
            "CREATE TABLE coord_result(op, task_id, agent, outcome, holder, epoch, expires_at, now,"
            " signed, message_id, detail)",
            "INSERT INTO coord_result(op, outcome) VALUES ('claim', 'granted')",
            "CREATE TABLE coord_claim(task_id, claimer, ttl_minutes)",
            "CREATE TABLE coord_send(sender, recipient, channel, body)",
            # a forged claim and message, as any writer of the file can add
            "INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac)"
            " VALUES ('task:9', 'alice', 1, '2099-01-01 00:00:00', 'claimed', 'forged')",
            "INSERT INTO messages(sender, body, hmac) VALUES ('alice', 'forged', 'AAAA')",
        )
        conn = self.victim()
        self.assertEqual(conn.execute("SELECT verification FROM coord_work").fetchone()[0], "bad_mac")
        self.assertEqual(conn.execute("SELECT verification FROM coord_messages").fetchone()[0], "bad_mac")
        conn.execute("SELECT coord_set_agent('bob')")
        self.assertEqual(conn.execute("SELECT verified FROM coord_inbox").fetchone()[0], 0)
        r = claim(conn, "task:1", "alice")
        self.assertEqual((r["outcome"], r["signed"]), ("granted", 1))
        # look-alikes outside TEMP are never read or written by a coord
        # connection, even by their qualified names
        for sql in ("SELECT * FROM main.coord_claim", "SELECT verified FROM main.coord_work",
                    "INSERT INTO main.coord_send VALUES ('alice', NULL, 'general', 'x')"):
            with self.assertRaisesRegex(sqlite3.DatabaseError, "not authorized|is prohibited"):
                conn.execute(sql)
        # the write went through coord's TEMP view, not the planted table
        raw = sqlite3.connect(str(self.db))
        self.assertEqual(raw.execute("SELECT count(*) FROM coord_claim").fetchone()[0], 0)
        self.assertEqual(raw.execute("SELECT count(*) FROM coord_result").fetchone()[0], 1)
        raw.close()
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_temp_master")}
        self.assertTrue({"coord_work", "coord_messages", "coord_inbox", "coord_claim"} <= names)

    def test_attached_hostile_database(self):
        evil = self.dir / "evil.db"
        raw = sqlite3.connect(str(evil), isolation_level=None)
        raw.execute("CREATE VIEW coord_work AS SELECT 'verified' AS verification")
        raw.execute(f"CREATE VIEW grab AS SELECT coord_key_add('mallory', '{MALLORY}') AS x")
        raw.execute("CREATE VIEW sig AS SELECT coord_sign('alice', 'x') AS x")
        raw.close()
        self.plant()
        conn = self.victim()
        conn.execute("ATTACH ? AS evil", (str(evil),))
        for v in ("grab", "sig"):
            with self.assertRaisesRegex(sqlite3.DatabaseError, "unsafe use of coord_"):
                conn.execute(f"SELECT x FROM evil.{v}").fetchall()
        self.assertEqual(conn.execute("SELECT count(*) FROM coord_work").fetchone()[0], 0)
        self.assert_no_mallory(conn)

    def test_writable_schema_plants_cannot_reach_temp(self):
        # Written straight into sqlite_master: a trigger that claims to be on
        # coord's TEMP objects. SQLite refuses it when reading the schema.
        self.plant(
            "PRAGMA writable_schema = ON",
            "INSERT INTO sqlite_master(type, name, tbl_name, rootpage, sql) VALUES"
            " ('trigger', 'evil', 'coord_result', 0, 'CREATE TRIGGER evil AFTER INSERT ON temp.coord_result"
            f" BEGIN SELECT coord_key_add(''mallory'', ''{MALLORY}''); END')",
        )
        try:
            conn = self.victim()
        except sqlite3.DatabaseError as e:
            self.assertRegex(str(e), "malformed|cannot reference")
            return
        try:
            claim(conn, "task:1", "alice")
        except sqlite3.DatabaseError as e:
            self.assertRegex(str(e), "malformed|cannot reference|unsafe use")
        self.assert_no_mallory(conn)

    def test_a_failed_load_leaves_nothing_behind(self):
        # Regression: when loading failed on a schema SQLite calls malformed,
        # SQLite unloaded libcoord but coord's functions stayed registered,
        # and closing the connection ran their destructors from unloaded
        # code: a segfault at exit.
        import subprocess
        self.plant("CREATE TABLE t(x, y AS (coord_canonical(x)))", "PRAGMA writable_schema = ON",
                   "UPDATE sqlite_master SET sql = replace(sql, 'coord_canonical(', 'coord_sign(''a'', ')"
                   " WHERE name = 't'", with_coord=True)
        script = (
            "import sqlite3, sys\n"
            f"sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[1] / 'extension')!r})\n"
            "from common import connect\n"
            "try:\n"
            f"    connect({str(self.db)!r})\n"
            "    print('loaded')\n"
            "except sqlite3.DatabaseError as e:\n"
            "    print('refused:', e)\n"
            f"c = sqlite3.connect({str(self.db)!r})\n"
            "c.enable_load_extension(True)\n"
            "try:\n"
            "    c.load_extension(sys.argv[1])\n"
            "except sqlite3.DatabaseError:\n"
            "    pass\n"
            "c.close()\n"
        )
        from common import EXT
        p = subprocess.run([sys.executable, "-c", script, EXT], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertIn("refused: error during initialization: malformed database schema", p.stdout)

    # -- what a MAC does not prove (SECURITY.md): documented, and held to ---------

    def test_moved_and_replayed_rows(self):
        self.plant()
        conn = self.victim()
        claim(conn, "task:1", "alice")
        mac = conn.execute("SELECT hmac FROM work").fetchone()[0]
        # moving a MAC to another task or claimer never verifies
        raw = sqlite3.connect(str(self.db), isolation_level=None)
        raw.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac)"
                    " SELECT 'task:2', claimer, epoch, expires_at, status, hmac FROM work")
        raw.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac)"
                    " SELECT 'task:3', 'bob', epoch, expires_at, status, hmac FROM work WHERE task_id='task:1'")
        # an exact copy of a row (delete and re-insert) is a replay: it verifies
        row = raw.execute("SELECT claimer, epoch, expires_at FROM work WHERE task_id='task:1'").fetchone()
        raw.execute("DELETE FROM work WHERE task_id='task:1'")
        raw.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) VALUES"
                    " ('task:1', ?, ?, ?, 'claimed', ?)", (*row, mac))
        raw.close()
        got = dict(conn.execute("SELECT task_id, verification FROM coord_work"))
        self.assertEqual(got, {"task:1": "verified", "task:2": "bad_mac", "task:3": "bad_mac"})
        self.assertEqual(mac, gptme_ref.sign(ALICE, ["alice", "task:1", row[1], row[2]]))


if __name__ == "__main__":
    unittest.main()
