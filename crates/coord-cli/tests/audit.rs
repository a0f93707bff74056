//! `coord audit` on the gptme fixture, on clean databases, and against a
//! file that tries to hide rows behind its own objects.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use common::Env;
use serde_json::Value;

fn findings(v: &Value) -> Vec<String> {
    let mut f: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["table"].as_str().unwrap() {
            "work" => format!("work:{}", f["task_id"].as_str().unwrap()),
            _ => format!("messages:{}", f["id"]),
        })
        .collect();
    f.sort();
    f
}

#[test]
fn finds_every_forged_and_tampered_row_in_the_fixture() {
    let e = Env::fixture();
    let v = e.json(1, &["audit"]);
    assert_eq!(v["ok"], false);
    assert_eq!(
        findings(&v),
        [
            "messages:6",
            "messages:8",
            "work:task:forged",
            "work:task:tampered-claimer",
            "work:task:tampered-epoch"
        ]
    );
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["verification"] == "bad_mac"));
    // Counts per status, from expected.json's verdicts: 7 claims and 4
    // messages verify; the never-claimed task is not counted.
    assert_eq!(v["work"]["verified"], 7);
    assert_eq!(v["work"]["bad_mac"], 3);
    assert_eq!(v["work"]["unsigned"], 1);
    assert_eq!(v["work"]["unknown_agent"], 1);
    assert_eq!(v["messages"]["verified"], 4);
    assert_eq!(v["messages"]["bad_mac"], 2);
    assert_eq!(v["messages"]["unsigned"], 1);
    assert_eq!(v["messages"]["unknown_agent"], 1);

    let out = e.expect(1, &["audit"]);
    for needle in [
        "task:forged",
        "task:tampered-epoch",
        "task:tampered-claimer",
        "message 6",
        "message 8",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    assert!(out.contains("5 row(s) failed"), "{out}");

    // --strict also fails the unsigned and unknown-agent rows.
    let v = e.json(1, &["audit", "--strict"]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 5 + 2 + 2);
}

#[test]
fn passes_on_a_clean_database() {
    let e = Env::new();
    let v = e.json(0, &["audit"]);
    assert_eq!(v["ok"], true);
    e.keygen("alice");
    e.keygen("bob");
    e.ok(&["submit", "never-claimed"]);
    e.ok(&["--as", "alice", "claim", "a"]);
    e.ok(&["--as", "bob", "claim", "b"]);
    e.ok(&["--as", "bob", "complete", "b"]);
    e.ok(&["--as", "alice", "send", "hi", "--to", "bob"]);
    let v = e.json(0, &["audit", "--strict"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["work"]["verified"], 2);
    assert_eq!(v["messages"]["verified"], 1);
    let out = e.ok(&["audit"]);
    assert!(out.contains("no forged or tampered rows"), "{out}");

    // One edit that keeps the old MAC (the stale-MAC trigger dropped first,
    // as a tamperer would) makes it fail.
    e.conn()
        .execute_batch(
            "DROP TRIGGER coord_work_stale_mac; UPDATE work SET epoch = 5 WHERE task_id = 'a'",
        )
        .unwrap();
    let v = e.json(1, &["audit"]);
    assert_eq!(findings(&v), ["work:a"]);
}

#[test]
fn objects_stored_in_the_file_cannot_hide_rows() {
    let e = Env::fixture();
    // A view in place of the table, showing only the good rows.
    e.conn()
        .execute_batch(
            "ALTER TABLE work RENAME TO work_real;
             CREATE VIEW work AS SELECT * FROM work_real WHERE task_id NOT LIKE 'task:%';",
        )
        .unwrap();
    let err = e.fails(2, &["audit"]);
    assert!(err.contains("view") && err.contains("work"), "{err}");

    // Views named like coord's own, and a trigger, stored in the file:
    // audit and list use this process's objects, not these.
    let e = Env::fixture();
    e.conn()
        .execute_batch(
            "CREATE VIEW coord_work AS SELECT task_id, 'verified' AS verification FROM work;
             CREATE VIEW coord_messages AS SELECT id, 'verified' AS verification FROM messages;",
        )
        .unwrap();
    let v = e.json(1, &["audit"]);
    assert_eq!(findings(&v).len(), 5);
    let rows = e.json(0, &["list"]);
    let forged = common::by(&rows, "task_id", "task:forged");
    assert_eq!(forged["verification"], "bad_mac");
}

/// The history attacks through `coord audit`: each names what happened.
fn history_problems(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v["history"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["witness"].as_array().unwrap())
        .map(|p| p["problem"].as_str().unwrap().to_owned())
        .collect();
    p.sort();
    p.dedup();
    p
}

fn with_history() -> Env {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&["submit", "t1"]);
    e.ok(&["--as", "alice", "claim", "t1"]);
    e.ok(&["submit", "t2"]);
    e.ok(&["--as", "alice", "claim", "t2"]);
    e.ok(&["--as", "alice", "complete", "t2", "--result", "done"]);
    e
}

