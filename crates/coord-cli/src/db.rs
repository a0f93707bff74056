//! Finding and opening the coordination database, as gptme-coordination
//! does, with coord's functions and TEMP views registered on the connection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coord_sql::ops::{OpError, OpResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::CliError;
use crate::remote::{self, RemoteError, Req, Server};

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

impl DbPath {
    /// The server URL, when the database is on a libSQL server rather than
    /// in a file (`http://`, `https://` or `libsql://`).
    pub fn url(&self) -> Option<&str> {
        self.path.to_str().filter(|s| remote::is_url(s))
    }
}

/// An open database with coord registered on it. For a server, `conn` is an
/// in-memory database on which coord decides, signs and verifies with this
/// machine's keys, and `server` is where the rows live (see remote.rs).
pub struct Db {
    pub conn: Connection,
    /// coord's state on `conn`: keys, the acting agent.
    pub coord: coord_sql::Handle,
    pub path: PathBuf,
    pub busy_ms: u64,
    pub server: Option<Server>,
}

/// The columns of gptme-coordination's tables that coord copies.
const WORK_COLS: &str =
    "task_id, claimer, epoch, claimed_at, expires_at, status, result, metadata, completed_at, hmac";
const MESSAGE_COLS: &str = "id, sender, recipient, channel, body, hmac, created_at";

/// Rows per request when copying from a server: small enough that a page
/// of ordinary rows stays far below a server's response size limit.
pub const PAGE_ROWS: u64 = 1000;

/// Which rows a read verb needs from a server database (a file needs no
/// copy and ignores it).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The `work` rows.
    pub work: WorkScope<'a>,
    /// The `messages` rows.
    pub messages: MessageScope<'a>,
}

impl Scope<'_> {
    /// Every row (status, audit, sql).
    pub const ALL: Scope<'static> = Scope {
        work: WorkScope::All,
        messages: MessageScope::All,
    };
}

/// The `work` rows a verb reads.
#[derive(Debug, Clone, Copy)]
pub enum WorkScope<'a> {
    /// None.
    None,
    /// All of them.
    All,
    /// Those `coord list FILTER [--agent A]` can show. The server's clock
    /// only narrows: every claimed row is sent for `claimed` and
    /// `expired`, and this machine's view decides which is which.
    List(crate::cli::ListFilter, Option<&'a str>),
}

impl WorkScope<'_> {
    fn server_filter(&self) -> Option<(&'static str, Vec<rusqlite::types::Value>)> {
        use crate::cli::ListFilter;
        use rusqlite::types::Value;
        let text = |a: Option<&str>| a.map_or(Value::Null, |a| Value::Text(a.to_owned()));
        match *self {
            WorkScope::None => None,
            WorkScope::All => Some(("1", Vec::new())),
            WorkScope::List(f, claimer) => Some((
                match f {
                    ListFilter::Available => {
                        "status IN ('available', 'abandoned') AND (?1 IS NULL OR claimer = ?1)"
                    }
                    ListFilter::Claimed | ListFilter::Expired => {
                        "status = 'claimed' AND (?1 IS NULL OR claimer = ?1)"
                    }
                    ListFilter::All => "?1 IS NULL OR claimer = ?1",
                },
                vec![text(claimer)],
            )),
        }
    }
}

/// The `messages` rows a verb reads.
#[derive(Debug, Clone, Copy)]
pub enum MessageScope<'a> {
    /// None.
    None,
    /// All of them.
    All,
    /// `coord inbox`: to `agent` or broadcast (`None`: all), on `channel`
    /// (`None`: any), the newest `limit`.
    Inbox {
        /// The reader.
        agent: Option<&'a str>,
        /// The channel.
        channel: Option<&'a str>,
        /// How many of the newest.
        limit: Option<u32>,
    },
}

impl MessageScope<'_> {
    #[allow(clippy::type_complexity)]
    fn server_filter(&self) -> Option<(&'static str, Vec<rusqlite::types::Value>, Option<u32>)> {
        use rusqlite::types::Value;
        let text = |a: Option<&str>| a.map_or(Value::Null, |a| Value::Text(a.to_owned()));
        match *self {
            MessageScope::None => None,
            MessageScope::All => Some(("1", Vec::new(), None)),
            MessageScope::Inbox {
                agent,
                channel,
                limit,
            } => Some((
                "(?1 IS NULL OR recipient = ?1 OR recipient IS NULL) AND (?2 IS NULL OR channel = ?2)",
                vec![text(agent), text(channel)],
                limit,
            )),
        }
    }
}

