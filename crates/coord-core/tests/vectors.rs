//! Every vector in tests/vectors.json, through the core.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use coord_core::{canonical, AgentKeys, Field, SecretKey, Status};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors.json"))
        .expect("parse vectors.json")
}

fn fields(v: &Value) -> Vec<Field<'_>> {
    v.as_array()
        .expect("fields array")
        .iter()
        .map(|f| match f {
            Value::Null => Field::Null,
            Value::String(s) => Field::Text(s),
            Value::Number(n) if n.is_i64() => Field::Integer(n.as_i64().unwrap()),
            Value::Number(n) => Field::Real(n.as_f64().unwrap()),
            other => panic!("unexpected field {other}"),
        })
        .collect()
}

fn keys(v: &Value, agent: &str) -> Option<AgentKeys> {
    let k = v["keys"].get(agent)?;
    let key = |s: &Value| SecretKey::new(s.as_str().unwrap().as_bytes()).unwrap();
    Some(AgentKeys {
        current: k.get("current").map(key),
        retired: k
            .get("retired")
            .map(|r| r.as_array().unwrap().iter().map(key).collect())
            .unwrap_or_default(),
    })
}

#[test]
fn sign_vectors() {
    let v = vectors();
    let cases = v["sign"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let desc = case["description"].as_str().unwrap();
        let f = fields(&case["fields"]);
        assert_eq!(
            String::from_utf8(canonical(&f)).unwrap(),
            case["canonical"].as_str().unwrap(),
            "{desc}"
        );
        let agent = case["agent"].as_str().unwrap();
        let k = keys(&v, agent).unwrap();
        let mac = k.current.as_ref().unwrap().sign(&f).to_string();
        assert_eq!(mac, case["mac"].as_str().unwrap(), "{desc}");
        assert_eq!(k.status(Some(&mac), &f), Status::Verified, "{desc}");
    }
}

#[test]
fn verify_vectors() {
    let v = vectors();
    for case in v["verify"].as_array().unwrap() {
        let desc = case["description"].as_str().unwrap();
        let agent = case["agent"].as_str().unwrap();
        let k = keys(&v, agent);
        let got = coord_core::status(k.as_ref(), case["mac"].as_str(), &fields(&case["fields"]));
        assert_eq!(got.as_str(), case["status"].as_str().unwrap(), "{desc}");
    }
}
