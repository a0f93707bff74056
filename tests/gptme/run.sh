#!/usr/bin/env bash
# coord beside gptme-coordination (../shared/vendor/gptme-coordination):
#   1. the package's own pytest suite, unmodified: plain, then on databases
#      made by `coord init`, then with coord loaded into gptme's connection
#      and coord_init() on every open (tests/gptme/arrangement.py);
#   2. coord's tests beside it: parity points, cross-writes per operation,
#      and 4 coord agents racing 4 gptme agents.
# Runs in tests/setup.sh's venv of Debian's python3 (target/venv, whose
# sqlite3 loads extensions, with pytest); builds the extension and the CLI.
# Run from anywhere; exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2
VENDOR="$ROOT/../shared/vendor/gptme-coordination"
PY="$ROOT/target/venv/bin/python"

[[ -d $VENDOR/tests ]] || { echo "gptme-coordination not found at $VENDOR"; exit 1; }
"$PY" -c 'import pytest' 2>/dev/null || { echo "no pytest in target/venv: run tests/setup.sh"; exit 1; }
cargo build --release -p coord-sqlite || exit 1
cargo build --release --manifest-path crates/coord-cli/Cargo.toml || exit 1

export PYTHONDONTWRITEBYTECODE=1 # ../shared stays as it is
export COORD_EXT="$ROOT/target/release/libcoord"
export COORD_BIN="$ROOT/crates/coord-cli/target/release/coord"
rc=0
counts=()
vendored() {
    local name=$1 out
    shift
    echo "--- gptme-coordination's own suite: $name"
    # rootdir is the vendored package (its pyproject.toml); nothing is written there
    out=$(cd "$VENDOR" && PYTHONPATH="$ROOT/tests/gptme:$VENDOR/src" \
        "$PY" -m pytest -q -p no:cacheprovider "$@" tests 2>&1)
    local st=$?
    printf '%s\n' "$out" | tail -n 25
    [[ $st -eq 0 ]] || { echo "FAILED: gptme's suite, $name"; rc=1; }
    counts+=("$(printf '%s\n' "$out" | grep -oE '^[0-9]+ passed' | tail -n 1)")
}
vendored "plain (no coord)"
COORD_ARRANGEMENT=init vendored "databases made by coord init" -p arrangement
COORD_ARRANGEMENT=loaded vendored "coord loaded, coord_init() on every open" -p arrangement
if [[ ${counts[0]} != "${counts[1]}" || ${counts[0]} != "${counts[2]}" || -z ${counts[0]} ]]; then
    echo "FAILED: pass counts differ: plain '${counts[0]}', init '${counts[1]}', loaded '${counts[2]}'"
    rc=1
fi

echo "--- coord beside gptme: parity, cross-writes, mixed race"
(cd tests/gptme && "$PY" -m pytest -v -p no:cacheprovider test_parity.py test_cross_writes.py \
    test_mixed_race.py test_mixed_history.py) || rc=1
exit $rc
