//! The canonical bytes of a row: what gptme-coordination signs.
//!
//! `canonical(fields)` is exactly what Python writes for
//! `json.dumps(list(fields), sort_keys=True, separators=(",", ":"))` with its
//! default `ensure_ascii=True`, encoded as UTF-8. `docs/signed-bytes.md` fixes
//! the rule character by character and `tests/vectors.json` holds the vectors.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::EncodeError;

/// One field of a signed row.
///
/// The variants are the SQLite storage classes that have a JSON form in
/// Python's `json` module. BLOBs have none (`json.dumps(b"")` is a
/// `TypeError`), so there is no BLOB variant: callers turn bytes into a
/// [`EncodeError::Blob`] before they get here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// SQL NULL, Python `None`: `null`.
    Null,
    /// A 64-bit integer: plain decimal.
    Integer(i64),
    /// A double: Python's `repr(float)`, with `NaN`, `Infinity` and
    /// `-Infinity` for the values JSON has no number for (as Python writes
    /// them by default).
    Real(f64),
    /// Text: a JSON string with every character outside printable ASCII
    /// escaped.
    Text(&'a str),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(s: &'a str) -> Self {
        Field::Text(s)
    }
}

impl From<i64> for Field<'_> {
    fn from(i: i64) -> Self {
        Field::Integer(i)
    }
}

impl From<f64> for Field<'_> {
    fn from(f: f64) -> Self {
        Field::Real(f)
    }
}

impl<'a, T: Into<Field<'a>>> From<Option<T>> for Field<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Field::Null, Into::into)
    }
}

/// Returns the canonical bytes of `fields`.
///
/// ```
/// use coord_core::{canonical, Field};
/// let bytes = canonical(&[Field::Text("alice"), Field::Text("café"), Field::Integer(2), Field::Null]);
/// assert_eq!(bytes, br#"["alice","caf\u00e9",2,null]"#);
/// ```
pub fn canonical(fields: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + fields.len() * 24);
    encode(fields, |chunk| out.extend_from_slice(chunk));
    out
}

/// Streams the canonical bytes of `fields` to `sink` in chunks, so that a MAC
/// can be computed without building the whole buffer first.
pub fn encode(fields: &[Field<'_>], sink: impl FnMut(&[u8])) {
    encode_to(fields, &mut ChunkSink(sink));
}

/// Appends the canonical bytes of `fields` to `out` (a buffer a caller
/// reuses from row to row).
pub fn encode_into(fields: &[Field<'_>], out: &mut Vec<u8>) {
    encode_to(fields, out);
}

impl Sink for Vec<u8> {
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
}

/// Where the encoder writes. Single bytes (brackets, commas, quotes) have
/// their own method so that a buffer can store them without a `memcpy`
/// call each: a claim is 15 pieces, most of them one byte long.
pub(crate) trait Sink {
    fn bytes(&mut self, b: &[u8]);
    fn byte(&mut self, b: u8);
}

struct ChunkSink<F>(F);

impl<F: FnMut(&[u8])> Sink for ChunkSink<F> {
    fn bytes(&mut self, b: &[u8]) {
        (self.0)(b);
    }
    fn byte(&mut self, b: u8) {
        (self.0)(&[b]);
    }
}

pub(crate) fn encode_to(fields: &[Field<'_>], sink: &mut impl Sink) {
    sink.byte(b'[');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            sink.byte(b',');
        }
        match *field {
            Field::Null => sink.bytes(b"null"),
            Field::Integer(n) => sink.bytes(itoa::Buffer::new().format(n).as_bytes()),
            Field::Real(f) => sink.bytes(python_float_repr(f).as_bytes()),
            Field::Text(s) => encode_str(s, sink),
        }
    }
    sink.byte(b']');
}

/// Checks that `bytes` can be a TEXT field, returning it as `str`.
///
/// SQLite TEXT may hold bytes that are not UTF-8; Python cannot read such a
/// value as `str` at all, so no gptme row can have signed it.
pub fn text_field(index: usize, bytes: &[u8]) -> Result<&str, EncodeError> {
    core::str::from_utf8(bytes).map_err(|_| EncodeError::InvalidUtf8 { index })
}

/// Bytes that stand for themselves inside a JSON string: printable ASCII
/// other than `"` and `\`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

fn encode_str(s: &str, sink: &mut impl Sink) {
    sink.byte(b'"');
    let bytes = s.as_bytes();
    // Runs of plain bytes go out unchanged in one chunk; everything else is
    // escaped one character at a time. The scan is over bytes: a non-ASCII
    // byte always starts a character here, since runs stop before one and
    // escapes step over whole characters.
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if PLAIN[usize::from(b)] {
            i += 1;
            continue;
        }
        if run_start < i {
            sink.bytes(&bytes[run_start..i]);
        }
        if b < 0x80 {
            match b {
                b'"' => sink.bytes(b"\\\""),
                b'\\' => sink.bytes(b"\\\\"),
                0x08 => sink.bytes(b"\\b"),
                0x0c => sink.bytes(b"\\f"),
                b'\n' => sink.bytes(b"\\n"),
                b'\r' => sink.bytes(b"\\r"),
                b'\t' => sink.bytes(b"\\t"),
                _ => sink.bytes(&escape_u(u16::from(b))),
            }
            i += 1;
        } else {
            let Some(ch) = s.get(i..).and_then(|rest| rest.chars().next()) else {
                break;
            };
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                sink.bytes(&escape_u(*unit));
            }
            i += ch.len_utf8();
        }
        run_start = i;
    }
    if run_start < bytes.len() {
        sink.bytes(&bytes[run_start..]);
    }
    sink.byte(b'"');
}

