//! coord's signing core as a WebAssembly component: the world `signer` of
//! `wit/signing.wit` (package `coord:signing@0.1.0`).
//!
//! A thin binding layer: every byte that is encoded and every MAC come from
//! `coord-core`; this crate only turns WIT values into [`coord_core::Field`]s
//! and core results into WIT values.
//!
//! On `wasm32` the crate is `no_std` (with `alloc`, `dlmalloc` as the global
//! allocator and a panic handler that traps), so that the component imports
//! nothing: Rust's std on `wasm32-wasip2` would pull in `wasi:cli` and
//! `wasi:io` even though no code here calls them. On other targets it builds
//! with std, so the workspace builds and lints for the host as usual.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use coord_core::{AgentIdError, EncodeError, KeyError, SecretKey, SignedRow, Status};
use zeroize::Zeroize;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "signer",
    });
}

use bindings::exports::coord::signing::signing::{
    AgentKey, ChainStatus, Checkpoint, Claim, Consistency, Error, Event, EventCheck, Field, Guest,
    GuestKeyring, KeyLength, Keyring as KeyringHandle, KeyringBorrow, LogPosition, LogReport,
    Message, VerificationStatus,
};

/// The type that exports the `signing` interface.
struct Component;

bindings::export!(Component with_types_in bindings);

/// Converts WIT fields to core fields, borrowing their text.
fn core_fields(fields: &[Field]) -> Result<Vec<coord_core::Field<'_>>, Error> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            Ok(match field {
                Field::Null => coord_core::Field::Null,
                Field::Integer(n) => coord_core::Field::Integer(*n),
                Field::Real(f) => coord_core::Field::Real(*f),
                Field::Text(s) => coord_core::Field::Text(s),
                Field::TextBytes(bytes) => coord_core::Field::Text(
                    coord_core::text_field(index, bytes).map_err(encode_error)?,
                ),
                Field::Blob(_) => {
                    return Err(encode_error(EncodeError::Blob { index }));
                }
            })
        })
        .collect()
}

/// A field index as WIT's `u32`; a list lifted from WIT never has more than
/// `u32::MAX` elements, so the fallback is unreachable in practice.
fn wit_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

fn encode_error(e: EncodeError) -> Error {
    match e {
        EncodeError::Blob { index } => Error::Blob(wit_index(index)),
        EncodeError::InvalidUtf8 { index } => Error::InvalidUtf8(wit_index(index)),
    }
}

fn key_error(e: KeyError) -> Error {
    match e {
        KeyError::TooShort { len, min } => Error::KeyTooShort(KeyLength {
            len: wit_index(len),
            min: wit_index(min),
        }),
    }
}

fn agent_id_error(e: AgentIdError) -> Error {
    Error::InvalidAgentId(e.to_string())
}

fn wit_status(status: Status) -> VerificationStatus {
    match status {
        Status::Verified => VerificationStatus::Verified,
        Status::Unsigned => VerificationStatus::Unsigned,
        Status::UnknownAgent => VerificationStatus::UnknownAgent,
        Status::BadMac => VerificationStatus::BadMac,
        Status::RetiredKey => VerificationStatus::RetiredKey,
    }
}

/// Keys a secret handed over by the host, then wipes the host's copy of it
/// from the component's memory.
fn secret_key(agent: &str, mut secret: Vec<u8>) -> Result<SecretKey, Error> {
    let key = coord_core::validate_agent_id(agent)
        .map_err(agent_id_error)
        .and_then(|_| SecretKey::new(&secret).map_err(key_error));
    secret.zeroize();
    key
}

/// The claim as coord-core's row model signs it.
fn claim_fields(claim: &Claim) -> [coord_core::Field<'_>; 4] {
    coord_core::Claim::new(
        &claim.claimer,
        claim.task_id.as_str(),
        claim.epoch,
        claim.expires_at.as_str(),
    )
    .into_fields()
}

/// The message as coord-core's row model signs it.
fn message_fields(message: &Message) -> [coord_core::Field<'_>; 4] {
    coord_core::Message::new(
        &message.sender,
        message.recipient.as_deref(),
        message.channel.as_str(),
        message.body.as_str(),
    )
    .into_fields()
}

