//! The properties coord's fuzz targets check, as plain functions: each
//! `fuzz_targets/<name>.rs` feeds libFuzzer's input to one of them, and
//! `tests/regressions.rs` replays the kept corpus and every crash input
//! through the same functions in an ordinary `cargo test`.
//!
//! A property that fails panics (libFuzzer records the input as a crash).

use std::path::{Component, Path};

use arbitrary::{Arbitrary, Unstructured};
use coord_core::{canonical, encode, validate_agent_id, Field, MacTag, SecretKey, Status};

// ---------------------------------------------------------------------------
// canonical: the encoder against an independent reference of the JSON rules

/// A field as the fuzzer makes it.
#[derive(Debug, Clone, Arbitrary)]
pub enum FuzzField {
    /// NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL, from raw bits so every NaN, subnormal and -0.0 is reachable.
    Real(u64),
    /// TEXT.
    Text(String),
}

impl FuzzField {
    fn as_field(&self) -> Field<'_> {
        match self {
            FuzzField::Null => Field::Null,
            FuzzField::Integer(i) => Field::Integer(*i),
            FuzzField::Real(bits) => Field::Real(f64::from_bits(*bits)),
            FuzzField::Text(s) => Field::Text(s),
        }
    }
}

/// Python's `json.dumps(s)` with `ensure_ascii=True`, written from the JSON
/// rules in docs/signed-bytes.md, independently of coord-core's encoder.
pub fn reference_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The significant digits and decimal exponent of a float written by any
/// of the usual layouts (`123.45`, `1.2345e2`, `1e+16`, `1e-7`).
fn significant(s: &str) -> (String, i32) {
    let s = s.trim_start_matches('-');
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (
            m,
            e.trim_start_matches('+').parse::<i32>().unwrap_or(i32::MIN),
        ),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = format!("{int}{frac}");
    let mut point = int.len() as i32 + exp;
    while digits.starts_with('0') {
        digits.remove(0);
        point -= 1;
    }
    while digits.ends_with('0') {
        digits.pop();
    }
    (digits, point - 1)
}

