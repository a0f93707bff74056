//! Replays every kept input through the fuzz properties in a plain test:
//! the minimized corpus (`corpus/<target>/`) and every input that ever
//! crashed a target (`regressions/<target>/`, named after the bug).

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            eprintln!("{target}: {}", p.display());
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn canonical_inputs() {
    assert!(replay("canonical", coord_fuzz::check_canonical) > 0);
}

#[test]
fn mac_inputs() {
    assert!(replay("mac", coord_fuzz::check_mac) > 0);
}

#[test]
fn agent_id_inputs() {
    assert!(replay("agent_id", coord_fuzz::check_agent_id) > 0);
}

#[test]
fn sql_functions_inputs() {
    assert!(replay("sql_functions", coord_fuzz::sql::check_sql) > 0);
}
