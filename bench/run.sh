#!/usr/bin/env bash
# All of coord's benchmarks, one command: bash bench/run.sh
# Every figure is a ratio against a baseline measured in the same run, on
# this machine; the table goes to stdout and to target/bench/report.md.
# Benchmarks are not tests: nothing here fails on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

need_apt=()
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v valgrind >/dev/null || need_apt+=(valgrind)
[ -x /usr/bin/time ] || need_apt+=(time)
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== building" >&2
cargo build --release -p coord-sqlite >&2
cargo build --release -p coord-bench --example instr >&2
instr=target/release/examples/instr

echo "== 1. core: criterion" >&2
cargo bench --manifest-path bench/Cargo.toml --bench core >&2
echo "== 1. core: 5 timed runs" >&2
"$instr" time "${BENCH_RUNS:-5}" 200000 > "$out/core_time.json"
echo "== 1. core: instruction counts (callgrind)" >&2
: > "$out/core_instr.txt"
for op in bare sign verify canonical; do
    for n in 1000 11000; do
        count=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$instr" "$op" "$n" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
        echo "$op $n $count" >> "$out/core_instr.txt"
    done
done

echo "== 2-5. SQL, claims, contention, memory" >&2
/usr/bin/python3 bench/sql_bench.py > "$out/sql.json"

echo "== 6. component (wasmtime vs native)" >&2
# Built where tests/component.sh builds them, so the two share one build.
rustup target add wasm32-wasip2 >&2
CARGO_TARGET_DIR=target-component cargo build -p coord-component --target wasm32-wasip2 \
    --profile component >&2
cargo build --locked --profile host -p coord-wasmtime-host >&2
wasm=target-component/wasm32-wasip2/component/coord_component.wasm
target/host/coord-wasmtime-host bench "$wasm" > "$out/component.txt"
stat -c %s "$wasm" > "$out/component_size.txt"

/usr/bin/python3 bench/report.py "$out" | tee "$out/report.md"
