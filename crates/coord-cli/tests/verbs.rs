//! Every verb and every exit code, through the built binary.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use common::{by, Env};

#[test]
fn claim_renew_deny_complete_abandon() {
    let e = Env::new();
    e.keygen("alice");
    e.keygen("bob");

    let r = e.json(0, &["submit", "t1", "--metadata", "m"]);
    assert_eq!(
        (r["outcome"].as_str(), r["ok"].as_bool()),
        (Some("submitted"), Some(true))
    );
    let r = e.json(0, &["submit", "t1"]);
    assert_eq!(r["outcome"], "exists");

    let r = e.json(0, &["--as", "alice", "claim", "t1", "--ttl", "30"]);
    assert_eq!(r["outcome"], "granted");
    assert_eq!(r["epoch"], 1);
    assert_eq!(r["signed"], true);
    assert_eq!(r["agent"], "alice");
    let exp = r["expires_at"].as_str().unwrap().to_owned();

    // Renewing keeps the epoch and moves the expiry.
    let r = e.json(0, &["--as", "alice", "claim", "t1", "--ttl", "90"]);
    assert_eq!(
        (r["outcome"].as_str(), r["epoch"].as_i64()),
        (Some("renewed"), Some(1))
    );
    let renewed = r["expires_at"].as_str().unwrap().to_owned();
    assert!(renewed > exp, "{renewed} > {exp}");

    // A denied claim prints DENIED with the holder and expiry and exits 1.
    let out = e.expect(1, &["--as", "bob", "claim", "t1"]);
    assert!(out.starts_with("DENIED"), "{out}");
    assert!(out.contains("alice") && out.contains(&renewed), "{out}");
    let r = e.json(1, &["--as", "bob", "claim", "t1"]);
    assert_eq!(r["outcome"], "denied");
    assert_eq!(r["holder"], "alice");
    assert_eq!(r["expires_at"], renewed.as_str());

    let r = e.json(1, &["--as", "bob", "complete", "t1"]);
    assert_eq!(r["outcome"], "not_holder");
    let r = e.json(1, &["--as", "alice", "complete", "t1", "--epoch", "7"]);
    assert_eq!(r["outcome"], "lost_lease");
    let r = e.json(1, &["--as", "alice", "complete", "nope"]);
    assert_eq!(r["outcome"], "unknown_task");
    let r = e.json(
        0,
        &[
            "--as", "alice", "complete", "t1", "--epoch", "1", "--result", "shipped",
        ],
    );
    assert_eq!(r["outcome"], "completed");
    let r = e.json(1, &["--as", "alice", "complete", "t1"]);
    assert_eq!(r["outcome"], "not_claimed");

    let row = e.json(0, &["list", "all"]);
    let t1 = by(&row, "task_id", "t1");
    assert_eq!(t1["status"], "completed");
    assert_eq!(t1["result"], "shipped");
    assert_eq!(t1["metadata"], "m");
    assert_eq!(t1["verification"], "verified");

    // Abandon: only the holder; then the task is claimable, epoch up.
    e.ok(&["--as", "bob", "claim", "t2"]);
    let r = e.json(1, &["--as", "alice", "abandon", "t2"]);
    assert_eq!(r["outcome"], "not_holder");
    let r = e.json(1, &["--as", "bob", "abandon", "t2", "--epoch", "2"]);
    assert_eq!(r["outcome"], "lost_lease");
    let r = e.json(0, &["--as", "bob", "abandon", "t2"]);
    assert_eq!(r["outcome"], "abandoned");
    let r = e.json(1, &["--as", "bob", "abandon", "t2"]);
    assert_eq!(r["outcome"], "not_claimed");
    let r = e.json(1, &["--as", "bob", "abandon", "nope"]);
    assert_eq!(r["outcome"], "unknown_task");
    let avail = e.json(0, &["list", "available"]);
    assert_eq!(avail.as_array().unwrap().len(), 1);
    assert_eq!(avail[0]["task_id"], "t2");
    let r = e.json(0, &["--as", "alice", "claim", "t2"]);
    assert_eq!(
        (r["outcome"].as_str(), r["epoch"].as_i64()),
        (Some("granted"), Some(2))
    );

    // The human forms.
    let out = e.ok(&["--as", "alice", "claim", "t3"]);
    assert!(
        out.contains("granted t3 to alice at epoch 1") && out.contains("[signed]"),
        "{out}"
    );
    let out = e.expect(1, &["--as", "bob", "complete", "t3"]);
    assert!(out.starts_with("NOT_HOLDER:"), "{out}");
}

