//! The write API as Rust calls: each runs one operation of `sql/api.sql`
//! inside `BEGIN IMMEDIATE` and returns its outcome.
//!
//! `BEGIN IMMEDIATE` takes the write lock before anything is read, so the
//! decision and the conditional write see the same state. If the lock is
//! not free within the connection's busy timeout the call fails with
//! [`OpError::Busy`]: a busy database is never reported as an outcome.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use thiserror::Error;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema),
    serde(rename_all = "snake_case")
)]
pub enum Outcome {
    /// The claim was granted (new task, or an expired, abandoned, completed
    /// or available one), with a new epoch.
    Granted,
    /// The holder's live claim got a new expiry; same epoch.
    Renewed,
    /// Another agent holds a live claim (see holder and expires_at).
    Denied,
    /// The task is completed.
    Completed,
    /// The task is abandoned: claimable again.
    Abandoned,
    /// The epoch given is not the task's: a newer holder fenced this one.
    LostLease,
    /// Another agent holds the task.
    NotHolder,
    /// The task is not claimed (available, completed or abandoned).
    NotClaimed,
    /// The holder's claim expired before completion.
    Expired,
    /// No such task.
    UnknownTask,
    /// A new task was submitted.
    Submitted,
    /// Submit found the task abandoned and offered it again (as gptme does).
    Resubmitted,
    /// Submit found the task already there.
    Exists,
    /// A message was sent.
    Sent,
}

impl Outcome {
    /// Every outcome, in declaration order, with its name in
    /// `temp.coord_result.outcome`: the one table [`Outcome::as_str`] and
    /// the parsing of a result row read. The names are the snake_case of
    /// the variants, as the `serde` feature's `rename_all` makes them (a
    /// test checks that the two agree).
    pub const NAMES: [(Outcome, &'static str); 14] = [
        (Outcome::Granted, "granted"),
        (Outcome::Renewed, "renewed"),
        (Outcome::Denied, "denied"),
        (Outcome::Completed, "completed"),
        (Outcome::Abandoned, "abandoned"),
        (Outcome::LostLease, "lost_lease"),
        (Outcome::NotHolder, "not_holder"),
        (Outcome::NotClaimed, "not_claimed"),
        (Outcome::Expired, "expired"),
        (Outcome::UnknownTask, "unknown_task"),
        (Outcome::Submitted, "submitted"),
        (Outcome::Resubmitted, "resubmitted"),
        (Outcome::Exists, "exists"),
        (Outcome::Sent, "sent"),
    ];

    /// The outcome's name in `temp.coord_result.outcome`.
    pub fn as_str(self) -> &'static str {
        // NAMES is in declaration order (the test below checks it).
        Self::NAMES[self as usize].1
    }

    fn parse(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|&(o, _)| o)
    }

    /// Whether the operation did what was asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::Granted
                | Outcome::Renewed
                | Outcome::Completed
                | Outcome::Abandoned
                | Outcome::Submitted
                | Outcome::Resubmitted
                | Outcome::Exists
                | Outcome::Sent
        )
    }
}

/// One row of `temp.coord_result`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    /// claim, complete, abandon, submit or send.
    pub op: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The task, for task operations.
    pub task_id: Option<String>,
    /// The agent that acted.
    pub agent: Option<String>,
    /// The task's claimer before the operation.
    pub holder: Option<String>,
    /// The epoch after a grant, else the task's.
    pub epoch: Option<i64>,
    /// New expiry on grant or renewal; the holder's on denial.
    pub expires_at: Option<String>,
    /// Whether the row written carries a MAC.
    pub signed: Option<bool>,
    /// The message id, for send.
    pub message_id: Option<i64>,
    /// One line for people.
    pub detail: String,
}

