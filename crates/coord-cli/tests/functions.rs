//! coord-sql's function table against what a connection really has: every
//! function `register` adds is listed in `coord_sql::FUNCTIONS` with its
//! number of arguments, and nothing listed is missing. Here because this
//! workspace links a real (bundled) SQLite; the extension's does not.

use rusqlite::Connection;

fn registered(conn: &Connection) -> Vec<(String, i32)> {
    let mut st = conn
        .prepare(
            "SELECT DISTINCT name, narg FROM pragma_function_list
              WHERE name LIKE 'coord%' ORDER BY name, narg",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn the_function_table_is_what_register_adds() {
    let conn = Connection::open_in_memory().unwrap();
    coord_sql::register(&conn).unwrap();
    let mut got = registered(&conn);
    // the write API's two signers, named at random per connection
    let signers: Vec<_> = got
        .iter()
        .filter(|(n, _)| n.starts_with("coord_try_sign_"))
        .cloned()
        .collect();
    assert_eq!(signers.len(), 2, "{signers:?}");
    assert!(signers
        .iter()
        .all(|(n, a)| *a == 4 && n.len() > "coord_try_sign_".len() + 32));
    got.retain(|s| !signers.contains(s));
    let mut want: Vec<(String, i32)> = coord_sql::FUNCTIONS
        .iter()
        .map(|(n, a)| ((*n).to_owned(), *a))
        .collect();
    want.sort();
    assert_eq!(got, want);

    // and unregister takes every one of them away again
    coord_sql::unregister(&conn);
    let left = registered(&conn);
    assert!(
        left.iter().all(|(n, _)| n.starts_with("coord_try_sign_")),
        "{left:?}"
    );
}