/// A buffer for canonical bytes that lives on the stack for the usual row
/// (a claim or a short message) and moves to the heap only when a row is
/// longer, so that signing a claim allocates nothing.
pub(crate) struct CanonicalBuf {
    stack: [u8; 256],
    len: usize,
    heap: Vec<u8>,
}

impl CanonicalBuf {
    /// An empty buffer; fill it with [`encode_to`]. (Made empty and filled
    /// in place rather than returned full, which would copy it.)
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; 256],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn spill(&mut self, extra: usize) {
        if self.heap.is_empty() {
            self.heap.reserve((self.len + extra) * 2);
            self.heap.extend_from_slice(&self.stack[..self.len]);
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

impl Sink for CanonicalBuf {
    #[inline]
    fn bytes(&mut self, chunk: &[u8]) {
        let end = self.len + chunk.len();
        if self.heap.is_empty() && end <= self.stack.len() {
            self.stack[self.len..end].copy_from_slice(chunk);
            self.len = end;
        } else {
            self.spill(chunk.len());
            self.heap.extend_from_slice(chunk);
        }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if self.heap.is_empty() && self.len < self.stack.len() {
            self.stack[self.len] = b;
            self.len += 1;
        } else {
            self.spill(1);
            self.heap.push(b);
        }
    }
}

fn escape_u(unit: u16) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let nibble = |shift: u16| HEX[usize::from((unit >> shift) & 0xf)];
    [b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)]
}

/// Python's `repr(float)`, which `json.dumps` uses for floats.
///
/// Both Rust and Python print the shortest digit string that reads back as
/// the same double; they differ only in layout. Python writes a fixed-point
/// form when the decimal exponent is in `-5 < exp < 16` and `d.ddde±XX`
/// otherwise, and always shows a fractional part in the fixed form.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // ryu gives the shortest digits that read back as `f`, and of two
    // equally short candidates equally near it the even one, as Python
    // does (Rust's `{:e}` rounds such a tie up: -563637148196810.25 is
    // `...810.3` there, `...810.2` in Python; found by fuzz/canonical).
    let mut buf = ryu::Buffer::new();
    let written = buf.format_finite(f);
    let (sign, written) = match written.strip_prefix('-') {
        Some(w) => ("-", w),
        None => ("", written),
    };
    let (mantissa, exp) = match written.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (written, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    // the decimal exponent of the first digit
    let mut exp = exp + int.len() as i32 - 1;
    while digits.len() > 1 && digits.starts_with('0') {
        digits.remove(0);
        exp -= 1;
    }
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        exp = 0;
    }
    let mut out = String::with_capacity(digits.len() + 8);
    out.push_str(sign);
    if (-5 < exp) && (exp < 16) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            out.extend(core::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(core::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let mag = exp.unsigned_abs();
        if mag < 10 {
            out.push('0');
        }
        out.push_str(itoa::Buffer::new().format(mag));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        String::from_utf8(canonical(&[Field::Text(s)])).unwrap()
    }

    #[test]
    fn escapes_like_python() {
        assert_eq!(text("a\"b\\c"), r#"["a\"b\\c"]"#);
        assert_eq!(text("\u{8}\u{c}\n\r\t"), r#"["\b\f\n\r\t"]"#);
        assert_eq!(text("\u{0}\u{1f}\u{7f}/~ "), r#"["\u0000\u001f\u007f/~ "]"#);
        assert_eq!(text("é☃"), r#"["\u00e9\u2603"]"#);
        assert_eq!(text("😀"), r#"["\ud83d\ude00"]"#);
        assert_eq!(text(""), r#"[""]"#);
    }

    #[test]
    fn numbers_and_null() {
        let b = canonical(&[
            Field::Integer(i64::MIN),
            Field::Integer(0),
            Field::Null,
            Field::Integer(i64::MAX),
        ]);
        assert_eq!(b, b"[-9223372036854775808,0,null,9223372036854775807]");
        assert_eq!(canonical(&[]), b"[]");
    }

    #[test]
    fn floats_like_python_repr() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            // ties between two shortest candidates go to the even digit
            (-(563637148196810.0 + 0.25), "-563637148196810.2"),
            (1125899906842624.0 + 0.25, "1125899906842624.2"),
            (1125899906842624.0 + 0.75, "1125899906842624.8"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(*f), *want, "{f:?}");
        }
    }
}
