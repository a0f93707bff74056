//! Keeps coord's TEMP objects in force: a SQLite authorizer.
//!
//! coord's verifying views and write API live in each connection's TEMP
//! schema, which SQLite searches before `main` and which nothing stored in a
//! database file can write. Two things could still put objects from a file
//! in their place, and the authorizer refuses both:
//! - `PRAGMA temp_store = ...` drops the whole TEMP schema when it changes
//!   the setting; then an unqualified `coord_work` or `coord_claim` would
//!   resolve to a look-alike planted in `main`. Setting it is refused
//!   ("not authorized") once coord is registered: set it before loading.
//! - a table or view named like one of coord's TEMP objects in `main` or an
//!   attached database is never read or written, so even if TEMP were gone
//!   (a host resetting it through the C API), a planted `coord_work` saying
//!   every row is verified is refused instead of believed.
//!
//! SQLite allows one authorizer per connection: a host that installs its own
//! after loading coord replaces this one (SECURITY.md says so).

use std::os::raw::{c_char, c_int, c_void};

use rusqlite::ffi;
use rusqlite::Connection;

/// Names of coord's TEMP objects; the same names in any other schema are
/// refused.
pub(crate) const TEMP_NAMES: &[&str] = &[
    "coord_work",
    "coord_messages",
    "coord_inbox",
    "coord_log",
    "coord_checkpoint_log",
    "coord_result",
    "coord_claim",
    "coord_complete",
    "coord_abandon",
    "coord_submit",
    "coord_send",
];

/// Installs the authorizer on `conn`.
pub(crate) fn install(conn: &Connection) {
    // SAFETY: `conn.handle()` is the live connection we are registering on;
    // `authorize` is a plain function that keeps no state, so the null user
    // pointer is never dereferenced.
    unsafe {
        ffi::sqlite3_set_authorizer(conn.handle(), Some(authorize), std::ptr::null_mut());
    }
}

/// Removes the authorizer (when registering fails and the library may be
/// unloaded: no pointer into it may stay behind).
pub(crate) fn remove(conn: &Connection) {
    // SAFETY: as in `install`; a NULL callback removes the authorizer.
    unsafe {
        ffi::sqlite3_set_authorizer(conn.handle(), None, std::ptr::null_mut());
    }
}

/// The decision on one access; see the module comment.
pub(crate) fn decide(
    action: c_int,
    arg1: Option<&[u8]>,
    arg2: Option<&[u8]>,
    db: Option<&[u8]>,
) -> bool {
    match action {
        ffi::SQLITE_PRAGMA => {
            !(arg1.is_some_and(|p| p.eq_ignore_ascii_case(b"temp_store")) && arg2.is_some())
        }
        ffi::SQLITE_READ | ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => {
            let outside_temp = db.is_some_and(|d| !d.eq_ignore_ascii_case(b"temp"));
            !(outside_temp
                && arg1.is_some_and(|t| {
                    TEMP_NAMES
                        .iter()
                        .any(|n| t.eq_ignore_ascii_case(n.as_bytes()))
                }))
        }
        _ => true,
    }
}

unsafe extern "C" fn authorize(
    _user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    db: *const c_char,
    _accessor: *const c_char,
) -> c_int {
    // SAFETY: SQLite passes NUL-terminated strings or NULL, valid for the
    // duration of this call.
    let text = |p: *const c_char| {
        (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
    };
    // No panic may cross into SQLite; a panic refuses.
    match std::panic::catch_unwind(|| decide(action, text(arg1), text(arg2), text(db))) {
        Ok(true) => ffi::SQLITE_OK,
        _ => ffi::SQLITE_DENY,
    }
}

#[cfg(test)]
mod tests {
    use super::decide;
    use rusqlite::ffi;

    #[test]
    fn refuses_temp_store_changes_and_look_alikes_outside_temp() {
        assert!(!decide(
            ffi::SQLITE_PRAGMA,
            Some(b"temp_store"),
            Some(b"memory"),
            None
        ));
        assert!(!decide(
            ffi::SQLITE_PRAGMA,
            Some(b"TEMP_STORE"),
            Some(b"0"),
            Some(b"main")
        ));
        assert!(decide(ffi::SQLITE_PRAGMA, Some(b"temp_store"), None, None));
        assert!(decide(
            ffi::SQLITE_PRAGMA,
            Some(b"journal_mode"),
            Some(b"wal"),
            None
        ));
        for action in [
            ffi::SQLITE_READ,
            ffi::SQLITE_INSERT,
            ffi::SQLITE_UPDATE,
            ffi::SQLITE_DELETE,
        ] {
            assert!(!decide(
                action,
                Some(b"coord_work"),
                Some(b"verified"),
                Some(b"main")
            ));
            assert!(!decide(action, Some(b"COORD_CLAIM"), None, Some(b"evil")));
            assert!(decide(
                action,
                Some(b"coord_work"),
                Some(b"verified"),
                Some(b"temp")
            ));
            assert!(decide(action, Some(b"work"), Some(b"hmac"), Some(b"main")));
        }
        assert!(decide(ffi::SQLITE_SELECT, None, None, None));
    }
}
