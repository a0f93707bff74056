"""The hostile-database attacks of tests/hardening/attacks.json, through
Debian's python3 sqlite3 module and Debian's sqlite3 shell (SQLite 3.40),
each with coord loaded before and after the host first reads the schema.

Every attack must fail closed: a victim holding alice's key ends with the
forged claim reading bad_mac, alice's own key still the one it signs with,
no agent set, and nothing signed left in the file. The same file drives
tests/rusqlite-host/tests/attacks.rs and crates/coord-cli/tests/attacks.rs.

Run: tests/hardening/hostile.sh."""
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "extension"))
from common import EXT, EnvSandbox, connect  # noqa: E402

SPEC = json.loads((pathlib.Path(__file__).with_name("attacks.json")).read_text())
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
ORDERS = ("schema_first", "coord_first")


def build(directory, attack):
    """The attacker's files: a coord database with the forged claim and the
    attack's plants; an attached file when the attack has one."""
    db = directory / "victim.db"
    c = connect(db)
    c.execute("SELECT coord_init()")
    f = SPEC["forged"]
    c.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac)"
              " VALUES (?, ?, ?, ?, 'claimed', ?)",
              (f["task_id"], f["claimer"], f["epoch"], f["expires_at"], f["hmac"]))
    for s in attack.get("plant", []):
        c.execute(s)
    if attack.get("edit"):
        c.execute("PRAGMA writable_schema = ON")
        for s in attack["edit"]:
            c.execute(s)
    c.close()
    evil = None
    if "attach_plant" in attack:
        evil = directory / "evil.db"
        e = connect(evil)
        for s in attack["attach_plant"]:
            e.execute(s)
        e.close()
    return db, evil


def raw_checks(test, db, attack):
    raw = sqlite3.connect(str(db), isolation_level=None)
    try:
        for sql, want in attack.get("raw_checks", []):
            test.assertEqual(raw.execute(sql).fetchone()[0], want, sql)
    finally:
        raw.close()


LOAD_REFUSED = "malformed database schema"
OUTCOMES = {}


