//! Which fields a row signs, in what order: the rule that makes coord's rows
//! gptme-coordination's rows. Every coord surface (the SQL functions and
//! views, the write API, the CLI's audit, the WASI component) builds its rows
//! here and nowhere else.
//!
//! A row is built from its columns as stored. The signer's id must be TEXT
//! (a key is looked up by it); the other columns are [`Field`]s, because a
//! reader must encode what is stored, not what should have been: an epoch
//! stored as `'1'` signs differently from `1`, exactly as it does when
//! gptme's Python reads the row.

use crate::canonical::Field;

/// A row whose MAC is made with its signer's key over its signed fields.
///
/// Implemented by [`Claim`] and [`Message`]. Signing and verifying through
/// this trait ([`crate::SecretKey::sign_row`], [`crate::Keyring::row_status`])
/// ties the key to the row's own signer, so a row cannot be checked against
/// another agent's key by mistake.
pub trait SignedRow {
    /// The agent whose key signs the row.
    fn signer(&self) -> &str;
    /// The signed fields, in signing order.
    fn fields(&self) -> &[Field<'_>];
}

/// What every signed row type shares ([`Claim`], [`Message`], and
/// history's `Event` and `Checkpoint`): it holds its `$n` signed fields,
/// the signer first (always TEXT: `new` takes it as `&str`).
macro_rules! row_impls {
    ($row:ident, $n:literal) => {
        impl<'a> $row<'a> {
            /// The signed fields, in signing order, owned.
            pub fn into_fields(self) -> [Field<'a>; $n] {
                self.fields
            }
        }

        impl SignedRow for $row<'_> {
            fn signer(&self) -> &str {
                match self.fields[0] {
                    Field::Text(s) => s,
                    _ => "",
                }
            }

            fn fields(&self) -> &[Field<'_>] {
                &self.fields
            }
        }
    };
}

/// A `work` row: signs `[claimer, task_id, epoch, expires_at]` with the
/// claimer's key.
///
/// ```
/// use coord_core::{Claim, SecretKey, SignedRow, Status, Keyring};
/// let claim = Claim::new("alice", "github:gptme/gptme#2362", 1, "2076-11-14 06:05:02");
/// let key = SecretKey::new(b"alice-secret-0123456789abcdef0123456789abcdef").unwrap();
/// let mac = key.sign_row(&claim).to_string();
/// assert_eq!(mac, "n+UKZhE88Vl0K3VxcKdO2TQLTt9c/FgbiciP3yLP2VA=");
/// let mut ring = Keyring::new();
/// ring.add("alice", key);
/// assert_eq!(ring.row_status(&claim, Some(&mac)), Status::Verified);
/// // the epoch moved on: the old MAC no longer covers the row
/// let later = Claim::new("alice", "github:gptme/gptme#2362", 2, "2076-11-14 06:05:02");
/// assert_eq!(ring.row_status(&later, Some(&mac)), Status::BadMac);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim<'a> {
    fields: [Field<'a>; 4],
}

impl<'a> Claim<'a> {
    /// The `work` columns a claim signs, in signing order (the signer first).
    pub const COLUMNS: [&'static str; 4] = ["claimer", "task_id", "epoch", "expires_at"];

    /// A claim row from its stored columns.
    pub fn new(
        claimer: &'a str,
        task_id: impl Into<Field<'a>>,
        epoch: impl Into<Field<'a>>,
        expires_at: impl Into<Field<'a>>,
    ) -> Self {
        Self {
            fields: [
                Field::Text(claimer),
                task_id.into(),
                epoch.into(),
                expires_at.into(),
            ],
        }
    }
}

row_impls!(Claim, 4);

/// A `messages` row: signs `[sender, recipient or "", channel, body]` with
/// the sender's key.
///
/// The recipient is signed the way gptme's Python writes `recipient or ""`:
/// a broadcast (NULL) signs `""`, and so does any other value Python counts
/// as false (`""`, `0`, `0.0`).
///
/// ```
/// use coord_core::{Field, Message, SignedRow};
/// let broadcast = Message::new("alice", None::<&str>, "general", "hello");
/// assert_eq!(broadcast.fields()[1], Field::Text(""));
/// let to_bob = Message::new("alice", "bob", "general", "hello");
/// assert_eq!(to_bob.fields()[1], Field::Text("bob"));
/// assert_eq!(to_bob.signer(), "alice");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message<'a> {
    fields: [Field<'a>; 4],
}

impl<'a> Message<'a> {
    /// The `messages` columns a message signs, in signing order (the signer
    /// first). The recipient is signed as described on [`Message`].
    pub const COLUMNS: [&'static str; 4] = ["sender", "recipient", "channel", "body"];

    /// A message row from its stored columns.
    pub fn new(
        sender: &'a str,
        recipient: impl Into<Field<'a>>,
        channel: impl Into<Field<'a>>,
        body: impl Into<Field<'a>>,
    ) -> Self {
        let recipient = match recipient.into() {
            // Python's truthiness: None, "", 0 and 0.0 are false (a float
            // pattern compares with ==, so -0.0 matches too)
            Field::Null | Field::Text("") | Field::Integer(0) | Field::Real(0.0) => Field::Text(""),
            other => other,
        };
        Self {
            fields: [Field::Text(sender), recipient, channel.into(), body.into()],
        }
    }
}

row_impls!(Message, 4);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical;

    #[test]
    fn a_claim_signs_its_columns_in_order() {
        let c = Claim::new("alice", "t", 3, None::<&str>);
        assert_eq!(canonical(c.fields()), br#"["alice","t",3,null]"#);
        assert_eq!(c.signer(), "alice");
    }

    #[test]
    fn stored_types_are_kept() {
        let c = Claim::new("alice", "t", "3", 1.5);
        assert_eq!(canonical(c.fields()), br#"["alice","t","3",1.5]"#);
    }

    #[test]
    fn recipient_is_signed_as_python_writes_recipient_or_empty() {
        for falsy in [
            Field::Null,
            Field::Text(""),
            Field::Integer(0),
            Field::Real(0.0),
            Field::Real(-0.0),
        ] {
            let m = Message::new("a", falsy, "general", "b");
            assert_eq!(
                canonical(m.fields()),
                br#"["a","","general","b"]"#,
                "{falsy:?}"
            );
        }
        for truthy in [Field::Integer(1), Field::Real(0.5), Field::Text("0")] {
            assert_eq!(
                Message::new("a", truthy, "general", "b").fields()[1],
                truthy
            );
        }
        let nan = Message::new("a", f64::NAN, "general", "b");
        assert!(matches!(nan.fields()[1], Field::Real(f) if f.is_nan()));
    }
}
