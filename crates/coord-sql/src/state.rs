//! What one connection holds: keys added from SQL, a short-lived cache of
//! keys found on disk, and the agent the connection acts as.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use coord_core::{encode_into, status_canonical, AgentKeys, Field, Keyring, Status};
use coord_keys::{KeyReport, Lookup};

/// How long a key found in the environment or a file is reused before it is
/// looked up again: long enough that verifying a million rows reads each
/// agent's key file about once a second, short enough that a rotation is
/// seen without reconnecting. `coord_key_reload()` drops the cache at once.
pub(crate) const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

pub(crate) struct Cached {
    at: Instant,
    pub(crate) keys: Option<AgentKeys>,
    pub(crate) report: KeyReport,
}

#[derive(Default)]
pub(crate) struct State {
    /// Keys added with coord_key_add: memory only, never written anywhere.
    memory: Keyring,
    cache: HashMap<String, Cached>,
    agent: Option<String>,
    lookup: Lookup,
    /// The exact arguments (agent, MAC, canonical fields) of the last
    /// verification and its status. SQLite's flattener copies a view's
    /// status expression into every column that uses it, so coord_work calls
    /// the check twice per row with the same arguments; the second call is
    /// answered here instead of computing the MAC again.
    memo_key: Vec<u8>,
    memo_status: Option<Status>,
    scratch: Vec<u8>,
}

/// Shared between the connection's function closures.
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<State>>);

/// The state of every connection coord is registered on, by connection
/// handle, so that registering again (a second `.load`) keeps the keys
/// added with coord_key_add, the acting agent and the write API's signer
/// instead of silently starting over. An entry dies with the connection:
/// the function closures hold the only strong references, and SQLite drops
/// them when it frees the handle, before the address can be reused.
static REGISTERED: Mutex<Vec<Registration>> = Mutex::new(Vec::new());

/// A connection handle's address, its state, and its signer's name.
type Registration = (usize, Weak<Mutex<State>>, String);

impl Shared {
    /// The state and signer name already registered on the connection
    /// `handle`, if it is still alive.
    pub(crate) fn registered(handle: usize) -> Option<(Shared, String)> {
        let mut all = REGISTERED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|(_, w, _)| w.strong_count() > 0);
        all.iter()
            .find(|(h, _, _)| *h == handle)
            .and_then(|(_, w, signer)| Some((Shared(w.upgrade()?), signer.clone())))
    }

    /// Records this state and signer as the ones of connection `handle`.
    pub(crate) fn remember(&self, handle: usize, signer: &str) {
        let mut all = REGISTERED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|(h, w, _)| w.strong_count() > 0 && *h != handle);
        all.push((handle, Arc::downgrade(&self.0), signer.to_owned()));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves no broken invariant in
        // State (every update is a single insert or replace), so a poisoned
        // lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// Runs `f` with the agent's keys (`None`: no usable key). Keys added
    /// on this connection take precedence over the environment and files.
    pub(crate) fn with_keys<R>(
        &mut self,
        agent: &str,
        f: impl FnOnce(Option<&AgentKeys>) -> R,
    ) -> R {
        if let Some(k) = self.memory.get(agent) {
            return f(Some(k));
        }
        f(self.resolved(agent).keys.as_ref())
    }

    fn resolved(&mut self, agent: &str) -> &Cached {
        let fresh = self
            .cache
            .get(agent)
            .is_some_and(|c| c.at.elapsed() < KEY_CACHE_TTL);
        if !fresh {
            self.memo_status = None;
            let r = self.lookup.resolve(agent);
            self.cache.insert(
                agent.to_owned(),
                Cached {
                    at: Instant::now(),
                    keys: r.keys,
                    report: r.report,
                },
            );
        }
        &self.cache[agent]
    }

    /// A report on the agent's key, never the key.
    pub(crate) fn report(&mut self, agent: &str) -> crate::KeyStatus {
        if let Some(k) = self.memory.get(agent) {
            return crate::KeyStatus::Connection {
                agent: agent.to_owned(),
                fingerprint: k.current.as_ref().map(coord_core::SecretKey::fingerprint),
                retired: k
                    .retired
                    .iter()
                    .map(coord_core::SecretKey::fingerprint)
                    .collect(),
            };
        }
        crate::KeyStatus::Found(self.resolved(agent).report.clone())
    }

    /// Why the agent cannot sign (for error messages), or None if it can.
    pub(crate) fn why_not(&mut self, agent: &str) -> Option<String> {
        if let Some(k) = self.memory.get(agent) {
            return k
                .current
                .is_none()
                .then(|| "this connection holds only retired keys for it".to_owned());
        }
        let c = self.resolved(agent);
        if c.report.can_sign() {
            return None;
        }
        Some(c.report.reason())
    }

    /// The keyring of keys added on this connection (for changes: any
    /// memoised verification is dropped).
    pub(crate) fn memory(&mut self) -> &mut Keyring {
        self.memo_status = None;
        &mut self.memory
    }

    pub(crate) fn reload(&mut self) {
        self.memo_status = None;
        self.cache.clear();
    }

    /// The status of a row signed as `agent` (valid id) with `mac`.
    pub(crate) fn verify(
        &mut self,
        agent: &str,
        mac: Option<&str>,
        fields: &[Field<'_>],
    ) -> Status {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        let mac_bytes = mac.unwrap_or("").as_bytes();
        for part in [agent.as_bytes(), mac_bytes] {
            key.extend_from_slice(&(part.len() as u64).to_le_bytes());
            key.extend_from_slice(part);
        }
        let start = key.len();
        encode_into(fields, &mut key);
        // The key cache first: when the agent's cached key has expired,
        // refreshing it drops the memo, so a replaced key file is seen
        // within the cache's lifetime even for a row verified before.
        if self.memory.get(agent).is_none() {
            self.resolved(agent);
        }
        let status = match self.memo_status {
            Some(s) if key == self.memo_key => s,
            _ => self.with_keys(agent, |k| status_canonical(k, mac, &key[start..])),
        };
        self.scratch = std::mem::replace(&mut self.memo_key, key);
        self.memo_status = Some(status);
        status
    }

    pub(crate) fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    pub(crate) fn set_agent(&mut self, agent: Option<String>) {
        self.agent = agent;
    }
}
