//! `replay::verify` against the `coord_log` view, row for row: on logs
//! written by coord's own write path (intact and attacked), and on a long
//! signed log that spans many chunks, with 1, 2 and 3 threads.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::path::Path;

use coord_core::{link, Event, Keyring, SecretKey};
use coord_db::replay::{self, Replay};
use coord_db::{Db, DbPath, Op, Outcome};
use rusqlite::Connection;

const ALICE: &str = "replay-alice";
const BOB: &str = "replay-bob";
const CAROL: &str = "replay-carol";

fn secret(agent: &str, n: u32) -> String {
    format!("{agent}-test-secret-number-{n}-0123456789abcdef0123")
}

fn at(p: &Path) -> DbPath {
    DbPath {
        path: p.to_owned(),
        how: "test".into(),
    }
}

/// Adds `agent`'s key number `n` to the connection (a second key makes the
/// first retired) and to `ring`, the same way.
fn add_key(db: &Db, ring: &mut Keyring, agent: &str, n: u32) {
    db.conn
        .query_row(
            "SELECT coord_key_add(?1, ?2)",
            [agent, &secret(agent, n)],
            |_| Ok(()),
        )
        .unwrap();
    ring.add(agent, SecretKey::new(secret(agent, n).as_bytes()).unwrap());
}

fn act(db: &Db, agent: Option<&str>, op: &Op<'_>) -> Outcome {
    db.coord.set_agent(agent).unwrap();
    db.run(op).unwrap().outcome
}

