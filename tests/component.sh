#!/usr/bin/env bash
# Builds coord's WASI component and checks it in three real hosts (Python
# wasmtime, Node 20 + jco, Rust wasmtime) and against the SQLite extension.
#
#   bash tests/component.sh        (from the repo root; installs what it needs)
#
# Everything it builds goes under target-component/ (ignored), except the
# extension, built where the rest of the repo expects it
# (target/release/libcoord.so). tests/setup.sh installs what it uses (the
# wasm32-wasip2 target, target/venv with wasmtime, jco from npm). The gptme fixture is read from
# tests/fixtures/gptme and copied to a temporary directory first; a
# second fixture is written by the vendored gptme-coordination package.
# Ends with `N passed, N failed`; exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
WORK="$ROOT/target-component"
FIXTURE="$ROOT/tests/fixtures/gptme"
WASM="$WORK/wasm32-wasip2/component/coord_component.wasm"
HOST_BIN="$ROOT/target/host/coord-wasmtime-host"
MAX_SIZE=153600 # 150 KiB
mkdir -p "$WORK"

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# Runs a host and adds its own `name: N passed, N failed` line to the totals.
# A host that dies without that line counts as one failure.
run_host() {
    local name=$1 out line p f
    shift
    echo "--- $name"
    out=$("$@" 2>&1)
    local rc=$?
    printf '%s\n' "$out" | grep -v '^ok ' || true
    line=$(printf '%s\n' "$out" | grep -E '^[a-z -]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        p=${BASH_REMATCH[1]}
        f=${BASH_REMATCH[2]}
        passed=$((passed + p))
        failed=$((failed + f))
        if [[ $rc -ne 0 && $f -eq 0 ]]; then fail "$name exited $rc"; fi
    else
        fail "$name: no summary line (exit $rc)"
    fi
}

finish() {
    echo "component: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    exit $?
}

# --- toolchain and the component -------------------------------------------
rustup target list --installed | grep -qx wasm32-wasip2 ||
    { fail "no wasm32-wasip2 target: run tests/setup.sh"; finish; }
if CARGO_TARGET_DIR="$WORK" cargo build -p coord-component --target wasm32-wasip2 \
    --profile component; then
    ok "component builds with plain cargo for wasm32-wasip2"
else
    fail "component build"
    finish
fi
size=$(stat -c %s "$WASM")
echo "component: $WASM, $size bytes"
if [[ $size -lt $MAX_SIZE ]]; then ok "component is $size bytes (< $MAX_SIZE)"; else fail "component is $size bytes (>= $MAX_SIZE)"; fi
if head -c 8 "$WASM" | od -An -tx1 | grep -q '00 61 73 6d 0d 00 01 00'; then
    ok "the build output is a component (layer 1), not a core module"
else
    fail "not a component: $(head -c 8 "$WASM" | od -An -tx1)"
fi

# --- the fixture, copied (tests open copies, never the original) ---------
FX="$(mktemp -d)"
trap 'rm -rf "$FX"' EXIT
if [[ -f "$FIXTURE/coord.db" ]]; then
    cp -r "$FIXTURE/." "$FX/" && chmod -R u+w "$FX" && chmod 600 "$FX"/secrets/*.secret
else
    fail "fixture not found at $FIXTURE"
fi

# --- Python: tests/setup.sh's venv of Debian's python3 (its sqlite3 loads extensions)
PY="$ROOT/target/venv/bin/python"
if "$PY" -c 'import wasmtime' 2>/dev/null; then
    ok "python venv with wasmtime $("$PY" -c 'import importlib.metadata as m; print(m.version("wasmtime"))')"
else
    fail "no wasmtime in target/venv: run tests/setup.sh"
fi
if "$PY" tests/component/fixture_rows.py "$FX" "$FX/rows.json"; then
    ok "fixture rows dumped for the hosts without SQLite"
else
    fail "fixture_rows.py"
fi
# A second fixture: every row written by gptme-coordination's own code, one
# or more per operation, with what gptme's HMAC code says of each.
GX="$(mktemp -d)"
trap 'rm -rf "$FX" "$GX"' EXIT
if "$PY" tests/gptme/write_fixture.py "$GX" && "$PY" tests/component/fixture_rows.py "$GX" "$GX/rows.json"; then
    ok "gptme-written fixture (every operation) made by the vendored package"
else
    fail "tests/gptme/write_fixture.py"
fi
FIXTURES=("$FX" "$GX")
label() { if [[ $1 == "$FX" ]]; then echo "shared fixture"; else echo "gptme-written fixture"; fi; }

# --- the three hosts --------------------------------------------------------
for fx in "${FIXTURES[@]}"; do
    run_host "python host, $(label "$fx")" "$PY" tests/component/python_host.py "$WASM" \
        tests/vectors.json "$fx"
done

if [[ -x tests/component/node_modules/.bin/jco ]]; then
    ok "jco installed (pinned by tests/component/package-lock.json)"
    JCO="$ROOT/tests/component/node_modules/.bin/jco"
    rm -rf "$WORK/jco"
    if "$JCO" transpile "$WASM" -o "$WORK/jco" --name coord >/dev/null; then
        ok "jco transpile"
        if grep -q 'preview2-shim\|^import ' "$WORK/jco/coord.js"; then
            fail "transpiled module imports something: $(grep -m3 'preview2-shim\|^import ' "$WORK/jco/coord.js")"
        else
            ok "transpiled module imports nothing (no WASI shim)"
        fi
        for fx in "${FIXTURES[@]}"; do
            run_host "node host, $(label "$fx")" node tests/component/node_host.mjs \
                "$WORK/jco/coord.js" tests/vectors.json "$fx/rows.json" "$fx/secrets"
        done
    else
        fail "jco transpile"
    fi
    # The component's world as jco reads it: exports only.
    world=$("$JCO" wit "$WASM" 2>&1)
    echo "$world" | sed -n '/^world/,/^}/p'
    if echo "$world" | grep -q 'export coord:signing/signing@0.1.0' \
        && ! echo "$world" | grep -qE '^\s*import '; then
        ok "jco wit: the world exports coord:signing/signing@0.1.0 and imports nothing"
    else
        fail "jco wit: unexpected world"
    fi
else
    fail "no jco in tests/component/node_modules: run tests/setup.sh"
fi

# The Rust host: in the root workspace, under its own profile (wasmtime under
# the release profile's fat LTO would be a far longer build).
if cargo build --locked --profile host -p coord-wasmtime-host; then
    ok "rust host builds (wasmtime 48)"
    for fx in "${FIXTURES[@]}"; do
        run_host "rust host, $(label "$fx")" "$HOST_BIN" check "$WASM" tests/vectors.json \
            "$fx/rows.json" "$fx/secrets"
    done
    echo "--- bench (informational)"
    "$HOST_BIN" bench "$WASM" || fail "bench"
else
    fail "rust host build"
fi

# --- cross-check with the SQLite extension ---------------------------------
if cargo build --release -p coord-sqlite && [[ -f target/release/libcoord.so ]]; then
    ok "extension built (target/release/libcoord.so)"
    for fx in "${FIXTURES[@]}"; do
        run_host "cross-check, $(label "$fx")" "$PY" tests/component/crosscheck.py "$WASM" \
            target/release/libcoord tests/vectors.json "$fx"
    done
else
    fail "cargo build --release -p coord-sqlite"
fi

finish
