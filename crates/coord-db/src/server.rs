//! A coordination database on a libSQL server (`sqld`).
//!
//! What runs where (see docs/cluster.md): the server only stores rows and
//! serializes writes. Keys never leave this process. Reads copy the raw
//! `work` and `messages` rows a command needs into the in-memory working
//! copy, where coord's own functions and TEMP views verify them with this
//! machine's keys. A write runs as one interactive transaction on the
//! primary (`BEGIN IMMEDIATE` is forwarded to the primary even through a
//! replica, and everything after it in the stream runs there): read the
//! task's row and the gate; run the operation on the working copy, which
//! decides and signs here; run sql/writes.sql's writes and check on the
//! primary with that decision; commit.

use std::path::Path;
use std::time::Duration;

use coord_sql::ops::{Op, OpResult};
use coord_sql::writes;
use coord_sql::InitReport;
use rusqlite::types::Value;
use rusqlite::Connection;

use crate::backend::{op_error, Backend, CHECKPOINT_COLS};
use crate::hrana::{self, RemoteError, Req, Stream};
use crate::{Error, Scope, PAGE_ROWS};

/// The columns of gptme-coordination's tables that the working copy holds.
const WORK_COLS: &str =
    "task_id, claimer, epoch, claimed_at, expires_at, status, result, metadata, completed_at, hmac";
const MESSAGE_COLS: &str = "id, sender, recipient, channel, body, hmac, created_at";
/// The columns of the event log.
const EVENT_COLS: &str = "seq, prev, op, subject, at, agent, state, hmac";
/// The last event of each task and message named in ?1 (a JSON array of
/// ids, as text): what those rows' history column is read against.
const LAST_EVENTS: &str =
    "SELECT seq, prev, op, subject, at, agent, state, hmac FROM main.coord_events
  WHERE seq IN (SELECT max(seq) FROM main.coord_events
                 WHERE subject IN (SELECT value FROM json_each(?1))
                 GROUP BY op = 'send', subject)";

/// How far this machine's clock may be from the primary's before coord
/// refuses to decide a lease: claims compare expiry times.
pub const MAX_CLOCK_SKEW_S: f64 = 2.0;

/// A libSQL server.
pub struct Server {
    server: hrana::Server,
    url: String,
    busy_ms: u64,
}

/// A server stream as a place coord-sql's migration runs: the same rule
/// for a server as for a file.
struct OnServer<'a, 'b>(&'a mut Stream<'b>);

impl coord_sql::Target for OnServer<'_, '_> {
    type Error = RemoteError;

