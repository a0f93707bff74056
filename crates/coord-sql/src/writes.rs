//! The compare-and-swap of every write-API operation, defined once
//! (`sql/writes.sql`) and run by every backend.
//!
//! An operation decides from the state it reads and records that decision
//! in one row of `coord_result` ([`DECISION`] are its columns); the writes
//! then apply only if the row is still in the state the decision read, and
//! a check names any write that did not land as decided. On a connection
//! with coord registered, the write API's triggers run these statements
//! against the TEMP `coord_result`. A backend that keeps its rows elsewhere
//! (a libSQL server) makes the decision on a working copy, reads it with
//! [`decision`], and runs the same statements where the rows live with
//! [`with_decision`], which binds the decision as a one-row CTE.
//!
//! ```
//! use coord_sql::writes::{self, Kind};
//! let claim = writes::writes(Kind::Claim);
//! assert_eq!(claim.statements.len(), 2); // renew or grant an existing task; grant a new one
//! let sql = writes::with_decision(claim.check);
//! assert!(sql.starts_with("WITH coord_result(op, task_id, agent, outcome"));
//! ```

use std::sync::OnceLock;

use rusqlite::types::Value;
use rusqlite::Connection;

/// The SQL: each operation's writes and check.
pub const WRITES_SQL: &str = include_str!("../sql/writes.sql");

/// The columns of `coord_result` that the writes read: the decision.
pub const DECISION: [&str; 23] = [
    "op",
    "task_id",
    "agent",
    "outcome",
    "holder",
    "existed",
    "epoch",
    "expires_at",
    "now",
    "mac",
    "result",
    "metadata",
    "recipient",
    "channel",
    "body",
    "ev_seq",
    "ev_prev",
    "ev_op",
    "ev_subject",
    "ev_at",
    "ev_agent",
    "ev_state",
    "ev_mac",
];

/// An operation of the write API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `coord_claim`.
    Claim,
    /// `coord_complete`.
    Complete,
    /// `coord_abandon`.
    Abandon,
    /// `coord_submit`.
    Submit,
    /// `coord_send`.
    Send,
    /// The event every operation that changes a row appends to the log,
    /// after its own writes (see docs/history.md).
    Event,
}

impl Kind {
    /// Every operation.
    pub const ALL: [Kind; 6] = [
        Kind::Claim,
        Kind::Complete,
        Kind::Abandon,
        Kind::Submit,
        Kind::Send,
        Kind::Event,
    ];

    /// The operation's name in `coord_result.op` and `sql/writes.sql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Claim => "claim",
            Kind::Complete => "complete",
            Kind::Abandon => "abandon",
            Kind::Submit => "submit",
            Kind::Send => "send",
            Kind::Event => "event",
        }
    }
}

/// One operation's conditional writes and their check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes {
    /// The writes, in order; each applies only in the state decided on.
    pub statements: Vec<&'static str>,
    /// A SELECT of one `problem` column: a row means a write did not land as
    /// decided, and the operation must fail with that text.
    pub check: &'static str,
}

/// The writes of `kind`, from `sql/writes.sql`.
pub fn writes(kind: Kind) -> &'static Writes {
    static PARSED: OnceLock<Vec<Writes>> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        // Leaked once per process: the statements are handed out as
        // `&'static str`, like the embedded text they come from.
        let sql: &'static str = Box::leak(writes_sql().into_boxed_str());
        Kind::ALL.iter().map(|k| parse(sql, *k)).collect()
    });
    // Kind::ALL lists every kind in declaration order.
    &all[kind as usize]
}

/// sql/writes.sql with its holes filled from coord-core's row model:
/// `{task_matches}` and `{message_matches}` compare each column an event
/// records (`w.*`, `m.*`) with the event's state (`r.ev_state`), in
/// built-in SQL, so that a server checks it too.
///
/// The comparison is exact: each column `IS json_extract(state, '$[i]')`.
/// That parses the state once per column, so a quicker test comes first
/// and decides the common case: `json_array(columns) = state` (one string
/// built, one compare), taken only when the state holds no `.`. SQLite's
/// JSON array parses back to exactly the TEXT, INTEGER and NULL values it
/// was built from, and writes every finite REAL with a `.` (`1.0`,
/// `1.0e+20`) and an infinity as `Inf`, which no canonical state holds (it
/// writes `Infinity`), so where the two strings are equal and hold no `.`
/// no column is a REAL and every column-by-column test holds too. Where they differ (non-ASCII
/// text, which the canonical form escapes and json_array does not, a `.`
/// anywhere, or a changed row) the exact test decides. A BLOB in the row,
/// which json_array refuses, makes the check an error: the operation fails
/// either way.
fn writes_sql() -> String {
    let matches = |prefix: &str, cols: &[&str]| {
        let array = cols
            .iter()
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let exact = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{prefix}.{c} IS json_extract(r.ev_state, '$[{i}]')"))
            .collect::<Vec<_>>()
            .join("\n                      AND ");
        format!(
            "((instr(r.ev_state, '.') = 0 AND json_array({array}) = r.ev_state)\n                   OR ({exact}))"
        )
    };
    WRITES_SQL
        .replace("{task_matches}", &matches("w", &coord_core::TASK_STATE))
        .replace(
            "{message_matches}",
            &matches("m", &coord_core::MESSAGE_STATE),
        )
}

/// The section `-- {what}: {op}` of `sql`, up to the next section.
fn section<'a>(sql: &'a str, what: &str, op: &str) -> &'a str {
    let head = format!("\n-- {what}: {op}\n");
    let Some(start) = sql.find(&head).map(|i| i + head.len()) else {
        // The file is embedded and tested (see the tests below).
        return "";
    };
    let rest = &sql[start..];
    let end = rest
        .find("\n-- write: ")
        .into_iter()
        .chain(rest.find("\n-- check: "))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Whether `chunk` holds SQL, not only comments and blanks.
