//! A Rust host for coord's WASI component, on the `wasmtime` crate.
//!
//! [`Host`] is one instance of the component, made with an empty linker (it
//! imports nothing), and its `coord:signing/signing` calls. The integration
//! tests (`tests/component.rs`, run by tests/component.sh with
//! `cargo test -p coord-wasmtime-host --profile host`) check it against
//! tests/vectors.json, the gptme fixtures, the extension's signed-history
//! views (`tests/history.rs`) and the native core; the
//! `coord-wasmtime-host bench COMPONENT` binary times it.

use std::path::Path;

use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store};

/// The Rust types wasmtime generates from `wit/signing.wit`.
pub mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "signer",
        additional_derives: [PartialEq],
    });
}

pub use bindings::exports::coord::signing::signing::{
    AgentKey, ChainStatus, Checkpoint, Claim, Consistency, Error, Event, EventCheck, Field,
    LogPosition, LogReport, Message, VerificationStatus,
};
pub use bindings::Signer;

/// An engine with the default configuration and the component compiled in it.
///
/// # Errors
/// The file cannot be read or is not a component.
pub fn compile(path: impl AsRef<Path>) -> wasmtime::Result<(Engine, Component)> {
    let engine = Engine::new(&Config::new())?;
    let component = Component::from_file(&engine, path)?;
    Ok((engine, component))
}

/// A loaded component instance and its store.
pub struct Host {
    /// The store the instance lives in.
    pub store: Store<()>,
    /// The instance's exports.
    pub signer: Signer,
}

