#!/usr/bin/env bash
# Memory safety of the FFI edge: the extension's SQL test suites run in
# Debian's python3 under valgrind memcheck (PYTHONMALLOC=malloc, so that
# valgrind sees every allocation). Every error counts, in Python, SQLite
# or libcoord alike; exits non-zero on any.
#
#   tests/hardening/valgrind.sh          # test_extension.py and test_hostile.py, whole
#   tests/hardening/valgrind.sh quick    # a subset, for CI
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "no valgrind: run tests/setup.sh"; exit 1; }
cargo build --release -p coord-sqlite -q
if [ "${1:-full}" = quick ]; then
    suites=(test_extension.BadInput test_extension.HostileDatabase test_extension.Vectors
            test_extension.Claims test_hostile)
else
    suites=(test_extension test_hostile)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
set +e
PYTHONMALLOC=malloc PYTHONPATH=tests/extension:tests/hardening valgrind --tool=memcheck \
    --error-exitcode=99 --leak-check=no --num-callers=30 \
    /usr/bin/python3 -m unittest "${suites[@]}" >"$log" 2>&1
rc=$?
set -e
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
tests=$(sed -n 's/^Ran \([0-9]*\) tests.*/\1/p' "$log" | tail -1)
echo "valgrind: ${tests:-0} tests (${suites[*]}) in $(( $(date +%s) - start ))s: ${errors:-?} memcheck errors, exit $rc"
if [ "$rc" -ne 0 ] || [ "${errors:-1}" != 0 ]; then
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched)|FAIL|Error" "$log" | head -40
    exit 1
fi
