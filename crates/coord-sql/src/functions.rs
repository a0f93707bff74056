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
    canonical, validate_agent_id, Checkpoint, Claim, EncodeError, Event, Field, Message, SecretKey,
    Status,
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
    /// `agent, seq, prev, op, subject, at, state`: an [`Event`].
    Event,
    /// `agent, origin, size, head, at`: a [`Checkpoint`].
    Checkpoint,
}

impl Shape {
    /// The signed fields for `agent` and the field arguments `f`. A row
    /// shape takes exactly three arguments after the agent (the functions
    /// are registered with that many); its row is built on the stack.
    fn signed<'a>(self, agent: &'a str, f: Vec<Field<'a>>) -> Signed<'a> {
        match (self, f.as_slice()) {
            (Shape::Claim, &[t, e, x]) => Signed::Row(Claim::new(agent, t, e, x).into_fields()),
            (Shape::Message, &[r, c, b]) => Signed::Row(Message::new(agent, r, c, b).into_fields()),
            (Shape::Event, &[seq, prev, op, subject, at, state]) => Signed::Fields(
                Event::new(agent, seq, prev, op, subject, at, state)
                    .into_fields()
                    .to_vec(),
            ),
            (Shape::Checkpoint, &[origin, size, head, at]) => Signed::Fields(
                Checkpoint::new(agent, origin, size, head, at)
                    .into_fields()
                    .to_vec(),
            ),
            _ => Signed::Fields(f),
        }
    }

    /// The number of SQL arguments of the row's signer: the agent and its
    /// other signed columns.
    fn signer_args(self) -> i32 {
        match self {
            Shape::Fields => -1,
            Shape::Claim | Shape::Message => 4,
            Shape::Event => 7,
            Shape::Checkpoint => 5,
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
pub(crate) struct SqlMac(coord_core::Base64);

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
pub(crate) fn internal_signers(internal: &str) -> [(String, Shape); 3] {
    [
        (format!("{internal}_claim"), Shape::Claim),
        (format!("{internal}_message"), Shape::Message),
        (format!("{internal}_event"), Shape::Event),
    ]
}

/// The names sql/api.sql calls its signers by; each is replaced by this
/// connection's random name before the SQL runs.
pub(crate) const SIGNER_PLACEHOLDERS: [&str; 3] = [
    "coord_signer_claim(",
    "coord_signer_message(",
    "coord_signer_event(",
];

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

/// Who may call a function, which decides its SQLite flags (see the
/// module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads no secret: DETERMINISTIC and INNOCUOUS.
    Pure,
    /// Reads keys: neither INNOCUOUS nor DETERMINISTIC, so with
    /// `PRAGMA trusted_schema=OFF` no stored view or trigger may call it.
    ReadsKeys,
    /// Signs, changes keys or the acting agent, or writes: DIRECTONLY, so no
    /// object stored in a database file may call it at all.
    Direct,
}

impl Access {
    /// The flags SQLite registers the function with.
    pub fn flags(self) -> FunctionFlags {
        let utf8 = FunctionFlags::SQLITE_UTF8;
        match self {
            Access::Pure => {
                utf8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS
            }
            Access::ReadsKeys => utf8,
            Access::Direct => utf8 | FunctionFlags::SQLITE_DIRECTONLY,
        }
    }
}

/// What a function body gets besides its arguments: the connection's
/// state and the name of its write API's signer.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) state: Shared,
    pub(crate) signer: String,
}

type Body = fn(&Env, &Context<'_>) -> rusqlite::Result<Out>;

/// One of coord's SQL functions.
#[derive(Clone, Copy)]
pub struct Function {
    /// Its name.
    pub name: &'static str,
    /// Its number of arguments; -1 for any.
    pub n_arg: i32,
    /// Who may call it.
    pub access: Access,
    body: Body,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({:?})", self.name, self.n_arg, self.access)
    }
}

/// A function's result, handed to SQLite without a copy where it can be.
pub(crate) enum Out {
    Null,
    Bool(bool),
    Static(&'static str),
    Text(String),
    Mac(SqlMac),
}

impl rusqlite::ToSql for Out {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Out::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Out::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Out::Static(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Out::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Out::Mac(m) => return m.to_sql(),
        })
    }
}

impl From<Option<String>> for Out {
    fn from(s: Option<String>) -> Out {
        s.map_or(Out::Null, Out::Text)
    }
}

impl From<Option<SqlMac>> for Out {
    fn from(m: Option<SqlMac>) -> Out {
        m.map_or(Out::Null, Out::Mac)
    }
}

const fn f(name: &'static str, n_arg: i32, access: Access, body: Body) -> Function {
    Function {
        name,
        n_arg,
        access,
        body,
    }
}

