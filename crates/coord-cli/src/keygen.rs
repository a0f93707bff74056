//! `coord keygen`: a new key in the layout coord-keys (and, for the current
//! key, gptme-coordination) reads.

use std::fs::{DirBuilder, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use zeroize::Zeroizing;

use crate::error::{CliError, EXIT_OK};
use crate::output::{outln, style, Out};

/// Bytes of randomness in a key; written hex-encoded (64 characters).
pub const KEY_BYTES: usize = 32;

/// What keygen did.
pub struct Written {
    pub path: PathBuf,
    pub fingerprint: String,
    pub retired: Option<PathBuf>,
}

/// Creates `dir` (and parents) with mode 0700, and makes sure an existing
/// one is not open to group or others: the key file inside is only as
/// private as the directory that lists it.
fn private_dir(dir: &Path) -> Result<(), CliError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::io(dir, e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| CliError::io(dir, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700))
            .map_err(|e| CliError::io(dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to a new temporary file in `dir`, mode 0600, synced.
fn temp_file(dir: &Path, bytes: &[u8]) -> Result<tempfile::TempPath, CliError> {
    let mut f = tempfile::Builder::new()
        .prefix(".coord-keygen-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| CliError::io(dir, e))?;
    f.write_all(bytes)
        .and_then(|()| f.as_file().sync_all())
        .map_err(|e| CliError::io(f.path(), e))?;
    Ok(f.into_temp_path())
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC), so retired keys sort by age.
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Generates a key for `agent` in `dir`. Without `rotate` an existing key
/// is never touched; with it the old key file is first linked into
/// `<dir>/<agent>.retired/<stamp>.secret`, then the new one renamed over
/// it, so at every moment some file holds a usable current key.
pub fn keygen(dir: &Path, agent: &str, rotate: bool) -> Result<Written, CliError> {
    coord_core::validate_agent_id(agent).map_err(|e| CliError::BadAgent {
        agent: agent.to_owned(),
        reason: e.to_string(),
    })?;
    private_dir(dir)?;
    let target = dir.join(format!("{agent}.secret"));

    let mut raw = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(raw.as_mut_slice()).map_err(|e| CliError::Random(e.to_string()))?;
    let mut text = Zeroizing::new(hex::encode(raw.as_slice()).into_bytes());
    text.push(b'\n');
    let fingerprint = coord_core::SecretKey::new(text.trim_ascii())
        .map_err(|e| CliError::Other(format!("generated key refused: {e}")))?
        .fingerprint();
    let tmp = temp_file(dir, &text)?;

    let exists = target.symlink_metadata().is_ok();
    if !exists {
        // A hard link fails if the name exists: no check-then-write race
        // with another keygen for the same agent.
        return match std::fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(Written {
                path: target,
                fingerprint,
                retired: None,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !rotate => {
                Err(CliError::KeyExists {
                    agent: agent.to_owned(),
                    path: target,
                })
            }
            Err(e) => Err(CliError::io(&target, e)),
        };
    }
    if !rotate {
        return Err(CliError::KeyExists {
            agent: agent.to_owned(),
            path: target,
        });
    }
    // The old key must be one coord-keys would accept, or the retired copy
    // would be useless (and a symlink would be linked, not its target).
    coord_keys::read_key_file(&target).map_err(|e| CliError::OldKeyRefused {
        reason: e.to_string(),
    })?;
    let rdir = dir.join(format!("{agent}.retired"));
    private_dir(&rdir)?;
    let stamp = utc_stamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut retired = rdir.join(format!("{stamp}.secret"));
    let mut n = 1;
    loop {
        match std::fs::hard_link(&target, &retired) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                retired = rdir.join(format!("{stamp}-{n}.secret"));
                n += 1;
            }
            Err(e) => return Err(CliError::io(&retired, e)),
        }
    }
    std::fs::set_permissions(&retired, Permissions::from_mode(0o600))
        .map_err(|e| CliError::io(&retired, e))?;
    tmp.persist(&target)
        .map_err(|e| CliError::io(&target, e.error))?;
    // Make the rename durable before reporting it.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Written {
        path: target,
        fingerprint,
        retired: Some(retired),
    })
}

/// The directory keygen writes to: the first that coord-keys searches.
pub fn default_dir() -> Result<PathBuf, CliError> {
    coord_keys::secret_dirs(&coord_keys::ProcessEnv)
        .into_iter()
        .next()
        .ok_or(CliError::NoSecretsDir)
}

pub fn run(out: Out, agent: &str, rotate: bool) -> Result<u8, CliError> {
    let dir = default_dir()?;
    let w = keygen(&dir, agent, rotate)?;
    if out.json {
        out.print_json(&json!({
            "agent": agent,
            "path": w.path.display().to_string(),
            "fingerprint": w.fingerprint,
            "retired": w.retired.as_ref().map(|p| p.display().to_string()),
        }));
    } else {
        out.line(
            style::OK,
            &format!(
                "✓ wrote a new key for {agent} to {} (fingerprint {})",
                w.path.display(),
                w.fingerprint
            ),
        );
        if let Some(r) = &w.retired {
            outln!("  the old key is kept as a retired key at {}", r.display());
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_771_502), "20261127T092502Z");
    }
}
