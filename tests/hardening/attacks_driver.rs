//! The hostile-database attacks of tests/hardening/attacks.json for Rust
//! hosts on rusqlite: included (`#[path]`) by tests/rusqlite-host (the
//! extension on the system SQLite 3.40) and by crates/coord-cli (coord-sql
//! on the CLI's bundled SQLite). Each attack runs with coord loaded before
//! and after the host first reads the schema, and must fail closed: the
//! forged claim reads bad_mac, alice still signs with her own key, no agent
//! is set, and nothing signed is left in the file.

use std::path::{Path, PathBuf};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use serde_json::Value;

fn spec(repo: &Path) -> Value {
    let text = std::fs::read_to_string(repo.join("tests/hardening/attacks.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn checks(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|c| (c[0].as_str().unwrap().to_owned(), c[1].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a statement to the end, rows and all.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn value(conn: &Connection, sql: &str) -> Value {
    conn.query_row(sql, [], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Integer(i) => Value::from(i),
            rusqlite::types::ValueRef::Text(t) => {
                Value::from(String::from_utf8_lossy(t).into_owned())
            }
            rusqlite::types::ValueRef::Null => Value::Null,
            other => panic!("{sql}: unexpected {other:?}"),
        })
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The functions an attacker wants a stored object to call.
const PRIVILEGED: &[&str] = &[
    "coord_key_add",
    "coord_key_remove",
    "coord_set_agent",
    "coord_try_sign",
    "coord_sign",
];

/// Opens `db` with coord loaded for planting. Newer SQLite (the CLI's
/// bundled one) refuses a DIRECTONLY function in a CHECK at CREATE time, so
/// the attacker creates each object naming a harmless stand-in and, once
/// done, edits the schema text to name coord's function (`restore`).
fn planter(db: &Path, load: &Load) -> Connection {
    let c = Connection::open(db).unwrap();
    load(&c).unwrap();
    for f in PRIVILEGED {
        let stand_in = format!("planted_{f}");
        c.create_scalar_function(
            stand_in.as_str(),
            -1,
            FunctionFlags::SQLITE_UTF8
                | FunctionFlags::SQLITE_DETERMINISTIC
                | FunctionFlags::SQLITE_INNOCUOUS,
            |_| Ok(1),
        )
        .unwrap();
    }
    c
}

fn plant(c: &Connection, statements: &[String]) {
    let restore = [
        "PRAGMA writable_schema = ON".to_owned(),
        "UPDATE sqlite_schema SET sql = replace(sql, 'planted_coord_', 'coord_')".to_owned(),
    ];
    for s in statements.iter().chain(&restore) {
        let s = PRIVILEGED.iter().fold(s.clone(), |s, f| {
            s.replace(&format!("{f}("), &format!("planted_{f}("))
        });
        run(c, &s).unwrap_or_else(|e| panic!("planting {s}: {e}"));
    }
}

/// The attacker's files for `attack` in `dir`: a coord database with the
/// forged claim and the attack's plants, and the file to attach, if any.
pub fn build(dir: &Path, spec: &Value, attack: &Value, load: &Load) -> (PathBuf, Option<PathBuf>) {
    let db = dir.join("victim.db");
    let c = planter(&db, load);
    run(&c, "SELECT coord_init()").unwrap();
    let f = &spec["forged"];
    c.execute(
        "INSERT INTO work(task_id, claimer, epoch, expires_at, status, hmac) \
         VALUES (?1, ?2, ?3, ?4, 'claimed', ?5)",
        (
            f["task_id"].as_str(),
            f["claimer"].as_str(),
            f["epoch"].as_i64(),
            f["expires_at"].as_str(),
            f["hmac"].as_str(),
        ),
    )
    .unwrap();
    let mut statements = strings(&attack["plant"]);
    if attack.get("edit").is_some() {
        statements.push("PRAGMA writable_schema = ON".into());
        statements.extend(strings(&attack["edit"]));
    }
    plant(&c, &statements);
    drop(c);
    let evil = attack.get("attach_plant").map(|statements| {
        let evil = dir.join("evil.db");
        plant(&planter(&evil, load), &strings(statements));
        evil
    });
    (db, evil)
}

/// How a host puts coord on a connection.
pub type Load = dyn Fn(&Connection) -> rusqlite::Result<()>;

/// Runs every attack in both orders on connections `load` puts coord on;
/// panics on the first one that does not fail closed. Returns one line per
/// attack and order saying how it was stopped.
pub fn every_attack_fails_closed(repo: &Path, host: &str, load: &Load) -> Vec<String> {
    let spec = spec(repo);
    let refusal: Vec<&str> = spec["refusal"].as_str().unwrap().split('|').collect();
    // Key lookup for this process: alice's key from the environment only.
    // (Callers run this as the only test of their binary, so nothing else
    // reads the environment meanwhile.)
    std::env::remove_var("COORDINATION_SECRETS_DIR");
    std::env::remove_var("COORDINATION_AGENT");
    std::env::set_var(
        "COORDINATION_SECRET_ALICE",
        spec["alice_key"].as_str().unwrap(),
    );
    let tmp = std::env::temp_dir().join(format!("coord-attacks-{host}-{}", std::process::id()));
    let mut report = Vec::new();
    for attack in spec["attacks"].as_array().unwrap() {
        let name = attack["name"].as_str().unwrap();
        let mut loaded_once = false;
        for order in ["schema_first", "coord_first"] {
            let dir = tmp.join(format!("{name}-{order}"));
            std::fs::create_dir_all(&dir).unwrap();
            let (db, evil) = build(&dir, &spec, attack, load);
            let conn = Connection::open(&db).unwrap();
            let attach = |conn: &Connection| match &evil {
                Some(evil) => conn
                    .execute("ATTACH ?1 AS evil", [evil.to_str().unwrap()])
                    .map(|_| ()),
                None => Ok(()),
            };
            if order == "schema_first" {
                attach(&conn).unwrap();
                run(&conn, "SELECT count(*) FROM sqlite_schema").unwrap();
            }
            if let Err(e) = load(&conn) {
                // Fails closed: coord will not load on a schema SQLite calls
                // malformed, so nothing can sign.
                assert!(
                    e.to_string().contains("malformed database schema"),
                    "{name}: {e}"
                );
                report.push(format!("attack {host} {name:48} {order}: load refused"));
                continue;
            }
            loaded_once = true;
            if order == "coord_first" {
                if let Err(e) = attach(&conn) {
                    // Fails closed the same way: SQLite (newer than 3.40)
                    // refuses the attached schema once coord is registered.
                    assert!(
                        e.to_string().contains("malformed database schema"),
                        "{name}: {e}"
                    );
                    report.push(format!("attack {host} {name:48} {order}: attach refused"));
                    continue;
                }
            }
            let mut errors = Vec::new();
            for s in strings(&attack["victim"]) {
                if let Err(e) = run(&conn, &s) {
                    errors.push(e.to_string());
                }
            }
            for e in &errors {
                assert!(!e.contains(spec["alice_key"].as_str().unwrap()));
                assert!(!e.contains(spec["evil_key"].as_str().unwrap()));
            }
            let hit: Vec<&str> = refusal
                .iter()
                .copied()
                .filter(|p| errors.iter().any(|e| e.contains(p)))
                .collect();
            if attack["refused"].as_bool() == Some(true) {
                assert!(!hit.is_empty(), "{name} {order}: no refusal in {errors:?}");
            }
            for (sql, want) in checks(&spec["generic_checks"])
                .into_iter()
                .chain(checks(&attack["checks"]))
            {
                assert_eq!(value(&conn, &sql), want, "{name} {order}: {sql}");
            }
            drop(conn);
            let raw = Connection::open(&db).unwrap();
            for (sql, want) in checks(&attack["raw_checks"]) {
                assert_eq!(value(&raw, &sql), want, "{name} {order}: {sql}");
            }
            report.push(format!(
                "attack {host} {name:48} {order}: {}",
                hit.join("; ")
            ));
        }
        assert!(
            loaded_once,
            "{name}: coord never loaded, so nothing was tried"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    report
}
