//! Signed history, read: what the log and the rows say about each other
//! ([`check`]), and this client's witness of the log, kept outside the
//! database ([`Witness`]), which catches a rollback of the whole file.
//! docs/history.md gives the design.

use std::path::{Path, PathBuf};

use coord_core::Chain;
use rusqlite::types::Value;
use serde_json::json;

use crate::{Db, Error};

/// One thing the log reports as wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// What: `bad_mac`, `gap`, `broken`, `not_holder`, `not_sender`,
    /// `held`, `changed`, `deleted`, `rollback`, `fork`, `replaced`,
    /// `checkpoint_ahead`, `checkpoint_fork`.
    pub what: &'static str,
    /// The event's seq, when it is about one.
    pub seq: Option<i64>,
    /// One line for people.
    pub detail: String,
}

impl Problem {
    /// The problem as JSON: `{"problem", "seq", "detail"}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"problem": self.what, "seq": self.seq, "detail": self.detail})
    }
}

/// The log as this client reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    /// Events in the log.
    pub events: i64,
    /// The link of the first event: the log's name.
    pub origin: Option<String>,
    /// The link of the last event.
    pub head: Option<String>,
    /// Problems found, in log order.
    pub problems: Vec<Problem>,
    /// Rows per history value (`no_history`, `matches`, ...), tasks then
    /// messages.
    pub work_history: Vec<(String, i64)>,
    /// The same for messages.
    pub message_history: Vec<(String, i64)>,
}

