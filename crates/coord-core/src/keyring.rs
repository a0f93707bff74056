//! An agent's current and retired keys, and what a row's MAC says about it.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::canonical::Field;
use crate::key::{MacTag, SecretKey};

/// What a row's MAC proves.
///
/// Every reader (SQL, the component, the CLI) reports exactly these five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Signed by the agent's current key.
    Verified,
    /// No MAC at all (NULL or empty): a legacy row, or one whose signed
    /// fields were changed without signing again.
    Unsigned,
    /// There is a MAC, but no usable key for the agent to check it with.
    UnknownAgent,
    /// A MAC that no key of the agent produced: forged, tampered or malformed.
    BadMac,
    /// Signed by one of the agent's retired keys: authentic, but old.
    RetiredKey,
}

impl Status {
    /// All statuses, in the order reports list them.
    pub const ALL: [Status; 5] = [
        Status::Verified,
        Status::RetiredKey,
        Status::Unsigned,
        Status::UnknownAgent,
        Status::BadMac,
    ];

    /// The name used in SQL and JSON: `verified`, `unsigned`,
    /// `unknown_agent`, `bad_mac`, `retired_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Unsigned => "unsigned",
            Status::UnknownAgent => "unknown_agent",
            Status::BadMac => "bad_mac",
            Status::RetiredKey => "retired_key",
        }
    }

    /// Whether the row was written by a holder of one of the agent's keys.
    pub fn is_authentic(self) -> bool {
        matches!(self, Status::Verified | Status::RetiredKey)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's keys: at most one that signs, any number that only verify.
#[derive(Debug, Clone, Default)]
pub struct AgentKeys {
    /// The key that signs new rows.
    pub current: Option<SecretKey>,
    /// Keys that still verify the rows they signed, and never sign.
    pub retired: Vec<SecretKey>,
}

impl AgentKeys {
    /// Keys with only a current key.
    pub fn current(key: SecretKey) -> Self {
        Self {
            current: Some(key),
            retired: Vec::new(),
        }
    }

    /// Whether there is any key at all to verify with.
    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.retired.is_empty()
    }

    /// The status of a row whose stored MAC is `mac` over `fields`.
    ///
    /// ```
    /// use coord_core::{AgentKeys, Field, SecretKey, Status};
    /// let old = SecretKey::new(&[1; 32]).unwrap();
    /// let new = SecretKey::new(&[2; 32]).unwrap();
    /// let f = [Field::Text("alice"), Field::Text("hello")];
    /// let old_mac = old.sign(&f).to_string();
    /// let keys = AgentKeys { current: Some(new), retired: vec![old] };
    /// assert_eq!(keys.status(Some(&old_mac), &f), Status::RetiredKey);
    /// assert_eq!(keys.status(None, &f), Status::Unsigned);
    /// assert_eq!(keys.status(Some("garbage"), &f), Status::BadMac);
    /// ```
    pub fn status(&self, mac: Option<&str>, fields: &[Field<'_>]) -> Status {
        status(Some(self), mac, fields)
    }
}

/// The status of a row signed as an agent whose keys are `keys` (`None`:
/// the agent has no usable key).
///
/// A missing or empty MAC is `Unsigned` whatever the agent; a MAC with no key
/// to check it is `UnknownAgent`; a malformed MAC is `BadMac`.
pub fn status(keys: Option<&AgentKeys>, mac: Option<&str>, fields: &[Field<'_>]) -> Status {
    status_with(keys, mac, |k, tag| k.verify(fields, tag))
}

/// [`status`] for bytes that are already canonical (a host that encoded the
/// fields once and checks them against several keys, or caches them).
pub fn status_canonical(keys: Option<&AgentKeys>, mac: Option<&str>, canonical: &[u8]) -> Status {
    status_with(keys, mac, |k, tag| k.verify_bytes(canonical, tag))
}

fn status_with(
    keys: Option<&AgentKeys>,
    mac: Option<&str>,
    check: impl Fn(&SecretKey, &MacTag) -> bool,
) -> Status {
    let mac = match mac {
        None | Some("") => return Status::Unsigned,
        Some(m) => m,
    };
    let keys = match keys {
        Some(k) if !k.is_empty() => k,
        _ => return Status::UnknownAgent,
    };
    let Ok(tag) = MacTag::parse(mac) else {
        return Status::BadMac;
    };
    if keys.current.as_ref().is_some_and(|k| check(k, &tag)) {
        return Status::Verified;
    }
    if keys.retired.iter().any(|k| check(k, &tag)) {
        return Status::RetiredKey;
    }
    Status::BadMac
}

/// Keys held in memory by agent id: what a sandbox or a test hands over
/// instead of files.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    agents: BTreeMap<String, AgentKeys>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `key` the agent's current key; a previous current key becomes
    /// retired, so rows it signed keep verifying.
    pub fn add(&mut self, agent: &str, key: SecretKey) {
        let entry = self.agents.entry(agent.to_owned()).or_default();
        if let Some(old) = entry.current.replace(key) {
            entry.retired.push(old);
        }
    }

    /// Adds a key that verifies but never signs.
    pub fn add_retired(&mut self, agent: &str, key: SecretKey) {
        self.agents
            .entry(agent.to_owned())
            .or_default()
            .retired
            .push(key);
    }

    /// Forgets every key of `agent`; returns whether there were any.
    pub fn remove(&mut self, agent: &str) -> bool {
        self.agents.remove(agent).is_some()
    }

    /// The agent's keys, if any were added.
    pub fn get(&self, agent: &str) -> Option<&AgentKeys> {
        self.agents.get(agent)
    }

    /// The status of `row` with stored MAC `mac`, checked with the keys of
    /// the row's own signer.
    pub fn row_status(&self, row: &impl crate::SignedRow, mac: Option<&str>) -> Status {
        status(self.get(row.signer()), mac, row.fields())
    }

    /// The agents that have keys here, in byte order of their ids.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }
}
