//! coord's stored schema and its one migration, for every backend.
//!
//! [`init`] creates or migrates gptme-coordination's tables, coord's gate
//! table and the stored triggers. It runs on any [`Target`]: a rusqlite
//! connection (a file, the extension's `coord_init()`), or a libSQL server
//! stream (the CLI implements [`Target`] for it), so a file and a server
//! migrate by the same rule.

use coord_core::{Claim, Message};
use rusqlite::Connection;

/// gptme-coordination's tables and coord's gate table.
pub const SCHEMA_SQL: &str = include_str!("../sql/schema.sql");
/// Stored triggers, built-in SQL only, with holes for the signed columns.
const TRIGGERS_TEMPLATE: &str = include_str!("../sql/triggers.sql");

/// Where the schema is read and migrated: all [`init`] needs of a database.
pub trait Target {
    /// What goes wrong on this target.
    type Error;
    /// The rows of a query whose arguments and columns are TEXT (or NULL).
    fn text_rows(
        &mut self,
        sql: &str,
        args: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, Self::Error>;
    /// Runs a script of statements.
    fn run(&mut self, sql: &str) -> Result<(), Self::Error>;
    /// Whether no transaction is open (then [`init`] opens its own with
    /// `BEGIN IMMEDIATE`, else a savepoint).
    fn autocommit(&mut self) -> bool;
    /// The error for a table that is not gptme-coordination's.
    fn foreign(&self, e: crate::SqlError) -> Self::Error;
}

impl Target for &Connection {
    type Error = rusqlite::Error;

    fn text_rows(
        &mut self,
        sql: &str,
        args: &[&str],
    ) -> rusqlite::Result<Vec<Vec<Option<String>>>> {
        let mut st = self.prepare(sql)?;
        let n = st.column_count();
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
            (0..n).map(|i| r.get::<_, Option<String>>(i)).collect()
        })?;
        rows.collect()
    }

    fn run(&mut self, sql: &str) -> rusqlite::Result<()> {
        self.execute_batch(sql)
    }

    fn autocommit(&mut self) -> bool {
        self.is_autocommit()
    }

    fn foreign(&self, e: crate::SqlError) -> rusqlite::Error {
        rusqlite::Error::UserFunctionError(Box::new(e))
    }
}

/// The stored triggers: built-in SQL only, so they run in every client.
/// Which columns clear a stale MAC comes from coord-core's row model.
pub fn triggers_sql() -> String {
    TRIGGERS_TEMPLATE
        .replace("{claim_columns}", &Claim::COLUMNS.join(", "))
        .replace("{claim_changed}", &changed(&Claim::COLUMNS))
        .replace("{message_columns}", &Message::COLUMNS.join(", "))
        .replace("{message_changed}", &changed(&Message::COLUMNS))
}

