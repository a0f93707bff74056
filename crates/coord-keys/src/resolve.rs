//! Where an agent's keys come from, and a report of what was found.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use coord_core::{validate_agent_id, AgentKeys, SecretKey};
use zeroize::Zeroizing;

use crate::file::read_key_file;

/// What the lookup reads from the process: environment variables and the
/// working directory. Tests substitute their own.
pub trait Environment {
    /// The raw value of an environment variable.
    fn var(&self, name: &str) -> Option<OsString>;
    /// The working directory.
    fn current_dir(&self) -> Option<PathBuf>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
    fn current_dir(&self) -> Option<PathBuf> {
        std::env::current_dir().ok()
    }
}

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable (its name; never its value).
    Env(String),
    /// A file.
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env(v) => write!(f, "env {v}"),
            KeySource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

/// One retired key file and whether it could be used.
#[derive(Debug, Clone)]
pub struct RetiredReport {
    /// The file.
    pub path: PathBuf,
    /// The key's fingerprint, or why the file was refused.
    pub result: Result<String, String>,
}

/// What the lookup found for an agent: safe to show anyone (no key bytes).
#[derive(Debug, Clone)]
pub struct KeyReport {
    /// The agent id asked for.
    pub agent: String,
    /// Where the current key came from, if a source exists.
    pub source: Option<KeySource>,
    /// The current key's fingerprint, or why there is no usable one.
    pub current: Result<String, String>,
    /// Retired keys found beside the current one.
    pub retired: Vec<RetiredReport>,
}

impl KeyReport {
    /// Whether the current key can sign.
    pub fn can_sign(&self) -> bool {
        self.current.is_ok()
    }

    /// One line for an error message: where the key was looked for and why
    /// it cannot be used.
    pub fn reason(&self) -> String {
        match (&self.current, &self.source) {
            (Ok(_), _) => "key is usable".to_owned(),
            (Err(why), _) => why.clone(),
        }
    }

    /// The report as a JSON object (what `coord_key_status` returns).
    pub fn to_json(&self) -> serde_json::Value {
        let source = self.source.as_ref().map(|s| match s {
            KeySource::Env(v) => serde_json::json!({"kind": "env", "name": v}),
            KeySource::File(p) => {
                serde_json::json!({"kind": "file", "path": p.display().to_string()})
            }
        });
        let retired: Vec<_> = self
            .retired
            .iter()
            .map(|r| match &r.result {
                Ok(fp) => serde_json::json!({"path": r.path.display().to_string(), "usable": true, "fingerprint": fp}),
                Err(why) => serde_json::json!({"path": r.path.display().to_string(), "usable": false, "reason": why}),
            })
            .collect();
        let mut o = serde_json::json!({
            "agent": self.agent,
            "can_sign": self.can_sign(),
            "source": source,
            "retired": retired,
        });
        match &self.current {
            Ok(fp) => o["fingerprint"] = fp.clone().into(),
            Err(why) => o["reason"] = why.clone().into(),
        }
        if let Some(KeySource::Env(name)) = &self.source {
            // gptme's variable names fold case and punctuation, so `alice`
            // and `Alice` (or `bob-1` and `bob.1`) read the same key.
            o["warning"] = format!(
                "{name} is read by every agent id that differs from this one only in case or                  punctuation; a key file (<id>.secret) belongs to this exact id"
            )
            .into();
        }
        o
    }
}

/// The outcome of a lookup: the usable keys (if any) and the report.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Keys to verify with (and, when `current` is set, to sign with).
    /// `None` when there is no usable key at all.
    pub keys: Option<AgentKeys>,
    /// What was found, for diagnostics.
    pub report: KeyReport,
}

