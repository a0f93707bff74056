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
use alloc::vec::Vec;

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

/// An event's place in the chain, as `coord_log`'s `chain` column reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    /// It follows the event before it: the next seq, naming its link.
    Ok,
    /// The event before it is missing: its seq is not the one after the
    /// previous event's (or, first of all, it is not event 1 with an empty
    /// `prev`). Something was deleted.
    Gap,
    /// It follows in seq but its `prev` is not the previous event's link:
    /// events were reordered or changed.
    Broken,
}

impl Chain {
    /// The name SQL uses: `ok`, `gap`, `broken`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Chain::Ok => "ok",
            Chain::Gap => "gap",
            Chain::Broken => "broken",
        }
    }
}

/// One step of the chain: where an event with `seq` and `prev` stands,
/// given `before`, the seq and link of the event before it in the log, or
/// none if it is the first event there is. The rule of `coord_log`: with
/// nothing before it, an event is `Ok` only as event 1 with an empty
/// `prev`, else a `Gap`; after an event, a seq other than the next is a
/// `Gap`, and a `prev` other than its link is `Broken`.
///
/// ```
/// use coord_core::{chain_step, Chain};
/// assert_eq!(chain_step(None, 1, ""), Chain::Ok);
/// assert_eq!(chain_step(None, 2, "ab"), Chain::Gap);
/// assert_eq!(chain_step(Some((1, "ab")), 2, "ab"), Chain::Ok);
/// assert_eq!(chain_step(Some((1, "ab")), 3, "ab"), Chain::Gap);
/// assert_eq!(chain_step(Some((1, "ab")), 2, "cd"), Chain::Broken);
/// ```
pub fn chain_step(before: Option<(i64, &str)>, seq: i64, prev: &str) -> Chain {
    match before {
        None if seq == 1 && prev.is_empty() => Chain::Ok,
        None => Chain::Gap,
        Some((before_seq, _)) if before_seq.checked_add(1) != Some(seq) => Chain::Gap,
        Some((_, link)) if link != prev => Chain::Broken,
        Some(_) => Chain::Ok,
    }
}

/// The chain of a run of events, each given as `(seq, prev, link)` in the
/// order they are stored (by seq): each one's [`chain_step`] from the event
/// before it in the run. `after` is the seq and link of the event before
/// the first one, for a run that continues a log already checked (a
/// witness's or a checkpoint's size and head); none for a run from the
/// start of the log. Over a whole log this is `coord_log`'s `chain` column,
/// event for event.
///
/// ```
/// use coord_core::{check_chain, link, Chain, Event};
/// let first = Event::new("a", 1, "", "submit", "t1", "now", "[]");
/// let l1 = link(&first, None);
/// let second = Event::new("a", 2, l1.as_str(), "submit", "t2", "now", "[]");
/// let l2 = link(&second, None);
/// let log = [(1, "", l1.as_str()), (2, l1.as_str(), l2.as_str())];
/// assert_eq!(check_chain(None, log), [Chain::Ok, Chain::Ok]);
/// // event 1 deleted: the log starts with a gap
/// assert_eq!(check_chain(None, log[1..].iter().copied()), [Chain::Gap]);
/// // the same run as a suffix of the log after event 1
/// assert_eq!(check_chain(Some((1, l1.as_str())), log[1..].iter().copied()), [Chain::Ok]);
/// // events swapped
/// assert_eq!(check_chain(None, [log[1], log[0]]), [Chain::Gap, Chain::Gap]);
/// ```
pub fn check_chain<'a, I>(after: Option<(i64, &'a str)>, events: I) -> Vec<Chain>
where
    I: IntoIterator<Item = (i64, &'a str, &'a str)>,
{
    let mut before = after;
    events
        .into_iter()
        .map(|(seq, prev, link)| {
            let step = chain_step(before, seq, prev);
            before = Some((seq, link));
            step
        })
        .collect()
}

