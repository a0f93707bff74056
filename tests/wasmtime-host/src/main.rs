//! A Rust host for coord's WASI component, on the `wasmtime` crate.
//!
//! `coord-wasmtime-host check COMPONENT VECTORS FIXTURE_ROWS SECRETS_DIR`
//! runs every check and prints `ok`/`FAIL` lines and `N passed, N failed`;
//! `coord-wasmtime-host bench COMPONENT` prints the per-call cost of signing
//! and verifying through the component against native coord-core.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store};

/// The Rust types wasmtime generates from `wit/signing.wit`.
mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "signer",
        additional_derives: [PartialEq],
    });
}

use bindings::exports::coord::signing::signing::{
    AgentKey, Claim, Error as CoordError, Field, Message, VerificationStatus,
};
use bindings::Signer;

type Res<T> = Result<T, String>;

/// A loaded component instance and its store.
struct Host {
    store: Store<()>,
    signer: Signer,
}

impl Host {
    fn load(engine: &Engine, component: &Component) -> Res<Self> {
        let linker = Linker::new(engine);
        let mut store = Store::new(engine, ());
        let signer = Signer::instantiate(&mut store, component, &linker).map_err(err)?;
        Ok(Self { store, signer })
    }

    fn keyring(&mut self) -> Res<ResourceAny> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_constructor(&mut self.store).map_err(err)
    }

    fn keyring_from_keys(&mut self, keys: &[AgentKey]) -> Res<Result<ResourceAny, CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_from_keys(&mut self.store, keys).map_err(err)
    }

    fn add_key(
        &mut self,
        kr: ResourceAny,
        agent: &str,
        secret: &[u8],
    ) -> Res<Result<(), CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_add_key(&mut self.store, kr, agent, secret)
            .map_err(err)
    }

    fn add_retired_key(
        &mut self,
        kr: ResourceAny,
        agent: &str,
        secret: &[u8],
    ) -> Res<Result<(), CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_add_retired_key(&mut self.store, kr, agent, secret)
            .map_err(err)
    }

    fn sign(
        &mut self,
        kr: ResourceAny,
        agent: &str,
        f: &[Field],
    ) -> Res<Result<String, CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_sign(&mut self.store, kr, agent, f).map_err(err)
    }

    fn status(
        &mut self,
        kr: ResourceAny,
        agent: &str,
        mac: Option<&str>,
        f: &[Field],
    ) -> Res<Result<VerificationStatus, CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_status(&mut self.store, kr, agent, mac, f)
            .map_err(err)
    }

    fn verify(
        &mut self,
        kr: ResourceAny,
        agent: &str,
        mac: Option<&str>,
        f: &[Field],
    ) -> Res<Result<bool, CoordError>> {
        let api = self.signer.coord_signing_signing().keyring();
        api.call_verify(&mut self.store, kr, agent, mac, f)
            .map_err(err)
    }

    fn canonical(&mut self, f: &[Field]) -> Res<Result<Vec<u8>, CoordError>> {
        let api = self.signer.coord_signing_signing();
        api.call_canonical(&mut self.store, f).map_err(err)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("wasmtime: {e}")
}

fn status_name(s: VerificationStatus) -> &'static str {
    match s {
        VerificationStatus::Verified => "verified",
        VerificationStatus::Unsigned => "unsigned",
        VerificationStatus::UnknownAgent => "unknown_agent",
        VerificationStatus::BadMac => "bad_mac",
        VerificationStatus::RetiredKey => "retired_key",
    }
}

/// Checks run so far.
#[derive(Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, result: Res<()>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn json_fields(v: &Value) -> Res<Vec<Field>> {
    v.as_array()
        .ok_or("fields is not an array")?
        .iter()
        .map(|f| match f {
            Value::Null => Ok(Field::Null),
            Value::String(s) => Ok(Field::Text(s.clone())),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(Field::Integer(i)),
                None => n.as_f64().map(Field::Real).ok_or_else(|| format!("{n}")),
            },
            other => Err(format!("unexpected field {other}")),
        })
        .collect()
}

