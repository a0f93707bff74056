"""The loadable extension, loaded into Debian's Python sqlite3 module.

Run with /usr/bin/python3 -m unittest (see tests/run.sh)."""
import hashlib
import json
import os
import pathlib
import sqlite3
import time
import unittest

from common import (ALICE, BOB, EXT, VECTORS, EnvSandbox, connect,
                    copy_fixture, gptme_ref, write_key)


def result(conn):
    return dict(conn.execute("SELECT * FROM coord_result").fetchone())


def claim(conn, task, agent, ttl=60):
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO coord_claim VALUES (?, ?, ?)", (task, agent, ttl))
        r = result(conn)
        conn.execute("COMMIT")
        return r
    except Exception:
        conn.execute("ROLLBACK")
        raise


def op(conn, view, *values):
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO {view} VALUES ({marks})", values)
    return result(conn)


class Base(unittest.TestCase):
    def setUp(self):
        self.sandbox = EnvSandbox().__enter__()
        self.dir = self.sandbox.path

    def tearDown(self):
        self.sandbox.__exit__(None, None, None)

    def fresh(self, name="coord.db", keys=True):
        conn = connect(self.dir / name)
        conn.execute("SELECT coord_init()")
        if keys:
            conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
            conn.execute("SELECT coord_key_add('bob', ?)", (BOB,))
        return conn


class Fixture(Base):
    """The database written by gptme-coordination verifies row for row."""

    def check(self, conn, expected):
        work = {r["task_id"]: r for r in conn.execute("SELECT * FROM coord_work")}
        self.assertEqual(set(work), set(expected["work"]))
        for task, want in expected["work"].items():
            self.assertEqual(bool(work[task]["verified"]), want, task)
        msgs = {str(r["id"]): r for r in conn.execute("SELECT * FROM coord_messages")}
        self.assertEqual(set(msgs), set(expected["messages"]))
        for mid, want in expected["messages"].items():
            self.assertEqual(bool(msgs[mid]["verified"]), want, mid)
        return work, msgs

    def test_every_row_as_expected_json_says(self):
        root = copy_fixture(self.dir)
        expected = json.loads((root / "expected.json").read_text())
        os.environ["COORDINATION_SECRETS_DIR"] = str(root / "secrets")
        conn = connect(root / "coord.db")
        work, msgs = self.check(conn, expected)
        status = {t: r["verification"] for t, r in work.items()}
        self.assertEqual(status["task:legacy-unsigned"], "unsigned")
        self.assertEqual(status["task:stranger"], "unknown_agent")
        self.assertEqual(status["task:forged"], "bad_mac")
        self.assertEqual(status["task:tampered-epoch"], "bad_mac")
        self.assertEqual(status["task:tampered-claimer"], "bad_mac")
        self.assertEqual(status["task:available-only"], "unsigned")
        self.assertEqual(msgs["5"]["verification"], "unsigned")
        self.assertEqual(msgs["7"]["verification"], "unknown_agent")
        self.assertEqual(msgs["8"]["verification"], "bad_mac")
        # The Python reference agrees on every row.
        keys = {p.stem: gptme_ref.read_secret(p) for p in (root / "secrets").glob("*.secret")}
        for r in conn.execute("SELECT * FROM main.work"):
            want = gptme_ref.verify(keys.get(r["claimer"]), r["hmac"], gptme_ref.claim_fields(r))
            self.assertEqual(want, expected["work"][r["task_id"]])

    def test_keys_under_the_git_root(self):
        root = copy_fixture(self.dir)
        expected = json.loads((root / "expected.json").read_text())
        repo = self.dir / "repo"
        (repo / ".git").mkdir(parents=True)
        (repo / "deep" / "er").mkdir(parents=True)
        for p in (root / "secrets").glob("*.secret"):
            write_key(repo / "secrets" / "coordination", p.stem, gptme_ref.read_secret(p))
        os.chdir(repo / "deep" / "er")
        self.check(connect(root / "coord.db"), expected)

    def test_keys_from_the_environment(self):
        root = copy_fixture(self.dir)
        expected = json.loads((root / "expected.json").read_text())
        os.environ["COORDINATION_SECRET_ALICE"] = gptme_ref.read_secret(root / "secrets" / "alice.secret").decode()
        os.environ["COORDINATION_SECRET_BOB_AUTONOMOUS_OPUS_3A9F"] = gptme_ref.read_secret(
            root / "secrets" / "bob-autonomous-opus-3a9f.secret").decode()
        self.check(connect(root / "coord.db"), expected)

    def test_loading_into_the_fixture_writes_nothing(self):
        root = copy_fixture(self.dir)
        before = (root / "coord.db").read_bytes()
        conn = connect(root / "coord.db")
        conn.execute("SELECT count(*) FROM coord_work").fetchone()
        conn.close()
        self.assertEqual((root / "coord.db").read_bytes(), before)

    def test_init_on_the_fixture_keeps_gptme_working(self):
        root = copy_fixture(self.dir)
        conn = connect(root / "coord.db")
        conn.execute("SELECT coord_init()")
        conn.close()
        # A client without coord: every stored object is built-in SQL.
        plain = connect(root / "coord.db", load=False)
        for (name, sql) in plain.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
            self.assertNotIn("coord_sign", sql, name)
            self.assertNotIn("coord_verify", sql, name)
        plain.execute("UPDATE work SET status = 'completed' WHERE task_id = 'cascade:task:42'")
        plain.execute("INSERT INTO messages(sender, recipient, channel, body) VALUES ('x', NULL, 'general', 'hi')")
        row = plain.execute("SELECT hmac FROM work WHERE task_id = 'cascade:task:42'").fetchone()
        self.assertIsNotNone(row["hmac"], "a change outside the signed fields keeps the MAC")


