//! The core operations outside criterion, for two uses by bench/run.sh:
//! `instr OP N` runs one operation N times (instruction counts under
//! callgrind, deterministic even on a loaded machine), and
//! `instr time RUNS N` times every operation over RUNS runs of N calls and
//! prints JSON (ns per call for each run).
use coord_core::{AgentKeys, Field, SecretKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::hint::black_box;
use std::time::Instant;

const OPS: [&str; 4] = ["bare", "sign", "verify", "canonical"];

struct Setup {
    fields: [Field<'static>; 4],
    bytes: Vec<u8>,
    keyed: Hmac<Sha256>,
    key: SecretKey,
    keys: AgentKeys,
    mac: String,
}

fn setup() -> Setup {
    let key_bytes = b"alice-secret-0123456789abcdef0123456789abcdef";
    let fields = [
        Field::Text("bob-autonomous-opus-3a9f"),
        Field::Text("github:gptme/gptme#2362"),
        Field::Integer(7),
        Field::Text("2026-11-27 07:05:03"),
    ];
    let key = SecretKey::new(key_bytes).expect("key");
    Setup {
        bytes: coord_core::canonical(&fields),
        keyed: Hmac::<Sha256>::new_from_slice(key_bytes).expect("key"),
        keys: AgentKeys::current(key.clone()),
        mac: key.sign(&fields).to_string(),
        key,
        fields,
    }
}

fn run(s: &Setup, op: &str, n: usize) {
    for _ in 0..n {
        match op {
            // A bare HMAC-SHA256 of the same canonical bytes, keyed once.
            "bare" => {
                let mut m = s.keyed.clone();
                m.update(black_box(&s.bytes));
                black_box(m.finalize().into_bytes());
            }
            // Canonical encoding + HMAC + base64.
            "sign" => {
                black_box(s.key.sign(black_box(&s.fields)).base64());
            }
            // Base64 decode + canonical encoding + HMAC + constant-time compare.
            "verify" => {
                black_box(s.keys.status(Some(black_box(&s.mac)), black_box(&s.fields)));
            }
            "canonical" => {
                black_box(coord_core::canonical(black_box(&s.fields)));
            }
            other => panic!("unknown op {other}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let s = setup();
    if args.get(1).map(String::as_str) == Some("time") {
        let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
        let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200_000);
        let mut out = Vec::new();
        for op in OPS {
            run(&s, op, n / 10); // warm up
            let per_call: Vec<String> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    run(&s, op, n);
                    format!("{:.1}", t.elapsed().as_nanos() as f64 / n as f64)
                })
                .collect();
            out.push(format!("\"{op}\": [{}]", per_call.join(", ")));
        }
        println!("{{{}}}", out.join(", "));
        return;
    }
    let op = args.get(1).map(String::as_str).unwrap_or("bare");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    run(&s, op, n);
}