/// The two environment variable names tried for `agent`, in order: the
/// normalised form, then the legacy upper-case form.
///
/// The legacy form is used only for ASCII ids without `=`: Unicode
/// upper-casing folds look-alikes onto plain names (`alıce` with a dotless
/// i, `ſam` with a long s, `ﬁle` with a ligature upper-case to `ALICE`,
/// `SAM`, `FILE`), which would hand another agent's key to a look-alike id;
/// and `=` ends a variable's name, so `a=b` would read part of `a`'s value.
/// For such ids both names are the normalised one.
///
/// ```
/// assert_eq!(
///     coord_keys::env_var_names("bob-autonomous.v2"),
///     ["COORDINATION_SECRET_BOB_AUTONOMOUS_V2", "COORDINATION_SECRET_BOB-AUTONOMOUS.V2"],
/// );
/// ```
pub fn env_var_names(agent: &str) -> [String; 2] {
    let normal: String = agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let legacy = if agent.is_ascii() && !agent.contains('=') {
        agent.to_ascii_uppercase()
    } else {
        normal.clone()
    };
    [
        format!("COORDINATION_SECRET_{normal}"),
        format!("COORDINATION_SECRET_{legacy}"),
    ]
}

/// The secrets directory searched for this environment (one, as in
/// gptme-coordination; a Vec so that "none" needs no special case).
pub fn secret_dirs(env: &impl Environment) -> Vec<PathBuf> {
    // One directory, chosen as gptme-coordination's resolve_secrets_dir
    // chooses it: $COORDINATION_SECRETS_DIR (with `~` expanded), else
    // secrets/coordination under the nearest ancestor holding .git, else
    // under the working directory. A key missing there is not looked for
    // anywhere else, so coord and gptme never read different keys.
    if let Some(d) = env
        .var("COORDINATION_SECRETS_DIR")
        .filter(|d| !d.is_empty())
    {
        let d = PathBuf::from(d);
        let home = env.var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        return vec![match (d.strip_prefix("~"), home) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => d,
        }];
    }
    let Some(cwd) = env.current_dir() else {
        return Vec::new();
    };
    let base = cwd
        .ancestors()
        .find(|a| a.join(".git").exists())
        .unwrap_or(&cwd);
    vec![base.join("secrets").join("coordination")]
}

/// Resolves agents' keys from an [`Environment`].
#[derive(Debug, Clone, Default)]
pub struct Lookup<E: Environment = ProcessEnv> {
    env: E,
}

impl Lookup<ProcessEnv> {
    /// A lookup over the real process environment.
    pub fn process() -> Self {
        Self { env: ProcessEnv }
    }
}

impl<E: Environment> Lookup<E> {
    /// A lookup over `env`.
    pub fn new(env: E) -> Self {
        Self { env }
    }

    /// Finds `agent`'s current and retired keys.
    pub fn resolve(&self, agent: &str) -> Resolved {
        let mut report = KeyReport {
            agent: agent.to_owned(),
            source: None,
            current: Err(String::new()),
            retired: Vec::new(),
        };
        if let Err(e) = validate_agent_id(agent) {
            report.current = Err(format!("invalid agent id: {e}"));
            return Resolved { keys: None, report };
        }
        let dirs = secret_dirs(&self.env);
        let mut current: Option<SecretKey> = None;
        let mut found_dir: Option<&Path> = None;

        let env_hit = env_var_names(agent)
            .into_iter()
            // An empty variable is not a key: gptme goes on to the files.
            .find_map(|name| {
                self.env
                    .var(&name)
                    .filter(|v| !v.is_empty())
                    .map(|v| (name, v))
            });
        if let Some((name, value)) = env_hit {
            // Used exactly as it is, as gptme does: only key files are
            // stripped.
            let value = Zeroizing::new(value.into_encoded_bytes());
            report.current = SecretKey::new(&value)
                .map(|k| {
                    let fp = k.fingerprint();
                    current = Some(k);
                    fp
                })
                .map_err(|e| format!("env {name}: {e}"));
            report.source = Some(KeySource::Env(name));
        } else if let Some(dir) = dirs
            .iter()
            .find(|d| d.join(format!("{agent}.secret")).symlink_metadata().is_ok())
        {
            let path = dir.join(format!("{agent}.secret"));
            report.current = read_key_file(&path)
                .map(|k| {
                    let fp = k.fingerprint();
                    current = Some(k);
                    fp
                })
                .map_err(|e| e.to_string());
            report.source = Some(KeySource::File(path));
            found_dir = Some(dir);
        } else {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            let mut names = env_var_names(agent).to_vec();
            names.dedup();
            report.current = Err(format!(
                "no key: {} not set, and no {agent}.secret in {}",
                names.join(" or "),
                if searched.is_empty() {
                    "any secrets directory".to_owned()
                } else {
                    searched.join(", ")
                }
            ));
        }

        // Retired keys sit beside the current key file, or in the first
        // secrets directory that has them when the key came from the env.
        let retired_dir = found_dir
            .map(|d| d.join(format!("{agent}.retired")))
            .or_else(|| {
                dirs.iter()
                    .map(|d| d.join(format!("{agent}.retired")))
                    .find(|d| d.is_dir())
            });
        let mut retired = Vec::new();
        if let Some(rdir) = retired_dir {
            if let Ok(entries) = std::fs::read_dir(&rdir) {
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "secret"))
                    .collect();
                paths.sort();
                for path in paths {
                    let result = read_key_file(&path).map_err(|e| e.to_string()).map(|k| {
                        let fp = k.fingerprint();
                        retired.push(k);
                        fp
                    });
                    report.retired.push(RetiredReport { path, result });
                }
            }
        }
        let keys = AgentKeys { current, retired };
        Resolved {
            keys: (!keys.is_empty()).then_some(keys),
            report,
        }
    }
}