class Vectors(Base):
    def test_every_vector_signs_and_verifies(self):
        conn = connect()
        for agent, k in VECTORS["keys"].items():
            for old in k.get("retired", []):
                conn.execute("SELECT coord_key_add(?, ?, 'retired')", (agent, old))
            conn.execute("SELECT coord_key_add(?, ?)", (agent, k["current"]))
        for case in VECTORS["sign"]:
            n = len(case["fields"])
            marks = "".join(", ?" for _ in range(n))
            mac = conn.execute(f"SELECT coord_sign(?{marks})", [case["agent"], *case["fields"]]).fetchone()[0]
            self.assertEqual(mac, case["mac"], case["description"])
            canon = conn.execute(f"SELECT coord_canonical({marks[2:]})", case["fields"]).fetchone()[0]
            self.assertEqual(canon, case["canonical"], case["description"])
        for case in VECTORS["verify"]:
            marks = "".join(", ?" for _ in case["fields"])
            args = [case["agent"], case["mac"], *case["fields"]]
            st, ok = conn.execute(
                f"SELECT coord_verify_status(?, ?{marks}), coord_verify(?, ?{marks})", args + args).fetchone()
            self.assertEqual(st, case["status"], case["description"])
            self.assertEqual(ok, int(case["status"] in ("verified", "retired_key")), case["description"])


class PythonInterop(Base):
    def test_rows_written_by_coord_verify_with_python_hmac(self):
        conn = self.fresh()
        tasks = ["t:plain", 'q"uote\\', "tab\tnl\n", "café ☃ 😀", "\x7f\x01"]
        for t in tasks:
            self.assertEqual(claim(conn, t, "alice")["outcome"], "granted")
        op(conn, "coord_send", "bob", "alice", "ops", "héllo\n\"there\" 😀")
        op(conn, "coord_send", "alice", None, None, "broadcast")
        for r in conn.execute("SELECT * FROM main.work"):
            self.assertTrue(gptme_ref.verify(ALICE, r["hmac"], gptme_ref.claim_fields(r)), r["task_id"])
        keys = {"alice": ALICE, "bob": BOB}
        for r in conn.execute("SELECT * FROM main.messages"):
            self.assertTrue(gptme_ref.verify(keys[r["sender"]], r["hmac"], gptme_ref.message_fields(r)))

    def test_rows_signed_by_python_verify_in_coord(self):
        conn = self.fresh()
        exp = "2099-01-01 00:00:00"
        for i, t in enumerate(["py:1", "py:ünï", "py:\u2028"]):
            mac = gptme_ref.sign(BOB, ["bob", t, i + 1, exp])
            conn.execute("INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, hmac) "
                         "VALUES (?, 'bob', ?, datetime('now'), ?, 'claimed', ?)", (t, i + 1, exp, mac))
        mac = gptme_ref.sign(ALICE, ["alice", "", "general", "from python"])
        conn.execute("INSERT INTO messages(sender, recipient, channel, body, hmac) VALUES ('alice', NULL, 'general', 'from python', ?)", (mac,))
        self.assertEqual([r[0] for r in conn.execute("SELECT verification FROM coord_work")], ["verified"] * 3)
        self.assertEqual(conn.execute("SELECT verification FROM coord_messages").fetchone()[0], "verified")