/// What the log says of a checkpoint, as `coord_checkpoint_log`'s
/// `consistency` column reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// The log's event at the checkpoint's size has its head for a link,
    /// and the log's first event its origin.
    Consistent,
    /// The log has no event at the checkpoint's size: it is shorter than
    /// what was signed (truncated, or rolled back).
    Ahead,
    /// The event at that size, or the first event, is not the one that was
    /// signed: the log was rewritten, or this is another log.
    Fork,
}

impl Consistency {
    /// The name SQL uses: `consistent`, `ahead`, `fork`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Consistency::Consistent => "consistent",
            Consistency::Ahead => "ahead",
            Consistency::Fork => "fork",
        }
    }
}

/// A checkpoint's `origin` and `head` against the log: `origin_now` is the
/// link of the log's event 1 and `link_at_size` the link of its event whose
/// seq is the checkpoint's size (each none if the log has no such event).
///
/// ```
/// use coord_core::{consistency, Consistency};
/// assert_eq!(consistency("o", "h", Some("o"), Some("h")), Consistency::Consistent);
/// assert_eq!(consistency("o", "h", Some("o"), None), Consistency::Ahead);
/// assert_eq!(consistency("o", "h", Some("o"), Some("x")), Consistency::Fork);
/// assert_eq!(consistency("o", "h", None, Some("h")), Consistency::Fork);
/// ```
pub fn consistency(
    origin: &str,
    head: &str,
    origin_now: Option<&str>,
    link_at_size: Option<&str>,
) -> Consistency {
    match link_at_size {
        None => Consistency::Ahead,
        Some(at) if at != head || origin_now != Some(origin) => Consistency::Fork,
        Some(_) => Consistency::Consistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;
    use alloc::vec;

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
    fn the_chain_reads_as_coord_log_does() {
        // a log of 4 events, then each attack of tests/extension/test_history.py
        let links = ["l1", "l2", "l3", "l4"];
        let log: Vec<(i64, &str, &str)> = vec![
            (1, "", "l1"),
            (2, "l1", "l2"),
            (3, "l2", "l3"),
            (4, "l3", "l4"),
        ];
        assert_eq!(check_chain(None, log.iter().copied()), [Chain::Ok; 4]);
        assert_eq!(check_chain(None, []), []);
        // event 3 deleted
        let gap = [log[0], log[1], log[3]];
        assert_eq!(check_chain(None, gap), [Chain::Ok, Chain::Ok, Chain::Gap]);
        // events 2 and 3 swapped, each renumbered into the other's place
        let swapped = [log[0], (2, "l2", "m3"), (3, "l1", "m2"), log[3]];
        assert_eq!(
            check_chain(None, swapped),
            [Chain::Ok, Chain::Broken, Chain::Broken, Chain::Broken]
        );
        // event 2 edited: its link changes, so event 3 is broken
        let edited = [log[0], (2, "l1", "x2"), log[2], log[3]];
        assert_eq!(
            check_chain(None, edited),
            [Chain::Ok, Chain::Ok, Chain::Broken, Chain::Ok]
        );
        // a suffix after event 2 reads as the same events of the whole log
        assert_eq!(
            check_chain(Some((2, links[1])), log[2..].iter().copied()),
            [Chain::Ok; 2]
        );
        assert_eq!(
            check_chain(Some((2, "other")), log[2..].iter().copied()),
            [Chain::Broken, Chain::Ok]
        );
        assert_eq!(
            check_chain(Some((1, "l1")), log[2..].iter().copied()),
            [Chain::Gap, Chain::Ok]
        );
        // a first event that is event 1 but names something before it
        assert_eq!(check_chain(None, [(1, "x", "l1")]), [Chain::Gap]);
        // no overflow past the last seq there can be
        assert_eq!(chain_step(Some((i64::MAX, "l")), i64::MIN, "l"), Chain::Gap);
        assert_eq!(Chain::Broken.as_str(), "broken");
        assert_eq!(Consistency::Ahead.as_str(), "ahead");
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
