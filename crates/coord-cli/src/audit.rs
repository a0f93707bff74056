//! `coord audit`: the check a cautious reader runs. It reads the raw
//! columns of `main.work` and `main.messages` (refusing them if the file
//! made them views) and verifies each MAC with coord's functions registered
//! by this process. No view, trigger or other object stored in the file is
//! used, so a planted object cannot change the verdict.

use coord_core::Status;
use serde_json::{json, Map, Value};

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{outln, style, Out};
use coord_db::Db;

/// One row that failed.
struct Finding {
    table: &'static str,
    key: Value,
    agent: Option<String>,
    status: String,
    what: String,
}

fn tally() -> Map<String, Value> {
    Status::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), Value::from(0)))
        .collect()
}

fn bump(m: &mut Map<String, Value>, status: &str) {
    let n = m.get(status).and_then(Value::as_i64).unwrap_or(0);
    m.insert(status.to_owned(), Value::from(n + 1));
}

pub fn audit(db: &Db, out: Out, strict: bool) -> Result<u8, CliError> {
    let mut work = tally();
    let mut messages = tally();
    let mut findings = Vec::new();
    let fails = |status: &str| {
        status == "bad_mac" || (strict && !matches!(status, "verified" | "retired_key"))
    };

    // Read in one snapshot so the two tables agree with each other.
    db.conn.execute_batch("BEGIN").map_err(|e| db.err(e))?;
    let r = (|| -> Result<(), CliError> {
        if db.has_table("work")? {
            // Only rows that claim to be someone's: a task never claimed has
            // no claimer and nothing to sign.
            let mut st = db
                .conn
                .prepare(
                    "SELECT task_id, claimer, epoch, expires_at,
                            coord_claim_status(claimer, hmac, task_id, epoch, expires_at)
                       FROM main.work
                      WHERE claimer IS NOT NULL OR hmac IS NOT NULL
                      ORDER BY rowid",
                )
                .map_err(|e| db.err(e))?;
            let mut rows = st.query([]).map_err(|e| db.err(e))?;
            while let Some(r) = rows.next().map_err(|e| db.err(e))? {
                let status: String = r.get(4).map_err(|e| db.err(e))?;
                bump(&mut work, &status);
                if fails(&status) {
                    let task: rusqlite::types::Value = r.get(0).map_err(|e| db.err(e))?;
                    let epoch: rusqlite::types::Value = r.get(2).map_err(|e| db.err(e))?;
                    let exp: Option<String> = r.get(3).ok().flatten();
                    findings.push(Finding {
                        table: "work",
                        key: sql_json(&task),
                        agent: r.get(1).ok().flatten(),
                        status,
                        what: format!(
                            "epoch {}, expires {}",
                            sql_json(&epoch),
                            exp.unwrap_or_default()
                        ),
                    });
                }
            }
        }
        if db.has_table("messages")? {
            let mut st = db
                .conn
                .prepare(
                    "SELECT id, sender, recipient, channel, body,
                            coord_message_status(sender, hmac, recipient, channel, body)
                       FROM main.messages ORDER BY id",
                )
                .map_err(|e| db.err(e))?;
            let mut rows = st.query([]).map_err(|e| db.err(e))?;
            while let Some(r) = rows.next().map_err(|e| db.err(e))? {
                let status: String = r.get(5).map_err(|e| db.err(e))?;
                bump(&mut messages, &status);
                if fails(&status) {
                    let id: rusqlite::types::Value = r.get(0).map_err(|e| db.err(e))?;
                    let to: Option<String> = r.get(2).ok().flatten();
                    let channel: Option<String> = r.get(3).ok().flatten();
                    let body: Option<String> = r.get(4).ok().flatten();
                    findings.push(Finding {
                        table: "messages",
                        key: sql_json(&id),
                        agent: r.get(1).ok().flatten(),
                        status,
                        what: format!(
                            "to {} on {}: {:?}",
                            to.as_deref().unwrap_or("everyone"),
                            channel.unwrap_or_default(),
                            body.unwrap_or_default()
                        ),
                    });
                }
            }
        }
        Ok(())
    })();
    let _ = db.conn.execute_batch("COMMIT");
    r?;

    let ok = findings.is_empty();
    if out.json {
        out.print_json(&json!({
            "db": db.path.display().to_string(),
            "ok": ok,
            "strict": strict,
            "work": work,
            "messages": messages,
            "findings": findings.iter().map(|f| json!({
                "table": f.table,
                if f.table == "work" { "task_id" } else { "id" }: f.key,
                "agent": f.agent,
                "verification": f.status,
                "detail": f.what,
            })).collect::<Vec<_>>(),
        }));
    } else {
        let line = |name: &str, m: &Map<String, Value>| {
            let parts: Vec<String> = Status::ALL
                .iter()
                .map(|s| format!("{} {}", m[s.as_str()], s.as_str().replace('_', " ")))
                .collect();
            outln!("{name:<10}{}", parts.join(", "));
        };
        outln!("audit of {}", db.path.display());
        line("claims:", &work);
        line("messages:", &messages);
        for f in &findings {
            let key = match &f.key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let what = if f.table == "work" { "task" } else { "message" };
            out.line(
                style::REFUSED,
                &format!(
                    "✗ {}: {what} {key} as {}: {}",
                    f.status.replace('_', " ").to_uppercase(),
                    f.agent.as_deref().unwrap_or("(none)"),
                    f.what
                ),
            );
        }
        if ok {
            out.line(style::OK, "✓ no forged or tampered rows");
        } else {
            out.line(
                style::REFUSED,
                &format!("✗ {} row(s) failed verification", findings.len()),
            );
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_REFUSED })
}

/// A raw SQL value as JSON (task ids and epochs are untrusted input and
/// may be of any type).
fn sql_json(v: &rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::from(*i),
        V::Real(f) => Value::from(*f),
        V::Text(s) => Value::from(s.as_str()),
        V::Blob(b) => Value::from(format!("x'{}'", hex::encode(b))),
    }
}