class Claims(Base):
    def test_new_task_is_granted_at_epoch_1_and_signed(self):
        conn = self.fresh()
        r = claim(conn, "t", "alice")
        self.assertEqual((r["outcome"], r["epoch"], r["signed"]), ("granted", 1, 1))
        row = conn.execute("SELECT * FROM coord_work").fetchone()
        self.assertEqual((row["claimer"], row["epoch"], row["state"], row["verification"]),
                         ("alice", 1, "claimed", "verified"))
        self.assertEqual(row["expires_at"], r["expires_at"])

    def test_live_claim_of_another_agent_is_denied_naming_holder_and_expiry(self):
        conn = self.fresh()
        first = claim(conn, "t", "alice")
        r = claim(conn, "t", "bob")
        self.assertEqual(r["outcome"], "denied")
        self.assertEqual(r["holder"], "alice")
        self.assertEqual(r["expires_at"], first["expires_at"])
        self.assertIn("DENIED", r["detail"])
        self.assertIn("alice", r["detail"])
        self.assertIn(first["expires_at"], r["detail"])
        row = conn.execute("SELECT claimer, epoch FROM work").fetchone()
        self.assertEqual(tuple(row), ("alice", 1))

    def test_own_live_claim_renews_without_changing_epoch(self):
        conn = self.fresh()
        a = claim(conn, "t", "alice", 1)
        r = claim(conn, "t", "alice", 600)
        self.assertEqual((r["outcome"], r["epoch"]), ("renewed", 1))
        self.assertGreater(r["expires_at"], a["expires_at"])
        row = conn.execute("SELECT * FROM coord_work").fetchone()
        self.assertEqual((row["epoch"], row["expires_at"], row["verification"]), (1, r["expires_at"], "verified"))

    def test_expired_abandoned_and_completed_tasks_go_to_the_next_claimer_with_epoch_plus_1(self):
        conn = self.fresh()
        # 1.2 s; live through its expiry second (as in gptme), so expired at
        # most 2.2 s after the claim, since datetime() counts whole seconds
        claim(conn, "exp", "alice", 0.02)
        claim(conn, "ab", "alice")
        claim(conn, "done", "alice")
        self.assertEqual(op(conn, "coord_abandon", "ab", "alice", 1)["outcome"], "abandoned")
        self.assertEqual(op(conn, "coord_complete", "done", "alice", 1, "ok")["outcome"], "completed")
        time.sleep(2.6)
        self.assertEqual(conn.execute("SELECT state FROM coord_work WHERE task_id='exp'").fetchone()[0], "expired")
        # abandon writes gptme's row: no holder left on it
        for t, holder in [("exp", "alice"), ("ab", None), ("done", "alice")]:
            r = claim(conn, t, "bob")
            self.assertEqual((r["outcome"], r["epoch"], r["holder"]), ("granted", 2, holder), t)
        rows = conn.execute("SELECT claimer, epoch, status, completed_at, result, verification FROM coord_work").fetchall()
        for row in rows:
            self.assertEqual(tuple(row), ("bob", 2, "claimed", None, None, "verified"))

    def test_submitted_task_is_claimed_at_epoch_1(self):
        conn = self.fresh()
        self.assertEqual(op(conn, "coord_submit", "s", '{"p":1}')["outcome"], "submitted")
        self.assertEqual(op(conn, "coord_submit", "s", None)["outcome"], "exists")
        self.assertEqual(conn.execute("SELECT verification, state FROM coord_work").fetchone()[:], ("unsigned", "available"))
        self.assertEqual(claim(conn, "s", "bob")["epoch"], 1)

    def test_complete_and_abandon_need_the_holder_and_the_epoch(self):
        conn = self.fresh()
        self.assertEqual(op(conn, "coord_complete", "nope", "alice", None, None)["outcome"], "unknown_task")
        claim(conn, "t", "alice")
        self.assertEqual(op(conn, "coord_complete", "t", "bob", None, None)["outcome"], "not_holder")
        self.assertEqual(op(conn, "coord_abandon", "t", "bob", None)["outcome"], "not_holder")
        self.assertEqual(op(conn, "coord_complete", "t", "alice", 7, None)["outcome"], "lost_lease")
        op(conn, "coord_abandon", "t", "alice", 1)
        claim(conn, "t", "bob")
        # alice was fenced at epoch 1; bob holds epoch 2
        r = op(conn, "coord_complete", "t", "alice", 1, "stale")
        self.assertEqual(r["outcome"], "lost_lease")
        self.assertIn("lost lease", r["detail"])
        self.assertEqual(op(conn, "coord_abandon", "t", "alice", 1)["outcome"], "lost_lease")
        self.assertEqual(op(conn, "coord_complete", "t", "bob", 2, "ok")["outcome"], "completed")
        self.assertEqual(op(conn, "coord_complete", "t", "bob", 2, "again")["outcome"], "not_claimed")
        row = conn.execute("SELECT status, result, verification FROM coord_work").fetchone()
        self.assertEqual(tuple(row), ("completed", "ok", "verified"))

    def test_complete_is_refused_once_the_claim_expired(self):
        conn = self.fresh()
        claim(conn, "t", "alice", 0.02)
        time.sleep(2.6)  # see the test above
        r = op(conn, "coord_complete", "t", "alice", 1, None)
        self.assertEqual(r["outcome"], "expired")
        self.assertEqual(conn.execute("SELECT status FROM work").fetchone()[0], "claimed")

    def test_claim_without_a_key_stores_null_never_a_stale_mac(self):
        conn = self.fresh()
        claim(conn, "t", "alice", 60)
        self.assertIsNotNone(conn.execute("SELECT hmac FROM work").fetchone()[0])
        keyless = connect(self.dir / "coord.db")
        r = claim(keyless, "t", "alice", 120)
        self.assertEqual((r["outcome"], r["signed"]), ("renewed", 0))
        row = keyless.execute("SELECT hmac, verification FROM coord_work").fetchone()
        self.assertEqual(tuple(row), (None, "unsigned"))
        r = claim(keyless, "u", "carol")
        self.assertEqual((r["outcome"], r["signed"]), ("granted", 0))

    def test_forged_claimer_and_tampered_rows_read_as_not_verified(self):
        conn = self.fresh()
        # bob writes a row claiming to be alice, signed with bob's key
        mac = conn.execute("SELECT coord_sign('bob', 'alice', 'forged', 1, '2099-01-01 00:00:00')").fetchone()[0]
        conn.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) "
                     "VALUES ('forged', 'alice', 1, '2099-01-01 00:00:00', 'claimed', ?)", (mac,))
        # bob claims as alice through the API without alice's key
        keyless = connect(self.dir / "coord.db")
        keyless.execute("SELECT coord_key_add('bob', ?)", (BOB,))
        claim(keyless, "impersonated", "alice")
        claim(conn, "tampered", "alice")
        orig = conn.execute("SELECT hmac FROM work WHERE task_id='tampered'").fetchone()[0]
        # raise the epoch and re-store the old MAC explicitly: the stale MAC is cleared
        conn.execute("UPDATE work SET epoch = 9, hmac = ? WHERE task_id='tampered'", (orig,))
        self.assertIsNone(conn.execute("SELECT hmac FROM work WHERE task_id='tampered'").fetchone()[0])
        # raise it with a made-up MAC: bad_mac
        claim(conn, "tampered2", "alice")
        conn.execute("UPDATE work SET epoch = 9, hmac = ? WHERE task_id='tampered2'", (mac,))
        st = dict(conn.execute("SELECT task_id, verification FROM coord_work"))
        self.assertEqual(st, {"forged": "bad_mac", "impersonated": "unsigned", "tampered": "unsigned",
                              "tampered2": "bad_mac"})

    def test_epoch_never_goes_down(self):
        conn = self.fresh()
        claim(conn, "t", "alice")
        with self.assertRaisesRegex(sqlite3.DatabaseError, "epoch never goes down"):
            conn.execute("UPDATE work SET epoch = 0")
        plain = connect(self.dir / "coord.db", load=False)
        with self.assertRaisesRegex(sqlite3.DatabaseError, "epoch never goes down"):
            plain.execute("UPDATE work SET epoch = 0")

    def test_unknown_agent_and_legacy_rows(self):
        conn = self.fresh()
        conn.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) "
                     "VALUES ('legacy', 'alice', 1, '2099-01-01 00:00:00', 'claimed', NULL)")
        mac = gptme_ref.sign(b"z" * 40, ["zed", "z", 1, "x"])
        conn.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) "
                     "VALUES ('z', 'zed', 1, 'x', 'claimed', ?)", (mac,))
        st = dict(conn.execute("SELECT task_id, verification FROM coord_work"))
        self.assertEqual(st, {"legacy": "unsigned", "z": "unknown_agent"})

    def test_messages_and_inbox(self):
        conn = self.fresh()
        op(conn, "coord_send", "alice", "bob", "ops", "to bob")
        op(conn, "coord_send", "bob", None, None, "to all")
        op(conn, "coord_send", "bob", "carol", None, "to carol")
        conn.execute("INSERT INTO messages(sender, recipient, channel, body, hmac) VALUES ('alice', 'bob', 'ops', 'forged', 'AAAA')")
        conn.execute("SELECT coord_set_agent('bob')")
        inbox = [(r["body"], r["verification"]) for r in conn.execute("SELECT * FROM coord_inbox ORDER BY id")]
        self.assertEqual(inbox, [("to bob", "verified"), ("to all", "verified"), ("forged", "bad_mac")])
        ch = conn.execute("SELECT channel FROM messages WHERE body='to all'").fetchone()[0]
        self.assertEqual(ch, "general")


