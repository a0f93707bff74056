//! coord's SQL functions. Each is documented in docs/sql.md with
//! its arguments, NULL handling, errors and flags.
//!
//! Flags, on purpose:
//! - `coord_version`, `coord_canonical`: DETERMINISTIC and INNOCUOUS; they
//!   read no secret.
//! - everything that reads keys is never INNOCUOUS, so with
//!   `PRAGMA trusted_schema=OFF` no stored view or trigger may call it;
//! - everything that signs, changes keys or writes is DIRECTONLY, so no view
//!   or trigger stored in a database file can call it at all, whatever the
//!   pragma: only top-level SQL and coord's own TEMP objects can;
//! - nothing that reads keys is DETERMINISTIC: keys rotate.

use coord_core::{
    canonical, validate_agent_id, Claim, EncodeError, Field, Message, SecretKey, Status,
};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use thiserror::Error;

use crate::state::Shared;

/// Errors returned to SQL. Messages name the agent and the reason, never a
/// key.
#[derive(Debug, Error)]
pub enum SqlError {
    /// An argument of the wrong type or value.
    #[error("{func}: {what}")]
    Argument {
        /// The function called.
        func: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A field that has no canonical form.
    #[error("{func}: {source}")]
    Encode {
        /// The function called.
        func: &'static str,
        /// What is wrong with the field.
        source: EncodeError,
    },
    /// No usable key to sign with.
    #[error("{func}: cannot sign as '{agent}': {reason}")]
    NoKey {
        /// The function called.
        func: &'static str,
        /// The agent.
        agent: String,
        /// Why (where the key was looked for, or why it was refused).
        reason: String,
    },
    /// coord_fail's message, raised from coord's own SQL.
    #[error("{0}")]
    Raised(String),
    /// A `work` or `messages` table that is not gptme-coordination's.
    #[error(
        "coord_init: main.{table} is not gptme-coordination's {table} table: it lacks {missing}; \
         nothing was changed. coord shares gptme's tables: use another database file for coord \
         (or rename this table)"
    )]
    ForeignTable {
        /// The table.
        table: &'static str,
        /// Its missing columns, comma-separated.
        missing: String,
    },
    /// A privileged function was reached from a statement other than a
    /// plain top-level SELECT that names no table (see `caller.rs`).
    #[error(
        "{func}: refused: {why}; coord's key, agent and signing functions run only from a \
         top-level SELECT that names no table, such as SELECT {func}(...), so that no object \
         stored in a database (a CHECK, DEFAULT, generated column, index, view or trigger) \
         can call them"
    )]
    NotDirect {
        /// The function called.
        func: &'static str,
        /// What about the calling statement broke the rule.
        why: crate::caller::NotDirect,
    },
}

fn user(e: SqlError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

fn arg_err(func: &'static str, what: impl Into<String>) -> rusqlite::Error {
    user(SqlError::Argument {
        func,
        what: what.into(),
    })
}

/// Refuses to run `func` unless the direct-call rule holds (see
/// `caller.rs`). Called by every function that signs, changes keys or
/// changes the acting agent, before it reads its arguments' values.
pub(crate) fn require_direct(ctx: &Context<'_>, func: &'static str) -> rusqlite::Result<()> {
    crate::caller::check(ctx)?.map_err(|why| user(SqlError::NotDirect { func, why }))
}

/// Reads arguments `from..` as fields; an argument with no canonical form
/// is an error carrying its position among the fields.
fn fields<'a>(ctx: &'a Context<'_>, from: usize) -> Result<Vec<Field<'a>>, EncodeError> {
    (from..ctx.len())
        .map(|i| {
            let index = i - from;
            Ok(match ctx.get_raw(i) {
                ValueRef::Null => Field::Null,
                ValueRef::Integer(n) => Field::Integer(n),
                ValueRef::Real(f) => Field::Real(f),
                ValueRef::Text(t) => Field::Text(coord_core::text_field(index, t)?),
                ValueRef::Blob(_) => return Err(EncodeError::Blob { index }),
            })
        })
        .collect()
}

/// How a function's field arguments become the signed fields: as given
/// (`coord_sign`, `coord_verify`), or as a row of coord-core's row model,
/// which alone knows which columns a claim or a message signs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The fields exactly as given; the agent only picks the key.
    Fields,
    /// `claimer, task_id, epoch, expires_at`: a [`Claim`].
    Claim,
    /// `sender, recipient, channel, body`: a [`Message`].
    Message,
}

