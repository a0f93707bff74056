//! Hostile key files and agent ids: every one refused with a clear reason,
//! none leaking key bytes into an error or a report.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coord_core::SecretKey;
use coord_keys::{read_key_file, Environment, FileError, KeySource, Lookup, MAX_KEY_FILE_LEN};

const ALICE: &[u8] = b"alice-key-do-not-leak-0123456789abcdef0123";
const BOB: &[u8] = b"bob-key-do-not-leak-0123456789abcdef012345";

fn write(path: &Path, body: &[u8], mode: u32) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn fp(key: &[u8]) -> String {
    SecretKey::new(key).unwrap().fingerprint()
}

/// Key bytes never appear in what coord shows about a refusal.
fn assert_no_leak(shown: &str) {
    for k in [ALICE, BOB] {
        let k = std::str::from_utf8(k).unwrap();
        assert!(!shown.contains(&k[..16]), "key bytes in {shown}");
    }
}

fn refused(path: &Path) -> FileError {
    let e = read_key_file(path).expect_err("must be refused");
    assert_no_leak(&format!("{e} {e:?}"));
    e
}

struct Env {
    vars: HashMap<String, String>,
    dir: PathBuf,
}

impl Environment for Env {
    fn var(&self, name: &str) -> Option<OsString> {
        if name == "COORDINATION_SECRETS_DIR" {
            return Some(self.dir.clone().into_os_string());
        }
        self.vars.get(name).map(OsString::from)
    }
    fn current_dir(&self) -> Option<PathBuf> {
        None
    }
}

fn lookup(dir: &Path, vars: &[(&str, &[u8])]) -> Lookup<Env> {
    Lookup::new(Env {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), String::from_utf8(v.to_vec()).unwrap()))
            .collect(),
        dir: dir.to_owned(),
    })
}

fn secrets() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("secrets");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    write(&dir.join("alice.secret"), ALICE, 0o600);
    (t, dir)
}

