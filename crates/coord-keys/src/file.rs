//! Reading one key file, refusing it the way ssh refuses a private key.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use coord_core::{KeyError, SecretKey};
use rustix::fs::{Mode, OFlags};
use thiserror::Error;
use zeroize::Zeroizing;

/// Key files larger than this are refused unread (a key is tens of bytes).
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// Why a key file was refused. Names the file and the reason, never its bytes.
#[derive(Debug, Error)]
pub enum FileError {
    /// The path is a symbolic link; keys are never read through links.
    #[error("{path}: is a symbolic link; key files must be regular files")]
    Symlink {
        /// The refused file.
        path: PathBuf,
    },
    /// A directory, FIFO, device or socket.
    #[error("{path}: is not a regular file")]
    NotRegular {
        /// The refused file.
        path: PathBuf,
    },
    /// Group or others may read or write it.
    #[error("{path}: mode {mode:04o} lets group or others read or write it; run chmod 600 on it")]
    Permissions {
        /// The refused file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Owned by another user than the one running coord.
    #[error("{path}: owned by uid {owner}, not by uid {me} who runs coord")]
    Owner {
        /// The refused file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        me: u32,
    },
    /// Larger than [`MAX_KEY_FILE_LEN`].
    #[error("{path}: {len} bytes is too large for a key file (at most {max})")]
    TooLarge {
        /// The refused file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The key inside is not usable (too short).
    #[error("{path}: {source}")]
    Key {
        /// The refused file.
        path: PathBuf,
        /// What is wrong with the key.
        source: KeyError,
    },
    /// Could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The refused file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Opens `path` once, without following a symbolic link, checks the open
/// file (not the path, so a file swapped in between cannot slip through) and
/// reads the key from it.
pub fn read_key_file(path: &Path) -> Result<SecretKey, FileError> {
    let io = |source: std::io::Error| FileError::Io {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not hang; O_NOFOLLOW: a link fails with ELOOP.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            FileError::Symlink {
                path: path.to_owned(),
            }
        } else {
            io(e.into())
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
    let file_type = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if file_type != rustix::fs::FileType::RegularFile {
        return Err(FileError::NotRegular {
            path: path.to_owned(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(FileError::Owner {
            path: path.to_owned(),
            owner: st.st_uid,
            me,
        });
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o066 != 0 {
        return Err(FileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let len = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if len > MAX_KEY_FILE_LEN {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            len,
            max: MAX_KEY_FILE_LEN,
        });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    // Read one byte past the limit so a file that grew after fstat is caught.
    File::from(fd)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            len: buf.len() as u64,
            max: MAX_KEY_FILE_LEN,
        });
    }
    SecretKey::new(strip(&buf)).map_err(|source| FileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// A key file's bytes without surrounding whitespace, exactly as
/// gptme-coordination's `read_bytes().strip()`: Python strips space, `\t`,
/// `\n`, `\r`, `\x0b` and `\x0c` (Rust's `trim_ascii` keeps `\x0b`).
///
/// ```
/// assert_eq!(coord_keys::strip(b"\x0b key \x0c\n"), b"key");
/// ```
pub fn strip(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, body: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn strips_as_python_bytes_strip_does() {
        assert_eq!(strip(b" \t\n\r\x0b\x0ckey\x0b\x0c\r\n\t "), b"key");
        assert_eq!(strip(b"\x85key\xa0"), b"\x85key\xa0");
        assert_eq!(strip(b" \n "), b"");
        assert_eq!(strip(b""), b"");
    }

    #[test]
    fn reads_a_private_file_and_trims() {
        let d = tempfile::tempdir().unwrap();
        let key = [b'k'; 32];
        let mut body = b"  ".to_vec();
        body.extend_from_slice(&key);
        body.extend_from_slice(b"\n");
        let p = write(d.path(), "a.secret", &body, 0o600);
        let got = read_key_file(&p).unwrap();
        assert_eq!(
            got.fingerprint(),
            SecretKey::new(&key).unwrap().fingerprint()
        );
    }

    #[test]
    fn refuses_unsafe_files_without_leaking() {
        let d = tempfile::tempdir().unwrap();
        let secret = b"do-not-leak-this-secret-0123456789abcdef";
        let p = write(d.path(), "open.secret", secret, 0o644);
        let e = read_key_file(&p).unwrap_err();
        assert!(
            matches!(e, FileError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        let p = write(d.path(), "group.secret", secret, 0o620);
        assert!(matches!(
            read_key_file(&p),
            Err(FileError::Permissions { .. })
        ));
        let p = write(d.path(), "short.secret", b"short\n", 0o600);
        let e = read_key_file(&p).unwrap_err();
        assert!(e.to_string().contains("5 bytes"), "{e}");
        let p = write(d.path(), "huge.secret", &vec![b'x'; 5000], 0o600);
        assert!(matches!(read_key_file(&p), Err(FileError::TooLarge { .. })));
        let good = write(d.path(), "good.secret", secret, 0o600);
        let link = d.path().join("link.secret");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(matches!(
            read_key_file(&link),
            Err(FileError::Symlink { .. })
        ));
        std::fs::create_dir(d.path().join("dir.secret")).unwrap();
        assert!(matches!(
            read_key_file(&d.path().join("dir.secret")),
            Err(FileError::NotRegular { .. })
        ));
        let fifo = d.path().join("fifo.secret");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read_key_file(&fifo),
            Err(FileError::NotRegular { .. })
        ));
        for e in [
            read_key_file(&d.path().join("open.secret")).unwrap_err(),
            read_key_file(&link).unwrap_err(),
        ] {
            assert!(!e.to_string().contains("do-not-leak"), "{e}");
            assert!(!format!("{e:?}").contains("do-not-leak"), "{e:?}");
        }
    }
}