class RetiredKeys(Base):
    def test_retired_key_verifies_but_never_signs(self):
        old, new = b"o" * 40, b"n" * 40
        d = self.dir / "secrets" / "coordination"
        write_key(d, "alice", old)
        conn = self.fresh(keys=False)
        claim(conn, "before", "alice")
        # rotate: the old key moves to alice.retired/, a new one takes its place
        write_key(d / "alice.retired", "alice", old, name="2026-11-27T00-00-00Z.secret")
        write_key(d, "alice", new)
        conn.execute("SELECT coord_key_reload()")
        claim(conn, "after", "alice")
        st = dict(conn.execute("SELECT task_id, verification FROM coord_work"))
        self.assertEqual(st, {"before": "retired_key", "after": "verified"})
        self.assertEqual(conn.execute("SELECT sum(verified) FROM coord_work").fetchone()[0], 2)
        mac = conn.execute("SELECT hmac FROM work WHERE task_id='after'").fetchone()[0]
        self.assertEqual(mac, gptme_ref.sign(new, ["alice", "after", 1,
                         conn.execute("SELECT expires_at FROM work WHERE task_id='after'").fetchone()[0]]))
        status = json.loads(conn.execute("SELECT coord_key_status('alice')").fetchone()[0])
        self.assertTrue(status["can_sign"])
        self.assertEqual(len(status["retired"]), 1)


