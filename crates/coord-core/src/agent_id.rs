//! Which strings may name an agent's key.

use crate::error::AgentIdError;

/// The longest agent id accepted, in bytes.
pub const MAX_AGENT_ID_LEN: usize = 256;

/// Checks that `id` can name a key: it becomes part of a file name
/// (`<id>.secret`), so it must not be able to walk out of a directory.
///
/// ```
/// use coord_core::validate_agent_id;
/// assert!(validate_agent_id("bob-autonomous-opus-3a9f").is_ok());
/// assert!(validate_agent_id("../alice").is_err());
/// assert!(validate_agent_id("").is_err());
/// ```
pub fn validate_agent_id(id: &str) -> Result<&str, AgentIdError> {
    if id.is_empty() {
        return Err(AgentIdError::Empty);
    }
    if id.len() > MAX_AGENT_ID_LEN {
        return Err(AgentIdError::TooLong {
            len: id.len(),
            max: MAX_AGENT_ID_LEN,
        });
    }
    // One pass over the bytes: this runs for every row a view verifies.
    let bytes = id.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' => return Err(AgentIdError::PathLike { what: "'/'" }),
            b'\\' => return Err(AgentIdError::PathLike { what: "'\\'" }),
            0 => return Err(AgentIdError::PathLike { what: "NUL" }),
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                return Err(AgentIdError::PathLike { what: "'..'" })
            }
            0x01..=0x1f | 0x7f => return Err(AgentIdError::Control),
            // U+0080..U+009F, the C1 controls, are 0xC2 0x80..0x9F in UTF-8.
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => {
                return Err(AgentIdError::Control)
            }
            _ => {}
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_and_oddities() {
        for bad in [
            "",
            "a/b",
            "a\\b",
            "a\0b",
            "..",
            "x..y",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}x",
        ] {
            assert!(validate_agent_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_agent_id(&"a".repeat(257)).is_err());
        assert!(validate_agent_id(&"a".repeat(256)).is_ok());
        assert!(validate_agent_id("café.v2").is_ok());
    }
}
