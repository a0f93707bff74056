//! rusqlite on the system SQLite loads the built extension and signs,
//! verifies and claims through it exactly as the vectors say.

use std::path::PathBuf;

use rusqlite::{params_from_iter, Connection, LoadExtensionGuard};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn open() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    let ext = std::env::var("COORD_EXT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/release/libcoord"));
    // SAFETY: loading our own extension, built from this repository.
    unsafe {
        let _guard = LoadExtensionGuard::new(&conn).unwrap();
        conn.load_extension(&ext, None::<&str>)
            .unwrap_or_else(|e| panic!("load {}: {e}", ext.display()));
    }
    conn
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::String(s) => V::Text(s.clone()),
        Value::Number(n) if n.is_i64() => V::Integer(n.as_i64().unwrap()),
        Value::Number(n) => V::Real(n.as_f64().unwrap()),
        other => panic!("unexpected field {other}"),
    }
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("tests/vectors.json")).unwrap())
        .unwrap()
}

#[test]
fn host_is_sqlite_3_40_or_later() {
    let conn = open();
    let v: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .unwrap();
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts[0] == 3 && parts[1] >= 40, "{v}");
    let cv: String = conn
        .query_row("SELECT coord_version()", [], |r| r.get(0))
        .unwrap();
    assert!(!cv.is_empty());
}

#[test]
fn every_vector_through_sql() {
    let v = vectors();
    let conn = open();
    for (agent, k) in v["keys"].as_object().unwrap() {
        for old in k
            .get("retired")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            conn.query_row(
                "SELECT coord_key_add(?1, ?2, 'retired')",
                [agent, old.as_str().unwrap()],
                |_| Ok(()),
            )
            .unwrap();
        }
        conn.query_row(
            "SELECT coord_key_add(?1, ?2)",
            [agent, k["current"].as_str().unwrap()],
            |_| Ok(()),
        )
        .unwrap();
    }
    for case in v["sign"].as_array().unwrap() {
        let fields = case["fields"].as_array().unwrap();
        let marks: String = fields.iter().map(|_| ", ?").collect();
        let mut args = vec![to_sql(&case["agent"])];
        args.extend(fields.iter().map(to_sql));
        let mac: String = conn
            .query_row(
                &format!("SELECT coord_sign(?{marks})"),
                params_from_iter(args),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            mac,
            case["mac"].as_str().unwrap(),
            "{}",
            case["description"]
        );
    }
    for case in v["verify"].as_array().unwrap() {
        let fields = case["fields"].as_array().unwrap();
        let marks: String = fields.iter().map(|_| ", ?").collect();
        let mut args = vec![to_sql(&case["agent"]), to_sql(&case["mac"])];
        args.extend(fields.iter().map(to_sql));
        let st: String = conn
            .query_row(
                &format!("SELECT coord_verify_status(?, ?{marks})"),
                params_from_iter(args),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            st,
            case["status"].as_str().unwrap(),
            "{}",
            case["description"]
        );
    }
}

#[test]
fn claims_and_errors_through_rusqlite() {
    let conn = open();
    conn.query_row("SELECT coord_init()", [], |_| Ok(()))
        .unwrap();
    conn.query_row(
        "SELECT coord_key_add('alice', ?1)",
        [&"a".repeat(40)],
        |_| Ok(()),
    )
    .unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO coord_claim VALUES ('t', 'alice', 5);")
        .unwrap();
    let (outcome, epoch): (String, i64) = conn
        .query_row("SELECT outcome, epoch FROM coord_result", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    assert_eq!((outcome.as_str(), epoch), ("granted", 1));
    let st: String = conn
        .query_row("SELECT verification FROM coord_work", [], |r| r.get(0))
        .unwrap();
    assert_eq!(st, "verified");
    let err = conn
        .query_row("SELECT coord_sign('nobody', 1)", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("cannot sign as 'nobody'"), "{err}");
    let err = conn
        .query_row("SELECT coord_key_add('x', 'short')", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("at least 32"), "{err}");
}