impl Log {
    /// The log as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let counts = |v: &[(String, i64)]| {
            v.iter()
                .map(|(k, n)| (k.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
        };
        json!({
            "events": self.events,
            "origin": self.origin,
            "head": self.head,
            "work_history": counts(&self.work_history),
            "message_history": counts(&self.message_history),
            "problems": self.problems.iter().map(Problem::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Reads the whole log through coord's `coord_log` and `coord_checkpoint_log`
/// views and names every event that does not verify, is out of the chain or
/// was made by an agent not allowed to, and every row that is not what its
/// last event says.
pub fn check(db: &Db) -> Result<Log, Error> {
    let err = |e| db.err(e);
    let mut log = Log::default();
    if !db.has_table("coord_events")? {
        return Ok(log);
    }
    // The views were made before the table, maybe (a database migrated by
    // another process since this connection opened).
    coord_sql::refresh(&db.conn).map_err(err)?;
    let mut st = db
        .conn
        .prepare(
            "SELECT seq, op, subject, agent, link, verification, chain, actor, row
               FROM coord_log ORDER BY seq",
        )
        .map_err(err)?;
    let mut rows = st.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let seq: i64 = r.get(0).map_err(err)?;
        let op = lossy(r, 1).map_err(err)?;
        let subject: Value = r.get(2).map_err(err)?;
        let agent = lossy(r, 3).map_err(err)?;
        let link: Option<String> = r.get(4).map_err(err)?;
        let status = lossy(r, 5).map_err(err)?;
        let chain = lossy(r, 6).map_err(err)?;
        let actor = lossy(r, 7).map_err(err)?;
        let row = lossy(r, 8).map_err(err)?;
        log.events += 1;
        if log.origin.is_none() && seq == 1 {
            log.origin = link.clone();
        }
        log.head = link;
        let subject = match subject {
            Value::Text(t) => t,
            Value::Integer(i) => i.to_string(),
            other => format!("{other:?}"),
        };
        let what = format!("event {seq} ({op} of {subject} by {agent})");
        if status == "bad_mac" {
            log.problems.push(bad_mac(seq, &what, &agent));
        }
        let chain = match chain.as_str() {
            "gap" => Chain::Gap,
            "broken" => Chain::Broken,
            _ => Chain::Ok,
        };
        log.problems.extend(out_of_chain(seq, &what, chain));
        let mut add = |w: &'static str, detail: String| {
            log.problems.push(Problem {
                what: w,
                seq: Some(seq),
                detail,
            });
        };
        match actor.as_str() {
            "not_holder" => add("not_holder", format!("{what}: {agent} did not hold it")),
            "not_sender" => add("not_sender", format!("{what}: {agent} is not the sender")),
            "held" => add(
                "held",
                // coord's compare-and-swap never grants over a live lease,
                // so either the row changed outside history in between
                // (say a gptme agent completed it) or a client broke it.
                format!(
                    "{what}: the log shows another agent's live lease: the task was changed \
                     outside history before this claim, or {agent}'s client broke the lease"
                ),
            ),
            _ => {}
        }
        match row.as_str() {
            "changed" => add(
                "changed",
                format!("{what}: the row now differs from this, its last event (changed outside history)"),
            ),
            "deleted" => add(
                "deleted",
                format!("{what}: the row this event made was deleted"),
            ),
            _ => {}
        }
    }
    drop(rows);
    drop(st);
    if db.has_table("coord_checkpoints")? {
        let mut st = db
            .conn
            .prepare(
                "SELECT id, agent, size, verification, consistency FROM coord_checkpoint_log
                  ORDER BY id",
            )
            .map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let id: i64 = r.get(0).map_err(err)?;
            let agent = lossy(r, 1).map_err(err)?;
            let size = lossy(r, 2).map_err(err)?;
            let status = lossy(r, 3).map_err(err)?;
            let consistency = lossy(r, 4).map_err(err)?;
            let what = format!("checkpoint {id} ({agent}: {size} events)");
            if !matches!(status.as_str(), "verified" | "retired_key") {
                log.problems.push(Problem {
                    what: "bad_mac",
                    seq: None,
                    detail: format!("{what}: {status}"),
                });
            }
            match consistency.as_str() {
                "ahead" => log.problems.push(Problem {
                    what: "checkpoint_ahead",
                    seq: None,
                    detail: format!(
                        "{what}: the log has fewer events than {agent} signed (rolled back or truncated)"
                    ),
                }),
                "fork" => log.problems.push(Problem {
                    what: "checkpoint_fork",
                    seq: None,
                    detail: format!("{what}: the log is not the one {agent} signed"),
                }),
                _ => {}
            }
        }
    }
    for (view, into) in [
        ("coord_work", &mut log.work_history),
        ("coord_messages", &mut log.message_history),
    ] {
        let mut st = db
            .conn
            .prepare(&format!(
                "SELECT history, count(*) FROM {view} GROUP BY history ORDER BY history"
            ))
            .map_err(err)?;
        *into = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
    }
    Ok(log)
}

/// [`check`], then this client's witness in its usual place (when there
/// is a home to keep it in): the log, and what the witness found wrong.
pub fn check_witnessed(db: &Db) -> Result<(Log, Vec<Problem>), Error> {
    let log = check(db)?;
    let witnessed = match Witness::default_place() {
        Some(w) => w.observe(db, &log)?,
        None => Vec::new(),
    };
    Ok((log, witnessed))
}

/// This client's memory of logs it has read: for each log (named by its
/// origin), the newest size and head it saw, in a file outside every
/// database (`$XDG_STATE_HOME/coord/`, else `~/.local/state/coord/`), and
/// for each database, the log it held.
pub struct Witness {
    dir: PathBuf,
}

impl Witness {
    /// The witness in the usual place, or `None` when there is no home.
    pub fn default_place() -> Option<Witness> {
        let base = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state"))
            })?;
        Some(Witness {
            dir: base.join("coord"),
        })
    }

    /// A witness keeping its files in `dir`.
    pub fn at(dir: &Path) -> Witness {
        Witness {
            dir: dir.to_owned(),
        }
    }