/// The event as coord-core's history model signs it.
fn event_row(event: &Event) -> coord_core::Event<'_> {
    coord_core::Event::new(
        &event.agent,
        event.seq,
        event.prev.as_str(),
        event.op.as_str(),
        event.subject.as_str(),
        event.at.as_str(),
        event.state.as_str(),
    )
}

/// The checkpoint as coord-core's history model signs it.
fn checkpoint_row(checkpoint: &Checkpoint) -> coord_core::Checkpoint<'_> {
    coord_core::Checkpoint::new(
        &checkpoint.agent,
        checkpoint.origin.as_str(),
        checkpoint.size,
        checkpoint.head.as_str(),
        checkpoint.at.as_str(),
    )
}

fn event_link(event: &Event) -> String {
    coord_core::link(&event_row(event), event.hmac.as_deref())
}

fn wit_chain(chain: coord_core::Chain) -> ChainStatus {
    match chain {
        coord_core::Chain::Ok => ChainStatus::Ok,
        coord_core::Chain::Gap => ChainStatus::Gap,
        coord_core::Chain::Broken => ChainStatus::Broken,
    }
}

fn wit_field(field: coord_core::Field<'_>) -> Field {
    match field {
        coord_core::Field::Null => Field::Null,
        coord_core::Field::Integer(n) => Field::Integer(n),
        coord_core::Field::Real(f) => Field::Real(f),
        coord_core::Field::Text(s) => Field::Text(s.to_owned()),
    }
}

/// The `keyring` resource: a core [`coord_core::Keyring`]. Resource methods
/// take `&self`, hence the `RefCell`; a component instance is
/// single-threaded and nothing here calls back into the host, so a borrow
/// is never held across another call.
struct Keyring {
    ring: RefCell<coord_core::Keyring>,
}

