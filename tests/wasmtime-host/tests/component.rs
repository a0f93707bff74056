//! coord's WASI component in wasmtime (the `wasmtime` crate): every vector of
//! tests/vectors.json, every row of both gptme fixtures, bad input, against
//! the native core where it can.
//!
//! ```sh
//! COORD_WASM=... COORD_FIXTURE_SHARED=... COORD_FIXTURE_GPTME=... \
//!     cargo test -p coord-wasmtime-host --profile host
//! ```
//!
//! tests/component.sh sets the variables: `COORD_WASM` is the component, each
//! fixture directory holds `rows.json` (tests/component/fixture_rows.py) and
//! `secrets/`. A test whose input is missing fails, naming the variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use coord_wasmtime_host::{
    compile, AgentKey, Claim, Error as CoordError, Field, Host, Message, VerificationStatus,
};
use serde_json::Value;
use wasmtime::component::{Component, ResourceAny};
use wasmtime::Engine;

type Res<T> = Result<T, String>;

/// The path in `$name`; panics, naming it, if it is unset or missing.
fn input(name: &str) -> PathBuf {
    let value = std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set (tests/component.sh sets it)"));
    let path = PathBuf::from(value);
    assert!(
        path.exists(),
        "{name}={}: no such file or directory",
        path.display()
    );
    path
}