impl Shape {
    /// The signed fields for `agent` and the field arguments `f`. A row
    /// shape takes exactly three arguments after the agent (the functions
    /// are registered with that many); its row is built on the stack.
    fn signed<'a>(self, agent: &'a str, f: Vec<Field<'a>>) -> Signed<'a> {
        match (self, f.as_slice()) {
            (Shape::Claim, &[t, e, x]) => Signed::Row(Claim::new(agent, t, e, x).into_fields()),
            (Shape::Message, &[r, c, b]) => Signed::Row(Message::new(agent, r, c, b).into_fields()),
            _ => Signed::Fields(f),
        }
    }
}

/// The fields a function signs or verifies.
enum Signed<'a> {
    /// A claim's or a message's, from coord-core's row model.
    Row([Field<'a>; 4]),
    /// As given.
    Fields(Vec<Field<'a>>),
}

impl<'a> std::ops::Deref for Signed<'a> {
    type Target = [Field<'a>];

    fn deref(&self) -> &[Field<'a>] {
        match self {
            Signed::Row(r) => r,
            Signed::Fields(f) => f,
        }
    }
}

/// An agent id argument: TEXT, valid UTF-8. `None` for NULL.
fn agent_arg<'a>(
    ctx: &'a Context<'_>,
    i: usize,
    func: &'static str,
) -> rusqlite::Result<Option<&'a str>> {
    match ctx.get_raw(i) {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(Some)
            .map_err(|_| arg_err(func, "agent_id is not valid UTF-8")),
        other => Err(arg_err(
            func,
            format!("agent_id must be TEXT, got {}", other.data_type()),
        )),
    }
}

fn required_agent<'a>(ctx: &'a Context<'_>, func: &'static str) -> rusqlite::Result<&'a str> {
    agent_arg(ctx, 0, func)?.ok_or_else(|| arg_err(func, "agent_id is NULL"))
}

/// The status of a row: the shared rule of coord_verify,
/// coord_verify_status, coord_claim_status and coord_message_status
/// (arguments: agent, MAC, fields). Never an error: bad data reads as not
/// verified.
fn verify_status(state: &Shared, ctx: &Context<'_>, shape: Shape) -> Status {
    let mac = match ctx.get_raw(1) {
        ValueRef::Null => None,
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Some(s),
            Err(_) => return Status::BadMac,
        },
        // A MAC stored as anything but TEXT was not written by a signer.
        _ => return Status::BadMac,
    };
    if mac.is_none_or(str::is_empty) {
        return Status::Unsigned;
    }
    let agent = match ctx.get_raw(0) {
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(a) if validate_agent_id(a).is_ok() => a,
            _ => return Status::UnknownAgent,
        },
        _ => return Status::UnknownAgent,
    };
    let Ok(fields) = fields(ctx, 2) else {
        // No signer can have produced a MAC over fields with no canonical form.
        return state.lock().with_keys(agent, |k| {
            if k.is_some() {
                Status::BadMac
            } else {
                Status::UnknownAgent
            }
        });
    };
    let signed = shape.signed(agent, fields);
    state.lock().verify(agent, mac, &signed)
}

/// A MAC handed to SQLite straight from the stack (SQLite copies it).
struct SqlMac(coord_core::Base64);

impl rusqlite::ToSql for SqlMac {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(
            self.0.as_bytes(),
        )))
    }
}

/// How a signing function was reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// `coord_sign`: no key is an error.
    Strict,
    /// `coord_try_sign`: no key gives NULL.
    Try,
    /// coord's own TEMP triggers, through a function whose name is random
    /// per connection: no key gives NULL, and no planted-call scan is
    /// needed, since no stored object can know the name.
    Internal,
}

