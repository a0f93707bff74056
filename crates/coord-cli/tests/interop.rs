//! Interop both ways: with rows gptme-coordination wrote (the fixture),
//! with the MAC formula it uses, and with the sqlite3 CLI plus coord's
//! loadable extension.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use common::{by, fixture_dir, repo_root, Env};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn reads_what_gptme_coordination_wrote() {
    let e = Env::fixture();
    let want = expected();
    let rows = e.json(0, &["list", "all"]);
    let work = want["work"].as_object().unwrap();
    assert_eq!(rows.as_array().unwrap().len(), work.len());
    for (task, ok) in work {
        let r = by(&rows, "task_id", task);
        assert_eq!(&r["verified"], ok, "work {task}: {r}");
    }
    let msgs = e.json(0, &["inbox", "--all"]);
    let m = want["messages"].as_object().unwrap();
    assert_eq!(msgs.as_array().unwrap().len(), m.len());
    for (id, ok) in m {
        let r = by(&msgs, "id", id);
        assert_eq!(&r["verified"], ok, "message {id}: {r}");
    }
    // alice's inbox: to her or broadcast.
    let inbox = e.json(0, &["--as", "alice", "inbox"]);
    for r in inbox.as_array().unwrap() {
        assert!(r["recipient"] == "alice" || r["recipient"].is_null(), "{r}");
    }
    assert_eq!(inbox.as_array().unwrap().len(), 7);
}

/// gptme-coordination's JSON: `json.dumps(fields, sort_keys=True,
/// separators=(",", ":"))` with `ensure_ascii=True`, written out here
/// independently of coord-core.
fn py_dumps(fields: &[Value]) -> String {
    let mut s = String::from("[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match f {
            Value::Number(n) => s.push_str(&n.to_string()),
            Value::String(t) => {
                s.push('"');
                for c in t.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        '\n' => s.push_str("\\n"),
                        '\r' => s.push_str("\\r"),
                        '\t' => s.push_str("\\t"),
                        '\u{8}' => s.push_str("\\b"),
                        '\u{c}' => s.push_str("\\f"),
                        c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                            let mut buf = [0u16; 2];
                            for u in c.encode_utf16(&mut buf) {
                                s.push_str(&format!("\\u{u:04x}"));
                            }
                        }
                        c => s.push(c),
                    }
                }
                s.push('"');
            }
            other => panic!("unexpected field {other}"),
        }
    }
    s.push(']');
    s
}