/// A log made by coord's write path: submits (one by no agent, so
/// unsigned), claims, a renewal, completions, an abandon and messages, by
/// three agents, one of whom rotates her key half way (so her earlier
/// events verify with a retired key).
fn with_history(dir: &Path) -> (Db, Keyring) {
    let (db, _) = Db::create(&at(&dir.join("coord.db")), 5000, None).unwrap();
    let mut ring = Keyring::new();
    add_key(&db, &mut ring, ALICE, 1);
    add_key(&db, &mut ring, BOB, 1);
    add_key(&db, &mut ring, CAROL, 1);
    let claim = |t| Op::Claim {
        task_id: t,
        claimer: None,
        ttl_minutes: 30.0,
    };
    let complete = |t, r| Op::Complete {
        task_id: t,
        claimer: None,
        epoch: None,
        result: Some(r),
    };
    let submit = |t| Op::Submit {
        task_id: t,
        metadata: Some(r#"{"p":1}"#),
    };
    let send = |to, body| Op::Send {
        sender: None,
        recipient: to,
        channel: None,
        body,
    };
    assert_eq!(act(&db, None, &submit("t1")), Outcome::Submitted);
    assert_eq!(act(&db, Some(ALICE), &submit("t2")), Outcome::Submitted);
    assert_eq!(act(&db, Some(BOB), &submit("t3")), Outcome::Submitted);
    assert_eq!(act(&db, Some(ALICE), &claim("t1")), Outcome::Granted);
    assert_eq!(act(&db, Some(BOB), &claim("t2")), Outcome::Granted);
    assert_eq!(act(&db, Some(CAROL), &claim("t3")), Outcome::Granted);
    act(&db, Some(ALICE), &claim("t1")); // a renewal
    assert_eq!(
        act(&db, Some(BOB), &send(Some(ALICE), "hello")),
        Outcome::Sent
    );
    assert_eq!(
        act(&db, Some(ALICE), &complete("t1", "done")),
        Outcome::Completed
    );
    add_key(&db, &mut ring, CAROL, 2);
    act(
        &db,
        Some(CAROL),
        &Op::Abandon {
            task_id: "t3",
            claimer: None,
            epoch: None,
        },
    );
    assert_eq!(
        act(&db, Some(CAROL), &send(None, "all: t3 is free")),
        Outcome::Sent
    );
    assert_eq!(
        act(&db, Some(BOB), &complete("t2", "ok")),
        Outcome::Completed
    );
    db.coord.set_agent(None).unwrap();
    (db, ring)
}

/// What `coord_log` says of one event: seq, verification, link, chain.
type Row = (i64, String, Option<String>, String);

/// What `coord_log` says of each event.
fn view(db: &Db) -> Vec<Row> {
    coord_sql::refresh(&db.conn).unwrap();
    let mut st = db
        .conn
        .prepare("SELECT seq, verification, link, chain FROM coord_log ORDER BY seq")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// The replay's verdicts in the same form, and its summary.
fn replayed(db: &Db, ring: &Keyring, threads: usize) -> (Vec<Row>, Replay) {
    let mut out = Vec::new();
    let r = replay::verify_each(&db.conn, ring, threads, |v| {
        out.push((
            v.seq,
            v.status.as_str().to_owned(),
            v.link.map(str::to_owned),
            v.chain.as_str().to_owned(),
        ));
    })
    .unwrap();
    (out, r)
}

/// The replay agrees with coord_log row for row, with 1, 2 and 3 threads,
/// and its summary with the verdicts and with `history::check`. Returns the
/// summary.
fn same_as_view(db: &Db, ring: &Keyring) -> Replay {
    let want = view(db);
    let mut first: Option<Replay> = None;
    for threads in [1, 2, 3] {
        let (got, r) = replayed(db, ring, threads);
        assert_eq!(got.len(), want.len(), "threads={threads}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "threads={threads}");
        }
        // the summary is what the verdicts say
        let seqs = |status: &str, chain: Option<&str>| -> Vec<i64> {
            want.iter()
                .filter(|w| w.1 == status || chain.is_some_and(|c| w.3 == c))
                .map(|w| w.0)
                .collect()
        };
        assert_eq!(r.events, i64::try_from(want.len()).unwrap());
        assert_eq!(r.bad_mac, seqs("bad_mac", None));
        assert_eq!(r.unknown_agent, seqs("unknown_agent", None));
        assert_eq!(r.gap, seqs("", Some("gap")));
        assert_eq!(r.broken, seqs("", Some("broken")));
        let n = |s: &str| i64::try_from(want.iter().filter(|w| w.1 == s).count()).unwrap();
        assert_eq!(
            (r.verified, r.retired_key, r.unsigned),
            (n("verified"), n("retired_key"), n("unsigned"))
        );
        assert_eq!(r.head, want.last().and_then(|w| w.2.clone()));
        // and what audit reads through the view
        // (a tampered log, even one whose agent is not UTF-8, is named by
        // audit, never an error that stops it)
        let log = coord_db::history::check(db).unwrap();
        assert_eq!(
            (r.events, &r.origin, &r.head),
            (log.events, &log.origin, &log.head)
        );
        for what in ["bad_mac", "gap", "broken"] {
            let from_view: Vec<i64> = log
                .problems
                .iter()
                .filter(|p| p.what == what)
                .filter_map(|p| p.seq)
                .collect();
            let from_replay = match what {
                "bad_mac" => &r.bad_mac,
                "gap" => &r.gap,
                _ => &r.broken,
            };
            assert_eq!(&from_view, from_replay, "{what}");
        }
        if let Some(f) = &first {
            assert_eq!(f, &r, "threads={threads}");
        }
        first = Some(r);
    }
    first.unwrap()
}

/// The file, written by someone who dropped the append-only triggers.
fn attacker(db: &Db, sql: &str) {
    let c = Connection::open(&db.path).unwrap();
    c.execute_batch(
        "DROP TRIGGER IF EXISTS coord_events_no_update; DROP TRIGGER IF EXISTS coord_events_no_delete;",
    )
    .unwrap();
    c.execute_batch(sql).unwrap();
}

#[test]
fn an_intact_log_replays_as_the_view_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, ring) = with_history(dir.path());
    let r = same_as_view(&db, &ring);
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.events, 12);
    assert_eq!(r.unsigned, 1, "the submit by no agent");
    assert_eq!(r.retired_key, 1, "carol's claim before she rotated");
    assert_eq!(r.verified, 10);
    assert!(r.origin.as_ref().is_some_and(|o| o.len() == 64));
    assert!(r.head.is_some());
    // an empty keyring: every signed event is unknown_agent, the chain holds
    let r = replay::verify(&db.conn, &Keyring::new(), 2).unwrap();
    assert_eq!((r.unknown_agent.len(), r.unsigned), (11, 1));
    assert!(r.gap.is_empty() && r.broken.is_empty());
}