fn sign(
    state: &Shared,
    ctx: &Context<'_>,
    func: &'static str,
    how: Signer,
    shape: Shape,
) -> rusqlite::Result<Option<SqlMac>> {
    let agent = required_agent(ctx, func)?;
    if let Err(e) = validate_agent_id(agent) {
        return Err(arg_err(func, format!("invalid agent id: {e}")));
    }
    if how != Signer::Internal {
        require_direct(ctx, func)?;
    }
    let fields = fields(ctx, 1).map_err(|source| user(SqlError::Encode { func, source }))?;
    let fields = shape.signed(agent, fields);
    let mut st = state.lock();
    if let Some(mac) = st.with_keys(agent, |k| {
        k.and_then(|k| k.current.as_ref())
            .map(|key| SqlMac(key.sign(&fields).base64()))
    }) {
        return Ok(Some(mac));
    }
    if how != Signer::Strict {
        return Ok(None);
    }
    let reason = st
        .why_not(agent)
        .unwrap_or_else(|| "no current key".to_owned());
    Err(user(SqlError::NoKey {
        func,
        agent: agent.to_owned(),
        reason,
    }))
}

/// The write API's signers for a connection whose signer name is `internal`,
/// with the placeholder each replaces in sql/api.sql.
pub(crate) fn internal_signers(internal: &str) -> [(String, Shape); 2] {
    [
        (format!("{internal}_claim"), Shape::Claim),
        (format!("{internal}_message"), Shape::Message),
    ]
}

/// The names sql/api.sql calls its signers by; each is replaced by this
/// connection's random name before the SQL runs.
pub(crate) const SIGNER_PLACEHOLDERS: [&str; 2] = ["coord_signer_claim(", "coord_signer_message("];

/// A fresh name for the write API's signer (see [`register`]): 128 random
/// bits drawn for this connection.
pub(crate) fn new_signer_name() -> rusqlite::Result<String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)
        .map_err(|e| arg_err("coord", format!("no randomness from the OS: {e}")))?;
    Ok("coord_try_sign_"
        .chars()
        .chain(nonce.iter().flat_map(|b| {
            let hex = |n: u8| char::from(b"0123456789abcdef"[usize::from(n)]);
            [hex(b >> 4), hex(b & 0xf)]
        }))
        .collect())
}