/// Checks one float as coord writes it: reads back to the same double,
/// has the shortest digits (compared with ryu's, through serde_json), and
/// Python's `repr` layout.
fn check_float(f: f64, got: &str) {
    if f.is_nan() {
        assert_eq!(got, "NaN");
        return;
    }
    if f.is_infinite() {
        assert_eq!(got, if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    let back: f64 = got.parse().expect("coord wrote a float Rust cannot read");
    assert_eq!(
        back.to_bits(),
        f.to_bits(),
        "{got} does not read back as {f:?}"
    );
    if f == 0.0 {
        assert_eq!(got, if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let ryu = serde_json::to_string(&f).expect("finite float");
    let (digits, exp) = significant(got);
    assert_eq!(
        (digits.clone(), exp),
        significant(&ryu),
        "{got} vs ryu {ryu}"
    );
    if -5 < exp && exp < 16 {
        assert!(
            !got.contains('e') && got.contains('.'),
            "{got}: fixed form expected"
        );
    } else {
        let (_, e) = got.split_once('e').expect("exponent form expected");
        let (sign, mag) = e.split_at(1);
        assert!(sign == "+" || sign == "-", "{got}");
        assert!(
            mag.len() >= 2 && mag.bytes().all(|b| b.is_ascii_digit()),
            "{got}"
        );
        assert!(!got
            .split_once('e')
            .map(|(m, _)| m.ends_with('.'))
            .unwrap_or(false));
    }
}

/// Property of the canonical encoder, for any list of fields:
/// - `canonical` and the streaming `encode` give the same bytes;
/// - strings, integers and NULL are byte-equal to the reference encoder;
/// - floats read back exactly with the shortest digits and Python's layout;
/// - the bytes parse as JSON (when every float is finite) back to the fields.
pub fn check_canonical(data: &[u8]) {
    let Ok(fields) = Vec::<FuzzField>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let fs: Vec<Field<'_>> = fields.iter().map(FuzzField::as_field).collect();
    let bytes = canonical(&fs);
    let mut streamed = Vec::new();
    encode(&fs, |c| streamed.extend_from_slice(c));
    assert_eq!(bytes, streamed, "encode and canonical differ");
    assert!(bytes.is_ascii(), "canonical bytes must be ASCII");
    let text = std::str::from_utf8(&bytes).expect("ASCII");

    // Walk the output field by field against the reference.
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .expect("a JSON array");
    let mut rest = inner;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(',').expect("comma between fields");
        }
        match f {
            FuzzField::Null => rest = rest.strip_prefix("null").expect("null"),
            FuzzField::Integer(n) => {
                let want = n.to_string();
                rest = rest
                    .strip_prefix(want.as_str())
                    .expect("integer in decimal");
            }
            FuzzField::Text(s) => {
                let want = reference_str(s);
                rest = rest
                    .strip_prefix(want.as_str())
                    .unwrap_or_else(|| panic!("string {s:?}: want {want}, got {rest}"));
            }
            FuzzField::Real(bits) => {
                let end = rest.find(',').unwrap_or(rest.len());
                check_float(f64::from_bits(*bits), &rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    assert!(rest.is_empty(), "trailing bytes {rest:?}");

    // Round trip through a JSON parser when the output is strict JSON.
    let finite = fields
        .iter()
        .all(|f| !matches!(f, FuzzField::Real(b) if !f64::from_bits(*b).is_finite()));
    if finite {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), fields.len());
        for (f, j) in fields.iter().zip(arr) {
            match f {
                FuzzField::Null => assert!(j.is_null()),
                FuzzField::Integer(n) => assert_eq!(j.as_i64(), Some(*n)),
                FuzzField::Real(bits) => {
                    let got = j.as_f64().expect("number");
                    assert_eq!(got.to_bits(), *bits, "float round trip");
                }
                FuzzField::Text(s) => assert_eq!(j.as_str(), Some(s.as_str())),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// mac: parsing stored MACs, signing and verifying

/// Whether `s` is the canonical padded standard base64 of exactly 32 bytes,
/// decided character by character without a base64 library.
pub fn reference_is_mac(s: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    if b.len() != 44 || b[43] != b'=' {
        return false;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c);
    if !b[..43].iter().all(|&c| value(c).is_some()) {
        return false;
    }
    // 32 bytes = 256 bits in 43 sextets (258 bits): the last 2 bits are 0.
    value(b[42]).is_some_and(|v| v % 4 == 0)
}

/// Input of the MAC target.
#[derive(Debug, Arbitrary)]
pub struct MacInput {
    /// A stored MAC string to parse and check.
    pub stored: String,
    /// Key bytes (short ones must be refused).
    pub key: Vec<u8>,
    /// The row's fields.
    pub fields: Vec<FuzzField>,
    /// Which bit of the MAC to flip.
    pub flip: u8,
}

/// Properties of MAC parsing, signing and verifying:
/// - `MacTag::parse` accepts exactly canonical padded base64 of 32 bytes,
///   and prints it back unchanged;
/// - keys shorter than 32 bytes are refused, and errors never hold them;
/// - a signature verifies; a MAC with any one bit flipped does not, nor
///   does the MAC under fields with other canonical bytes;
/// - `status` of an arbitrary stored string is `Verified` exactly when it
///   is the MAC, never for anything else.
pub fn check_mac(data: &[u8]) {
    let Ok(input) = MacInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    match MacTag::parse(&input.stored) {
        Ok(tag) => {
            assert!(
                reference_is_mac(&input.stored),
                "accepted {:?}",
                input.stored
            );
            assert_eq!(tag.to_string(), input.stored);
        }
        Err(_) => assert!(
            !reference_is_mac(&input.stored),
            "refused {:?}",
            input.stored
        ),
    }
    let key = match SecretKey::new(&input.key) {
        Ok(k) => {
            assert!(input.key.len() >= 32);
            k
        }
        Err(e) => {
            assert!(input.key.len() < 32);
            let shown = format!("{e} {e:?}");
            if input.key.len() >= 4 {
                if let Ok(s) = std::str::from_utf8(&input.key) {
                    assert!(!shown.contains(s), "key bytes in an error: {shown}");
                }
            }
            return;
        }
    };
    assert!(!format!("{key:?}").contains("SecretKey(["));
    let fs: Vec<Field<'_>> = input.fields.iter().map(FuzzField::as_field).collect();
    let tag = key.sign(&fs);
    let mac = tag.to_string();
    assert!(reference_is_mac(&mac));
    assert!(key.verify(&fs, &tag));
    assert!(key.verify_bytes(&canonical(&fs), &tag));
    assert_eq!(key.sign_bytes(&canonical(&fs)), tag);

    // One flipped bit anywhere in the 32 bytes.
    let mut raw = [0u8; 32];
    let n =
        base64::Engine::decode_slice(&base64::engine::general_purpose::STANDARD, &mac, &mut raw)
            .expect("own MAC decodes");
    assert_eq!(n, 32);
    let bit = usize::from(input.flip) % 256;
    raw[bit / 8] ^= 1 << (bit % 8);
    let flipped = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw);
    let ftag = MacTag::parse(&flipped).expect("flipped MAC still parses");
    assert!(!key.verify(&fs, &ftag), "a flipped bit verified");

    let keys = coord_core::AgentKeys::current(key.clone());
    assert_eq!(keys.status(Some(&mac), &fs), Status::Verified);
    assert_eq!(keys.status(Some(&flipped), &fs), Status::BadMac);
    let stored_status = keys.status(Some(&input.stored), &fs);
    if input.stored == mac {
        assert_eq!(stored_status, Status::Verified);
    } else if input.stored.is_empty() {
        assert_eq!(stored_status, Status::Unsigned);
    } else {
        assert_eq!(stored_status, Status::BadMac, "{:?}", input.stored);
    }
    // Other fields: the same MAC verifies only if the canonical bytes match.
    let mut other = fs.clone();
    other.push(Field::Null);
    assert!(!key.verify(&other, &tag));
}

// ---------------------------------------------------------------------------
// agent_id: what may name a key file

/// Invisible and formatting characters (docs/keys.md, SECURITY.md), as ranges.
const INVISIBLE: &[(u32, u32)] = &[
    (0xa0, 0xa0),
    (0xad, 0xad),
    (0x34f, 0x34f),
    (0x61c, 0x61c),
    (0x115f, 0x1160),
    (0x1680, 0x1680),
    (0x17b4, 0x17b5),
    (0x180b, 0x180f),
    (0x2000, 0x200f),
    (0x2028, 0x202f),
    (0x205f, 0x206f),
    (0x3000, 0x3000),
    (0x3164, 0x3164),
    (0xfe00, 0xfe0f),
    (0xfeff, 0xfeff),
    (0xffa0, 0xffa0),
    (0xfff0, 0xfffb),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0000, 0xe0fff),
];

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    ranges
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)))
}

/// The agent id rule of docs/keys.md, written out independently.
pub fn reference_agent_ok(id: &str) -> bool {
    let latin = id
        .chars()
        .any(|c| c.is_ascii_alphabetic() || in_ranges(c, &[(0xc0, 0x24f), (0x1e00, 0x1eff)]));
    let cyrillic_or_greek = id.chars().any(|c| {
        in_ranges(
            c,
            &[
                (0x370, 0x52f),
                (0x1c80, 0x1c8f),
                (0xa640, 0xa69f),
                (0x1f00, 0x1fff),
            ],
        )
    });
    !id.is_empty()
        && id.len() <= 256
        && !id.contains('/')
        && !id.contains('\\')
        && !id.contains('\0')
        && !id.contains("..")
        && !id.chars().any(|c| c.is_control())
        && !id.chars().any(|c| in_ranges(c, INVISIBLE))
        && !(latin && cyrillic_or_greek)
}

/// Properties of agent-id validation:
/// - it accepts exactly what the rule of docs/keys.md accepts;
/// - an accepted id joined as `<dir>/<id>.secret` names a file directly in
///   `<dir>`: one normal component, never `..`, never absolute;
/// - the environment variable names built from it contain no `=` or NUL,
///   and the normalised one only `[A-Z0-9_]`.
pub fn check_agent_id(data: &[u8]) {
    let Ok(id) = std::str::from_utf8(data) else {
        return;
    };
    let ok = validate_agent_id(id).is_ok();
    assert_eq!(ok, reference_agent_ok(id), "{id:?}");
    if !ok {
        return;
    }
    let dir = Path::new("/keys/secrets");
    for name in [format!("{id}.secret"), format!("{id}.retired")] {
        let p = dir.join(&name);
        assert_eq!(p.parent(), Some(dir), "{id:?} leaves the directory");
        let extra: Vec<Component<'_>> = p.components().skip(dir.components().count()).collect();
        assert_eq!(extra.len(), 1, "{id:?} makes {} components", extra.len());
        assert!(matches!(extra[0], Component::Normal(_)), "{id:?}");
    }
    let [normal, legacy] = coord_keys::env_var_names(id);
    let suffix = normal.strip_prefix("COORDINATION_SECRET_").expect("prefix");
    assert!(suffix
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
    assert!(
        !legacy.contains('=') && !legacy.contains('\0'),
        "{legacy:?}"
    );
}

pub mod sql;
