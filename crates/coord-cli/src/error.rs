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

    #[error(transparent)]
    Db(#[from] coord_db::Error),

    #[error(transparent)]
    Mcp(#[from] coord_mcp::McpError),

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

    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        CliError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
