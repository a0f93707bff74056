//! Signed history in the component (the `wasmtime` crate), against what the
//! SQLite extension's views said of the same rows, and against the native
//! core.
//!
//! ```sh
//! COORD_WASM=... COORD_HISTORY=... cargo test -p coord-wasmtime-host --profile host --test history
//! ```
//!
//! `COORD_HISTORY` is the directory tests/component/history_fixture.py
//! writes; its `history.json` holds, for a database the extension's write
//! API wrote and for copies attacked with plain SQL (an event deleted, two
//! swapped, one edited, the last deleted), the `coord_events` rows as
//! stored, the `coord_log` rows (seq, link, verification, chain) and the
//! `coord_checkpoint_log` rows, read with the keys given there.

use std::path::PathBuf;
use std::sync::OnceLock;

use coord_core::SignedRow;
use coord_wasmtime_host::{
    compile, AgentKey, ChainStatus, Checkpoint, Consistency, Error as CoordError, Event, Host,
    LogPosition, LogReport, VerificationStatus,
};
use serde_json::Value;
use wasmtime::component::{Component, ResourceAny};
use wasmtime::Engine;

/// The path in `$name`; panics, naming it, if it is unset or missing.
fn input(name: &str) -> PathBuf {
    let value = std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set (tests/component.sh sets it)"));
    let path = PathBuf::from(value);
    assert!(
        path.exists(),
        "{name}={}: no such file or directory",
        path.display()
    );
    path
}

fn compiled() -> &'static (Engine, Component) {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = input("COORD_WASM");
        compile(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn history() -> &'static Value {
    static HISTORY: OnceLock<Value> = OnceLock::new();
    HISTORY.get_or_init(|| {
        let path = input("COORD_HISTORY").join("history.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not text in {v}"))
        .to_owned()
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

fn opt(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

/// The reader's keys, as history.json gives them: (agent, secret, retired).
fn keys() -> Vec<(String, Vec<u8>, bool)> {
    history()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                text(k, "agent"),
                text(k, "secret").into_bytes(),
                k["retired"].as_bool().expect("retired"),
            )
        })
        .collect()
}

/// A fresh instance with a keyring holding the reader's keys.
fn host() -> (Host, ResourceAny) {
    let (engine, component) = compiled();
    let mut host = Host::load(engine, component).expect("instantiates");
    let keys: Vec<AgentKey> = keys()
        .into_iter()
        .map(|(agent, secret, retired)| AgentKey {
            agent,
            secret,
            retired,
        })
        .collect();
    let kr = host
        .keyring_from_keys(&keys)
        .expect("wasmtime")
        .expect("the keys load");
    (host, kr)
}

/// The same keys in the native core's keyring.
fn native_keyring() -> coord_core::Keyring {
    let mut ring = coord_core::Keyring::new();
    for (agent, secret, retired) in keys() {
        let key = coord_core::SecretKey::new(&secret).expect("key");
        if retired {
            ring.add_retired(&agent, key);
        } else {
            ring.add(&agent, key);
        }
    }
    ring
}

/// One database of history.json: its events, its coord_log rows (seq,
/// link, verification, chain) and its checkpoints with their verification
/// and consistency.
struct Db {
    name: String,
    events: Vec<Event>,
    log: Vec<(i64, String, String, String)>,
    checkpoints: Vec<(Checkpoint, String, String)>,
}