    /// Where the memory of the log `origin` is kept. A file's log is one
    /// memory wherever the file is (an older copy at another path is still
    /// a rollback); a server's is per URL, because a replica may rightly be
    /// behind the primary this client read a moment ago, but never behind
    /// itself.
    fn log_file(&self, origin: &str, db: &Path) -> Option<PathBuf> {
        // An origin is a SHA-256 in hex: nothing else names a file here.
        if !(origin.len() == 64 && origin.bytes().all(|b| b.is_ascii_hexdigit())) {
            return None;
        }
        Some(if crate::hrana::is_url(&db.to_string_lossy()) {
            self.dir
                .join(format!("log-{origin}-{}.json", name_hash(db)))
        } else {
            self.dir.join(format!("log-{origin}.json"))
        })
    }

    fn db_file(&self, db: &Path) -> PathBuf {
        self.dir.join(format!("db-{}.json", name_hash(db)))
    }

    /// What this witness remembers of the log `db` held: its origin (from
    /// the database's file) and that log's size and head.
    fn memory(&self, db: &Path) -> Memory {
        let db_file = self.db_file(db);
        let origin = read_json(&db_file)
            .and_then(|v| v.get("origin").and_then(|o| o.as_str()).map(str::to_owned));
        let seen = origin
            .as_deref()
            .and_then(|o| self.log_file(o, db))
            .and_then(|f| read_json(&f))
            .map(|v| Seen {
                size: v
                    .get("size")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0),
                head: v
                    .get("head")
                    .and_then(|h| h.as_str())
                    .unwrap_or("")
                    .to_owned(),
                at: v
                    .get("at")
                    .and_then(|h| h.as_str())
                    .unwrap_or("")
                    .to_owned(),
            });
        Memory {
            db_file,
            origin,
            seen,
        }
    }

    /// How many events of the log `db` held this witness has seen, if it
    /// saw any: a server backend fetches only the events after them.
    pub fn seen_size(&self, db: &Path) -> Option<i64> {
        self.memory(db).seen.map(|s| s.size)
    }

    /// The log now (`origin`, `events`) against what this witness saw of
    /// the database before: replaced, rolled back, or forked.
    fn compare(
        &self,
        db: &Db,
        origin: Option<&str>,
        events: i64,
    ) -> Result<(Vec<Problem>, Memory), Error> {
        let mut problems = Vec::new();
        let mut mem = self.memory(&db.path);
        match (&mem.origin, origin) {
            (Some(seen), Some(now)) if seen != now => {
                problems.push(Problem {
                    what: "replaced",
                    seq: None,
                    detail: format!(
                        "this database held the log {} when this client last read it; it now holds {}",
                        short(seen),
                        short(now)
                    ),
                });
                // what was seen of the other log says nothing of this one
                mem.seen = None;
            }
            (Some(seen), None) => problems.push(Problem {
                what: "rollback",
                seq: None,
                detail: format!(
                    "this database held the log {} when this client last read it; it now has no events",
                    short(seen)
                ),
            }),
            _ => {}
        }
        if let (Some(seen), Some(_)) = (&mem.seen, origin) {
            if seen.size > events {
                problems.push(Problem {
                    what: "rollback",
                    seq: None,
                    detail: format!(
                        "this client saw {} events (head {}) at {}; the log now has {events}: \
                         an older copy, or its newest events deleted",
                        seen.size,
                        short(&seen.head),
                        seen.at
                    ),
                });
            } else if seen.size > 0 && link_at(db, seen.size)?.as_deref() != Some(&seen.head) {
                problems.push(Problem {
                    what: "fork",
                    seq: Some(seen.size),
                    detail: format!(
                        "event {} is not the one this client saw at {}: the log was rewritten",
                        seen.size, seen.at
                    ),
                });
            }
        }
        Ok((problems, mem))
    }

    /// Remembers that `db` holds the log `origin`, seen up to `size`
    /// events ending in `head`.
    fn remember(
        &self,
        db: &Db,
        mem: &Memory,
        origin: &str,
        size: i64,
        head: Option<&str>,
    ) -> Result<(), Error> {
        let Some(file) = self.log_file(origin, &db.path) else {
            return Ok(());
        };
        write_json(
            &file,
            &json!({"origin": origin, "size": size, "head": head, "at": unix_now()}),
        )?;
        write_json(
            &mem.db_file,
            &json!({"db": db.path.display().to_string(), "origin": origin}),
        )
    }

    /// Checks that `log` (read whole by [`check`]) extends what this client
    /// saw of it before (and that the database still holds the same log),
    /// then remembers `log`'s head. A log that does not is left as
    /// remembered, so the problem is reported again until someone looks.
    pub fn observe(&self, db: &Db, log: &Log) -> Result<Vec<Problem>, Error> {
        let (problems, mem) = self.compare(db, log.origin.as_deref(), log.events)?;
        let broken = log
            .problems
            .iter()
            .any(|p| matches!(p.what, "gap" | "broken"));
        if let (true, false, Some(origin)) = (problems.is_empty(), broken, &log.origin) {
            self.remember(db, &mem, origin, log.events, log.head.as_deref())?;
        }
        Ok(problems)
    }

    /// The check every read runs, costing what the log grew by since this
    /// client last read it: the log still starts where it did, is no
    /// shorter, still holds the event this client saw last, and the events
    /// after it follow on from it (numbered on, chained, no MAC that fails).
    /// Then remembers the new head. It does not re-verify what it saw
    /// before; `coord audit` checks the whole log.
    pub fn observe_read(&self, db: &Db) -> Result<Vec<Problem>, Error> {
        if !db.has_table("coord_events")? {
            // a database whose log is gone is a rollback too, if we saw one
            let (problems, _) = self.compare(db, None, 0)?;
            return Ok(problems);
        }
        let err = |e| db.err(e);
        let events: i64 = db
            .conn
            .query_row(
                "SELECT COALESCE(max(seq), 0) FROM main.coord_events",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let origin = if events > 0 { link_at(db, 1)? } else { None };
        let (mut problems, mem) = self.compare(db, origin.as_deref(), events)?;
        let Some(origin) = origin else {
            return Ok(problems);
        };
        if !problems.is_empty() {
            return Ok(problems);
        }
        let (mut seq, mut head) = match &mem.seen {
            Some(s) => (s.size, s.head.clone()),
            None => (0, String::new()),
        };
        if mem.seen.is_none() {
            // The first read of this log: all of it, on every core.
            self.first_read(db, &mut problems, &mut seq, &mut head)?;
        } else {
            self.read_on(db, &mut problems, &mut seq, &mut head)?;
        }
        if seq > mem.seen.as_ref().map_or(0, |s| s.size) {
            self.remember(db, &mem, &origin, seq, Some(&head))?;
        }
        Ok(problems)
    }

    /// [`Witness::observe_read`] over a whole log this client has not
    /// seen: the parallel replay ([`crate::replay`]), with the keys coord
    /// finds for each agent, stopping at the first event that does not
    /// follow on.
    fn first_read(
        &self,
        db: &Db,
        problems: &mut Vec<Problem>,
        seq: &mut i64,
        head: &mut String,
    ) -> Result<(), Error> {
        let ring = crate::replay::keyring_from(&db.conn, &coord_keys::Lookup::process())?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut stopped = false;
        crate::replay::verify_each(&db.conn, &ring, threads, |v| {
            if stopped {
                return;
            }
            let what = format!("event {}", v.seq);
            let problem = out_of_chain(v.seq, &what, v.chain).or_else(|| {
                (v.status == coord_core::Status::BadMac).then(|| bad_mac(v.seq, &what, "its agent"))
            });
            if let Some(p) = problem {
                problems.push(p);
                stopped = true;
                return;
            }
            *seq = v.seq;
            v.link.unwrap_or_default().clone_into(head);
        })?;
        Ok(())
    }

    /// [`Witness::observe_read`] over the events after the one last seen,
    /// through coord's SQL functions (a few events, as a rule).
    fn read_on(
        &self,
        db: &Db,
        problems: &mut Vec<Problem>,
        seq: &mut i64,
        head: &mut String,
    ) -> Result<(), Error> {
        let err = |e| db.err(e);
        let mut st = db
            .conn
            .prepare(
                "SELECT seq, prev, op, agent,
                        coord_event_link(agent, hmac, seq, prev, op, subject, at, state),
                        coord_event_status(agent, hmac, seq, prev, op, subject, at, state)
                   FROM main.coord_events WHERE seq > ?1 ORDER BY seq",
            )
            .map_err(err)?;
        let mut rows = st.query([*seq]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let at: i64 = r.get(0).map_err(err)?;
            let prev = lossy(r, 1).map_err(err)?;
            let op = lossy(r, 2).map_err(err)?;
            let agent = lossy(r, 3).map_err(err)?;
            let link: Option<String> = r.get(4).map_err(err)?;
            let status = lossy(r, 5).map_err(err)?;
            let what = format!("event {at} ({op} by {agent})");
            let chain = coord_core::chain_step(Some((*seq, head.as_str())), at, &prev);
            let problem = out_of_chain(at, &what, chain)
                .or_else(|| (status == "bad_mac").then(|| bad_mac(at, &what, &agent)));
            if let Some(p) = problem {
                problems.push(p);
                // remembered only up to the last good event
                break;
            }
            *seq = at;
            *head = link.unwrap_or_default();
        }
        Ok(())
    }
}

