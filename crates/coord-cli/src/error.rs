//! Every way a `coord` command can fail, each with its exit code.

use std::path::PathBuf;

use thiserror::Error;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for an outcome that refused what was asked (denied,
/// lost_lease, not_holder, not_claimed, expired, unknown_task), a refused
/// keygen, or an audit that found forged or tampered rows.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code for a usage or runtime error (clap uses 2 for usage too).
pub const EXIT_ERROR: u8 = 2;

/// A failure, printed as one line on stderr.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("no coordination database at {path} ({how}); create it with `coord init`, or point --db or $COORDINATION_DB at an existing one")]
    NoDatabase { path: PathBuf, how: String },

    #[error("database {path} stayed locked by another writer past the busy timeout ({ms} ms); try again, or raise --busy-timeout")]
    Busy { path: PathBuf, ms: u64 },

    #[error("no agent given: pass --as AGENT or set $COORDINATION_AGENT")]
    NoAgent,

    #[error("invalid agent id {agent:?}: {reason}")]
    BadAgent { agent: String, reason: String },

    #[error("cannot sign as '{agent}': {reason}; create a key with `coord keygen {agent}` (or fix the key file as said), or pass --unsigned to write a row without a MAC")]
    CannotSign { agent: String, reason: String },

    #[error("a key for '{agent}' already exists at {path}; refusing to overwrite it (use `coord keygen --rotate {agent}` to replace it and keep the old key as a retired key)")]
    KeyExists { agent: String, path: PathBuf },

    #[error("the existing key file was refused ({reason}); fix or remove it before rotating")]
    OldKeyRefused { reason: String },

    #[error("no secrets directory could be determined (no $COORDINATION_SECRETS_DIR and no working directory)")]
    NoSecretsDir,

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("could not read random bytes from the OS: {0}")]
    Random(String),

    #[error("{table} in {path} is a {kind}, not a table; a cautious reader does not trust it")]
    NotATable {
        table: &'static str,
        kind: String,
        path: PathBuf,
    },

    #[error("table {table} in {path} has no hmac column (written before signing); run `coord init` to add it")]
    NoMacColumn { table: &'static str, path: PathBuf },

    #[error("database {path}: {source}")]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("database {url}: {source}")]
    Remote {
        url: String,
        source: crate::remote::RemoteError,
    },

    #[error("this machine's clock is {skew_s:+.1} s off the primary's; coord decides leases only with a clock within 2 s of it (sync the clock, e.g. with NTP)")]
    ClockSkew { skew_s: f64 },

    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::KeyExists { .. } => EXIT_REFUSED,
            _ => EXIT_ERROR,
        }
    }

    /// Wraps a SQLite error on `path`, turning "busy" into [`CliError::Busy`].
    pub fn sql(path: &std::path::Path, busy_ms: u64, source: rusqlite::Error) -> Self {
        if is_busy(&source) {
            return CliError::Busy {
                path: path.to_owned(),
                ms: busy_ms,
            };
        }
        CliError::Sql {
            path: path.to_owned(),
            source,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CliError::Io {
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
