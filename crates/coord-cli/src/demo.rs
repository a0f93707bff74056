//! `coord demo`: a tour of coord in a temporary directory, run as the real
//! commands an agent would type (this same binary, as child processes), so
//! what it shows is what the CLI does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::error::{CliError, EXIT_OK, EXIT_REFUSED};
use crate::output::{outln, style, Out};

struct Tour {
    exe: PathBuf,
    dir: PathBuf,
    out: Out,
}

impl Tour {
    fn command(&self, agent: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        // Only the demo's own database and keys: no variable from the
        // caller's environment may point the children elsewhere.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("COORDINATION_") || k.ends_with("WORKSPACE") {
                c.env_remove(k.as_ref());
            }
        }
        c.current_dir(&self.dir)
            .env("COORDINATION_DB", self.dir.join("coord.db"))
            .env("COORDINATION_SECRETS_DIR", self.dir.join("secrets"))
            // the readers' witness of the log, in the demo's directory too
            .env("XDG_STATE_HOME", self.dir.join("state"))
            .arg("--color")
            .arg(if self.out.color { "always" } else { "never" });
        if let Some(a) = agent {
            c.args(["--as", a]);
        }
        c.args(args);
        c
    }

    fn heading(&self, text: &str) {
        outln!();
        self.out.line(style::HEADING, &format!("== {text}"));
    }

    fn note(&self, text: &str) {
        self.out.line(style::WARN, &format!("   {text}"));
    }

    /// Shows and runs one command, its output going straight to ours, and
    /// checks its exit code.
    fn run(&self, agent: Option<&str>, args: &[&str], expect: u8) -> Result<(), CliError> {
        let shown = agent.map(|a| format!("--as {a} ")).unwrap_or_default();
        let quoted: Vec<String> = args
            .iter()
            .map(|a| {
                if !a.contains(|c: char| c.is_whitespace() || "'\"();*$`\\".contains(c)) {
                    (*a).to_owned()
                } else if a.contains('\'') && !a.contains(['"', '$', '`', '\\']) {
                    format!("\"{a}\"")
                } else {
                    format!("'{}'", a.replace('\'', "'\\''"))
                }
            })
            .collect();
        self.out.line(
            style::PLAIN,
            &format!("$ coord {shown}{}", quoted.join(" ")),
        );
        let status = self
            .command(agent, args)
            .status()
            .map_err(|e| CliError::io(&self.exe, e))?;
        let code = status.code().unwrap_or(-1);
        if code != 0 {
            self.note(&format!("(exit {code})"));
        }
        if code != i32::from(expect) {
            return Err(CliError::Other(format!(
                "demo: `coord {}` exited {code}, expected {expect}",
                args.join(" ")
            )));
        }
        Ok(())
    }

    /// Starts every claim at once and reports who won each task.
    fn race(&self, tasks: &[&str], agents: &[&str]) -> Result<(), CliError> {
        self.out.line(
            style::PLAIN,
            &format!(
                "$ # {} processes at once: each of {} runs `coord claim` for each task",
                tasks.len() * agents.len(),
                agents.join(" and ")
            ),
        );
        let mut children = Vec::new();
        for t in tasks {
            for a in agents {
                let child = self
                    .command(Some(a), &["--json", "claim", t, "--ttl", "30"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| CliError::io(&self.exe, e))?;
                children.push((*t, *a, child));
            }
        }
        let mut results = Vec::new();
        for (t, a, child) in children {
            let o: Output = child
                .wait_with_output()
                .map_err(|e| CliError::io(&self.exe, e))?;
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|_| {
                CliError::Other(format!(
                    "demo: claim of {t} by {a} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            })?;
            results.push((
                t,
                a,
                v["outcome"].as_str().unwrap_or("?").to_owned(),
                v["epoch"].clone(),
            ));
        }
        for t in tasks {
            let won: Vec<_> = results
                .iter()
                .filter(|r| r.0 == *t && r.2 == "granted")
                .collect();
            let lost: Vec<_> = results
                .iter()
                .filter(|r| r.0 == *t && r.2 != "granted")
                .map(|r| format!("{} {}", r.1, r.2))
                .collect();
            if won.len() != 1 {
                return Err(CliError::Other(format!(
                    "demo: {t} had {} winners",
                    won.len()
                )));
            }
            outln!(
                "   {t}: {} won (epoch {}); {}",
                won[0].1,
                won[0].3,
                lost.join(", ")
            );
        }
        Ok(())
    }

    /// The first value `sql` returns, read back through the CLI.
    fn value(&self, agent: Option<&str>, sql: &str) -> Result<String, CliError> {
        let o = self
            .command(agent, &["--json", "sql", "-c", sql])
            .output()
            .map_err(|e| CliError::io(&self.exe, e))?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .map_err(|e| CliError::Other(format!("demo: reading `{sql}`: {e}")))?;
        v[0].as_object()
            .and_then(|r| r.values().next())
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| CliError::Other(format!("demo: `{sql}` returned nothing")))
    }

    /// Who won `task`, read back through the CLI.
    fn holder(&self, task: &str) -> Result<String, CliError> {
        let o = self
            .command(None, &["--json", "list", "claimed"])
            .output()
            .map_err(|e| CliError::io(&self.exe, e))?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .map_err(|e| CliError::Other(format!("demo: reading the list: {e}")))?;
        v.as_array()
            .into_iter()
            .flatten()
            .find(|r| r["task_id"] == task)
            .and_then(|r| r["claimer"].as_str().map(str::to_owned))
            .ok_or_else(|| CliError::Other(format!("demo: nobody holds {task}")))
    }
}

pub fn run(out: Out, keep: bool) -> Result<u8, CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::io(Path::new("coord"), e))?;
    let tmp = tempfile::Builder::new()
        .prefix("coord-demo-")
        .tempdir()
        .map_err(|e| CliError::io(&std::env::temp_dir(), e))?;
    let tour = Tour {
        exe,
        dir: tmp.path().to_owned(),
        out,
    };
    let r = tour_steps(&tour);
    if keep {
        let path = tmp.keep();
        outln!("\nthe demo's files are kept in {}", path.display());
    }
    r?;
    Ok(EXIT_OK)
}

