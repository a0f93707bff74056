//! Finding and opening the coordination database, as gptme-coordination
//! does, with coord's functions and TEMP views registered on the connection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::CliError;

/// The database's place under a workspace or repository root.
pub const DEFAULT_DB_PATH: &str = "state/coordination/coord.db";

/// Workspace variables, in gptme-coordination's order.
pub const WORKSPACE_VARS: [&str; 3] = ["BOB_WORKSPACE", "AGENT_WORKSPACE", "WORKSPACE"];

/// A resolved database path and how it was found (for error messages).
#[derive(Debug, Clone)]
pub struct DbPath {
    pub path: PathBuf,
    pub how: String,
}

/// Resolves the database path: `--db`, then `$COORDINATION_DB`, then the
/// workspace variables, then the git root of the working directory, then
/// the working directory. Empty variables count as unset, as in Python.
pub fn resolve(flag: Option<&Path>) -> DbPath {
    resolve_with(flag, |k| std::env::var_os(k), std::env::current_dir().ok())
}

fn resolve_with(
    flag: Option<&Path>,
    var: impl Fn(&str) -> Option<OsString>,
    cwd: Option<PathBuf>,
) -> DbPath {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(p) = flag {
        return DbPath {
            path: p.to_owned(),
            how: "from --db".into(),
        };
    }
    if let Some(p) = set("COORDINATION_DB") {
        return DbPath {
            path: PathBuf::from(p),
            how: "from $COORDINATION_DB".into(),
        };
    }
    for name in WORKSPACE_VARS {
        if let Some(ws) = set(name) {
            return DbPath {
                path: PathBuf::from(ws).join(DEFAULT_DB_PATH),
                how: format!("from ${name}"),
            };
        }
    }
    let cwd = cwd.unwrap_or_else(|| PathBuf::from("."));
    match cwd.ancestors().find(|a| a.join(".git").exists()) {
        Some(root) => DbPath {
            path: root.join(DEFAULT_DB_PATH),
            how: format!("under the git root {}", root.display()),
        },
        None => DbPath {
            path: cwd.join(DEFAULT_DB_PATH),
            how: "under the working directory (no git root)".into(),
        },
    }
}

/// An open database with coord registered on it.
pub struct Db {
    pub conn: Connection,
    pub path: PathBuf,
    pub busy_ms: u64,
}

impl Db {
    /// Opens an existing database. A missing file is an error that says how
    /// to create one: a typo in a path must not silently start an empty
    /// coordination database beside the real one.
    pub fn open(at: &DbPath, busy_ms: u64, agent: Option<&str>) -> Result<Db, CliError> {
        if !at.path.exists() {
            return Err(CliError::NoDatabase {
                path: at.path.clone(),
                how: at.how.clone(),
            });
        }
        Self::open_flags(
            &at.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            busy_ms,
            agent,
        )
    }

