//! Property test: coord's canonical bytes equal Python's `json.dumps` on
//! random strings (control, DEL, quotes, backslash, non-ASCII, astral) and
//! random numbers. Python is the reference; `COORD_PYTHON` picks the
//! interpreter (default `python3`).
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::io::Write;
use std::process::{Command, Stdio};

use coord_core::{canonical, Field};
use proptest::prelude::*;

const PY: &str = r#"
import json, sys
for line in sys.stdin:
    fields = json.loads(line)
    sys.stdout.write(json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n")
"#;

/// Asks Python for the canonical form of each row (one JSON line each way;
/// serde_json only carries the values across, Python does the encoding).
fn python_canonical(rows: &[serde_json::Value]) -> Vec<String> {
    let python = std::env::var("COORD_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3: the reference for the canonical bytes");
    let mut input = String::new();
    for row in rows {
        input.push_str(&serde_json::to_string(row).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
        Just('\u{7f}'),
        prop::sample::select(vec![
            '"', '\\', '/', ' ', '~', '\u{80}', '\u{ff}', '\u{fffe}', '\u{ffff}'
        ]),
        (0x20u32..0x7f).prop_map(|c| char::from_u32(c).unwrap()),
        any::<char>(),
        (0x10000u32..0x110000).prop_filter_map("scalar", char::from_u32),
    ]
}

#[derive(Debug, Clone)]
enum Val {
    Text(String),
    Int(i64),
    Real(f64),
    Null,
}

fn value() -> impl Strategy<Value = Val> {
    prop_oneof![
        4 => prop::collection::vec(nasty_char(), 0..40).prop_map(|c| Val::Text(c.into_iter().collect())),
        1 => any::<i64>().prop_map(Val::Int),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Val::Real),
        1 => Just(Val::Null),
    ]
}

fn as_field(v: &Val) -> Field<'_> {
    match v {
        Val::Text(s) => Field::Text(s),
        Val::Int(i) => Field::Integer(*i),
        Val::Real(f) => Field::Real(*f),
        Val::Null => Field::Null,
    }
}

fn as_json(v: &Val) -> serde_json::Value {
    match v {
        Val::Text(s) => s.clone().into(),
        Val::Int(i) => (*i).into(),
        Val::Real(f) => serde_json::Number::from_f64(*f).unwrap().into(),
        Val::Null => serde_json::Value::Null,
    }
}

proptest! {
    // Each case is a batch of rows so that Python starts once per case.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn canonical_bytes_equal_pythons(rows in prop::collection::vec(prop::collection::vec(value(), 0..6), 64)) {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::Value::Array(r.iter().map(as_json).collect()))
            .collect();
        let want = python_canonical(&json);
        prop_assert_eq!(want.len(), rows.len());
        for (row, want) in rows.iter().zip(&want) {
            let fields: Vec<Field<'_>> = row.iter().map(as_field).collect();
            prop_assert_eq!(String::from_utf8(canonical(&fields)).unwrap(), want.as_str());
        }
    }
}