fn python_mac(secret_file: &std::path::Path, fields: &[Value]) -> String {
    let key = std::fs::read_to_string(secret_file).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.trim().as_bytes()).unwrap();
    mac.update(py_dumps(fields).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[test]
fn what_coord_writes_verifies_as_gptme_coordination_computes_it() {
    let e = Env::fixture();
    // Sanity: the formula above accepts a row the Python package signed.
    let c = e.conn();
    let (claimer, task, epoch, exp, mac): (String, String, i64, String, String) = c
        .query_row(
            "SELECT claimer, task_id, epoch, expires_at, hmac FROM work WHERE task_id = 'café-naïve'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let alice = e.secrets.join("alice.secret");
    assert_eq!(
        python_mac(
            &alice,
            &[claimer.into(), task.into(), epoch.into(), exp.into()]
        ),
        mac
    );

    // coord writes into the gptme database (adding its schema on first
    // write), and each MAC is the one gptme-coordination would compute.
    let task = "interop:ünï\"code\"\t☃";
    let r = e.json(0, &["--as", "alice", "claim", task]);
    assert_eq!(r["outcome"], "granted");
    let bob = "bob-autonomous-opus-3a9f";
    e.ok(&[
        "--as",
        bob,
        "send",
        "über \\ \"done\"\n",
        "--to",
        "alice",
        "--channel",
        "ops",
    ]);
    e.ok(&["--as", bob, "send", "to all"]);
    // Renewal re-signs with the new expiry.
    e.ok(&["--as", "alice", "claim", task, "--ttl", "120"]);

    let (claimer, epoch, exp, mac): (String, i64, String, String) = c
        .query_row(
            "SELECT claimer, epoch, expires_at, hmac FROM work WHERE task_id = ?1",
            [task],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        python_mac(
            &alice,
            &[claimer.into(), task.into(), epoch.into(), exp.into()]
        ),
        mac
    );
    let mut st = c
        .prepare("SELECT sender, COALESCE(recipient, ''), channel, body, hmac FROM messages WHERE id > 8 ORDER BY id")
        .unwrap();
    let msgs: Vec<(String, String, String, String, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(msgs.len(), 2);
    for (s, to, ch, body, mac) in msgs {
        let key = e.secrets.join(format!("{s}.secret"));
        assert_eq!(
            python_mac(&key, &[s.into(), to.into(), ch.into(), body.into()]),
            mac
        );
    }
}

fn extension() -> PathBuf {
    let so = repo_root().join("target/release/libcoord.so");
    assert!(
        so.exists(),
        "{} is missing: run tests/cli.sh (it builds it with `cargo build --release -p coord-sqlite`)",
        so.display()
    );
    so
}

/// Runs `sql` in the sqlite3 CLI with coord's extension loaded, as `agent`.
fn sqlite3(e: &Env, agent: &str, sql: &str) -> String {
    let o = Command::new("/usr/bin/sqlite3")
        .arg("-bail")
        .arg(&e.db)
        .arg(format!(
            ".load {}",
            extension().with_extension("").display()
        ))
        .arg(sql)
        .env_remove("COORDINATION_DB")
        .env("COORDINATION_SECRETS_DIR", &e.secrets)
        .env("COORDINATION_AGENT", agent)
        .current_dir(e.path())
        .output()
        .expect("/usr/bin/sqlite3 must be installed");
    assert!(
        o.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn rows_written_by_the_sqlite3_extension_verify_in_coord() {
    let e = Env::empty();
    e.keygen("alice");
    e.keygen("bob");
    sqlite3(
        &e,
        "alice",
        "PRAGMA journal_mode=WAL; SELECT coord_init();
         BEGIN IMMEDIATE; INSERT INTO coord_claim(task_id, ttl_minutes) VALUES ('from-sqlite3', 30); COMMIT;
         INSERT INTO coord_send(recipient, body) VALUES ('bob', 'hello from sqlite3');",
    );
    let rows = e.json(0, &["list"]);
    let r = by(&rows, "task_id", "from-sqlite3");
    assert_eq!(
        (r["claimer"].as_str(), r["verification"].as_str()),
        (Some("alice"), Some("verified"))
    );
    let m = e.json(0, &["--as", "bob", "inbox"]);
    assert_eq!(m[0]["body"], "hello from sqlite3");
    assert_eq!(m[0]["verification"], "verified");
    // The same compare-and-swap: coord sees the extension's claim as live.
    let d = e.json(1, &["--as", "bob", "claim", "from-sqlite3"]);
    assert_eq!(
        (d["outcome"].as_str(), d["holder"].as_str()),
        (Some("denied"), Some("alice"))
    );
    e.json(0, &["audit", "--strict"]);
}

#[test]
fn rows_written_by_coord_verify_in_the_sqlite3_extension() {
    let e = Env::new();
    e.keygen("alice");
    e.keygen("bob");
    e.ok(&["--as", "alice", "claim", "from-coord"]);
    e.ok(&["--as", "alice", "send", "hello from coord", "--to", "bob"]);
    let out = sqlite3(
        &e,
        "bob",
        "SELECT task_id || '|' || verification FROM coord_work;
         SELECT body || '|' || verification FROM coord_inbox;",
    );
    assert_eq!(out, "from-coord|verified\nhello from coord|verified\n");
    // And the extension's CAS sees coord's claim.
    let out = sqlite3(
        &e,
        "bob",
        "BEGIN IMMEDIATE; INSERT INTO coord_claim(task_id) VALUES ('from-coord');
         SELECT outcome || '|' || holder FROM coord_result; COMMIT;",
    );
    assert_eq!(out, "denied|alice\n");
}