fn core_fields(fields: &[Field]) -> Vec<coord_core::Field<'_>> {
    fields
        .iter()
        .map(|f| match f {
            Field::Null => coord_core::Field::Null,
            Field::Integer(i) => coord_core::Field::Integer(*i),
            Field::Real(r) => coord_core::Field::Real(*r),
            Field::Text(s) => coord_core::Field::Text(s),
            Field::TextBytes(_) | Field::Blob(_) => panic!("native comparison of text only"),
        })
        .collect()
}

/// The keys of tests/vectors.json, retired ones included.
fn vector_keys(v: &Value) -> Res<Vec<AgentKey>> {
    let mut out = Vec::new();
    for (agent, k) in v["keys"].as_object().ok_or("keys")? {
        for retired in k["retired"].as_array().into_iter().flatten() {
            out.push(AgentKey {
                agent: agent.clone(),
                secret: retired.as_str().ok_or("retired key")?.as_bytes().to_vec(),
                retired: true,
            });
        }
        out.push(AgentKey {
            agent: agent.clone(),
            secret: k["current"]
                .as_str()
                .ok_or("current key")?
                .as_bytes()
                .to_vec(),
            retired: false,
        });
    }
    Ok(out)
}

fn as_claim(f: &[Field]) -> Option<Claim> {
    match f {
        [Field::Text(c), Field::Text(t), Field::Integer(e), Field::Text(x)] => Some(Claim {
            claimer: c.clone(),
            task_id: t.clone(),
            epoch: *e,
            expires_at: x.clone(),
        }),
        _ => None,
    }
}

fn as_message(f: &[Field]) -> Option<Message> {
    match f {
        [Field::Text(s), Field::Text(r), Field::Text(c), Field::Text(b)] => Some(Message {
            sender: s.clone(),
            recipient: (!r.is_empty()).then(|| r.clone()),
            channel: c.clone(),
            body: b.clone(),
        }),
        _ => None,
    }
}

