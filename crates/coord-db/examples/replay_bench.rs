//! The replay benchmark (bench/replay.sh): builds a signed event log of N
//! events quickly (signed with coord-core directly, a valid chain, eight
//! agents), then times `coord_db::replay::verify` on 1 and 2 threads and
//! `coord_db::history::check` (the `coord_log` view) on a prefix.
//!
//! ```text
//! replay_bench gen <db> <events>
//! replay_bench run <db> <prefix-db> [runs]
//! replay_bench once <db> <threads>
//! ```
#![allow(clippy::unwrap_used)] // a benchmark that fails should stop loudly

use std::path::{Path, PathBuf};
use std::time::Instant;

use coord_core::{link, Event, Keyring, SecretKey};
use coord_db::{Db, DbPath};

const AGENTS: usize = 8;

fn secret(i: usize) -> String {
    format!("replay-bench-secret-of-agent-{i}-0123456789abcdef")
}

fn agent(i: usize) -> String {
    format!("agent-{i}")
}

fn keyring() -> Keyring {
    let mut ring = Keyring::new();
    for i in 0..AGENTS {
        ring.add(&agent(i), SecretKey::new(secret(i).as_bytes()).unwrap());
    }
    ring
}

fn db_path(p: &Path) -> DbPath {
    DbPath {
        path: p.to_owned(),
        how: "replay_bench".into(),
    }
}

