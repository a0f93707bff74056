//! An agent's secret, keyed once, never shown.

use alloc::format;
use alloc::string::String;
use core::fmt;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::canonical::{encode_to, CanonicalBuf, Field};
use crate::error::{KeyError, MacError};

/// The shortest key accepted, in bytes (the output size of SHA-256).
pub const MIN_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A secret key, held as a keyed HMAC-SHA256 state.
///
/// The inner and outer pads are derived once, when the key is made; every
/// MAC clones that state instead of re-keying. The state is zeroized on drop
/// and the key bytes themselves are not kept. `Debug` shows only the key's
/// fingerprint.
///
/// ```
/// use coord_core::{Field, SecretKey};
/// let key = SecretKey::new(b"alice-secret-0123456789abcdef0123456789abcdef").unwrap();
/// let fields = [Field::Text("alice"), Field::Text("task:1"), Field::Integer(1), Field::Text("2026-11-27 07:00:00")];
/// let tag = key.sign(&fields);
/// assert!(key.verify(&fields, &tag));
/// assert!(SecretKey::new(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct SecretKey {
    keyed: HmacSha256,
}

impl SecretKey {
    /// Keys HMAC-SHA256 with `secret`. Refuses secrets shorter than
    /// [`MIN_KEY_LEN`].
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                len: secret.len(),
                min: MIN_KEY_LEN,
            });
        }
        let keyed = HmacSha256::new_from_slice(secret).map_err(|_| KeyError::TooShort {
            len: secret.len(),
            min: MIN_KEY_LEN,
        })?;
        Ok(Self { keyed })
    }

    fn mac_over(&self, fields: &[Field<'_>]) -> HmacSha256 {
        // Encoding into a buffer first and hashing it in one update is
        // cheaper than feeding the MAC the many small chunks of the encoder.
        let mut buf = CanonicalBuf::new();
        encode_to(fields, &mut buf);
        let mut mac = self.keyed.clone();
        mac.update(buf.as_bytes());
        mac
    }

    /// Signs `row` over its signed fields. The key must be `row.signer()`'s;
    /// [`crate::Keyring::row_status`] looks the key up by that id.
    pub fn sign_row(&self, row: &impl crate::SignedRow) -> MacTag {
        self.sign(row.fields())
    }

    /// The MAC of `canonical(fields)`.
    pub fn sign(&self, fields: &[Field<'_>]) -> MacTag {
        MacTag(self.mac_over(fields).finalize().into_bytes().into())
    }

    /// The MAC of bytes that are already canonical (for hosts that hold
    /// them, and for benchmarks against a bare HMAC).
    pub fn sign_bytes(&self, canonical: &[u8]) -> MacTag {
        let mut mac = self.keyed.clone();
        mac.update(canonical);
        MacTag(mac.finalize().into_bytes().into())
    }

    /// Whether `tag` is the MAC of `canonical(fields)`, compared in constant
    /// time.
    pub fn verify(&self, fields: &[Field<'_>], tag: &MacTag) -> bool {
        self.mac_over(fields).verify_slice(&tag.0).is_ok()
    }

    /// Whether `tag` is the MAC of bytes that are already canonical,
    /// compared in constant time.
    pub fn verify_bytes(&self, canonical: &[u8], tag: &MacTag) -> bool {
        let mut mac = self.keyed.clone();
        mac.update(canonical);
        mac.verify_slice(&tag.0).is_ok()
    }

    /// A short public name for the key: the first 8 bytes of its MAC over a
    /// fixed label, in hex. It lets two parties see whether they hold the
    /// same key without showing it.
    pub fn fingerprint(&self) -> String {
        let tag = self.sign_bytes(b"coord key fingerprint v1");
        tag.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.fingerprint())
    }
}

/// A 32-byte HMAC-SHA256 tag, written as standard padded base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MacTag([u8; 32]);

impl MacTag {
    /// Parses the stored base64 form; only canonical padded base64 of exactly
    /// 32 bytes is accepted.
    ///
    /// ```
    /// use coord_core::MacTag;
    /// let t = MacTag::parse("n+UKZhE88Vl0K3VxcKdO2TQLTt9c/FgbiciP3yLP2VA=").unwrap();
    /// assert_eq!(t.to_string(), "n+UKZhE88Vl0K3VxcKdO2TQLTt9c/FgbiciP3yLP2VA=");
    /// assert!(MacTag::parse("not base64!").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, MacError> {
        // 32 bytes are 44 characters; anything else is refused before decoding.
        if s.len() != 44 {
            return Err(MacError::WrongLength {
                len: s.len() / 4 * 3,
            });
        }
        let mut out = [0u8; 33];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(s, &mut out)
            .map_err(|_| MacError::NotBase64)?;
        let bytes: [u8; 32] = out[..n]
            .try_into()
            .map_err(|_| MacError::WrongLength { len: n })?;
        Ok(Self(bytes))
    }
}

impl MacTag {
    /// The stored form, standard padded base64, on the stack: what
    /// `Display` writes, without a formatter or an allocation.
    ///
    /// ```
    /// use coord_core::SecretKey;
    /// let tag = SecretKey::new(&[7; 32]).unwrap().sign(&[]);
    /// assert_eq!(tag.base64().as_str(), tag.to_string());
    /// ```
    pub fn base64(&self) -> Base64 {
        let mut out = [0u8; 44];
        // 32 bytes are always exactly 44 characters; the slice cannot be
        // too short.
        let _ = base64::engine::general_purpose::STANDARD.encode_slice(self.0, &mut out);
        Base64(out)
    }

    /// [`MacTag::base64`] as a `String`.
    pub fn to_base64(&self) -> String {
        String::from(self.base64().as_str())
    }
}

/// A MAC in its stored form: 44 characters of standard padded base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Base64([u8; 44]);

impl Base64 {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for MacTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base64().as_str())
    }
}

impl fmt::Debug for MacTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacTag({self})")
    }
}

impl core::str::FromStr for MacTag {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
