#!/usr/bin/env bash
# coord mcp (issue 14) with two real MCP clients: the official Python SDK
# (tests/mcp/test_python_client.py, pytest in target/venv) and the official
# TypeScript SDK (tests/mcp/ts_client.test.mjs, node --test, its packages
# pinned by tests/mcp/package-lock.json and installed by tests/setup.sh).
# Builds the coord command first. Exits non-zero if either fails, or if
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

echo "== building the coord command"
cargo build --release --manifest-path crates/coord-cli/Cargo.toml || fail "building coord failed"
export COORD_BIN=$PWD/crates/coord-cli/target/release/coord

rc=0
echo "== MCP Python SDK (stdio and streamable HTTP)"
target/venv/bin/python -m pytest -v -s -p no:cacheprovider tests/mcp/test_python_client.py || rc=1
echo "== MCP TypeScript SDK (stdio and streamable HTTP)"
(cd tests/mcp && node --test ts_client.test.mjs) || rc=1
[ $rc -eq 0 ] || echo "FAIL: mcp tests" >&2
exit $rc
