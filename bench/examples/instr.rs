//! coord's one driver for valgrind and plain timing, outside criterion:
//!
//! - `instr OP N` runs one core operation (`bare`, `sign`, `verify`,
//!   `canonical`) N times, for instruction counts under callgrind
//!   (bench/run.sh), deterministic even on a loaded machine;
//! - `instr time RUNS N` times every operation over RUNS runs of N calls and
//!   prints JSON (ns per call for each run);
//! - `instr coord-first|coord-last|naive-first|naive-last N` verifies N
//!   times a MAC wrong in its first or last byte, with coord's verify or
//!   with an early-exit loop as the control (tests/hardening/timing.sh shows
//!   coord's count does not depend on where the MAC differs). Every such
//!   mode builds both wrong MACs, so they differ only in which is checked.
use coord_core::{AgentKeys, Field, MacTag, SecretKey};
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

/// The timing modes' key.
const KEY: &[u8] = b"timing-key-0123456789abcdef0123456789abcdef";

fn naive_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if black_box(a[i]) != black_box(b[i]) {
            return false;
        }
    }
    true
}

fn b64(bytes: &[u8; 32]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    let mut padded = bytes.to_vec();
    padded.push(0);
    for c in padded.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for s in [18, 12, 6, 0] {
            out.push(A[((n >> s) & 63) as usize] as char);
        }
    }
    out.truncate(43);
    out.push('=');
    out
}

/// The timing modes: `mode` verifies a MAC wrong in its first or last byte
/// `n` times, with coord's verify or with the early-exit control.
fn timing(mode: &str, n: usize) {
    let fields = [
        Field::Text("alice"),
        Field::Text("task:1"),
        Field::Integer(1),
        Field::Text("2026-11-27 07:00:00"),
    ];
    let key = SecretKey::new(KEY).expect("key");
    let canonical = coord_core::canonical(&fields);
    let mut right = [0u8; 32];
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(KEY).expect("hmac");
    m.update(&canonical);
    right.copy_from_slice(&m.finalize().into_bytes());
    assert_eq!(
        key.sign(&fields).to_string(),
        b64(&right),
        "own base64 agrees"
    );
    let mut first = right;
    first[0] ^= 1;
    let mut last = right;
    last[31] ^= 1;
    let tags = [
        MacTag::parse(&b64(&first)).expect("tag"),
        MacTag::parse(&b64(&last)).expect("tag"),
    ];
    let wrong = [first, last];
    let pick = usize::from(mode.ends_with("last"));
    let mut accepted = 0usize;
    for _ in 0..n {
        let ok = if mode.starts_with("coord") {
            key.verify(black_box(&fields), black_box(&tags[pick]))
        } else if mode.starts_with("naive") {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(KEY).expect("hmac");
            m.update(black_box(&canonical));
            naive_eq(&m.finalize().into_bytes(), black_box(&wrong[pick]))
        } else {
            unreachable!("mode checked by main")
        };
        accepted += usize::from(ok);
    }
    assert_eq!(accepted, 0, "a wrong MAC verified");
    println!("{mode}: {n} verifications, none accepted");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("bare");
    if matches!(
        mode,
        "coord-first" | "coord-last" | "naive-first" | "naive-last"
    ) {
        let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
        timing(mode, n);
        return;
    }
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