    fn text_rows(
        &mut self,
        sql: &str,
        args: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, RemoteError> {
        let args = args.iter().map(|a| Value::Text((*a).to_owned())).collect();
        Ok(self
            .0
            .execute(sql, args)?
            .rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| match v {
                        Value::Null | Value::Blob(_) => None,
                        Value::Text(t) => Some(t),
                        Value::Integer(i) => Some(i.to_string()),
                        Value::Real(f) => Some(f.to_string()),
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

impl Server {
    /// The server at `url`. While the primary is down a write waits; the
    /// busy timeout bounds that wait, with a floor so that one slow request
    /// is not an outage.
    pub(crate) fn new(url: &str, busy_ms: u64) -> Server {
        let timeout = Duration::from_millis(busy_ms.max(5000));
        Server {
            server: hrana::Server::new(url, timeout),
            url: url.to_owned(),
            busy_ms,
        }
    }

    /// Wraps a server error with the server's URL; "locked" is [`Error::Busy`].
    fn remote_err(&self, e: RemoteError) -> Error {
        let msg = e.to_string();
        if msg.contains("database is locked") || msg.contains("SQLITE_BUSY") {
            return Error::Busy {
                path: self.url.clone().into(),
                ms: self.busy_ms,
            };
        }
        Error::Remote {
            url: self.url.clone(),
            source: e,
        }
    }

    fn sql_err(&self, e: String) -> Error {
        self.remote_err(RemoteError::Sql(e))
    }

    fn local_err(&self, e: rusqlite::Error) -> Error {
        Error::sql(Path::new(&self.url), self.busy_ms, e)
    }

    fn load_from(
        &self,
        conn: &Connection,
        s: &mut Stream<'_>,
        scope: Scope<'_>,
        seen: Option<i64>,
    ) -> Result<(), Error> {
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
        next().map_err(|e| self.sql_err(e))?;
        let objects = next().map_err(|e| self.sql_err(e))?;
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
                return Err(Error::NotATable {
                    table,
                    kind: kind.clone(),
                    path: self.url.clone().into(),
                });
            }
            if table != "coord_gate" && *macs == Value::Integer(0) {
                return Err(Error::NoMacColumn {
                    table,
                    path: self.url.clone().into(),
                });
            }
            present.push(table);
        }
        let gate = if present.contains(&"coord_gate") {
            gate.map_err(|e| self.sql_err(e))?.rows
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
        // Everything for a whole-database read (audit replays the log) or
        // for a client that has not witnessed this log yet; else the last
        // event of each task and message, which the rows' history column
        // is read against, and what this client's witness has not seen
        // (with the first event, which names the log, and the last seen).
        let events = if !present.contains(&"work") && !present.contains(&"messages") {
            Vec::new()
        } else if matches!(scope.work, crate::WorkScope::All) || seen.is_none() {
            self.pages(
                s,
                &format!("SELECT seq, {EVENT_COLS} FROM main.coord_events WHERE 1"),
                "seq",
                Vec::new(),
                None,
            )?
        } else {
            let mut by_seq = std::collections::BTreeMap::new();
            // only the subjects of the rows read: a read of a few rows of
            // a large database fetches a few events
            let subjects: Vec<String> = work
                .iter()
                .chain(&messages)
                .filter_map(|r| match r.first() {
                    Some(Value::Text(t)) => Some(t.clone()),
                    Some(Value::Integer(i)) => Some(i.to_string()),
                    _ => None,
                })
                .collect();
            let mut last = Vec::new();
            for chunk in subjects.chunks(PAGE_ROWS as usize) {
                let ids = serde_json::Value::from(chunk.to_vec()).to_string();
                last.extend(
                    s.execute(LAST_EVENTS, vec![Value::Text(ids)])
                        .map_err(|e| self.remote_err(e))?
                        .rows,
                );
            }
            // (two queries: an OR of the two would scan the whole log)
            let first = s
                .execute(
                    &format!("SELECT {EVENT_COLS} FROM main.coord_events WHERE seq = 1"),
                    vec![],
                )
                .map_err(|e| self.remote_err(e))?
                .rows;
            let new = self.pages(
                s,
                &format!("SELECT seq, {EVENT_COLS} FROM main.coord_events WHERE seq >= ?1"),
                "seq",
                vec![Value::Integer(seen.unwrap_or(0))],
                None,
            )?;
            for r in last.into_iter().chain(first).chain(new) {
                if let Some(Value::Integer(seq)) = r.first() {
                    by_seq.insert(*seq, r);
                }
            }
            by_seq.into_values().collect()
        };
        // Checkpoints are checked against the whole log only.
        let checkpoints = if events.is_empty() || !matches!(scope.work, crate::WorkScope::All) {
            Vec::new()
        } else {
            self.pages(
                s,
                &format!("SELECT id, id, {CHECKPOINT_COLS} FROM main.coord_checkpoints WHERE 1"),
                "id",
                Vec::new(),
                None,
            )?
        };
        let copy = Copy {
            work: &work,
            messages: &messages,
            gate: &gate,
            events: &events,
            checkpoints: &checkpoints,
            message_seq: None,
        };
        load_copy(conn, &copy).map_err(|e| self.local_err(e))
    }

    /// The rows of `select` (whose first column is the integer `key`) in
    /// pages of [`PAGE_ROWS`], newest `key` first when `limit` is given
    /// (the newest `limit` rows), else oldest first; without the key column.
    fn pages(
        &self,
        s: &mut Stream<'_>,
        select: &str,
        key: &str,
        args: Vec<Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Vec<Value>>, Error> {
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

    fn run_on(
        &self,
        conn: &Connection,
        s: &mut Stream<'_>,
        op: &Op<'_>,
    ) -> Result<OpResult, Error> {
        let task: Value = op
            .task_id()
            .map_or(Value::Null, |t| Value::Text(t.to_owned()));
        let got = s
            .pipeline(&[
                Req::Execute("BEGIN IMMEDIATE", vec![]),
                Req::Execute("SELECT unixepoch('subsec')", vec![]),
                Req::Execute(
                    &format!("SELECT {WORK_COLS} FROM main.work WHERE task_id = ?1"),
                    vec![task],
                ),
                Req::Execute("SELECT pattern, note FROM main.coord_gate", vec![]),
                // the log's head, which the operation's event extends
                Req::Execute(
                    "SELECT seq, prev, op, subject, at, agent, state, hmac FROM main.coord_events
                      ORDER BY seq DESC LIMIT 1",
                    vec![],
                ),
                // the id the next message gets, so that the event signed
                // here names the row the primary writes
                Req::Execute(
                    "SELECT max(COALESCE((SELECT seq FROM main.sqlite_sequence WHERE name = 'messages'), 0),
                                COALESCE((SELECT max(id) FROM main.messages), 0))",
                    vec![],
                ),
            ])
            .map_err(|e| self.remote_err(e))?;
        let mut got = got.into_iter();
        let mut next = || got.next().unwrap_or_else(|| Err("missing result".into()));
        next().map_err(|e| self.sql_err(e))?;
        let clock = next().map_err(|e| self.sql_err(e))?;
        let before = next().map_err(|e| self.sql_err(e))?.rows;
        let gate = next().map_err(|e| self.sql_err(e))?.rows;
        let head = next().map_err(|e| self.sql_err(e))?.rows;
        let message_seq = next()
            .map_err(|e| self.sql_err(e))?
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next());

        // Leases compare expiry times written by many machines: decide
        // only with a clock that agrees with the primary's.
        let primary = match clock.rows.first().and_then(|r| r.first()) {
            Some(Value::Real(t)) => *t,
            Some(Value::Integer(t)) => *t as f64,
            _ => return Err(self.sql_err("the primary did not tell its time".into())),
        };
        let skew = hrana::local_unix_time() - primary;
        if skew.abs() > MAX_CLOCK_SKEW_S {
            return Err(Error::ClockSkew { skew_s: skew });
        }

        // Decide and sign here, on a copy of the task's row as the primary
        // holds it now (its write lock is ours until COMMIT).
        let copy = Copy {
            work: &before,
            messages: &[],
            gate: &gate,
            events: &head,
            checkpoints: &[],
            message_seq,
        };
        load_copy(conn, &copy).map_err(|e| self.local_err(e))?;
        let mut res = coord_sql::ops::run_op(conn, op)
            .map_err(|e| op_error(Path::new(&self.url), self.busy_ms, e))?;
        let decision = writes::decision(conn)
            .map_err(|e| self.local_err(e))?
            .ok_or_else(|| self.sql_err("the operation recorded no decision".into()))?;

        // The same writes and checks as the write API's triggers run on a
        // file, with this decision as `coord_result`: the operation's, then
        // its event's.
        let mut sql: Vec<(String, Stmt)> = Vec::new();
        for (kind, own) in [(op.kind(), Stmt::Write), (writes::Kind::Event, Stmt::Event)] {
            let w = writes::writes(kind);
            sql.extend(w.statements.iter().map(|s| (writes::with_decision(s), own)));
            sql.push((writes::with_decision(w.check), Stmt::Check));
        }
        let reqs: Vec<Req<'_>> = sql
            .iter()
            .map(|(s, _)| Req::Execute(s, decision.clone()))
            .collect();
        let results = s.pipeline(&reqs).map_err(|e| self.remote_err(e))?;
        let mut last_insert = None;
        for (r, (_, what)) in results.into_iter().zip(&sql) {
            let rows = r.map_err(|e| self.sql_err(e))?;
            match what {
                Stmt::Check => {
                    if let Some(problem) = rows.rows.into_iter().next() {
                        let problem = match problem.into_iter().next() {
                            Some(Value::Text(t)) => t,
                            _ => "a write did not apply".to_owned(),
                        };
                        return Err(Error::NotApplied {
                            url: self.url.clone(),
                            problem,
                        });
                    }
                }
                Stmt::Write if rows.affected > 0 => last_insert = rows.last_insert_rowid,
                _ => {}
            }
        }
        if res.message_id.is_some() {
            // The server's id, not the working copy's.
            res.message_id = Some(last_insert.ok_or_else(|| {
                self.sql_err("the server did not say which id the message got".into())
            })?);
        }
        s.execute("COMMIT", vec![])
            .map_err(|e| self.remote_err(e))?;
        Ok(res)
    }
}

impl Backend for Server {
    fn migrate(&self, _conn: &Connection) -> Result<InitReport, Error> {
        // coord-sql's one migration, over a server stream: it takes the
        // primary's write lock first, and writes nothing when current.
        let mut s = self.server.stream();
        let r = coord_sql::init(OnServer(&mut s));
        s.close();
        r.map_err(|e| self.remote_err(e))
    }

    fn schema_current(&self, _conn: &Connection) -> Result<bool, Error> {
        let mut s = self.server.stream();
        let r = coord_sql::schema_current(&mut OnServer(&mut s));
        s.close();
        r.map_err(|e| self.remote_err(e))
    }

    /// Copies into the working copy the `work` and `messages` rows `scope`
    /// asks for (filtered on the server, in pages of [`PAGE_ROWS`], all in
    /// one read transaction), and the `coord_gate` rows. The filter only
    /// narrows what is sent; the command's own query still decides what it
    /// shows. Refuses a `work` or `messages` that is a view or lacks its
    /// `hmac` column, as a file's would be. A replica answers from its own
    /// copy, which may lag the primary.
    fn load(&self, conn: &Connection, scope: Scope<'_>, seen: Option<i64>) -> Result<(), Error> {
        let mut s = self.server.stream();
        let r = self.load_from(conn, &mut s, scope, seen);
        // Closing the stream ends its read transaction.
        s.close();
        r
    }

    fn add_checkpoint(&self, _conn: &Connection, row: &[Value]) -> Result<i64, Error> {
        let mut s = self.server.stream();
        let r = s.execute(
            &format!(
                "INSERT INTO main.coord_checkpoints({CHECKPOINT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            row.to_vec(),
        );
        s.close();
        let r = r.map_err(|e| self.remote_err(e))?;
        r.last_insert_rowid.ok_or_else(|| {
            self.sql_err("the server did not say which id the checkpoint got".into())
        })
    }

    fn run(&self, conn: &Connection, op: &Op<'_>) -> Result<OpResult, Error> {
        let mut s = self.server.stream();
        let r = self.run_on(conn, &mut s, op);
        if r.is_err() {
            let _ = s.execute("ROLLBACK", vec![]);
        }
        r
    }
}

/// What a statement sent to the primary is, for reading its result.
#[derive(Clone, Copy)]
enum Stmt {
    /// One of the operation's writes (a message's id comes from it).
    Write,
    /// The event's write.
    Event,
    /// A check: a row is the problem.
    Check,
}

/// The rows the working copy is given: the server's, as read.
struct Copy<'a> {
    work: &'a [Vec<Value>],
    messages: &'a [Vec<Value>],
    gate: &'a [Vec<Value>],
    events: &'a [Vec<Value>],
    checkpoints: &'a [Vec<Value>],
    /// The primary's last message id (AUTOINCREMENT), for a write.
    message_seq: Option<Value>,
}

/// Replaces the working copy's rows.
fn load_copy(c: &Connection, copy: &Copy<'_>) -> rusqlite::Result<()> {
    let r = (|| -> rusqlite::Result<()> {
        // The working copy is this process's own memory, so the log's
        // append-only triggers, there to stop clients, would only stop
        // the copy from being replaced.
        c.execute_batch(
            "BEGIN; DROP TRIGGER IF EXISTS main.coord_events_no_update;
             DROP TRIGGER IF EXISTS main.coord_events_no_delete;
             DELETE FROM main.work; DELETE FROM main.messages; DELETE FROM main.coord_gate;
             DELETE FROM main.coord_events; DELETE FROM main.coord_checkpoints;",
        )?;
        let mut ins = c.prepare(&format!(
            "INSERT INTO main.work({WORK_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))?;
        for r in copy.work {
            ins.execute(rusqlite::params_from_iter(r))?;
        }
        let mut ins = c.prepare(&format!(
            "INSERT INTO main.messages({MESSAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?;
        for r in copy.messages {
            ins.execute(rusqlite::params_from_iter(r))?;
        }
        let mut ins = c.prepare("INSERT INTO main.coord_gate(pattern, note) VALUES (?1, ?2)")?;
        for r in copy.gate {
            ins.execute(rusqlite::params_from_iter(r))?;
        }
        let mut ins = c.prepare(&format!(
            "INSERT INTO main.coord_events({EVENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?;
        for r in copy.events {
            ins.execute(rusqlite::params_from_iter(r))?;
        }
        let mut ins = c.prepare(&format!(
            "INSERT INTO main.coord_checkpoints(id, {CHECKPOINT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?;
        for r in copy.checkpoints {
            ins.execute(rusqlite::params_from_iter(r))?;
        }
        if let Some(seq) = &copy.message_seq {
            c.execute(
                "DELETE FROM main.sqlite_sequence WHERE name = 'messages'",
                [],
            )?;
            c.execute(
                "INSERT INTO main.sqlite_sequence(name, seq) VALUES ('messages', ?1)",
                [seq],
            )?;
        }
        c.execute_batch("COMMIT")
    })();
    if r.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    r
}
