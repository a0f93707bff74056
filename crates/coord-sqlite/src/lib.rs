//! coord as a SQLite loadable extension (`libcoord.so`).
//!
//! Loading registers coord's functions and creates its TEMP views and write
//! API on the loading connection; it writes nothing to the database file.
//! `SELECT coord_init()` creates or migrates the persistent schema.

use std::os::raw::{c_char, c_int};

use rusqlite::{ffi, Connection};

/// Entry point that SQLite finds from the file name `libcoord.so`.
///
/// # Safety
/// Called by SQLite's extension loader with a valid connection handle, an
/// error-message out pointer and the API routines table.
#[no_mangle]
pub unsafe extern "C" fn sqlite3_coord_init(
    db: *mut ffi::sqlite3,
    pz_err_msg: *mut *mut c_char,
    p_api: *mut ffi::sqlite3_api_routines,
) -> c_int {
    // No panic may cross into the host: catch it and report an error.
    std::panic::catch_unwind(|| {
        // SAFETY: arguments come straight from SQLite's loader, as
        // extension_init2 requires.
        unsafe { Connection::extension_init2(db, pz_err_msg, p_api, init) }
    })
    .unwrap_or(ffi::SQLITE_ERROR)
}

fn init(conn: Connection) -> rusqlite::Result<bool> {
    coord_sql::register(&conn)?;
    // false: an ordinary extension, unloaded with its connection's process.
    Ok(false)
}