    /// Creates the database (and its directory) if missing, in WAL mode, and
    /// creates or migrates coord's schema.
    pub fn create(
        at: &DbPath,
        busy_ms: u64,
        agent: Option<&str>,
    ) -> Result<(Db, coord_sql::InitReport), CliError> {
        if let Some(dir) = at.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
        }
        let db = Self::open_flags(
            &at.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            busy_ms,
            agent,
        )?;
        // WAL lets readers run beside the one writer, as gptme-coordination
        // sets it; the mode is stored in the file.
        db.conn
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| db.err(e))?;
        let report = db.init()?;
        Ok((db, report))
    }

    fn open_flags(
        path: &Path,
        flags: OpenFlags,
        busy_ms: u64,
        agent: Option<&str>,
    ) -> Result<Db, CliError> {
        let err = |e| CliError::sql(path, busy_ms, e);
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(Duration::from_millis(busy_ms))
            .map_err(err)?;
        // Views and triggers stored in the file may not call functions that
        // read keys: only coord's own TEMP objects and our SQL can.
        conn.execute_batch("PRAGMA trusted_schema=OFF")
            .map_err(err)?;
        coord_sql::register(&conn).map_err(err)?;
        // --as (or $COORDINATION_AGENT, already validated by the caller)
        // decides who this connection acts as; register() alone would
        // silently drop an invalid $COORDINATION_AGENT.
        conn.query_row("SELECT coord_set_agent(?1)", [agent], |_| Ok(()))
            .map_err(err)?;
        // The file is read before anything else, so "not a database" and
        // locking errors surface here with the path in the message.
        conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |_| Ok(()))
            .map_err(err)?;
        Ok(Db {
            conn,
            path: path.to_owned(),
            busy_ms,
        })
    }

    /// Wraps a SQLite error with this database's path.
    pub fn err(&self, e: rusqlite::Error) -> CliError {
        CliError::sql(&self.path, self.busy_ms, e)
    }

    /// Runs coord's schema creation or migration under the write lock.
    fn init(&self) -> Result<coord_sql::InitReport, CliError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let r = coord_sql::init(&self.conn).and_then(|rep| {
            self.conn.execute_batch("COMMIT")?;
            Ok(rep)
        });
        match r {
            Ok(rep) => Ok(rep),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.err(e))
            }
        }
    }

    /// Makes sure coord's schema is in place before a write: a database
    /// written only by gptme-coordination lacks the gate table and the
    /// stored triggers. Checked first without the write lock, so that
    /// concurrent writers on a ready database never contend for it here.
    pub fn ensure_schema(&self) -> Result<(), CliError> {
        if !self.schema_ready()? {
            self.init()?;
        }
        Ok(())
    }

    fn schema_ready(&self) -> Result<bool, CliError> {
        let objects: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM main.sqlite_schema WHERE
                   (type = 'table' AND name IN ('work', 'messages', 'coord_gate'))
                   OR (type = 'trigger' AND name IN
                       ('coord_work_stale_mac', 'coord_work_epoch_up', 'coord_messages_stale_mac'))",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if objects != 6 {
            return Ok(false);
        }
        let macs: i64 = self
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM pragma_table_info('work') WHERE name = 'hmac')
                      + (SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'hmac')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(macs == 2)
    }

    /// The type of `name` in the file's schema (`table`, `view`, ...), if any.
    pub fn object_type(&self, name: &str) -> Result<Option<String>, CliError> {
        self.conn
            .query_row(
                "SELECT type FROM main.sqlite_schema WHERE name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Whether the file has the signed table `name` (`work` or
    /// `messages`), refusing a view by that name and a table from before
    /// signing (no `hmac` column), which `coord init` migrates.
    pub fn has_table(&self, name: &'static str) -> Result<bool, CliError> {
        match self.object_type(name)?.as_deref() {
            None => Ok(false),
            Some("table") => {
                let macs: i64 = self
                    .conn
                    .query_row(
                        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = 'hmac'",
                        [name],
                        |r| r.get(0),
                    )
                    .map_err(|e| self.err(e))?;
                if macs == 0 {
                    return Err(CliError::NoMacColumn {
                        table: name,
                        path: self.path.clone(),
                    });
                }
                Ok(true)
            }
            Some(kind) => Err(CliError::NotATable {
                table: name,
                kind: kind.to_owned(),
                path: self.path.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], cwd: &Path) -> DbPath {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        resolve_with(None, |k| m.get(k).cloned(), Some(cwd.to_owned()))
    }

    #[test]
    fn order_of_resolution() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let sub = repo.join("a/b");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(run(&[], &sub).path, repo.join(DEFAULT_DB_PATH));
        assert_eq!(run(&[], t.path()).path, t.path().join(DEFAULT_DB_PATH));
        assert_eq!(
            run(&[("WORKSPACE", "/w"), ("AGENT_WORKSPACE", "/a")], &sub).path,
            PathBuf::from("/a").join(DEFAULT_DB_PATH)
        );
        assert_eq!(
            run(&[("BOB_WORKSPACE", "/b"), ("AGENT_WORKSPACE", "/a")], &sub).path,
            PathBuf::from("/b").join(DEFAULT_DB_PATH)
        );
        assert_eq!(
            run(
                &[("COORDINATION_DB", "/x.db"), ("BOB_WORKSPACE", "/b")],
                &sub
            )
            .path,
            PathBuf::from("/x.db")
        );
        // Empty means unset, as in Python.
        assert_eq!(
            run(&[("COORDINATION_DB", ""), ("WORKSPACE", "/w")], &sub).path,
            PathBuf::from("/w").join(DEFAULT_DB_PATH)
        );
        let flag = resolve_with(Some(Path::new("f.db")), |_| None, None);
        assert_eq!(flag.path, PathBuf::from("f.db"));
    }
}
