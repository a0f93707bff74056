//! `coord-wasmtime-host bench COMPONENT`: the per-call cost of signing and
//! verifying a claim through coord's WASI component in wasmtime, against
//! native coord-core (bench/run.sh records it). The component's checks are
//! this crate's integration tests (tests/component.rs).

use std::time::Instant;

use coord_wasmtime_host::{compile, Claim, Host};

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
    Ok(())
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
