//! The one interface every backend implements, and the file backend.

use std::path::PathBuf;

use coord_sql::ops::{Op, OpError, OpResult};
use coord_sql::InitReport;
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::{Error, Scope};

/// Where a coordination database's rows live, and how coord reads and
/// writes them there.
///
/// coord itself (its functions, verifying views and write API) always runs
/// on one local SQLite connection with coord registered, `conn`: for a file
/// it is the database; for a server it is an in-memory working copy, so
/// that deciding, signing and verifying happen on this machine, with its
/// keys. Every backend writes with the same compare-and-swap,
/// `sql/writes.sql` (see [`coord_sql::writes`]).
pub trait Backend {
    /// Creates or migrates coord's schema where the rows live, by
    /// coord-sql's one migration.
    fn migrate(&self, conn: &Connection) -> Result<InitReport, Error>;
    /// Whether coord's schema there is current (read without the write
    /// lock, so concurrent writers on a ready database never contend here).
    fn schema_current(&self, conn: &Connection) -> Result<bool, Error>;
    /// Makes the rows `scope` names readable on `conn` for coord's views to
    /// verify, and the events a witness that has seen the first `seen` of
    /// them needs to check the rest. A file's rows already are.
    fn load(&self, conn: &Connection, scope: Scope<'_>, seen: Option<i64>) -> Result<(), Error>;
    /// Runs one write operation as one transaction, with a typed outcome. A
    /// write that does not land exactly as decided is an error, never an
    /// outcome; so is a busy database.
    fn run(&self, conn: &Connection, op: &Op<'_>) -> Result<OpResult, Error>;
    /// Stores a checkpoint already signed on `conn`: its columns
    /// [`CHECKPOINT_COLS`] in order. Returns its id.
    fn add_checkpoint(&self, conn: &Connection, row: &[Value]) -> Result<i64, Error>;
}

/// The columns of a stored checkpoint, but its id.
pub const CHECKPOINT_COLS: &str = "agent, origin, size, head, at, hmac";

/// A SQLite file: `conn` is the database, and the write API's triggers
/// run sql/writes.sql on it inside `BEGIN IMMEDIATE`.
pub struct File {
    pub(crate) path: PathBuf,
    pub(crate) busy_ms: u64,
}

impl File {
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::sql(&self.path, self.busy_ms, e)
    }
}

impl Backend for File {
    fn migrate(&self, conn: &Connection) -> Result<InitReport, Error> {
        let report = coord_sql::init(conn).map_err(|e| self.err(e))?;
        // The views were made before the log's tables existed, maybe.
        coord_sql::refresh(conn).map_err(|e| self.err(e))?;
        Ok(report)
    }

    fn schema_current(&self, conn: &Connection) -> Result<bool, Error> {
        coord_sql::schema_current(&mut &*conn).map_err(|e| self.err(e))
    }

    fn load(&self, _conn: &Connection, _scope: Scope<'_>, _seen: Option<i64>) -> Result<(), Error> {
        Ok(())
    }

    fn run(&self, conn: &Connection, op: &Op<'_>) -> Result<OpResult, Error> {
        coord_sql::ops::run_op(conn, op).map_err(|e| op_error(&self.path, self.busy_ms, e))
    }

    fn add_checkpoint(&self, conn: &Connection, row: &[Value]) -> Result<i64, Error> {
        conn.execute(
            &format!(
                "INSERT INTO main.coord_checkpoints({CHECKPOINT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            rusqlite::params_from_iter(row),
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }
}

/// An operation's failure (not its outcome) on the database at `path`.
pub(crate) fn op_error(path: &std::path::Path, busy_ms: u64, e: OpError) -> Error {
    match e {
        OpError::Busy => Error::Busy {
            path: path.to_owned(),
            ms: busy_ms,
        },
        OpError::Sql(e) => Error::sql(path, busy_ms, e),
        OpError::NotSetUp(m) => Error::NotSetUp {
            path: path.to_owned(),
            message: m,
        },
    }
}
