#!/usr/bin/env bash
# Builds coord's WASI component and checks it in three real hosts (Python
# wasmtime, Node 20 + jco, Rust wasmtime) and against the SQLite extension,
# each under its language's own test runner:
#
#   pytest       tests/component/test_*.py (the Python host, the cross-check
#                with the extension, the component file's size and layer)
#   node --test  tests/component/node_host.mjs (jco's view of the component too)
#   cargo test   -p coord-wasmtime-host --profile host (tests/wasmtime-host/tests)
#
#   bash tests/component.sh        (from anywhere; after tests/setup.sh)
#
# Everything it builds goes under target-component/ (ignored), except the
# extension, built where the rest of the repo expects it
# (target/release/libcoord.so), and the Rust host (target/host/). tests/setup.sh
# installs what it uses (the wasm32-wasip2 target, target/venv with wasmtime
# and pytest, jco from npm). The gptme fixture is read from tests/fixtures/gptme
# and copied to a temporary directory first; a second fixture is written by
# the vendored gptme-coordination package, and signed-history databases by the
# extension (tests/component/history_fixture.py). The runners get their inputs
# from the COORD_* variables exported below.
#
# A build or fixture step that fails stops the script; every runner runs
# whatever the others did. Exits non-zero if anything failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
WORK="$ROOT/target-component"
WASM="$WORK/wasm32-wasip2/component/coord_component.wasm"
PY="$ROOT/target/venv/bin/python"
JCO="$ROOT/tests/component/node_modules/.bin/jco"
mkdir -p "$WORK"

die() {
    echo "FAIL component: $*" >&2
    exit 1
}
step() { echo "== $*"; }

# --- what tests/setup.sh installs ------------------------------------------
rustup target list --installed | grep -qx wasm32-wasip2 ||
    die "no wasm32-wasip2 target: run tests/setup.sh"
"$PY" -c 'import pytest, wasmtime' 2>/dev/null ||
    die "no target/venv with pytest and wasmtime: run tests/setup.sh"
[[ -x $JCO ]] || die "no jco in tests/component/node_modules: run tests/setup.sh"

# --- builds -----------------------------------------------------------------
step "the component, with plain cargo for wasm32-wasip2"
CARGO_TARGET_DIR="$WORK" cargo build -p coord-component --target wasm32-wasip2 \
    --profile component || die "component build"
echo "component: $WASM, $(stat -c %s "$WASM") bytes"

step "jco transpile (pinned by tests/component/package-lock.json)"
rm -rf "$WORK/jco"
"$JCO" transpile "$WASM" -o "$WORK/jco" --name coord >/dev/null || die "jco transpile"

# The Rust host: in the root workspace, under its own profile (wasmtime under
# the release profile's fat LTO would be a far longer build).
step "the Rust host and its tests (wasmtime 48)"
cargo test --locked --profile host -p coord-wasmtime-host --no-run || die "rust host build"

step "the extension (target/release/libcoord.so)"
cargo build --release -p coord-sqlite || die "cargo build --release -p coord-sqlite"

# --- fixtures (tests open copies, never the original) ----------------------
step "fixtures"
FX="$(mktemp -d)"
GX="$(mktemp -d)"
HX="$(mktemp -d)"
trap 'rm -rf "$FX" "$GX" "$HX"' EXIT
[[ -f tests/fixtures/gptme/coord.db ]] || die "no fixture at tests/fixtures/gptme"
cp -r tests/fixtures/gptme/. "$FX/" && chmod -R u+w "$FX" && chmod 600 "$FX"/secrets/*.secret ||
    die "copying tests/fixtures/gptme"
# The second: every row written by gptme-coordination's own code, one or
# more per operation, with what gptme's HMAC code says of each.
"$PY" tests/gptme/write_fixture.py "$GX" || die "tests/gptme/write_fixture.py"
# Their rows as JSON, for the hosts without SQLite (Node 20, the Rust host).
for fx in "$FX" "$GX"; do
    "$PY" tests/component/fixture_rows.py "$fx" "$fx/rows.json" || die "fixture_rows.py $fx"
done

# The third: signed-history databases the extension's write API writes, and
# copies attacked with plain SQL, with what coord_log and coord_checkpoint_log
# say of each (history.json, for the hosts without SQLite).
"$PY" tests/component/history_fixture.py "$ROOT/target/release/libcoord" "$HX" ||
    die "tests/component/history_fixture.py"

export COORD_WASM="$WASM"
export COORD_JCO_MODULE="$WORK/jco/coord.js"
export COORD_LIBCOORD="$ROOT/target/release/libcoord"
export COORD_FIXTURE_SHARED="$FX"
export COORD_FIXTURE_GPTME="$GX"
export COORD_HISTORY="$HX"

# --- the runners --------------------------------------------------------------
failed=()
run() {
    local name=$1
    shift
    echo
    step "$name"
    "$@" || failed+=("$name")
}
run "pytest: the Python host, the cross-check with the extension, the component file" \
    "$PY" -m pytest -p no:cacheprovider tests/component
run "node --test: the Node host (jco)" \
    node --test --test-reporter=spec tests/component/node_host.mjs
run "cargo test: the Rust host (wasmtime)" \
    cargo test --locked --profile host -p coord-wasmtime-host
run "bench (informational numbers; the run must succeed)" \
    "$ROOT/target/host/coord-wasmtime-host" bench "$WASM"

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'component: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "component: pytest, node --test, cargo test and bench passed"