#[test]
fn each_attack_replays_as_the_view_reads_it() {
    for (sql, want) in [
        // a deleted event
        ("DELETE FROM coord_events WHERE seq = 5", "gap 6"),
        ("DELETE FROM coord_events WHERE seq = 1", "gap 2"),
        // two events swapped (each keeps its MAC over its old seq)
        (
            "UPDATE coord_events SET seq = 100 WHERE seq = 3; UPDATE coord_events SET seq = 3 WHERE seq = 4;
             UPDATE coord_events SET seq = 4 WHERE seq = 100",
            "bad_mac 3 4, broken 3 4 5",
        ),
        // an edited result: its MAC fails and the next event no longer names it
        (
            "UPDATE coord_events SET state = replace(state, 'done', 'forged') WHERE seq = 9",
            "bad_mac 9, broken 10",
        ),
        // an event moved to an agent with no key
        ("UPDATE coord_events SET agent = 'mallory' WHERE seq = 2", "unknown_agent 2, broken 3"),
        // a bad agent id, an empty MAC, garbage for a MAC
        ("UPDATE coord_events SET agent = 'no spaces allowed' WHERE seq = 2", "unknown_agent 2, broken 3"),
        ("UPDATE coord_events SET hmac = '' WHERE seq = 4", "broken 5"),
        ("UPDATE coord_events SET hmac = 'garbage' WHERE seq = 4", "bad_mac 4, broken 5"),
        // values with no canonical form: no link, so the next event is broken
        ("UPDATE coord_events SET state = CAST(state AS BLOB) WHERE seq = 6", "bad_mac 6, broken 7"),
        ("UPDATE coord_events SET hmac = CAST(hmac AS BLOB) WHERE seq = 6", "bad_mac 6, broken 7"),
        ("UPDATE coord_events SET at = CAST(x'ff00' AS TEXT) WHERE seq = 6", "bad_mac 6, broken 7"),
        ("UPDATE coord_events SET hmac = CAST(x'ff' AS TEXT) WHERE seq = 6", "bad_mac 6, broken 7"),
        ("UPDATE coord_events SET agent = CAST(x'ff' AS TEXT) WHERE seq = 6", "unknown_agent 6, broken 7"),
        // a subject stored as an integer signs differently
        ("UPDATE coord_events SET subject = 8 WHERE seq = 8", "bad_mac 8, broken 9"),
        // the first event (the unsigned submit) claims a predecessor
        ("UPDATE coord_events SET prev = 'x' WHERE seq = 1", "gap 1, broken 2"),
        ("UPDATE coord_events SET prev = 'x' WHERE seq = 2", "bad_mac 2, broken 2 3"),
        // a forged event appended with a MAC of no one's key
        (
            "INSERT INTO coord_events(seq, prev, op, subject, at, agent, state, hmac)
             VALUES (13, 'not the head', 'complete', 't3', '2026-12-08 00:00:00', 'replay-bob', '[]',
                     'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')",
            "bad_mac 13, broken 13",
        ),
        // the rows changed outside history are not the log's business
        ("DELETE FROM work WHERE task_id = 't1'", ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (db, ring) = with_history(dir.path());
        attacker(&db, sql);
        let r = same_as_view(&db, &ring);
        let mut said = Vec::new();
        for (name, seqs) in [
            ("bad_mac", &r.bad_mac),
            ("unknown_agent", &r.unknown_agent),
            ("gap", &r.gap),
            ("broken", &r.broken),
        ] {
            if !seqs.is_empty() {
                let s: Vec<String> = seqs.iter().map(i64::to_string).collect();
                said.push(format!("{name} {}", s.join(" ")));
            }
        }
        assert_eq!(said.join(", "), want, "{sql}");
        assert_eq!(r.is_intact(), want.is_empty(), "{sql}");
    }
}

#[test]
fn a_reader_without_an_agents_key_reads_unknown_agent_as_the_view_does() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = with_history(dir.path());
    drop(db);
    // a second reader that holds alice's key only
    let db = Db::open(&at(&dir.path().join("coord.db")), 5000, None).unwrap();
    let mut ring = Keyring::new();
    add_key(&db, &mut ring, ALICE, 1);
    let r = same_as_view(&db, &ring);
    assert_eq!(r.verified, 4, "alice's events");
    assert_eq!(r.unknown_agent.len(), 7, "bob's and carol's");
    assert!(r.gap.is_empty() && r.broken.is_empty());
    // and alice's key as bob's: his MACs are bad, not unknown
    db.conn
        .query_row(
            "SELECT coord_key_add(?1, ?2)",
            [BOB, &secret(ALICE, 1)],
            |_| Ok(()),
        )
        .unwrap();
    ring.add(BOB, SecretKey::new(secret(ALICE, 1).as_bytes()).unwrap());
    let r = same_as_view(&db, &ring);
    assert_eq!(r.bad_mac.len(), 4, "bob's events");
}