/// Methods of `Host` that call one keyring method each:
/// `fn name => call_name(args) -> T` makes `Host::name(kr, args)`.
macro_rules! keyring_calls {
    ($($(#[$doc:meta])* fn $name:ident => $call:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        $(#[$doc])*
        ///
        /// # Errors
        /// A wasmtime failure (a trap); the component's own refusals are
        /// in the `Ok` value.
        pub fn $name(&mut self, kr: ResourceAny, $($arg: $ty),*) -> wasmtime::Result<$ret> {
            let api = self.signer.coord_signing_signing().keyring();
            api.$call(&mut self.store, kr, $($arg),*)
        }
    )*};
}

impl Host {
    /// A new instance of `component`, in a store of its own.
    ///
    /// # Errors
    /// The component does not instantiate with an empty linker.
    pub fn load(engine: &Engine, component: &Component) -> wasmtime::Result<Self> {
        let linker = Linker::new(engine);
        let mut store = Store::new(engine, ());
        let signer = Signer::instantiate(&mut store, component, &linker)?;
        Ok(Self { store, signer })
    }

    /// `keyring()`: an empty keyring.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn keyring(&mut self) -> wasmtime::Result<ResourceAny> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_constructor(&mut self.store)
    }

    /// `keyring.from-keys(keys)`.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn keyring_from_keys(
        &mut self,
        keys: &[AgentKey],
    ) -> wasmtime::Result<Result<ResourceAny, Error>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_from_keys(&mut self.store, keys)
    }

    /// `canonical(fields)`: the bytes a row's MAC covers.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn canonical(&mut self, f: &[Field]) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let api = self.signer.coord_signing_signing();
        api.call_canonical(&mut self.store, f)
    }

    /// `claim-fields(claim)`: the field list a claim signs.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn claim_fields(&mut self, c: &Claim) -> wasmtime::Result<Vec<Field>> {
        let api = self.signer.coord_signing_signing();
        api.call_claim_fields(&mut self.store, c)
    }

    /// `message-fields(message)`: the field list a message signs.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn message_fields(&mut self, m: &Message) -> wasmtime::Result<Vec<Field>> {
        let api = self.signer.coord_signing_signing();
        api.call_message_fields(&mut self.store, m)
    }

    /// `validate-agent-id(agent)`.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn validate_agent_id(&mut self, agent: &str) -> wasmtime::Result<Result<(), Error>> {
        let api = self.signer.coord_signing_signing();
        api.call_validate_agent_id(&mut self.store, agent)
    }

    /// `event-link(event)`: the link the next event's `prev` names.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn event_link(&mut self, e: &Event) -> wasmtime::Result<String> {
        let api = self.signer.coord_signing_signing();
        api.call_event_link(&mut self.store, e)
    }

    /// `check-log(keys, events, after)`: each event's link, MAC and chain.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn check_log(
        &mut self,
        kr: ResourceAny,
        events: &[Event],
        after: Option<&LogPosition>,
    ) -> wasmtime::Result<LogReport> {
        let api = self.signer.coord_signing_signing();
        api.call_check_log(&mut self.store, kr, events, after)
    }

    /// `checkpoint-consistency(checkpoint, events)`.
    ///
    /// # Errors
    /// A wasmtime failure.
    pub fn checkpoint_consistency(
        &mut self,
        c: &Checkpoint,
        events: &[Event],
    ) -> wasmtime::Result<Consistency> {
        let api = self.signer.coord_signing_signing();
        api.call_checkpoint_consistency(&mut self.store, c, events)
    }

    keyring_calls! {
        /// `keyring.add-key(agent, secret)`: the agent's new current key.
        fn add_key => call_add_key(agent: &str, secret: &[u8]) -> Result<(), Error>;
        /// `keyring.add-retired-key(agent, secret)`.
        fn add_retired_key => call_add_retired_key(agent: &str, secret: &[u8]) -> Result<(), Error>;
        /// `keyring.remove-agent(agent)`.
        fn remove_agent => call_remove_agent(agent: &str) -> bool;
        /// `keyring.agents()`.
        fn agents => call_agents() -> Vec<String>;
        /// `keyring.fingerprint(agent)` of the current key.
        fn fingerprint => call_fingerprint(agent: &str) -> Option<String>;
        /// `keyring.sign(agent, fields)`.
        fn sign => call_sign(agent: &str, f: &[Field]) -> Result<String, Error>;
        /// `keyring.status(agent, mac, fields)`.
        fn status => call_status(agent: &str, mac: Option<&str>, f: &[Field]) -> Result<VerificationStatus, Error>;
        /// `keyring.verify(agent, mac, fields)`.
        fn verify => call_verify(agent: &str, mac: Option<&str>, f: &[Field]) -> Result<bool, Error>;
        /// `keyring.sign-claim(claim)`.
        fn sign_claim => call_sign_claim(c: &Claim) -> Result<String, Error>;
        /// `keyring.claim-status(claim, mac)`.
        fn claim_status => call_claim_status(c: &Claim, mac: Option<&str>) -> VerificationStatus;
        /// `keyring.verify-claim(claim, mac)`.
        fn verify_claim => call_verify_claim(c: &Claim, mac: Option<&str>) -> bool;
        /// `keyring.sign-message(message)`.
        fn sign_message => call_sign_message(m: &Message) -> Result<String, Error>;
        /// `keyring.verify-message(message, mac)`.
        fn verify_message => call_verify_message(m: &Message, mac: Option<&str>) -> bool;
        /// `keyring.message-status(message, mac)`.
        fn message_status => call_message_status(m: &Message, mac: Option<&str>) -> VerificationStatus;
        /// `keyring.sign-event(event)`.
        fn sign_event => call_sign_event(e: &Event) -> Result<String, Error>;
        /// `keyring.event-status(event)`.
        fn event_status => call_event_status(e: &Event) -> VerificationStatus;
        /// `keyring.sign-checkpoint(checkpoint)`.
        fn sign_checkpoint => call_sign_checkpoint(c: &Checkpoint) -> Result<String, Error>;
        /// `keyring.checkpoint-status(checkpoint)`.
        fn checkpoint_status => call_checkpoint_status(c: &Checkpoint) -> VerificationStatus;
    }
}
