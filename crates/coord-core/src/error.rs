//! Error types of the core. None of them ever carries key bytes.

use thiserror::Error;

/// A field list that has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// Python's `json` cannot encode bytes, so no gptme row signs a BLOB.
    #[error("field {index} is a BLOB; only TEXT, INTEGER, REAL and NULL can be signed")]
    Blob {
        /// Position of the field, from 0.
        index: usize,
    },
    /// TEXT that is not UTF-8 cannot have been signed by any Python client.
    #[error("field {index} is TEXT that is not valid UTF-8")]
    InvalidUtf8 {
        /// Position of the field, from 0.
        index: usize,
    },
}

/// A secret that cannot be a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// HMAC-SHA256 keys shorter than the hash output are refused.
    #[error("key is {len} bytes; at least {min} are required")]
    TooShort {
        /// Length of the refused secret.
        len: usize,
        /// The minimum.
        min: usize,
    },
}

/// A MAC string that is not the base64 of 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MacError {
    /// Not standard padded base64.
    #[error("MAC is not standard padded base64")]
    NotBase64,
    /// Base64 of the wrong number of bytes.
    #[error("MAC decodes to {len} bytes, not 32")]
    WrongLength {
        /// The number of bytes it holds.
        len: usize,
    },
}

/// An agent id that must not be used to name a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AgentIdError {
    /// The empty string.
    #[error("agent id is empty")]
    Empty,
    /// Longer than [`crate::MAX_AGENT_ID_LEN`].
    #[error("agent id is {len} bytes; at most {max} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Holds a path separator, NUL or `..`.
    #[error("agent id contains {what}, which could walk out of the secrets directory")]
    PathLike {
        /// What was found.
        what: &'static str,
    },
    /// Holds a control character.
    #[error("agent id contains a control character")]
    Control,
    /// Holds a character that shows as nothing or reorders text (zero-width,
    /// bidirectional control, soft hyphen, variation selector, ...): two ids
    /// that differ only by one look the same.
    #[error("agent id contains the invisible or formatting character U+{code:04X}")]
    Invisible {
        /// The character's code point.
        code: u32,
    },
    /// Mixes Latin letters with Cyrillic or Greek ones, the classic way to
    /// write a look-alike of another id (`\u{430}lice` for `alice`).
    #[error("agent id mixes Latin letters with {script} ones, so it can pass for another id")]
    MixedScript {
        /// The non-Latin script found.
        script: &'static str,
    },
}
