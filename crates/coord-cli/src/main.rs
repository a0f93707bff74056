//! `coord`: sign and verify gptme-coordination claims and messages from the
//! shell: argument parsing and rendering over coord-db, which opens the
//! database (a file or a libSQL server) and runs every operation through
//! coord-sql, the same SQL and compare-and-swap as the SQLite extension.
#![forbid(unsafe_code)]

mod audit;
mod checkpoint;
mod cli;
mod demo;
mod error;
mod keygen;
mod ops;
mod output;
mod read;
mod sql;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Global};
use crate::error::CliError;
use crate::output::Out;
use coord_db::{Db, Op};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.global.json, cli.global.color);
    match run(cli, out) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote database text (a planted trigger's RAISE
            // message, a gate pattern): escaped like every other output, so
            // it cannot repaint the terminal into a fake success line.
            eprintln!("coord: error: {}", output::clean(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The agent from --as or $COORDINATION_AGENT (empty counts as unset),
/// refused if it is not a valid id.
fn agent(g: &Global) -> Result<Option<String>, CliError> {
    match g.agent.as_deref().filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(a) => coord_core::validate_agent_id(a)
            .map(|a| Some(a.to_owned()))
            .map_err(|e| CliError::BadAgent {
                agent: a.to_owned(),
                reason: e.to_string(),
            }),
    }
}

fn run(cli: Cli, out: Out) -> Result<u8, CliError> {
    let g = &cli.global;
    let me = agent(g)?;
    let need_agent = || me.clone().ok_or(CliError::NoAgent);
    let at = coord_db::resolve(g.db.as_deref());
    let open = || Db::open(&at, g.busy_timeout, me.as_deref());
    // Reads of a server database verify a copy of its rows here, with this
    // machine's keys; for a file this is just open().
    let open_for_read = |scope: coord_db::Scope<'_>| {
        let db = open()?;
        db.load(scope)?;
        Ok::<_, CliError>(db)
    };
    // Writes need coord's schema; a database only gptme-coordination has
    // written gets it added (built-in SQL only, harmless to that package).
    let open_for_write = || {
        let db = open()?;
        db.ensure_schema()?;
        Ok::<_, CliError>(db)
    };

    match cli.command {
        Command::Init => {
            let (db, report) = Db::create(&at, g.busy_timeout, me.as_deref())?;
            if out.json {
                out.print_json(&serde_json::json!({
                    "db": db.path.display().to_string(),
                    "added_columns": report.added_columns,
                    "restored_triggers": report.restored_triggers,
                }));
            } else {
                // a re-created append-only trigger is news, not success
                let (style, mark) = if report.restored_triggers.is_empty() {
                    (output::style::OK, "✓")
                } else {
                    (output::style::WARN, "!")
                };
                out.line(
                    style,
                    &format!("{mark} {report} in {} ({})", db.path.display(), at.how),
                );
            }
            Ok(error::EXIT_OK)
        }
        Command::Submit { task, metadata } => {
            let db = open_for_write()?;
            ops::report(
                out,
                db.run(&Op::Submit {
                    task_id: &task,
                    metadata: metadata.as_deref(),
                }),
            )
        }
        Command::Claim { task, ttl, signing } => {
            let who = need_agent()?;
            let db = open_for_write()?;
            if !signing.unsigned {
                ops::require_key(&db, &who)?;
            }
            ops::report(
                out,
                db.run(&Op::Claim {
                    task_id: &task,
                    claimer: Some(&who),
                    ttl_minutes: ttl,
                }),
            )
        }
        Command::Complete {
            task,
            result,
            epoch,
        } => {
            let who = need_agent()?;
            let db = open_for_write()?;
            ops::report(
                out,
                db.run(&Op::Complete {
                    task_id: &task,
                    claimer: Some(&who),
                    epoch,
                    result: result.as_deref(),
                }),
            )
        }
        Command::Abandon { task, epoch } => {
            let who = need_agent()?;
            let db = open_for_write()?;
            ops::report(
                out,
                db.run(&Op::Abandon {
                    task_id: &task,
                    claimer: Some(&who),
                    epoch,
                }),
            )
        }
        Command::Send {
            body,
            to,
            channel,
            signing,
        } => {
            let who = need_agent()?;
            if let Some(r) = &to {
                coord_core::validate_agent_id(r).map_err(|e| CliError::BadAgent {
                    agent: r.clone(),
                    reason: e.to_string(),
                })?;
            }
            let db = open_for_write()?;
            if !signing.unsigned {
                ops::require_key(&db, &who)?;
            }
            ops::report(
                out,
                db.run(&Op::Send {
                    sender: Some(&who),
                    recipient: to.as_deref(),
                    channel: channel.as_deref(),
                    body: &body,
                }),
            )
        }
        Command::List { filter, agent } => {
            let scope = coord_db::Scope {
                work: coord_db::WorkScope::List(filter, agent.as_deref()),
                messages: coord_db::MessageScope::None,
            };
            read::list(&open_for_read(scope)?, out, filter, agent.as_deref())
        }
        Command::Inbox {
            all,
            channel,
            limit,
        } => {
            let who = if all { None } else { Some(need_agent()?) };
            let scope = coord_db::Scope {
                work: coord_db::WorkScope::None,
                messages: coord_db::MessageScope::Inbox {
                    agent: who.as_deref(),
                    channel: channel.as_deref(),
                    limit,
                },
            };
            read::inbox(
                &open_for_read(scope)?,
                out,
                who.as_deref(),
                channel.as_deref(),
                limit,
            )
        }
        Command::Status => read::status(&open_for_read(coord_db::Scope::ALL)?, out, me.as_deref()),
        Command::Keygen { agent, rotate } => keygen::run(out, &agent, rotate),
        Command::Audit { strict } => {
            audit::audit(&open_for_read(coord_db::Scope::ALL)?, out, strict)
        }
        Command::Checkpoint {
            check,
            size,
            agents,
        } => {
            let db = open_for_read(coord_db::Scope::ALL)?;
            if check {
                checkpoint::check(&db, out, size, &agents)
            } else {
                let who = need_agent()?;
                ops::require_key(&db, &who)?;
                checkpoint::sign(&db, out, &who)
            }
        }
        Command::Sql { command } => {
            if let Some(url) = at.url() {
                return Err(CliError::Other(format!(
                    "`coord sql` runs on a database file; {url} is a server: use its own SQL \
                     surface (each of its connections loads coord's extension, see docs/cluster.md)"
                )));
            }
            sql::run(&open()?, out, command.as_deref())
        }
        Command::Demo { keep } => demo::run(out, keep),
        Command::Mcp { http } => {
            let config = coord_mcp::Config {
                at,
                busy_ms: g.busy_timeout,
                agent: need_agent()?,
            };
            let transport = match http {
                Some(addr) => coord_mcp::Transport::Http(addr),
                None => coord_mcp::Transport::Stdio,
            };
            coord_mcp::serve(config, transport)?;
            Ok(error::EXIT_OK)
        }
    }
}