class Gate(Base):
    def test_gated_claims_need_a_key_that_can_sign(self):
        conn = self.fresh()
        conn.execute("INSERT INTO coord_gate(pattern, note) VALUES ('deploy:*', 'production')")
        keyless = connect(self.dir / "coord.db")
        with self.assertRaisesRegex(sqlite3.DatabaseError, "gate pattern 'deploy:\\*'.*carol"):
            claim(keyless, "deploy:web", "carol")
        self.assertEqual(conn.execute("SELECT count(*) FROM work").fetchone()[0], 0)
        self.assertEqual(claim(keyless, "docs:web", "carol")["outcome"], "granted")
        r = claim(conn, "deploy:web", "alice")
        self.assertEqual((r["outcome"], r["signed"]), ("granted", 1))


class BadInput(Base):
    def err(self, sql, *args, pattern=None):
        conn = self.conn
        with self.assertRaises(sqlite3.DatabaseError) as cm:
            conn.execute(sql, args).fetchall()
        if pattern:
            self.assertRegex(str(cm.exception), pattern)
        for secret in (ALICE, BOB):
            self.assertNotIn(secret.decode(), str(cm.exception))
        return str(cm.exception)

    def setUp(self):
        super().setUp()
        self.conn = self.fresh()

    def one(self, sql, *args):
        return self.conn.execute(sql, args).fetchone()[0]

    def test_sign_errors_are_clear(self):
        self.err("SELECT coord_sign(NULL, 'x')", pattern="agent_id is NULL")
        self.err("SELECT coord_sign(42, 'x')", pattern="agent_id must be TEXT")
        self.err("SELECT coord_sign('../alice', 'x')", pattern="invalid agent id")
        self.err("SELECT coord_sign(?, 'x')", "a" * 300, pattern="at most 256")
        self.err("SELECT coord_sign('nobody', 'x')", pattern="cannot sign as 'nobody'.*no key")
        self.err("SELECT coord_sign('alice', x'00ff')", pattern="BLOB")
        self.err("SELECT coord_sign('alice', CAST(x'ff' AS TEXT))", pattern="UTF-8")
        self.err("SELECT coord_sign()", pattern="agent_id")
        self.err("SELECT coord_verify('alice')", pattern="needs agent_id and mac")

    def test_verify_never_errors_for_data(self):
        good = self.one("SELECT coord_sign('alice', 'x')")
        cases = [
            ("SELECT coord_verify(NULL, NULL)", 0),
            ("SELECT coord_verify(NULL, ?, 'x')", 0),
            ("SELECT coord_verify('alice', NULL, 'x')", 0),
            ("SELECT coord_verify('alice', 42, 'x')", 0),
            ("SELECT coord_verify('alice', x'00', 'x')", 0),
            ("SELECT coord_verify('alice', '', 'x')", 0),
            ("SELECT coord_verify('alice', 'garbage!', 'x')", 0),
            ("SELECT coord_verify('alice', ?, 'y')", 0),
            ("SELECT coord_verify('alice', ?, x'00')", 0),
            ("SELECT coord_verify('alice', ?, CAST(x'ff' AS TEXT))", 0),
            ("SELECT coord_verify('../alice', ?, 'x')", 0),
            ("SELECT coord_verify('nobody', ?, 'x')", 0),
            ("SELECT coord_verify('alice', ?, 'x')", 1),
        ]
        for sql, want in cases:
            args = (good,) if "?" in sql else ()
            self.assertEqual(self.one(sql, *args), want, sql)
        self.assertEqual(self.one("SELECT coord_verify_status('alice', NULL, 'x')"), "unsigned")
        self.assertEqual(self.one("SELECT coord_verify_status('nobody', ?, 'x')", good), "unknown_agent")
        self.assertEqual(self.one("SELECT coord_verify_status('alice', ?, x'00')", good), "bad_mac")

    def test_big_and_empty_values(self):
        big = "é" * 1_000_000
        mac = self.one("SELECT coord_sign('alice', ?, '', NULL, 0)", big)
        self.assertEqual(mac, gptme_ref.sign(ALICE, [big, "", None, 0]))
        self.assertEqual(self.one("SELECT coord_verify('alice', ?, ?, '', NULL, 0)", mac, big), 1)
        self.assertEqual(self.one("SELECT coord_sign('alice')"), gptme_ref.sign(ALICE, []))
        r = claim(self.conn, "x" * 1_000_000, "alice")
        self.assertEqual(r["outcome"], "granted")
        op(self.conn, "coord_send", "alice", None, None, big)
        self.assertEqual(self.one("SELECT verification FROM coord_messages"), "verified")

    def test_write_api_rejects_bad_arguments(self):
        self.err("INSERT INTO coord_claim VALUES (NULL, 'alice', 60)", pattern="task_id must be non-empty TEXT")
        self.err("INSERT INTO coord_claim VALUES (42, 'alice', 60)", pattern="task_id must be non-empty TEXT")
        self.err("INSERT INTO coord_claim VALUES ('', 'alice', 60)", pattern="task_id")
        self.err("INSERT INTO coord_claim VALUES ('t', NULL, 60)", pattern="no claimer")
        self.err("INSERT INTO coord_claim VALUES ('t', 'alice', -5)", pattern="ttl_minutes")
        self.err("INSERT INTO coord_claim VALUES ('t', 'alice', 'soon')", pattern="ttl_minutes")
        self.err("INSERT INTO coord_complete VALUES ('t', 'alice', 'one', NULL)", pattern="epoch must be an INTEGER")
        self.err("INSERT INTO coord_send VALUES ('alice', NULL, NULL, NULL)", pattern="body must be TEXT")
        self.err("INSERT INTO coord_send VALUES (NULL, NULL, NULL, 'x')", pattern="no sender")
        self.assertEqual(self.one("SELECT count(*) FROM work") + self.one("SELECT count(*) FROM messages"), 0)

    def test_key_add_refuses_and_never_echoes_secrets(self):
        msg = self.err("SELECT coord_key_add('carol', 'tooshort-secret')", pattern="at least 32")
        self.assertNotIn("tooshort-secret", msg)
        self.err("SELECT coord_key_add('../carol', ?)", "k" * 40, pattern="invalid agent id")
        self.err("SELECT coord_key_add('carol', NULL)", pattern="secret is NULL")
        self.err("SELECT coord_key_add('carol', 42)", pattern="TEXT or BLOB")
        self.err("SELECT coord_key_add('carol', ?, 'sometimes')", "k" * 40, pattern="'current' or 'retired'")
        fp = self.one("SELECT coord_key_add('carol', ?)", b"k" * 40)
        # surrounding whitespace is not part of a key, as in key files
        self.assertEqual(self.one("SELECT coord_key_add('carol2', ?)", b"\n k" * 1 + b"k" * 39 + b"\r\n"), fp)
        self.assertRegex(fp, "^[0-9a-f]{16}$")
        status = self.one("SELECT coord_key_status('carol')")
        self.assertNotIn("k" * 32, status)
        self.assertEqual(json.loads(status)["fingerprint"], fp)
        self.assertEqual(self.one("SELECT coord_key_remove('carol')"), 1)
        self.assertEqual(self.one("SELECT coord_can_sign('carol')"), 0)

    def test_unsafe_key_files_are_refused_with_the_reason(self):
        d = self.dir / "secrets" / "coordination"
        write_key(d, "open", b"s" * 40, mode=0o644)
        self.assertEqual(self.one("SELECT coord_can_sign('open')"), 0)
        status = json.loads(self.one("SELECT coord_key_status('open')"))
        self.assertFalse(status["can_sign"])
        self.assertIn("chmod 600", status["reason"])
        self.assertIn("open.secret", status["reason"])
        msg = self.err("SELECT coord_sign('open', 'x')", pattern="lets group or others read")
        self.assertNotIn("s" * 40, msg)
        write_key(d, "short", b"s" * 10)
        self.assertIn("at least 32", json.loads(self.one("SELECT coord_key_status('short')"))["reason"])
        mac = gptme_ref.sign(b"s" * 40, ["x"])
        self.assertEqual(self.one("SELECT coord_verify_status('open', ?, 'x')", mac), "unknown_agent")
        os.symlink(d / "open.secret", d / "link.secret")
        self.assertIn("symbolic link", json.loads(self.one("SELECT coord_key_status('link')"))["reason"])


