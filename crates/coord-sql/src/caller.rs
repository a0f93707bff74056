//! Who may reach coord's privileged functions: the direct-call rule.
//!
//! The functions that sign, install or remove keys, reload them or change
//! the acting agent (and `coord_init`) run only when the statement calling
//! them is a plain top-level `SELECT` that names no table: one `SELECT`
//! keyword, no `FROM`, no `IN`, and no other statement of the connection in
//! progress. Such a statement reads and writes nothing stored, so no object
//! stored in any database (a CHECK constraint, a DEFAULT, a generated
//! column, an index expression or partial-index WHERE, a view, a trigger; in
//! `main`, `temp` or an attached file) can be evaluated while it runs, and
//! nothing a stored object names can be the caller. The rule looks at the
//! caller, not at the schema, so it holds however the schema was planted
//! (`writable_schema`, any `type` spelling), whether it was parsed before or
//! after coord loaded, and whatever statement (a PRAGMA, a plain SELECT of a
//! table, coord's own write API) would have reached the stored object.
//!
//! SQLite's own guard, `SQLITE_DIRECTONLY`, is kept as well: it keeps these
//! functions out of views and triggers, but SQLite 3.40 does not apply it to
//! expressions it parsed with the schema (CHECK, generated columns, index
//! expressions), which is the hole this rule closes.

use rusqlite::functions::Context;
use rusqlite::Connection;

/// Why a call was refused. Never quotes the statement: it may hold a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDirect {
    /// Other statements of this connection are in progress: one of them
    /// could be the one that reached the function through a stored object.
    OtherStatements(usize),
    /// The host gave SQLite no statement text to check.
    NoText,
    /// The statement is not a SELECT (an INSERT, UPDATE, PRAGMA, ...).
    NotSelect,
    /// The statement names a table (FROM, IN) or holds a subquery.
    ReadsTables,
}

impl std::fmt::Display for NotDirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherStatements(n) => write!(
                f,
                "{n} other statement(s) of this connection are in progress (finish or reset them first)"
            ),
            Self::NoText => write!(f, "the statement's text is not available"),
            Self::NotSelect => write!(f, "the calling statement is not a SELECT"),
            Self::ReadsTables => write!(
                f,
                "the calling statement reads tables (FROM, IN or a subquery), so a stored object could be the caller"
            ),
        }
    }
}

/// Checks the direct-call rule for a function running in `ctx`.
pub(crate) fn check(ctx: &Context<'_>) -> rusqlite::Result<Result<(), NotDirect>> {
    // SAFETY: the connection reference is used only for the duration of
    // this call, on the thread SQLite called us on, and is not stored or
    // sent anywhere.
    let conn = unsafe { ctx.get_connection()? };
    Ok(check_connection(&conn))
}

