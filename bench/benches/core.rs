//! Core: sign and verify of a claim tuple (canonical encoding + HMAC +
//! base64) against a bare HMAC-SHA256 of the same canonical bytes with the
//! `hmac` crate, keyed once in both cases.

use coord_core::{canonical, AgentKeys, Field, SecretKey};
use criterion::{criterion_main, Criterion};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::hint::black_box;

const KEY: &[u8] = b"alice-secret-0123456789abcdef0123456789abcdef";

fn claim() -> [Field<'static>; 4] {
    [
        Field::Text("bob-autonomous-opus-3a9f"),
        Field::Text("github:gptme/gptme#2362"),
        Field::Integer(7),
        Field::Text("2026-11-27 07:05:03"),
    ]
}

fn bench(c: &mut Criterion) {
    let fields = claim();
    let bytes = canonical(&fields);
    let keyed = Hmac::<Sha256>::new_from_slice(KEY).expect("key");
    let key = SecretKey::new(KEY).expect("key");
    let keys = AgentKeys::current(key.clone());
    let mac = key.sign(&fields).to_string();

    let mut g = c.benchmark_group("core");
    g.bench_function("bare_hmac", |b| {
        b.iter(|| {
            let mut m = keyed.clone();
            m.update(black_box(&bytes));
            black_box(m.finalize().into_bytes())
        });
    });
    g.bench_function("sign_claim", |b| {
        b.iter(|| black_box(key.sign(black_box(&fields)).base64()));
    });
    g.bench_function("verify_claim", |b| {
        b.iter(|| black_box(keys.status(Some(black_box(&mac)), black_box(&fields))));
    });
    g.bench_function("sign_tag_only", |b| {
        b.iter(|| black_box(key.sign(black_box(&fields))));
    });
    g.bench_function("canonical_only", |b| {
        b.iter(|| black_box(canonical(black_box(&fields))));
    });
    g.finish();
}

// criterion_group! defines a public fn with no doc comment.
#[allow(missing_docs)]
mod group {
    use super::bench;
    criterion::criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
