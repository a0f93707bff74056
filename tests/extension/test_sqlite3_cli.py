"""The extension in Debian's sqlite3 command-line shell (SQLite 3.40)."""
import json
import os
import shutil
import subprocess
import unittest

from common import ALICE, EXT, EnvSandbox, copy_fixture

SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"


def shell(db, script, env=None):
    return subprocess.run([SQLITE3, "-bail", "-batch", str(db)], input=f".load {EXT}\n{script}",
                          capture_output=True, text=True, env=env, timeout=60)


class SqliteShell(unittest.TestCase):
    def setUp(self):
        self.sandbox = EnvSandbox().__enter__()
        self.dir = self.sandbox.path

    def tearDown(self):
        self.sandbox.__exit__(None, None, None)

    def test_fixture_verifies_row_for_row(self):
        root = copy_fixture(self.dir)
        expected = json.loads((root / "expected.json").read_text())
        env = dict(os.environ, COORDINATION_SECRETS_DIR=str(root / "secrets"))
        r = shell(root / "coord.db", ".mode json\nSELECT task_id, verified, verification FROM coord_work;\n"
                  "SELECT id, verified FROM coord_messages;\n", env)
        self.assertEqual(r.returncode, 0, r.stderr)
        # two JSON arrays, one per query
        text = r.stdout.strip()
        first, second = text.split("]\n[", 1) if "]\n[" in text else text.split("][", 1)
        work = json.loads(first + "]")
        msgs = json.loads("[" + second)
        self.assertEqual({w["task_id"]: bool(w["verified"]) for w in work}, expected["work"])
        self.assertEqual({str(m["id"]): bool(m["verified"]) for m in msgs}, expected["messages"])

    def test_a_worked_session(self):
        db = self.dir / "s.db"
        script = f"""
SELECT coord_version();
SELECT coord_init();
SELECT coord_key_add('alice', '{ALICE.decode()}') IS NOT NULL;
INSERT INTO coord_claim VALUES ('task:1', 'alice', 30);
SELECT outcome, epoch, signed FROM coord_result;
INSERT INTO coord_claim VALUES ('task:1', 'bob', 30);
SELECT outcome, holder FROM coord_result;
SELECT task_id, claimer, epoch, state, verification FROM coord_work;
"""
        r = shell(db, script)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.strip().splitlines()
        self.assertRegex(lines[0], r"^\d+\.\d+\.\d+$")
        self.assertEqual(lines[1:], ["coord schema ready", "1", "granted|1|1", "denied|alice",
                                     "task:1|alice|1|claimed|verified"])

    def test_errors_are_reported_and_the_shell_survives(self):
        db = self.dir / "e.db"
        r = shell(db, "SELECT coord_sign('../etc/passwd', 'x');\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("invalid agent id", r.stderr)
        r = shell(db, "SELECT coord_verify(NULL, NULL), coord_verify('a', 'b', x'00');\n")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "0|0"))


if __name__ == "__main__":
    unittest.main()