impl<E: Environment + ?Sized> Environment for &E {
    fn var(&self, name: &str) -> Option<OsString> {
        (**self).var(name)
    }
    fn current_dir(&self) -> Option<PathBuf> {
        (**self).current_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Default)]
    struct FakeEnv {
        vars: HashMap<String, String>,
        cwd: Option<PathBuf>,
    }
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<OsString> {
            self.vars.get(name).map(OsString::from)
        }
        fn current_dir(&self) -> Option<PathBuf> {
            self.cwd.clone()
        }
    }

    fn key_file(dir: &Path, name: &str, key: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, key).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn fp(key: &[u8]) -> String {
        SecretKey::new(key).unwrap().fingerprint()
    }

    #[test]
    fn look_alike_ids_never_get_a_plain_ids_env_key() {
        // Regression: the legacy name upper-cased with Unicode rules, so
        // `alıce` (dotless i) read COORDINATION_SECRET_ALICE.
        let mut env = FakeEnv::default();
        let key = [b'a'; 40];
        env.vars.insert(
            "COORDINATION_SECRET_ALICE".into(),
            String::from_utf8(key.to_vec()).unwrap(),
        );
        env.vars.insert(
            "COORDINATION_SECRET_A".into(),
            format!("B={}", String::from_utf8(key.to_vec()).unwrap()),
        );
        let lookup = Lookup::new(&env);
        assert_eq!(lookup.resolve("alice").report.current, Ok(fp(&key)));
        for id in [
            "al\u{131}ce",
            "\u{17f}am",
            "\u{fb01}le",
            "ALICE\u{200b}",
            "a=B",
        ] {
            let r = lookup.resolve(id);
            assert!(r.keys.is_none(), "{id:?} got a key");
            for name in env_var_names(id) {
                assert!(name.is_ascii() && !name[20..].contains('='), "{name}");
            }
        }
        assert_eq!(env_var_names("caf\u{e9}")[1], "COORDINATION_SECRET_CAF_");
    }

    #[test]
    fn order_env_then_dirs() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let cwd = repo.join("sub");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        let k = |c: u8| vec![c; 40];
        key_file(&cwd.join("secrets/coordination"), "a.secret", &k(b'5'));
        key_file(&repo.join("secrets/coordination"), "a.secret", &k(b'4'));
        key_file(&t.path().join("explicit"), "a.secret", &k(b'3'));
        let mut env = FakeEnv {
            cwd: Some(cwd.clone()),
            ..Default::default()
        };
        let check = |env: &FakeEnv, want: &[u8]| {
            let r = Lookup::new(env).resolve("a");
            assert_eq!(
                r.report.current.as_deref(),
                Ok(fp(want).as_str()),
                "{:?}",
                r.report
            );
        };
        // One directory, as gptme: under the git root when there is one,
        // and a key missing there is not looked for under the cwd.
        check(&env, &k(b'4'));
        std::fs::remove_file(repo.join("secrets/coordination/a.secret")).unwrap();
        assert!(Lookup::new(&env).resolve("a").keys.is_none());
        key_file(&repo.join("secrets/coordination"), "a.secret", &k(b'4'));
        std::fs::remove_dir_all(repo.join(".git")).unwrap();
        check(&env, &k(b'5'));
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        env.vars.insert(
            "COORDINATION_SECRETS_DIR".into(),
            t.path().join("explicit").display().to_string(),
        );
        check(&env, &k(b'3'));
        env.vars.insert(
            "COORDINATION_SECRET_A".into(),
            String::from_utf8(k(b'1')).unwrap(),
        );
        check(&env, &k(b'1'));
        // An empty variable is skipped (gptme goes on to the files), and a
        // value is used exactly as it is: a trailing newline is key bytes.
        env.vars
            .insert("COORDINATION_SECRET_A".into(), String::new());
        check(&env, &k(b'3'));
        let mut with_newline = k(b'1');
        with_newline.push(b'\n');
        env.vars.insert(
            "COORDINATION_SECRET_A".into(),
            String::from_utf8(with_newline.clone()).unwrap(),
        );
        check(&env, &with_newline);
        // `~` in COORDINATION_SECRETS_DIR is the home directory, as
        // Python's expanduser() reads it.
        env.vars.remove("COORDINATION_SECRET_A");
        env.vars
            .insert("HOME".into(), t.path().display().to_string());
        env.vars
            .insert("COORDINATION_SECRETS_DIR".into(), "~/explicit".into());
        check(&env, &k(b'3'));
    }

    #[test]
    fn legacy_env_name_and_refusals_stop_the_search() {
        let t = tempfile::tempdir().unwrap();
        key_file(
            &t.path().join("secrets/coordination"),
            "bob-x.secret",
            &[b'f'; 40],
        );
        let mut env = FakeEnv {
            cwd: Some(t.path().to_owned()),
            ..Default::default()
        };
        env.vars
            .insert("COORDINATION_SECRET_BOB-X".into(), "l".repeat(40));
        let r = Lookup::new(&env).resolve("bob-x");
        assert_eq!(r.report.current, Ok(fp(&[b'l'; 40])));
        assert_eq!(
            r.report.source,
            Some(KeySource::Env("COORDINATION_SECRET_BOB-X".into()))
        );
        // A too-short env key is refused, not replaced by the file's key.
        env.vars
            .insert("COORDINATION_SECRET_BOB_X".into(), "short".into());
        let r = Lookup::new(&env).resolve("bob-x");
        assert!(r.keys.is_none());
        let why = r.report.current.unwrap_err();
        assert!(
            why.contains("COORDINATION_SECRET_BOB_X") && why.contains("at least 32"),
            "{why}"
        );
    }

    #[test]
    fn retired_keys_and_bad_ids() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("secrets/coordination");
        key_file(&dir, "c.secret", &[b'2'; 40]);
        key_file(&dir.join("c.retired"), "2026-01-01.secret", &[b'1'; 40]);
        key_file(&dir.join("c.retired"), "ignored.txt", &[b'0'; 40]);
        let env = FakeEnv {
            cwd: Some(t.path().to_owned()),
            ..Default::default()
        };
        let r = Lookup::new(&env).resolve("c");
        let keys = r.keys.unwrap();
        assert_eq!(keys.retired.len(), 1);
        assert_eq!(keys.retired[0].fingerprint(), fp(&[b'1'; 40]));
        let j = r.report.to_json();
        assert_eq!(j["can_sign"], true);
        assert_eq!(j["retired"][0]["usable"], true);
        for bad in ["../c", "", "a/b", "..", "x\0"] {
            let r = Lookup::new(&env).resolve(bad);
            assert!(r.keys.is_none());
            assert!(r
                .report
                .current
                .unwrap_err()
                .starts_with("invalid agent id"));
        }
        let r = Lookup::new(&env).resolve("nobody");
        assert!(r.report.current.unwrap_err().contains("no key"));
    }
}
