#!/usr/bin/env bash
# The replay benchmark (issue 12): bash bench/replay.sh
# Builds a signed event log of BENCH_EVENTS events (default 1,000,000: eight
# agents, ~100-byte task and message states, a valid chain, signed with
# coord-core directly) and a 100,000-event prefix of it, then times
# coord_db::replay::verify on 1 thread and on 2 threads in the same run
# (best of BENCH_RUNS, default 3), prints events/s and the 2-vs-1 ratio, and
# the rate of coord_db::history::check (the coord_log view, what
# `coord audit` reads) on the prefix as the baseline.
# Target: >= 1,000,000 events/s using both cores. Benchmarks are not tests:
# a missed target is printed, not failed.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${BENCH_EVENTS:-1000000}
prefix=${BENCH_PREFIX:-100000}
runs=${BENCH_RUNS:-3}

echo "== building" >&2
# With coord-cli in the build, rusqlite is its bundled SQLite, as coord's.
cargo build --release --manifest-path crates/coord-cli/Cargo.toml \
    -p coord-cli -p coord-db --example replay_bench >&2
bin=crates/coord-cli/target/release/examples/replay_bench

dir=$(mktemp -d "${TMPDIR:-/tmp}/coord-replay.XXXXXX")
trap 'rm -rf "$dir"' EXIT
echo "== generating" >&2
"$bin" gen "$dir/log.db" "$events"
"$bin" gen "$dir/prefix.db" "$prefix"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" run "$dir/log.db" "$dir/prefix.db" "$runs"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
