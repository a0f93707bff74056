//! Signed history: the events that record every state change, the hash
//! chain that orders them, and the checkpoints that witnesses keep.
//! `docs/history.md` gives the design; this module fixes the bytes.
//!
//! An [`Event`] signs, with its actor's key, `[agent, "coord:event/1", seq,
//! prev, op, subject, at, state]`, where `state` is the canonical JSON of
//! every column of the row after the operation ([`TASK_STATE`] or
//! [`MESSAGE_STATE`]). Each event names the [`link`] of the one before it
//! (`prev`; `""` for the first), so deleting, reordering or changing an
//! event breaks the chain after it. A [`Checkpoint`] signs `[agent,
//! "coord:checkpoint/1", origin, size, head, at]`: "the log whose first
//! event has link `origin` has `size` events and its last has link `head`".
//!
//! ```
//! use coord_core::{link, Event, Keyring, SecretKey, SignedRow, Status};
//! let key = SecretKey::new(b"alice-secret-0123456789abcdef0123456789abcdef").unwrap();
//! let first = Event::new("alice", 1, "", "submit", "t1", "2026-12-07 10:00:00", r#"["t1"]"#);
//! let mac = key.sign_row(&first).to_string();
//! let head = link(&first, Some(&mac));
//! assert_eq!(head.len(), 64);
//! let mut ring = Keyring::new();
//! ring.add("alice", key);
//! assert_eq!(ring.row_status(&first, Some(&mac)), Status::Verified);
//! // an event names the link of the one before it
//! let second = Event::new("alice", 2, head.as_str(), "claim", "t1", "2026-12-07 10:00:01", r#"["t1","alice"]"#);
//! assert_eq!(second.fields()[3], coord_core::Field::Text(&head));
//! ```

use alloc::string::String;

use sha2::{Digest, Sha256};

use crate::canonical::{encode, Field};
use crate::row::SignedRow;

/// The tag an event signs second, so that no event's MAC is ever another
/// kind of row's.
pub const EVENT_TAG: &str = "coord:event/1";
/// The tag a checkpoint signs second.
pub const CHECKPOINT_TAG: &str = "coord:checkpoint/1";

/// The `work` columns an event of a task records, in order: the whole row
/// but its MAC (which the event's own signature replaces).
pub const TASK_STATE: [&str; 9] = [
    "task_id",
    "claimer",
    "epoch",
    "claimed_at",
    "expires_at",
    "status",
    "result",
    "metadata",
    "completed_at",
];

/// The `messages` columns a `send` event records, in order.
pub const MESSAGE_STATE: [&str; 6] = ["id", "sender", "recipient", "channel", "body", "created_at"];

/// One event of the log, from its stored columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    fields: [Field<'a>; 8],
}

impl<'a> Event<'a> {
    /// The `coord_events` columns an event signs, in signing order (the
    /// tag goes between the agent and `seq`).
    pub const COLUMNS: [&'static str; 7] = ["agent", "seq", "prev", "op", "subject", "at", "state"];

    /// An event from its stored columns.
    pub fn new(
        agent: &'a str,
        seq: impl Into<Field<'a>>,
        prev: impl Into<Field<'a>>,
        op: impl Into<Field<'a>>,
        subject: impl Into<Field<'a>>,
        at: impl Into<Field<'a>>,
        state: impl Into<Field<'a>>,
    ) -> Self {
        Self {
            fields: [
                Field::Text(agent),
                Field::Text(EVENT_TAG),
                seq.into(),
                prev.into(),
                op.into(),
                subject.into(),
                at.into(),
                state.into(),
            ],
        }
    }
}

/// A signed statement that a log has `size` events ending in `head`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoint<'a> {
    fields: [Field<'a>; 6],
}

impl<'a> Checkpoint<'a> {
    /// The `coord_checkpoints` columns a checkpoint signs, in signing order
    /// (the tag goes between the agent and `origin`).
    pub const COLUMNS: [&'static str; 5] = ["agent", "origin", "size", "head", "at"];

    /// A checkpoint from its stored columns.
    pub fn new(
        agent: &'a str,
        origin: impl Into<Field<'a>>,
        size: impl Into<Field<'a>>,
        head: impl Into<Field<'a>>,
        at: impl Into<Field<'a>>,
    ) -> Self {
        Self {
            fields: [
                Field::Text(agent),
                Field::Text(CHECKPOINT_TAG),
                origin.into(),
                size.into(),
                head.into(),
                at.into(),
            ],
        }
    }
}

row_impls!(Event, 8);
row_impls!(Checkpoint, 6);

/// The link of an event: lowercase hex SHA-256 of its canonical signed
/// fields, a newline, and its MAC as stored (nothing when it has none). The
/// next event's `prev` must equal it; the first event's link names the
/// log (its origin).
///
/// ```
/// use coord_core::{link, Event};
/// let e = Event::new("alice", 1, "", "submit", "t1", "2026-12-07 10:00:00", "[]");
/// assert_ne!(link(&e, Some("mac")), link(&e, None));
/// ```
pub fn link(event: &Event<'_>, mac: Option<&str>) -> String {
    let mut h = Sha256::new();
    encode(event.fields(), |chunk| h.update(chunk));
    h.update(b"\n");
    h.update(mac.unwrap_or("").as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        for n in [b >> 4, b & 0xf] {
            out.push(char::from(b"0123456789abcdef"[usize::from(n)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;

    #[test]
    fn an_event_signs_its_tag_second() {
        let e = Event::new("a", 3, "p", "claim", "t", "now", "[]");
        assert_eq!(
            canonical(e.fields()),
            br#"["a","coord:event/1",3,"p","claim","t","now","[]"]"#
        );
        assert_eq!(e.signer(), "a");
    }

    #[test]
    fn a_checkpoint_is_not_an_event() {
        let c = Checkpoint::new("a", "o", 3, "h", "now");
        assert_eq!(
            canonical(c.fields()),
            br#"["a","coord:checkpoint/1","o",3,"h","now"]"#
        );
    }

    #[test]
    fn the_link_covers_every_field_and_the_mac() {
        let e = Event::new("a", 1, "", "submit", "t", "now", "[]");
        let base = link(&e, Some("m"));
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        for other in [
            Event::new("b", 1, "", "submit", "t", "now", "[]"),
            Event::new("a", 2, "", "submit", "t", "now", "[]"),
            Event::new("a", "1", "", "submit", "t", "now", "[]"),
            Event::new("a", 1, "x", "submit", "t", "now", "[]"),
            Event::new("a", 1, "", "claim", "t", "now", "[]"),
            Event::new("a", 1, "", "submit", "u", "now", "[]"),
            Event::new("a", 1, "", "submit", "t", "then", "[]"),
            Event::new("a", 1, "", "submit", "t", "now", "[1]"),
        ] {
            assert_ne!(link(&other, Some("m")), base, "{other:?}");
        }
        assert_ne!(link(&e, Some("n")), base);
        assert_eq!(link(&e, Some("m")), base);
    }
}
