#!/usr/bin/env bash
# CI-sized hardening run (tests/run.sh calls it): hostile databases and key
# files, 20 s of fuzzing per target plus the kept corpus, 100 crash-loop
# iterations, a 30 s soak, the timing check and a valgrind subset.
# Uses valgrind and cargo-fuzz (tests/setup.sh installs them). Ends with
# "hardening: N passed, N failed"; exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
H=tests/hardening


passed=0
failed=0
failures=()
step() {
    local name=$1
    shift
    echo
    echo "== hardening: $name"
    local t0=$(date +%s)
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "== FAILED: $name"
    fi
    echo "== ($name: $(( $(date +%s) - t0 ))s)"
}

step "hostile database files" bash $H/hostile.sh
step "hostile key files" cargo test --release -q -p coord-keys --test hostile_key_files
step "fuzz (20 s per target) and kept inputs" bash $H/fuzz.sh "${COORD_FUZZ_SECONDS:-20}"
step "crash loop (100 iterations)" bash $H/crash.sh "${COORD_CRASH_ITERATIONS:-100}"
step "soak (8 processes, 30 s)" bash $H/soak.sh "${COORD_SOAK_SECONDS:-30}"
step "verify timing (instruction count)" bash $H/timing.sh
step "valgrind (subset)" bash $H/valgrind.sh quick

echo
[ "$failed" -gt 0 ] && printf 'failed hardening steps: %s\n' "${failures[*]}"
echo "hardening: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