/// A long log, signed directly (as bench/replay.sh makes one), so that the
/// replay spans many chunks and threads.
fn long_log(dir: &Path, n: i64) -> (Db, Keyring) {
    let (db, _) = Db::create(&at(&dir.join("long.db")), 5000, None).unwrap();
    let mut ring = Keyring::new();
    let agents = [ALICE, BOB, CAROL];
    for a in agents {
        add_key(&db, &mut ring, a, 1);
    }
    let keys: Vec<SecretKey> = agents
        .iter()
        .map(|a| SecretKey::new(secret(a, 1).as_bytes()).unwrap())
        .collect();
    db.conn.execute_batch("BEGIN").unwrap();
    let mut ins = db
        .conn
        .prepare(
            "INSERT INTO coord_events(seq, prev, op, subject, at, agent, state, hmac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .unwrap();
    let mut prev = String::new();
    for seq in 1..=n {
        let i = usize::try_from(seq).unwrap() % 3;
        let subject = format!("task:{}", seq / 4);
        let when = format!("2026-12-07 10:{:02}:{:02}", seq / 60 % 60, seq % 60);
        let state = format!(
            r#"["{subject}","{}",1,"{when}",null,"claimed",null,"é \"q\"",null]"#,
            agents[i]
        );
        let e = Event::new(
            agents[i],
            seq,
            prev.as_str(),
            "claim",
            subject.as_str(),
            when.as_str(),
            state.as_str(),
        );
        // every 7th event of the last agent is unsigned
        let mac = (seq % 7 != 0 || i != 2).then(|| keys[i].sign_row(&e).to_string());
        let l = link(&e, mac.as_deref());
        ins.execute(rusqlite::params![
            seq, prev, "claim", subject, when, agents[i], state, mac
        ])
        .unwrap();
        prev = l;
    }
    drop(ins);
    db.conn.execute_batch("COMMIT").unwrap();
    (db, ring)
}

#[test]
fn a_long_log_replays_as_the_view_reads_it_across_chunks() {
    let chunk = i64::try_from(replay::CHUNK_ROWS).unwrap();
    let n = chunk * 9 + 17;
    let dir = tempfile::tempdir().unwrap();
    let (db, ring) = long_log(dir.path(), n);
    let r = same_as_view(&db, &ring);
    assert!(
        r.is_intact(),
        "{:?}",
        (r.bad_mac.len(), r.gap.len(), r.broken.len())
    );
    assert_eq!(r.events, n);
    assert_eq!(
        r.unsigned,
        (1..=n).filter(|s| s % 7 == 0 && s % 3 == 2).count() as i64
    );
    // damage at chunk boundaries and inside chunks
    attacker(
        &db,
        &format!(
            "DELETE FROM coord_events WHERE seq = {b1};
             UPDATE coord_events SET state = replace(state, 'claimed', 'completed') WHERE seq = {b2};
             UPDATE coord_events SET agent = 'mallory' WHERE seq = {m};
             UPDATE coord_events SET seq = -1 WHERE seq = {s1}; UPDATE coord_events SET seq = {s1} WHERE seq = {s2};
             UPDATE coord_events SET seq = {s2} WHERE seq = -1;",
            b1 = chunk,
            b2 = 2 * chunk + 1,
            m = 4 * chunk - 1,
            s1 = 6 * chunk,
            s2 = 6 * chunk + 1,
        ),
    );
    let r = same_as_view(&db, &ring);
    assert_eq!(r.gap, [chunk + 1]);
    assert_eq!(r.unknown_agent, [4 * chunk - 1]);
    assert_eq!(r.bad_mac, [2 * chunk + 1, 6 * chunk, 6 * chunk + 1]);
    assert_eq!(
        r.broken,
        [
            2 * chunk + 2,
            4 * chunk,
            6 * chunk,
            6 * chunk + 1,
            6 * chunk + 2
        ]
    );
}

#[test]
fn no_log_replays_empty_and_a_panicking_reader_stops_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Connection::open(dir.path().join("plain.db")).unwrap();
    plain
        .execute_batch("CREATE TABLE work(task_id TEXT PRIMARY KEY)")
        .unwrap();
    let r = replay::verify(&plain, &Keyring::new(), 2).unwrap();
    assert_eq!(r, Replay::default());
    assert!(r.is_intact());
    let n = i64::try_from(replay::CHUNK_ROWS).unwrap() * 5;
    let (db, ring) = long_log(dir.path(), n);
    for threads in [1, 2, 3] {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            replay::verify_each(&db.conn, &ring, threads, |v| {
                assert!(v.seq < n / 2, "stop here");
            })
        }));
        assert!(panicked.is_err(), "threads={threads}");
        // and the connection is still usable
        assert_eq!(replay::verify(&db.conn, &ring, threads).unwrap().events, n);
    }
}