class HostileDatabase(Base):
    def test_stored_objects_cannot_sign_or_add_keys(self):
        conn = self.fresh()
        conn.execute("CREATE VIEW evil_sign AS SELECT coord_sign('alice', 'x') AS mac")
        conn.execute("CREATE VIEW evil_key AS SELECT coord_key_add('mallory', 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm')")
        conn.execute("CREATE TABLE t(x)")
        conn.execute("CREATE TRIGGER evil_trg AFTER INSERT ON t BEGIN SELECT coord_sign('alice', NEW.x); END")
        for sql in ["SELECT * FROM evil_sign", "SELECT * FROM evil_key", "INSERT INTO t VALUES ('x')"]:
            with self.assertRaisesRegex(sqlite3.DatabaseError, "unsafe use of coord_"):
                conn.execute(sql).fetchall()
        self.assertEqual(conn.execute("SELECT coord_can_sign('mallory')").fetchone()[0], 0)

    def test_planted_view_named_like_coords_is_shadowed(self):
        conn = self.fresh()
        claim(conn, "t", "alice")
        conn.execute("UPDATE work SET hmac = 'forged'")
        conn.execute("CREATE VIEW main.coord_work AS SELECT *, 'verified' AS verification, 1 AS verified FROM work")
        conn.close()
        conn = connect(self.dir / "coord.db")
        conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
        self.assertEqual(conn.execute("SELECT verification, verified FROM coord_work").fetchone()[:], ("bad_mac", 0))

    def test_trusted_schema_off_refuses_key_reading_functions_in_stored_views(self):
        conn = self.fresh()
        claim(conn, "t", "alice")
        conn.execute("CREATE VIEW mine AS SELECT coord_verify(claimer, hmac, claimer, task_id, epoch, expires_at) AS ok FROM work")
        self.assertEqual(conn.execute("SELECT ok FROM mine").fetchone()[0], 1)
        conn.execute("PRAGMA trusted_schema = OFF")
        with self.assertRaisesRegex(sqlite3.DatabaseError, "unsafe use of coord_verify"):
            conn.execute("SELECT ok FROM mine").fetchall()
        # coord's own TEMP views keep working
        self.assertEqual(conn.execute("SELECT verified FROM coord_work").fetchone()[0], 1)


