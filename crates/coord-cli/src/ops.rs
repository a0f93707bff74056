//! The write verbs: each is one call into coord-sql's write API (the same
//! SQL and compare-and-swap as the extension), shown for people or as JSON.

use coord_sql::ops::OpResult;
use serde_json::json;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{style, Out};
use coord_db::Db;

/// Refuses to write as `agent` without a key that can sign, so that "signs
/// by default" cannot silently become "wrote an unsigned row".
pub fn require_key(db: &Db, agent: &str) -> Result<(), CliError> {
    match db.coord.key_status(agent).reason() {
        None => Ok(()),
        Some(reason) => Err(CliError::CannotSign {
            agent: agent.to_owned(),
            reason,
        }),
    }
}

/// The JSON form of an operation's result.
pub fn result_json(r: &OpResult) -> serde_json::Value {
    json!({
        "op": r.op,
        "outcome": r.outcome.as_str(),
        "ok": r.outcome.is_success(),
        "task_id": r.task_id,
        "agent": r.agent,
        "holder": r.holder,
        "epoch": r.epoch,
        "expires_at": r.expires_at,
        "signed": r.signed,
        "message_id": r.message_id,
        "detail": r.detail,
    })
}

/// Shows the result of an operation and returns its exit code.
pub fn report(out: Out, r: Result<OpResult, coord_db::Error>) -> Result<u8, CliError> {
    let r = r?;
    if out.json {
        out.print_json(&result_json(&r));
    } else if r.outcome.is_success() {
        let signed = match r.signed {
            Some(true) => " [signed]",
            Some(false) => " [UNSIGNED: no key]",
            None => "",
        };
        let what = match r.message_id {
            Some(id) => format!("message {id} {}", r.detail),
            None => r.detail.clone(),
        };
        out.line(style::OK, &format!("✓ {what}{signed}"));
    } else if r.detail.starts_with("DENIED") {
        out.line(style::REFUSED, &r.detail);
    } else {
        out.line(
            style::REFUSED,
            &format!("{}: {}", r.outcome.as_str().to_uppercase(), r.detail),
        );
    }
    Ok(if r.outcome.is_success() {
        EXIT_OK
    } else {
        EXIT_REFUSED
    })
}
