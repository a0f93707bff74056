//! `coord sql`: statements on the database with coord's functions and TEMP
//! views registered, from `-c` or a simple line prompt.

use std::io::{BufRead, IsTerminal, Write};

use comfy_table::Cell;
use fallible_iterator::FallibleIterator;
use rusqlite::types::ValueRef;
use rusqlite::Batch;
use serde_json::{Map, Value};

use crate::error::{CliError, EXIT_ERROR, EXIT_OK};
use crate::output::{outln, style, Out};
use coord_db::Db;

const HELP: &str = "\
Statements end with ';'. coord's objects on this connection:
  views  coord_work, coord_messages, coord_inbox (verification, verified columns)
  write  INSERT INTO coord_claim(task_id, claimer, ttl_minutes) VALUES (...); also
         coord_complete, coord_abandon, coord_submit, coord_send; then
         SELECT * FROM coord_result
  funcs  coord_sign_claim, coord_claim_status, coord_key_status, coord_agent, coord_init, ...
Dot-commands: .tables  .help  .quit";

/// Runs every statement in `sql`, printing the rows of those that return
/// any. Stops at the first error.
pub fn run_sql(db: &Db, out: Out, sql: &str) -> Result<(), rusqlite::Error> {
    let mut batch = Batch::new(&db.conn, sql);
    while let Some(mut st) = batch.next()? {
        let names: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
        if names.is_empty() {
            st.raw_execute()?;
            continue;
        }
        let mut rows = st.query([])?;
        let mut table = out.table(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let mut json_rows = Vec::new();
        while let Some(r) = rows.next()? {
            if out.json {
                let mut o = Map::new();
                for (i, n) in names.iter().enumerate() {
                    o.insert(n.clone(), json_value(r.get_ref(i)?));
                }
                json_rows.push(Value::Object(o));
            } else {
                let cells: Result<Vec<Cell>, _> = (0..names.len())
                    .map(|i| r.get_ref(i).map(|v| Cell::new(text(v))))
                    .collect();
                table.add_row(cells?);
            }
        }
        if out.json {
            out.print_json(&Value::Array(json_rows));
        } else {
            outln!("{table}");
        }
    }
    Ok(())
}

fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => crate::output::clean(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", hex::encode(b)),
    }
}

fn json_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(format!("x'{}'", hex::encode(b))),
    }
}

/// Whether `sql` ends mid-statement (a trigger body, an open string): the
/// prompt then reads another line. Only prepares, so nothing runs twice.
fn complete(db: &Db, sql: &str) -> bool {
    let mut batch = Batch::new(&db.conn, sql);
    loop {
        match batch.next() {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            // Other errors (say, a table created earlier in the same text)
            // are for the real run to report.
            Err(e) => return !e.to_string().contains("incomplete input"),
        }
    }
}

pub fn run(db: &Db, out: Out, command: Option<&str>) -> Result<u8, CliError> {
    if let Some(sql) = command {
        run_sql(db, out, sql).map_err(|e| db.err(e))?;
        return Ok(EXIT_OK);
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprintln!(
            "coord {} on {}; .help for help, .quit to leave",
            env!("CARGO_PKG_VERSION"),
            db.path.display()
        );
    }
    let mut buf = String::new();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("{}", if buf.is_empty() { "coord> " } else { "  ...> " });
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| CliError::Other(format!("reading standard input: {e}")))?;
        if buf.is_empty() && line.trim_start().starts_with('.') {
            match line.split_whitespace().next().unwrap_or("") {
                ".quit" | ".exit" => break,
                ".help" => outln!("{HELP}"),
                ".tables" => {
                    let sql = "SELECT name, type, CASE WHEN name IN (SELECT name FROM temp.sqlite_schema) THEN 'temp (coord)' ELSE 'main' END AS schema
                                 FROM (SELECT name, type FROM main.sqlite_schema UNION SELECT name, type FROM temp.sqlite_schema)
                                WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY schema, name";
                    if let Err(e) = run_sql(db, out, sql) {
                        out.line(style::REFUSED, &format!("error: {e}"));
                    }
                }
                other => out.line(
                    style::REFUSED,
                    &format!("unknown command {other}; try .help"),
                ),
            }
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !buf.trim_end().ends_with(';') || !complete(db, &buf) {
            continue;
        }
        match run_sql(db, out, &buf) {
            Err(e) if interactive => out.line(style::REFUSED, &format!("error: {e}")),
            Err(e) => return Err(db.err(e).into()),
            Ok(()) => {}
        }
        buf.clear();
    }
    if !buf.trim().is_empty() {
        if let Err(e) = run_sql(db, out, &buf) {
            if interactive {
                out.line(style::REFUSED, &format!("error: {e}"));
                return Ok(EXIT_ERROR);
            }
            return Err(db.err(e).into());
        }
    }
    Ok(EXIT_OK)
}
