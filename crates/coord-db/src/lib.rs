//! A coordination database on any backend: find it ([`resolve`]), open it
//! ([`Db::open`], [`Db::create`]), migrate it, read its rows for
//! verification ([`Db::load`]) and run one write operation with a typed
//! outcome ([`Db::run`]).
//!
//! The database is a SQLite file or a libSQL server; each is a [`Backend`].
//! Whichever it is, coord runs on one local connection ([`Db::conn`]) with
//! coord-sql registered: the verifying views read it, and every write is
//! decided and signed there, with this process's keys, then made by the one
//! compare-and-swap of `sql/writes.sql`. Nothing here parses text to learn
//! an outcome.
//!
//! ```
//! use coord_db::{Db, DbPath, Op, Outcome};
//! let dir = tempfile::tempdir().unwrap();
//! let at = DbPath { path: dir.path().join("coord.db"), how: "example".into() };
//! let (db, _) = Db::create(&at, 5000, Some("alice")).unwrap();
//! let op = Op::Submit { task_id: "task:1", metadata: None };
//! assert_eq!(db.run(&op).unwrap().outcome, Outcome::Submitted);
//! // No key for alice here, so the claim is written without a MAC.
//! let op = Op::Claim { task_id: "task:1", claimer: None, ttl_minutes: 30.0 };
//! let r = db.run(&op).unwrap();
//! assert_eq!((r.outcome, r.epoch, r.signed), (Outcome::Granted, Some(1), Some(false)));
//! ```

mod backend;
pub mod checkpoint;
mod error;
pub mod history;
pub mod hrana;
mod path;
pub mod read;
pub mod replay;
mod scope;
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use backend::{Backend, File, CHECKPOINT_COLS};
pub use coord_sql::ops::{Op, OpResult, Outcome};
pub use coord_sql::InitReport;
pub use error::{is_busy, Error};
pub use path::{resolve, DbPath, DEFAULT_DB_PATH, WORKSPACE_VARS};
pub use scope::{ListFilter, MessageScope, Scope, WorkScope, PAGE_ROWS};
pub use server::{Server, MAX_CLOCK_SKEW_S};

/// An open coordination database.
pub struct Db {
    /// The local connection coord runs on: the database for a file, an
    /// in-memory working copy for a server.
    pub conn: Connection,
    /// coord's state on `conn`: keys, the acting agent.
    pub coord: coord_sql::Handle,
    /// The file's path or the server's URL.
    pub path: PathBuf,
    /// The busy timeout, in milliseconds.
    pub busy_ms: u64,
    backend: Box<dyn Backend>,
}

impl Db {
    /// Opens an existing database, acting as `agent` (already validated).
    /// A missing file is an error that says how to create one: a typo in a
    /// path must not silently start an empty database beside the real one.
    pub fn open(at: &DbPath, busy_ms: u64, agent: Option<&str>) -> Result<Db, Error> {
        if let Some(url) = at.url() {
            return Self::open_server(url, busy_ms, agent);
        }
        if !at.path.exists() {
            return Err(Error::NoDatabase {
                path: at.path.clone(),
                how: at.how.clone(),
            });
        }
        Self::open_file(
            &at.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            busy_ms,
            agent,
        )
    }

