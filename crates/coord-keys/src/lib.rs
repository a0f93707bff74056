//! Finds an agent's keys the way gptme-coordination does, and refuses key
//! files that are not safe to trust.
//!
//! Order, first match wins (a source that exists but is refused stops the
//! search: a lower-priority key is never used in its place):
//!
//! 1. env `COORDINATION_SECRET_<ID>`, `<ID>` the id upper-cased with every
//!    character outside `[A-Za-z0-9]` replaced by `_`;
//! 2. env `COORDINATION_SECRET_<id upper-cased>`, the legacy form;
//! 3. `<id>.secret` in one directory: `$COORDINATION_SECRETS_DIR` (`~`
//!    expanded), else `secrets/coordination` under the nearest ancestor of
//!    the working directory that holds `.git`, else under the working
//!    directory.
//!
//! An empty variable is skipped. A variable's value is the key exactly; a
//! key file's bytes are stripped of surrounding whitespace as Python's
//! `bytes.strip()` does (space, `\t`, `\n`, `\r`, `\x0b`, `\x0c`).
//! Retired keys live beside the current one in `<id>.retired/*.secret`, so
//! `<id>.secret` stays exactly what gptme-coordination reads.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod file;
mod resolve;

pub use file::{read_key_file, strip, FileError, MAX_KEY_FILE_LEN};
pub use resolve::{
    env_var_names, secret_dirs, Environment, KeyReport, KeySource, Lookup, ProcessEnv, Resolved,
    RetiredReport,
};
