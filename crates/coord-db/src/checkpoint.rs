//! Checkpoints: an agent signs "this log has `size` events ending in
//! `head`" ([`sign`]) once it has checked the log and its own witness, and
//! an operator asks which agents have signed a given size ([`cosigners`]).
//! docs/history.md gives the design.

use rusqlite::types::Value;
use serde_json::json;

use crate::history::{Log, Problem};
use crate::{Db, Error};

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its id in `coord_checkpoints`.
    pub id: i64,
    /// Who signed it.
    pub agent: String,
    /// The link of the log's first event.
    pub origin: String,
    /// How many events the signer saw.
    pub size: i64,
    /// The link of event `size`.
    pub head: String,
    /// When (the database's clock, as rows use it).
    pub at: String,
}

impl Checkpoint {
    /// The checkpoint as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "id": self.id, "agent": self.agent, "origin": self.origin,
            "size": self.size, "head": self.head, "at": self.at,
        })
    }
}

/// Whether `p` says the log itself cannot be trusted (rather than a row
/// disagreeing with an intact log): an event that does not verify, a
/// broken chain, a rollback, fork or replacement seen by the witness, or a
/// checkpoint the log contradicts. An agent signs no checkpoint over such
/// a log.
pub fn breaks_log(p: &Problem) -> bool {
    matches!(
        p.what,
        "bad_mac"
            | "gap"
            | "broken"
            | "rollback"
            | "fork"
            | "replaced"
            | "checkpoint_ahead"
            | "checkpoint_fork"
    )
}

/// Why an agent refuses to sign a checkpoint.
#[derive(Debug)]
pub enum Refusal {
    /// The log has no events.
    Empty,
    /// The log, or the witness, names these problems.
    Problems(Vec<Problem>),
}

/// Signs, as `agent` (whose key this connection holds), a checkpoint of
/// `log` as read on `db` just now, and stores it. `problems` are what the
/// log and this client's witness found (`log.problems` and what
/// [`crate::history::Witness::observe`] returned): any that breaks the log
/// is a refusal, and nothing is signed.
pub fn sign(
    db: &Db,
    agent: &str,
    log: &Log,
    problems: &[Problem],
) -> Result<Result<Checkpoint, Refusal>, Error> {
    let bad: Vec<Problem> = problems.iter().filter(|p| breaks_log(p)).cloned().collect();
    if !bad.is_empty() {
        return Ok(Err(Refusal::Problems(bad)));
    }
    let (Some(origin), Some(head)) = (&log.origin, &log.head) else {
        return Ok(Err(Refusal::Empty));
    };
    let err = |e| db.err(e);
    let at: String = db
        .conn
        .query_row("SELECT datetime('now')", [], |r| r.get(0))
        .map_err(err)?;
    let hmac: String = db
        .conn
        .query_row(
            "SELECT coord_sign_checkpoint(?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![agent, origin, log.events, head, at],
            |r| r.get(0),
        )
        .map_err(err)?;
    let row = [
        Value::Text(agent.to_owned()),
        Value::Text(origin.clone()),
        Value::Integer(log.events),
        Value::Text(head.clone()),
        Value::Text(at.clone()),
        Value::Text(hmac),
    ];
    let id = db.add_checkpoint(&row)?;
    Ok(Ok(Checkpoint {
        id,
        agent: agent.to_owned(),
        origin: origin.clone(),
        size: log.events,
        head: head.clone(),
        at,
    }))
}

/// One agent's newest checkpoint that verifies and that the log agrees
/// with, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    /// The agent.
    pub agent: String,
    /// Its newest good checkpoint.
    pub newest: Option<Checkpoint>,
}

/// For every agent that acted in the log (and every agent in `also`), its
/// newest checkpoint that verifies and is consistent with the log as read
/// on `db`, sorted by agent. A forged, truncated or forked checkpoint
/// counts for nothing.
pub fn cosigners(db: &Db, also: &[String]) -> Result<Vec<Cosigner>, Error> {
    let err = |e| db.err(e);
    let mut agents: Vec<String> = if db.has_table("coord_events")? {
        db.conn
            .prepare("SELECT DISTINCT agent FROM main.coord_events WHERE agent <> ''")
            .map_err(err)?
            .query_map([], |r| crate::history::lossy(r, 0))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?
    } else {
        Vec::new()
    };
    agents.extend(also.iter().cloned());
    agents.sort();
    agents.dedup();
    // every good checkpoint, in one pass over the view; the newest (then
    // last stored) per agent wins
    let mut newest: std::collections::HashMap<String, Checkpoint> =
        std::collections::HashMap::new();
    if db.has_table("coord_checkpoints")? {
        let mut st = db
            .conn
            .prepare(
                "SELECT id, agent, origin, size, head, at FROM coord_checkpoint_log
                  WHERE verification IN ('verified', 'retired_key')
                    AND consistency = 'consistent'
                  ORDER BY size, id",
            )
            .map_err(err)?;
        let rows = st
            .query_map([], |r| {
                Ok(Checkpoint {
                    id: r.get(0)?,
                    agent: crate::history::lossy(r, 1)?,
                    origin: crate::history::lossy(r, 2)?,
                    size: r.get(3)?,
                    head: crate::history::lossy(r, 4)?,
                    at: crate::history::lossy(r, 5)?,
                })
            })
            .map_err(err)?;
        for c in rows {
            let c = c.map_err(err)?;
            newest.insert(c.agent.clone(), c);
        }
    }
    let out = agents
        .into_iter()
        .map(|agent| Cosigner {
            newest: newest.remove(&agent),
            agent,
        })
        .collect();
    Ok(out)
}
