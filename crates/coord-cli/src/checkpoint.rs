//! `coord checkpoint`: an agent signs the log's size and head once it has
//! checked them (coord-db's [`coord_db::checkpoint::sign`]), and
//! `--check` asks whether every agent has signed a given size.

use serde_json::json;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{clean, outln, problem_line, style, Out};
use coord_db::checkpoint::{self, Refusal};
use coord_db::history::{self, Problem};
use coord_db::Db;

fn short(link: &str) -> &str {
    &link[..link.len().min(16)]
}

fn problems_json(ps: &[Problem]) -> Vec<serde_json::Value> {
    ps.iter().map(Problem::to_json).collect()
}

/// Signs a checkpoint as `agent`, or refuses (exit 1) naming why.
pub fn sign(db: &Db, out: Out, agent: &str) -> Result<u8, CliError> {
    let (log, witnessed) = history::check_witnessed(db)?;
    let all: Vec<Problem> = log.problems.iter().chain(&witnessed).cloned().collect();
    match checkpoint::sign(db, agent, &log, &all)? {
        Ok(c) => {
            if out.json {
                out.print_json(&json!({"signed": true, "checkpoint": c.to_json()}));
            } else {
                out.line(
                    style::OK,
                    &format!(
                        "✓ {} signed checkpoint {}: {} events, head {}… (log {}…)",
                        agent,
                        c.id,
                        c.size,
                        short(&c.head),
                        short(&c.origin)
                    ),
                );
            }
            Ok(EXIT_OK)
        }
        Err(refusal) => {
            let (why, ps) = match &refusal {
                Refusal::Empty => ("the log has no events".to_owned(), Vec::new()),
                Refusal::Problems(ps) => (
                    format!("the log has {} problem(s); see `coord audit`", ps.len()),
                    ps.clone(),
                ),
            };
            if out.json {
                out.print_json(&json!({
                    "signed": false, "reason": why, "problems": problems_json(&ps),
                }));
            } else {
                for p in &ps {
                    out.line(style::REFUSED, &problem_line(p));
                }
                out.line(style::REFUSED, &format!("✗ {} did not sign: {why}", agent));
            }
            Ok(EXIT_REFUSED)
        }
    }
}

/// Lists each agent's newest good checkpoint; exit 1 unless every one
/// covers `size` events (default: the whole log as read now).
pub fn check(db: &Db, out: Out, size: Option<i64>, also: &[String]) -> Result<u8, CliError> {
    for a in also {
        coord_core::validate_agent_id(a).map_err(|e| CliError::BadAgent {
            agent: a.clone(),
            reason: e.to_string(),
        })?;
    }
    let (log, witnessed) = history::check_witnessed(db)?;
    let want = size.unwrap_or(log.events);
    let signers = checkpoint::cosigners(db, also)?;
    let broken: Vec<Problem> = log
        .problems
        .iter()
        .chain(&witnessed)
        .filter(|p| checkpoint::breaks_log(p))
        .cloned()
        .collect();
    let seen = |s: &checkpoint::Cosigner| s.newest.as_ref().is_some_and(|c| c.size >= want);
    let ok = broken.is_empty() && want <= log.events && signers.iter().all(seen);
    if out.json {
        out.print_json(&json!({
            "ok": ok,
            "size": want,
            "events": log.events,
            "origin": log.origin,
            "head": log.head,
            "agents": signers.iter().map(|s| json!({
                "agent": s.agent,
                "seen": seen(s),
                "newest": s.newest.as_ref().map(checkpoint::Checkpoint::to_json),
            })).collect::<Vec<_>>(),
            "problems": problems_json(&broken),
        }));
    } else {
        outln!(
            "checkpoints of {}: the log has {} events; asking for {want}",
            db.path.display(),
            log.events
        );
        let mut t = out.table(&["AGENT", "SIGNED SIZE", "AT (UTC)", "SEEN"]);
        for s in &signers {
            let (n, at) = s
                .newest
                .as_ref()
                .map_or(("-".to_owned(), "-".to_owned()), |c| {
                    (c.size.to_string(), c.at.clone())
                });
            let mark = if seen(s) {
                comfy_table::Cell::new("✓ yes").fg(comfy_table::Color::Green)
            } else {
                comfy_table::Cell::new("✗ NO").fg(comfy_table::Color::Red)
            };
            t.add_row(vec![
                comfy_table::Cell::new(clean(&s.agent)),
                comfy_table::Cell::new(n),
                comfy_table::Cell::new(at),
                mark,
            ]);
        }
        outln!("{t}");
        for p in &broken {
            out.line(style::REFUSED, &problem_line(p));
        }
        if want > log.events {
            out.line(
                style::REFUSED,
                &format!("✗ the log has only {} events", log.events),
            );
        }
        if ok {
            out.line(
                style::OK,
                &format!("✓ every agent has signed {want} events or more"),
            );
        } else if !broken.is_empty() {
            out.line(
                style::REFUSED,
                "✗ the log is not intact: no checkpoint of it means it was seen",
            );
        } else {
            let missing = signers.iter().filter(|s| !seen(s)).count();
            out.line(
                style::REFUSED,
                &format!("✗ {missing} agent(s) have not signed {want} events"),
            );
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_REFUSED })
}