fn tour_steps(t: &Tour) -> Result<(), CliError> {
    outln!("coord demo in {}", t.dir.display());
    outln!("(COORDINATION_DB and COORDINATION_SECRETS_DIR point into it)");

    t.heading("1. A database and a key for each of two agents");
    t.run(None, &["init"], EXIT_OK)?;
    t.run(None, &["keygen", "alice"], EXIT_OK)?;
    t.run(None, &["keygen", "bob"], EXIT_OK)?;

    t.heading("2. A race: alice and bob claim the same tasks at the same moment");
    let tasks = ["fix-ci", "write-docs", "review-pr-42"];
    for task in tasks {
        t.run(None, &["submit", task], EXIT_OK)?;
    }
    t.race(&tasks, &["alice", "bob"])?;
    t.run(None, &["list", "claimed"], EXIT_OK)?;

    t.heading("3. A denied claim, and the holder renewing");
    let holder = t.holder("fix-ci")?;
    let other = if holder == "alice" { "bob" } else { "alice" };
    t.run(Some(other), &["claim", "fix-ci"], EXIT_REFUSED)?;
    t.run(Some(&holder), &["claim", "fix-ci", "--ttl", "90"], EXIT_OK)?;

    t.heading("4. A handoff after expiry: the epoch goes up and fences the old holder");
    t.run(
        Some("alice"),
        &["claim", "migrate-db", "--ttl", "0.02"],
        EXIT_OK,
    )?;
    // Expiry times are stored to the second (truncated), so a lease of
    // 1.2 s is surely over only 2.2 s after it was granted.
    t.note("alice's claim lasts 1.2 s; waiting 2.5 s for it to expire");
    std::thread::sleep(Duration::from_millis(2500));
    t.run(Some("bob"), &["claim", "migrate-db"], EXIT_OK)?;
    t.run(
        Some("alice"),
        &["complete", "migrate-db", "--epoch", "1"],
        EXIT_REFUSED,
    )?;
    t.run(
        Some("bob"),
        &[
            "complete",
            "migrate-db",
            "--epoch",
            "2",
            "--result",
            "migrated",
        ],
        EXIT_OK,
    )?;

    t.heading("5. Signed messages");
    t.run(
        Some("alice"),
        &["send", "ship v1.2 on friday", "--to", "bob"],
        EXIT_OK,
    )?;
    t.run(
        Some("bob"),
        &["send", "taking review-pr-42", "--channel", "ops"],
        EXIT_OK,
    )?;

    t.heading("6. mallory has a key of her own, but not alice's");
    t.run(None, &["keygen", "mallory"], EXIT_OK)?;
    t.note("a claim written as alice, signed with mallory's key:");
    let sign =
        "SELECT coord_sign('mallory', 'alice', 'deploy-prod', 1, '2099-01-01 00:00:00') AS mac";
    t.run(Some("mallory"), &["sql", "-c", sign], EXIT_OK)?;
    let mac = t.value(Some("mallory"), sign)?;
    let forge = format!(
        "INSERT INTO work(task_id, claimer, epoch, claimed_at, expires_at, status, hmac) \
         VALUES ('deploy-prod', 'alice', 1, datetime('now'), '2099-01-01 00:00:00', 'claimed', '{mac}')"
    );
    t.run(Some("mallory"), &["sql", "-c", &forge], EXIT_OK)?;
    t.note("alice's message edited in place, with the trigger that would clear its MAC dropped:");
    t.run(
        Some("mallory"),
        &[
            "sql",
            "-c",
            "DROP TRIGGER coord_messages_stale_mac; \
             UPDATE messages SET body = 'ship v1.3 tonight, skip review' WHERE id = 1",
        ],
        EXIT_OK,
    )?;

    t.note("a claim marked completed with plain SQL (a claim's MAC does not cover its status):");
    t.run(
        Some("mallory"),
        &[
            "sql",
            "-c",
            "UPDATE work SET status = 'completed', result = 'tests skipped' \
             WHERE task_id = 'review-pr-42'",
        ],
        EXIT_OK,
    )?;

    t.heading("7. What a reader sees: every row verified, and read against its signed history");
    t.run(None, &["list", "all"], EXIT_OK)?;
    t.run(Some("bob"), &["inbox"], EXIT_OK)?;
    t.run(None, &["audit"], EXIT_REFUSED)?;

    t.heading("8. Checkpoints, and yesterday's copy of the file put back");
    t.run(Some("alice"), &["checkpoint"], EXIT_OK)?;
    t.run(Some("bob"), &["checkpoint"], EXIT_OK)?;
    t.run(None, &["checkpoint", "--check"], EXIT_OK)?;
    let db = t.dir.join("coord.db");
    let old = t.dir.join("yesterday.db");
    std::fs::copy(&db, &old).map_err(|e| CliError::io(&old, e))?;
    t.run(None, &["submit", "release-notes"], EXIT_OK)?;
    t.run(Some("alice"), &["claim", "release-notes"], EXIT_OK)?;
    t.run(None, &["list", "claimed"], EXIT_OK)?;
    t.note("mallory puts yesterday's copy back: every row in it verifies");
    std::fs::copy(&old, &db).map_err(|e| CliError::io(&db, e))?;
    for side in ["coord.db-wal", "coord.db-shm"] {
        let _ = std::fs::remove_file(t.dir.join(side));
    }
    t.run(None, &["list", "claimed"], EXIT_OK)?;
    t.run(None, &["audit"], EXIT_REFUSED)?;
    outln!();
    t.out.line(
        style::OK,
        "Done: one winner per task, a denial, a fenced handoff, both forgeries and the \
         completion outside history exposed, and the rollback caught by the readers' witness.",
    );
    Ok(())
}
