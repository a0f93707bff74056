#!/usr/bin/env bash
# coord-cli's tests: builds the loadable extension (the interop tests load it
# into /usr/bin/sqlite3), then runs the CLI's own workspace in release mode,
# sharing that build with `cargo run --release ... -- demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p coord-sqlite
cargo test --release --manifest-path crates/coord-cli/Cargo.toml
