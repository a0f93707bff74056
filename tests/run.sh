#!/usr/bin/env bash
# coord's whole test suite. Run from anywhere, after tests/setup.sh (which
# installs what the suites need; the README's test command runs both):
# runs every suite and ends with "suites: N passed, N failed". Exits
# non-zero if any suite failed. Installs nothing.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x target/venv/bin/python ]]; then
    echo "tests/run.sh: nothing is set up here; run bash tests/setup.sh first" >&2
    exit 2
fi

# Every client's witness of the logs it reads (docs/history.md) lives in
# $XDG_STATE_HOME/coord: this run's own, never the user's, so that a run
# starts with no memory of an earlier run's databases and servers.
XDG_STATE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/coord-test-state.XXXXXX")
export XDG_STATE_HOME

passed=0
failed=0
failures=()
suite() {
    local name=$1
    shift
    echo
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "== FAILED: $name"
    fi
}

# Debian's python3: the default (pyenv) python3 cannot load extensions.
py_suite() { /usr/bin/python3 -m unittest discover -v -s tests/extension -p "$1" 2>&1; }

# Every workspace: the root one and those that link a real SQLite.
fmt_all() {
    local m rc=0
    for m in Cargo.toml crates/coord-cli/Cargo.toml tests/rusqlite-host/Cargo.toml \
        fuzz/Cargo.toml; do
        cargo fmt --manifest-path "$m" --all -- --check || { echo "not formatted: $m"; rc=1; }
    done
    return $rc
}

suite "format" fmt_all
suite "clippy" cargo clippy --workspace --all-targets --release -- -D warnings
# The wasmtime host is tested by tests/component.sh, under its own profile.
suite "core, keys and SQL crates (cargo test)" \
    cargo test --workspace --release --exclude coord-wasmtime-host
suite "build the extension" cargo build --release -p coord-sqlite
suite "extension in Python's sqlite3" py_suite 'test_extension.py'
suite "extension in the sqlite3 shell" py_suite 'test_sqlite3_cli.py'
suite "signed history on a file: attacks as SQL" py_suite 'test_history.py'
suite "every example in docs/sql.md" py_suite 'test_docs.py'
suite "race of 8 processes" py_suite 'test_race.py'
suite "extension in rusqlite on the system SQLite" \
    cargo test --release --manifest-path tests/rusqlite-host/Cargo.toml
suite "the coord command" bash tests/cli.sh
suite "coord mcp with the MCP Python and TypeScript SDKs" bash tests/mcp/run.sh
suite "beside gptme-coordination: its own suite three ways, cross-writes, mixed race" \
    bash tests/gptme/run.sh
suite "WASI component in three hosts" bash tests/component.sh
suite "hardening: fuzz, hostile files, crash loop, soak, timing, valgrind" bash tests/hardening/ci.sh
suite "three-node libSQL cluster" bash tests/cluster.sh

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed suites: %s\n' "${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
