//! The SQL-function target: coord's functions and write API called with
//! arbitrary argument types and sizes through a real in-memory SQLite
//! connection (bundled SQLite, `coord_sql::register`).

use arbitrary::{Arbitrary, Unstructured};
use coord_core::{canonical, Field};
use coord_sql::FUNCTIONS;
use rusqlite::types::Value;
use rusqlite::Connection;

/// The fixed key the target's connection holds for `alice`; it must never
/// appear in an error message or a result.
pub const ALICE_KEY: &str = "fuzz-alice-secret-0123456789abcdef0123456789";

/// The write API: a view and its number of columns.
const WRITES: &[(&str, usize)] = &[
    ("coord_claim", 3),
    ("coord_complete", 4),
    ("coord_abandon", 3),
    ("coord_submit", 2),
    ("coord_send", 4),
];

/// One argument as the fuzzer makes it.
#[derive(Debug, Clone, Arbitrary)]
pub enum Arg {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A double from raw bits (SQLite stores NaN as NULL).
    Real(u64),
    /// Valid UTF-8 text.
    Text(String),
    /// Arbitrary bytes cast to TEXT: may be invalid UTF-8.
    RawText(Vec<u8>),
    /// A BLOB.
    Blob(Vec<u8>),
    /// A long text: a character repeated up to 256 Ki times.
    Big(char, u16, u8),
    /// `zeroblob(n)`, up to 4 MiB.
    ZeroBlob(u32),
    /// A known agent id, or a path-like one.
    Agent(u8),
    /// The last MAC this connection produced.
    LastMac,
}

/// One call.
#[derive(Debug, Clone, Arbitrary)]
pub enum Call {
    /// A function at one of its arities (or any number of arguments when
    /// `wrong_arity` is set).
    Function {
        /// Index into the function list.
        which: u8,
        /// Arguments (truncated or padded to the arity).
        args: Vec<Arg>,
        /// Call with exactly `args.len()` arguments whatever the arity.
        wrong_arity: bool,
    },
    /// An insert into a write-API view.
    Write {
        /// Index into the view list.
        which: u8,
        /// Values.
        args: Vec<Arg>,
        /// Inside BEGIN IMMEDIATE ... COMMIT.
        immediate: bool,
    },
}

const AGENTS: &[&str] = &[
    "alice",
    "bob",
    "mallory",
    "../alice",
    "",
    "al\u{131}ce",
    "a=b",
    "caf\u{e9}",
];

struct Built {
    exprs: Vec<String>,
    params: Vec<Value>,
    /// The argument as a canonical field: None for a BLOB, Some(Err) for
    /// text that is not UTF-8.
    fields: Vec<Option<Result<Expected, ()>>>,
    /// Whether the secret was passed in (then it may legitimately come back,
    /// e.g. from coord_canonical).
    has_secret: bool,
}

/// What an argument should encode as: an owned copy of its text, so that
/// the check holds nothing past its input (LeakSanitizer watches this
/// target).
enum Expected {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl Expected {
    fn as_field(&self) -> Field<'_> {
        match self {
            Expected::Null => Field::Null,
            Expected::Integer(i) => Field::Integer(*i),
            Expected::Real(f) => Field::Real(*f),
            Expected::Text(t) => Field::Text(t),
        }
    }
}