/// A server stream as a place coord-sql's migration runs: the same rule
/// for a server as for a file.
struct OnServer<'a, 'b>(&'a mut remote::Stream<'b>);

impl coord_sql::Target for OnServer<'_, '_> {
    type Error = RemoteError;

    fn text_rows(
        &mut self,
        sql: &str,
        args: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, RemoteError> {
        use rusqlite::types::Value;
        let args = args.iter().map(|a| Value::Text((*a).to_owned())).collect();
        Ok(self
            .0
            .execute(sql, args)?
            .rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| match v {
                        Value::Null => None,
                        Value::Text(t) => Some(t),
                        Value::Integer(i) => Some(i.to_string()),
                        Value::Real(f) => Some(f.to_string()),
                        Value::Blob(_) => None,
                    })
                    .collect()
            })
            .collect())
    }

    fn run(&mut self, sql: &str) -> Result<(), RemoteError> {
        self.0.sequence(sql)
    }

    fn autocommit(&mut self) -> bool {
        // Each use opens a fresh stream: no transaction is open on it.
        true
    }

    fn foreign(&self, e: coord_sql::SqlError) -> RemoteError {
        RemoteError::Sql(e.to_string())
    }
}

/// How far this machine's clock may be from the primary's before coord
/// refuses to decide a lease: claims compare expiry times.
pub const MAX_CLOCK_SKEW_S: f64 = 2.0;

impl Db {
    /// Opens an existing database. A missing file is an error that says how
    /// to create one: a typo in a path must not silently start an empty
    /// coordination database beside the real one.
    pub fn open(at: &DbPath, busy_ms: u64, agent: Option<&str>) -> Result<Db, CliError> {
        if let Some(url) = at.url() {
            return Self::open_remote(url, busy_ms, agent);
        }
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
        if let Some(url) = at.url() {
            let db = Self::open_remote(url, busy_ms, agent)?;
            let report = db.init_remote()?;
            return Ok((db, report));
        }
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
        // --as (or $COORDINATION_AGENT, already validated by the caller)
        // decides who this connection acts as.
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
        Ok(Db {
            conn,
            coord,
            path: path.to_owned(),
            busy_ms,
            server: None,
        })
    }

    /// A server database: an in-memory working copy with coord's schema,
    /// and the server. Nothing is sent until a verb needs it.
    fn open_remote(url: &str, busy_ms: u64, agent: Option<&str>) -> Result<Db, CliError> {
        let mut db = Self::open_flags(
            Path::new(":memory:"),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            busy_ms,
            agent,
        )?;
        db.path = PathBuf::from(url);
        coord_sql::init(&db.conn).map_err(|e| db.err(e))?;
        // While the primary is down a write waits; the busy timeout bounds
        // that wait, with a floor so one slow request is not an outage.
        let timeout = Duration::from_millis(busy_ms.max(5000));
        db.server = Some(Server::new(url, timeout));
        Ok(db)
    }

    /// Wraps a server error with the server's URL.
    pub fn remote_err(&self, e: RemoteError) -> CliError {
        let msg = e.to_string();
        if msg.contains("database is locked") || msg.contains("SQLITE_BUSY") {
            return CliError::Busy {
                path: self.path.clone(),
                ms: self.busy_ms,
            };
        }
        CliError::Remote {
            url: self.path.display().to_string(),
            source: e,
        }
    }

    /// Creates or migrates coord's schema on the server: coord-sql's one
    /// migration, run over a server stream (it takes the primary's write
    /// lock first, and writes nothing when the schema is current).
    fn init_remote(&self) -> Result<coord_sql::InitReport, CliError> {
        let Some(server) = &self.server else {
            return self.init();
        };
        let mut s = server.stream();
        let r = coord_sql::init(OnServer(&mut s));
        s.close();
        r.map_err(|e| self.remote_err(e))
    }

