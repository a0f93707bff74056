//! Which rows a read needs: a server backend sends only those.

use rusqlite::types::Value;

/// Which tasks `coord list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ListFilter {
    /// Available, including abandoned.
    Available,
    /// Claimed, with a live lease.
    Claimed,
    /// Claimed, with an expired lease.
    Expired,
    /// Every task.
    All,
}

/// Rows per request when copying from a server: small enough that a page
/// of ordinary rows stays far below a server's response size limit.
pub const PAGE_ROWS: u64 = 1000;

/// Which rows a read verb needs from a server database (a file needs no
/// copy and ignores it).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The `work` rows.
    pub work: WorkScope<'a>,
    /// The `messages` rows.
    pub messages: MessageScope<'a>,
}

impl Scope<'_> {
    /// Every row (status, audit, sql).
    pub const ALL: Scope<'static> = Scope {
        work: WorkScope::All,
        messages: MessageScope::All,
    };
}

/// The `work` rows a verb reads.
#[derive(Debug, Clone, Copy)]
pub enum WorkScope<'a> {
    /// None.
    None,
    /// All of them.
    All,
    /// Those `coord list FILTER [--agent A]` can show. The server's clock
    /// only narrows: every claimed row is sent for `claimed` and
    /// `expired`, and this machine's view decides which is which.
    List(ListFilter, Option<&'a str>),
}

impl WorkScope<'_> {
    pub(crate) fn server_filter(&self) -> Option<(&'static str, Vec<Value>)> {
        let text = |a: Option<&str>| a.map_or(Value::Null, |a| Value::Text(a.to_owned()));
        match *self {
            WorkScope::None => None,
            WorkScope::All => Some(("1", Vec::new())),
            WorkScope::List(f, claimer) => Some((
                match f {
                    ListFilter::Available => {
                        "status IN ('available', 'abandoned') AND (?1 IS NULL OR claimer = ?1)"
                    }
                    ListFilter::Claimed | ListFilter::Expired => {
                        "status = 'claimed' AND (?1 IS NULL OR claimer = ?1)"
                    }
                    ListFilter::All => "?1 IS NULL OR claimer = ?1",
                },
                vec![text(claimer)],
            )),
        }
    }
}

/// The `messages` rows a verb reads.
#[derive(Debug, Clone, Copy)]
pub enum MessageScope<'a> {
    /// None.
    None,
    /// All of them.
    All,
    /// `coord inbox`: to `agent` or broadcast (`None`: all), on `channel`
    /// (`None`: any), the newest `limit`.
    Inbox {
        /// The reader.
        agent: Option<&'a str>,
        /// The channel.
        channel: Option<&'a str>,
        /// How many of the newest.
        limit: Option<u32>,
    },
}

impl MessageScope<'_> {
    #[allow(clippy::type_complexity)]
    pub(crate) fn server_filter(&self) -> Option<(&'static str, Vec<Value>, Option<u32>)> {
        let text = |a: Option<&str>| a.map_or(Value::Null, |a| Value::Text(a.to_owned()));
        match *self {
            MessageScope::None => None,
            MessageScope::All => Some(("1", Vec::new(), None)),
            MessageScope::Inbox {
                agent,
                channel,
                limit,
            } => Some((
                "(?1 IS NULL OR recipient = ?1 OR recipient IS NULL) AND (?2 IS NULL OR channel = ?2)",
                vec![text(agent), text(channel)],
                limit,
            )),
        }
    }
}