fn time_of(i: u64) -> String {
    // one event a second from 2026-12-07 00:00:00, within the day's hours
    // (the dates do not have to be real for the replay)
    let (d, s) = (7 + i / 86_400, i % 86_400);
    format!(
        "2026-12-{:02} {:02}:{:02}:{:02}",
        d % 28 + 1,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Writes `n` events: per task a submit, a claim, a renew and a complete by
/// one agent, and a message after every fourth event.
fn generate(path: &Path, n: u64) {
    let _ = std::fs::remove_file(path);
    let (db, _) = Db::create(&db_path(path), 5000, None).unwrap();
    let keys: Vec<SecretKey> = (0..AGENTS)
        .map(|i| SecretKey::new(secret(i).as_bytes()).unwrap())
        .collect();
    let names: Vec<String> = (0..AGENTS).map(agent).collect();
    let conn = &db.conn;
    conn.execute_batch("PRAGMA synchronous=OFF; BEGIN").unwrap();
    let mut ins = conn
        .prepare(
            "INSERT INTO coord_events(seq, prev, op, subject, at, agent, state, hmac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .unwrap();
    let mut prev = String::new();
    let (mut task, mut step, mut msg) = (0u64, 0u64, 0u64);
    for seq in 1..=n {
        let now = time_of(seq);
        let a = (task as usize * 3 + 1) % AGENTS;
        let (op, subject, state): (&str, String, String) = if seq % 5 == 0 {
            msg += 1;
            let to = (a + 1) % AGENTS;
            (
                "send",
                msg.to_string(),
                serde_json::json!([
                    msg,
                    names[a],
                    names[to],
                    "general",
                    format!("task:{task:07} step {step} done, next please"),
                    now
                ])
                .to_string(),
            )
        } else {
            let id = format!("task:{task:07}");
            let expires = time_of(seq + 1800);
            let meta = r#"{"priority":2}"#;
            let state = match step {
                0 => serde_json::json!([id, null, 0, null, null, "pending", null, meta, null]),
                1 | 2 => {
                    serde_json::json!([id, names[a], 1, now, expires, "claimed", null, meta, null])
                }
                _ => {
                    serde_json::json!([id, names[a], 1, now, expires, "completed", "ok", meta, now])
                }
            };
            let op = ["submit", "claim", "renew", "complete"][step as usize];
            step += 1;
            if step == 4 {
                step = 0;
                task += 1;
            }
            (op, id, state.to_string())
        };
        let seq_i = i64::try_from(seq).unwrap();
        // a message's subject is its id as text, as coord writes it
        let e = Event::new(
            &names[a],
            seq_i,
            prev.as_str(),
            op,
            subject.as_str(),
            now.as_str(),
            state.as_str(),
        );
        let mac = keys[a].sign_row(&e).to_string();
        let l = link(&e, Some(&mac));
        ins.execute(rusqlite::params![
            seq_i, prev, op, subject, now, names[a], state, mac
        ])
        .unwrap();
        prev = l;
    }
    drop(ins);
    conn.execute_batch("COMMIT").unwrap();
}

/// This process's CPU time so far (user + system), from /proc (10 ms
/// steps).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (100/s)
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.unwrap())
}

fn run(path: &Path, prefix: &Path, runs: usize) {
    let ring = keyring();
    let db = Db::open(&db_path(path), 5000, None).unwrap();
    let n: i64 = db
        .conn
        .query_row("SELECT count(*) FROM main.coord_events", [], |r| r.get(0))
        .unwrap();
    // warm the OS cache of the file
    coord_db::replay::verify(&db.conn, &ring, 2).unwrap();
    // 1 and 2 threads take turns, so that both see the same machine (it is
    // shared: other people's work takes cores from the wall-clock rates,
    // not from the CPU seconds)
    let mut best = [(f64::MAX, 0.0f64); 2];
    let mut heads = Vec::new();
    for _ in 0..runs {
        for (i, threads) in [1usize, 2].into_iter().enumerate() {
            let cpu = cpu_seconds();
            let t = Instant::now();
            let r = coord_db::replay::verify(&db.conn, &ring, threads).unwrap();
            let wall = t.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            assert_eq!(r.events, n);
            assert!(r.is_intact(), "{r:?}");
            assert_eq!(r.verified, n);
            if wall < best[i].0 {
                best[i] = (wall, cpu);
            }
            heads.push(r.head);
        }
    }
    heads.dedup();
    assert_eq!(heads.len(), 1);
    let mut rates = Vec::new();
    for (i, (wall, cpu)) in best.into_iter().enumerate() {
        let rate = n as f64 / wall;
        println!(
            "replay  threads={}  events={n}  best of {runs}: {wall:.3} s  {rate:>10.0} events/s  \
             (CPU {cpu:.2} s: {:.2} cores busy, {:.0} events per CPU-second)",
            i + 1,
            cpu / wall,
            n as f64 / cpu
        );
        rates.push(rate);
    }
    println!("replay  head {}", &heads[0].as_deref().unwrap_or("")[..16]);
    println!("replay  2 threads vs 1: {:.2}x", rates[1] / rates[0]);
    println!(
        "target  >= 1,000,000 events/s on 2 threads: {}",
        if rates[1] >= 1_000_000.0 {
            "met"
        } else {
            "MISSED"
        }
    );

    // The coord_log view, as `coord audit` reads it, on a prefix.
    let pdb = Db::open(&db_path(prefix), 5000, None).unwrap();
    for i in 0..AGENTS {
        pdb.conn
            .query_row(
                "SELECT coord_key_add(?1, ?2)",
                [agent(i), secret(i)],
                |_| Ok(()),
            )
            .unwrap();
    }
    let pn: i64 = pdb
        .conn
        .query_row("SELECT count(*) FROM main.coord_events", [], |r| r.get(0))
        .unwrap();
    let (secs, log) = best_of(1, || coord_db::history::check(&pdb).unwrap());
    assert_eq!(log.events, pn);
    let bad: Vec<_> = log
        .problems
        .iter()
        .filter(|p| matches!(p.what, "bad_mac" | "gap" | "broken"))
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    let view_rate = pn as f64 / secs;
    println!("coord_log (history::check)  events={pn}: {secs:.3} s  {view_rate:>12.0} events/s");
    let (psecs, r) = best_of(runs, || {
        coord_db::replay::verify(&pdb.conn, &ring, 2).unwrap()
    });
    assert_eq!((r.events, &r.origin, &r.head), (pn, &log.origin, &log.head));
    // the prefix is the big log's first events
    let at_pn: Option<String> = db
        .conn
        .query_row(
            "SELECT coord_event_link(agent, hmac, seq, prev, op, subject, at, state)
               FROM main.coord_events WHERE seq = ?1",
            [pn],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(at_pn, r.head, "the prefix is not a prefix of the log");
    println!(
        "replay  threads=2  events={pn}: {psecs:.3} s  {:>12.0} events/s  ({:.0}x the view)",
        pn as f64 / psecs,
        (pn as f64 / psecs) / view_rate
    );
    // and the replay's verdicts are the view's, row for row (untimed)
    let mut st = pdb
        .conn
        .prepare("SELECT seq, verification, link, chain FROM coord_log ORDER BY seq")
        .unwrap();
    let mut view = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap();
    let mut same = 0i64;
    coord_db::replay::verify_each(&pdb.conn, &ring, 2, |v| {
        let w = view.next().unwrap().unwrap();
        assert_eq!(
            (v.seq, v.status.as_str(), v.link, v.chain.as_str()),
            (w.0, w.1.as_str(), w.2.as_deref(), w.3.as_str())
        );
        same += 1;
    })
    .unwrap();
    assert!(view.next().is_none());
    println!("replay  verdicts = coord_log's (verification, link, chain) for all {same} events");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 4 => {
            let t = Instant::now();
            let n: u64 = args[3].parse().unwrap();
            generate(&PathBuf::from(&args[2]), n);
            let size = std::fs::metadata(&args[2]).map_or(0, |m| m.len());
            println!(
                "generated {n} events in {:.1} s ({} MiB) at {}",
                t.elapsed().as_secs_f64(),
                size >> 20,
                args[2]
            );
        }
        Some("run") if args.len() >= 4 => {
            let runs = args.get(4).map_or(3, |r| r.parse().unwrap());
            run(Path::new(&args[2]), Path::new(&args[3]), runs);
        }
        Some("once") if args.len() == 4 => {
            // one replay, for a profiler
            let db = Db::open(&db_path(Path::new(&args[2])), 5000, None).unwrap();
            let t = Instant::now();
            let r =
                coord_db::replay::verify(&db.conn, &keyring(), args[3].parse().unwrap()).unwrap();
            println!(
                "{} events in {:.3} s, intact {}",
                r.events,
                t.elapsed().as_secs_f64(),
                r.is_intact()
            );
        }
        _ => {
            eprintln!("usage: replay_bench gen <db> <events> | run <db> <prefix-db> [runs]");
            std::process::exit(2);
        }
    }
}
