//! A fast replay of the signed event log: every event's MAC verified and
//! its link computed on all cores, and the chain checked, without SQL views.
//!
//! [`crate::history::check`] reads the log through the `coord_log` view,
//! which calls coord's SQL functions row by row (15,000 to 60,000 events
//! per second; BENCHMARKS.md). [`verify`] reads `main.coord_events` in `seq` order, in chunks
//! of [`CHUNK_ROWS`] (so memory stays bounded however long the log is),
//! verifies the chunks in parallel and checks the chain over the computed
//! links in order. Its verdicts are `coord_log`'s `verification`, `link` and
//! `chain` columns, row for row ([`verify_each`] shows each one), given the
//! same keys: those added to the connection, or [`keyring_from`] the
//! environment and key files.
//!
//! ```
//! use coord_db::{Db, DbPath, Op};
//! let dir = tempfile::tempdir().unwrap();
//! let at = DbPath { path: dir.path().join("coord.db"), how: "example".into() };
//! let (db, _) = Db::create(&at, 5000, None).unwrap();
//! db.run(&Op::Submit { task_id: "t1", metadata: None }).unwrap();
//! let r = coord_db::replay::verify(&db.conn, &coord_core::Keyring::new(), 2).unwrap();
//! assert_eq!((r.events, r.unsigned), (1, 1));
//! assert!(r.is_intact());
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, TrySendError};
use std::sync::Mutex;

use coord_core::{
    encode_into, status_canonical, text_field, validate_agent_id, AgentKeys, Event, Field, Keyring,
    SignedRow, Status,
};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::Error;

/// Events per chunk: what one thread verifies at a time.
pub const CHUNK_ROWS: usize = 2048;

/// At most this many chunks per thread are read and not yet chained: the
/// bound on memory (about 600 KiB per chunk of 300-byte events).
const CHUNKS_IN_FLIGHT_PER_THREAD: usize = 3;

/// An event's place in the chain: `coord_log`'s `chain` column (coord-core's
/// one definition; the rule is applied below to stored bytes, where SQL's
/// `prev IS NOT before_link` also lets two NULLs match).
pub use coord_core::Chain;

/// What the replay says of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Its seq.
    pub seq: i64,
    /// Its MAC (`coord_log.verification`).
    pub status: Status,
    /// Its link (`coord_log.link`; `None` when a column has no canonical
    /// form, as SQL's NULL).
    pub link: Option<&'a str>,
    /// Its place in the chain (`coord_log.chain`).
    pub chain: Chain,
}

/// The log as the replay read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// Events read.
    pub events: i64,
    /// The link of event 1: the log's name.
    pub origin: Option<String>,
    /// The link of the last event.
    pub head: Option<String>,
    /// Events signed by their agent's current key.
    pub verified: i64,
    /// Events signed by one of their agent's retired keys.
    pub retired_key: i64,
    /// Events with no MAC (a submit by no agent).
    pub unsigned: i64,
    /// Seqs of events whose MAC is not their agent's.
    pub bad_mac: Vec<i64>,
    /// Seqs of events with a MAC but no key to check it.
    pub unknown_agent: Vec<i64>,
    /// Seqs of events whose predecessor is missing.
    pub gap: Vec<i64>,
    /// Seqs of events that do not name the event before them.
    pub broken: Vec<i64>,
}

impl Replay {
    /// Whether every event verifies (or is unsigned) and chains.
    pub fn is_intact(&self) -> bool {
        self.bad_mac.is_empty()
            && self.unknown_agent.is_empty()
            && self.gap.is_empty()
            && self.broken.is_empty()
    }

    fn count(&mut self, v: &Verdict<'_>) {
        self.events += 1;
        match v.status {
            Status::Verified => self.verified += 1,
            Status::RetiredKey => self.retired_key += 1,
            Status::Unsigned => self.unsigned += 1,
            Status::BadMac => self.bad_mac.push(v.seq),
            Status::UnknownAgent => self.unknown_agent.push(v.seq),
        }
        match v.chain {
            Chain::Ok => {}
            Chain::Gap => self.gap.push(v.seq),
            Chain::Broken => self.broken.push(v.seq),
        }
        if v.seq == 1 && self.origin.is_none() {
            self.origin = v.link.map(str::to_owned);
        }
    }
}

/// Replays `main.coord_events` on `conn`: verifies every event's MAC with
/// `keys`, computes its link and checks the chain, on `threads` threads
/// (1: all on the calling thread; n: the calling thread reads and helps,
/// n - 1 more verify).
pub fn verify(conn: &Connection, keys: &Keyring, threads: usize) -> Result<Replay, Error> {
    verify_each(conn, keys, threads, |_| {})
}

