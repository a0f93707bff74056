"""Writes the gptme fixture's signed rows as JSON, for hosts without SQLite.

usage: fixture_rows.py FIXTURE_DIR OUT.json

FIXTURE_DIR is a copy of tests/fixtures/gptme (coord.db, expected.json).
"""
import json
import sqlite3
import sys
from pathlib import Path


def main() -> None:
    fixture, out = Path(sys.argv[1]), Path(sys.argv[2])
    db = sqlite3.connect(fixture / "coord.db")
    db.row_factory = sqlite3.Row
    work = [dict(r) for r in db.execute(
        "SELECT task_id, claimer, epoch, expires_at, hmac FROM work ORDER BY rowid")]
    messages = [dict(r) for r in db.execute(
        "SELECT id, sender, recipient, channel, body, hmac FROM messages ORDER BY id")]
    expected = json.loads((fixture / "expected.json").read_text())
    if not work or not messages:
        sys.exit("fixture has no rows")
    out.write_text(json.dumps(
        {"work": work, "messages": messages, "expected": expected}, ensure_ascii=False))


if __name__ == "__main__":
    main()
