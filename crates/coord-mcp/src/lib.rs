//! coord as a Model Context Protocol server: `coord --as AGENT mcp`.
//!
//! The agent is fixed when the server starts ([`Config::agent`]) and the
//! server refuses to start unless this process can sign as it. No tool has
//! a claimer or sender argument, and every tool refuses arguments it does
//! not name, so a model that talks to this server cannot act as anyone
//! else through it. Every row a tool or resource returns carries its
//! verification; message bodies and other text from the database come back
//! as delimited data.
//!
//! Each call opens the database afresh and runs coord-db's operations and
//! reads ([`coord_db::Db::run`], [`coord_db::read`]), the same code the
//! `coord` command runs, on a blocking thread: a database that disappears
//! mid-session is a tool error, never a crash.
#![forbid(unsafe_code)]

mod server;
mod text;
mod tools;

use std::net::SocketAddr;

use thiserror::Error;

pub use server::CoordServer;

/// What the server acts as and on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database (a file or a libSQL server URL).
    pub at: coord_db::DbPath,
    /// The busy timeout, in milliseconds.
    pub busy_ms: u64,
    /// The agent every write is signed as: fixed for the server's life.
    pub agent: String,
}

/// How the server is reached.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// JSON-RPC over standard input and output (what MCP clients launch).
    Stdio,
    /// Streamable HTTP on a loopback address, at `/mcp`.
    Http(SocketAddr),
}

/// Why the server did not start or stopped with an error.
#[derive(Debug, Error)]
pub enum McpError {
    /// The agent id is not valid.
    #[error("invalid agent id {agent:?}: {reason}")]
    BadAgent {
        /// The id given.
        agent: String,
        /// Why it is refused.
        reason: String,
    },
    /// No usable key for the agent: the server only ever signs.
    #[error("cannot sign as '{agent}': {reason}; the MCP server writes only signed rows, so it does not start without a key (create one with `coord keygen {agent}`)")]
    CannotSign {
        /// The agent.
        agent: String,
        /// Why (where coord looked, or why the key file was refused).
        reason: String,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] coord_db::Error),
    /// `--http` on an address other than loopback.
    #[error("--http {0}: the MCP server listens only on a loopback address (127.0.0.1 or ::1); anyone who reaches it acts as the agent")]
    NotLoopback(SocketAddr),
    /// The runtime, the listener or the transport failed.
    #[error("{0}")]
    Io(String),
}

/// Checks that the server can start: a valid agent with a key that signs,
/// and a database that opens. Returns the key's fingerprint.
pub fn check(config: &Config) -> Result<String, McpError> {
    coord_core::validate_agent_id(&config.agent).map_err(|e| McpError::BadAgent {
        agent: config.agent.clone(),
        reason: e.to_string(),
    })?;
    let db = coord_db::Db::open(&config.at, config.busy_ms, Some(&config.agent))?;
    let status = db.coord.key_status(&config.agent);
    if let Some(reason) = status.reason() {
        return Err(McpError::CannotSign {
            agent: config.agent.clone(),
            reason,
        });
    }
    Ok(status.to_json()["fingerprint"]
        .as_str()
        .unwrap_or("?")
        .to_owned())
}

/// Runs the server until the client goes away (stdio) or the process is
/// interrupted (HTTP). [`check`]s first.
pub fn serve(config: Config, transport: Transport) -> Result<(), McpError> {
    check(&config)?;
    if let Transport::Http(addr) = transport {
        if !addr.ip().is_loopback() {
            return Err(McpError::NotLoopback(addr));
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| McpError::Io(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        match transport {
            Transport::Stdio => server::serve_stdio(config).await,
            Transport::Http(addr) => server::serve_http(config, addr).await,
        }
    })
}