/// Every function [`crate::register`] adds: the one list that registers,
/// unregisters and documents them (tests compare it with what SQLite's
/// `pragma_function_list` says). Besides these, the write API's two
/// signers, whose names are drawn per connection (see [`register`]).
pub const FUNCTIONS: &[Function] = &[
    f("coord_version", 0, Access::Pure, |_, _| {
        Ok(Out::Static(env!("CARGO_PKG_VERSION")))
    }),
    f("coord_canonical", -1, Access::Pure, canonical_fn),
    f("coord_state", -1, Access::Pure, |_, ctx| {
        // What an event records of a row; NULL, never an error, for a row
        // with no canonical form, so that a view reads it as changed.
        Ok(fields(ctx, 0)
            .ok()
            .and_then(|f| String::from_utf8(canonical(&f)).ok())
            .into())
    }),
    f("coord_sign", -1, Access::Direct, |e, ctx| {
        fields_sign(e, ctx, "coord_sign", Signer::Strict)
    }),
    f("coord_try_sign", -1, Access::Direct, |e, ctx| {
        fields_sign(e, ctx, "coord_try_sign", Signer::Try)
    }),
    f("coord_sign_claim", 4, Access::Direct, |e, ctx| {
        sign(
            &e.state,
            ctx,
            "coord_sign_claim",
            Signer::Strict,
            Shape::Claim,
        )
        .map(Out::from)
    }),
    f("coord_sign_message", 4, Access::Direct, |e, ctx| {
        sign(
            &e.state,
            ctx,
            "coord_sign_message",
            Signer::Strict,
            Shape::Message,
        )
        .map(Out::from)
    }),
    f("coord_verify", -1, Access::ReadsKeys, |e, ctx| {
        if ctx.len() < 2 {
            return Err(arg_err("coord_verify", "needs agent_id and mac"));
        }
        Ok(Out::Bool(
            verify_status(&e.state, ctx, Shape::Fields).is_authentic(),
        ))
    }),
    f("coord_verify_status", -1, Access::ReadsKeys, |e, ctx| {
        if ctx.len() < 2 {
            return Err(arg_err("coord_verify_status", "needs agent_id and mac"));
        }
        Ok(Out::Static(
            verify_status(&e.state, ctx, Shape::Fields).as_str(),
        ))
    }),
    f("coord_claim_status", 5, Access::ReadsKeys, |e, ctx| {
        Ok(Out::Static(
            verify_status(&e.state, ctx, Shape::Claim).as_str(),
        ))
    }),
    f("coord_message_status", 5, Access::ReadsKeys, |e, ctx| {
        Ok(Out::Static(
            verify_status(&e.state, ctx, Shape::Message).as_str(),
        ))
    }),
    f("coord_event_status", 8, Access::ReadsKeys, |e, ctx| {
        Ok(Out::Static(
            verify_status(&e.state, ctx, Shape::Event).as_str(),
        ))
    }),
    f("coord_event_link", 8, Access::Pure, event_link_fn),
    f("coord_checkpoint_status", 6, Access::ReadsKeys, |e, ctx| {
        Ok(Out::Static(
            verify_status(&e.state, ctx, Shape::Checkpoint).as_str(),
        ))
    }),
    f("coord_sign_checkpoint", 5, Access::Direct, |e, ctx| {
        sign(
            &e.state,
            ctx,
            "coord_sign_checkpoint",
            Signer::Strict,
            Shape::Checkpoint,
        )
        .map(Out::from)
    }),
    f("coord_can_sign", 1, Access::Direct, |e, ctx| {
        let Some(agent) = agent_arg(ctx, 0, "coord_can_sign")? else {
            return Ok(Out::Bool(false));
        };
        if validate_agent_id(agent).is_err() {
            return Ok(Out::Bool(false));
        }
        Ok(Out::Bool(e.state.lock().with_keys(agent, |k| {
            k.is_some_and(|k| k.current.is_some())
        })))
    }),
    f("coord_key_status", 1, Access::Direct, |e, ctx| {
        let agent = required_agent(ctx, "coord_key_status")?;
        Ok(Out::Text(
            e.state.lock().report(agent).to_json().to_string(),
        ))
    }),
    f("coord_key_add", 2, Access::Direct, key_add_fn),
    f("coord_key_add", 3, Access::Direct, key_add_fn),
    f("coord_key_remove", 1, Access::Direct, |e, ctx| {
        let agent = required_agent(ctx, "coord_key_remove")?;
        require_direct(ctx, "coord_key_remove")?;
        Ok(Out::Bool(e.state.lock().memory().remove(agent)))
    }),
    f("coord_key_reload", 0, Access::Direct, |e, ctx| {
        require_direct(ctx, "coord_key_reload")?;
        e.state.lock().reload();
        Ok(Out::Bool(true))
    }),
    f("coord_agent", 0, Access::ReadsKeys, |e, _| {
        Ok(e.state.lock().agent().map(str::to_owned).into())
    }),
    f("coord_set_agent", 1, Access::Direct, |e, ctx| {
        let agent = agent_arg(ctx, 0, "coord_set_agent")?;
        require_direct(ctx, "coord_set_agent")?;
        if let Some(a) = agent {
            validate_agent_id(a)
                .map_err(|e| arg_err("coord_set_agent", format!("invalid agent id: {e}")))?;
        }
        e.state.lock().set_agent(agent.map(str::to_owned));
        Ok(agent.map(str::to_owned).into())
    }),
    f("coord_fail", 1, Access::Direct, |_, ctx| {
        let msg = match ctx.get_raw(0) {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Null => "coord: error".to_owned(),
            other => format!("coord: error ({})", other.data_type()),
        };
        Err(user(SqlError::Raised(msg)))
    }),
    f("coord_init", 0, Access::Direct, |e, ctx| {
        require_direct(ctx, "coord_init")?;
        // SAFETY: the connection reference is used only for the duration
        // of this call, on the thread SQLite called us on, and is not
        // stored or sent anywhere.
        let conn = unsafe { ctx.get_connection()? };
        let report = crate::init(&*conn)?;
        // Also (re)creates the TEMP objects, which a change of
        // PRAGMA temp_store, for one, silently drops.
        crate::create_temp(&conn, &e.signer)?;
        Ok(Out::Text(report.to_string()))
    }),
];

