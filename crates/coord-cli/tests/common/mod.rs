//! Shared helpers: each test gets its own temporary directory with a
//! file-backed database and secrets directory, and runs the built binary.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const COORD: &str = env!("CARGO_BIN_EXE_coord");

/// The repository root (this crate is `<root>/crates/coord-cli`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The gptme-coordination fixture (tests/fixtures/gptme); tests copy it first.
pub fn fixture_dir() -> PathBuf {
    repo_root().join("tests/fixtures/gptme")
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub db: PathBuf,
    pub secrets: PathBuf,
}

impl Env {
    /// An empty directory; no database yet.
    pub fn empty() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("coord.db");
        let secrets = tmp.path().join("secrets");
        Env { tmp, db, secrets }
    }

    /// A fresh database made by `coord init`.
    pub fn new() -> Env {
        let e = Env::empty();
        e.ok(&["init"]);
        e
    }

    /// A copy of the gptme fixture, secrets at mode 0600.
    pub fn fixture() -> Env {
        let e = Env::empty();
        let src = fixture_dir();
        assert!(
            src.join("coord.db").exists(),
            "fixture missing at {}",
            src.display()
        );
        std::fs::copy(src.join("coord.db"), &e.db).unwrap();
        std::fs::set_permissions(&e.db, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::create_dir(&e.secrets).unwrap();
        for f in std::fs::read_dir(src.join("secrets")).unwrap() {
            let f = f.unwrap().path();
            let to = e.secrets.join(f.file_name().unwrap());
            std::fs::copy(&f, &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        e
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `coord` with only this test's database and keys in its environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.program(COORD);
        c.args(args);
        c
    }

    /// `exe` with only this test's database and keys in its environment.
    pub fn program(&self, exe: &str) -> Command {
        let mut c = Command::new(exe);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("COORDINATION_") || k.ends_with("WORKSPACE") || k == "NO_COLOR" {
                c.env_remove(k);
            }
        }
        c.current_dir(self.path())
            .env("COORDINATION_DB", &self.db)
            .env("COORDINATION_SECRETS_DIR", &self.secrets)
            // this test's own witness of the log, not the user's
            .env("XDG_STATE_HOME", self.path().join("state"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts the exit code; returns stdout.
    pub fn expect(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "coord {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args)
    }

    /// Runs with `--json`, asserts the exit code, parses stdout.
    pub fn json(&self, code: i32, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.expect(code, &a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Stderr of a run that must fail with `code`.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(code), "coord {args:?}: {o:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line on stderr: {err}"
        );
        err
    }

    pub fn keygen(&self, agent: &str) {
        self.ok(&["keygen", agent]);
    }

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// Someone who can write the file: plain SQL, no coord loaded, the
    /// log's append-only triggers dropped first.
    pub fn attack(&self, sql: &str) {
        let c = self.conn();
        c.execute_batch(
            "DROP TRIGGER IF EXISTS coord_events_no_update; DROP TRIGGER IF EXISTS coord_events_no_delete;",
        )
        .unwrap();
        c.execute_batch(sql).unwrap();
    }
}

/// `rows` (a JSON array) indexed by `key`.
pub fn by<'a>(rows: &'a Value, key: &str, want: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| match &r[key] {
            Value::String(s) => s == want,
            Value::Number(n) => n.as_i64().map(|i| i.to_string()).as_deref() == Some(want),
            _ => false,
        })
        .unwrap_or_else(|| panic!("no row with {key} = {want} in {rows}"))
}