/// `NEW.c IS NOT OLD.c OR ...` for `columns`, two to a line.
fn changed(columns: &[&str]) -> String {
    columns
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .map(|c| format!("NEW.{c} IS NOT OLD.{c}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        })
        .collect::<Vec<_>>()
        .join("\n      OR ")
}

/// What [`init`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitReport {
    /// Columns that were missing and added (`work.hmac`, ...).
    pub added_columns: Vec<&'static str>,
    /// Stored triggers that were missing or changed on a database that
    /// already had coord's log, and were re-created: on a database coord
    /// wrote before, a dropped append-only trigger is a sign that someone
    /// rewrote the log (or an upgrade of coord changed its text).
    pub restored_triggers: Vec<String>,
}

impl std::fmt::Display for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "coord schema ready")?;
        if !self.added_columns.is_empty() {
            write!(f, "; added {}", self.added_columns.join(", "))?;
        }
        if !self.restored_triggers.is_empty() {
            write!(
                f,
                "; re-created {} (missing or changed: check the log with `coord audit`)",
                self.restored_triggers.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The columns gptme-coordination's code reads, per table.
const GPTME_COLUMNS: &[(&str, &[&str])] = &[
    (
        "work",
        &[
            "task_id",
            "claimer",
            "epoch",
            "claimed_at",
            "expires_at",
            "status",
            "result",
            "metadata",
        ],
    ),
    (
        "messages",
        &["id", "sender", "recipient", "channel", "body", "created_at"],
    ),
];

/// Columns coord adds to an older gptme database (gptme adds the first
/// itself on open).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("work", "completed_at", "work.completed_at"),
    ("work", "hmac", "work.hmac"),
    ("messages", "hmac", "messages.hmac"),
];

/// The tables and indexes schema.sql creates, besides the triggers.
const OBJECTS: &[&str] = &[
    "work",
    "messages",
    "coord_gate",
    "idx_work_claimer",
    "idx_work_status",
    "idx_messages_recipient",
    "idx_messages_channel",
    "idx_messages_created",
    "coord_events",
    "idx_coord_events_subject",
    "coord_checkpoints",
];

/// The stored triggers of [`triggers_sql`], as (name, text SQLite stores).
/// If this parse ever disagreed with SQLite, every `coord_init()` would
/// re-create the triggers, which tests/gptme/test_parity.py catches (the
/// schema version must not move on a current schema).
fn expected_triggers() -> Vec<(String, String)> {
    let all = triggers_sql();
    let mut out = Vec::new();
    let mut rest = all.as_str();
    while let Some(start) = rest.find("CREATE TRIGGER ") {
        let from = &rest[start..];
        let Some(end) = from.find("\nEND;") else {
            break;
        };
        let text = &from[..end + "\nEND".len()];
        let name = text["CREATE TRIGGER ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        out.push((name.to_owned(), text.to_owned()));
        rest = &from[end..];
    }
    out
}

fn columns<T: Target>(t: &mut T, table: &str) -> Result<Vec<String>, T::Error> {
    Ok(
        t.text_rows("SELECT name FROM pragma_table_info(?1, 'main')", &[table])?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect(),
    )
}

/// Whether everything [`init`] would create is there, exactly: tables,
/// indexes, added columns, and each stored trigger with its current text.
pub fn schema_current<T: Target>(t: &mut T) -> Result<bool, T::Error> {
    for (table, column, _) in ADDED_COLUMNS {
        if !columns(t, table)?.iter().any(|c| c == column) {
            return Ok(false);
        }
    }
    let stored: std::collections::HashMap<String, Option<String>> = t
        .text_rows(
            "SELECT name, sql FROM main.sqlite_schema WHERE type IN ('table', 'index', 'trigger')",
            &[],
        )?
        .into_iter()
        .filter_map(|mut r| {
            let sql = r.pop().flatten();
            Some((r.pop().flatten()?, sql))
        })
        .collect();
    if OBJECTS.iter().any(|o| !stored.contains_key(*o)) {
        return Ok(false);
    }
    Ok(expected_triggers()
        .iter()
        .all(|(name, text)| stored.get(name).and_then(|s| s.as_deref()) == Some(text.as_str())))
}

/// Refuses a `work` or `messages` table that gptme-coordination could not
/// use, before anything is written.
fn check_gptme_tables<T: Target>(t: &mut T) -> Result<(), T::Error> {
    for (table, wanted) in GPTME_COLUMNS {
        let have = columns(t, table)?;
        if have.is_empty() {
            continue;
        }
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !have.iter().any(|h| h == w))
            .collect();
        if !missing.is_empty() {
            return Err(t.foreign(crate::SqlError::ForeignTable {
                table,
                missing: missing.join(", "),
            }));
        }
    }
    Ok(())
}

/// Creates or migrates the persistent schema: gptme-coordination's tables
/// when missing, their `completed_at` and `hmac` columns when an older
/// database lacks them, the gate table and the stored triggers.
///
/// Writes nothing, and takes no lock, when the schema is already current.
/// Otherwise it takes the write lock first (`BEGIN IMMEDIATE`, which waits
/// out the busy timeout; a SAVEPOINT inside a caller's transaction) and
/// migrates in that one transaction, re-creating only triggers whose text
/// differs. A `work` or `messages` table that is not gptme-coordination's
/// is an error naming its missing columns, and nothing is changed.
pub fn init<T: Target>(mut t: T) -> Result<InitReport, T::Error> {
    if schema_current(&mut t)? {
        return Ok(InitReport::default());
    }
    // The write lock before reading what to change: two processes
    // initialising at once, or a gptme agent writing meanwhile, then wait
    // for each other (busy timeout) instead of failing at the upgrade.
    let (begin, commit, rollback) = if t.autocommit() {
        ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
    } else {
        (
            "SAVEPOINT coord_init",
            "RELEASE coord_init",
            "ROLLBACK TO coord_init; RELEASE coord_init",
        )
    };
    t.run(begin)?;
    match migrate(&mut t) {
        Ok(rep) => {
            t.run(commit)?;
            Ok(rep)
        }
        Err(e) => {
            let _ = t.run(rollback);
            Err(e)
        }
    }
}

fn migrate<T: Target>(t: &mut T) -> Result<InitReport, T::Error> {
    check_gptme_tables(t)?;
    let had_log = !t
        .text_rows(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name = 'coord_events'",
            &[],
        )?
        .is_empty();
    t.run(SCHEMA_SQL)?;
    let mut added = Vec::new();
    let mut restored = Vec::new();
    for (table, column, label) in ADDED_COLUMNS {
        if !columns(t, table)?.iter().any(|c| c == column) {
            t.run(&format!(
                "ALTER TABLE main.{table} ADD COLUMN {column} TEXT"
            ))?;
            added.push(*label);
        }
    }
    for (name, text) in expected_triggers() {
        let stored = t
            .text_rows(
                "SELECT sql FROM main.sqlite_schema WHERE type = 'trigger' AND name = ?1",
                &[&name],
            )?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten());
        if stored.as_deref() != Some(text.as_str()) {
            t.run(&format!("DROP TRIGGER IF EXISTS main.{name};\n{text};"))?;
            if had_log {
                restored.push(name.clone());
            }
        }
    }
    Ok(InitReport {
        added_columns: added,
        restored_triggers: restored,
    })
}