class Schema(Base):
    def test_loading_alone_writes_nothing(self):
        conn = connect(self.dir / "empty.db")
        conn.execute("SELECT coord_version(), coord_canonical('a')").fetchall()
        conn.close()
        p = self.dir / "empty.db"
        self.assertEqual(p.stat().st_size if p.exists() else 0, 0)

    def test_init_migrates_a_database_without_hmac_columns(self):
        old = connect(self.dir / "old.db", load=False)
        old.executescript("""
            CREATE TABLE work (task_id TEXT PRIMARY KEY, claimer TEXT, epoch INTEGER NOT NULL DEFAULT 0,
              claimed_at TEXT, expires_at TEXT, status TEXT NOT NULL DEFAULT 'available', result TEXT,
              metadata TEXT, completed_at TEXT);
            CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL, recipient TEXT,
              channel TEXT NOT NULL DEFAULT 'general', body TEXT NOT NULL,
              created_at TEXT NOT NULL DEFAULT (datetime('now')));
            INSERT INTO work(task_id, claimer, epoch, expires_at, status) VALUES ('old', 'alice', 3, '2099-01-01 00:00:00', 'claimed');
            INSERT INTO messages(sender, body) VALUES ('alice', 'old');
        """)
        old.close()
        conn = connect(self.dir / "old.db")
        self.assertEqual(conn.execute("SELECT coord_init()").fetchone()[0],
                         "coord schema ready; added work.hmac, messages.hmac")
        self.assertEqual(conn.execute("SELECT coord_init()").fetchone()[0], "coord schema ready")
        self.assertEqual(conn.execute("SELECT verification FROM coord_work").fetchone()[0], "unsigned")
        self.assertEqual(conn.execute("SELECT verification FROM coord_messages").fetchone()[0], "unsigned")
        conn.execute("SELECT coord_key_add('bob', ?)", (BOB,))
        self.assertEqual(claim(conn, "old", "bob")["outcome"], "denied")