/// [`verify`], calling `each` with every event's verdict, in seq order.
pub fn verify_each(
    conn: &Connection,
    keys: &Keyring,
    threads: usize,
    mut each: impl FnMut(&Verdict<'_>),
) -> Result<Replay, Error> {
    let err = |e| Error::sql(&PathBuf::from(conn.path().unwrap_or("")), 0, e);
    // A database with no log (gptme-coordination's, before coord_init)
    // replays as an empty log, as history::check reads it.
    let has_log = conn
        .prepare("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'coord_events'")
        .and_then(|mut st| st.exists([]))
        .map_err(err)?;
    if !has_log {
        return Ok(Replay::default());
    }
    let mut st = conn
        .prepare(
            "SELECT seq, agent, hmac, prev, op, subject, at, state
               FROM main.coord_events ORDER BY seq",
        )
        .map_err(err)?;
    let mut rows = st.query([]).map_err(err)?;
    let mut chainer = Chainer::default();
    let mut read = |c: &mut Chunk| c.fill(&mut rows).map_err(err);
    let workers = threads.max(1) - 1;
    if workers == 0 {
        let mut chunk = Chunk::default();
        loop {
            read(&mut chunk)?;
            if chunk.rows.is_empty() {
                break;
            }
            chunk.verify(keys);
            chainer.chain(&chunk, &mut each);
        }
        return Ok(chainer.replay);
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<Chunk>(workers);
    let (done_tx, done_rx) = mpsc::channel::<Chunk>();
    let work_rx = Mutex::new(work_rx);
    let limit = threads * CHUNKS_IN_FLIGHT_PER_THREAD;
    std::thread::scope(|s| {
        // Owned here, so that a panic in `each` drops it too and the
        // workers stop instead of waiting for work forever.
        let work_tx = work_tx;
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || loop {
                // The lock is held only while waiting for a chunk.
                let next = work_rx
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok(mut chunk) = next else { break };
                chunk.verify(keys);
                if done_tx.send(chunk).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        let mut order = Order {
            pending: BTreeMap::new(),
            free: Vec::new(),
            chained: 0,
        };
        let (mut sent, mut out) = (0usize, 0usize);
        let result = loop {
            // Bounded memory: wait for the workers before reading more.
            while sent - order.chained >= limit && out > 0 {
                let Ok(c) = done_rx.recv() else { break };
                out -= 1;
                order.take(c, &mut chainer, &mut each);
            }
            let mut chunk = order.free.pop().unwrap_or_default();
            if let Err(e) = read(&mut chunk) {
                break Err(e);
            }
            if chunk.rows.is_empty() {
                break Ok(());
            }
            chunk.index = sent;
            sent += 1;
            match work_tx.try_send(chunk) {
                Ok(()) => out += 1,
                // Every worker is busy and the queue is full: verify this
                // one here rather than wait.
                Err(TrySendError::Full(mut c) | TrySendError::Disconnected(mut c)) => {
                    c.verify(keys);
                    order.take(c, &mut chainer, &mut each);
                }
            }
            while let Ok(c) = done_rx.try_recv() {
                out -= 1;
                order.take(c, &mut chainer, &mut each);
            }
        };
        drop(work_tx);
        while out > 0 {
            let Ok(c) = done_rx.recv() else { break };
            out -= 1;
            order.take(c, &mut chainer, &mut each);
        }
        result
    })?;
    Ok(chainer.replay)
}

/// Chunks verified, by index, waiting for the ones before them to be
/// chained; and chunks chained, to be read into again.
struct Order {
    pending: BTreeMap<usize, Chunk>,
    free: Vec<Chunk>,
    chained: usize,
}

impl Order {
    fn take(&mut self, c: Chunk, chainer: &mut Chainer, each: &mut impl FnMut(&Verdict<'_>)) {
        self.pending.insert(c.index, c);
        while let Some(c) = self.pending.remove(&self.chained) {
            chainer.chain(&c, each);
            self.free.push(c);
            self.chained += 1;
        }
    }
}

/// The keys `lookup` finds (the environment and key files, as coord's SQL
/// functions find them for an agent the connection holds no key for) for
/// every agent that signed an event of the log: what [`verify`] needs to
/// read the log as `coord_log` does on a connection with no keys added.
pub fn keyring_from<E: coord_keys::Environment>(
    conn: &Connection,
    lookup: &coord_keys::Lookup<E>,
) -> Result<Keyring, Error> {
    let err = |e| Error::sql(&PathBuf::from(conn.path().unwrap_or("")), 0, e);
    let mut ring = Keyring::new();
    let has_log = conn
        .prepare("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = 'coord_events'")
        .and_then(|mut st| st.exists([]))
        .map_err(err)?;
    if !has_log {
        return Ok(ring);
    }
    let mut st = conn
        .prepare(
            "SELECT DISTINCT agent FROM main.coord_events
              WHERE typeof(agent) = 'text' AND hmac IS NOT NULL AND hmac <> ''",
        )
        .map_err(err)?;
    let mut rows = st.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let Ok(agent) =
            std::str::from_utf8(r.get_ref(0).map_err(err)?.as_bytes().unwrap_or_default())
        else {
            continue;
        };
        if validate_agent_id(agent).is_err() {
            continue;
        }
        if let Some(keys) = lookup.resolve(agent).keys {
            if let Some(k) = keys.current {
                ring.add(agent, k);
            }
            for k in keys.retired {
                ring.add_retired(agent, k);
            }
        }
    }
    Ok(ring)
}

/// One column value, its bytes in the chunk's arena.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(u32, u32),
    /// A BLOB, which has no canonical form (its bytes are not needed).
    Blob,
}

/// The columns of one event as read, and what verifying it found.
#[derive(Debug, Clone, Copy)]
struct Row {
    seq: i64,
    /// agent, hmac, prev, op, subject, at, state.
    cells: [Cell; 7],
    status: Status,
    /// The link in hex, when there is one.
    link: Option<[u8; 64]>,
}

const AGENT: usize = 0;
const HMAC: usize = 1;
const PREV: usize = 2;

/// Rows read together, their text and blob bytes in one arena.
#[derive(Default)]
struct Chunk {
    index: usize,
    bytes: Vec<u8>,
    rows: Vec<Row>,
}

impl Chunk {
    /// Reads up to [`CHUNK_ROWS`] rows (none: the log is read).
    fn fill(&mut self, rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<()> {
        self.bytes.clear();
        self.rows.clear();
        while self.rows.len() < CHUNK_ROWS {
            let Some(r) = rows.next()? else { break };
            let seq: i64 = r.get(0)?;
            let mut cells = [Cell::Null; 7];
            for (i, cell) in cells.iter_mut().enumerate() {
                *cell = match r.get_ref(i + 1)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Real(f) => Cell::Real(f),
                    ValueRef::Text(t) => {
                        let (a, b) = self.push(t);
                        Cell::Text(a, b)
                    }
                    ValueRef::Blob(_) => Cell::Blob,
                };
            }
            self.rows.push(Row {
                seq,
                cells,
                status: Status::Unsigned,
                link: None,
            });
        }
        Ok(())
    }

    fn push(&mut self, t: &[u8]) -> (u32, u32) {
        let a = self.bytes.len();
        self.bytes.extend_from_slice(t);
        // Offsets fit: a chunk holds a few hundred KiB, and a SQLite value
        // is at most 2 GiB.
        (a as u32, self.bytes.len() as u32)
    }

    /// Verifies every row and computes its link.
    fn verify(&mut self, keys: &Keyring) {
        let mut canon = Vec::with_capacity(512);
        let mut cached: Option<(&[u8], Option<&AgentKeys>)> = None;
        let bytes = &self.bytes;
        for row in &mut self.rows {
            let (status, link) = verify_row(keys, bytes, row, &mut canon, &mut cached);
            row.status = status;
            row.link = link;
        }
    }
}

fn text(bytes: &[u8], c: Cell) -> Option<&[u8]> {
    match c {
        Cell::Text(a, b) => Some(&bytes[a as usize..b as usize]),
        _ => None,
    }
}

/// The cell as a signed field, as coord-sql's functions read an argument:
/// a BLOB or TEXT that is not UTF-8 has no canonical form.
fn field<'b>(bytes: &'b [u8], c: Cell, index: usize) -> Option<Field<'b>> {
    Some(match c {
        Cell::Null => Field::Null,
        Cell::Int(n) => Field::Integer(n),
        Cell::Real(f) => Field::Real(f),
        Cell::Text(a, b) => Field::Text(text_field(index, &bytes[a as usize..b as usize]).ok()?),
        Cell::Blob => return None,
    })
}