#[test]
fn an_intact_log_audits_clean_and_is_witnessed() {
    let e = with_history();
    let v = e.json(0, &["--as", "alice", "audit"]);
    assert_eq!(v["history"]["events"], 5);
    assert_eq!(v["history"]["work_history"]["matches"], 2);
    assert!(history_problems(&v).is_empty(), "{v}");
    let state: Vec<_> = std::fs::read_dir(e.path().join("state/coord"))
        .unwrap()
        .collect();
    assert_eq!(state.len(), 2, "one file for the log, one for the database");
}

#[test]
fn each_history_attack_is_named_by_audit() {
    for (sql, want) in [
        ("DELETE FROM coord_events WHERE seq = 2", "gap"),
        ("DELETE FROM work WHERE task_id = 't1'", "deleted"),
        (
            "UPDATE work SET status = 'completed', result = 'bob' WHERE task_id = 't1'",
            "changed",
        ),
        (
            "UPDATE coord_events SET state = replace(state, 'done', 'forged') WHERE seq = 5",
            "bad_mac",
        ),
        (
            "UPDATE coord_events SET seq = 100 WHERE seq = 3; UPDATE coord_events SET seq = 3 WHERE seq = 4; UPDATE coord_events SET seq = 4 WHERE seq = 100",
            "broken",
        ),
    ] {
        let e = with_history();
        e.attack(sql);
        let v = e.json(1, &["--as", "alice", "audit"]);
        assert!(history_problems(&v).contains(&want.to_owned()), "{sql}: {v}");
        assert_eq!(v["ok"], false);
    }
}

#[test]
fn an_older_copy_of_the_file_is_a_rollback_to_a_client_that_saw_more() {
    let e = with_history();
    let old = e.path().join("old.db");
    std::fs::copy(&e.db, &old).unwrap();
    e.ok(&["--as", "alice", "claim", "t1"]);
    e.json(0, &["--as", "alice", "audit"]);
    // yesterday's copy put back: every row in it verifies
    std::fs::copy(&old, &e.db).unwrap();
    let _ = std::fs::remove_file(e.db.with_extension("db-wal"));
    let v = e.json(1, &["--as", "alice", "audit"]);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    assert_eq!(history_problems(&v), ["rollback"]);
    // and it stays reported: the witness keeps the newer head
    let v = e.json(1, &["--as", "alice", "audit"]);
    assert_eq!(history_problems(&v), ["rollback"]);
}

#[test]
fn an_event_with_bytes_where_text_belongs_is_named_not_an_error() {
    for sql in [
        "UPDATE coord_events SET agent = CAST(x'ff' AS TEXT) WHERE seq = 2",
        "UPDATE coord_events SET op = CAST('claim' AS BLOB) WHERE seq = 2",
    ] {
        let e = with_history();
        e.ok(&["list"]); // the witness has seen the log
        e.attack(sql);
        let v = e.json(1, &["--as", "alice", "audit"]);
        let p = history_problems(&v);
        assert!(p.contains(&"broken".to_owned()), "{sql}: {v}");
        // and a read warns instead of failing
        let o = e.run(&["list"]);
        assert_eq!(o.status.code(), Some(0), "{sql}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("not checked"), "{sql}: {err}");
    }
}

#[test]
fn init_says_when_it_puts_back_a_dropped_append_only_trigger() {
    let e = with_history();
    let v = e.json(0, &["init"]);
    assert_eq!(v["restored_triggers"].as_array().unwrap().len(), 0, "{v}");
    e.attack("DELETE FROM coord_events WHERE seq = 5");
    let v = e.json(0, &["init"]);
    let mut got: Vec<&str> = v["restored_triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, ["coord_events_no_delete", "coord_events_no_update"]);
    let out = e.ok(&["init"]);
    assert!(
        out.contains("coord schema ready in"),
        "{out}: put back once"
    );
    // a fresh database and a gptme one get their triggers created, not restored
    let fresh = Env::empty();
    let v = fresh.json(0, &["init"]);
    assert_eq!(v["restored_triggers"].as_array().unwrap().len(), 0);
}
