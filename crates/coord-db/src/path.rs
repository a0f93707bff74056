//! Finding the coordination database, as gptme-coordination does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::hrana;

/// The database's place under a workspace or repository root.
pub const DEFAULT_DB_PATH: &str = "state/coordination/coord.db";

/// Workspace variables, in gptme-coordination's order.
pub const WORKSPACE_VARS: [&str; 3] = ["BOB_WORKSPACE", "AGENT_WORKSPACE", "WORKSPACE"];

/// A resolved database path and how it was found (for error messages).
#[derive(Debug, Clone)]
pub struct DbPath {
    /// The path, or a server's URL.
    pub path: PathBuf,
    /// How it was found, for error messages.
    pub how: String,
}

/// Resolves the database path: `--db`, then `$COORDINATION_DB`, then the
/// workspace variables, then the git root of the working directory, then
/// the working directory. Empty variables count as unset, as in Python.
pub fn resolve(flag: Option<&Path>) -> DbPath {
    resolve_with(flag, |k| std::env::var_os(k), std::env::current_dir().ok())
}

fn resolve_with(
    flag: Option<&Path>,
    var: impl Fn(&str) -> Option<OsString>,
    cwd: Option<PathBuf>,
) -> DbPath {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(p) = flag {
        return DbPath {
            path: p.to_owned(),
            how: "from --db".into(),
        };
    }
    if let Some(p) = set("COORDINATION_DB") {
        return DbPath {
            path: PathBuf::from(p),
            how: "from $COORDINATION_DB".into(),
        };
    }
    for name in WORKSPACE_VARS {
        if let Some(ws) = set(name) {
            return DbPath {
                path: PathBuf::from(ws).join(DEFAULT_DB_PATH),
                how: format!("from ${name}"),
            };
        }
    }
    let cwd = cwd.unwrap_or_else(|| PathBuf::from("."));
    match cwd.ancestors().find(|a| a.join(".git").exists()) {
        Some(root) => DbPath {
            path: root.join(DEFAULT_DB_PATH),
            how: format!("under the git root {}", root.display()),
        },
        None => DbPath {
            path: cwd.join(DEFAULT_DB_PATH),
            how: "under the working directory (no git root)".into(),
        },
    }
}

impl DbPath {
    /// The server URL, when the database is on a libSQL server rather than
    /// in a file (`http://`, `https://` or `libsql://`).
    pub fn url(&self) -> Option<&str> {
        self.path.to_str().filter(|s| hrana::is_url(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], cwd: &Path) -> DbPath {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        resolve_with(None, |k| m.get(k).cloned(), Some(cwd.to_owned()))
    }

    #[test]
    fn order_of_resolution() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let sub = repo.join("a/b");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(run(&[], &sub).path, repo.join(DEFAULT_DB_PATH));
        assert_eq!(run(&[], t.path()).path, t.path().join(DEFAULT_DB_PATH));
        assert_eq!(
            run(&[("WORKSPACE", "/w"), ("AGENT_WORKSPACE", "/a")], &sub).path,
            PathBuf::from("/a").join(DEFAULT_DB_PATH)
        );
        assert_eq!(
            run(&[("BOB_WORKSPACE", "/b"), ("AGENT_WORKSPACE", "/a")], &sub).path,
            PathBuf::from("/b").join(DEFAULT_DB_PATH)
        );
        assert_eq!(
            run(
                &[("COORDINATION_DB", "/x.db"), ("BOB_WORKSPACE", "/b")],
                &sub
            )
            .path,
            PathBuf::from("/x.db")
        );
        // Empty means unset, as in Python.
        assert_eq!(
            run(&[("COORDINATION_DB", ""), ("WORKSPACE", "/w")], &sub).path,
            PathBuf::from("/w").join(DEFAULT_DB_PATH)
        );
        let flag = resolve_with(Some(Path::new("f.db")), |_| None, None);
        assert_eq!(flag.path, PathBuf::from("f.db"));
    }
}