    /// Creates the database if missing (a file: with its directory, in WAL
    /// mode) and creates or migrates coord's schema.
    pub fn create(
        at: &DbPath,
        busy_ms: u64,
        agent: Option<&str>,
    ) -> Result<(Db, InitReport), Error> {
        if let Some(url) = at.url() {
            let db = Self::open_server(url, busy_ms, agent)?;
            let report = db.backend.migrate(&db.conn)?;
            return Ok((db, report));
        }
        if let Some(dir) = at.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.to_owned(),
                source: e,
            })?;
        }
        let db = Self::open_file(
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
        let report = db.backend.migrate(&db.conn)?;
        Ok((db, report))
    }

    fn connect(
        path: &Path,
        flags: OpenFlags,
        busy_ms: u64,
        agent: Option<&str>,
    ) -> Result<(Connection, coord_sql::Handle), Error> {
        let err = |e| Error::sql(path, busy_ms, e);
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(Duration::from_millis(busy_ms))
            .map_err(err)?;
        // Views and triggers stored in the file may not call functions that
        // read keys: only coord's own TEMP objects and our SQL can.
        conn.execute_batch("PRAGMA trusted_schema=OFF")
            .map_err(err)?;
        let coord = coord_sql::register_with(
            &conn,
            coord_sql::Options {
                agent: coord_sql::Agent::Set(agent.map(str::to_owned)),
            },
        )
        .map_err(err)?;
        // The file is read before anything else, so "not a database" and
        // locking errors surface here with the path in the message.
        conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |_| Ok(()))
            .map_err(err)?;
        Ok((conn, coord))
    }

    fn open_file(
        path: &Path,
        flags: OpenFlags,
        busy_ms: u64,
        agent: Option<&str>,
    ) -> Result<Db, Error> {
        let (conn, coord) = Self::connect(path, flags, busy_ms, agent)?;
        Ok(Db {
            conn,
            coord,
            path: path.to_owned(),
            busy_ms,
            backend: Box::new(File {
                path: path.to_owned(),
                busy_ms,
            }),
        })
    }

    /// A server database: an in-memory working copy with coord's schema,
    /// and the server. Nothing is sent until an operation needs it.
    fn open_server(url: &str, busy_ms: u64, agent: Option<&str>) -> Result<Db, Error> {
        let (conn, coord) = Self::connect(
            Path::new(":memory:"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            busy_ms,
            agent,
        )?;
        coord_sql::init(&conn)
            .and_then(|_| coord_sql::refresh(&conn))
            .map_err(|e| Error::sql(Path::new(url), busy_ms, e))?;
        Ok(Db {
            conn,
            coord,
            path: PathBuf::from(url),
            busy_ms,
            backend: Box::new(Server::new(url, busy_ms)),
        })
    }

    /// Makes the rows `scope` names readable on [`Db::conn`], where coord's
    /// views verify them (a no-op for a file).
    pub fn load(&self, scope: Scope<'_>) -> Result<(), Error> {
        // (a file's rows need no copy, so no memory is read for one)
        let seen = if hrana::is_url(&self.path.to_string_lossy()) {
            history::Witness::default_place().and_then(|w| w.seen_size(&self.path))
        } else {
            None
        };
        self.backend.load(&self.conn, scope, seen)
    }

    /// Stores a signed checkpoint (see [`Backend::add_checkpoint`]).
    pub fn add_checkpoint(&self, row: &[rusqlite::types::Value]) -> Result<i64, Error> {
        self.backend.add_checkpoint(&self.conn, row)
    }

    /// Runs one write operation (see [`Backend::run`]).
    pub fn run(&self, op: &Op<'_>) -> Result<OpResult, Error> {
        self.backend.run(&self.conn, op)
    }

    /// Makes sure coord's schema is in place before a write: a database
    /// written only by gptme-coordination lacks the gate table and the
    /// stored triggers. Checked first without the write lock.
    pub fn ensure_schema(&self) -> Result<(), Error> {
        if !self.backend.schema_current(&self.conn)? {
            self.backend.migrate(&self.conn)?;
        }
        Ok(())
    }

    /// Wraps a SQLite error on [`Db::conn`] with this database's path.
    pub fn err(&self, e: rusqlite::Error) -> Error {
        Error::sql(&self.path, self.busy_ms, e)
    }

    /// The type of `name` in the schema (`table`, `view`, ...), if any.
    pub fn object_type(&self, name: &str) -> Result<Option<String>, Error> {
        self.conn
            .query_row(
                "SELECT type FROM main.sqlite_schema WHERE name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Whether the database has the signed table `name` (`work` or
    /// `messages`), refusing a view by that name and a table from before
    /// signing (no `hmac` column), which `coord init` migrates.
    pub fn has_table(&self, name: &'static str) -> Result<bool, Error> {
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
                    return Err(Error::NoMacColumn {
                        table: name,
                        path: self.path.clone(),
                    });
                }
                Ok(true)
            }
            Some(kind) => Err(Error::NotATable {
                table: name,
                kind: kind.to_owned(),
                path: self.path.clone(),
            }),
        }
    }
}
