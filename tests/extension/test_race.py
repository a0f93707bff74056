"""Real processes racing on a file-backed WAL database: exactly one winner
per (task, epoch), gapless epochs, busy never reported as success."""
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

from common import connect

HERE = pathlib.Path(__file__).resolve().parent
WORKERS = 8
TASKS = 300


class Race(unittest.TestCase):
    def race(self, busy_timeout):
        with tempfile.TemporaryDirectory() as d:
            db = pathlib.Path(d) / "race.db"
            conn = connect(db)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("SELECT coord_init()")
            start = pathlib.Path(d) / "go"
            procs = []
            keys = {}
            for i in range(WORKERS):
                agent = f"agent-{i}"
                # a key as coord keygen writes it: 32 random bytes, hex
                keys[agent] = os.urandom(32).hex()
                procs.append(subprocess.Popen(
                    [sys.executable, str(HERE / "race_worker.py"), str(db), agent, keys[agent],
                     str(TASKS), str(start), str(busy_timeout), str(i)],
                    stdout=subprocess.PIPE, text=True))
            start.touch()  # the barrier: every worker is polling for this file
            reports = {}
            for i, p in enumerate(procs):
                out, _ = p.communicate(timeout=600)
                self.assertEqual(p.returncode, 0, f"worker {i} failed")
                reports[f"agent-{i}"] = json.loads(out)

            by_task = collections.defaultdict(list)
            for agent, rep in reports.items():
                for task, epoch in rep["grants"]:
                    by_task[task].append((epoch, agent))
            final = {r["task_id"]: r for r in conn.execute("SELECT * FROM work")}
            for k, v in keys.items():
                conn.execute("SELECT coord_key_add(?, ?)", (k, v))
            verified = dict(conn.execute("SELECT task_id, verification FROM coord_work"))
            for task, grants in by_task.items():
                epochs = sorted(e for e, _ in grants)
                # one winner per epoch, epochs 1..n with no gap, and the
                # database agrees with what the winners were told
                self.assertEqual(epochs, list(range(1, len(epochs) + 1)), task)
                self.assertEqual(final[task]["epoch"], len(epochs), task)
                # every worker abandons what it won: gptme's abandoned row,
                # no holder, no expiry, no MAC
                self.assertEqual((final[task]["claimer"], final[task]["expires_at"], final[task]["hmac"]),
                                 (None, None, None), task)
                self.assertEqual(final[task]["status"], "abandoned", task)
                self.assertEqual(verified[task], "unsigned", task)
            # a task nobody won was never written
            self.assertEqual(set(final), set(by_task))
            # the log: one event per grant and per abandon, gapless, every
            # event signed by its actor and in the chain, each task's row
            # exactly what its last event says (a busy attempt left none)
            log = conn.execute("SELECT * FROM coord_log ORDER BY seq").fetchall()
            grants = sum(len(g) for g in by_task.values())
            self.assertEqual([r["seq"] for r in log], list(range(1, len(log) + 1)))
            self.assertEqual(collections.Counter(r["op"] for r in log),
                             collections.Counter({"claim": grants, "abandon": grants}))
            self.assertEqual({(r["verification"], r["chain"], r["actor"]) for r in log},
                             {("verified", "ok", "ok")})
            self.assertEqual({r["row"] for r in log if r["row"] != "superseded"}, {"matches"})
            self.assertEqual(set(dict(conn.execute(
                "SELECT task_id, history FROM coord_work")).values()), {"matches"})
            return reports, by_task

    def test_eight_processes_one_winner_per_task_and_epoch(self):
        reports, by_task = self.race(busy_timeout=60)
        self.assertEqual(len(by_task), TASKS, "every task was won at least once")
        self.assertEqual(sum(r["busy"] for r in reports.values()), 0)
        total = sum(len(r["grants"]) for r in reports.values())
        print(f"\nrace: {WORKERS} processes, {TASKS} tasks, {total} grants, "
              f"{sum(r['denied'] for r in reports.values())} denied", file=sys.stderr)

    def test_busy_timeouts_are_errors_not_grants(self):
        # A 1 ms busy timeout makes many attempts fail with "database is
        # locked"; those must surface as errors and leave no grant behind.
        reports, _ = self.race(busy_timeout=0.001)
        busy = sum(r["busy"] for r in reports.values())
        print(f"\nrace with 1 ms busy timeout: {busy} busy errors", file=sys.stderr)
        self.assertGreater(busy, 0, "the short timeout should have produced busy errors")


if __name__ == "__main__":
    unittest.main()