fn check_connection(conn: &Connection) -> Result<(), NotDirect> {
    let mut busy = Vec::new();
    // SAFETY: `conn` wraps the live handle SQLite called this function on,
    // and we are on the thread that holds its mutex for this call, so its
    // list of prepared statements cannot change while we walk it. The
    // statement pointers come from sqlite3_next_stmt and are only passed
    // back to SQLite's read-only accessors, never stored.
    unsafe {
        let db = conn.handle();
        let mut stmt = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            if rusqlite::ffi::sqlite3_stmt_busy(stmt) != 0 {
                busy.push(stmt);
            }
            stmt = rusqlite::ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    // A function runs only inside sqlite3_step of a statement, which is then
    // busy: with exactly one busy statement, that one is the caller.
    let [stmt] = busy[..] else {
        return Err(NotDirect::OtherStatements(busy.len().saturating_sub(1)));
    };
    // SAFETY: `stmt` is a live statement of this connection (see above);
    // sqlite3_sql returns its text, owned by the statement, valid while we
    // use it here.
    let text = unsafe {
        let p = rusqlite::ffi::sqlite3_sql(stmt);
        if p.is_null() {
            return Err(NotDirect::NoText);
        }
        std::ffi::CStr::from_ptr(p).to_bytes()
    };
    reads_nothing_stored(text)
}

/// Whether `sql` is a SELECT that names no table: the first word is SELECT,
/// no other word is SELECT, and none is FROM or IN (`x IN t` reads table t).
/// Words inside string literals, quoted identifiers and comments are not
/// keywords and are skipped.
pub(crate) fn reads_nothing_stored(sql: &[u8]) -> Result<(), NotDirect> {
    let mut words = Words { sql, at: 0 };
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case(b"select") => {}
        _ => return Err(NotDirect::NotSelect),
    }
    for w in words {
        if [&b"select"[..], b"from", b"in"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
        {
            return Err(NotDirect::ReadsTables);
        }
    }
    Ok(())
}

/// The bare words of a SQL text, in order, as SQLite's tokenizer sees them.
struct Words<'a> {
    sql: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.sql;
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        while self.at < s.len() {
            let b = s[self.at];
            let rest = &s[self.at..];
            if rest.starts_with(b"--") {
                self.at += rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            } else if rest.starts_with(b"/*") {
                self.at += rest
                    .windows(2)
                    .skip(2)
                    .position(|w| w == b"*/")
                    .map_or(rest.len(), |p| p + 4);
            } else if let Some(close) = match b {
                b'\'' => Some(b'\''),
                b'"' => Some(b'"'),
                b'`' => Some(b'`'),
                b'[' => Some(b']'),
                _ => None,
            } {
                // A quoted string or name; a doubled quote is part of it.
                let mut i = self.at + 1;
                loop {
                    match s.get(i) {
                        None => break,
                        Some(&c) if c == close => {
                            if close != b']' && s.get(i + 1) == Some(&close) {
                                i += 2;
                                continue;
                            }
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                self.at = i;
            } else if is_word(b) {
                let start = self.at;
                while self.at < s.len() && is_word(s[self.at]) {
                    self.at += 1;
                }
                return Some(&s[start..self.at]);
            } else {
                self.at += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{reads_nothing_stored, NotDirect};

    #[test]
    fn a_select_of_values_only_is_direct() {
        for sql in [
            "SELECT coord_key_add('alice', readfile('alice.key'))",
            "  select coord_set_agent(?1);",
            "/* c */ SELECT coord_sign('a', 'from', 'in', 'select', \"x\")",
            "SELECT coord_sign('a', 'it''s from') -- FROM t",
            "SELECT coord_key_add(:agent, $key) WHERE 1",
        ] {
            assert_eq!(reads_nothing_stored(sql.as_bytes()), Ok(()), "{sql}");
        }
    }

    #[test]
    fn anything_that_can_reach_a_table_is_not() {
        for (sql, why) in [
            ("PRAGMA quick_check", NotDirect::NotSelect),
            (
                "INSERT INTO temp.coord_claim VALUES ('t', 'a', 1)",
                NotDirect::NotSelect,
            ),
            (
                "WITH x AS (SELECT 1) SELECT coord_sign('a')",
                NotDirect::NotSelect,
            ),
            ("VALUES (coord_sign('a'))", NotDirect::NotSelect),
            (
                "SELECT coord_sign('a', x) FROM notes",
                NotDirect::ReadsTables,
            ),
            (
                "SELECT coord_sign('a', (SELECT k FROM t))",
                NotDirect::ReadsTables,
            ),
            (
                "SELECT coord_sign('a') WHERE 1 IN notes",
                NotDirect::ReadsTables,
            ),
            (
                "SELECT coord_sign('a') wHeRe 1 in main.notes",
                NotDirect::ReadsTables,
            ),
            (
                "SELECT coord_sign('a') UNION SELECT 1",
                NotDirect::ReadsTables,
            ),
            (
                "SELECT coord_sign('a')/**/FROM/**/t",
                NotDirect::ReadsTables,
            ),
            ("SELECT coord_sign('a') FROM[t]", NotDirect::ReadsTables),
            ("", NotDirect::NotSelect),
            ("'SELECT' coord_sign('a')", NotDirect::NotSelect),
        ] {
            assert_eq!(reads_nothing_stored(sql.as_bytes()), Err(why), "{sql}");
        }
    }

    #[test]
    fn unterminated_quotes_and_comments_end_the_text() {
        assert_eq!(reads_nothing_stored(b"SELECT 'x FROM t"), Ok(()));
        assert_eq!(reads_nothing_stored(b"SELECT 1 /* FROM t"), Ok(()));
        assert_eq!(reads_nothing_stored(b"SELECT [x FROM t"), Ok(()));
    }
}