/// One event's status (coord-sql's `verify_status` for `Shape::Event`)
/// and link (`coord_event_link`), encoding its canonical bytes once.
fn verify_row<'k, 'b>(
    keys: &'k Keyring,
    bytes: &'b [u8],
    row: &Row,
    canon: &mut Vec<u8>,
    cached: &mut Option<(&'b [u8], Option<&'k AgentKeys>)>,
) -> (Status, Option<[u8; 64]>) {
    let c = &row.cells;
    // The MAC: NULL is none; TEXT must be UTF-8; anything else is not a
    // signer's.
    let mac: Result<Option<&str>, ()> = match c[HMAC] {
        Cell::Null => Ok(None),
        Cell::Text(a, b) => std::str::from_utf8(&bytes[a as usize..b as usize])
            .map(Some)
            .map_err(|_| ()),
        _ => Err(()),
    };
    // The agent, as coord_event_link reads it (NULL signs as "").
    let agent: Option<&str> = match c[AGENT] {
        Cell::Null => Some(""),
        Cell::Text(a, b) => std::str::from_utf8(&bytes[a as usize..b as usize]).ok(),
        _ => None,
    };
    let signed = (|| {
        let seq = Field::Integer(row.seq);
        let prev = field(bytes, c[PREV], 1)?;
        let op = field(bytes, c[3], 2)?;
        let subject = field(bytes, c[4], 3)?;
        let at = field(bytes, c[5], 4)?;
        let state = field(bytes, c[6], 5)?;
        Some([seq, prev, op, subject, at, state])
    })();
    // The canonical bytes, for the link and the MAC alike.
    let encoded = match (agent, signed) {
        (Some(agent), Some([seq, prev, op, subject, at, state])) => {
            canon.clear();
            encode_into(
                Event::new(agent, seq, prev, op, subject, at, state).fields(),
                canon,
            );
            true
        }
        _ => false,
    };
    let link = match (encoded, mac) {
        (true, Ok(m)) => Some(link_hex(canon, m.unwrap_or(""))),
        _ => None,
    };
    let status = match mac {
        Err(()) => Status::BadMac,
        Ok(None | Some("")) => Status::Unsigned,
        // coord-sql reads the agent as TEXT that is a valid id.
        Ok(Some(mac)) => match (c[AGENT], agent) {
            (Cell::Text(..), Some(a)) if validate_agent_id(a).is_ok() => {
                let agent_keys = match *cached {
                    Some((name, k)) if name == a.as_bytes() => k,
                    _ => {
                        let k = keys.get(a);
                        let name = text(bytes, c[AGENT]).unwrap_or_default();
                        *cached = Some((name, k));
                        k
                    }
                };
                if encoded {
                    status_canonical(agent_keys, Some(mac), canon)
                } else if agent_keys.is_some() {
                    // No signer can have produced a MAC over fields with
                    // no canonical form.
                    Status::BadMac
                } else {
                    Status::UnknownAgent
                }
            }
            _ => Status::UnknownAgent,
        },
    };
    (status, link)
}