/// Why an operation failed (as opposed to an outcome like `Denied`).
#[derive(Debug, Error)]
pub enum OpError {
    /// The database stayed locked past the busy timeout.
    #[error("database is busy (locked by another writer past the busy timeout); try again")]
    Busy,
    /// Any other SQLite error (including coord's argument and gate errors).
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    /// The write API is missing: coord's TEMP objects are not on this
    /// connection or coord_init() never ran on this database.
    #[error("coord's write API is not set up on this connection: {0}")]
    NotSetUp(String),
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn classify(e: rusqlite::Error) -> OpError {
    if is_busy(&e) {
        return OpError::Busy;
    }
    let msg = e.to_string();
    if msg.contains("no such table: temp.coord_") || msg.contains("no such table: main.coord_gate")
    {
        return OpError::NotSetUp(msg);
    }
    OpError::Sql(e)
}

/// Runs `write` inside BEGIN IMMEDIATE, then reads the outcome and commits.
fn run(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
) -> Result<OpResult, OpError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(classify)?;
    let r = write(conn).and_then(|_| {
        conn.query_row(
            "SELECT op, outcome, task_id, agent, holder, epoch, expires_at, signed, message_id, detail
               FROM temp.coord_result",
            [],
            |r| {
                let outcome: String = r.get(1)?;
                Ok((
                    outcome,
                    OpResult {
                        op: r.get(0)?,
                        outcome: Outcome::Sent,
                        task_id: r.get(2)?,
                        agent: r.get(3)?,
                        holder: r.get(4)?,
                        epoch: r.get(5)?,
                        expires_at: r.get(6)?,
                        signed: r.get(7)?,
                        message_id: r.get(8)?,
                        detail: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                    },
                ))
            },
        )
        .optional()
    });
    match r {
        Ok(Some((outcome, mut res))) => {
            conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                classify(e)
            })?;
            res.outcome = Outcome::parse(&outcome)
                .ok_or_else(|| OpError::NotSetUp(format!("unknown outcome {outcome}")))?;
            Ok(res)
        }
        Ok(None) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(OpError::NotSetUp(
                "the operation recorded no outcome".into(),
            ))
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(classify(e))
        }
    }
}

/// One write-API operation, as a value: what [`run_op`] runs, and what a
/// backend that keeps its rows elsewhere needs to know of it (its task and
/// kind). `None` for a claimer or sender means the connection's agent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op<'a> {
    /// [`claim`].
    Claim {
        /// The task.
        task_id: &'a str,
        /// Who claims it.
        claimer: Option<&'a str>,
        /// For how long.
        ttl_minutes: f64,
    },
    /// [`complete`].
    Complete {
        /// The task.
        task_id: &'a str,
        /// Its holder.
        claimer: Option<&'a str>,
        /// The epoch it must still be at.
        epoch: Option<i64>,
        /// The result.
        result: Option<&'a str>,
    },
    /// [`abandon`].
    Abandon {
        /// The task.
        task_id: &'a str,
        /// Its holder.
        claimer: Option<&'a str>,
        /// The epoch it must still be at.
        epoch: Option<i64>,
    },
    /// [`submit`].
    Submit {
        /// The task.
        task_id: &'a str,
        /// Its metadata.
        metadata: Option<&'a str>,
    },
    /// [`send`].
    Send {
        /// Who sends it.
        sender: Option<&'a str>,
        /// To whom (`None`: everyone).
        recipient: Option<&'a str>,
        /// On which channel (`None`: general).
        channel: Option<&'a str>,
        /// What it says.
        body: &'a str,
    },
}

impl Op<'_> {
    /// Which operation this is.
    pub fn kind(&self) -> crate::writes::Kind {
        use crate::writes::Kind;
        match self {
            Op::Claim { .. } => Kind::Claim,
            Op::Complete { .. } => Kind::Complete,
            Op::Abandon { .. } => Kind::Abandon,
            Op::Submit { .. } => Kind::Submit,
            Op::Send { .. } => Kind::Send,
        }
    }

    /// The task it acts on (none for a message).
    pub fn task_id(&self) -> Option<&str> {
        match *self {
            Op::Claim { task_id, .. }
            | Op::Complete { task_id, .. }
            | Op::Abandon { task_id, .. }
            | Op::Submit { task_id, .. } => Some(task_id),
            Op::Send { .. } => None,
        }
    }
}

