//! Many `coord claim` processes for the same tasks, released together:
//! exactly one winner per task, and the database agrees with the winners.
#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{by, Env, COORD};

const AGENTS: usize = 8;
const TASKS: [&str; 3] = ["race-a", "race-b", "race-c"];

#[test]
fn exactly_one_winner_per_task() {
    let e = Env::new();
    let agents: Vec<String> = (0..AGENTS).map(|i| format!("racer-{i}")).collect();
    for a in &agents {
        e.keygen(a);
    }
    let go = e.path().join("go");
    let mut ready = Vec::new();
    let mut children = Vec::new();
    for task in TASKS {
        for a in &agents {
            let flag = e.path().join(format!("ready-{task}-{a}"));
            // Each process announces itself, then waits for the start file:
            // the barrier is the file, not a sleep.
            let script = format!(
                "touch '{}'; while [ ! -e '{}' ]; do sleep 0.005; done; exec \"$0\" \"$@\"",
                flag.display(),
                go.display()
            );
            let mut c = e.program("/bin/sh");
            c.args(["-c", &script, COORD])
                .args([
                    "--json",
                    "--busy-timeout",
                    "60000",
                    "--as",
                    a,
                    "claim",
                    task,
                    "--ttl",
                    "30",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            children.push((task, a.clone(), c.spawn().unwrap()));
            ready.push(flag);
        }
    }
    let start = Instant::now();
    while !ready.iter().all(|f| f.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "processes never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&go, b"").unwrap();

    let mut winners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut denied: BTreeMap<&str, usize> = BTreeMap::new();
    for (task, agent, child) in children {
        let o = child.wait_with_output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("{agent} {task}: {}", String::from_utf8_lossy(&o.stderr)));
        match (o.status.code(), v["outcome"].as_str()) {
            (Some(0), Some("granted")) => {
                assert_eq!(v["epoch"], 1);
                winners.entry(task).or_default().push(agent);
            }
            (Some(1), Some("denied")) => *denied.entry(task).or_default() += 1,
            other => panic!("{agent} {task}: unexpected {other:?}: {v}"),
        }
    }
    let rows = e.json(0, &["list", "claimed"]);
    for task in TASKS {
        let w = &winners[task];
        assert_eq!(w.len(), 1, "{task}: winners {w:?}");
        assert_eq!(denied[task], AGENTS - 1, "{task}");
        let r = by(&rows, "task_id", task);
        assert_eq!(r["claimer"], w[0].as_str());
        assert_eq!(r["epoch"], 1);
        assert_eq!(r["verification"], "verified");
        eprintln!("{task}: won by {}, {} denied", w[0], denied[task]);
    }
}
