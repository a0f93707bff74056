//! The command line, as clap derives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  coord demo                                  a guided tour in a temporary directory
  coord init                                  create the database (WAL mode) and coord's schema
  coord keygen alice                          new key in the secrets directory, mode 0600
  coord keygen --rotate alice                 new key; the old one is kept as a retired key
  coord submit github:gptme/gptme#2362        add a task anyone may claim
  coord --as alice claim task-1 --ttl 30      claim (or renew) for 30 minutes; DENIED exits 1
  coord --as alice complete task-1 --result shipped
  coord --as alice abandon task-1
  coord list claimed                          available | claimed | expired | all, verified
  coord --as alice send 'rebasing main' --to bob --channel ops
  coord --as bob inbox                        messages for bob and broadcasts, verified
  coord status                                counts, live claims and your key
  coord audit                                 verify every signed row; exits 1 on a forged one
  coord --as alice checkpoint                 sign the log's size and head after checking it
  coord checkpoint --check                    has every agent signed the current head?
  coord sql -c 'SELECT task_id, verification FROM coord_work'
  coord --as alice mcp                        MCP server over stdio, signing as alice only

Database: --db, else $COORDINATION_DB, else $BOB_WORKSPACE, $AGENT_WORKSPACE or
$WORKSPACE + /state/coordination/coord.db, else <git root>/state/coordination/coord.db,
else ./state/coordination/coord.db. A URL (http://, https://, libsql://) names a
libSQL server instead: see docs/cluster.md.
Agent: --as, else $COORDINATION_AGENT. Keys: $COORDINATION_SECRET_<ID>, else
<id>.secret in $COORDINATION_SECRETS_DIR, <git root>/secrets/coordination or
./secrets/coordination.

Exit codes: 0 success; 1 refused (denied, lost_lease, not_holder, not_claimed,
expired, unknown_task; keygen over an existing key; audit found a bad MAC);
2 usage or runtime error (missing database, busy past the timeout, no usable key).";

/// Sign and verify gptme-coordination claims and messages from the shell.
///
/// Every claim and message written by coord carries an HMAC-SHA256 by the
/// agent's key, and every row read is shown with its verification status.
#[derive(Debug, Parser)]
#[command(name = "coord", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Database file, or a libSQL server URL (default: see "Database" below).
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Act as this agent.
    #[arg(
        long = "as",
        global = true,
        value_name = "AGENT",
        env = "COORDINATION_AGENT"
    )]
    pub agent: Option<String>,

    /// Print JSON for programs instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for another writer's lock, in milliseconds.
    #[arg(long, global = true, value_name = "MS", default_value_t = 5000)]
    pub busy_timeout: u64,

    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing (WAL mode) and create or migrate coord's schema.
    #[command(after_help = "Example:\n  coord --db state/coordination/coord.db init")]
    Init,

    /// Add a task that anyone may claim (exists: exit 0).
    #[command(
        after_help = "Example:\n  coord submit github:gptme/gptme#2362 --metadata '{\"prio\": 1}'"
    )]
    Submit {
        task: String,
        /// Free text stored with the task.
        #[arg(long)]
        metadata: Option<String>,
    },

    /// Claim a task, signed; renews your own live claim. DENIED exits 1.
    #[command(after_help = "Example:\n  coord --as alice claim task-1 --ttl 30")]
    Claim {
        task: String,
        /// Minutes until the claim expires (fractions allowed).
        #[arg(long, value_name = "MINUTES", default_value_t = 60.0)]
        ttl: f64,
        #[command(flatten)]
        signing: Signing,
    },

    /// Complete your live claim on a task.
    #[command(
        after_help = "Example:\n  coord --as alice complete task-1 --result shipped --epoch 3"
    )]
    Complete {
        task: String,
        /// Result text stored with the task.
        #[arg(long)]
        result: Option<String>,
        /// Only if the task is still at this epoch (fencing a stale holder).
        #[arg(long)]
        epoch: Option<i64>,
    },

    /// Give up your claim on a task.
    #[command(after_help = "Example:\n  coord --as alice abandon task-1")]
    Abandon {
        task: String,
        /// Only if the task is still at this epoch.
        #[arg(long)]
        epoch: Option<i64>,
    },

    /// List tasks with each row's verification status.
    #[command(
        after_help = "Examples:\n  coord list\n  coord list claimed --agent alice\n  coord --json list expired"
    )]
    List {
        /// available (incl. abandoned), claimed (live), expired, or all.
        #[arg(value_enum, default_value_t = ListFilter::All)]
        filter: ListFilter,
        /// Only tasks claimed by this agent.
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
    },

    /// Send a signed message: to one agent, or broadcast; on a channel.
    #[command(
        after_help = "Examples:\n  coord --as alice send 'rebasing main' --to bob\n  coord --as alice send 'deploy at 5' --channel ops"
    )]
    Send {
        body: String,
        /// Recipient agent (default: broadcast to everyone).
        #[arg(long)]
        to: Option<String>,
        /// Channel (default: general).
        #[arg(long)]
        channel: Option<String>,
        #[command(flatten)]
        signing: Signing,
    },

    /// Messages for you (and broadcasts), each with its verification status.
    #[command(after_help = "Examples:\n  coord --as bob inbox\n  coord inbox --all --channel ops")]
    Inbox {
        /// Every message, whoever it is for (no agent needed).
        #[arg(long)]
        all: bool,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only the newest N.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },

    /// Counts by state, live claims, and whether you can sign.
    #[command(after_help = "Example:\n  coord --as alice status")]
    Status,

    /// Write a new key for an agent (32 random bytes, hex, mode 0600).
    #[command(
        after_help = "Examples:\n  coord keygen alice\n  COORDINATION_SECRETS_DIR=/run/keys coord keygen --rotate alice"
    )]
    Keygen {
        agent: String,
        /// Replace an existing key, keeping it as a retired key.
        #[arg(long)]
        rotate: bool,
    },

    /// Verify every signed row from the raw tables; exit 1 on a bad MAC.
    #[command(
        after_help = "Examples:\n  coord audit\n  coord audit --strict   # also fail on unsigned and unknown-agent rows"
    )]
    Audit {
        /// Also fail when a row is unsigned or signed by an unknown agent.
        #[arg(long)]
        strict: bool,
    },

    /// Sign a checkpoint of the log as --as AGENT, after checking it; or
    /// (--check) report which agents have signed one at least this long.
    ///
    /// An agent signs only a log whose events all verify and chain, and
    /// that extends what this machine saw of it before (the witness in
    /// $XDG_STATE_HOME/coord). See docs/history.md.
    #[command(after_help = "Examples:
  coord --as alice checkpoint
  coord checkpoint --check              # has every agent in the log signed its current size?
  coord checkpoint --check --size 120 --agent dave")]
    Checkpoint {
        /// Sign nothing: list each agent's newest good checkpoint, and exit
        /// 1 unless every one covers --size events.
        #[arg(long)]
        check: bool,
        /// With --check: the size every agent must have signed (default:
        /// the log's current size).
        #[arg(long, value_name = "N", requires = "check")]
        size: Option<i64>,
        /// With --check: also ask about this agent (repeatable); agents who
        /// acted in the log are always asked about.
        #[arg(long = "agent", value_name = "AGENT", requires = "check")]
        agents: Vec<String>,
    },

    /// SQL prompt (or -c SQL) with coord's functions and views registered.
    #[command(
        after_help = "Examples:\n  coord sql -c \"SELECT task_id, verification FROM coord_work\"\n  coord sql            # prompt; .help for dot-commands"
    )]
    Sql {
        /// Run these statements and exit.
        #[arg(short = 'c', long = "command", value_name = "SQL")]
        command: Option<String>,
    },

    /// An MCP server over stdio (or streamable HTTP) acting as --as AGENT only.
    ///
    /// The agent is fixed when the server starts and it refuses to start
    /// without a key that signs as it; no tool takes a claimer or sender.
    /// See docs/mcp.md.
    #[command(
        after_help = "Examples:\n  coord --as alice mcp\n  coord --as alice --db state/coordination/coord.db mcp --http 127.0.0.1:8765"
    )]
    Mcp {
        /// Serve streamable HTTP on this loopback address (at /mcp) instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
    },

    /// A guided tour in a temporary directory: keys, a race, a denial, a
    /// handoff, a forgery and a tampered message, and the table that shows them.
    #[command(
        after_help = "Example:\n  cargo run --release --manifest-path crates/coord-cli/Cargo.toml -- demo"
    )]
    Demo {
        /// Keep the temporary directory and print its path.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Args)]
pub struct Signing {
    /// Write even without a usable key (the row gets no MAC).
    #[arg(long)]
    pub unsigned: bool,
}

pub use coord_db::ListFilter;