class QueryOnly(Base):
    """Loading into a `PRAGMA query_only` connection (Datasette opens them)
    works: the views verify, the pragma stays on, and nothing is written."""

    def test_loads_verifies_and_writes_nothing(self):
        conn = self.fresh()
        claim(conn, "task:1", "alice")
        conn.close()
        path = self.dir / "coord.db"
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        ro = connect(path, load=False)
        ro.execute("PRAGMA query_only = 1")
        ro.enable_load_extension(True)
        ro.load_extension(EXT)
        self.assertEqual(ro.execute("PRAGMA query_only").fetchone()[0], 1)
        ro.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
        row = ro.execute("SELECT task_id, verification FROM coord_work").fetchone()
        self.assertEqual(tuple(row), ("task:1", "verified"))
        for sql in ("INSERT INTO coord_claim VALUES ('task:2', 'alice', 5)",
                    "INSERT INTO coord_send VALUES ('alice', NULL, NULL, 'hi')"):
            with self.assertRaisesRegex(sqlite3.OperationalError, "readonly"):
                ro.execute(sql)
        # the schema is current, so coord_init has nothing to write
        ro.execute("SELECT coord_init()")
        self.assertEqual(ro.execute("PRAGMA query_only").fetchone()[0], 1)
        ro.close()
        self.assertEqual(hashlib.sha256(path.read_bytes()).hexdigest(), before)


class ConnectionState(Base):
    """What a connection holds survives what it should and no longer."""

    def test_a_replaced_key_file_is_seen_for_a_row_verified_before(self):
        # The verify memo once answered before the 1 s key cache expired,
        # so a row kept verifying with a key file that had been replaced.
        secrets = self.dir / "secrets"
        write_key(secrets, "alice", ALICE)
        os.environ["COORDINATION_SECRETS_DIR"] = str(secrets)
        conn = self.fresh(keys=False)
        mac = gptme_ref.sign(ALICE, ["x"])
        q = "SELECT coord_verify_status('alice', ?, 'x')"
        self.assertEqual(conn.execute(q, (mac,)).fetchone()[0], "verified")
        write_key(secrets, "alice", BOB)
        time.sleep(1.5)
        self.assertEqual(conn.execute(q, (mac,)).fetchone()[0], "bad_mac")

    def test_loading_twice_keeps_keys_agent_and_signing(self):
        conn = self.fresh(keys=False)
        fp = conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,)).fetchone()[0]
        conn.execute("SELECT coord_set_agent('alice')")
        conn.enable_load_extension(True)
        conn.load_extension(os.environ.get("COORD_EXT", str(pathlib.Path(__file__).resolve().parents[2]
                                                          / "target" / "release" / "libcoord")))
        conn.enable_load_extension(False)
        self.assertEqual(conn.execute("SELECT coord_agent()").fetchone()[0], "alice")
        self.assertEqual(json.loads(conn.execute("SELECT coord_key_status('alice')").fetchone()[0])
                         ["fingerprint"], fp)
        r = claim(conn, "task:1", None)
        self.assertEqual((r["outcome"], r["agent"], r["signed"]), ("granted", "alice", 1))
        self.assertEqual(conn.execute("SELECT verification FROM coord_work").fetchone()[0], "verified")

    def test_the_highest_epoch_fails_closed_with_a_clear_message(self):
        conn = self.fresh()
        top = 2**63 - 1
        conn.execute("INSERT INTO work(task_id, claimer, epoch, status) VALUES ('t', 'bob', ?, 'abandoned')",
                     (top,))
        with self.assertRaisesRegex(sqlite3.DatabaseError,
                                    r"coord_claim: t is at the highest epoch \(9223372036854775807\)"):
            claim(conn, "t", "alice")
        self.assertEqual(conn.execute("SELECT claimer, epoch, status FROM work").fetchone()[:],
                         ("bob", top, "abandoned"))


if __name__ == "__main__":
    unittest.main()