impl Keyring {
    fn sign_fields(&self, agent: &str, fields: &[coord_core::Field<'_>]) -> Result<String, Error> {
        let ring = self.ring.borrow();
        let keys = ring
            .get(agent)
            .ok_or_else(|| Error::UnknownAgent(agent.to_owned()))?;
        let key = keys
            .current
            .as_ref()
            .ok_or_else(|| Error::NoCurrentKey(agent.to_owned()))?;
        Ok(key.sign(fields).to_string())
    }

    fn status_of(
        &self,
        agent: &str,
        mac: Option<&str>,
        fields: &[coord_core::Field<'_>],
    ) -> VerificationStatus {
        wit_status(coord_core::status(
            self.ring.borrow().get(agent),
            mac,
            fields,
        ))
    }
}

impl GuestKeyring for Keyring {
    fn new() -> Self {
        Self {
            ring: RefCell::new(coord_core::Keyring::new()),
        }
    }

    fn from_keys(keys: Vec<AgentKey>) -> Result<KeyringHandle, Error> {
        let mut ring = coord_core::Keyring::new();
        let mut result = Ok(());
        for AgentKey {
            agent,
            secret,
            retired,
        } in keys
        {
            // Every secret is wiped, including those after a refused one.
            let key = secret_key(&agent, secret);
            match key {
                Ok(key) if result.is_ok() => {
                    if retired {
                        ring.add_retired(&agent, key);
                    } else {
                        ring.add(&agent, key);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result.map(|()| {
            KeyringHandle::new(Keyring {
                ring: RefCell::new(ring),
            })
        })
    }

    fn add_key(&self, agent: String, secret: Vec<u8>) -> Result<(), Error> {
        let key = secret_key(&agent, secret)?;
        self.ring.borrow_mut().add(&agent, key);
        Ok(())
    }

    fn add_retired_key(&self, agent: String, secret: Vec<u8>) -> Result<(), Error> {
        let key = secret_key(&agent, secret)?;
        self.ring.borrow_mut().add_retired(&agent, key);
        Ok(())
    }

    fn remove_agent(&self, agent: String) -> bool {
        self.ring.borrow_mut().remove(&agent)
    }

    fn agents(&self) -> Vec<String> {
        self.ring.borrow().agents().map(str::to_owned).collect()
    }

    fn fingerprint(&self, agent: String) -> Option<String> {
        let ring = self.ring.borrow();
        ring.get(&agent)?
            .current
            .as_ref()
            .map(SecretKey::fingerprint)
    }

    fn sign(&self, agent: String, fields: Vec<Field>) -> Result<String, Error> {
        self.sign_fields(&agent, &core_fields(&fields)?)
    }

    fn verify(
        &self,
        agent: String,
        mac: Option<String>,
        fields: Vec<Field>,
    ) -> Result<bool, Error> {
        let status = self.status(agent, mac, fields)?;
        Ok(matches!(
            status,
            VerificationStatus::Verified | VerificationStatus::RetiredKey
        ))
    }

    fn status(
        &self,
        agent: String,
        mac: Option<String>,
        fields: Vec<Field>,
    ) -> Result<VerificationStatus, Error> {
        Ok(self.status_of(&agent, mac.as_deref(), &core_fields(&fields)?))
    }

    fn sign_claim(&self, claim: Claim) -> Result<String, Error> {
        self.sign_fields(&claim.claimer, &claim_fields(&claim))
    }

    fn verify_claim(&self, claim: Claim, mac: Option<String>) -> bool {
        let status = self.claim_status(claim, mac);
        matches!(
            status,
            VerificationStatus::Verified | VerificationStatus::RetiredKey
        )
    }

    fn claim_status(&self, claim: Claim, mac: Option<String>) -> VerificationStatus {
        self.status_of(&claim.claimer, mac.as_deref(), &claim_fields(&claim))
    }

    fn sign_message(&self, message: Message) -> Result<String, Error> {
        self.sign_fields(&message.sender, &message_fields(&message))
    }

    fn verify_message(&self, message: Message, mac: Option<String>) -> bool {
        let status = self.message_status(message, mac);
        matches!(
            status,
            VerificationStatus::Verified | VerificationStatus::RetiredKey
        )
    }

    fn message_status(&self, message: Message, mac: Option<String>) -> VerificationStatus {
        self.status_of(&message.sender, mac.as_deref(), &message_fields(&message))
    }

    fn sign_event(&self, event: Event) -> Result<String, Error> {
        self.sign_fields(&event.agent, event_row(&event).fields())
    }

    fn event_status(&self, event: Event) -> VerificationStatus {
        self.status_of(
            &event.agent,
            event.hmac.as_deref(),
            event_row(&event).fields(),
        )
    }

    fn sign_checkpoint(&self, checkpoint: Checkpoint) -> Result<String, Error> {
        self.sign_fields(&checkpoint.agent, checkpoint_row(&checkpoint).fields())
    }

    fn checkpoint_status(&self, checkpoint: Checkpoint) -> VerificationStatus {
        self.status_of(
            &checkpoint.agent,
            checkpoint.hmac.as_deref(),
            checkpoint_row(&checkpoint).fields(),
        )
    }
}

impl Guest for Component {
    type Keyring = Keyring;

    fn canonical(fields: Vec<Field>) -> Result<Vec<u8>, Error> {
        Ok(coord_core::canonical(&core_fields(&fields)?))
    }

    fn claim_fields(claim: Claim) -> Vec<Field> {
        claim_fields(&claim).into_iter().map(wit_field).collect()
    }

    fn message_fields(message: Message) -> Vec<Field> {
        message_fields(&message)
            .into_iter()
            .map(wit_field)
            .collect()
    }

    fn validate_agent_id(agent: String) -> Result<(), Error> {
        coord_core::validate_agent_id(&agent)
            .map(|_| ())
            .map_err(agent_id_error)
    }

    fn event_link(event: Event) -> String {
        event_link(&event)
    }

    fn check_log(
        keys: KeyringBorrow<'_>,
        events: Vec<Event>,
        after: Option<LogPosition>,
    ) -> LogReport {
        let keys: &Keyring = keys.get();
        let links: Vec<String> = events.iter().map(event_link).collect();
        let chain = coord_core::check_chain(
            after.as_ref().map(|p| (p.size, p.head.as_str())),
            events
                .iter()
                .zip(&links)
                .map(|(e, l)| (e.seq, e.prev.as_str(), l.as_str())),
        );
        let origin = match &after {
            Some(p) => Some(p.origin.clone()),
            None => events
                .iter()
                .zip(&links)
                .find(|(e, _)| e.seq == 1)
                .map(|(_, l)| l.clone()),
        };
        let head = links
            .last()
            .cloned()
            .or_else(|| after.as_ref().map(|p| p.head.clone()));
        let given = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let size = after.as_ref().map_or(0, |p| p.size).saturating_add(given);
        let checks: Vec<EventCheck> = events
            .iter()
            .zip(links)
            .zip(chain)
            .map(|((event, link), chain)| EventCheck {
                seq: event.seq,
                link,
                status: keys.status_of(
                    &event.agent,
                    event.hmac.as_deref(),
                    event_row(event).fields(),
                ),
                chain: wit_chain(chain),
            })
            .collect();
        let intact = checks
            .iter()
            .all(|c| c.chain == ChainStatus::Ok && c.status != VerificationStatus::BadMac);
        LogReport {
            events: checks,
            size,
            origin,
            head,
            intact,
        }
    }

    fn checkpoint_consistency(checkpoint: Checkpoint, events: Vec<Event>) -> Consistency {
        let link_of = |seq: i64| events.iter().find(|e| e.seq == seq).map(event_link);
        let origin_now = link_of(1);
        let at_size = link_of(checkpoint.size);
        match coord_core::consistency(
            &checkpoint.origin,
            &checkpoint.head,
            origin_now.as_deref(),
            at_size.as_deref(),
        ) {
            coord_core::Consistency::Consistent => Consistency::Consistent,
            coord_core::Consistency::Ahead => Consistency::Ahead,
            coord_core::Consistency::Fork => Consistency::Fork,
        }
    }
}

/// The global allocator on `wasm32`, where std's is not linked.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// On `wasm32` a panic traps. Nothing on an input path panics: bad input is
/// an `error` or `false`; a trap is left only for running out of memory.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator, through which the host hands over
/// arguments. wit-bindgen leaves it to wasi-libc on `wasm32-wasip2`, whose
/// version calls C `malloc`; here the memory must come from the Rust global
/// allocator instead, because the generated bindings free lifted arguments
/// with it.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod canonical_abi {
    use alloc::alloc::{alloc, realloc, Layout};
    use core::arch::wasm32::unreachable;

    /// `cabi_realloc(old_ptr, old_len, align, new_len)`: a fresh block when
    /// `old_len` is 0, else `old_ptr` grown to `new_len`. Traps when the
    /// memory cannot grow (the only trap left in the component).
    ///
    /// # Safety
    /// Called only by the component model's lifting code, which passes
    /// either `old_len` 0 or a block this function returned, with the same
    /// `align` and its size as `old_len`.
    // SAFETY: the single definition of the canonical ABI's `cabi_realloc`
    // symbol in the module (wasi-libc's is then not linked).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(
        old_ptr: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        if new_len == 0 {
            // A zero-sized block: any non-null pointer with the alignment.
            return align as *mut u8;
        }
        let Ok(layout) = Layout::from_size_align(new_len, align) else {
            unreachable()
        };
        let ptr = if old_len == 0 {
            // SAFETY: `layout` has a non-zero size, checked above.
            unsafe { alloc(layout) }
        } else {
            let Ok(old) = Layout::from_size_align(old_len, align) else {
                unreachable()
            };
            // SAFETY: per this function's contract `old_ptr` was returned by
            // it (so by the global allocator) with layout `old`, and
            // `new_len` is non-zero.
            unsafe { realloc(old_ptr, old, new_len) }
        };
        if ptr.is_null() {
            unreachable()
        }
        ptr
    }
}

// `memcmp`, `memcpy`, `memmove` and `memset` come from wasi-libc, which
// ships with the wasm32-wasip2 target (Rust's compiler-builtins leaves them
// to libc on WASI). Only those object files are linked from the archive, and
// none of them imports anything.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
#[link(name = "c", kind = "static")]
extern "C" {}
