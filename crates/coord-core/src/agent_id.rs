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
    if !id.is_ascii() {
        look_alike_check(id)?;
    }
    Ok(id)
}

/// Characters that render as nothing or change the order or joining of what
/// is around them: Unicode's default-ignorable code points, the
/// bidirectional controls, and blanks other than the ASCII space.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00a0}' | '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}'
        | '\u{1680}' | '\u{17b4}' | '\u{17b5}' | '\u{180b}'..='\u{180f}'
        | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}' | '\u{205f}'..='\u{206f}'
        | '\u{3000}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff0}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// Refuses invisible characters and ids mixing Latin with Cyrillic or Greek
/// letters. Whole-script look-alikes (an id all in Cyrillic letters that
/// look Latin) pass: non-Latin names are legitimate, and SECURITY.md says
/// what that leaves.
fn look_alike_check(id: &str) -> Result<(), AgentIdError> {
    let (mut latin, mut other) = (false, None);
    for c in id.chars() {
        if is_invisible(c) {
            return Err(AgentIdError::Invisible { code: c as u32 });
        }
        match c {
            'a'..='z' | 'A'..='Z' | '\u{00c0}'..='\u{024f}' | '\u{1e00}'..='\u{1eff}' => {
                latin = true;
            }
            '\u{0400}'..='\u{052f}' | '\u{1c80}'..='\u{1c8f}' | '\u{a640}'..='\u{a69f}' => {
                other = Some("Cyrillic");
            }
            '\u{0370}'..='\u{03ff}' | '\u{1f00}'..='\u{1fff}' => other = other.or(Some("Greek")),
            _ => {}
        }
    }
    match other {
        Some(script) if latin => Err(AgentIdError::MixedScript { script }),
        _ => Ok(()),
    }
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

    #[test]
    fn refuses_invisible_characters_and_mixed_scripts() {
        for bad in [
            "al\u{200b}ice",
            "alice\u{200d}",
            "\u{feff}alice",
            "ali\u{202e}ce",
            "ali\u{2066}ce",
            "al\u{00ad}ice",
            "alice\u{fe0f}",
            "alice\u{e0041}",
            "ali\u{00a0}ce",
        ] {
            assert!(
                matches!(validate_agent_id(bad), Err(AgentIdError::Invisible { .. })),
                "{bad:?}"
            );
        }
        // Cyrillic а (U+0430) and Greek ο (U+03BF) inside Latin ids
        for bad in ["\u{430}lice", "b\u{3bf}b", "bob-\u{410}"] {
            assert!(
                matches!(
                    validate_agent_id(bad),
                    Err(AgentIdError::MixedScript { .. })
                ),
                "{bad:?}"
            );
        }
        for good in ["алиса", "αλίκη", "日本語-agent", "café", "zoë-2"] {
            assert!(validate_agent_id(good).is_ok(), "{good:?}");
        }
    }
}
