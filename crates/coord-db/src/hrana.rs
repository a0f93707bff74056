//! The Hrana-over-HTTP protocol of a libSQL server (`sqld`): `POST
//! /v2/pipeline`, JSON. [`crate::Server`] is the backend built on it.
//!
//! Why plain HTTP and not the `libsql` crate: coord needs three request
//! types (execute, sequence, close) and a baton, from a synchronous command;
//! the `libsql` crate would bring an async runtime and a far larger
//! dependency tree into a binary that otherwise has none. ureq is a small,
//! blocking, well-kept client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rusqlite::types::Value;
use serde_json::{json, Value as Json};
use thiserror::Error;
use zeroize::Zeroizing;

/// URL schemes that name a server rather than a file.
pub fn is_url(s: &str) -> bool {
    ["http://", "https://", "libsql://"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Why talking to the server failed.
#[derive(Debug, Error)]
pub enum RemoteError {
    /// No answer: refused, reset, timed out.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered with an HTTP error.
    #[error("the server answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server answered something that is not Hrana.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// A statement failed on the server.
    #[error("{0}")]
    Sql(String),
}

/// The server's rows for one statement.
#[derive(Debug, Default)]
pub struct Rows {
    /// The rows, if the statement returns any.
    pub rows: Vec<Vec<Value>>,
    /// Rows changed by an INSERT, UPDATE or DELETE.
    pub affected: u64,
    /// The rowid of the last row inserted, if the server says.
    pub last_insert_rowid: Option<i64>,
}

/// A server and how to reach it. Each [`Stream`] opened from it is one
/// server-side connection.
#[derive(Clone)]
pub struct Server {
    /// The base URL requests go to.
    pub url: String,
    agent: ureq::Agent,
    token: Option<std::sync::Arc<Zeroizing<String>>>,
}

impl Server {
    /// `url` is http://, https:// or libsql:// (https). The optional bearer
    /// token comes from `$COORDINATION_AUTH_TOKEN` (never printed).
    pub fn new(url: &str, timeout: Duration) -> Server {
        let base = match url.strip_prefix("libsql://") {
            Some(rest) => format!("https://{rest}"),
            None => url.to_owned(),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let token = std::env::var("COORDINATION_AUTH_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| std::sync::Arc::new(Zeroizing::new(t)));
        Server {
            url: base.trim_end_matches('/').to_owned(),
            agent,
            token,
        }
    }

    /// A new stream (server-side connection), opened lazily by the first
    /// request.
    pub fn stream(&self) -> Stream<'_> {
        Stream {
            server: self,
            baton: None,
            base: self.url.clone(),
        }
    }
}

/// One Hrana stream: a connection on the server, kept across requests by
/// the baton the server hands back.
pub struct Stream<'a> {
    server: &'a Server,
    baton: Option<String>,
    base: String,
}

/// One statement of a pipeline.
pub enum Req<'s> {
    /// One statement with its arguments; its rows come back.
    Execute(&'s str, Vec<Value>),
    /// A script of statements without arguments.
    Sequence(&'s str),
}

fn to_hrana(v: &Value) -> Json {
    match v {
        Value::Null => json!({"type": "null"}),
        Value::Integer(i) => json!({"type": "integer", "value": i.to_string()}),
        Value::Real(f) => json!({"type": "float", "value": f}),
        Value::Text(s) => json!({"type": "text", "value": s}),
        Value::Blob(b) => json!({
            "type": "blob",
            "base64": base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
        }),
    }
}

fn from_hrana(v: &Json) -> Result<Value, RemoteError> {
    let bad = || RemoteError::Protocol(format!("bad value {v}"));
    Ok(match v["type"].as_str().ok_or_else(bad)? {
        "null" => Value::Null,
        "integer" => Value::Integer(
            v["value"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?,
        ),
        "float" => Value::Real(v["value"].as_f64().ok_or_else(bad)?),
        "text" => Value::Text(v["value"].as_str().ok_or_else(bad)?.to_owned()),
        "blob" => {
            let s = v["base64"].as_str().ok_or_else(bad)?;
            Value::Blob(
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(s.trim_end_matches('='))
                    .map_err(|_| bad())?,
            )
        }
        _ => return Err(bad()),
    })
}

impl Stream<'_> {
    /// Sends `reqs` as one pipeline; one result per request, in order. A
    /// failed statement does not stop the ones after it (Hrana's rule), so
    /// callers look at every result.
    pub fn pipeline(&mut self, reqs: &[Req<'_>]) -> Result<Vec<Result<Rows, String>>, RemoteError> {
        let requests: Vec<Json> = reqs
            .iter()
            .map(|r| match r {
                Req::Execute(sql, args) => json!({"type": "execute", "stmt": {
                    "sql": sql, "args": args.iter().map(to_hrana).collect::<Vec<_>>(),
                    "want_rows": true}}),
                Req::Sequence(sql) => json!({"type": "sequence", "sql": sql}),
            })
            .collect();
        let d = self.send(json!({"baton": self.baton, "requests": requests}))?;
        let results = d["results"]
            .as_array()
            .ok_or_else(|| RemoteError::Protocol("no results".into()))?;
        results.iter().map(parse_result).collect()
    }

    /// Runs one statement; its failure is an error.
    pub fn execute(&mut self, sql: &str, args: Vec<Value>) -> Result<Rows, RemoteError> {
        self.pipeline(&[Req::Execute(sql, args)])?
            .pop()
            .ok_or_else(|| RemoteError::Protocol("no result".into()))?
            .map_err(RemoteError::Sql)
    }

    /// Runs a script of statements; the first failure is an error.
    pub fn sequence(&mut self, sql: &str) -> Result<(), RemoteError> {
        self.pipeline(&[Req::Sequence(sql)])?
            .pop()
            .ok_or_else(|| RemoteError::Protocol("no result".into()))?
            .map(|_| ())
            .map_err(RemoteError::Sql)
    }

    /// Closes the server-side connection (rolling back anything open).
    pub fn close(&mut self) {
        if self.baton.is_some() {
            let _ = self.send(json!({"baton": self.baton, "requests": [{"type": "close"}]}));
            self.baton = None;
        }
    }

    fn send(&mut self, body: Json) -> Result<Json, RemoteError> {
        let url = format!("{}/v2/pipeline", self.base);
        let mut req = self
            .server
            .agent
            .post(&url)
            .header("content-type", "application/json");
        if let Some(t) = &self.server.token {
            req = req.header("authorization", &format!("Bearer {}", t.as_str()));
        }
        let mut resp = req
            .send(body.to_string().as_bytes())
            .map_err(|e| RemoteError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| RemoteError::Transport(e.to_string()))?;
        if status != 200 {
            let mut body = text;
            body.truncate(300);
            return Err(RemoteError::Http { status, body });
        }
        let d: Json = serde_json::from_str(&text)
            .map_err(|e| RemoteError::Protocol(format!("not JSON: {e}")))?;
        self.baton = d["baton"].as_str().map(str::to_owned);
        // A server may ask that the rest of the stream go to another URL
        // (sticky sessions behind a load balancer).
        if let Some(b) = d["base_url"].as_str().filter(|b| !b.is_empty()) {
            self.base = b.trim_end_matches('/').to_owned();
        }
        Ok(d)
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

fn parse_result(r: &Json) -> Result<Result<Rows, String>, RemoteError> {
    match r["type"].as_str() {
        Some("ok") => {}
        Some("error") => {
            return Ok(Err(r["error"]["message"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned()))
        }
        _ => return Err(RemoteError::Protocol(format!("bad result {r}"))),
    }
    let res = &r["response"]["result"];
    if res.is_null() {
        return Ok(Ok(Rows::default()));
    }
    let mut rows = Vec::new();
    for row in res["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let cells = row
            .as_array()
            .ok_or_else(|| RemoteError::Protocol("bad row".into()))?;
        rows.push(
            cells
                .iter()
                .map(from_hrana)
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(Ok(Rows {
        rows,
        affected: res["affected_row_count"].as_u64().unwrap_or(0),
        last_insert_rowid: res["last_insert_rowid"]
            .as_str()
            .and_then(|s| s.parse().ok()),
    }))
}

/// Seconds since the epoch on this machine, with fractions.
pub fn local_unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_hrana_json() {
        for v in [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Integer(9_007_199_254_740_993), // not exact as a JSON number
            Value::Real(1.5),
            Value::Text("ü\n\"x\"".into()),
            Value::Blob(vec![0, 255, 1]),
        ] {
            assert_eq!(from_hrana(&to_hrana(&v)).unwrap(), v);
        }
        assert!(from_hrana(&json!({"type": "integer", "value": "x"})).is_err());
        assert!(from_hrana(&json!({"type": "nope"})).is_err());
    }

    #[test]
    fn urls_name_servers_and_paths_do_not() {
        assert!(is_url("http://127.0.0.1:8080"));
        assert!(is_url("https://db.example"));
        assert!(is_url("libsql://db.example"));
        assert!(!is_url("state/coordination/coord.db"));
        assert!(!is_url("./http:/x.db"));
        let s = Server::new("libsql://db.example/", Duration::from_secs(1));
        assert_eq!(s.url, "https://db.example");
    }

    #[test]
    fn a_failed_statement_is_its_own_result() {
        let ok = parse_result(
            &json!({"type": "ok", "response": {"type": "execute", "result": {
            "cols": [], "rows": [[{"type": "integer", "value": "3"}]],
            "affected_row_count": 1, "last_insert_rowid": "7"}}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.rows, vec![vec![Value::Integer(3)]]);
        assert_eq!((ok.affected, ok.last_insert_rowid), (1, Some(7)));
        let err = parse_result(&json!({"type": "error", "error": {"message": "no such table: x"}}))
            .unwrap();
        assert_eq!(err.unwrap_err(), "no such table: x");
        assert!(parse_result(&json!({"type": "weird"})).is_err());
    }
}
