#!/usr/bin/env bash
# Crash loop: tests/hardening/crash.sh [iterations]  (default 300, half WAL,
# half rollback journal; synchronous=FULL; writers killed with SIGKILL;
# the signed event log checked after every reopen, coord audit at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p coord-sqlite -q
cargo build --release --manifest-path crates/coord-cli/Cargo.toml -q
exec /usr/bin/python3 tests/hardening/crash.py "${1:-300}"
