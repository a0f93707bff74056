//! `coord keygen`: modes, refusal to overwrite, rotation that keeps old
//! rows verifiable.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{by, Env};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn writes_a_private_hex_key_and_never_prints_it() {
    let e = Env::new();
    let v = e.json(0, &["keygen", "alice"]);
    let path = e.secrets.join("alice.secret");
    assert_eq!(v["path"], path.display().to_string());
    assert_eq!(mode(&e.secrets), 0o700);
    assert_eq!(mode(&path), 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    let hex = key.trim_end();
    assert_eq!(hex.len(), 64, "{hex:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(hex, "0".repeat(64));
    // Neither output form contains the key.
    assert!(!v.to_string().contains(hex));
    let out = e.ok(&["keygen", "bob"]);
    let bob = std::fs::read_to_string(e.secrets.join("bob.secret")).unwrap();
    assert!(
        !out.contains(bob.trim_end()) && out.contains("bob.secret"),
        "{out}"
    );
    assert_ne!(bob, key, "two keys are different");
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&e.secrets)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // The key signs.
    let r = e.json(0, &["--as", "alice", "claim", "t"]);
    assert_eq!(r["signed"], true);
}

#[test]
fn tightens_an_open_directory_and_refuses_bad_ids() {
    let e = Env::new();
    std::fs::create_dir(&e.secrets).unwrap();
    std::fs::set_permissions(&e.secrets, std::fs::Permissions::from_mode(0o755)).unwrap();
    e.ok(&["keygen", "alice"]);
    assert_eq!(mode(&e.secrets), 0o700);
    for bad in ["../alice", "a/b", ""] {
        e.fails(2, &["keygen", bad]);
    }
}

#[test]
fn refuses_to_overwrite_without_rotate() {
    let e = Env::new();
    e.ok(&["keygen", "alice"]);
    let path = e.secrets.join("alice.secret");
    let before = std::fs::read(&path).unwrap();
    let err = e.fails(1, &["keygen", "alice"]);
    assert!(
        err.contains("--rotate") && err.contains("alice.secret"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!e.secrets.join("alice.retired").exists());
}

#[test]
fn rotation_keeps_old_rows_verifiable() {
    let e = Env::new();
    e.ok(&["keygen", "alice"]);
    let path = e.secrets.join("alice.secret");
    let old = std::fs::read(&path).unwrap();
    e.ok(&["--as", "alice", "claim", "before"]);
    e.ok(&["--as", "alice", "send", "old message"]);

    let v = e.json(0, &["keygen", "--rotate", "alice"]);
    let retired = std::path::PathBuf::from(v["retired"].as_str().unwrap());
    let rdir = e.secrets.join("alice.retired");
    assert_eq!(retired.parent().unwrap(), rdir);
    assert!(retired.extension().is_some_and(|x| x == "secret"));
    assert_eq!(mode(&rdir), 0o700);
    assert_eq!(mode(&retired), 0o600);
    assert_eq!(std::fs::read(&retired).unwrap(), old);
    assert_ne!(std::fs::read(&path).unwrap(), old);
    assert_eq!(mode(&path), 0o600);

    e.ok(&["--as", "alice", "claim", "after"]);
    let rows = e.json(0, &["list"]);
    assert_eq!(
        by(&rows, "task_id", "before")["verification"],
        "retired_key"
    );
    assert_eq!(by(&rows, "task_id", "before")["verified"], true);
    assert_eq!(by(&rows, "task_id", "after")["verification"], "verified");
    let msgs = e.json(0, &["inbox", "--all"]);
    assert_eq!(msgs[0]["verification"], "retired_key");
    // A second rotation in the same second keeps both old keys.
    e.ok(&["keygen", "--rotate", "alice"]);
    e.ok(&["keygen", "--rotate", "alice"]);
    assert_eq!(std::fs::read_dir(&rdir).unwrap().count(), 3);
    let rows = e.json(0, &["list"]);
    assert_eq!(
        by(&rows, "task_id", "before")["verification"],
        "retired_key"
    );
    assert_eq!(by(&rows, "task_id", "after")["verification"], "retired_key");
    let a = e.json(0, &["audit"]);
    assert_eq!(a["ok"], true);

    // A refused old key is not rotated into a useless retired file.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = e.fails(2, &["keygen", "--rotate", "alice"]);
    assert!(err.contains("chmod 600"), "{err}");
    assert_eq!(std::fs::read_dir(&rdir).unwrap().count(), 3);
}

#[test]
fn directory_is_the_first_that_coord_keys_searches() {
    let e = Env::empty();
    let repo = e.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    let o = e
        .cmd(&["keygen", "alice"])
        .env_remove("COORDINATION_SECRETS_DIR")
        .current_dir(repo.join("sub"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(mode(&repo.join("secrets/coordination/alice.secret")), 0o600);
    let plain = e.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let o = e
        .cmd(&["keygen", "bob"])
        .env_remove("COORDINATION_SECRETS_DIR")
        .current_dir(&plain)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(plain.join("secrets/coordination/bob.secret").exists());
}