fn databases() -> Vec<Db> {
    let dbs = history()["databases"].as_object().expect("databases");
    dbs.iter()
        .map(|(name, db)| Db {
            name: name.clone(),
            events: db["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| Event {
                    seq: int(e, "seq"),
                    prev: text(e, "prev"),
                    op: text(e, "op"),
                    subject: text(e, "subject"),
                    at: text(e, "at"),
                    agent: text(e, "agent"),
                    state: text(e, "state"),
                    hmac: opt(e, "hmac"),
                })
                .collect(),
            log: db["log"]
                .as_array()
                .expect("log")
                .iter()
                .map(|r| {
                    (
                        int(r, "seq"),
                        text(r, "link"),
                        text(r, "verification"),
                        text(r, "chain"),
                    )
                })
                .collect(),
            checkpoints: db["checkpoints"]
                .as_array()
                .expect("checkpoints")
                .iter()
                .map(|c| {
                    (
                        Checkpoint {
                            agent: text(c, "agent"),
                            origin: text(c, "origin"),
                            size: int(c, "size"),
                            head: text(c, "head"),
                            at: text(c, "at"),
                            hmac: opt(c, "hmac"),
                        },
                        text(c, "verification"),
                        text(c, "consistency"),
                    )
                })
                .collect(),
        })
        .collect()
}

fn status_name(s: VerificationStatus) -> &'static str {
    match s {
        VerificationStatus::Verified => "verified",
        VerificationStatus::Unsigned => "unsigned",
        VerificationStatus::UnknownAgent => "unknown_agent",
        VerificationStatus::BadMac => "bad_mac",
        VerificationStatus::RetiredKey => "retired_key",
    }
}

fn chain_name(c: ChainStatus) -> &'static str {
    match c {
        ChainStatus::Ok => "ok",
        ChainStatus::Gap => "gap",
        ChainStatus::Broken => "broken",
    }
}

fn consistency_name(c: Consistency) -> &'static str {
    match c {
        Consistency::Consistent => "consistent",
        Consistency::Ahead => "ahead",
        Consistency::Fork => "fork",
    }
}

fn rows(report: &LogReport) -> Vec<(i64, String, String, String)> {
    report
        .events
        .iter()
        .map(|c| {
            (
                c.seq,
                c.link.clone(),
                status_name(c.status).to_owned(),
                chain_name(c.chain).to_owned(),
            )
        })
        .collect()
}

fn native_event(e: &Event) -> coord_core::Event<'_> {
    coord_core::Event::new(
        &e.agent,
        e.seq,
        e.prev.as_str(),
        e.op.as_str(),
        e.subject.as_str(),
        e.at.as_str(),
        e.state.as_str(),
    )
}

#[test]
fn five_databases_were_written() {
    let names: Vec<String> = databases().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["edited", "gap", "intact", "swapped", "truncated"]);
    let intact = databases()
        .into_iter()
        .find(|d| d.name == "intact")
        .expect("intact");
    assert_eq!(intact.events.len(), 14);
    assert_eq!(intact.log.len(), 14);
}

#[test]
fn check_log_reads_as_coord_log_row_for_row() {
    for db in databases() {
        let (mut h, kr) = host();
        let report = h.check_log(kr, &db.events, None).expect("wasmtime");
        assert_eq!(rows(&report), db.log, "{}", db.name);
        assert_eq!(
            report.size,
            i64::try_from(db.log.len()).expect("size"),
            "{}",
            db.name
        );
        let first = &db.log[0];
        assert_eq!(
            report.origin,
            (first.0 == 1).then(|| first.1.clone()),
            "{}",
            db.name
        );
        assert_eq!(
            report.head.as_deref(),
            db.log.last().map(|r| r.1.as_str()),
            "{}",
            db.name
        );
        assert_eq!(
            report.intact,
            db.log.iter().all(|r| r.3 == "ok" && r.2 != "bad_mac"),
            "{}",
            db.name
        );
        assert_eq!(
            report.intact,
            db.name == "intact" || db.name == "truncated",
            "{}",
            db.name
        );
    }
}

#[test]
fn each_event_reads_as_coord_log_and_the_native_core() {
    let ring = native_keyring();
    for db in databases() {
        let (mut h, kr) = host();
        for (e, (seq, link, status, _)) in db.events.iter().zip(&db.log) {
            assert_eq!(e.seq, *seq);
            let ev = native_event(e);
            assert_eq!(
                &h.event_link(e).expect("wasmtime"),
                link,
                "{} {seq}",
                db.name
            );
            assert_eq!(
                &coord_core::link(&ev, e.hmac.as_deref()),
                link,
                "{} {seq}",
                db.name
            );
            let st = h.event_status(kr, e).expect("wasmtime");
            assert_eq!(status_name(st), status, "{} {seq}", db.name);
            let native = coord_core::status(ring.get(&e.agent), e.hmac.as_deref(), ev.fields());
            assert_eq!(native.as_str(), status, "{} {seq}", db.name);
        }
    }
}