/// Runs `op` on `conn` (inside BEGIN IMMEDIATE, as every function here).
pub fn run_op(conn: &Connection, op: &Op<'_>) -> Result<OpResult, OpError> {
    match *op {
        Op::Claim {
            task_id,
            claimer,
            ttl_minutes,
        } => claim(conn, task_id, claimer, ttl_minutes),
        Op::Complete {
            task_id,
            claimer,
            epoch,
            result,
        } => complete(conn, task_id, claimer, epoch, result),
        Op::Abandon {
            task_id,
            claimer,
            epoch,
        } => abandon(conn, task_id, claimer, epoch),
        Op::Submit { task_id, metadata } => submit(conn, task_id, metadata),
        Op::Send {
            sender,
            recipient,
            channel,
            body,
        } => send(conn, sender, recipient, channel, body),
    }
}

/// Claims `task_id` for `claimer` (None: the connection's agent) for
/// `ttl_minutes`.
pub fn claim(
    conn: &Connection,
    task_id: &str,
    claimer: Option<&str>,
    ttl_minutes: f64,
) -> Result<OpResult, OpError> {
    run(conn, |c| {
        c.execute(
            "INSERT INTO temp.coord_claim(task_id, claimer, ttl_minutes) VALUES (?1, ?2, ?3)",
            params![task_id, claimer, ttl_minutes],
        )
    })
}

/// Completes `task_id` as `claimer`; with `epoch`, only if it is still the
/// task's epoch.
pub fn complete(
    conn: &Connection,
    task_id: &str,
    claimer: Option<&str>,
    epoch: Option<i64>,
    result: Option<&str>,
) -> Result<OpResult, OpError> {
    run(conn, |c| {
        c.execute(
            "INSERT INTO temp.coord_complete(task_id, claimer, epoch, result) VALUES (?1, ?2, ?3, ?4)",
            params![task_id, claimer, epoch, result],
        )
    })
}

/// Abandons `task_id` as `claimer`; with `epoch`, only if it is still the
/// task's epoch.
pub fn abandon(
    conn: &Connection,
    task_id: &str,
    claimer: Option<&str>,
    epoch: Option<i64>,
) -> Result<OpResult, OpError> {
    run(conn, |c| {
        c.execute(
            "INSERT INTO temp.coord_abandon(task_id, claimer, epoch) VALUES (?1, ?2, ?3)",
            params![task_id, claimer, epoch],
        )
    })
}

/// Adds `task_id` as available, unless it exists.
pub fn submit(
    conn: &Connection,
    task_id: &str,
    metadata: Option<&str>,
) -> Result<OpResult, OpError> {
    run(conn, |c| {
        c.execute(
            "INSERT INTO temp.coord_submit(task_id, metadata) VALUES (?1, ?2)",
            params![task_id, metadata],
        )
    })
}

/// Sends `body` from `sender` (None: the connection's agent) to `recipient`
/// (None: everyone) on `channel` (None: general).
pub fn send(
    conn: &Connection,
    sender: Option<&str>,
    recipient: Option<&str>,
    channel: Option<&str>,
    body: &str,
) -> Result<OpResult, OpError> {
    run(conn, |c| {
        c.execute(
            "INSERT INTO temp.coord_send(sender, recipient, channel, body) VALUES (?1, ?2, ?3, ?4)",
            params![sender, recipient, channel, body],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcome_names_are_in_declaration_order_and_round_trip() {
        for (i, &(o, name)) in Outcome::NAMES.iter().enumerate() {
            assert_eq!(o as usize, i, "{name}");
            assert_eq!(o.as_str(), name);
            assert_eq!(Outcome::parse(name), Some(o));
        }
        assert_eq!(Outcome::parse("Granted"), None);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_names_are_the_table_names() {
        for (o, name) in Outcome::NAMES {
            assert_eq!(serde_json::to_value(o).ok(), Some(name.into()));
            assert_eq!(serde_json::from_value::<Outcome>(name.into()).ok(), Some(o));
        }
    }
}