fn vectors(t: &mut Tally, h: &mut Host, v: &Value) -> Res<()> {
    let keys = vector_keys(v)?;
    let kr = h
        .keyring_from_keys(&keys)?
        .map_err(|e| format!("from-keys: {e:?}"))?;
    let cases = v["sign"].as_array().ok_or("sign")?;
    t.check(
        "vectors: at least 15 sign cases",
        ensure(cases.len() >= 15, || format!("{}", cases.len())),
    );
    for case in cases {
        let desc = case["description"].as_str().unwrap_or("?");
        let r = (|| -> Res<()> {
            let f = json_fields(&case["fields"])?;
            let agent = case["agent"].as_str().ok_or("agent")?;
            let want_mac = case["mac"].as_str().ok_or("mac")?;
            let bytes = h.canonical(&f)?.map_err(|e| format!("{e:?}"))?;
            let want = case["canonical"].as_str().ok_or("canonical")?;
            ensure(bytes == want.as_bytes(), || {
                format!(
                    "canonical {:?} != {want:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })?;
            let mac = h.sign(kr, agent, &f)?.map_err(|e| format!("{e:?}"))?;
            ensure(mac == want_mac, || format!("mac {mac} != {want_mac}"))?;
            let st = h
                .status(kr, agent, Some(&mac), &f)?
                .map_err(|e| format!("{e:?}"))?;
            ensure(st == VerificationStatus::Verified, || {
                format!("status {st:?}")
            })?;
            let ok = h
                .verify(kr, agent, Some(&mac), &f)?
                .map_err(|e| format!("{e:?}"))?;
            ensure(ok, || "verify false".into())?;
            // The claim and message forms sign the same bytes.
            if desc.starts_with("claim") {
                let c = as_claim(&f).ok_or("not a claim")?;
                let api = h.signer.coord_signing_signing().keyring();
                let m = api.call_sign_claim(&mut h.store, kr, &c).map_err(err)?;
                ensure(m.as_deref() == Ok(want_mac), || format!("sign-claim {m:?}"))?;
                let st = api
                    .call_claim_status(&mut h.store, kr, &c, Some(want_mac))
                    .map_err(err)?;
                ensure(st == VerificationStatus::Verified, || {
                    format!("claim-status {st:?}")
                })?;
                let back = h
                    .signer
                    .coord_signing_signing()
                    .call_claim_fields(&mut h.store, &c)
                    .map_err(err)?;
                ensure(back == f, || format!("claim-fields {back:?}"))?;
            }
            if desc.starts_with("message") {
                let msg = as_message(&f).ok_or("not a message")?;
                let api = h.signer.coord_signing_signing().keyring();
                let m = api.call_sign_message(&mut h.store, kr, &msg).map_err(err)?;
                ensure(m.as_deref() == Ok(want_mac), || {
                    format!("sign-message {m:?}")
                })?;
                let ok = api
                    .call_verify_message(&mut h.store, kr, &msg, Some(want_mac))
                    .map_err(err)?;
                ensure(ok, || "verify-message false".into())?;
                let back = h
                    .signer
                    .coord_signing_signing()
                    .call_message_fields(&mut h.store, &msg)
                    .map_err(err)?;
                ensure(back == f, || format!("message-fields {back:?}"))?;
            }
            Ok(())
        })();
        t.check(&format!("sign vector: {desc}"), r);
    }
    for case in v["verify"].as_array().ok_or("verify")? {
        let desc = case["description"].as_str().unwrap_or("?");
        let r = (|| -> Res<()> {
            let f = json_fields(&case["fields"])?;
            let agent = case["agent"].as_str().ok_or("agent")?;
            let mac = case["mac"].as_str();
            let want = case["status"].as_str().ok_or("status")?;
            let st = h
                .status(kr, agent, mac, &f)?
                .map_err(|e| format!("{e:?}"))?;
            ensure(status_name(st) == want, || {
                format!("status {st:?}, want {want}")
            })?;
            let ok = h
                .verify(kr, agent, mac, &f)?
                .map_err(|e| format!("{e:?}"))?;
            let authentic = want == "verified" || want == "retired_key";
            ensure(ok == authentic, || format!("verify {ok}"))?;
            if let Some(c) = as_claim(&f) {
                let api = h.signer.coord_signing_signing().keyring();
                let st = api
                    .call_claim_status(&mut h.store, kr, &c, mac)
                    .map_err(err)?;
                ensure(status_name(st) == want, || format!("claim-status {st:?}"))?;
                let ok = api
                    .call_verify_claim(&mut h.store, kr, &c, mac)
                    .map_err(err)?;
                ensure(ok == authentic, || format!("verify-claim {ok}"))?;
            }
            Ok(())
        })();
        t.check(&format!("verify vector: {desc}"), r);
    }
    Ok(())
}

fn fixture(t: &mut Tally, h: &mut Host, rows: &Value, secrets: &Path) -> Res<()> {
    let kr = h.keyring()?;
    let mut entries: Vec<_> = std::fs::read_dir(secrets)
        .map_err(|e| format!("{}: {e}", secrets.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut loaded = 0;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(agent) = name.strip_suffix(".secret") else {
            continue;
        };
        let bytes = std::fs::read(e.path()).map_err(|e| e.to_string())?;
        let secret = bytes.trim_ascii();
        h.add_key(kr, agent, secret)?
            .map_err(|e| format!("add-key {agent}: {e:?}"))?;
        loaded += 1;
    }
    t.check(
        "fixture: keys loaded",
        ensure(loaded >= 2, || format!("{loaded} keys")),
    );
    let expected = &rows["expected"];
    let api = h.signer.coord_signing_signing().keyring();
    for w in rows["work"].as_array().ok_or("work")? {
        let task = w["task_id"].as_str().ok_or("task_id")?;
        let r = (|| -> Res<()> {
            let want = expected["work"][task].as_bool().ok_or("expected")?;
            let epoch = w["epoch"].as_i64().ok_or("epoch")?;
            let mac = w["hmac"].as_str();
            let got = match (w["claimer"].as_str(), w["expires_at"].as_str()) {
                (Some(claimer), Some(expires_at)) => {
                    let c = Claim {
                        claimer: claimer.into(),
                        task_id: task.into(),
                        epoch,
                        expires_at: expires_at.into(),
                    };
                    api.call_verify_claim(&mut h.store, kr, &c, mac)
                        .map_err(err)?
                }
                // An unclaimed row (NULL claimer): the generic form, NULLs as null.
                (claimer, expires_at) => {
                    let text = |v: Option<&str>| v.map_or(Field::Null, |s| Field::Text(s.into()));
                    let f = [
                        text(claimer),
                        Field::Text(task.into()),
                        Field::Integer(epoch),
                        text(expires_at),
                    ];
                    api.call_verify(&mut h.store, kr, claimer.unwrap_or(""), mac, &f)
                        .map_err(err)?
                        .map_err(|e| format!("{e:?}"))?
                }
            };
            ensure(got == want, || format!("verify {got}, expected {want}"))
        })();
        t.check(&format!("fixture work {task:?}"), r);
    }
    for m in rows["messages"].as_array().ok_or("messages")? {
        let id = m["id"].as_i64().unwrap_or(-1);
        let r = (|| -> Res<()> {
            let msg = Message {
                sender: m["sender"].as_str().ok_or("sender")?.into(),
                recipient: m["recipient"].as_str().map(Into::into),
                channel: m["channel"].as_str().ok_or("channel")?.into(),
                body: m["body"].as_str().ok_or("body")?.into(),
            };
            let want = expected["messages"][id.to_string()]
                .as_bool()
                .ok_or("expected")?;
            let got = api
                .call_verify_message(&mut h.store, kr, &msg, m["hmac"].as_str())
                .map_err(err)?;
            ensure(got == want, || {
                format!("verify-message {got}, expected {want}")
            })
        })();
        t.check(&format!("fixture message {id}"), r);
    }
    Ok(())
}

const ALICE: &[u8] = b"alice-secret-0123456789abcdef0123456789abcdef";

fn bad_input(t: &mut Tally, h: &mut Host) -> Res<()> {
    let kr = h.keyring()?;
    h.add_key(kr, "alice", ALICE)?
        .map_err(|e| format!("{e:?}"))?;
    let native = coord_core::SecretKey::new(ALICE).map_err(|e| e.to_string())?;

    let r = h.canonical(&[]);
    t.check(
        "empty list: canonical is []",
        ensure(matches!(&r, Ok(Ok(b)) if b == b"[]"), || format!("{r:?}")),
    );

    let huge: Vec<Field> = (0..100_000)
        .map(|i| {
            if i % 2 == 0 {
                Field::Integer(i)
            } else {
                Field::Text(format!("f{i}é"))
            }
        })
        .collect();
    let want = native.sign(&core_fields(&huge)).to_string();
    let r = h.sign(kr, "alice", &huge);
    t.check(
        "huge list (100k fields): same MAC as native core",
        ensure(r.as_ref().is_ok_and(|m| m.as_ref() == Ok(&want)), || {
            format!("{r:?}")
        }),
    );
    let big = vec![Field::Text("x\u{1F600}\n".repeat(1 << 20))];
    let want = native.sign(&core_fields(&big)).to_string();
    let r = h.sign(kr, "alice", &big);
    t.check(
        "huge text (5 MiB): same MAC as native core",
        ensure(r.as_ref().is_ok_and(|m| m.as_ref() == Ok(&want)), || {
            format!("{r:?}")
        }),
    );

    let bad_utf8 = [
        Field::Text("a".into()),
        Field::TextBytes(vec![0x61, 0xff, 0xfe]),
    ];
    let r = h.sign(kr, "alice", &bad_utf8);
    t.check(
        "invalid UTF-8 text-bytes: sign -> invalid-utf8(1)",
        ensure(matches!(r, Ok(Err(CoordError::InvalidUtf8(1)))), || {
            format!("{r:?}")
        }),
    );
    let r = h.status(kr, "alice", Some("x"), &bad_utf8);
    t.check(
        "invalid UTF-8 text-bytes: status -> invalid-utf8(1)",
        ensure(matches!(r, Ok(Err(CoordError::InvalidUtf8(1)))), || {
            format!("{r:?}")
        }),
    );
    let r = h.canonical(&bad_utf8);
    t.check(
        "invalid UTF-8 text-bytes: canonical -> invalid-utf8(1)",
        ensure(matches!(r, Ok(Err(CoordError::InvalidUtf8(1)))), || {
            format!("{r:?}")
        }),
    );
    let ok_bytes = [Field::TextBytes("café".as_bytes().to_vec())];
    let r = h.canonical(&ok_bytes);
    t.check(
        "valid UTF-8 text-bytes encode like text",
        ensure(matches!(&r, Ok(Ok(b)) if b == br#"["caf\u00e9"]"#), || {
            format!("{r:?}")
        }),
    );
    let r = h.sign(kr, "alice", &[Field::Null, Field::Blob(vec![1, 2])]);
    t.check(
        "blob: sign -> blob(1)",
        ensure(matches!(r, Ok(Err(CoordError::Blob(1)))), || {
            format!("{r:?}")
        }),
    );

    let f = [Field::Text("stranger".into())];
    let r = h.sign(kr, "stranger", &f);
    t.check(
        "unknown agent: sign -> unknown-agent",
        ensure(
            matches!(&r, Ok(Err(CoordError::UnknownAgent(a))) if a == "stranger"),
            || format!("{r:?}"),
        ),
    );
    let r = h.verify(
        kr,
        "stranger",
        Some("P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I="),
        &f,
    );
    t.check(
        "unknown agent: verify -> false",
        ensure(matches!(r, Ok(Ok(false))), || format!("{r:?}")),
    );

    let f = [Field::Text("alice".into())];
    let long = "A".repeat(1 << 20);
    for mac in [
        "",
        "not base64 at all",
        "====",
        "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E",
        "\u{0}\u{FFFF}é",
        long.as_str(),
    ] {
        let r = h.status(kr, "alice", Some(mac), &f);
        let want = if mac.is_empty() {
            VerificationStatus::Unsigned
        } else {
            VerificationStatus::BadMac
        };
        let shown: String = mac.chars().take(24).collect();
        t.check(
            &format!("malformed MAC {shown:?}: status {}", status_name(want)),
            ensure(matches!(r, Ok(Ok(s)) if s == want), || format!("{r:?}")),
        );
        let r = h.verify(kr, "alice", Some(mac), &f);
        t.check(
            &format!("malformed MAC {shown:?}: verify false"),
            ensure(matches!(r, Ok(Ok(false))), || format!("{r:?}")),
        );
    }

    let r = h.add_key(kr, "bob", b"0123456789abcdef0123456789abcde");
    t.check(
        "31-byte key refused: key-too-short{31,32}",
        ensure(
            matches!(&r, Ok(Err(CoordError::KeyTooShort(l))) if l.len == 31 && l.min == 32),
            || format!("{r:?}"),
        ),
    );
    let r = h.add_key(kr, "bob", b"");
    t.check(
        "empty key refused",
        ensure(matches!(&r, Ok(Err(CoordError::KeyTooShort(_)))), || {
            format!("{r:?}")
        }),
    );
    for bad in ["", "../alice", "a/b", "tab\there"] {
        let r = h.add_key(kr, bad, ALICE);
        t.check(
            &format!("agent id {bad:?} refused"),
            ensure(matches!(&r, Ok(Err(CoordError::InvalidAgentId(_)))), || {
                format!("{r:?}")
            }),
        );
    }
    let r = h.keyring_from_keys(&[
        AgentKey {
            agent: "alice".into(),
            secret: ALICE.to_vec(),
            retired: false,
        },
        AgentKey {
            agent: "bob".into(),
            secret: b"short".to_vec(),
            retired: false,
        },
    ]);
    t.check(
        "from-keys with a short key -> key-too-short",
        ensure(matches!(&r, Ok(Err(CoordError::KeyTooShort(_)))), || {
            format!("{r:?}")
        }),
    );

    // Rotation: the old current key becomes retired; retired keys never sign.
    let k1 = b"carol-key-1-0123456789abcdef0123456789abcdef";
    let k2 = b"carol-key-2-0123456789abcdef0123456789abcdef";
    h.add_key(kr, "carol", k1)?.map_err(|e| format!("{e:?}"))?;
    let c = Claim {
        claimer: "carol".into(),
        task_id: "t1".into(),
        epoch: 1,
        expires_at: "x".into(),
    };
    let old = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_sign_claim(&mut h.store, kr, &c)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    h.add_key(kr, "carol", k2)?.map_err(|e| format!("{e:?}"))?;
    let st = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_claim_status(&mut h.store, kr, &c, Some(&old))
        .map_err(err)?;
    t.check(
        "rotation: old key's row is retired-key",
        ensure(st == VerificationStatus::RetiredKey, || format!("{st:?}")),
    );
    let new = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_sign_claim(&mut h.store, kr, &c)
        .map_err(err)?;
    let want = coord_core::SecretKey::new(k2)
        .map_err(|e| e.to_string())?
        .sign(&[
            coord_core::Field::Text("carol"),
            coord_core::Field::Text("t1"),
            coord_core::Field::Integer(1),
            coord_core::Field::Text("x"),
        ]);
    t.check(
        "rotation: new rows sign with the new key",
        ensure(new.as_deref() == Ok(want.to_string().as_str()), || {
            format!("{new:?}")
        }),
    );
    h.add_retired_key(kr, "dave", b"dave-old-0123456789abcdef0123456789abcdef")?
        .map_err(|e| format!("{e:?}"))?;
    let r = h.sign(kr, "dave", &f);
    t.check(
        "retired-only agent: sign -> no-current-key",
        ensure(
            matches!(&r, Ok(Err(CoordError::NoCurrentKey(a))) if a == "dave"),
            || format!("{r:?}"),
        ),
    );
    let fp = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_fingerprint(&mut h.store, kr, "alice")
        .map_err(err)?;
    t.check(
        "fingerprint matches the native core's",
        ensure(fp.as_deref() == Some(native.fingerprint().as_str()), || {
            format!("{fp:?}")
        }),
    );
    let fp = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_fingerprint(&mut h.store, kr, "dave")
        .map_err(err)?;
    t.check(
        "no fingerprint without a current key",
        ensure(fp.is_none(), || format!("{fp:?}")),
    );
    let agents = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_agents(&mut h.store, kr)
        .map_err(err)?;
    t.check(
        "agents listed in order",
        ensure(agents == ["alice", "carol", "dave"], || {
            format!("{agents:?}")
        }),
    );
    let removed = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_remove_agent(&mut h.store, kr, "carol")
        .map_err(err)?;
    let st = h
        .signer
        .coord_signing_signing()
        .keyring()
        .call_claim_status(&mut h.store, kr, &c, Some(&old))
        .map_err(err)?;
    t.check(
        "remove-agent forgets its keys",
        ensure(removed && st == VerificationStatus::UnknownAgent, || {
            format!("{removed} {st:?}")
        }),
    );
    let r = h
        .signer
        .coord_signing_signing()
        .call_validate_agent_id(&mut h.store, "ok-agent")
        .map_err(err)?;
    let r2 = h
        .signer
        .coord_signing_signing()
        .call_validate_agent_id(&mut h.store, "..")
        .map_err(err)?;
    t.check(
        "validate-agent-id",
        ensure(
            r.is_ok() && matches!(r2, Err(CoordError::InvalidAgentId(_))),
            || format!("{r:?} {r2:?}"),
        ),
    );
    // After all the refusals above the instance is still alive.
    let r = h.sign(kr, "alice", &[]);
    t.check(
        "instance still usable after bad input (signs [])",
        ensure(
            matches!(&r, Ok(Ok(m)) if m == "YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw="),
            || format!("{r:?}"),
        ),
    );
    Ok(())
}

fn imports(t: &mut Tally, engine: &Engine, component: &Component) {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    println!("component imports: {imports:?}");
    println!("component exports: {exports:?}");
    t.check(
        "component imports nothing",
        ensure(imports.is_empty(), || format!("{imports:?}")),
    );
    t.check(
        "component exports exactly coord:signing/signing@0.1.0",
        ensure(exports == ["coord:signing/signing@0.1.0"], || {
            format!("{exports:?}")
        }),
    );
}

fn check(args: &[String]) -> Res<Tally> {
    let [component, vectors_path, rows_path, secrets] = args else {
        return Err("usage: check COMPONENT VECTORS FIXTURE_ROWS SECRETS_DIR".into());
    };
    let engine = Engine::new(&Config::new()).map_err(err)?;
    let component = Component::from_file(&engine, component).map_err(err)?;
    let read_json = |p: &str| -> Res<Value> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{p}: {e}"))
    };
    let v = read_json(vectors_path)?;
    let rows = read_json(rows_path)?;
    let mut t = Tally::default();
    imports(&mut t, &engine, &component);
    // A fresh instance for each group, as a host would have.
    let mut h = Host::load(&engine, &component)?;
    if let Err(e) = vectors(&mut t, &mut h, &v) {
        t.check("vectors", Err(e));
    }
    let mut h = Host::load(&engine, &component)?;
    if let Err(e) = fixture(&mut t, &mut h, &rows, Path::new(secrets)) {
        t.check("fixture", Err(e));
    }
    let mut h = Host::load(&engine, &component)?;
    if let Err(e) = bad_input(&mut t, &mut h) {
        t.check("bad input", Err(e));
    }
    Ok(t)
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn bench(args: &[String]) -> Res<()> {
    let [component] = args else {
        return Err("usage: bench COMPONENT".into());
    };
    let engine = Engine::new(&Config::new()).map_err(err)?;
    let component = Component::from_file(&engine, component).map_err(err)?;
    let mut h = Host::load(&engine, &component)?;
    let kr = h.keyring()?;
    h.add_key(kr, "alice", ALICE)?
        .map_err(|e| format!("{e:?}"))?;
    let claim = Claim {
        claimer: "alice".into(),
        task_id: "github:gptme/gptme#2362".into(),
        epoch: 1,
        expires_at: "2076-11-14 06:05:02".into(),
    };
    let fields = [
        coord_core::Field::Text("alice"),
        coord_core::Field::Text("github:gptme/gptme#2362"),
        coord_core::Field::Integer(1),
        coord_core::Field::Text("2076-11-14 06:05:02"),
    ];
    let native = coord_core::SecretKey::new(ALICE).map_err(|e| e.to_string())?;
    let keys = coord_core::AgentKeys::current(native.clone());
    let mac = native.sign(&fields).to_string();
    let n = 20_000;
    let api = h.signer.coord_signing_signing().keyring();
    let mut failed = false;
    let wasm_sign = per_call(n, || {
        failed |= api
            .call_sign_claim(&mut h.store, kr, &claim)
            .map(|r| r.is_err())
            .unwrap_or(true);
    });
    let wasm_verify = per_call(n, || {
        failed |= !api
            .call_verify_claim(&mut h.store, kr, &claim, Some(&mac))
            .unwrap_or(false);
    });
    let native_sign = per_call(n, || {
        std::hint::black_box(native.sign(std::hint::black_box(&fields)).to_string());
    });
    let native_verify = per_call(n, || {
        std::hint::black_box(keys.status(Some(std::hint::black_box(&mac)), &fields));
    });
    if failed {
        return Err("a benchmarked call failed".into());
    }
    println!(
        "per call, {n} calls of a claim (alice, github:gptme/gptme#2362, 1, 2076-11-14 06:05:02):"
    );
    println!(
        "  sign:   component {wasm_sign:8.0} ns   native {native_sign:8.0} ns   ratio {:.1}x",
        wasm_sign / native_sign
    );
    println!(
        "  verify: component {wasm_verify:8.0} ns   native {native_verify:8.0} ns   ratio {:.1}x",
        wasm_verify / native_verify
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => check(&args[1..]).map(|t| {
            println!("rust host: {} passed, {} failed", t.passed, t.failed);
            t.failed == 0
        }),
        Some("bench") => bench(&args[1..]).map(|()| true),
        _ => Err("usage: coord-wasmtime-host check|bench ...".into()),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