#[test]
fn the_native_chain_rule_reads_as_coord_log() {
    for db in databases() {
        let chain = coord_core::check_chain(
            None,
            db.events
                .iter()
                .zip(&db.log)
                .map(|(e, r)| (e.seq, e.prev.as_str(), r.1.as_str())),
        );
        let got: Vec<&str> = chain.iter().map(|c| c.as_str()).collect();
        let want: Vec<&str> = db.log.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(got, want, "{}", db.name);
    }
}

#[test]
fn every_suffix_after_its_position_reads_as_the_whole_log() {
    for db in databases() {
        let (mut h, kr) = host();
        let origin = db.log[0].1.clone();
        for k in 0..db.events.len() {
            let after = LogPosition {
                origin: origin.clone(),
                size: db.log[k].0,
                head: db.log[k].1.clone(),
            };
            let report = h
                .check_log(kr, &db.events[k + 1..], Some(&after))
                .expect("wasmtime");
            assert_eq!(rows(&report), db.log[k + 1..], "{} after {k}", db.name);
            let rest = i64::try_from(db.events.len() - k - 1).expect("len");
            assert_eq!(report.size, db.log[k].0 + rest);
            assert_eq!(report.origin.as_deref(), Some(origin.as_str()));
        }
    }
}

#[test]
fn the_attacks_read_as_what_they_are() {
    let find = |name: &str| {
        databases()
            .into_iter()
            .find(|d| d.name == name)
            .expect(name)
    };
    let chain_at = |name: &str, seq: i64| {
        let db = find(name);
        let (mut h, kr) = host();
        let report = h.check_log(kr, &db.events, None).expect("wasmtime");
        let c = report.events.iter().find(|c| c.seq == seq).expect("seq");
        (status_name(c.status), chain_name(c.chain))
    };
    assert_eq!(chain_at("gap", 4).1, "gap");
    for seq in [6, 7, 8] {
        assert_eq!(chain_at("swapped", seq).1, "broken", "swapped {seq}");
    }
    assert_eq!(chain_at("edited", 5), ("bad_mac", "ok"));
    assert_eq!(chain_at("edited", 6).1, "broken");
    assert_eq!(chain_at("intact", 6), ("unsigned", "ok"));
    assert_eq!(chain_at("intact", 10), ("unknown_agent", "ok"));
    assert_eq!(chain_at("intact", 1), ("retired_key", "ok"));
}

#[test]
fn checkpoints_read_as_coord_checkpoint_log() {
    for db in databases() {
        let (mut h, kr) = host();
        assert_eq!(db.checkpoints.len(), 2, "{}", db.name);
        for (cp, verification, consistency) in &db.checkpoints {
            let st = h.checkpoint_status(kr, cp).expect("wasmtime");
            assert_eq!(status_name(st), verification, "{}", db.name);
            let c = h.checkpoint_consistency(cp, &db.events).expect("wasmtime");
            assert_eq!(consistency_name(c), consistency, "{} {}", db.name, cp.size);
            // signed by the extension: the component signs it to the same MAC
            let mac = h.sign_checkpoint(kr, cp).expect("wasmtime").expect("signs");
            assert_eq!(Some(mac), cp.hmac, "{}", db.name);
        }
    }
    let got = |name: &str| -> Vec<String> {
        let db = databases()
            .into_iter()
            .find(|d| d.name == name)
            .expect(name);
        db.checkpoints.into_iter().map(|c| c.2).collect()
    };
    assert_eq!(got("edited"), ["fork", "consistent"]);
    assert_eq!(got("truncated"), ["consistent", "ahead"]);
}

