"""Signed history on a file, attacked the way someone who can write the
database file would: with plain SQL, no coord loaded, dropping coord's
append-only triggers first. Every attack must be reported by the views,
naming what happened (docs/history.md)."""
import json
import pathlib
import sqlite3
import sys
import tempfile
import unittest

from common import ALICE, BOB, connect, gptme_ref

HISTORY_OK = ("verified", "ok", "ok")


class History(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = pathlib.Path(self.tmp.name) / "coord.db"
        self.conn = self.open()
        self.conn.execute("SELECT coord_init()")
        self.conn.execute("INSERT INTO coord_submit VALUES ('t1', NULL)")
        self.conn.execute("INSERT INTO coord_claim VALUES ('t1', 'alice', 30)")
        self.conn.execute("INSERT INTO coord_submit VALUES ('t2', '{\"p\":1}')")
        self.conn.execute("INSERT INTO coord_claim VALUES ('t2', 'alice', 30)")
        self.conn.execute("INSERT INTO coord_complete VALUES ('t2', 'alice', NULL, 'done')")
        self.conn.execute("INSERT INTO coord_send VALUES ('alice', 'bob', NULL, 'hello')")

    def tearDown(self):
        self.conn.close()
        self.tmp.cleanup()

    def open(self):
        conn = connect(self.path)
        conn.execute("SELECT coord_key_add('alice', ?)", (ALICE,))
        conn.execute("SELECT coord_key_add('bob', ?)", (BOB,))
        conn.execute("SELECT coord_set_agent('alice')")
        return conn

    def attacker(self, sql, args=()):
        """Plain SQL on the file, coord not loaded, triggers dropped."""
        raw = sqlite3.connect(str(self.path), isolation_level=None)
        raw.executescript("DROP TRIGGER IF EXISTS coord_events_no_update;"
                          "DROP TRIGGER IF EXISTS coord_events_no_delete;")
        raw.execute(sql, args)
        raw.close()

    def log(self):
        return {r["seq"]: dict(r) for r in self.conn.execute("SELECT * FROM coord_log")}

    def history(self):
        return dict(self.conn.execute("SELECT task_id, history FROM coord_work"))

    def test_an_untouched_log_reads_clean(self):
        log = self.log()
        self.assertEqual(list(log), [1, 2, 3, 4, 5, 6])
        self.assertEqual([log[s]["op"] for s in log],
                         ["submit", "claim", "submit", "claim", "complete", "send"])
        self.assertEqual({(r["verification"], r["chain"], r["actor"]) for r in log.values()},
                         {HISTORY_OK})
        self.assertEqual(self.history(), {"t1": "matches", "t2": "matches"})
        self.assertEqual([r[0] for r in self.conn.execute("SELECT history FROM coord_messages")],
                         ["matches"])
        # the event records the whole row, result and status included
        state = json.loads(log[5]["state"])
        self.assertEqual(state[0], "t2")
        self.assertEqual((state[1], state[5], state[6]), ("alice", "completed", "done"))

    def test_a_submit_by_no_agent_reads_unsigned_not_unverified(self):
        self.conn.execute("SELECT coord_set_agent(NULL)")
        self.conn.execute("INSERT INTO coord_submit VALUES ('t3', NULL)")
        last = self.log()[7]
        self.assertEqual((last["op"], last["agent"], last["hmac"]), ("submit", "", None))
        self.assertEqual(last["verification"], "unsigned")
        self.assertEqual(self.history()["t3"], "unsigned_event")
        # forging a MAC onto it is a bad event, not an unsigned one
        self.attacker("UPDATE coord_events SET hmac = 'AAAA' WHERE seq = 7")
        self.assertEqual(self.history()["t3"], "unverified_event")

    def test_a_send_event_whose_subject_turned_integer_is_still_found(self):
        # the subject is signed as text: as an integer it is another event
        self.attacker("UPDATE coord_events SET subject = CAST(subject AS INTEGER) WHERE seq = 6")
        self.assertEqual(self.log()[6]["verification"], "bad_mac")
        self.assertEqual([r[0] for r in self.conn.execute("SELECT history FROM coord_messages")],
                         ["unverified_event"])

    def test_events_are_append_only_for_clients(self):
        for sql in ("DELETE FROM coord_events WHERE seq = 1",
                    "UPDATE coord_events SET state = '[]' WHERE seq = 1"):
            with self.assertRaisesRegex(sqlite3.Error, "append-only"):
                self.conn.execute(sql)
        self.assertEqual(len(self.log()), 6)

    def test_a_deleted_event_is_a_gap(self):
        self.attacker("DELETE FROM coord_events WHERE seq = 3")
        log = self.log()
        self.assertEqual(log[4]["chain"], "gap")
        self.assertEqual({log[s]["chain"] for s in (1, 2, 5, 6)}, {"ok"})

    def test_a_deleted_work_row_is_reported(self):
        self.attacker("DELETE FROM work WHERE task_id = 't1'")
        log = self.log()
        self.assertEqual(log[2]["row"], "deleted")
        self.assertEqual(log[5]["row"], "matches")

    def test_a_deleted_message_is_reported(self):
        self.attacker("DELETE FROM messages")
        self.assertEqual(self.log()[6]["row"], "deleted")

    def test_two_reordered_events_break_the_chain(self):
        self.attacker("UPDATE coord_events SET seq = -seq WHERE seq IN (3, 4)")
        self.attacker("UPDATE coord_events SET seq = 4 WHERE seq = -3")
        self.attacker("UPDATE coord_events SET seq = 3 WHERE seq = -4")
        log = self.log()
        # each moved event no longer names the one before it, and the
        # MACs cover seq, so they no longer verify either
        self.assertEqual((log[3]["chain"], log[4]["chain"]), ("broken", "broken"))
        self.assertEqual((log[3]["verification"], log[4]["verification"]), ("bad_mac", "bad_mac"))

    def test_an_edited_event_fails_its_mac_and_the_next_link(self):
        state = json.loads(self.log()[5]["state"])
        state[6] = "forged result"
        self.attacker("UPDATE coord_events SET state = ? WHERE seq = 5",
                      (gptme_ref.canonical(state).decode(),))
        self.attacker("UPDATE work SET result = 'forged result' WHERE task_id = 't2'")
        log = self.log()
        self.assertEqual(log[5]["verification"], "bad_mac")
        self.assertEqual(log[6]["chain"], "broken")
        # the row matches the edited event, which does not verify
        self.assertEqual(self.history()["t2"], "unverified_event")

    def test_an_old_claim_row_put_back_reads_changed(self):
        old = dict(self.conn.execute("SELECT * FROM work WHERE task_id = 't1'").fetchone())
        self.conn.execute("INSERT INTO coord_abandon VALUES ('t1', 'alice', NULL)")
        self.conn.execute("SELECT coord_set_agent('bob')")
        self.conn.execute("INSERT INTO coord_claim VALUES ('t1', 'bob', 30)")
        # the epoch never goes down through coord's trigger: the attacker
        # drops it too, and puts alice's epoch-1 row back with its valid MAC
        raw = sqlite3.connect(str(self.path), isolation_level=None)
        raw.execute("DROP TRIGGER coord_work_epoch_up")
        raw.execute("UPDATE work SET claimer = ?, epoch = ?, claimed_at = ?, expires_at = ?, "
                    "status = ?, hmac = ? WHERE task_id = 't1'",
                    (old["claimer"], old["epoch"], old["claimed_at"], old["expires_at"],
                     old["status"], old["hmac"]))
        raw.close()
        row = self.conn.execute(
            "SELECT claimer, verification, history FROM coord_work WHERE task_id = 't1'").fetchone()
        # its MAC is alice's and still verifies: only history shows the replay
        self.assertEqual(tuple(row), ("alice", "verified", "changed"))

    def test_a_completion_by_a_non_holder_with_plain_sql(self):
        # bob, holding only his own key, completes alice's claim in her name
        self.attacker("UPDATE work SET status = 'completed', result = 'bob did it', "
                      "completed_at = datetime('now') WHERE task_id = 't1'")
        row = self.conn.execute(
            "SELECT status, verification, history FROM coord_work WHERE task_id = 't1'").fetchone()
        # the four signed fields are alice's: verified, as gptme reads it;
        # the history says the row is not what any signed event made it
        self.assertEqual(tuple(row), ("completed", "verified", "changed"))
        self.assertEqual(self.log()[2]["row"], "changed")

    def test_a_completion_bob_signs_himself_names_him_not_the_holder(self):
        # bob also appends a well-formed event for it, signed with his key
        last = self.log()[6]
        self.attacker("UPDATE work SET status = 'completed', result = 'bob', "
                      "completed_at = '2026-12-07 12:00:00' WHERE task_id = 't1'")
        row = dict(self.conn.execute("SELECT * FROM work WHERE task_id = 't1'").fetchone())
        state = gptme_ref.canonical([row[c] for c in (
            "task_id", "claimer", "epoch", "claimed_at", "expires_at", "status", "result",
            "metadata", "completed_at")]).decode()
        fields = ["bob", "coord:event/1", 7, last["link"], "complete", "t1",
                  "2026-12-07 12:00:00", state]
        self.attacker("INSERT INTO coord_events VALUES (7, ?, 'complete', 't1', ?, 'bob', ?, ?)",
                      (last["link"], "2026-12-07 12:00:00", state, gptme_ref.sign(BOB, fields)))
        log = self.log()
        self.assertEqual((log[7]["verification"], log[7]["chain"]), ("verified", "ok"))
        self.assertEqual(log[7]["actor"], "not_holder")
        self.assertEqual(self.history()["t1"], "not_holder")

    def test_a_claim_over_a_live_lease_is_not_a_holder_transition(self):
        last = self.log()[6]
        self.attacker("UPDATE work SET claimer = 'bob', epoch = 2, hmac = NULL WHERE task_id = 't1'")
        row = dict(self.conn.execute("SELECT * FROM work WHERE task_id = 't1'").fetchone())
        state = gptme_ref.canonical([row[c] for c in (
            "task_id", "claimer", "epoch", "claimed_at", "expires_at", "status", "result",
            "metadata", "completed_at")]).decode()
        at = row["claimed_at"]
        fields = ["bob", "coord:event/1", 7, last["link"], "claim", "t1", at, state]
        self.attacker("INSERT INTO coord_events VALUES (7, ?, 'claim', 't1', ?, 'bob', ?, ?)",
                      (last["link"], at, state, gptme_ref.sign(BOB, fields)))
        self.assertEqual(self.log()[7]["actor"], "held")

    def test_a_truncated_log_is_behind_its_checkpoint(self):
        size, head, origin = self.conn.execute(
            "SELECT max(seq), (SELECT link FROM coord_log ORDER BY seq DESC LIMIT 1), "
            "(SELECT link FROM coord_log WHERE seq = 1) FROM coord_log").fetchone()
        mac = self.conn.execute("SELECT coord_sign_checkpoint('alice', ?, ?, ?, 'now')",
                                (origin, size, head)).fetchone()[0]
        self.conn.execute("INSERT INTO coord_checkpoints(agent, origin, size, head, at, hmac) "
                          "VALUES ('alice', ?, ?, ?, 'now', ?)", (origin, size, head, mac))
        cp = self.conn.execute("SELECT verification, consistency FROM coord_checkpoint_log")
        self.assertEqual(tuple(cp.fetchone()), ("verified", "consistent"))
        self.attacker("DELETE FROM coord_events WHERE seq = 6")
        cp = self.conn.execute("SELECT verification, consistency FROM coord_checkpoint_log")
        self.assertEqual(tuple(cp.fetchone()), ("verified", "ahead"))

    def test_a_failed_operation_leaves_no_event(self):
        n = len(self.log())
        for sql in ("INSERT INTO coord_complete VALUES ('t1', 'bob', NULL, 'x')",
                    "INSERT INTO coord_claim VALUES ('t1', 'bob', 30)",
                    "INSERT INTO coord_submit VALUES ('t1', NULL)"):
            self.conn.execute(sql)  # decided: not_holder, denied, exists
        with self.assertRaises(sqlite3.Error):
            self.conn.execute("INSERT INTO coord_submit VALUES ('t9', x'00')")
        self.assertEqual(len(self.log()), n)

    def test_a_gptme_file_without_a_log_still_reads(self):
        # coord loaded on a database coord_init never ran on
        path = pathlib.Path(self.tmp.name) / "gptme.db"
        raw = sqlite3.connect(str(path))
        raw.executescript("CREATE TABLE work (task_id TEXT PRIMARY KEY, claimer TEXT, "
                          "epoch INTEGER NOT NULL DEFAULT 0, claimed_at TEXT, expires_at TEXT, "
                          "status TEXT NOT NULL DEFAULT 'available', result TEXT, metadata TEXT, "
                          "completed_at TEXT, hmac TEXT);"
                          "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                          "sender TEXT NOT NULL, recipient TEXT, channel TEXT NOT NULL DEFAULT "
                          "'general', body TEXT NOT NULL, hmac TEXT, created_at TEXT NOT NULL "
                          "DEFAULT (datetime('now')));"
                          "INSERT INTO work(task_id) VALUES ('g1');")
        raw.close()
        conn = connect(path)
        self.assertEqual(conn.execute("SELECT history FROM coord_work").fetchall()[0][0],
                         "no_history")
        self.assertEqual(conn.execute("SELECT count(*) FROM coord_log").fetchone()[0], 0)
        conn.close()


if __name__ == "__main__":
    unittest.main()