class Attacks(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        # What happened to each attack, for the record; and every attack
        # must have met a loaded coord in at least one order on each host.
        for (host, name), by_order in sorted(OUTCOMES.items()):
            print(f"attack {host:8} {name:48} " + ", ".join(f"{o}: {v}" for o, v in by_order.items()),
                  file=sys.stderr)
            assert any(v != "load refused" for v in by_order.values()), (host, name)

    def outcome(self, host, attack, order, what):
        OUTCOMES.setdefault((host, attack["name"]), {})[order] = what

    def setUp(self):
        self.sandbox = EnvSandbox().__enter__()
        os.environ["COORDINATION_SECRET_ALICE"] = SPEC["alice_key"]

    def tearDown(self):
        self.sandbox.__exit__(None, None, None)

    def fresh_dir(self, name):
        d = self.sandbox.path / name
        d.mkdir()
        return d

    def test_the_checks_would_see_a_successful_attack(self):
        # Positive control: with the attacker's key installed as alice, the
        # forged claim verifies and the probe signs differently, so the
        # generic checks below can fail.
        c = connect()
        c.execute("SELECT coord_init()")
        f = SPEC["forged"]
        c.execute("INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac)"
                  " VALUES (?, ?, ?, ?, 'claimed', ?)",
                  (f["task_id"], f["claimer"], f["epoch"], f["expires_at"], f["hmac"]))
        checks = SPEC["generic_checks"]
        self.assertEqual(c.execute(checks[1][0]).fetchone()[0], checks[1][1])
        c.execute("SELECT coord_key_add('alice', ?)", (SPEC["evil_key"],))
        self.assertEqual(c.execute(checks[0][0]).fetchone()[0], "verified")
        self.assertNotEqual(c.execute(checks[1][0]).fetchone()[0], checks[1][1])

    def test_python_sqlite3(self):
        for attack in SPEC["attacks"]:
            for order in ORDERS:
                with self.subTest(attack=attack["name"], order=order):
                    d = self.fresh_dir(f"py-{attack['name']}-{order}")
                    db, evil = build(d, attack)
                    conn = sqlite3.connect(str(db), isolation_level=None)
                    if order == "schema_first":
                        # what a host does before loading: Python's own
                        # setup reads the schema
                        conn.execute("PRAGMA journal_mode = WAL").fetchall()
                        if evil:
                            conn.execute("ATTACH ? AS evil", (str(evil),))
                            conn.execute("SELECT count(*) FROM evil.sqlite_schema").fetchall()
                        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
                    conn.enable_load_extension(True)
                    try:
                        conn.load_extension(EXT)
                    except sqlite3.OperationalError as e:
                        # Fails closed: coord will not load on a schema
                        # SQLite calls malformed, so nothing can sign.
                        self.assertRegex(str(e), LOAD_REFUSED)
                        self.outcome("python3", attack, order, "load refused")
                        conn.close()
                        raw_checks(self, db, attack)
                        continue
                    conn.enable_load_extension(False)
                    if evil and order == "coord_first":
                        conn.execute("ATTACH ? AS evil", (str(evil),))
                    errors = []
                    for s in attack["victim"]:
                        try:
                            conn.execute(s).fetchall()
                        except sqlite3.DatabaseError as e:
                            errors.append(str(e))
                    if attack.get("refused"):
                        self.assertTrue(any(re.search(SPEC["refusal"], e) for e in errors), errors)
                    for e in errors:
                        self.assertNotIn(SPEC["alice_key"], e)
                        self.assertNotIn(SPEC["evil_key"], e)
                    for sql, want in SPEC["generic_checks"] + attack.get("checks", []):
                        self.assertEqual(conn.execute(sql).fetchone()[0], want, sql)
                    conn.close()
                    raw_checks(self, db, attack)
                    self.outcome("python3", attack, order, "; ".join(sorted(set(
                        re.search(SPEC["refusal"], e).group(0) for e in errors
                        if re.search(SPEC["refusal"], e)))) or "no error")

    def test_sqlite3_shell(self):
        for attack in SPEC["attacks"]:
            for order in ORDERS:
                with self.subTest(attack=attack["name"], order=order):
                    d = self.fresh_dir(f"sh-{attack['name']}-{order}")
                    db, evil = build(d, attack)
                    attach = [f"ATTACH '{evil}' AS evil;"] if evil else []
                    load = [f".load {EXT}"]
                    if order == "schema_first":
                        # `.tables` parses every schema before coord loads
                        head = attach + [".tables"] + load
                    else:
                        head = load + attach
                    checks = SPEC["generic_checks"] + attack.get("checks", [])
                    # each check runs as it is (a privileged function must
                    # be a direct call), after a line naming it
                    marks = [f"SELECT 'check{i}';\n{sql};" for i, (sql, _) in enumerate(checks)]
                    # statement by statement, so that marks tell which failed
                    body = [f"SELECT 'victim{i}';\n{s};" for i, s in enumerate(attack["victim"])]
                    script = "\n".join(head + body + marks) + "\n"
                    r = subprocess.run([SQLITE3, "-batch", str(db)], input=script, capture_output=True,
                                       text=True, timeout=60, env=os.environ.copy())
                    if re.search(LOAD_REFUSED, r.stderr):
                        self.outcome("sqlite3", attack, order, "load refused")
                        raw_checks(self, db, attack)
                        continue
                    if attack.get("refused"):
                        self.assertRegex(r.stderr, SPEC["refusal"])
                    self.outcome("sqlite3", attack, order, "; ".join(sorted(set(
                        re.findall(SPEC["refusal"], r.stderr)))) or "no error")
                    self.assertNotIn(SPEC["alice_key"], r.stdout + r.stderr)
                    self.assertNotIn(SPEC["evil_key"], r.stdout + r.stderr)
                    lines = r.stdout.splitlines()
                    got = {line: lines[i + 1] for i, line in enumerate(lines[:-1])
                           if re.fullmatch(r"check\d+", line)}
                    for i, (sql, want) in enumerate(checks):
                        self.assertEqual(got.get(f"check{i}"), str(want), f"{sql}\n{r.stderr}")
                    raw_checks(self, db, attack)


if __name__ == "__main__":
    unittest.main()