/// Registers every coord function on `conn`, sharing `state`, with the
/// write API's signer under the name `internal` (see below).
pub(crate) fn register(conn: &Connection, state: &Shared, internal: &str) -> rusqlite::Result<()> {
    let utf8 = FunctionFlags::SQLITE_UTF8;
    let pure = utf8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    let reads_keys = utf8;
    let direct = utf8 | FunctionFlags::SQLITE_DIRECTONLY;

    conn.create_scalar_function("coord_version", 0, pure, |_| Ok(env!("CARGO_PKG_VERSION")))?;

    conn.create_scalar_function("coord_canonical", -1, pure, |ctx| {
        let f = fields(ctx, 0).map_err(|source| {
            user(SqlError::Encode {
                func: "coord_canonical",
                source,
            })
        })?;
        // The encoder only writes ASCII.
        String::from_utf8(canonical(&f)).map_err(|_| arg_err("coord_canonical", "not ASCII"))
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_sign", -1, direct, move |ctx| {
        if ctx.is_empty() {
            return Err(arg_err("coord_sign", "needs an agent_id"));
        }
        sign(&s, ctx, "coord_sign", Signer::Strict, Shape::Fields)
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_try_sign", -1, direct, move |ctx| {
        if ctx.is_empty() {
            return Err(arg_err("coord_try_sign", "needs an agent_id"));
        }
        sign(&s, ctx, "coord_try_sign", Signer::Try, Shape::Fields)
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_sign_claim", 4, direct, move |ctx| {
        sign(&s, ctx, "coord_sign_claim", Signer::Strict, Shape::Claim)
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_sign_message", 4, direct, move |ctx| {
        sign(
            &s,
            ctx,
            "coord_sign_message",
            Signer::Strict,
            Shape::Message,
        )
    })?;

    // The signers of coord's own write API (sql/api.sql), one per kind of
    // row. Not checked by the direct-call rule: their names hold 128
    // random bits drawn for this connection and appear only in this
    // connection's TEMP schema, which nothing stored in a database file can
    // read, so no planted object can call them.
    for (name, shape) in internal_signers(internal) {
        let s = state.clone();
        conn.create_scalar_function(name.as_str(), 4, direct, move |ctx| {
            sign(&s, ctx, "coord_try_sign", Signer::Internal, shape)
        })?;
    }

    let s = state.clone();
    conn.create_scalar_function("coord_verify", -1, reads_keys, move |ctx| {
        if ctx.len() < 2 {
            return Err(arg_err("coord_verify", "needs agent_id and mac"));
        }
        Ok(verify_status(&s, ctx, Shape::Fields).is_authentic())
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_verify_status", -1, reads_keys, move |ctx| {
        if ctx.len() < 2 {
            return Err(arg_err("coord_verify_status", "needs agent_id and mac"));
        }
        Ok(verify_status(&s, ctx, Shape::Fields).as_str())
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_claim_status", 5, reads_keys, move |ctx| {
        Ok(verify_status(&s, ctx, Shape::Claim).as_str())
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_message_status", 5, reads_keys, move |ctx| {
        Ok(verify_status(&s, ctx, Shape::Message).as_str())
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_can_sign", 1, direct, move |ctx| {
        let Some(agent) = agent_arg(ctx, 0, "coord_can_sign")? else {
            return Ok(false);
        };
        if validate_agent_id(agent).is_err() {
            return Ok(false);
        }
        Ok(s.lock()
            .with_keys(agent, |k| k.is_some_and(|k| k.current.is_some())))
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_key_status", 1, direct, move |ctx| {
        let agent = required_agent(ctx, "coord_key_status")?;
        Ok(s.lock().report(agent).to_json().to_string())
    })?;

    for n_arg in [2, 3] {
        let s = state.clone();
        conn.create_scalar_function("coord_key_add", n_arg, direct, move |ctx| key_add(&s, ctx))?;
    }

    let s = state.clone();
    conn.create_scalar_function("coord_key_remove", 1, direct, move |ctx| {
        let agent = required_agent(ctx, "coord_key_remove")?;
        require_direct(ctx, "coord_key_remove")?;
        Ok(s.lock().memory().remove(agent))
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_key_reload", 0, direct, move |ctx| {
        require_direct(ctx, "coord_key_reload")?;
        s.lock().reload();
        Ok(true)
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_agent", 0, reads_keys, move |_| {
        Ok(s.lock().agent().map(str::to_owned))
    })?;

    let s = state.clone();
    conn.create_scalar_function("coord_set_agent", 1, direct, move |ctx| {
        let agent = agent_arg(ctx, 0, "coord_set_agent")?;
        require_direct(ctx, "coord_set_agent")?;
        if let Some(a) = agent {
            validate_agent_id(a)
                .map_err(|e| arg_err("coord_set_agent", format!("invalid agent id: {e}")))?;
        }
        s.lock().set_agent(agent.map(str::to_owned));
        Ok(agent.map(str::to_owned))
    })?;

    conn.create_scalar_function("coord_fail", 1, direct, |ctx| -> rusqlite::Result<bool> {
        let msg = match ctx.get_raw(0) {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Null => "coord: error".to_owned(),
            other => format!("coord: error ({})", other.data_type()),
        };
        Err(user(SqlError::Raised(msg)))
    })?;

    Ok(())
}

fn key_add(state: &Shared, ctx: &Context<'_>) -> rusqlite::Result<String> {
    const F: &str = "coord_key_add";
    let agent = required_agent(ctx, F)?;
    validate_agent_id(agent).map_err(|e| arg_err(F, format!("invalid agent id: {e}")))?;
    require_direct(ctx, F)?;
    let secret: &[u8] = match ctx.get_raw(1) {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        ValueRef::Null => return Err(arg_err(F, "secret is NULL")),
        other => {
            return Err(arg_err(
                F,
                format!("secret must be TEXT or BLOB, got {}", other.data_type()),
            ))
        }
    };
    let retired = if ctx.len() > 2 {
        match ctx.get_raw(2) {
            ValueRef::Text(b"retired") => true,
            ValueRef::Text(b"current") | ValueRef::Null => false,
            _ => return Err(arg_err(F, "third argument must be 'current' or 'retired'")),
        }
    } else {
        false
    };
    // The rule for key files (a newline from readfile() is not part of the
    // key), as gptme strips them.
    let key = SecretKey::new(coord_keys::strip(secret))
        .map_err(|e| arg_err(F, format!("key for '{agent}' refused: {e}")))?;
    let fp = key.fingerprint();
    let mut st = state.lock();
    if retired {
        st.memory().add_retired(agent, key);
    } else {
        st.memory().add(agent, key);
    }
    Ok(fp)
}
