#!/usr/bin/env bash
# Soak: tests/hardening/soak.sh [seconds]  (default 120; 8 processes, WAL).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p coord-sqlite -q
exec /usr/bin/python3 tests/hardening/soak.py "${1:-120}"