fn canonical_fn(_: &Env, ctx: &Context<'_>) -> rusqlite::Result<Out> {
    let f = fields(ctx, 0).map_err(|source| {
        user(SqlError::Encode {
            func: "coord_canonical",
            source,
        })
    })?;
    // The encoder only writes ASCII.
    String::from_utf8(canonical(&f))
        .map(Out::Text)
        .map_err(|_| arg_err("coord_canonical", "not ASCII"))
}

/// `coord_event_link(agent, hmac, seq, prev, op, subject, at, state)`: the
/// event's link ([`coord_core::link`]); NULL when a column has no canonical
/// form (a BLOB), which no chain can then name.
fn event_link_fn(_: &Env, ctx: &Context<'_>) -> rusqlite::Result<Out> {
    let agent = match ctx.get_raw(0) {
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(a) => a,
            Err(_) => return Ok(Out::Null),
        },
        ValueRef::Null => "",
        _ => return Ok(Out::Null),
    };
    let mac = match ctx.get_raw(1) {
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(m) => Some(m),
            Err(_) => return Ok(Out::Null),
        },
        ValueRef::Null => None,
        _ => return Ok(Out::Null),
    };
    let Ok(f) = fields(ctx, 2) else {
        return Ok(Out::Null);
    };
    let &[seq, prev, op, subject, at, state] = f.as_slice() else {
        return Ok(Out::Null);
    };
    let event = Event::new(agent, seq, prev, op, subject, at, state);
    Ok(Out::Text(coord_core::link(&event, mac)))
}

fn fields_sign(
    e: &Env,
    ctx: &Context<'_>,
    func: &'static str,
    how: Signer,
) -> rusqlite::Result<Out> {
    if ctx.is_empty() {
        return Err(arg_err(func, "needs an agent_id"));
    }
    sign(&e.state, ctx, func, how, Shape::Fields).map(Out::from)
}

fn key_add_fn(e: &Env, ctx: &Context<'_>) -> rusqlite::Result<Out> {
    key_add(&e.state, ctx).map(Out::Text)
}

/// Registers every function of [`FUNCTIONS`] on `conn`, and the write API's
/// signers under the name in `env`.
pub(crate) fn register(conn: &Connection, env: &Env) -> rusqlite::Result<()> {
    for f in FUNCTIONS {
        let e = env.clone();
        let body = f.body;
        conn.create_scalar_function(f.name, f.n_arg, f.access.flags(), move |ctx| body(&e, ctx))?;
    }
    // The signers of coord's own write API (sql/api.sql), one per kind of
    // row. Not checked by the direct-call rule: their names hold 128
    // random bits drawn for this connection and appear only in this
    // connection's TEMP schema, which nothing stored in a database file can
    // read, so no planted object can call them.
    for (name, shape) in internal_signers(&env.signer) {
        let s = env.state.clone();
        conn.create_scalar_function(
            name.as_str(),
            shape.signer_args(),
            Access::Direct.flags(),
            move |ctx| sign(&s, ctx, "coord_try_sign", Signer::Internal, shape),
        )?;
    }
    Ok(())
}

/// Removes every function [`register`] added, running their destructors
/// now.
pub(crate) fn unregister(conn: &Connection, signer: &str) {
    // A function that was never registered is not an error worth
    // reporting here: the caller is already failing.
    for f in FUNCTIONS {
        let _ = conn.remove_function(f.name, f.n_arg);
    }
    for (name, shape) in internal_signers(signer) {
        let _ = conn.remove_function(name.as_str(), shape.signer_args());
    }
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