fn has_sql(chunk: &str) -> bool {
    chunk
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
}

fn parse(sql: &'static str, kind: Kind) -> Writes {
    let statements = section(sql, "write", kind.as_str())
        .split_inclusive(";\n")
        .map(|s| s.trim().trim_end_matches(';'))
        .filter(|s| has_sql(s))
        .collect();
    Writes {
        statements,
        check: section(sql, "check", kind.as_str()).trim(),
    }
}

/// `sql` run against a decision bound as parameters `?1`..`?23`, in the
/// order of [`DECISION`]: `coord_result` becomes a one-row CTE.
pub fn with_decision(sql: &str) -> String {
    let params: Vec<String> = (1..=DECISION.len()).map(|i| format!("?{i}")).collect();
    // `?1`..`?23` with no column types: a CTE of VALUES keeps each bound
    // value's own type.
    format!(
        "WITH coord_result({}) AS (VALUES ({}))\n{sql}",
        DECISION.join(", "),
        params.join(", ")
    )
}

/// The decision of the last operation on `conn` (its `temp.coord_result`
/// row), in the order of [`DECISION`]; `None` if there is none.
pub fn decision(conn: &Connection) -> rusqlite::Result<Option<Vec<Value>>> {
    let sql = format!("SELECT {} FROM temp.coord_result", DECISION.join(", "));
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query([])?;
    match rows.next()? {
        None => Ok(None),
        Some(r) => (0..DECISION.len())
            .map(|i| r.get::<_, Value>(i))
            .collect::<rusqlite::Result<_>>()
            .map(Some),
    }
}

/// `sql` with `{task_state}` and `{message_state}` replaced by the columns
/// an event records (coord-core's TASK_STATE and MESSAGE_STATE), as `w.*`
/// and `m.*`: the holes of sql/api.sql and sql/views.sql.
pub(crate) fn fill_state(sql: &str) -> String {
    let qualify = |prefix: &str, cols: &[&str]| {
        cols.iter()
            .map(|c| format!("{prefix}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    sql.replace("{task_state}", &qualify("w", &coord_core::TASK_STATE))
        .replace("{message_state}", &qualify("m", &coord_core::MESSAGE_STATE))
}

/// sql/api.sql with each `-- coord:writes OP` and `-- coord:check OP` line
/// replaced by that operation's writes, and its check raised through
/// `coord_fail`.
pub(crate) fn expand_api(api: &str) -> String {
    // The event block is cut from where it is defined and put wherever an
    // operation appends its event.
    let (begin, end) = ("-- coord:event-begin\n", "-- coord:event-end\n");
    let out = match (api.find(begin), api.find(end)) {
        (Some(b), Some(e)) if b < e => {
            let block = &api[b + begin.len()..e];
            let rest = format!("{}{}", &api[..b], &api[e + end.len()..]);
            rest.replace("    -- coord:event\n", block)
        }
        _ => api.to_owned(),
    };
    let mut out = fill_state(&out);
    for kind in Kind::ALL {
        let w = writes(kind);
        let mut body = String::new();
        for s in &w.statements {
            body.push_str(s);
            body.push_str(";\n");
        }
        out = out.replace(&format!("-- coord:writes {}\n", kind.as_str()), &body);
        out = out.replace(
            &format!("-- coord:check {}\n", kind.as_str()),
            &format!("SELECT coord_fail(problem) FROM (\n{}\n);\n", w.check),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_writes_and_a_check() {
        for kind in Kind::ALL {
            let w = writes(kind);
            assert!(!w.statements.is_empty(), "{kind:?}");
            for s in &w.statements {
                assert!(!s.contains(';'), "{kind:?}: one statement each: {s}");
            }
            assert!(w.check.starts_with("SELECT "), "{kind:?}: {}", w.check);
            assert!(w.check.contains("AS problem"), "{kind:?}");
            assert!(!w.check.contains(';'), "{kind:?}");
        }
        assert_eq!(writes(Kind::Claim).statements.len(), 2);
        assert_eq!(writes(Kind::Submit).statements.len(), 2);
        assert_eq!(writes(Kind::Send).statements.len(), 1);
        assert_eq!(writes(Kind::Event).statements.len(), 1);
        assert!(!writes(Kind::Event).check.contains("{task_matches}"));
    }

    #[test]
    fn the_writes_call_no_coord_function() {
        // A server runs them without coord loaded.
        for kind in Kind::ALL {
            let w = writes(kind);
            for s in w.statements.iter().chain([&w.check]) {
                // The code, without comments and string literals.
                let code: String = s
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .split('\'')
                    .step_by(2)
                    .collect();
                assert!(
                    !code
                        .replace("coord_result", "")
                        .replace("coord_events", "")
                        .contains("coord_"),
                    "{kind:?}: {s}"
                );
            }
        }
    }

    #[test]
    fn the_api_keeps_no_placeholder() {
        let api = expand_api(crate::API_SQL);
        for kind in Kind::ALL {
            let op = kind.as_str();
            assert!(
                crate::API_SQL.contains(&format!("-- coord:writes {op}\n")),
                "{op}: sql/api.sql lost its placeholders"
            );
            assert!(!api.contains(&format!("-- coord:writes {op}\n")), "{op}");
            assert!(!api.contains(&format!("-- coord:check {op}\n")), "{op}");
            assert!(api.contains(writes(kind).check), "{op}");
        }
    }
}