/// The problem an event's place in the chain is, if any: one wording for
/// the whole-log check and both reads of the witness.
fn out_of_chain(seq: i64, what: &str, chain: Chain) -> Option<Problem> {
    let (w, why) = match chain {
        Chain::Ok => return None,
        Chain::Gap => ("gap", "the event before it is missing (deleted)"),
        Chain::Broken => (
            "broken",
            "does not name the event before it (reordered or changed)",
        ),
    };
    Some(Problem {
        what: w,
        seq: Some(seq),
        detail: format!("{what}: {why}"),
    })
}

/// An event whose MAC is not `whose`.
fn bad_mac(seq: i64, what: &str, whose: &str) -> Problem {
    Problem {
        what: "bad_mac",
        seq: Some(seq),
        detail: format!("{what}: its MAC is not {whose}'s"),
    }
}

/// What a witness remembers of one database.
struct Memory {
    db_file: PathBuf,
    origin: Option<String>,
    seen: Option<Seen>,
}

/// How far a witness read one log.
struct Seen {
    size: i64,
    head: String,
    at: String,
}

/// Column `i` as text for a report, whatever a forger stored there (a
/// BLOB, text that is not UTF-8, a number): tampered events are named, not
/// an error that stops the audit. NULL reads as the empty string.
pub(crate) fn lossy(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    })
}

