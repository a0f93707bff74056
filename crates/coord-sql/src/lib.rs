//! coord's SQL surface on a rusqlite connection.
//!
//! [`register`] adds coord's functions and its per-connection (TEMP)
//! verifying views and write API to a connection; it writes nothing to the
//! database file. [`init`] creates or migrates the persistent schema
//! (gptme-coordination's `work` and `messages`, coord's `coord_gate` and
//! built-in-SQL triggers). The operations in [`ops`] run the write API
//! inside `BEGIN IMMEDIATE` and return typed outcomes.
//!
//! The SQL lives in `sql/*.sql` beside this crate's `src/`.

mod caller;
mod functions;
mod guard;
pub mod ops;
pub mod schema;
mod state;
pub mod writes;

use rusqlite::Connection;

pub use caller::NotDirect;
pub use functions::{Access, Function, SqlError, FUNCTIONS};
pub use schema::{init, schema_current, triggers_sql, InitReport, Target, SCHEMA_SQL};

/// TEMP verifying views.
pub const VIEWS_SQL: &str = include_str!("../sql/views.sql");
/// TEMP write API.
pub const API_SQL: &str = include_str!("../sql/api.sql");

/// Who a connection acts as when [`register_with`] sets it up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Agent {
    /// `$COORDINATION_AGENT` when it holds a valid id, else none (what the
    /// loadable extension does).
    #[default]
    FromEnvironment,
    /// Exactly this agent, or none; the environment is not read.
    Set(Option<String>),
}

/// How [`register_with`] sets up a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The agent the connection acts as (`coord_agent()`).
    pub agent: Agent,
}

/// A connection's coord state, for Rust callers: the typed form of
/// `coord_can_sign`, `coord_key_status` and `coord_set_agent`. It shares the
/// state the connection's SQL functions use, so a change made here is seen
/// by the SQL and the other way round.
#[derive(Clone)]
pub struct Handle {
    state: state::Shared,
}

impl Handle {
    /// Whether this connection can sign as `agent`.
    pub fn can_sign(&self, agent: &str) -> bool {
        coord_core::validate_agent_id(agent).is_ok()
            && self
                .state
                .lock()
                .with_keys(agent, |k| k.is_some_and(|k| k.current.is_some()))
    }

    /// Where `agent`'s key is, or why it cannot be used; never the key.
    pub fn key_status(&self, agent: &str) -> KeyStatus {
        self.state.lock().report(agent)
    }

    /// Sets the agent this connection acts as (`None` clears it).
    pub fn set_agent(&self, agent: Option<&str>) -> Result<(), coord_core::AgentIdError> {
        if let Some(a) = agent {
            coord_core::validate_agent_id(a)?;
        }
        self.state.lock().set_agent(agent.map(str::to_owned));
        Ok(())
    }

    /// The agent this connection acts as.
    pub fn agent(&self) -> Option<String> {
        self.state.lock().agent().map(str::to_owned)
    }
}

/// What is known of an agent's key: the typed `coord_key_status`.
#[derive(Debug, Clone)]
pub enum KeyStatus {
    /// Keys added on this connection with `coord_key_add`.
    Connection {
        /// The agent.
        agent: String,
        /// The current key's fingerprint, if there is a current key.
        fingerprint: Option<String>,
        /// The retired keys' fingerprints.
        retired: Vec<String>,
    },
    /// What the environment and key files gave.
    Found(coord_keys::KeyReport),
}

impl KeyStatus {
    /// Whether the agent's current key can sign.
    pub fn can_sign(&self) -> bool {
        match self {
            KeyStatus::Connection { fingerprint, .. } => fingerprint.is_some(),
            KeyStatus::Found(r) => r.can_sign(),
        }
    }

    /// Why the agent cannot sign, for an error message; `None` if it can.
    pub fn reason(&self) -> Option<String> {
        match self {
            _ if self.can_sign() => None,
            KeyStatus::Connection { .. } => {
                Some("this connection holds only retired keys for it".to_owned())
            }
            KeyStatus::Found(r) => Some(r.reason()),
        }
    }

    /// The JSON that `coord_key_status` returns.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            KeyStatus::Connection {
                agent,
                fingerprint,
                retired,
            } => serde_json::json!({
                "agent": agent,
                "can_sign": fingerprint.is_some(),
                "source": {"kind": "connection"},
                "fingerprint": fingerprint,
                "retired": retired
                    .iter()
                    .map(|f| serde_json::json!({"usable": true, "fingerprint": f}))
                    .collect::<Vec<_>>(),
            }),
            KeyStatus::Found(r) => r.to_json(),
        }
    }
}

/// Registers coord's functions and creates its TEMP views and write API on
/// `conn`, acting as `$COORDINATION_AGENT` when that is a valid id. Writes
/// nothing to the database file. The same as [`register_with`] with default
/// [`Options`].
pub fn register(conn: &Connection) -> rusqlite::Result<Handle> {
    register_with(conn, Options::default())
}

