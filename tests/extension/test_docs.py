"""Every ```sql example in docs/sql.md runs, and says what it returns.

Each block runs on a fresh in-memory database with the extension loaded,
`coord_init()` done and alice's and bob's keys added (the setup docs/sql.md
states). Statements end with `;` at the end of a line. After a statement,
each `-- → ROW` line is one expected result row (columns joined by `|`,
NULL written as `NULL`), and `-- ✗ TEXT` means the statement must fail with
an error containing TEXT. A statement with neither must simply succeed.

Run with `COORD_DOCS_SHOW=1` to print what each statement returns.
"""
import os
import re
import unittest

from common import REPO, connect

DOC = REPO / "docs" / "sql.md"
SETUP = [
    "SELECT coord_init()",
    "SELECT coord_key_add('alice', 'alice-secret-0123456789abcdef0123456789abcdef')",
    "SELECT coord_key_add('bob', 'bob-secret-0123456789abcdef0123456789abcdef')",
]


def blocks(text):
    """(line number, body) of every ```sql block."""
    for m in re.finditer(r"^```sql\n(.*?)^```$", text, re.S | re.M):
        yield text[: m.start()].count("\n") + 1, m.group(1)


def statements(body):
    """(sql, expected rows or None, expected error or None) per statement."""
    out, sql, rows, err = [], [], None, None
    for line in body.splitlines():
        s = line.strip()
        if s.startswith("-- →"):
            rows = (rows or []) + [s[len("-- →"):].strip()]
        elif s.startswith("-- ✗"):
            err = s[len("-- ✗"):].strip()
        elif s.startswith("--") or not s:
            continue
        else:
            if sql and sql[-1].rstrip().endswith(";"):
                out.append(("\n".join(sql), rows, err))
                sql, rows, err = [], None, None
            sql.append(line.split(" -- ")[0] if " -- " in line else line)
    if sql:
        out.append(("\n".join(sql), rows, err))
    return out


def render(value):
    return "NULL" if value is None else str(value)


class Docs(unittest.TestCase):
    def test_every_sql_example_in_docs_sql_md(self):
        text = DOC.read_text()
        seen = 0
        for line, body in blocks(text):
            conn = connect()
            conn.row_factory = None
            for s in SETUP:
                conn.execute(s)
            for sql, rows, err in statements(body):
                seen += 1
                with self.subTest(line=line, sql=sql):
                    if err is not None:
                        with self.assertRaises(Exception) as cm:
                            conn.execute(sql.rstrip().rstrip(";")).fetchall()
                        self.assertIn(err, str(cm.exception))
                        continue
                    got = ["|".join(render(v) for v in r)
                           for r in conn.execute(sql.rstrip().rstrip(";")).fetchall()]
                    if os.environ.get("COORD_DOCS_SHOW"):
                        print(f"{line}: {sql.strip()}\n    {got}")
                    if rows is not None:
                        self.assertEqual(got, rows)
            conn.close()
        self.assertGreater(seen, 20, "docs/sql.md has no examples to run")


if __name__ == "__main__":
    unittest.main()