fn build(args: &[Arg], last_mac: &Option<String>) -> Built {
    let mut exprs = Vec::new();
    let mut params = Vec::new();
    let mut fields = Vec::new();
    let mut has_secret = false;
    for a in args {
        let n = params.len() + 1;
        match a {
            Arg::Null => {
                exprs.push(format!("?{n}"));
                params.push(Value::Null);
                fields.push(Some(Ok(Expected::Null)));
            }
            Arg::Int(i) => {
                exprs.push(format!("?{n}"));
                params.push(Value::Integer(*i));
                fields.push(Some(Ok(Expected::Integer(*i))));
            }
            Arg::Real(bits) => {
                let f = f64::from_bits(*bits);
                exprs.push(format!("?{n}"));
                params.push(Value::Real(f));
                // SQLite turns a NaN into NULL.
                fields.push(Some(Ok(if f.is_nan() {
                    Expected::Null
                } else {
                    Expected::Real(f)
                })));
            }
            Arg::Text(s) => {
                has_secret |= s.contains(ALICE_KEY);
                exprs.push(format!("?{n}"));
                params.push(Value::Text(s.clone()));
                fields.push(Some(Ok(Expected::Text(s.clone()))));
            }
            Arg::RawText(b) => {
                has_secret |= b
                    .windows(ALICE_KEY.len())
                    .any(|w| w == ALICE_KEY.as_bytes());
                exprs.push(format!("CAST(?{n} AS TEXT)"));
                params.push(Value::Blob(b.clone()));
                fields.push(Some(match std::str::from_utf8(b) {
                    Ok(s) => Ok(Expected::Text(s.to_owned())),
                    Err(_) => Err(()),
                }));
            }
            Arg::Blob(b) => {
                exprs.push(format!("?{n}"));
                params.push(Value::Blob(b.clone()));
                fields.push(None);
            }
            Arg::Big(c, len, mult) => {
                let count = usize::from(*len) * (usize::from(*mult % 4) + 1);
                let s: String = std::iter::repeat_n(*c, count).collect();
                exprs.push(format!("?{n}"));
                params.push(Value::Text(s.clone()));
                fields.push(Some(Ok(Expected::Text(s))));
            }
            Arg::ZeroBlob(len) => {
                exprs.push(format!("zeroblob(?{n})"));
                params.push(Value::Integer(i64::from(*len % (4 << 20))));
                fields.push(None);
            }
            Arg::Agent(i) => {
                let a = AGENTS[usize::from(*i) % AGENTS.len()];
                exprs.push(format!("?{n}"));
                params.push(Value::Text(a.to_owned()));
                fields.push(Some(Ok(Expected::Text(a.to_owned()))));
            }
            Arg::LastMac => {
                let m = last_mac.clone();
                exprs.push(format!("?{n}"));
                match m {
                    Some(m) => {
                        params.push(Value::Text(m.clone()));
                        fields.push(Some(Ok(Expected::Text(m))));
                    }
                    None => {
                        params.push(Value::Null);
                        fields.push(Some(Ok(Expected::Null)));
                    }
                }
            }
        }
    }
    Built {
        exprs,
        params,
        fields,
        has_secret,
    }
}

/// A fresh connection as a host would have it: coord registered, the
/// schema created, `alice` holding [`ALICE_KEY`].
pub fn connection() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    coord_sql::register(&conn).expect("register coord");
    conn.query_row("SELECT coord_init()", [], |_| Ok(()))
        .expect("coord_init");
    conn.query_row("SELECT coord_key_add('alice', ?1)", [ALICE_KEY], |_| Ok(()))
        .expect("key for alice");
    conn
}

fn check_error(e: &rusqlite::Error, has_secret: bool, what: &str) {
    let msg = e.to_string();
    assert!(
        !matches!(e, rusqlite::Error::UnwindingPanic) && !msg.contains("panic"),
        "{what}: a Rust panic reached SQLite: {msg}"
    );
    if !has_secret {
        assert!(!msg.contains(ALICE_KEY), "{what}: the key leaked: {msg}");
    }
}

