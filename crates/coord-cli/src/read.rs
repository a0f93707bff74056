//! The read verbs: list, inbox and status, each row with its verification
//! status from coord's TEMP views on this connection.

use comfy_table::Cell;
use coord_db::read::{self, WorkRow};
use serde_json::{json, Value};

use crate::cli::ListFilter;
use crate::error::{CliError, EXIT_OK};
use crate::output::{clean, history_cell, opt, outln, problem_line, style, verification_cell, Out};
use coord_db::Db;

fn work_json(w: &WorkRow) -> Value {
    serde_json::to_value(w).unwrap_or(Value::Null)
}

fn work_table(out: Out, rows: &[WorkRow]) -> comfy_table::Table {
    let mut t = out.table(&[
        "TASK",
        "STATE",
        "CLAIMER",
        "EPOCH",
        "EXPIRES (UTC)",
        "VERIFICATION",
        "HISTORY",
    ]);
    for w in rows {
        t.add_row(vec![
            Cell::new(clean(&w.task_id)),
            Cell::new(opt(&w.state)),
            Cell::new(opt(&w.claimer)),
            Cell::new(opt(&w.epoch)),
            Cell::new(opt(&w.expires_at)),
            verification_cell(&w.verification),
            history_cell(&w.history),
        ]);
    }
    t
}

/// This client's witness of the log (docs/history.md), checked on every
/// read at the cost of what the log grew by: a rollback, fork or broken
/// new event is a warning on stderr, one line each, and the read still
/// shows what the database holds. A witness that cannot be written is a
/// warning too, not a failed read.
fn witness(db: &Db) -> Vec<Value> {
    let problems = match coord_db::history::witness_read(db) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "coord: warning: the witness was not checked: {}",
                clean(&e.to_string())
            );
            return Vec::new();
        }
    };
    problems
        .iter()
        .map(|p| {
            eprintln!(
                "coord: warning: {} (run `coord audit`)",
                clean(&problem_line(p))
            );
            p.to_json()
        })
        .collect()
}

pub fn list(db: &Db, out: Out, filter: ListFilter, agent: Option<&str>) -> Result<u8, CliError> {
    let rows = read::work(db, filter, agent)?;
    witness(db);
    if out.json {
        out.print_json(&Value::Array(rows.iter().map(work_json).collect()));
    } else if rows.is_empty() {
        out.line(style::PLAIN, "no tasks");
    } else {
        outln!("{}", work_table(out, &rows));
    }
    Ok(EXIT_OK)
}

/// Messages to `agent` or broadcast (`None`: all), oldest first.
pub fn inbox(
    db: &Db,
    out: Out,
    agent: Option<&str>,
    channel: Option<&str>,
    limit: Option<u32>,
) -> Result<u8, CliError> {
    witness(db);
    let rows = read::messages(db, agent, channel, limit)?;
    if out.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "sender": m.sender, "recipient": m.recipient,
                    "channel": m.channel, "body": m.body, "created_at": m.created_at,
                    "verification": m.verification, "verified": m.verified,
                    "history": m.history,
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
            "HISTORY",
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
                history_cell(&m.history),
            ]);
        }
        outln!("{t}");
    }
    Ok(EXIT_OK)
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
    let read::Summary {
        tasks,
        work_verification: work_ver,
        message_verification: msg_ver,
        live_claims: live,
    } = read::summary(db)?;
    let witnessed = witness(db);
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
            "live_claims": live.iter().map(work_json).collect::<Vec<_>>(),
            "witness": witnessed,
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
