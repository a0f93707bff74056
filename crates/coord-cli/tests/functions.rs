//! coord-sql's function table against what a connection really has: every
//! function `register` adds is listed in `coord_sql::FUNCTIONS` with its
//! number of arguments and the flags its access asks for, nothing listed is
//! missing, and `unregister` removes them all. Here because this
//! workspace links a real (bundled) SQLite; the extension's does not.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

/// The flags pragma_function_list shows that a function's access decides.
const ACCESS_FLAGS: i64 = (FunctionFlags::SQLITE_DETERMINISTIC.bits()
    | FunctionFlags::SQLITE_DIRECTONLY.bits()
    | FunctionFlags::SQLITE_INNOCUOUS.bits()) as i64;

fn registered(conn: &Connection) -> Vec<(String, i32, i64)> {
    let mut st = conn
        .prepare(
            "SELECT DISTINCT name, narg, flags & ?1 FROM pragma_function_list
              WHERE name LIKE 'coord%' ORDER BY name, narg",
        )
        .unwrap();
    st.query_map([ACCESS_FLAGS], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn the_function_table_is_what_register_adds() {
    let conn = Connection::open_in_memory().unwrap();
    coord_sql::register(&conn).unwrap();
    let mut got = registered(&conn);
    // the write API's three signers (claim, message, event), named at
    // random per connection
    let signers: Vec<_> = got
        .iter()
        .filter(|(n, _, _)| n.starts_with("coord_try_sign_"))
        .cloned()
        .collect();
    assert_eq!(signers.len(), 3, "{signers:?}");
    assert!(signers
        .iter()
        .all(|(n, a, f)| *a == if n.ends_with("_event") { 7 } else { 4 }
            && n.len() > "coord_try_sign_".len() + 32
            && *f == i64::from(coord_sql::Access::Direct.flags().bits()) & ACCESS_FLAGS));
    got.retain(|s| !signers.contains(s));
    let mut want: Vec<(String, i32, i64)> = coord_sql::FUNCTIONS
        .iter()
        .map(|f| {
            let flags = i64::from(f.access.flags().bits()) & ACCESS_FLAGS;
            (f.name.to_owned(), f.n_arg, flags)
        })
        .collect();
    want.sort();
    assert_eq!(got, want);

    // and unregister takes every one of them away again
    coord_sql::unregister(&conn);
    let left = registered(&conn);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_typed_handle_and_the_sql_functions_share_one_state() {
    let conn = Connection::open_in_memory().unwrap();
    let sql_agent = |c: &Connection| -> Option<String> {
        c.query_row("SELECT coord_agent()", [], |r| r.get(0))
            .unwrap()
    };
    // Agent::Set decides alone: the environment is not read
    std::env::set_var("COORDINATION_AGENT", "from-env");
    let h = coord_sql::register_with(
        &conn,
        coord_sql::Options {
            agent: coord_sql::Agent::Set(Some("bob".into())),
        },
    )
    .unwrap();
    std::env::remove_var("COORDINATION_AGENT");
    assert_eq!(sql_agent(&conn).as_deref(), Some("bob"));
    h.set_agent(Some("alice")).unwrap();
    assert_eq!(sql_agent(&conn).as_deref(), Some("alice"));
    conn.query_row("SELECT coord_set_agent('carol')", [], |_| Ok(()))
        .unwrap();
    assert_eq!(h.agent().as_deref(), Some("carol"));
    assert!(h.set_agent(Some("../x")).is_err());
    assert_eq!(
        h.agent().as_deref(),
        Some("carol"),
        "a refused id changes nothing"
    );

    // keys: what SQL adds, the handle sees, and both report the same
    let nobody = h.key_status("nobody-here");
    assert!(!nobody.can_sign() && !h.can_sign("nobody-here"));
    assert!(
        nobody.reason().is_some_and(|r| r.contains("nobody-here")),
        "{nobody:?}"
    );
    conn.query_row(
        "SELECT coord_key_add('alice', 'alice-secret-0123456789abcdef0123456789abcdef')",
        [],
        |_| Ok(()),
    )
    .unwrap();
    assert!(h.can_sign("alice"));
    let typed = h.key_status("alice");
    assert_eq!(typed.reason(), None);
    let sql: String = conn
        .query_row("SELECT coord_key_status('alice')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&sql).unwrap(),
        typed.to_json()
    );
    assert!(!sql.contains("alice-secret"), "never the key");
}
