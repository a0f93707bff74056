//! The hostile-database attacks through rusqlite on the system SQLite
//! (3.40), with the built extension loaded (tests/hardening/attacks_driver.rs).

use std::path::PathBuf;

use rusqlite::{Connection, LoadExtensionGuard};

#[path = "../../hardening/attacks_driver.rs"]
mod attacks_driver;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(conn: &Connection) -> rusqlite::Result<()> {
    let ext = std::env::var("COORD_EXT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target/release/libcoord"));
    // SAFETY: loading our own extension, built from this repository.
    unsafe {
        let _guard = LoadExtensionGuard::new(conn)?;
        conn.load_extension(&ext, None::<&str>)
    }
}

#[test]
fn every_attack_fails_closed_in_both_orders() {
    let report = attacks_driver::every_attack_fails_closed(&repo(), "rusqlite", &load);
    eprintln!("{}", report.join("\n"));
}