fn select(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Value> {
    conn.query_row(sql, rusqlite::params_from_iter(params.iter()), |r| r.get(0))
}

/// Runs up to 8 calls on a fresh connection, checking after each:
/// - no Rust panic reaches SQLite, no error or result carries alice's key;
/// - coord_verify and coord_verify_status never fail for data (two or more
///   arguments) and give 0/1 or one of the five statuses;
/// - coord_canonical gives exactly the reference encoding of its
///   arguments, and fails exactly for a BLOB or non-UTF-8 text;
/// - whatever coord_sign returns verifies with coord_verify on the same
///   arguments;
/// - coord_fail always fails; a failed write leaves no transaction open;
/// - at the end, `PRAGMA integrity_check` is ok and every stored MAC reads
///   as authentic or as a key this connection no longer holds.
pub fn check_sql(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(calls) = Vec::<Call>::arbitrary(&mut u) else {
        return;
    };
    let conn = connection();
    let mut last_mac: Option<String> = None;
    let mut keys_changed = false;
    for call in calls.into_iter().take(8) {
        match call {
            Call::Function {
                which,
                mut args,
                wrong_arity,
            } => {
                let f = &FUNCTIONS[usize::from(which) % FUNCTIONS.len()];
                let (name, arity) = (f.name, f.n_arg);
                args.truncate(6);
                if arity >= 0 && !wrong_arity {
                    args.resize(arity as usize, Arg::Null);
                }
                let b = build(&args, &last_mac);
                let sql = format!("SELECT {name}({})", b.exprs.join(", "));
                let r = select(&conn, &sql, &b.params);
                if let Err(e) = &r {
                    check_error(e, b.has_secret, &sql);
                }
                if let Ok(Value::Text(t)) = &r {
                    if !b.has_secret {
                        assert!(!t.contains(ALICE_KEY), "{sql}: key in a result");
                    }
                }
                let n = args.len();
                if r.is_ok() && matches!(name, "coord_key_add" | "coord_key_remove") {
                    keys_changed = true;
                }
                match name {
                    "coord_verify" | "coord_verify_status" if n >= 2 => {
                        let v = r.unwrap_or_else(|e| panic!("{sql} failed for data: {e}"));
                        match (name, v) {
                            ("coord_verify", Value::Integer(0 | 1)) => {}
                            ("coord_verify_status", Value::Text(s))
                                if [
                                    "verified",
                                    "unsigned",
                                    "unknown_agent",
                                    "bad_mac",
                                    "retired_key",
                                ]
                                .contains(&s.as_str()) => {}
                            (_, other) => panic!("{sql} gave {other:?}"),
                        }
                    }
                    "coord_verify" | "coord_verify_status" => assert!(r.is_err(), "{sql}"),
                    "coord_fail" => assert!(r.is_err(), "coord_fail succeeded"),
                    "coord_canonical" => {
                        let want: Option<Vec<Field<'_>>> = b
                            .fields
                            .iter()
                            .map(|f| {
                                f.as_ref()
                                    .and_then(|r| r.as_ref().ok())
                                    .map(Expected::as_field)
                            })
                            .collect();
                        match (want, r) {
                            (Some(fs), Ok(Value::Text(t))) => {
                                assert_eq!(t.as_bytes(), canonical(&fs).as_slice(), "{sql}")
                            }
                            (Some(_), other) => panic!("{sql}: expected text, got {other:?}"),
                            (None, Ok(v)) => panic!("{sql}: a BLOB or bad UTF-8 encoded as {v:?}"),
                            (None, Err(_)) => {}
                        }
                    }
                    "coord_sign" | "coord_try_sign" => {
                        if let Ok(Value::Text(mac)) = r {
                            assert!(crate::reference_is_mac(&mac), "{sql} gave {mac:?}");
                            // verify(agent, mac, fields...) with the same arguments
                            let mut vexpr =
                                vec![b.exprs[0].clone(), format!("?{}", b.params.len() + 1)];
                            vexpr.extend(b.exprs[1..].iter().cloned());
                            let vsql = format!("SELECT coord_verify({})", vexpr.join(", "));
                            let mut vparams = b.params.clone();
                            vparams.push(Value::Text(mac.clone()));
                            let ok = select(&conn, &vsql, &vparams)
                                .unwrap_or_else(|e| panic!("{vsql}: {e}"));
                            assert_eq!(ok, Value::Integer(1), "{sql}: its own MAC does not verify");
                            last_mac = Some(mac);
                        }
                    }
                    _ => {}
                }
            }
            Call::Write {
                which,
                mut args,
                immediate,
            } => {
                let (view, cols) = WRITES[usize::from(which) % WRITES.len()];
                args.resize(cols, Arg::Null);
                let b = build(&args, &last_mac);
                let sql = format!("INSERT INTO {view} VALUES ({})", b.exprs.join(", "));
                if immediate {
                    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
                }
                let r = conn.execute(&sql, rusqlite::params_from_iter(b.params.iter()));
                if let Err(e) = &r {
                    check_error(e, b.has_secret, &sql);
                }
                if immediate {
                    if r.is_ok() {
                        conn.execute_batch("COMMIT").expect("commit");
                    } else {
                        conn.execute_batch("ROLLBACK").expect("rollback");
                    }
                }
                assert!(conn.is_autocommit(), "{sql} left a transaction open");
            }
        }
    }
    let ic: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok");
    // With alice's key unchanged, every MAC coord wrote reads as verified:
    // a write never stores a MAC over other fields than the row's.
    if !keys_changed {
        for table in ["coord_work", "coord_messages"] {
            let bad: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {table} WHERE hmac IS NOT NULL AND NOT verified"
                    ),
                    [],
                    |r| r.get(0),
                )
                .expect("count");
            assert_eq!(bad, 0, "{table}: a row coord signed does not verify");
        }
    }
}
