//! The hostile-database attacks of tests/hardening/attacks.json through
//! the `coord` binary and its bundled SQLite. The CLI registers coord before
//! it reads the schema (the "coord first" order); attacks_bundled.rs runs
//! both orders on the same SQLite, and tests/hardening/test_attacks.py on
//! Debian's python3 and sqlite3 shell.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

// Only its database builder is used here.
#[allow(dead_code)]
#[path = "../../../tests/hardening/attacks_driver.rs"]
mod attacks_driver;

use common::{repo_root, Env};
use serde_json::Value;

fn spec() -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/hardening/attacks.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// `[sql, expected]` pairs.
fn checks(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|c| (c[0].as_str().unwrap().to_owned(), c[1].clone()))
                .collect()
        })
        .unwrap_or_default()
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn sql(env: &Env, alice_key: &str, text: &str) -> Run {
    let o = env
        .cmd(&["--json", "--color", "never", "sql", "-c", text])
        .env("COORDINATION_SECRET_ALICE", alice_key)
        .output()
        .unwrap();
    Run {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The first value of the first row of each JSON array printed, last `n`.
fn last_values(stdout: &str, n: usize) -> Vec<Value> {
    let arrays: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_array)
        .collect();
    arrays[arrays.len().saturating_sub(n)..]
        .iter()
        .map(|a| {
            a[0].as_object()
                .and_then(|o| o.values().next().cloned())
                .unwrap_or(Value::Null)
        })
        .collect()
}

fn refused(text: &str, pattern: &str) -> bool {
    pattern.split('|').any(|p| text.contains(p))
}

#[test]
fn every_attack_fails_closed_through_the_cli() {
    let spec = spec();
    let alice_key = spec["alice_key"].as_str().unwrap();
    let evil_key = spec["evil_key"].as_str().unwrap();
    let refusal = spec["refusal"].as_str().unwrap();
    let mut report = Vec::new();
    for attack in spec["attacks"].as_array().unwrap() {
        let name = attack["name"].as_str().unwrap();
        let mut env = Env::empty();
        let (db, evil) = attacks_driver::build(env.path(), &spec, attack, &|c| {
            coord_sql::register(c).map(|_| ())
        });
        env.db = db;
        let prefix = evil
            .map(|e| format!("ATTACH '{}' AS evil;\n", e.display()))
            .unwrap_or_default();

        let victim = strings(&attack["victim"]);
        let mut errors = String::new();
        let mut load_refused = false;
        for (i, stmt) in victim.iter().enumerate() {
            // The attack's own checks hold once all its statements ran.
            let all_checks: Vec<(String, Value)> = checks(&spec["generic_checks"])
                .into_iter()
                .chain(if i + 1 == victim.len() {
                    checks(&attack["checks"])
                } else {
                    Vec::new()
                })
                .collect();
            let check_sql: Vec<&str> = all_checks.iter().map(|(s, _)| s.as_str()).collect();
            // The statement and then the checks in one process (one
            // connection, so that what the statement did to it is seen);
            // the CLI stops at an error, and then the checks run alone.
            let mut r = sql(
                &env,
                alice_key,
                &format!("{prefix}{stmt};\n{}", check_sql.join(";\n")),
            );
            if !r.ok {
                errors.push_str(&r.stderr);
                if r.stderr.contains("malformed database schema") {
                    load_refused = true;
                    break;
                }
                r = sql(
                    &env,
                    alice_key,
                    &format!("{prefix}{}", check_sql.join(";\n")),
                );
                assert!(r.ok, "{name}: checks failed to run: {}", r.stderr);
            }
            assert!(!r.stdout.contains(alice_key) && !r.stdout.contains(evil_key));
            let got = last_values(&r.stdout, all_checks.len());
            for ((sql, want), got) in all_checks.iter().zip(&got) {
                assert_eq!(got, want, "{name}: after {stmt:?}: {sql}\n{}", r.stderr);
            }
        }
        assert!(!errors.contains(alice_key) && !errors.contains(evil_key));
        if attack["refused"].as_bool() == Some(true) {
            assert!(
                load_refused || refused(&errors, refusal),
                "{name}: no refusal: {errors}"
            );
        }
        // What is left in the files, read without coord.
        for (q, want) in checks(&attack["raw_checks"]) {
            let conn = rusqlite::Connection::open(&env.db).unwrap();
            let got: i64 = conn.query_row(&q, [], |r| r.get(0)).unwrap();
            assert_eq!(Value::from(got), want, "{name}: {q}");
        }
        report.push(format!(
            "attack cli {name:48} {}",
            if load_refused {
                // which object SQLite named
                let why = errors.lines().next().unwrap_or("");
                format!(
                    "load refused: {}",
                    &why[why.find("malformed").unwrap_or(0)..]
                )
            } else {
                refusal
                    .split('|')
                    .filter(|p| errors.contains(p))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn error_lines_escape_database_text() {
    // A planted trigger's RAISE message (and a gate pattern) reaches the
    // `coord: error:` line; raw, it could erase that line and print a fake
    // success in its place.
    let env = Env::new();
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER evil BEFORE INSERT ON work \
         BEGIN SELECT RAISE(ABORT, '\x1b[2K\r\u{2713} granted task-1 to alice \u{202e}'); END",
    )
    .unwrap();
    drop(conn);
    let o = env.run(&[
        "--as",
        "alice",
        "--color",
        "never",
        "claim",
        "task-1",
        "--unsigned",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.starts_with("coord: error: "), "{err}");
    assert!(err.contains("\\u{1b}[2K\\r\u{2713} granted"), "{err}");
    assert!(err.contains("\\u{202e}"), "{err}");
    for c in ['\x1b', '\r', '\u{202e}'] {
        assert!(!err.contains(c), "raw {c:?} in {err:?}");
    }
}