#[test]
fn sign_event_gives_the_extensions_mac() {
    let db = databases()
        .into_iter()
        .find(|d| d.name == "intact")
        .expect("intact");
    let (mut h, kr) = host();
    let mut signed = 0;
    for (e, r) in db.events.iter().zip(&db.log) {
        let got = h.sign_event(kr, e).expect("wasmtime");
        match r.2.as_str() {
            "verified" => {
                assert_eq!(got.ok(), e.hmac, "{}", e.seq);
                signed += 1;
            }
            "unsigned" => assert_eq!(got, Err(CoordError::UnknownAgent(String::new()))),
            "unknown_agent" => assert_eq!(got, Err(CoordError::UnknownAgent("carol".into()))),
            _ => {}
        }
    }
    assert_eq!(signed, 6);
}

/// A log of `n` events signed by the native core, as the extension writes
/// them (a chain of links from event 1).
fn native_log(n: i64) -> Vec<Event> {
    let ring = native_keyring();
    let key = ring
        .get("bob")
        .and_then(|k| k.current.as_ref())
        .expect("bob");
    let mut prev = String::new();
    (1..=n)
        .map(|seq| {
            let mut e = Event {
                seq,
                prev: prev.clone(),
                op: "submit".into(),
                subject: format!("t{seq}"),
                at: "2026-12-08 02:00:00".into(),
                agent: "bob".into(),
                state: format!("[\"t{seq}\"]"),
                hmac: None,
            };
            e.hmac = Some(key.sign_row(&native_event(&e)).to_string());
            prev = coord_core::link(&native_event(&e), e.hmac.as_deref());
            e
        })
        .collect()
}

#[test]
fn a_long_log_in_one_call() {
    let mut log = native_log(20_000);
    let (mut h, kr) = host();
    let report = h.check_log(kr, &log, None).expect("wasmtime");
    assert!(report.intact);
    assert_eq!(report.size, 20_000);
    assert!(report
        .events
        .iter()
        .all(|c| c.status == VerificationStatus::Verified && c.chain == ChainStatus::Ok));
    // the component's checkpoint of it is the native core's
    let cp = Checkpoint {
        agent: "bob".into(),
        origin: report.origin.clone().expect("origin"),
        size: report.size,
        head: report.head.clone().expect("head"),
        at: "2026-12-08 02:00:01".into(),
        hmac: None,
    };
    let mac = h
        .sign_checkpoint(kr, &cp)
        .expect("wasmtime")
        .expect("signs");
    let ring = native_keyring();
    let native = coord_core::Checkpoint::new(
        "bob",
        cp.origin.as_str(),
        cp.size,
        cp.head.as_str(),
        cp.at.as_str(),
    );
    assert_eq!(
        coord_core::status(ring.get("bob"), Some(&mac), native.fields()),
        coord_core::Status::Verified
    );
    assert_eq!(
        h.checkpoint_consistency(&cp, &log).expect("wasmtime"),
        Consistency::Consistent
    );
    // one event deleted in the middle, one MAC malformed: named, no trap
    log.remove(10_000);
    log[15_000].hmac = Some("not a mac".into());
    let report = h.check_log(kr, &log, None).expect("wasmtime");
    assert!(!report.intact);
    let bad: Vec<(i64, &str, &str)> = report
        .events
        .iter()
        .filter(|c| c.chain != ChainStatus::Ok || c.status != VerificationStatus::Verified)
        .map(|c| (c.seq, status_name(c.status), chain_name(c.chain)))
        .collect();
    // the malformed MAC also changes that event's link, so the next one is broken
    assert_eq!(
        bad,
        [
            (10_002, "verified", "gap"),
            (15_002, "bad_mac", "ok"),
            (15_003, "verified", "broken")
        ]
    );
    let truncated = &log[..5_000];
    assert_eq!(
        h.checkpoint_consistency(&cp, truncated).expect("wasmtime"),
        Consistency::Ahead
    );
    // and the instance still works
    assert_eq!(h.check_log(kr, &[], None).expect("wasmtime").size, 0);
}