/// The component, compiled once for every test.
fn compiled() -> &'static (Engine, Component) {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = input("COORD_WASM");
        compile(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// A fresh instance, as a host would have.
fn host() -> Host {
    let (engine, component) = compiled();
    Host::load(engine, component).expect("the component instantiates with an empty linker")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vectors() -> Value {
    read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors.json"))
}

fn err(e: impl std::fmt::Display) -> String {
    format!("wasmtime: {e}")
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// Runs `check` on each case; fails listing every case that failed.
fn each_case(what: &str, cases: &[Value], mut check: impl FnMut(&Value) -> Res<()>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check(case).err().map(|e| {
                let desc = case["description"].as_str().unwrap_or("?");
                format!("{what}: {desc}: {e}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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

// --- the component's world -----------------------------------------------------

fn world(imports: bool) -> Vec<String> {
    let (engine, component) = compiled();
    let ty = component.component_type();
    if imports {
        ty.imports(engine).map(|(n, _)| n.to_owned()).collect()
    } else {
        ty.exports(engine).map(|(n, _)| n.to_owned()).collect()
    }
}

#[test]
fn component_imports_nothing() {
    assert_eq!(world(true), Vec::<String>::new());
}

#[test]
fn component_exports_exactly_the_signing_interface() {
    assert_eq!(world(false), ["coord:signing/signing@0.1.0"]);
}

// --- vectors -------------------------------------------------------------------

/// A keyring of the vectors' keys, retired ones included.
fn vector_keyring(h: &mut Host, v: &Value) -> ResourceAny {
    let mut keys = Vec::new();
    for (agent, k) in v["keys"].as_object().expect("keys") {
        for retired in k["retired"].as_array().into_iter().flatten() {
            keys.push(AgentKey {
                agent: agent.clone(),
                secret: retired.as_str().expect("retired key").as_bytes().to_vec(),
                retired: true,
            });
        }
        keys.push(AgentKey {
            agent: agent.clone(),
            secret: k["current"]
                .as_str()
                .expect("current key")
                .as_bytes()
                .to_vec(),
            retired: false,
        });
    }
    h.keyring_from_keys(&keys)
        .expect("wasmtime")
        .expect("from-keys")
}

#[test]
fn at_least_15_sign_vectors() {
    let n = vectors()["sign"].as_array().expect("sign").len();
    assert!(n >= 15, "{n} sign vectors");
}

/// Each sign vector: its canonical bytes and MAC, and the same MAC in the
/// claim and message forms, whose field lists are the vector's.
fn sign_case(h: &mut Host, kr: ResourceAny, case: &Value) -> Res<()> {
    let desc = case["description"].as_str().unwrap_or("?");
    let f = json_fields(&case["fields"])?;
    let agent = case["agent"].as_str().ok_or("agent")?;
    let want_mac = case["mac"].as_str().ok_or("mac")?;
    let bytes = h
        .canonical(&f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    let want = case["canonical"].as_str().ok_or("canonical")?;
    ensure(bytes == want.as_bytes(), || {
        format!(
            "canonical {:?} != {want:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    let mac = h
        .sign(kr, agent, &f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    ensure(mac == want_mac, || format!("mac {mac} != {want_mac}"))?;
    let st = h
        .status(kr, agent, Some(&mac), &f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    ensure(st == VerificationStatus::Verified, || {
        format!("status {st:?}")
    })?;
    let ok = h
        .verify(kr, agent, Some(&mac), &f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    ensure(ok, || "verify false".into())?;
    if desc.starts_with("claim") {
        let c = as_claim(&f).ok_or("not a claim")?;
        let m = h.sign_claim(kr, &c).map_err(err)?;
        ensure(m.as_deref() == Ok(want_mac), || format!("sign-claim {m:?}"))?;
        let st = h.claim_status(kr, &c, Some(want_mac)).map_err(err)?;
        ensure(st == VerificationStatus::Verified, || {
            format!("claim-status {st:?}")
        })?;
        let back = h.claim_fields(&c).map_err(err)?;
        ensure(back == f, || format!("claim-fields {back:?}"))?;
    }
    if desc.starts_with("message") {
        let msg = as_message(&f).ok_or("not a message")?;
        let m = h.sign_message(kr, &msg).map_err(err)?;
        ensure(m.as_deref() == Ok(want_mac), || {
            format!("sign-message {m:?}")
        })?;
        let ok = h.verify_message(kr, &msg, Some(want_mac)).map_err(err)?;
        ensure(ok, || "verify-message false".into())?;
        let back = h.message_fields(&msg).map_err(err)?;
        ensure(back == f, || format!("message-fields {back:?}"))?;
    }
    Ok(())
}

#[test]
fn sign_vectors() {
    let v = vectors();
    let mut h = host();
    let kr = vector_keyring(&mut h, &v);
    each_case("sign vector", v["sign"].as_array().expect("sign"), |case| {
        sign_case(&mut h, kr, case)
    });
}

/// Each verify vector: its status and verdict, in the claim form too.
fn verify_case(h: &mut Host, kr: ResourceAny, case: &Value) -> Res<()> {
    let f = json_fields(&case["fields"])?;
    let agent = case["agent"].as_str().ok_or("agent")?;
    let mac = case["mac"].as_str();
    let want = case["status"].as_str().ok_or("status")?;
    let st = h
        .status(kr, agent, mac, &f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    ensure(status_name(st) == want, || {
        format!("status {st:?}, want {want}")
    })?;
    let ok = h
        .verify(kr, agent, mac, &f)
        .map_err(err)?
        .map_err(|e| format!("{e:?}"))?;
    let authentic = want == "verified" || want == "retired_key";
    ensure(ok == authentic, || format!("verify {ok}"))?;
    if let Some(c) = as_claim(&f) {
        let st = h.claim_status(kr, &c, mac).map_err(err)?;
        ensure(status_name(st) == want, || format!("claim-status {st:?}"))?;
        let ok = h.verify_claim(kr, &c, mac).map_err(err)?;
        ensure(ok == authentic, || format!("verify-claim {ok}"))?;
    }
    Ok(())
}

#[test]
fn verify_vectors() {
    let v = vectors();
    let mut h = host();
    let kr = vector_keyring(&mut h, &v);
    each_case(
        "verify vector",
        v["verify"].as_array().expect("verify"),
        |case| verify_case(&mut h, kr, case),
    );
}

// --- the two fixtures ----------------------------------------------------------

/// A keyring with the fixture's `secrets/` loaded, and how many keys.
fn fixture_keyring(h: &mut Host, dir: &Path) -> (ResourceAny, usize) {
    let kr = h.keyring().expect("keyring");
    let secrets = dir.join("secrets");
    let mut entries: Vec<_> = std::fs::read_dir(&secrets)
        .unwrap_or_else(|e| panic!("{}: {e}", secrets.display()))
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut loaded = 0;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(agent) = name.strip_suffix(".secret") else {
            continue;
        };
        let bytes = std::fs::read(e.path()).expect("read a secret");
        h.add_key(kr, agent, bytes.trim_ascii())
            .expect("wasmtime")
            .unwrap_or_else(|e| panic!("add-key {agent}: {e:?}"));
        loaded += 1;
    }
    (kr, loaded)
}

fn fixture_keys_loaded(var: &str) {
    let (_, loaded) = fixture_keyring(&mut host(), &input(var));
    assert!(loaded >= 2, "{loaded} keys");
}

/// expected.json's verdicts for one table.
fn expected(rows: &Value, table: &str) -> BTreeMap<String, bool> {
    serde_json::from_value(rows["expected"][table].clone()).expect("expected.json")
}

fn fixture_work_rows(var: &str) {
    let dir = input(var);
    let rows = read_json(&dir.join("rows.json"));
    let mut h = host();
    let (kr, _) = fixture_keyring(&mut h, &dir);
    let mut got = BTreeMap::new();
    for w in rows["work"].as_array().expect("work") {
        let task = w["task_id"].as_str().expect("task_id");
        let epoch = w["epoch"].as_i64().expect("epoch");
        let mac = w["hmac"].as_str();
        let verified = match (w["claimer"].as_str(), w["expires_at"].as_str()) {
            (Some(claimer), Some(expires_at)) => {
                let c = Claim {
                    claimer: claimer.into(),
                    task_id: task.into(),
                    epoch,
                    expires_at: expires_at.into(),
                };
                h.verify_claim(kr, &c, mac).expect("wasmtime")
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
                h.verify(kr, claimer.unwrap_or(""), mac, &f)
                    .expect("wasmtime")
                    .unwrap_or_else(|e| panic!("verify {task}: {e:?}"))
            }
        };
        got.insert(task.to_owned(), verified);
    }
    assert_eq!(got, expected(&rows, "work"));
}

fn fixture_message_rows(var: &str) {
    let dir = input(var);
    let rows = read_json(&dir.join("rows.json"));
    let mut h = host();
    let (kr, _) = fixture_keyring(&mut h, &dir);
    let mut got = BTreeMap::new();
    for m in rows["messages"].as_array().expect("messages") {
        let msg = Message {
            sender: m["sender"].as_str().expect("sender").into(),
            recipient: m["recipient"].as_str().map(Into::into),
            channel: m["channel"].as_str().expect("channel").into(),
            body: m["body"].as_str().expect("body").into(),
        };
        let verified = h
            .verify_message(kr, &msg, m["hmac"].as_str())
            .expect("wasmtime");
        got.insert(m["id"].as_i64().expect("id").to_string(), verified);
    }
    assert_eq!(got, expected(&rows, "messages"));
}

/// The fixture tests, once per fixture directory.
macro_rules! fixture_tests {
    ($($module:ident: $var:literal),*) => {$(
        mod $module {
            #[test]
            fn keys_loaded() {
                super::fixture_keys_loaded($var);
            }
            #[test]
            fn work_rows_verify_as_expected_json_says() {
                super::fixture_work_rows($var);
            }
            #[test]
            fn message_rows_verify_as_expected_json_says() {
                super::fixture_message_rows($var);
            }
        }
    )*};
}

fixture_tests!(shared_fixture: "COORD_FIXTURE_SHARED", gptme_written_fixture: "COORD_FIXTURE_GPTME");

// --- bad input -----------------------------------------------------------------

const ALICE: &[u8] = b"alice-secret-0123456789abcdef0123456789abcdef";

fn native_alice() -> coord_core::SecretKey {
    coord_core::SecretKey::new(ALICE).expect("alice's key")
}

/// A fresh instance and a keyring holding alice's key.
fn alice() -> (Host, ResourceAny) {
    let mut h = host();
    let kr = h.keyring().expect("keyring");
    h.add_key(kr, "alice", ALICE)
        .expect("wasmtime")
        .expect("alice's key");
    (h, kr)
}

fn huge_list() -> Vec<Field> {
    (0..100_000)
        .map(|i| {
            if i % 2 == 0 {
                Field::Integer(i)
            } else {
                Field::Text(format!("f{i}é"))
            }
        })
        .collect()
}

/// 5 MiB of UTF-8.
fn huge_text() -> Vec<Field> {
    vec![Field::Text("x\u{1F600}\n".repeat(1 << 20))]
}

#[test]
fn empty_list_canonical_is_brackets() {
    let r = host().canonical(&[]).expect("wasmtime");
    assert_eq!(r, Ok(b"[]".to_vec()));
}

#[test]
fn huge_list_same_mac_as_native_core() {
    let (mut h, kr) = alice();
    let huge = huge_list();
    let want = native_alice().sign(&core_fields(&huge)).to_string();
    assert_eq!(h.sign(kr, "alice", &huge).expect("wasmtime"), Ok(want));
}

#[test]
fn huge_text_same_mac_as_native_core() {
    let (mut h, kr) = alice();
    let big = huge_text();
    let want = native_alice().sign(&core_fields(&big)).to_string();
    assert_eq!(h.sign(kr, "alice", &big).expect("wasmtime"), Ok(want));
}

#[test]
fn valid_utf8_text_bytes_encode_like_text() {
    let r = host()
        .canonical(&[Field::TextBytes("café".as_bytes().to_vec())])
        .expect("wasmtime");
    assert_eq!(r, Ok(br#"["caf\u00e9"]"#.to_vec()));
}

#[test]
fn unknown_agent_verify_false() {
    let (mut h, kr) = alice();
    let r = h
        .verify(
            kr,
            "stranger",
            Some("P9oW9Pk2MPvEywI7ec/qxd5SwqWsM148KxpTntkdp+I="),
            &[Field::Text("stranger".into())],
        )
        .expect("wasmtime");
    assert_eq!(r, Ok(false));
}

fn malformed_macs() -> Vec<String> {
    [
        "",
        "not base64 at all",
        "====",
        "61REQfKaPiBoFJmqKCe2lUS8FflwhV/w9YhluVP1r9E",
        "\u{0}\u{FFFF}é",
    ]
    .into_iter()
    .map(String::from)
    .chain(["A".repeat(1 << 20)])
    .collect()
}

#[test]
fn malformed_macs_status_unsigned_or_bad_mac_and_verify_false() {
    let (mut h, kr) = alice();
    let f = [Field::Text("alice".into())];
    let mut failures = Vec::new();
    for mac in malformed_macs() {
        let want = if mac.is_empty() {
            VerificationStatus::Unsigned
        } else {
            VerificationStatus::BadMac
        };
        let shown: String = mac.chars().take(24).collect();
        let st = h.status(kr, "alice", Some(&mac), &f).expect("wasmtime");
        if st != Ok(want) {
            failures.push(format!("{shown:?}: status {st:?}, want {want:?}"));
        }
        let ok = h.verify(kr, "alice", Some(&mac), &f).expect("wasmtime");
        if ok != Ok(false) {
            failures.push(format!("{shown:?}: verify {ok:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A call the component must refuse with its `error` variant, never a trap.
type Call = Box<dyn Fn(&mut Host, ResourceAny) -> wasmtime::Result<Result<(), CoordError>>>;

/// Whether an error is the one expected.
type Want = fn(&CoordError) -> bool;

/// Every refusal: a name, the call on alice's keyring, and the error expected.
fn refusals() -> Vec<(String, Call, Want)> {
    fn drop_ok<T>(
        r: wasmtime::Result<Result<T, CoordError>>,
    ) -> wasmtime::Result<Result<(), CoordError>> {
        r.map(|r| r.map(|_| ()))
    }
    let bad_utf8 = || {
        vec![
            Field::Text("a".into()),
            Field::TextBytes(vec![0x61, 0xff, 0xfe]),
        ]
    };
    let mut out: Vec<(String, Call, Want)> = vec![
        (
            "invalid UTF-8 text-bytes: sign -> invalid-utf8(1)".into(),
            Box::new(move |h, kr| drop_ok(h.sign(kr, "alice", &bad_utf8()))),
            |e| matches!(e, CoordError::InvalidUtf8(1)),
        ),
        (
            "invalid UTF-8 text-bytes: status -> invalid-utf8(1)".into(),
            Box::new(move |h, kr| drop_ok(h.status(kr, "alice", Some("x"), &bad_utf8()))),
            |e| matches!(e, CoordError::InvalidUtf8(1)),
        ),
        (
            "invalid UTF-8 text-bytes: canonical -> invalid-utf8(1)".into(),
            Box::new(move |h, _| drop_ok(h.canonical(&bad_utf8()))),
            |e| matches!(e, CoordError::InvalidUtf8(1)),
        ),
        (
            "blob: sign -> blob(1)".into(),
            Box::new(|h, kr| drop_ok(h.sign(kr, "alice", &[Field::Null, Field::Blob(vec![1, 2])]))),
            |e| matches!(e, CoordError::Blob(1)),
        ),
        (
            "unknown agent: sign -> unknown-agent".into(),
            Box::new(|h, kr| drop_ok(h.sign(kr, "stranger", &[Field::Text("stranger".into())]))),
            |e| matches!(e, CoordError::UnknownAgent(a) if a == "stranger"),
        ),
        (
            "31-byte key refused: key-too-short{31,32}".into(),
            Box::new(|h, kr| h.add_key(kr, "bob", b"0123456789abcdef0123456789abcde")),
            |e| matches!(e, CoordError::KeyTooShort(l) if l.len == 31 && l.min == 32),
        ),
        (
            "empty key refused".into(),
            Box::new(|h, kr| h.add_key(kr, "bob", b"")),
            |e| matches!(e, CoordError::KeyTooShort(_)),
        ),
        (
            "from-keys with a short key -> key-too-short".into(),
            Box::new(|h, _| {
                drop_ok(h.keyring_from_keys(&[
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
                ]))
            }),
            |e| matches!(e, CoordError::KeyTooShort(_)),
        ),
        (
            "validate-agent-id(\"..\") -> invalid-agent-id".into(),
            Box::new(|h, _| h.validate_agent_id("..")),
            |e| matches!(e, CoordError::InvalidAgentId(_)),
        ),
    ];
    for agent in ["", "../alice", "a/b", "tab\there"] {
        out.push((
            format!("agent id {agent:?} refused"),
            Box::new(move |h, kr| h.add_key(kr, agent, ALICE)),
            |e| matches!(e, CoordError::InvalidAgentId(_)),
        ));
    }
    out
}

#[test]
fn bad_input_is_refused_with_the_right_error() {
    let mut failures = Vec::new();
    for (name, call, want) in refusals() {
        let (mut h, kr) = alice();
        match call(&mut h, kr) {
            Ok(Err(e)) if want(&e) => {}
            other => failures.push(format!("{name}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validate_agent_id_accepts_a_plain_id() {
    let r = host().validate_agent_id("ok-agent").expect("wasmtime");
    assert_eq!(r, Ok(()));
}

#[test]
fn instance_still_usable_after_bad_input() {
    // Every refusal, the malformed MACs and both huge inputs on one keyring.
    let (mut h, kr) = alice();
    for (name, call, _) in refusals() {
        let r = call(&mut h, kr);
        assert!(matches!(r, Ok(Err(_))), "{name}: {r:?}");
    }
    let f = [Field::Text("alice".into())];
    for mac in malformed_macs() {
        h.status(kr, "alice", Some(&mac), &f)
            .expect("wasmtime")
            .expect("status");
        h.verify(kr, "alice", Some(&mac), &f)
            .expect("wasmtime")
            .expect("verify");
    }
    h.sign(kr, "alice", &huge_list())
        .expect("wasmtime")
        .expect("sign");
    h.sign(kr, "alice", &huge_text())
        .expect("wasmtime")
        .expect("sign");
    let r = h.sign(kr, "alice", &[]).expect("wasmtime");
    assert_eq!(
        r.as_deref(),
        Ok("YDWwv2koa0aEqaOJPXxspQ4zZj47GmYtZsPNOWd57tw=")
    );
}

// --- rotation and retired keys -------------------------------------------------

const CAROL_1: &[u8] = b"carol-key-1-0123456789abcdef0123456789abcdef";
const CAROL_2: &[u8] = b"carol-key-2-0123456789abcdef0123456789abcdef";

fn carol_claim() -> Claim {
    Claim {
        claimer: "carol".into(),
        task_id: "t1".into(),
        epoch: 1,
        expires_at: "x".into(),
    }
}

/// alice; carol rotated from `CAROL_1` to `CAROL_2` (and the MAC of
/// `carol_claim()` under `CAROL_1`); dave with a retired key only.
fn rotated() -> (Host, ResourceAny, String) {
    let (mut h, kr) = alice();
    h.add_key(kr, "carol", CAROL_1)
        .expect("wasmtime")
        .expect("carol 1");
    let old = h
        .sign_claim(kr, &carol_claim())
        .expect("wasmtime")
        .expect("sign-claim");
    h.add_key(kr, "carol", CAROL_2)
        .expect("wasmtime")
        .expect("carol 2");
    h.add_retired_key(kr, "dave", b"dave-old-0123456789abcdef0123456789abcdef")
        .expect("wasmtime")
        .expect("dave");
    (h, kr, old)
}

#[test]
fn rotation_old_keys_row_is_retired_key() {
    let (mut h, kr, old) = rotated();
    let st = h
        .claim_status(kr, &carol_claim(), Some(&old))
        .expect("wasmtime");
    assert_eq!(st, VerificationStatus::RetiredKey);
}

#[test]
fn rotation_new_rows_sign_with_the_new_key() {
    let (mut h, kr, _) = rotated();
    let want = coord_core::SecretKey::new(CAROL_2)
        .expect("carol's key")
        .sign(&[
            coord_core::Field::Text("carol"),
            coord_core::Field::Text("t1"),
            coord_core::Field::Integer(1),
            coord_core::Field::Text("x"),
        ])
        .to_string();
    assert_eq!(
        h.sign_claim(kr, &carol_claim()).expect("wasmtime"),
        Ok(want)
    );
}

#[test]
fn retired_only_agent_cannot_sign() {
    let (mut h, kr, _) = rotated();
    let r = h
        .sign(kr, "dave", &[Field::Text("alice".into())])
        .expect("wasmtime");
    assert_eq!(r, Err(CoordError::NoCurrentKey("dave".into())));
}

#[test]
fn fingerprint_matches_the_native_cores() {
    let (mut h, kr) = alice();
    let fp = h.fingerprint(kr, "alice").expect("wasmtime");
    assert_eq!(fp, Some(native_alice().fingerprint()));
}

#[test]
fn no_fingerprint_without_a_current_key() {
    let (mut h, kr, _) = rotated();
    assert_eq!(h.fingerprint(kr, "dave").expect("wasmtime"), None);
}

#[test]
fn agents_listed_in_order() {
    let (mut h, kr, _) = rotated();
    assert_eq!(h.agents(kr).expect("wasmtime"), ["alice", "carol", "dave"]);
}

#[test]
fn remove_agent_forgets_its_keys() {
    let (mut h, kr, old) = rotated();
    assert!(h.remove_agent(kr, "carol").expect("wasmtime"));
    let st = h
        .claim_status(kr, &carol_claim(), Some(&old))
        .expect("wasmtime");
    assert_eq!(st, VerificationStatus::UnknownAgent);
}
