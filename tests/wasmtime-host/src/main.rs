//! `coord-wasmtime-host bench COMPONENT`: the per-call cost of signing and
//! verifying a claim through coord's WASI component in wasmtime, against
//! native coord-core, and of checking a signed-history log in one
//! `check-log` call (bench/run.sh records it). The component's checks are
//! this crate's integration tests (tests/component.rs).

use std::time::Instant;

use coord_core::SignedRow;
use coord_wasmtime_host::{compile, Claim, Event, Host};

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    format!("wasmtime: {e}")
}

const ALICE: &[u8] = b"alice-secret-0123456789abcdef0123456789abcdef";

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn bench(args: &[String]) -> Res<()> {
    let [component] = args else {
        return Err("usage: bench COMPONENT".into());
    };
    let (engine, component) = compile(component).map_err(err)?;
    let mut h = Host::load(&engine, &component).map_err(err)?;
    let kr = h.keyring().map_err(err)?;
    h.add_key(kr, "alice", ALICE)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    let claim = Claim {
        claimer: "alice".into(),
        task_id: "github:gptme/gptme#2362".into(),
        epoch: 1,
        expires_at: "2076-11-14 06:05:02".into(),
    };
    let fields = [
        coord_core::Field::Text("alice"),
        coord_core::Field::Text("github:gptme/gptme#2362"),
        coord_core::Field::Integer(1),
        coord_core::Field::Text("2076-11-14 06:05:02"),
    ];
    let native = coord_core::SecretKey::new(ALICE).map_err(|e| e.to_string())?;
    let keys = coord_core::AgentKeys::current(native.clone());
    let mac = native.sign(&fields).to_string();
    let n = 20_000;
    let api = h.signer.coord_signing_signing().keyring();
    let mut failed = false;
    let wasm_sign = per_call(n, || {
        failed |= api
            .call_sign_claim(&mut h.store, kr, &claim)
            .map(|r| r.is_err())
            .unwrap_or(true);
    });
    let wasm_verify = per_call(n, || {
        failed |= !api
            .call_verify_claim(&mut h.store, kr, &claim, Some(&mac))
            .unwrap_or(false);
    });
    let native_sign = per_call(n, || {
        std::hint::black_box(native.sign(std::hint::black_box(&fields)).to_string());
    });
    let native_verify = per_call(n, || {
        std::hint::black_box(keys.status(Some(std::hint::black_box(&mac)), &fields));
    });
    if failed {
        return Err("a benchmarked call failed".into());
    }
    println!(
        "per call, {n} calls of a claim (alice, github:gptme/gptme#2362, 1, 2076-11-14 06:05:02):"
    );
    println!(
        "  sign:   component {wasm_sign:8.0} ns   native {native_sign:8.0} ns   ratio {:.1}x",
        wasm_sign / native_sign
    );
    println!(
        "  verify: component {wasm_verify:8.0} ns   native {native_verify:8.0} ns   ratio {:.1}x",
        wasm_verify / native_verify
    );
    bench_log(&mut h, kr, &native)
}

/// `check-log` over a log of `N` events, in one call, against the native
/// core doing the same work (each event's link and MAC, then the chain).
fn bench_log(
    h: &mut Host,
    kr: wasmtime::component::ResourceAny,
    key: &coord_core::SecretKey,
) -> Res<()> {
    const N: i64 = 10_000;
    const STATE: &str = r#"["github:gptme/gptme#2362","alice",1,"2026-12-08 02:00:00","2076-11-14 06:05:02","claimed",null,null,null]"#;
    let mut prev = String::new();
    let log: Vec<Event> = (1..=N)
        .map(|seq| {
            let mut e = Event {
                seq,
                prev: std::mem::take(&mut prev),
                op: "claim".into(),
                subject: "github:gptme/gptme#2362".into(),
                at: "2026-12-08 02:00:00".into(),
                agent: "alice".into(),
                state: STATE.into(),
                hmac: None,
            };
            let row = native_event(&e);
            let mac = key.sign_row(&row).to_string();
            prev = coord_core::link(&row, Some(&mac));
            e.hmac = Some(mac);
            e
        })
        .collect();
    let keys = coord_core::AgentKeys::current(key.clone());
    let reps = 5;
    let mut failed = false;
    let start = Instant::now();
    for _ in 0..reps {
        failed |= !h
            .check_log(kr, &log, None)
            .map(|r| r.intact)
            .unwrap_or(false);
    }
    let wasm = start.elapsed().as_nanos() as f64 / f64::from(reps) / N as f64;
    let start = Instant::now();
    for _ in 0..reps {
        let links: Vec<String> = log
            .iter()
            .map(|e| coord_core::link(&native_event(e), e.hmac.as_deref()))
            .collect();
        let statuses: Vec<coord_core::Status> = log
            .iter()
            .map(|e| keys.status(e.hmac.as_deref(), native_event(e).fields()))
            .collect();
        let chain = coord_core::check_chain(
            None,
            log.iter()
                .zip(&links)
                .map(|(e, l)| (e.seq, e.prev.as_str(), l.as_str())),
        );
        failed |= !chain.iter().all(|c| *c == coord_core::Chain::Ok)
            || !statuses.iter().all(|s| *s == coord_core::Status::Verified);
    }
    let native = start.elapsed().as_nanos() as f64 / f64::from(reps) / N as f64;
    if failed {
        return Err("the benchmarked log did not verify".into());
    }
    println!("per event, check-log of a {N}-event log in one call ({reps} runs):");
    println!(
        "  check:  component {wasm:8.0} ns   native {native:8.0} ns   ratio {:.1}x",
        wasm / native
    );
    Ok(())
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench(&args[1..]),
        _ => Err("usage: coord-wasmtime-host bench COMPONENT (the checks: cargo test -p coord-wasmtime-host)".into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
