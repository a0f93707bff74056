//! coord's SQL surface on a rusqlite connection.
//!
//! [`register`] adds coord's functions and its per-connection (TEMP)
//! verifying views and write API to a connection; it writes nothing to the
//! database file. [`init`] creates or migrates the persistent schema
//! (gptme-coordination's `work` and `messages`, coord's `coord_gate` and
//! built-in-SQL triggers). The operations in [`ops`] run the write API
//! inside `BEGIN IMMEDIATE` and return typed outcomes.
//!
//! The SQL lives in `sql/*.sql` at the repository root.

mod caller;
mod functions;
mod guard;
pub mod ops;
mod state;

use rusqlite::Connection;

pub use caller::NotDirect;
pub use functions::SqlError;

/// gptme-coordination's tables and coord's gate table.
pub const SCHEMA_SQL: &str = include_str!("../../../sql/schema.sql");
/// Stored triggers, built-in SQL only.
pub const TRIGGERS_SQL: &str = include_str!("../../../sql/triggers.sql");
/// TEMP verifying views.
pub const VIEWS_SQL: &str = include_str!("../../../sql/views.sql");
/// TEMP write API.
pub const API_SQL: &str = include_str!("../../../sql/api.sql");

/// Registers coord's functions and creates its TEMP views and write API on
/// `conn`. Writes nothing to the database file. If `$COORDINATION_AGENT` is
/// set, the connection acts as that agent (see `coord_set_agent`).
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    // SAFETY: only the handle's address is kept, as a key identifying the
    // connection; it is never dereferenced.
    let handle = unsafe { conn.handle() } as usize;
    if let Some((state, signer)) = state::Shared::registered(handle) {
        // Registered before on this connection (a second `.load`): keep
        // its keys, agent and signer, and only put back what the first
        // registration created, in case it was dropped since.
        return register_with(conn, &state, &signer);
    }
    let state = state::Shared::default();
    if let Some(agent) = std::env::var("COORDINATION_AGENT")
        .ok()
        .filter(|a| coord_core::validate_agent_id(a).is_ok())
    {
        state.lock().set_agent(Some(agent));
    }
    let signer = functions::new_signer_name()?;
    let r = register_with(conn, &state, &signer);
    match r {
        Ok(()) => state.remember(handle, &signer),
        Err(_) => {
            // The extension's entry point fails with this error and SQLite
            // then unloads the library (e.g. on a database whose schema it
            // calls malformed): no function or authorizer of ours may stay
            // registered, or it would run from unloaded code (the
            // destructors when the connection closes: a segfault found by
            // tests/hardening/test_hostile.py).
            unregister(conn);
            let _ = conn.remove_function(signer.as_str(), -1);
            guard::remove(conn);
        }
    }
    r
}

fn register_with(conn: &Connection, state: &state::Shared, signer: &str) -> rusqlite::Result<()> {
    functions::register(conn, state, signer)?;
    guard::install(conn);
    let temp_signer = signer.to_owned();
    conn.create_scalar_function(
        "coord_init",
        0,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DIRECTONLY,
        move |ctx| {
            functions::require_direct(ctx, "coord_init")?;
            // SAFETY: the connection reference is used only for the
            // duration of this call, on the thread SQLite called us on, and
            // is not stored or sent anywhere.
            let conn = unsafe { ctx.get_connection()? };
            let report = init_schema(&conn)?;
            // Also (re)creates the TEMP objects, which a change of
            // PRAGMA temp_store, for one, silently drops.
            create_temp(&conn, &temp_signer)?;
            Ok(report.to_string())
        },
    )?;
    create_temp(conn, signer)
}

/// Every function [`register`] adds, with its number of arguments (-1: any),
/// besides the write API's signer, whose name is drawn per connection.
pub const FUNCTIONS: &[(&str, i32)] = &[
    ("coord_version", 0),
    ("coord_canonical", -1),
    ("coord_sign", -1),
    ("coord_try_sign", -1),
    ("coord_verify", -1),
    ("coord_verify_status", -1),
    ("coord_can_sign", 1),
    ("coord_key_status", 1),
    ("coord_key_add", 2),
    ("coord_key_add", 3),
    ("coord_key_remove", 1),
    ("coord_key_reload", 0),
    ("coord_agent", 0),
    ("coord_set_agent", 1),
    ("coord_fail", 1),
    ("coord_init", 0),
];

/// Removes every function in [`FUNCTIONS`], running their destructors now.
/// [`register`] calls it when it fails.
pub fn unregister(conn: &Connection) {
    for (name, n_arg) in FUNCTIONS {
        // A function that was never registered is not an error worth
        // reporting here: the caller is already failing.
        let _ = conn.remove_function(*name, *n_arg);
    }
}

/// Creates (again) coord's TEMP views, result table and write API, with
/// the write API signing through this connection's internal signer.
fn create_temp(conn: &Connection, signer: &str) -> rusqlite::Result<()> {
    conn.execute_batch(VIEWS_SQL)?;
    conn.execute_batch(&API_SQL.replace("coord_try_sign(", &format!("{signer}(")))
}

/// What [`init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// `hmac` columns that were missing and added.
    pub added_columns: Vec<&'static str>,
}

impl std::fmt::Display for InitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.added_columns.is_empty() {
            write!(f, "coord schema ready")
        } else {
            write!(
                f,
                "coord schema ready; added {}",
                self.added_columns.join(", ")
            )
        }
    }
}

/// Creates or migrates the persistent schema: gptme-coordination's tables
/// when missing, their `hmac` column when an older database lacks it, the
/// gate table and the stored triggers. Idempotent; one transaction.
pub fn init(conn: &Connection) -> rusqlite::Result<InitReport> {
    init_schema(conn)
}

fn init_schema(conn: &Connection) -> rusqlite::Result<InitReport> {
    // SAVEPOINT works both at top level and inside a caller's transaction.
    conn.execute_batch("SAVEPOINT coord_init")?;
    let r = (|| {
        conn.execute_batch(SCHEMA_SQL)?;
        let mut added = Vec::new();
        for (table, label) in [("work", "work.hmac"), ("messages", "messages.hmac")] {
            let has: bool = conn.query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'hmac'",
                [table],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE main.{table} ADD COLUMN hmac TEXT"))?;
                added.push(label);
            }
        }
        conn.execute_batch(TRIGGERS_SQL)?;
        Ok(InitReport {
            added_columns: added,
        })
    })();
    match r {
        Ok(rep) => {
            conn.execute_batch("RELEASE coord_init")?;
            Ok(rep)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO coord_init; RELEASE coord_init");
            Err(e)
        }
    }
}