/// `coord_core::link` from the canonical bytes already encoded.
fn link_hex(canon: &[u8], mac: &str) -> [u8; 64] {
    let mut h = Sha256::new();
    h.update(canon);
    h.update(b"\n");
    h.update(mac.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = b"0123456789abcdef"[usize::from(b >> 4)];
        out[2 * i + 1] = b"0123456789abcdef"[usize::from(b & 0xf)];
    }
    out
}

/// The sequential part: each event against the one before it.
#[derive(Default)]
struct Chainer {
    replay: Replay,
    before_seq: Option<i64>,
    before_link: Option<[u8; 64]>,
}

impl Chainer {
    fn chain(&mut self, chunk: &Chunk, each: &mut impl FnMut(&Verdict<'_>)) {
        for row in &chunk.rows {
            let prev = row.cells[PREV];
            // coord_log: `prev IS NOT before_link`, so two NULLs match.
            let names_before = match (text(&chunk.bytes, prev), &self.before_link) {
                (Some(p), Some(l)) => p == l.as_slice(),
                (None, None) => matches!(prev, Cell::Null),
                _ => false,
            };
            let chain = match self.before_seq {
                None if row.seq == 1 && text(&chunk.bytes, prev) == Some(b"") => Chain::Ok,
                None => Chain::Gap,
                Some(b) if b.checked_add(1) != Some(row.seq) => Chain::Gap,
                Some(_) if !names_before => Chain::Broken,
                Some(_) => Chain::Ok,
            };
            let link = row
                .link
                .as_ref()
                // hex digits are ASCII
                .map(|l| std::str::from_utf8(l).unwrap_or_default());
            let v = Verdict {
                seq: row.seq,
                status: row.status,
                link,
                chain,
            };
            self.replay.count(&v);
            each(&v);
            self.before_seq = Some(row.seq);
            self.before_link = row.link;
        }
        if let Some(last) = chunk.rows.last() {
            self.replay.head = last.link.map(|l| String::from_utf8_lossy(&l).into_owned());
        }
    }
}