#[test]
fn expiry_and_handoff() {
    let e = Env::new();
    e.keygen("alice");
    e.keygen("bob");
    e.ok(&["--as", "alice", "claim", "h", "--ttl", "0.02"]);
    // Time itself is under test: the claim lasts 1.2 s, datetime() has
    // one-second resolution, and a claim is live through its expiry second
    // (as in gptme), so it has expired at most 2.2 s after the claim.
    std::thread::sleep(std::time::Duration::from_millis(2600));
    let expired = e.json(0, &["list", "expired"]);
    assert_eq!(by(&expired, "task_id", "h")["state"], "expired");
    assert_eq!(e.json(0, &["list", "claimed"]).as_array().unwrap().len(), 0);
    let r = e.json(1, &["--as", "alice", "complete", "h"]);
    assert_eq!(r["outcome"], "expired");
    let r = e.json(0, &["--as", "bob", "claim", "h"]);
    assert_eq!(
        (r["outcome"].as_str(), r["epoch"].as_i64()),
        (Some("granted"), Some(2))
    );
    let r = e.json(1, &["--as", "alice", "complete", "h", "--epoch", "1"]);
    assert_eq!(r["outcome"], "lost_lease");
    let claimed = e.json(0, &["list", "claimed", "--agent", "bob"]);
    let h = by(&claimed, "task_id", "h");
    assert_eq!(
        (h["claimer"].as_str(), h["epoch"].as_i64()),
        (Some("bob"), Some(2))
    );
    assert_eq!(h["verified"], true);
    assert_eq!(
        e.json(0, &["list", "claimed", "--agent", "alice"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn send_and_inbox() {
    let e = Env::new();
    e.keygen("alice");
    e.keygen("bob");
    e.keygen("carol");
    let r = e.json(0, &["--as", "alice", "send", "to bob", "--to", "bob"]);
    assert_eq!(
        (r["outcome"].as_str(), r["signed"].as_bool()),
        (Some("sent"), Some(true))
    );
    assert_eq!(r["message_id"], 1);
    e.ok(&["--as", "alice", "send", "to all"]);
    e.ok(&["--as", "bob", "send", "ops only", "--channel", "ops"]);
    e.ok(&["--as", "alice", "send", "to carol", "--to", "carol"]);

    let bob = e.json(0, &["--as", "bob", "inbox"]);
    let bodies: Vec<&str> = bob
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["to bob", "to all", "ops only"]);
    let m = by(&bob, "body", "to bob");
    assert_eq!(
        (m["sender"].as_str(), m["recipient"].as_str()),
        (Some("alice"), Some("bob"))
    );
    assert_eq!(
        (m["channel"].as_str(), m["verification"].as_str()),
        (Some("general"), Some("verified"))
    );
    assert!(by(&bob, "body", "to all")["recipient"].is_null());

    let ops = e.json(0, &["--as", "carol", "inbox", "--channel", "ops"]);
    assert_eq!(ops.as_array().unwrap().len(), 1);
    assert_eq!(ops[0]["body"], "ops only");
    let all = e.json(0, &["inbox", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    let last = e.json(0, &["inbox", "--all", "--limit", "2"]);
    let ids: Vec<i64> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    let out = e.ok(&["--as", "bob", "inbox"]);
    assert!(
        out.contains("✓ verified") && out.contains("(everyone)"),
        "{out}"
    );
    e.fails(2, &["inbox"]);
    e.fails(2, &["--as", "alice", "send", "x", "--to", "../etc"]);
}

#[test]
fn status_reports_counts_and_key() {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&["submit", "a"]);
    e.ok(&["--as", "alice", "claim", "b"]);
    e.ok(&["--as", "alice", "send", "hi"]);
    let s = e.json(0, &["--as", "alice", "status"]);
    assert_eq!(s["tasks"]["available"], 1);
    assert_eq!(s["tasks"]["claimed"], 1);
    assert_eq!(s["key"]["can_sign"], true);
    assert_eq!(s["work_verification"]["verified"], 1);
    assert_eq!(s["message_verification"]["verified"], 1);
    assert_eq!(s["live_claims"][0]["task_id"], "b");
    let out = e.ok(&["--as", "alice", "status"]);
    assert!(
        out.contains("can sign") && out.contains("1 claimed"),
        "{out}"
    );
    let s = e.json(0, &["--as", "nokey", "status"]);
    assert_eq!(s["key"]["can_sign"], false);
}

#[test]
fn signing_is_the_default() {
    let e = Env::new();
    // No key: refused with what to do, nothing written.
    let err = e.fails(2, &["--as", "alice", "claim", "t"]);
    assert!(
        err.contains("coord keygen alice") && err.contains("--unsigned"),
        "{err}"
    );
    assert_eq!(e.json(0, &["list"]).as_array().unwrap().len(), 0);
    e.fails(2, &["--as", "alice", "send", "hi"]);
    // --unsigned writes a row without a MAC, and says so.
    let r = e.json(0, &["--as", "alice", "claim", "t", "--unsigned"]);
    assert_eq!(r["signed"], false);
    assert_eq!(
        by(&e.json(0, &["list"]), "task_id", "t")["verification"],
        "unsigned"
    );
    let out = e.ok(&["--as", "alice", "send", "hi", "--unsigned"]);
    assert!(out.contains("UNSIGNED"), "{out}");

    // A key file others can read is refused, and the error says the fix.
    e.keygen("bob");
    let key = e.secrets.join("bob.secret");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = e.fails(2, &["--as", "bob", "claim", "t2"]);
    assert!(
        err.contains("chmod 600") && err.contains("bob.secret"),
        "{err}"
    );
    // The env variable overrides the file, as in gptme-coordination.
    let o = e
        .cmd(&["--json", "--as", "bob", "claim", "t2"])
        .env("COORDINATION_SECRET_BOB", "b".repeat(40))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn usage_and_runtime_errors() {
    let e = Env::empty();
    // A missing database says how to create one.
    let err = e.fails(2, &["list"]);
    assert!(
        err.contains("coord init") && err.contains("coord.db"),
        "{err}"
    );
    assert!(!e.db.exists(), "a read must not create the database");
    e.fails(2, &["--as", "a", "claim", "t"]);
    // Usage errors are clap's exit 2.
    assert_eq!(e.run(&["claim"]).status.code(), Some(2));
    assert_eq!(e.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(e.run(&["list", "sideways"]).status.code(), Some(2));
    assert_eq!(
        e.run(&["--as", "a", "claim", "t", "--ttl", "soon"])
            .status
            .code(),
        Some(2)
    );

    e.ok(&["init"]);
    // init is idempotent and leaves the database in WAL mode.
    let r = e.json(0, &["init"]);
    assert_eq!(r["added_columns"].as_array().unwrap().len(), 0);
    let mode: String = e
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let err = e.fails(2, &["--as", "../x", "list"]);
    assert!(err.contains("invalid agent id"), "{err}");
    let err = e.fails(2, &["complete", "t"]);
    assert!(err.contains("--as AGENT"), "{err}");
    e.keygen("a");
    let err = e.fails(2, &["--as", "a", "claim", "t", "--ttl", "0"]);
    assert!(err.contains("ttl_minutes"), "{err}");

    // A database locked past the busy timeout says so and what to do.
    let c = e.conn();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = e.fails(2, &["--busy-timeout", "200", "--as", "a", "claim", "t"]);
    assert!(
        err.contains("locked") && err.contains("--busy-timeout"),
        "{err}"
    );
    c.execute_batch("ROLLBACK").unwrap();
    e.ok(&["--as", "a", "claim", "t"]);

    // Not a database at all.
    std::fs::write(
        e.path().join("junk.db"),
        b"this is not sqlite at all, not even close......",
    )
    .unwrap();
    let err = e.fails(2, &["--db", "junk.db", "list"]);
    assert!(err.contains("junk.db"), "{err}");
}

#[test]
fn db_path_resolution() {
    let e = Env::empty();
    let ws = e.path().join("ws");
    let repo = e.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    let run = |cwd: &std::path::Path, vars: &[(&str, &std::path::Path)], args: &[&str]| {
        let mut c = e.cmd(args);
        c.env_remove("COORDINATION_DB").current_dir(cwd);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // $WORKSPACE: init creates <ws>/state/coordination/coord.db.
    assert!(run(e.path(), &[("WORKSPACE", &ws)], &["init"])
        .status
        .success());
    assert!(ws.join("state/coordination/coord.db").exists());
    // Git root, from a subdirectory.
    assert!(run(&repo.join("sub"), &[], &["init"]).status.success());
    assert!(repo.join("state/coordination/coord.db").exists());
    // --db beats everything.
    let o = run(&repo, &[("WORKSPACE", &ws)], &["--db", "x.db", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("x.db"), "{o:?}");
}

#[test]
fn sql_command_and_prompt() {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&["--as", "alice", "claim", "t"]);
    // --json prints one array per statement that returns rows, a line each.
    let out = e.ok(&[
        "--json",
        "sql",
        "-c",
        "SELECT task_id, verification FROM coord_work; CREATE TABLE z(a); SELECT 1 + 1 AS two",
    ]);
    let v: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 2, "{out}");
    assert_eq!(v[0][0]["task_id"], "t");
    assert_eq!(v[0][0]["verification"], "verified");
    assert_eq!(v[1][0]["two"], 2);
    // The write API from SQL, as the connection's agent.
    let out = e.ok(&[
        "--as",
        "alice",
        "sql",
        "-c",
        "INSERT INTO coord_claim(task_id) VALUES ('u'); SELECT outcome, signed FROM coord_result",
    ]);
    assert!(out.contains("granted"), "{out}");
    let err = e.fails(2, &["sql", "-c", "SELECT * FROM nowhere"]);
    assert!(err.contains("nowhere"), "{err}");

    // The prompt reads statements across lines (a trigger body has ';'
    // inside) and runs each once.
    use std::io::Write;
    let mut child = e
        .cmd(&["--json", "sql"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"CREATE TABLE log(x);\nCREATE TRIGGER tr AFTER INSERT ON log BEGIN\n  INSERT INTO log VALUES (NEW.x + 100);\nEND;\n\
              INSERT INTO log VALUES (1);\n.tables\nSELECT count(*) AS n,\n  max(x) AS top FROM log;\n",
        )
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8(o.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    // Triggers don't recurse by default: one row plus the trigger's one.
    assert_eq!(last[0]["n"], 2);
    assert_eq!(last[0]["top"], 101);
    assert!(out.contains("coord_work"), "{out}");
}

#[test]
fn help_covers_every_verb_with_an_example() {
    let e = Env::empty();
    let help = e.ok(&["--help"]);
    for verb in [
        "init", "submit", "claim", "complete", "abandon", "list", "send", "inbox", "status",
        "keygen", "audit", "sql", "demo",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("coord {verb}"))
                    || l.contains(&format!("coord --as alice {verb}"))
                    || l.contains(&format!("coord --as bob {verb}"))
                    || l.contains(&format!("coord --db state/coordination/coord.db {verb}"))),
            "no example for {verb} in --help:\n{help}"
        );
        let sub = e.ok(&[verb, "--help"]);
        assert!(
            sub.contains("Example"),
            "{verb} --help has no example:\n{sub}"
        );
    }
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn terminal_control_characters_are_escaped() {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&[
        "--as",
        "alice",
        "claim",
        "evil\u{1b}[32m✓ verified\u{1b}[0m",
    ]);
    e.ok(&["--as", "alice", "send", "line1\nline2\u{202e}"]);
    let out = e.ok(&["list"]) + &e.ok(&["inbox", "--all"]);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(
        out.contains("\\u{1b}[32m") && out.contains("line1\\nline2"),
        "{out}"
    );
    // JSON keeps the exact text.
    let v = e.json(0, &["list"]);
    assert!(v[0]["task_id"].as_str().unwrap().contains('\u{1b}'));
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let e = Env::new();
    e.keygen("alice");
    e.ok(&["--as", "alice", "claim", "t"]);
    assert!(
        !e.ok(&["list"]).contains('\u{1b}'),
        "piped output has no colour"
    );
    let out = e.ok(&["--color", "always", "list"]);
    assert!(out.contains("\u{1b}["), "{out:?}");
    let o = e
        .cmd(&["list"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("\u{1b}["));
}

#[test]
fn demo_runs_and_exposes_the_forgeries() {
    let e = Env::empty();
    let out = e.ok(&["demo", "--keep"]);
    for needle in [
        "won (epoch 1)",
        "DENIED: fix-ci is held by",
        "renewed fix-ci",
        "to bob at epoch 2",
        "LOST_LEASE",
        "✗ BAD MAC: task deploy-prod as alice",
        "✗ BAD MAC: message 1 as alice",
        "2 row(s) failed verification",
        "✗ CHANGED",
        "alice signed checkpoint",
        "every agent has signed",
        "✗ ROLLBACK",
        "Done:",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} missing from the demo:\n{out}"
        );
    }
    // Keys are written, never printed.
    let kept = out.lines().last().unwrap().rsplit(' ').next().unwrap();
    let dir = std::path::Path::new(kept);
    for agent in ["alice", "bob", "mallory"] {
        let key = std::fs::read_to_string(dir.join(format!("secrets/{agent}.secret"))).unwrap();
        assert!(!out.contains(key.trim()), "{agent}'s key printed");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_database_from_before_signing_is_migrated_by_init_or_first_write() {
    let e = Env::empty();
    let c = e.conn();
    c.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL,
           recipient TEXT, channel TEXT NOT NULL DEFAULT 'general', body TEXT NOT NULL,
           created_at TEXT NOT NULL DEFAULT (datetime('now')));
         INSERT INTO messages(sender, body) VALUES ('old', 'legacy');",
    )
    .unwrap();
    let err = e.fails(2, &["inbox", "--all"]);
    assert!(err.contains("hmac") && err.contains("coord init"), "{err}");
    e.fails(2, &["audit"]);
    // Empty of tasks: list works (no work table yet).
    assert_eq!(e.json(0, &["list"]).as_array().unwrap().len(), 0);
    let r = e.json(0, &["init"]);
    assert_eq!(r["added_columns"][0], "messages.hmac");
    let m = e.json(0, &["inbox", "--all"]);
    assert_eq!(m[0]["verification"], "unsigned");
    e.keygen("alice");
    e.ok(&["--as", "alice", "claim", "t"]);
    assert_eq!(e.json(0, &["audit"])["work"]["verified"], 1);
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    let e = Env::new();
    // Far more than a pipe holds, to a reader that has gone away.
    let mut child = e
        .cmd(&[
            "sql",
            "-c",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn init_on_a_foreign_work_table_says_what_is_missing_and_changes_nothing() {
    let e = Env::empty();
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE work(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO work(name) VALUES ('mine');",
    )
    .unwrap();
    drop(conn);
    let o = e.run(&["init"]);
    assert!(!o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("main.work is not gptme-coordination's work table"),
        "{err}"
    );
    assert!(err.contains("lacks task_id, claimer, epoch"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("CREATE TABLE"), "{err}");
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(names, ["work"]);
}