/// Registers coord on `conn` as [`register`] does, set up by `options`.
/// Registering again on the same connection (a second `.load`) keeps its
/// keys, agent and signer; `options` then only changes the agent when it
/// names one.
pub fn register_with(conn: &Connection, options: Options) -> rusqlite::Result<Handle> {
    // SAFETY: only the handle's address is kept, as a key identifying the
    // connection; it is never dereferenced.
    let handle = unsafe { conn.handle() } as usize;
    if let Some((state, signer)) = state::Shared::registered(handle) {
        // Registered before on this connection (a second `.load`): keep
        // its keys, agent and signer, and only put back what the first
        // registration created, in case it was dropped since.
        if let Agent::Set(a) = options.agent {
            state.lock().set_agent(a);
        }
        create(conn, &state, &signer)?;
        return Ok(Handle { state });
    }
    let state = state::Shared::default();
    let agent = match options.agent {
        Agent::FromEnvironment => std::env::var("COORDINATION_AGENT")
            .ok()
            .filter(|a| coord_core::validate_agent_id(a).is_ok()),
        Agent::Set(a) => a.filter(|a| coord_core::validate_agent_id(a).is_ok()),
    };
    state.lock().set_agent(agent);
    let signer = functions::new_signer_name()?;
    match create(conn, &state, &signer) {
        Ok(()) => {
            state.remember(handle, &signer);
            Ok(Handle { state })
        }
        Err(e) => {
            // The extension's entry point fails with this error and SQLite
            // then unloads the library (e.g. on a database whose schema it
            // calls malformed): no function or authorizer of ours may stay
            // registered, or it would run from unloaded code (the
            // destructors when the connection closes: a segfault found by
            // tests/hardening/test_hostile.py).
            functions::unregister(conn, &signer);
            guard::remove(conn);
            Err(e)
        }
    }
}

fn create(conn: &Connection, state: &state::Shared, signer: &str) -> rusqlite::Result<()> {
    let env = functions::Env {
        state: state.clone(),
        signer: signer.to_owned(),
    };
    functions::register(conn, &env)?;
    guard::install(conn);
    create_temp(conn, signer)
}

/// Removes everything [`register`] added to `conn`: every function of
/// [`FUNCTIONS`] and the write API's signers (running their destructors
/// now), and coord's authorizer. The TEMP objects stay, and fail with "no
/// such function" until coord is registered again.
pub fn unregister(conn: &Connection) {
    // SAFETY: as in `register_with`, only the handle's address is used.
    let handle = unsafe { conn.handle() } as usize;
    let signer = state::Shared::registered(handle).map(|(_, signer)| signer);
    functions::unregister(conn, signer.as_deref().unwrap_or_default());
    guard::remove(conn);
}

/// sql/views.sql with its holes filled: the columns an event records, from
/// coord-core, and the log's tables, or an empty row set where `conn`'s
/// database has none yet.
/// What a `work` or `messages` row that is exactly its last event `e`
/// reads in the views' `history` column: one rule for both.
const EVENT_HISTORY: &str =
    "CASE coord_event_status(e.agent, e.hmac, e.seq, e.prev, e.op, e.subject, e.at, e.state)
       WHEN 'verified' THEN 'matches' WHEN 'retired_key' THEN 'matches'
       WHEN 'unsigned' THEN 'unsigned_event' ELSE 'unverified_event' END";

fn views_sql(conn: &Connection) -> rusqlite::Result<String> {
    let has = |table: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let empty = |columns: &[&str]| {
        let cols: Vec<String> = columns.iter().map(|c| format!("NULL AS {c}")).collect();
        format!("(SELECT {} WHERE 0)", cols.join(", "))
    };
    let events = if has("coord_events")? {
        "main.coord_events".to_owned()
    } else {
        empty(&[
            "seq", "prev", "op", "subject", "at", "agent", "state", "hmac",
        ])
    };
    let checkpoints = if has("coord_checkpoints")? {
        "main.coord_checkpoints".to_owned()
    } else {
        empty(&["id", "agent", "origin", "size", "head", "at", "hmac"])
    };
    Ok(writes::fill_state(VIEWS_SQL)
        .replace("{event_history}", EVENT_HISTORY)
        .replace("{events}", &events)
        .replace("{checkpoints}", &checkpoints))
}

/// Re-creates coord's TEMP objects on `conn` (registered before), for a
/// caller that has just created the log's tables: the views then read
/// them.
pub fn refresh(conn: &Connection) -> rusqlite::Result<()> {
    // SAFETY: as in `register_with`, only the handle's address is used.
    let handle = unsafe { conn.handle() } as usize;
    match state::Shared::registered(handle) {
        Some((_, signer)) => create_temp(conn, &signer),
        None => Ok(()),
    }
}

/// Creates (again) coord's TEMP views, result table and write API, with
/// the write API signing through this connection's internal signer.
pub(crate) fn create_temp(conn: &Connection, signer: &str) -> rusqlite::Result<()> {
    let views = views_sql(conn)?;
    let mut api = writes::expand_api(API_SQL);
    for (placeholder, (name, _)) in functions::SIGNER_PLACEHOLDERS
        .iter()
        .zip(functions::internal_signers(signer))
    {
        api = api.replace(placeholder, &format!("{name}("));
    }
    // `PRAGMA query_only` (Datasette's connections, careful auditors) would
    // refuse the TEMP objects, though they live in this connection's own
    // TEMP schema, never in a database file: lift it for these statements
    // only, and put it back whatever happens. The write API then still
    // refuses every write the pragma forbids.
    let query_only: bool = conn.query_row("PRAGMA query_only", [], |r| r.get(0))?;
    if query_only {
        conn.execute_batch("PRAGMA query_only = 0")?;
    }
    let made = conn
        .execute_batch(&views)
        .and_then(|()| conn.execute_batch(&api));
    if query_only {
        conn.execute_batch("PRAGMA query_only = 1")?;
    }
    made
}
