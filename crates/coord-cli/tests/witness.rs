//! The witness on every read: `list`, `inbox` and `status` check, at the
//! cost of what the log grew by, that the log extends what this client saw
//! before, and warn (stderr, and `status --json`) when it does not.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use common::Env;
use serde_json::Value;

fn setup() -> Env {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&["submit", "t1"]);
    e.ok(&["--as", "alice", "claim", "t1"]);
    e.ok(&["--as", "alice", "send", "hi"]);
    e
}

/// Runs a read; returns (exit code, stdout, the warnings on stderr).
fn read(e: &Env, args: &[&str]) -> (i32, String, Vec<String>) {
    let o = e.run(args);
    let err = String::from_utf8(o.stderr).unwrap();
    let warnings = err
        .lines()
        .filter(|l| l.starts_with("coord: warning: "))
        .map(str::to_owned)
        .collect();
    (
        o.status.code().unwrap(),
        String::from_utf8(o.stdout).unwrap(),
        warnings,
    )
}

fn witness_size(e: &Env) -> i64 {
    let dir = e.path().join("state/coord");
    let f = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log-"))
        .unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
    v["size"].as_i64().unwrap()
}

#[test]
fn every_read_remembers_the_head_and_warns_of_an_older_copy() {
    let e = setup();
    let (code, _, w) = read(&e, &["list"]);
    assert_eq!((code, w.len()), (0, 0), "{w:?}");
    assert_eq!(witness_size(&e), 3);
    let old = e.path().join("old.db");
    std::fs::copy(&e.db, &old).unwrap();
    e.ok(&["--as", "alice", "claim", "t1"]);
    read(&e, &["--as", "alice", "inbox"]);
    assert_eq!(witness_size(&e), 4);

    std::fs::copy(&old, &e.db).unwrap();
    let _ = std::fs::remove_file(e.db.with_extension("db-wal"));
    for args in [
        &["list"][..],
        &["--as", "alice", "inbox"],
        &["status"],
        &["--json", "list"],
    ] {
        let (code, out, w) = read(&e, args);
        // the read still shows what is there, and says what is wrong
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("t1") || out.contains("hi"), "{args:?}: {out}");
        assert_eq!(w.len(), 1, "{args:?}: {w:?}");
        assert!(
            w[0].contains("ROLLBACK") && w[0].contains("saw 4 events"),
            "{w:?}"
        );
    }
    let v = e.json(0, &["status"]);
    assert_eq!(v["witness"][0]["problem"], "rollback");
    // the witness keeps the newer head until someone looks
    assert_eq!(witness_size(&e), 4);
}

#[test]
fn new_events_must_follow_on_from_the_one_seen() {
    for (sql, want) in [
        ("DELETE FROM coord_events WHERE seq = 4", "GAP"),
        (
            "UPDATE coord_events SET state = replace(state, 'alice', 'mallory') WHERE seq = 5",
            "BAD MAC",
        ),
        ("UPDATE coord_events SET prev = 'x' WHERE seq = 4", "BROKEN"),
    ] {
        let e = setup();
        read(&e, &["list"]);
        e.ok(&["--as", "alice", "claim", "t1"]);
        e.ok(&["--as", "alice", "send", "again"]);
        e.attack(sql);
        let (code, _, w) = read(&e, &["list"]);
        assert_eq!(code, 0);
        assert_eq!(w.len(), 1, "{sql}: {w:?}");
        assert!(w[0].contains(want), "{sql}: {w:?}");
        // remembered only up to the last good event: seen again next time
        assert!(witness_size(&e) < 5, "{sql}");
        assert_eq!(read(&e, &["list"]).2.len(), 1, "{sql}");
    }
}

#[test]
fn a_rewritten_old_event_or_another_log_is_named() {
    // the event the witness saw last was rewritten
    let e = setup();
    read(&e, &["list"]);
    e.attack("UPDATE coord_events SET at = '2000-01-01 00:00:00' WHERE seq = 3");
    let (_, _, w) = read(&e, &["list"]);
    assert!(w.len() == 1 && w[0].contains("FORK"), "{w:?}");

    // a different database put at the same path
    let e = setup();
    read(&e, &["list"]);
    let other = Env::new();
    other.keygen("alice");
    other.ok(&["submit", "t9"]);
    std::fs::copy(&other.db, &e.db).unwrap();
    let _ = std::fs::remove_file(e.db.with_extension("db-wal"));
    let (_, _, w) = read(&e, &["list"]);
    assert!(w.len() == 1 && w[0].contains("REPLACED"), "{w:?}");
}

#[test]
fn a_witness_that_cannot_be_written_warns_and_the_read_goes_on() {
    let e = setup();
    // a file where the witness's directory should be
    let state = e.path().join("blocked");
    std::fs::write(&state, "not a directory").unwrap();
    let o = e
        .cmd(&["list"])
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("t1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("coord: warning: the witness was not checked"),
        "{err}"
    );
}

#[test]
fn a_first_read_checks_the_whole_log_on_every_core() {
    for (sql, want) in [
        ("DELETE FROM coord_events WHERE seq = 2", "GAP"),
        (
            "UPDATE coord_events SET state = replace(state, 'alice', 'mallory') WHERE seq = 3",
            "BAD MAC",
        ),
    ] {
        let e = setup();
        e.attack(sql);
        // no witness yet: the parallel replay reads it all, and stops at
        // the first event that does not follow on
        let (code, _, w) = read(&e, &["list"]);
        assert_eq!(code, 0);
        assert!(w.len() == 1 && w[0].contains(want), "{sql}: {w:?}");
        let seen = witness_size(&e);
        assert!(seen < 3, "{sql}: remembered {seen}");
    }
    // an intact log is remembered whole
    let e = setup();
    assert!(read(&e, &["list"]).2.is_empty());
    assert_eq!(witness_size(&e), 3);
}
