//! `coord checkpoint`: agents cosign the log's size and head only after
//! checking it, and `--check` answers "has every agent seen this head?",
//! counting no forged, truncated or forked checkpoint.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use common::Env;
use serde_json::Value;

fn two_agents() -> Env {
    let e = Env::new();
    e.keygen("alice");
    e.keygen("bob");
    e.ok(&["submit", "t1"]);
    e.ok(&["--as", "alice", "claim", "t1"]);
    e.ok(&["--as", "bob", "send", "on it?", "--to", "alice"]);
    e.ok(&["--as", "alice", "complete", "t1", "--result", "done"]);
    e
}

fn checkpoints(e: &Env) -> i64 {
    e.conn()
        .query_row("SELECT count(*) FROM coord_checkpoints", [], |r| r.get(0))
        .unwrap()
}

fn seen(v: &Value) -> Vec<(String, bool)> {
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["agent"].as_str().unwrap().to_owned(), a["seen"] == true))
        .collect()
}

#[test]
fn every_agent_in_the_log_cosigns_and_check_says_so() {
    let e = two_agents();
    let v = e.json(1, &["checkpoint", "--check"]);
    assert_eq!(v["size"], 4);
    assert_eq!(
        seen(&v),
        [("alice".into(), false), ("bob".into(), false)],
        "{v}"
    );

    let a = e.json(0, &["--as", "alice", "checkpoint"]);
    assert_eq!(a["signed"], true);
    assert_eq!(a["checkpoint"]["size"], 4);
    assert_eq!(a["checkpoint"]["agent"], "alice");
    let v = e.json(1, &["checkpoint", "--check"]);
    assert_eq!(seen(&v), [("alice".into(), true), ("bob".into(), false)]);

    let b = e.json(0, &["--as", "bob", "checkpoint"]);
    assert_eq!(b["checkpoint"]["head"], a["checkpoint"]["head"]);
    let v = e.json(0, &["checkpoint", "--check"]);
    assert_eq!(v["ok"], true);
    assert!(e
        .ok(&["checkpoint", "--check"])
        .contains("every agent has signed 4 events"));

    // an agent named by the operator who never signed
    let v = e.json(1, &["checkpoint", "--check", "--agent", "carol"]);
    assert_eq!(seen(&v)[2], ("carol".into(), false));
    // more than the log has is never seen
    let v = e.json(1, &["checkpoint", "--check", "--size", "5"]);
    assert_eq!(v["ok"], false);

    // the log grows: the default question is the new size, an old size
    // is still answered
    e.ok(&["--as", "bob", "send", "next"]);
    e.json(1, &["checkpoint", "--check"]);
    e.json(0, &["checkpoint", "--check", "--size", "4"]);
    // and signatures are in the audit, verified
    let v = e.json(0, &["audit"]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_forged_or_replayed_checkpoint_counts_for_nothing() {
    let e = two_agents();
    e.ok(&["--as", "alice", "checkpoint"]);
    // mallory (who can write the file, holding no key) plants bob's
    // checkpoint: alice's MAC under bob's name, then a made-up one
    e.attack("INSERT INTO coord_checkpoints(agent, origin, size, head, at, hmac)
           SELECT 'bob', origin, size, head, at, hmac FROM coord_checkpoints WHERE agent = 'alice';
         INSERT INTO coord_checkpoints(agent, origin, size, head, at, hmac)
           SELECT 'bob', origin, size, head, at, 'AAAA' FROM coord_checkpoints WHERE agent = 'alice';",
    );
    let v = e.json(1, &["checkpoint", "--check"]);
    assert_eq!(seen(&v), [("alice".into(), true), ("bob".into(), false)]);
    let v = e.json(1, &["audit"]);
    let bad = v["history"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["problem"] == "bad_mac" && p["detail"].as_str().unwrap().contains("bob"))
        .count();
    assert_eq!(bad, 2, "{v}");
}

#[test]
fn a_truncated_log_contradicts_the_checkpoints_even_for_a_new_reader() {
    let e = two_agents();
    e.ok(&["--as", "alice", "checkpoint"]);
    e.ok(&["--as", "bob", "checkpoint"]);
    // the newest event and the completion it made are undone by hand
    e.attack("DELETE FROM coord_events WHERE seq = 4;
         UPDATE work SET status = 'claimed', result = NULL, completed_at = NULL WHERE task_id = 't1';",
    );
    // a reader with no witness of its own: the cosigned checkpoints say
    // the log was longer
    let fresh = e.path().join("fresh-state");
    let out = e
        .cmd(&["--json", "checkpoint", "--check"])
        .env("XDG_STATE_HOME", &fresh)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["problem"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["checkpoint_ahead", "checkpoint_ahead"], "{v}");
    assert_eq!(seen(&v), [("alice".into(), false), ("bob".into(), false)]);
    // and nobody signs the shorter log
    let n = checkpoints(&e);
    let o = e
        .cmd(&["--as", "alice", "checkpoint"])
        .env("XDG_STATE_HOME", &fresh)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("CHECKPOINT AHEAD"));
    assert_eq!(checkpoints(&e), n);
}

#[test]
fn nobody_signs_a_broken_or_rolled_back_log() {
    for sql in [
        "DELETE FROM coord_events WHERE seq = 2",
        "UPDATE coord_events SET state = replace(state, 'done', 'forged') WHERE seq = 4",
    ] {
        let e = two_agents();
        e.attack(sql);
        let v = e.json(1, &["--as", "alice", "checkpoint"]);
        assert_eq!(v["signed"], false, "{sql}: {v}");
        assert!(!v["problems"].as_array().unwrap().is_empty());
        assert_eq!(checkpoints(&e), 0, "{sql}");
    }

    // an older copy of the file, after alice's witness saw the newer one
    let e = two_agents();
    let old = e.path().join("old.db");
    std::fs::copy(&e.db, &old).unwrap();
    e.ok(&["--as", "alice", "claim", "t1"]);
    e.ok(&["--as", "alice", "checkpoint"]);
    std::fs::copy(&old, &e.db).unwrap();
    let _ = std::fs::remove_file(e.db.with_extension("db-wal"));
    let out = e.expect(1, &["--as", "alice", "checkpoint"]);
    assert!(out.contains("ROLLBACK"), "{out}");
    assert!(out.contains("alice did not sign"), "{out}");
    assert_eq!(checkpoints(&e), 0);
    let v = e.json(1, &["checkpoint", "--check"]);
    assert_eq!(v["problems"][0]["problem"], "rollback");
}

#[test]
fn bad_requests_get_clear_errors_and_write_nothing() {
    let e = Env::new();
    e.keygen("alice");
    // an empty log has nothing to sign
    let v = e.json(1, &["--as", "alice", "checkpoint"]);
    assert_eq!(v["reason"], "the log has no events");
    e.ok(&["submit", "t1"]);
    // no agent, no key, a bad agent id
    assert!(e.fails(2, &["checkpoint"]).contains("no agent given"));
    assert!(e
        .fails(2, &["--as", "bob", "checkpoint"])
        .contains("cannot sign as 'bob'"));
    assert!(e
        .fails(2, &["checkpoint", "--check", "--agent", "../x"])
        .contains("invalid agent id"));
    // --size without --check is a usage error
    let o = e.run(&["--as", "alice", "checkpoint", "--size", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(checkpoints(&e), 0);
}