/// A file name for a database's path or URL: 32 hex digits of its
/// SHA-256 (the canonical path, for a file that exists).
fn name_hash(db: &Path) -> String {
    use sha2::{Digest, Sha256};
    let name = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_owned());
    let digest = Sha256::digest(name.as_os_str().as_encoded_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn short(link: &str) -> &str {
    &link[..link.len().min(16)]
}

/// [`Witness::observe_read`] in the usual place, if there is one.
pub fn witness_read(db: &Db) -> Result<Vec<Problem>, Error> {
    match Witness::default_place() {
        Some(w) => w.observe_read(db),
        None => Ok(Vec::new()),
    }
}

/// The link of event `seq` on `db`, if there is one.
fn link_at(db: &Db, seq: i64) -> Result<Option<String>, Error> {
    use rusqlite::OptionalExtension;
    db.conn
        .query_row(
            "SELECT coord_event_link(agent, hmac, seq, prev, op, subject, at, state)
               FROM main.coord_events WHERE seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .optional()
        .map(Option::flatten)
        .map_err(|e| db.err(e))
}

/// Now, in UTC, as rows write it (`YYYY-MM-DD HH:MM:SS`), for people
/// reading a witness's report.
fn unix_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn write_json(p: &Path, v: &serde_json::Value) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Witness {
        path: p.to_owned(),
        source: e,
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Written whole, then renamed: a crash leaves the old memory, never half.
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, v.to_string()).map_err(io)?;
    std::fs::rename(&tmp, p).map_err(io)
}
