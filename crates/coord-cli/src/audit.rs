//! `coord audit`: the check a cautious reader runs. coord-db's
//! [`coord_db::read::audit`] reads the raw columns of `main.work` and
//! `main.messages` (refusing them if the file made them views) and verifies
//! each MAC with coord's functions registered by this process; this shows
//! what it found.

use coord_core::Status;
use serde_json::{json, Map, Value};

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{outln, problem_line, style, Out};
use coord_db::Db;

pub fn audit(db: &Db, out: Out, strict: bool) -> Result<u8, CliError> {
    let mut a = coord_db::read::audit(db, strict)?;
    // Signed history: the log against itself and the rows, then against
    // what this client saw of it before (docs/history.md).
    let (log, witnessed) = coord_db::history::check_witnessed(db)?;
    let problems: Vec<&coord_db::history::Problem> =
        log.problems.iter().chain(&witnessed).collect();
    a.ok = a.ok && problems.is_empty();
    if out.json {
        out.print_json(&json!({
            "db": db.path.display().to_string(),
            "ok": a.ok,
            "strict": a.strict,
            "work": a.work,
            "messages": a.messages,
            "findings": a.findings.iter().map(|f| json!({
                "table": f.table,
                if f.table == "work" { "task_id" } else { "id" }: f.key,
                "agent": f.agent,
                "verification": f.verification,
                "detail": f.detail,
            })).collect::<Vec<_>>(),
            "history": log.to_json(),
            "witness": witnessed.iter().map(coord_db::history::Problem::to_json).collect::<Vec<_>>(),
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
        line("claims:", &a.work);
        line("messages:", &a.messages);
        for f in &a.findings {
            let key = match &f.key {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let what = if f.table == "work" { "task" } else { "message" };
            out.line(
                style::REFUSED,
                &format!(
                    "✗ {}: {what} {key} as {}: {}",
                    f.verification.replace('_', " ").to_uppercase(),
                    f.agent.as_deref().unwrap_or("(none)"),
                    f.detail
                ),
            );
        }
        let counts = |v: &[(String, i64)]| {
            v.iter()
                .map(|(k, n)| format!("{n} {}", k.replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        outln!(
            "history:  {} events; tasks: {}; messages: {}",
            log.events,
            counts(&log.work_history),
            counts(&log.message_history)
        );
        for p in &problems {
            out.line(style::REFUSED, &problem_line(p));
        }
        if a.ok {
            out.line(
                style::OK,
                "✓ no forged or tampered rows, and the log is intact",
            );
        } else {
            out.line(
                style::REFUSED,
                &format!(
                    "✗ {} row(s) failed verification, {} history problem(s)",
                    a.findings.len(),
                    problems.len()
                ),
            );
        }
    }
    Ok(if a.ok { EXIT_OK } else { EXIT_REFUSED })
}