    /// For a server: copies into the working copy the `work` and `messages`
    /// rows `scope` asks for (filtered on the server, in pages of
    /// [`PAGE_ROWS`], all in one read transaction), and the `coord_gate`
    /// rows; coord's TEMP views then verify them with this machine's keys.
    /// The filter on the server only narrows what is sent; the command's own
    /// query still decides what it shows. Refuses a `work` or `messages`
    /// that is a view or lacks its `hmac` column, as a file's would be. A
    /// replica answers from its own copy, which may lag the primary. No-op
    /// for a file.
    pub fn sync(&self, scope: Scope<'_>) -> Result<(), CliError> {
        let Some(server) = &self.server else {
            return Ok(());
        };
        let mut s = server.stream();
        let r = self.sync_from(&mut s, scope);
        // Closing the stream ends its read transaction.
        s.close();
        r
    }

    fn sync_from(&self, s: &mut remote::Stream<'_>, scope: Scope<'_>) -> Result<(), CliError> {
        use rusqlite::types::Value;
        let rerr = |e: String| self.remote_err(RemoteError::Sql(e));
        let got = s
            .pipeline(&[
                Req::Execute("BEGIN", vec![]),
                Req::Execute(
                    "SELECT s.name, s.type,
                            (SELECT count(*) FROM pragma_table_info(s.name) AS p WHERE p.name = 'hmac')
                       FROM main.sqlite_schema AS s
                      WHERE s.name IN ('work', 'messages', 'coord_gate') COLLATE NOCASE",
                    vec![],
                ),
                Req::Execute("SELECT pattern, note FROM main.coord_gate", vec![]),
            ])
            .map_err(|e| self.remote_err(e))?;
        let mut got = got.into_iter();
        let mut next = || got.next().unwrap_or_else(|| Err("missing result".into()));
        next().map_err(rerr)?;
        let objects = next().map_err(rerr)?;
        let gate = next();
        let mut present = Vec::new();
        for row in &objects.rows {
            let [Value::Text(name), Value::Text(kind), macs] = row.as_slice() else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            let table: &'static str = match name.as_str() {
                "work" => "work",
                "messages" => "messages",
                _ => "coord_gate",
            };
            if kind != "table" {
                return Err(CliError::NotATable {
                    table,
                    kind: kind.clone(),
                    path: self.path.clone(),
                });
            }
            if table != "coord_gate" && *macs == Value::Integer(0) {
                return Err(CliError::NoMacColumn {
                    table,
                    path: self.path.clone(),
                });
            }
            present.push(table);
        }
        let gate = if present.contains(&"coord_gate") {
            gate.map_err(rerr)?.rows
        } else {
            Vec::new()
        };
        let work = match (present.contains(&"work"), scope.work.server_filter()) {
            (true, Some((filter, args))) => self.pages(
                s,
                &format!("SELECT rowid, {WORK_COLS} FROM main.work WHERE ({filter})"),
                "rowid",
                args,
                None,
            )?,
            _ => Vec::new(),
        };
        let messages = match (
            present.contains(&"messages"),
            scope.messages.server_filter(),
        ) {
            (true, Some((filter, args, limit))) => self.pages(
                s,
                &format!("SELECT id, {MESSAGE_COLS} FROM main.messages WHERE ({filter})"),
                "id",
                args,
                limit,
            )?,
            _ => Vec::new(),
        };
        self.load_copy(&work, &messages, &gate)
    }

    /// The rows of `select` (whose first column is the integer `key`) in
    /// pages of [`PAGE_ROWS`], newest `key` first when `limit` is given
    /// (the newest `limit` rows), else oldest first; without the key column.
    fn pages(
        &self,
        s: &mut remote::Stream<'_>,
        select: &str,
        key: &str,
        args: Vec<rusqlite::types::Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Vec<rusqlite::types::Value>>, CliError> {
        use rusqlite::types::Value;
        let (cmp, order) = if limit.is_some() {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let n = args.len();
        let sql = format!(
            "{select} AND (?{c} IS NULL OR {key} {cmp} ?{c}) ORDER BY {key} {order} LIMIT ?{l}",
            c = n + 1,
            l = n + 2
        );
        let mut out: Vec<Vec<Value>> = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let want = match limit {
                Some(l) => (u64::from(l) - out.len() as u64).min(PAGE_ROWS),
                None => PAGE_ROWS,
            };
            if want == 0 {
                break;
            }
            let mut a = args.clone();
            a.push(cursor.clone());
            a.push(Value::Integer(want as i64));
            let page = s.execute(&sql, a).map_err(|e| self.remote_err(e))?.rows;
            let got = page.len() as u64;
            if let Some(last) = page.last().and_then(|r| r.first()) {
                cursor = last.clone();
            }
            out.extend(page.into_iter().map(|mut r| {
                r.remove(0);
                r
            }));
            if got < want {
                break;
            }
        }
        Ok(out)
    }

    /// Replaces the working copy's rows.
    fn load_copy(
        &self,
        work: &[Vec<rusqlite::types::Value>],
        messages: &[Vec<rusqlite::types::Value>],
        gate: &[Vec<rusqlite::types::Value>],
    ) -> Result<(), CliError> {
        let c = &self.conn;
        let r = (|| -> rusqlite::Result<()> {
            c.execute_batch(
                "BEGIN; DELETE FROM main.work; DELETE FROM main.messages; DELETE FROM main.coord_gate;",
            )?;
            let mut ins = c.prepare(&format!(
                "INSERT INTO main.work({WORK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            for r in work {
                ins.execute(rusqlite::params_from_iter(r))?;
            }
            let mut ins = c.prepare(&format!(
                "INSERT INTO main.messages({MESSAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?;
            for r in messages {
                ins.execute(rusqlite::params_from_iter(r))?;
            }
            let mut ins =
                c.prepare("INSERT INTO main.coord_gate(pattern, note) VALUES (?1, ?2)")?;
            for r in gate {
                ins.execute(rusqlite::params_from_iter(r))?;
            }
            c.execute_batch("COMMIT")
        })();
        if r.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        r.map_err(|e| self.err(e))
    }

    /// Runs one write-API operation. On a file: on this connection, inside
    /// BEGIN IMMEDIATE (coord-sql's ops). On a server: one transaction on
    /// the primary (`BEGIN IMMEDIATE` is forwarded there even through a
    /// replica): read the task's row and the gate; run the same operation
    /// on the working copy, which decides and signs here; write the row
    /// back, guarded by every column as read; commit. A write that does not
    /// land exactly once is an error, never an outcome.
    pub fn op(
        &self,
        task: Option<&str>,
        f: impl FnOnce(&Connection) -> Result<OpResult, OpError>,
    ) -> Result<OpResult, CliError> {
        let Some(server) = &self.server else {
            return f(&self.conn).map_err(|e| self.op_err(e));
        };
        let mut s = server.stream();
        let r = self.op_remote(&mut s, task, f);
        if r.is_err() {
            let _ = s.execute("ROLLBACK", vec![]);
        }
        r
    }

    fn op_remote(
        &self,
        s: &mut remote::Stream<'_>,
        task: Option<&str>,
        f: impl FnOnce(&Connection) -> Result<OpResult, OpError>,
    ) -> Result<OpResult, CliError> {
        use rusqlite::types::Value;
        let rerr = |e: String| self.remote_err(RemoteError::Sql(e));
        let task_v: Value = task.map_or(Value::Null, |t| Value::Text(t.to_owned()));
        let got = s
            .pipeline(&[
                Req::Execute("BEGIN IMMEDIATE", vec![]),
                Req::Execute("SELECT unixepoch('subsec')", vec![]),
                Req::Execute(
                    &format!("SELECT {WORK_COLS} FROM main.work WHERE task_id = ?1"),
                    vec![task_v.clone()],
                ),
                Req::Execute("SELECT pattern, note FROM main.coord_gate", vec![]),
            ])
            .map_err(|e| self.remote_err(e))?;
        let mut got = got.into_iter();
        let mut next = || got.next().unwrap_or_else(|| Err("missing result".into()));
        next().map_err(rerr)?;
        let clock = next().map_err(rerr)?;
        let before = next().map_err(rerr)?.rows.into_iter().next();
        let gate = next().map_err(rerr)?.rows;

        // Leases compare expiry times written by many machines: decide
        // only with a clock that agrees with the primary's.
        let primary = match clock.rows.first().and_then(|r| r.first()) {
            Some(Value::Real(t)) => *t,
            Some(Value::Integer(t)) => *t as f64,
            _ => return Err(rerr("the primary did not tell its time".into())),
        };
        let skew = remote::local_unix_time() - primary;
        if skew.abs() > MAX_CLOCK_SKEW_S {
            return Err(CliError::ClockSkew { skew_s: skew });
        }

        self.load_copy(before.as_slice(), &[], &gate)?;
        let mut res = f(&self.conn).map_err(|e| self.op_err(e))?;

        let after: Option<Vec<Value>> = match task {
            None => None,
            Some(t) => self
                .conn
                .query_row(
                    &format!("SELECT {WORK_COLS} FROM main.work WHERE task_id = ?1"),
                    [t],
                    |r| (0..10).map(|i| r.get::<_, Value>(i)).collect(),
                )
                .optional()
                .map_err(|e| self.err(e))?,
        };
        if let Some(after) = after.filter(|a| Some(a) != before.as_ref()) {
            let wrote = match &before {
                None => s
                    .execute(
                        &format!(
                            "INSERT INTO main.work({WORK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                        ),
                        after,
                    )
                    .map_err(|e| self.remote_err(e))?,
                Some(old) => {
                    let mut args = after;
                    args.extend(old.iter().cloned());
                    s.execute(
                        "UPDATE main.work SET task_id = ?1, claimer = ?2, epoch = ?3, claimed_at = ?4,
                                expires_at = ?5, status = ?6, result = ?7, metadata = ?8,
                                completed_at = ?9, hmac = ?10
                          WHERE task_id IS ?11 AND claimer IS ?12 AND epoch IS ?13
                            AND claimed_at IS ?14 AND expires_at IS ?15 AND status IS ?16
                            AND result IS ?17 AND metadata IS ?18 AND completed_at IS ?19
                            AND hmac IS ?20",
                        args,
                    )
                    .map_err(|e| self.remote_err(e))?
                }
            };
            if wrote.affected != 1 {
                return Err(rerr(format!(
                    "the write changed {} rows instead of 1; nothing was committed",
                    wrote.affected
                )));
            }
        }
        if let (Some(local_id), None) = (res.message_id, task) {
            let row: Vec<Value> = self
                .conn
                .query_row(
                    "SELECT sender, recipient, channel, body, hmac, created_at FROM main.messages WHERE id = ?1",
                    [local_id],
                    |r| (0..6).map(|i| r.get::<_, Value>(i)).collect(),
                )
                .map_err(|e| self.err(e))?;
            let ins = s
                .execute(
                    "INSERT INTO main.messages(sender, recipient, channel, body, hmac, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    row,
                )
                .map_err(|e| self.remote_err(e))?;
            let id = ins
                .last_insert_rowid
                .ok_or_else(|| rerr("the server did not say which id the message got".into()))?;
            res.message_id = Some(id);
        }
        s.execute("COMMIT", vec![])
            .map_err(|e| self.remote_err(e))?;
        Ok(res)
    }

    /// Maps an operation's failure (not its outcome) to a CLI error.
    fn op_err(&self, e: OpError) -> CliError {
        match e {
            OpError::Busy => CliError::Busy {
                path: self.path.clone(),
                ms: self.busy_ms,
            },
            OpError::Sql(e) => self.err(e),
            OpError::NotSetUp(m) => {
                CliError::Other(format!("database {}: {m}", self.path.display()))
            }
        }
    }

    /// Wraps a SQLite error with this database's path.
    pub fn err(&self, e: rusqlite::Error) -> CliError {
        CliError::sql(&self.path, self.busy_ms, e)
    }

    /// Runs coord's schema creation or migration (coord-sql takes the
    /// write lock itself, and only when something must change).
    fn init(&self) -> Result<coord_sql::InitReport, CliError> {
        coord_sql::init(&self.conn).map_err(|e| self.err(e))
    }

    /// Makes sure coord's schema is in place before a write: a database
    /// written only by gptme-coordination lacks the gate table and the
    /// stored triggers. Checked first without the write lock, so that
    /// concurrent writers on a ready database never contend for it here.
    pub fn ensure_schema(&self) -> Result<(), CliError> {
        if self.server.is_some() {
            if !self.remote_schema_ready()? {
                self.init_remote()?;
            }
            return Ok(());
        }
        if !self.schema_ready()? {
            self.init()?;
        }
        Ok(())
    }

    fn remote_schema_ready(&self) -> Result<bool, CliError> {
        let Some(server) = &self.server else {
            return self.schema_ready();
        };
        let mut s = server.stream();
        let r = coord_sql::schema_current(&mut OnServer(&mut s));
        s.close();
        r.map_err(|e| self.remote_err(e))
    }

    fn schema_ready(&self) -> Result<bool, CliError> {
        coord_sql::schema_current(&mut &self.conn).map_err(|e| self.err(e))
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
