//! Runs one verification many times, for an instruction count under
//! valgrind: `coord-verify-timing <mode> [iterations]`.
//!
//! modes: `coord-first` / `coord-last` verify a MAC that differs from the
//! right one in its first / last byte with coord's verify; `naive-first` /
//! `naive-last` compare the same MACs with an early-exit loop, the control
//! that shows the count does see an early return. Every mode builds both
//! wrong MACs, so they differ only in which one is checked.

use std::hint::black_box;

use coord_core::{Field, MacTag, SecretKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

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

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
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
            eprintln!(
                "usage: coord-verify-timing coord-first|coord-last|naive-first|naive-last [n]"
            );
            std::process::exit(2);
        };
        accepted += usize::from(ok);
    }
    assert_eq!(accepted, 0, "a wrong MAC verified");
    println!("{mode}: {n} verifications, none accepted");
}
