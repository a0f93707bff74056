#!/usr/bin/env bash
# The CLI workspace's tests (coord-db and the coord command): builds the
# loadable extension (the interop tests load it into /usr/bin/sqlite3), runs
# clippy on that workspace, then its tests in release mode, sharing that
# build with `cargo run --release ... -- demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p coord-sqlite
cargo clippy --manifest-path crates/coord-cli/Cargo.toml --workspace --all-targets --release -- -D warnings
cargo test --release --manifest-path crates/coord-cli/Cargo.toml --workspace
