#!/usr/bin/env bash
# A remote `coord list` after one new event, 100,000 tasks against 100, on
# one sqld node on loopback (issue 12; bench/remote_list.py says how).
# Needs tests/setup.sh's sqld. usage: bash bench/remote_list.sh [big] [small] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/cluster/sqld-pin.sh
[ -x "$SQLD_BIN" ] || { echo "no sqld at $SQLD_BIN: run tests/setup.sh" >&2; exit 2; }
cargo build --release -p coord-sqlite >&2
cargo build --release --manifest-path crates/coord-cli/Cargo.toml >&2
exec /usr/bin/python3 bench/remote_list.py "$PWD/$SQLD_BIN" "$PWD/crates/coord-cli/target/release/coord" \
    "$PWD/target/release/libcoord" "$@"
