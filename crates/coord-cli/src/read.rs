//! The read verbs: list, inbox and status, each row with its verification
//! status from coord's TEMP views on this connection.

use comfy_table::Cell;
use rusqlite::params;
use serde_json::{json, Value};

use crate::cli::ListFilter;
use crate::error::{CliError, EXIT_OK};
use crate::output::{clean, opt, outln, style, verification_cell, Out};
use coord_db::Db;

#[derive(Debug)]
struct WorkRow {
    task_id: String,
    claimer: Option<String>,
    epoch: Option<i64>,
    status: Option<String>,
    state: Option<String>,
    claimed_at: Option<String>,
    expires_at: Option<String>,
    completed_at: Option<String>,
    result: Option<String>,
    metadata: Option<String>,
    verification: String,
    verified: bool,
}

impl WorkRow {
    fn json(&self) -> Value {
        json!({
            "task_id": self.task_id, "claimer": self.claimer, "epoch": self.epoch,
            "status": self.status, "state": self.state, "claimed_at": self.claimed_at,
            "expires_at": self.expires_at, "completed_at": self.completed_at,
            "result": self.result, "metadata": self.metadata,
            "verification": self.verification, "verified": self.verified,
        })
    }
}

fn work_rows(db: &Db, filter: ListFilter, agent: Option<&str>) -> Result<Vec<WorkRow>, CliError> {
    if !db.has_table("work")? {
        return Ok(Vec::new());
    }
    let filter = match filter {
        ListFilter::Available => "available",
        ListFilter::Claimed => "claimed",
        ListFilter::Expired => "expired",
        ListFilter::All => "all",
    };
    // "available" includes abandoned tasks: both are claimable now.
    let mut st = db
        .conn
        .prepare(
            "SELECT task_id, claimer, epoch, status, state, claimed_at, expires_at,
                    completed_at, result, metadata, verification, verified
               FROM temp.coord_work
              WHERE (?1 = 'all'
                     OR (?1 = 'available' AND state IN ('available', 'abandoned'))
                     OR state = ?1)
                AND (?2 IS NULL OR claimer = ?2)
              ORDER BY claimed_at IS NULL, claimed_at, task_id",
        )
        .map_err(|e| db.err(e))?;
    let rows = st
        .query_map(params![filter, agent], |r| {
            Ok(WorkRow {
                task_id: r.get(0)?,
                claimer: r.get(1)?,
                epoch: r.get(2)?,
                status: r.get(3)?,
                state: r.get(4)?,
                claimed_at: r.get(5)?,
                expires_at: r.get(6)?,
                completed_at: r.get(7)?,
                result: r.get(8)?,
                metadata: r.get(9)?,
                verification: r.get(10)?,
                verified: r.get(11)?,
            })
        })
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.err(e))?;
    Ok(rows)
}

fn work_table(out: Out, rows: &[WorkRow]) -> comfy_table::Table {
    let mut t = out.table(&[
        "TASK",
        "STATE",
        "CLAIMER",
        "EPOCH",
        "EXPIRES (UTC)",
        "VERIFICATION",
    ]);
    for w in rows {
        t.add_row(vec![
            Cell::new(clean(&w.task_id)),
            Cell::new(opt(&w.state)),
            Cell::new(opt(&w.claimer)),
            Cell::new(opt(&w.epoch)),
            Cell::new(opt(&w.expires_at)),
            verification_cell(&w.verification),
        ]);
    }
    t
}

pub fn list(db: &Db, out: Out, filter: ListFilter, agent: Option<&str>) -> Result<u8, CliError> {
    let rows = work_rows(db, filter, agent)?;
    if out.json {
        out.print_json(&Value::Array(rows.iter().map(WorkRow::json).collect()));
    } else if rows.is_empty() {
        out.line(style::PLAIN, "no tasks");
    } else {
        outln!("{}", work_table(out, &rows));
    }
    Ok(EXIT_OK)
}

#[derive(Debug)]
struct MessageRow {
    id: i64,
    sender: String,
    recipient: Option<String>,
    channel: String,
    body: String,
    created_at: String,
    verification: String,
    verified: bool,
}

