//! The hostile-database attacks (tests/hardening/attacks_driver.rs) on the
//! CLI's bundled SQLite, coord registered by coord-sql as the CLI does, in
//! both orders. Its own test binary: the driver sets this process's
//! environment (alice's key).
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

#[path = "../../../tests/hardening/attacks_driver.rs"]
mod attacks_driver;

#[test]
fn every_attack_fails_closed_on_the_bundled_sqlite_in_both_orders() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let report = attacks_driver::every_attack_fails_closed(&repo, "bundled", &|conn| {
        coord_sql::register(conn).map(|_| ())
    });
    eprintln!("{}", report.join("\n"));
}
