//! Every way opening, reading or writing a coordination database can fail.

use std::path::PathBuf;

use thiserror::Error;

use crate::hrana::RemoteError;

/// A failure of a database operation (not an outcome such as `denied`,
/// which is a successful [`crate::OpResult`]).
#[derive(Debug, Error)]
pub enum Error {
    /// No file at the resolved path; nothing is created by opening.
    #[error("no coordination database at {path} ({how}); create it with `coord init`, or point --db or $COORDINATION_DB at an existing one")]
    NoDatabase {
        /// Where it was looked for.
        path: PathBuf,
        /// How that path was found.
        how: String,
    },

    /// Another writer held the database past the busy timeout.
    #[error("database {path} stayed locked by another writer past the busy timeout ({ms} ms); try again, or raise --busy-timeout")]
    Busy {
        /// The database.
        path: PathBuf,
        /// The busy timeout.
        ms: u64,
    },

    /// `work` or `messages` is a view (or another object), not a table.
    #[error("{table} in {path} is a {kind}, not a table; a cautious reader does not trust it")]
    NotATable {
        /// `work` or `messages`.
        table: &'static str,
        /// What it is instead.
        kind: String,
        /// The database.
        path: PathBuf,
    },

    /// A table from before signing.
    #[error("table {table} in {path} has no hmac column (written before signing); run `coord init` to add it")]
    NoMacColumn {
        /// `work` or `messages`.
        table: &'static str,
        /// The database.
        path: PathBuf,
    },

    /// This client's witness of the log could not be kept.
    #[error("cannot keep this client's witness of the log at {path}: {source}")]
    Witness {
        /// The witness file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },

    /// A SQLite error on this process's connection.
    #[error("database {path}: {source}")]
    Sql {
        /// The database.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// A libSQL server failed or refused a request.
    #[error("database {url}: {source}")]
    Remote {
        /// The server.
        url: String,
        /// What went wrong.
        source: RemoteError,
    },

    /// A write did not land where the rows live as it was decided; nothing
    /// was committed.
    #[error("database {url}: {problem}; nothing was committed")]
    NotApplied {
        /// The server.
        url: String,
        /// The write's check, as sql/writes.sql words it.
        problem: String,
    },

    /// This machine's clock disagrees with the primary's.
    #[error("this machine's clock is {skew_s:+.1} s off the primary's; coord decides leases only with a clock within 2 s of it (sync the clock, e.g. with NTP)")]
    ClockSkew {
        /// This clock minus the primary's, in seconds.
        skew_s: f64,
    },

    /// coord's write API is missing on the connection or database.
    #[error("database {path}: {message}")]
    NotSetUp {
        /// The database.
        path: PathBuf,
        /// What is missing.
        message: String,
    },

    /// A file-system error (creating the database's directory).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a SQLite error on `path`, turning "busy" into [`Error::Busy`].
    pub fn sql(path: &std::path::Path, busy_ms: u64, source: rusqlite::Error) -> Self {
        if is_busy(&source) {
            return Error::Busy {
                path: path.to_owned(),
                ms: busy_ms,
            };
        }
        Error::Sql {
            path: path.to_owned(),
            source,
        }
    }
}

/// Whether SQLite gave up waiting for a lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