/// Messages to `agent` or broadcast (`None`: all), oldest first.
pub fn inbox(
    db: &Db,
    out: Out,
    agent: Option<&str>,
    channel: Option<&str>,
    limit: Option<u32>,
) -> Result<u8, CliError> {
    let rows = if db.has_table("messages")? {
        let mut st = db
            .conn
            .prepare(
                "SELECT * FROM (
                   SELECT id, sender, recipient, channel, body, created_at, verification, verified
                     FROM temp.coord_messages
                    WHERE (?1 IS NULL OR recipient = ?1 OR recipient IS NULL)
                      AND (?2 IS NULL OR channel = ?2)
                    ORDER BY id DESC LIMIT ?3)
                 ORDER BY id",
            )
            .map_err(|e| db.err(e))?;
        let limit = limit.map_or(-1, i64::from);
        st.query_map(params![agent, channel, limit], |r| {
            Ok(MessageRow {
                id: r.get(0)?,
                sender: r.get(1)?,
                recipient: r.get(2)?,
                channel: r.get(3)?,
                body: r.get(4)?,
                created_at: r.get(5)?,
                verification: r.get(6)?,
                verified: r.get(7)?,
            })
        })
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.err(e))?
    } else {
        Vec::new()
    };
    if out.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "sender": m.sender, "recipient": m.recipient,
                    "channel": m.channel, "body": m.body, "created_at": m.created_at,
                    "verification": m.verification, "verified": m.verified,
                })
            })
            .collect();
        out.print_json(&Value::Array(v));
    } else if rows.is_empty() {
        out.line(style::PLAIN, "no messages");
    } else {
        let mut t = out.table(&[
            "ID",
            "FROM",
            "TO",
            "CHANNEL",
            "MESSAGE",
            "SENT (UTC)",
            "VERIFICATION",
        ]);
        for m in &rows {
            t.add_row(vec![
                Cell::new(m.id),
                Cell::new(clean(&m.sender)),
                Cell::new(m.recipient.as_deref().map_or("(everyone)".into(), clean)),
                Cell::new(clean(&m.channel)),
                Cell::new(clean(&m.body)),
                Cell::new(&m.created_at),
                verification_cell(&m.verification),
            ]);
        }
        outln!("{t}");
    }
    Ok(EXIT_OK)
}

/// `SELECT key, count(*) ... GROUP BY key` as a JSON object.
fn counts(db: &Db, sql: &str) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut st = db.conn.prepare(sql).map_err(|e| db.err(e))?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
        })
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.err(e))?;
    Ok(rows
        .into_iter()
        .map(|(k, n)| (k.unwrap_or_else(|| "null".into()), Value::from(n)))
        .collect())
}

fn summary(m: &serde_json::Map<String, Value>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn status(db: &Db, out: Out, agent: Option<&str>) -> Result<u8, CliError> {
    let (tasks, work_ver, live) = if db.has_table("work")? {
        (
            counts(db, "SELECT state, count(*) FROM temp.coord_work GROUP BY state")?,
            counts(db, "SELECT verification, count(*) FROM temp.coord_work WHERE hmac IS NOT NULL OR claimer IS NOT NULL GROUP BY verification")?,
            work_rows(db, ListFilter::Claimed, None)?,
        )
    } else {
        Default::default()
    };
    let msg_ver = if db.has_table("messages")? {
        counts(
            db,
            "SELECT verification, count(*) FROM temp.coord_messages GROUP BY verification",
        )?
    } else {
        Default::default()
    };
    let key = match agent {
        Some(a) => db.coord.key_status(a).to_json(),
        None => Value::Null,
    };
    if out.json {
        out.print_json(&json!({
            "db": db.path.display().to_string(),
            "agent": agent,
            "key": key,
            "tasks": tasks,
            "work_verification": work_ver,
            "message_verification": msg_ver,
            "live_claims": live.iter().map(WorkRow::json).collect::<Vec<_>>(),
        }));
        return Ok(EXIT_OK);
    }
    outln!("database: {}", db.path.display());
    match agent {
        None => outln!("agent:    none (pass --as AGENT or set $COORDINATION_AGENT)"),
        Some(a) if key["can_sign"] == true => outln!(
            "agent:    {a}, can sign (key {} from {})",
            key["fingerprint"].as_str().unwrap_or("?"),
            key["source"]["path"]
                .as_str()
                .or(key["source"]["name"].as_str())
                .unwrap_or("?")
        ),
        Some(a) => out.line(
            style::WARN,
            &format!(
                "agent:    {a}, CANNOT sign: {}",
                key["reason"].as_str().unwrap_or("no current key")
            ),
        ),
    }
    outln!("tasks:    {}", summary(&tasks));
    outln!("claims:   {}", summary(&work_ver));
    outln!("messages: {}", summary(&msg_ver));
    if !live.is_empty() {
        outln!("{}", work_table(out, &live));
    }
    Ok(EXIT_OK)
}
