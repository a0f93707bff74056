#!/usr/bin/env bash
# Soak: tests/hardening/soak.sh [seconds]  (default 120; 8 processes, WAL;
# then a full replay of the signed event log and a timed coord audit).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p coord-sqlite -q
cargo build --release --manifest-path crates/coord-cli/Cargo.toml -q
exec /usr/bin/python3 tests/hardening/soak.py "${1:-120}"