#[test]
fn symlinks_to_another_key_dev_zero_and_a_fifo() {
    let (_t, dir) = secrets();
    let fifo = dir.join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for (name, target) in [
        ("bob", dir.join("alice.secret")),
        ("zero", PathBuf::from("/dev/zero")),
        ("fifo", fifo.clone()),
        ("dangling", dir.join("nowhere")),
        ("loop", dir.join("loop.secret")),
    ] {
        let link = dir.join(format!("{name}.secret"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = refused(&link);
        assert!(matches!(e, FileError::Symlink { .. }), "{name}: {e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let r = lookup(&dir, &[]).resolve(name);
        assert!(r.keys.is_none(), "{name} got a key through a link");
        let why = r.report.reason();
        assert!(why.contains("symbolic link"), "{why}");
        assert_no_leak(&r.report.to_json().to_string());
    }
    // The FIFO itself, not through a link: refused without blocking.
    let e = refused(&fifo);
    assert!(matches!(e, FileError::NotRegular { .. }), "{e}");
}

#[test]
fn directories_devices_empty_and_huge_files() {
    let (_t, dir) = secrets();
    std::fs::create_dir(dir.join("dir.secret")).unwrap();
    let e = refused(&dir.join("dir.secret"));
    assert!(matches!(e, FileError::NotRegular { .. }), "{e}");
    assert!(e.to_string().contains("not a regular file"));
    let e = refused(Path::new("/dev/null"));
    assert!(
        matches!(e, FileError::NotRegular { .. } | FileError::Owner { .. }),
        "{e}"
    );

    write(&dir.join("empty.secret"), b"", 0o600);
    let e = refused(&dir.join("empty.secret"));
    assert!(e.to_string().contains("0 bytes; at least 32"), "{e}");
    write(&dir.join("blank.secret"), b" \n\t\r\n  ", 0o600);
    assert!(refused(&dir.join("blank.secret"))
        .to_string()
        .contains("0 bytes"));
    write(&dir.join("short.secret"), &ALICE[..31], 0o600);
    assert!(refused(&dir.join("short.secret"))
        .to_string()
        .contains("31 bytes"));

    // Exactly the limit is read; one byte more is refused.
    let mut body = ALICE.to_vec();
    body.resize(MAX_KEY_FILE_LEN as usize, b' ');
    write(&dir.join("limit.secret"), &body, 0o600);
    assert_eq!(
        read_key_file(&dir.join("limit.secret"))
            .unwrap()
            .fingerprint(),
        fp(ALICE)
    );
    body.push(b' ');
    write(&dir.join("over.secret"), &body, 0o600);
    let e = refused(&dir.join("over.secret"));
    assert!(matches!(e, FileError::TooLarge { len: 4097, .. }), "{e}");
    // A sparse terabyte file is refused from its size, unread.
    let huge = dir.join("huge.secret");
    write(&huge, ALICE, 0o600);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let e = refused(&huge);
    assert!(
        matches!(e, FileError::TooLarge { len, .. } if len == 1 << 40),
        "{e}"
    );
}

#[test]
fn every_group_or_other_read_or_write_bit_is_refused() {
    let (_t, dir) = secrets();
    let p = dir.join("m.secret");
    let mut tried = 0;
    for low in 0..0o100u32 {
        let mode = 0o600 | low;
        write(&p, ALICE, mode);
        let r = read_key_file(&p);
        if low & 0o066 != 0 {
            let e = r.expect_err("group/other rw bit");
            assert!(
                matches!(e, FileError::Permissions { mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
            assert_no_leak(&format!("{e} {e:?}"));
        } else {
            // only execute bits: no one else can read or write it
            assert_eq!(r.unwrap().fingerprint(), fp(ALICE), "{mode:o}");
        }
        tried += 1;
    }
    assert_eq!(tried, 64);
    write(&p, ALICE, 0o400);
    assert!(read_key_file(&p).is_ok(), "read-only for the owner is fine");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    let (_t, dir) = secrets();
    let me = rustix::process::geteuid().as_raw();
    let p = if me == 0 {
        let p = dir.join("other.secret");
        write(&p, ALICE, 0o600);
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        p
    } else {
        // not root: a root-owned file is another user's
        PathBuf::from("/etc/passwd")
    };
    let e = refused(&p);
    assert!(
        matches!(e, FileError::Owner { me: m, .. } if m == me),
        "{e}"
    );
    assert!(e.to_string().contains("owned by uid"), "{e}");
}

#[test]
fn a_key_file_swapped_between_check_and_read_never_yields_another_key() {
    // A racer keeps replacing bob.secret (atomically, by rename) with a
    // symlink to alice's key and with a world-readable file holding a key
    // of its own; coord opens once with O_NOFOLLOW and checks the open
    // file, so a read gives bob's key or a refusal, never another key.
    let (_t, dir) = secrets();
    let bob = dir.join("bob.secret");
    write(&bob, BOB, 0o600);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let link = dir.join("tmp-link");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(dir.join("alice.secret"), &link).unwrap();
                std::fs::rename(&link, dir.join("bob.secret")).unwrap();
                let open = dir.join("tmp-open");
                write(
                    &open,
                    b"an-open-key-anyone-can-read-0123456789abcdef",
                    0o644,
                );
                std::fs::rename(&open, dir.join("bob.secret")).unwrap();
                let good = dir.join("tmp-good");
                write(&good, BOB, 0o600);
                std::fs::rename(&good, dir.join("bob.secret")).unwrap();
                swaps += 3;
            }
            swaps
        })
    };
    let (mut ok, mut link, mut mode) = (0, 0, 0);
    let want = fp(BOB);
    for _ in 0..5000 {
        match read_key_file(&bob) {
            Ok(k) => {
                assert_eq!(k.fingerprint(), want, "read a key that was not safe");
                ok += 1;
            }
            Err(FileError::Symlink { .. }) => link += 1,
            Err(FileError::Permissions { .. }) => mode += 1,
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("swap race: {swaps} swaps; 5000 reads: {ok} bob, {link} symlink, {mode} mode");
    assert!(swaps > 0 && ok > 0);
}

#[test]
fn path_traversal_ids_never_reach_a_file() {
    let (t, dir) = secrets();
    // a key just outside the secrets directory
    write(&t.path().join("outside.secret"), BOB, 0o600);
    let l = lookup(&dir, &[]);
    for id in [
        "../outside",
        "..",
        "./../outside",
        "x/../../outside",
        "/etc/passwd",
        "..\\outside",
        "outside\0",
        "a\nb",
        "\u{1b}[31m",
        "",
    ] {
        let r = l.resolve(id);
        assert!(r.keys.is_none(), "{id:?}");
        let why = r.report.reason();
        assert!(why.starts_with("invalid agent id"), "{id:?}: {why}");
        assert!(r.report.source.is_none(), "{id:?} reached a source");
    }
    let long = "a".repeat(257);
    assert!(l.resolve(&long).report.reason().contains("at most 256"));
}

#[test]
fn unicode_look_alikes_never_get_alices_key() {
    let (_t, dir) = secrets();
    let with_env = lookup(&dir, &[("COORDINATION_SECRET_ALICE", ALICE)]);
    let files_only = lookup(&dir, &[]);
    assert_eq!(with_env.resolve("alice").report.current, Ok(fp(ALICE)));
    assert_eq!(files_only.resolve("alice").report.current, Ok(fp(ALICE)));
    let look_alikes = [
        "\u{430}lice",                              // Cyrillic a
        "al\u{131}ce",                              // dotless i: Unicode upper-cases it to ALICE
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", // fullwidth
        "alice\u{200b}",                            // zero-width space (refused as an id)
        "\u{202e}ecila",                            // right-to-left override
        "alic\u{65}\u{301}",                        // e + combining acute
        "alice ",
        "Alice",
        "\u{2025}\u{2215}alice", // two-dot leader, division slash
    ];
    let mut checked = 0;
    for id in look_alikes {
        for (which, l) in [("env", &with_env), ("files", &files_only)] {
            let r = l.resolve(id);
            let got = r
                .keys
                .as_ref()
                .and_then(|k| k.current.as_ref())
                .map(coord_core::SecretKey::fingerprint);
            if which == "env" && id == "Alice" {
                // gptme's env rule maps ASCII ids that differ only in case
                // or punctuation to one variable, on purpose (SECURITY.md).
                assert_eq!(got, Some(fp(ALICE)));
                let warning = r.report.to_json()["warning"].as_str().unwrap().to_owned();
                assert!(warning.contains("COORDINATION_SECRET_ALICE is read by every agent id"));
                continue;
            }
            assert_ne!(got, Some(fp(ALICE)), "{which}: {id:?} got alice's key");
            assert_no_leak(&r.report.to_json().to_string());
            if let Some(KeySource::File(p)) = &r.report.source {
                assert_eq!(p.parent(), Some(dir.as_path()), "{id:?} left the directory");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * look_alikes.len() - 1);
}
