//! coord's signing core: the canonical bytes of a row and its HMAC-SHA256.
//!
//! No SQLite and no I/O: keys come in as bytes, rows as [`Claim`]s and
//! [`Message`]s (or bare [`Field`]s). The
//! SQLite extension, the WASI component and the CLI all sign through here,
//! so there is one encoder and one MAC in coord.
//!
//! Which fields a row signs is defined once, by [`Claim`] and [`Message`],
//! and for signed history by [`Event`] and [`Checkpoint`].
//!
//! ```
//! use coord_core::{Claim, Keyring, SecretKey, Status};
//!
//! // A claim signs [claimer, task_id, epoch, expires_at].
//! let key = SecretKey::new(b"alice-secret-0123456789abcdef0123456789abcdef").unwrap();
//! let claim = Claim::new("alice", "github:gptme/gptme#2362", 1, "2076-11-14 06:05:02");
//! let mac = key.sign_row(&claim).to_string();
//! assert_eq!(mac, "n+UKZhE88Vl0K3VxcKdO2TQLTt9c/FgbiciP3yLP2VA=");
//! let mut ring = Keyring::new();
//! ring.add("alice", key);
//! assert_eq!(ring.row_status(&claim, Some(&mac)), Status::Verified);
//! let tampered = Claim::new("alice", "github:gptme/gptme#2362", 2, "2076-11-14 06:05:02");
//! assert_eq!(ring.row_status(&tampered, Some(&mac)), Status::BadMac);
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
// before `history`, which uses its `row_impls!`
#[macro_use]
mod row;
mod history;
mod key;
mod keyring;

pub use agent_id::{validate_agent_id, MAX_AGENT_ID_LEN};
pub use canonical::{canonical, encode, encode_into, text_field, Field};
pub use error::{AgentIdError, EncodeError, KeyError, MacError};
pub use history::{
    chain_step, check_chain, consistency, link, Chain, Checkpoint, Consistency, Event,
    CHECKPOINT_TAG, EVENT_TAG, MESSAGE_STATE, TASK_STATE,
};
pub use key::{Base64, MacTag, SecretKey, MIN_KEY_LEN};
pub use keyring::{status, status_canonical, AgentKeys, Keyring, Status};
pub use row::{Claim, Message, SignedRow};
