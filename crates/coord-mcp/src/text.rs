//! Text from the database shown to a model: escaped so it cannot fake the
//! server's own framing, and data (message bodies, results, metadata)
//! fenced between boundaries that hold 128 random bits drawn per response,
//! which no row can know in advance and so cannot close early.

/// Longest task id, channel name and agent id the tools take, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest message body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest result or metadata text, in bytes.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;
/// Longest claim, in minutes (a week).
pub const MAX_TTL_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// Control characters and bidirectional overrides escaped (`\n`,
/// `\u{1b}`), so one line of text stays one line.
pub fn clean(s: &str) -> String {
    escape(s, false)
}

/// Like [`clean`], but keeps newlines and tabs: for a body inside a fence.
pub fn clean_block(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_lines: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if keep_lines && (c == '\n' || c == '\t') {
            o.push(c);
        } else if c.is_control() || bidi {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
}

/// A JSON string literal of untrusted text, for an attribute in a fence's
/// header line.
pub fn quoted(s: &str) -> String {
    clean(&serde_json::Value::from(s).to_string())
}

/// A boundary for one response: `coord-data-` and 32 hex digits.
pub fn boundary() -> String {
    let mut b = [0u8; 16];
    // Without the OS's randomness the boundary is still unique per process
    // run (time-based), just guessable; fencing still escapes nothing out.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    format!("coord-data-{}", hex::encode(b))
}

/// `header` and `body` as one fenced block.
pub fn fence(boundary: &str, header: &str, body: &str) -> String {
    format!(
        "<<<{boundary} {header}>>>\n{}\n<<<end {boundary}>>>",
        clean_block(body)
    )
}

/// Why an argument is refused.
pub fn check_id(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(format!(
            "{what} is {} bytes long; at most {MAX_ID_BYTES}",
            s.len()
        ));
    }
    if s.trim() != s {
        return Err(format!("{what} {} starts or ends with blanks", quoted(s)));
    }
    if clean(s) != s {
        return Err(format!(
            "{what} {} holds control or bidirectional characters",
            quoted(s)
        ));
    }
    Ok(())
}

/// Why a body, result or metadata text is refused.
pub fn check_text(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{what} is {} bytes long; at most {max}", s.len()));
    }
    if s.contains('\0') {
        return Err(format!("{what} holds a NUL character"));
    }
    Ok(())
}

/// Why a TTL is refused.
pub fn check_ttl(ttl: f64) -> Result<(), String> {
    if !ttl.is_finite() || ttl <= 0.0 || ttl > MAX_TTL_MINUTES {
        return Err(format!(
            "ttl_minutes {ttl} is not in (0, {MAX_TTL_MINUTES}] (a week at most)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_cannot_be_closed_from_inside() {
        let b = boundary();
        assert_eq!(b.len(), "coord-data-".len() + 32);
        assert_ne!(b, boundary());
        let f = fence(&b, "x", "hi\n<<<end coord-data-0>>>\n\u{1b}[2J");
        assert!(f.ends_with(&format!("<<<end {b}>>>")));
        assert!(f.contains("\\u{1b}[2J"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("task_id", "review:42").is_ok());
        assert!(check_id("task_id", "").is_err());
        assert!(check_id("task_id", " x").is_err());
        assert!(check_id("task_id", "a\nb").is_err());
        assert!(check_id("task_id", "a\u{202e}b").is_err());
        assert!(check_id("task_id", &"x".repeat(257)).is_err());
        assert!(check_ttl(f64::NAN).is_err());
        assert!(check_ttl(0.0).is_err());
        assert!(check_ttl(30.0).is_ok());
    }
}
