#!/usr/bin/env bash
# Timing: shows that verify does not return early on the first differing
# byte. Counts the instructions (valgrind cachegrind, deterministic) of N
# verifications of a MAC wrong in its first byte and of one wrong in its
# last byte: with coord's verify (hmac's constant-time verify_slice) the
# counts must be equal; an early-exit loop over the same MACs, run as a
# control, must differ (so the measurement can see an early return).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "no valgrind: run tests/setup.sh"; exit 1; }
n=${1:-2000}
cargo build --release -q -p coord-bench --example instr
bin=target/release/examples/instr
count() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
# The cost of n more verifications: the count at 2n minus the count at n,
# so that set-up (which differs in the length of the mode's name) cancels.
loop() { echo $(( $(count "$1" $((2 * n))) - $(count "$1" "$n") )); }
cf=$(loop coord-first); cl=$(loop coord-last)
nf=$(loop naive-first); nl=$(loop naive-last)
echo "timing: $n verifications cost, in instructions: coord first-byte $cf, last-byte $cl (difference $((cl - cf)))"
echo "timing: control early-exit loop: first-byte $nf, last-byte $nl (difference $((nl - nf)), $(( (nl - nf) / n )) per call)"
status=0
if [ "$cf" != "$cl" ]; then
    echo "FAIL: coord's verify executes a different number of instructions for an early and a late difference"
    status=1
fi
if [ $((nl - nf)) -lt "$n" ]; then
    echo "FAIL: the control did not show its early exit; the measurement proves nothing"
    status=1
fi
[ $status -eq 0 ] && echo "timing: verify is constant-time in the position of the first differing byte"
exit $status
