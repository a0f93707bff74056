//! coord's signing core: the canonical bytes of a row and its HMAC-SHA256.
//!
//! No SQLite and no I/O: keys come in as bytes, rows as [`Field`]s. The
//! SQLite extension, the WASI component and the CLI all sign through here,
//! so there is one encoder and one MAC in coord.
//!
//! ```
//! use coord_core::{AgentKeys, Field, SecretKey, Status};
//!
//! // A claim signs [claimer, task_id, epoch, expires_at].
//! let key = SecretKey::new(b"alice-secret-0123456789abcdef0123456789abcdef").unwrap();
//! let claim = [
//!     Field::Text("alice"),
//!     Field::Text("github:gptme/gptme#2362"),
//!     Field::Integer(1),
//!     Field::Text("2076-11-14 06:05:02"),
//! ];
//! let mac = key.sign(&claim).to_string();
//! assert_eq!(mac, "n+UKZhE88Vl0K3VxcKdO2TQLTt9c/FgbiciP3yLP2VA=");
//! let keys = AgentKeys::current(key);
//! assert_eq!(keys.status(Some(&mac), &claim), Status::Verified);
//! let tampered = [claim[0], claim[1], Field::Integer(2), claim[3]];
//! assert_eq!(keys.status(Some(&mac), &tampered), Status::BadMac);
//! ```
//!
//! `no_std` with `alloc`: the default `std` feature only adds the standard
//! library's error and base64 integrations, so the same code also builds
//! for a WebAssembly component that imports nothing.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod agent_id;
mod canonical;
mod error;
mod key;
mod keyring;

pub use agent_id::{validate_agent_id, MAX_AGENT_ID_LEN};
pub use canonical::{canonical, encode, encode_into, text_field, Field};
pub use error::{AgentIdError, EncodeError, KeyError, MacError};
pub use key::{Base64, MacTag, SecretKey, MIN_KEY_LEN};
pub use keyring::{status, status_canonical, AgentKeys, Keyring, Status};
