#!/usr/bin/env bash
# Fuzz coord with cargo-fuzz (libFuzzer + AddressSanitizer) for a bounded
# time per target, then replay the kept corpus and every past crash input
# as a normal test.
#
#   tests/hardening/fuzz.sh [seconds per target] [target ...]
#   COORD_FUZZ_MERGE=1 tests/hardening/fuzz.sh 300   # also merge new coverage into fuzz/corpus
#
# Targets (fuzz/fuzz_targets, properties in fuzz/src): canonical, mac,
# agent_id, sql_functions. Prints each target's executions and a total;
# exits non-zero on any crash, which is copied to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(canonical mac agent_id sql_functions)

command -v cargo-fuzz >/dev/null || { echo "no cargo-fuzz: run tests/setup.sh"; exit 1; }
# cargo-fuzz needs -Zsanitizer; stable rustc accepts it with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -O)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total=0
failed=0
start=$(date +%s)
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/corpus/$t" "$work/artifacts/$t"
    log="$work/$t.log"
    set +e
    (cd fuzz && cargo fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix="$work/artifacts/$t/") >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    if [ $rc -ne 0 ]; then
        failed=$((failed + 1))
        echo "fuzz $t: CRASH after $execs executions"
        grep -E "panicked|ERROR|SUMMARY" "$log" | head -5
        mkdir -p "fuzz/regressions/$t"
        for a in "$work/artifacts/$t"/*; do
            [ -e "$a" ] || continue
            cp "$a" "fuzz/regressions/$t/"
            echo "  kept as fuzz/regressions/$t/$(basename "$a"): name it after the bug, fix, commit"
        done
    else
        echo "fuzz $t: $execs executions in ${secs}s, no crash"
    fi
    if [ "${COORD_FUZZ_MERGE:-0}" = 1 ]; then
        (cd fuzz && cargo fuzz cmin -O "$t" >/dev/null 2>&1) || true
        (cd fuzz && cargo fuzz run -O "$t" "corpus/$t" "$work/$t" -- -merge=1 >/dev/null 2>&1) || true
        echo "  corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) inputs"
    fi
done
echo "fuzz total: $total executions over ${#targets[@]} targets in $(( $(date +%s) - start ))s"

# Replay the kept corpus and regressions without sanitizers (cargo test).
echo "== replaying fuzz/corpus and fuzz/regressions"
if (cd fuzz && env -u RUSTC_BOOTSTRAP cargo test --release -q) >"$work/replay.log" 2>&1; then
    echo "replayed $(cat fuzz/corpus/*/* fuzz/regressions/*/* 2>/dev/null | wc -c) bytes in $(find fuzz/corpus fuzz/regressions -type f | wc -l) kept inputs: ok"
else
    failed=$((failed + 1))
    tail -30 "$work/replay.log"
fi
[ "$failed" -eq 0 ]
