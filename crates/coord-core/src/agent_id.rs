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
    for (needle, what) in [("/", "'/'"), ("\\", "'\\'"), ("\0", "NUL"), ("..", "'..'")] {
        if id.contains(needle) {
            return Err(AgentIdError::PathLike { what });
        }
    }
    if id.chars().any(char::is_control) {
        return Err(AgentIdError::Control);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_and_oddities() {
        for bad in ["", "a/b", "a\\b", "a\0b", "..", "x..y", "tab\there"] {
            assert!(validate_agent_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_agent_id(&"a".repeat(257)).is_err());
        assert!(validate_agent_id(&"a".repeat(256)).is_ok());
        assert!(validate_agent_id("café.v2").is_ok());
    }
}