/// An environment holding some agents' keys in variables, and no secrets
/// directory.
struct Vars(Vec<(String, String)>, std::path::PathBuf);

impl coord_keys::Environment for Vars {
    fn var(&self, name: &str) -> Option<std::ffi::OsString> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into())
    }
    fn current_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.1.clone())
    }
}

#[test]
fn keys_found_in_the_environment_read_the_log_as_keys_added() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = with_history(dir.path());
    let var = |a: &str| coord_keys::env_var_names(a)[0].clone();
    let env = Vars(
        vec![(var(ALICE), secret(ALICE, 1)), (var(BOB), secret(BOB, 1))],
        dir.path().to_owned(),
    );
    let found = replay::keyring_from(&db.conn, &coord_keys::Lookup::new(env)).unwrap();
    assert_eq!(found.agents().collect::<Vec<_>>(), [ALICE, BOB]);
    let mut ring = Keyring::new();
    for a in [ALICE, BOB] {
        ring.add(a, SecretKey::new(secret(a, 1).as_bytes()).unwrap());
    }
    let want = replay::verify(&db.conn, &ring, 2).unwrap();
    assert_eq!(replay::verify(&db.conn, &found, 2).unwrap(), want);
    assert_eq!((want.verified, want.unknown_agent.len()), (8, 3), "carol's");
}
