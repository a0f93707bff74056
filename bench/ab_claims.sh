#!/usr/bin/env bash
# Claim throughput of two builds of the extension, side by side:
#   bash bench/ab_claims.sh OLD/libcoord.so NEW/libcoord.so
# Wall-clock claims/s, interleaved A B A B (medians), and instructions per
# claim under callgrind, for plain SQL (a control), unsigned and signed
# claims. What is measured and the knobs (AB_ROUNDS, AB_CLAIMS,
# AB_CG_CLAIMS, AB_CALLGRIND, AB_OUT): bench/ab_claims.py.
#
# To compare a commit with the current tree (BENCHMARKS.md, "Compare-and-swap
# before/after issue 11"):
#   git worktree add /tmp/wt-old 2db862f
#   (cd /tmp/wt-old && CARGO_TARGET_DIR=/tmp/tgt-old cargo build --release -p coord-sqlite)
#   CARGO_TARGET_DIR=/tmp/tgt-new cargo build --release -p coord-sqlite
#   bash bench/ab_claims.sh /tmp/tgt-old/release/libcoord.so /tmp/tgt-new/release/libcoord.so
#   git worktree remove /tmp/wt-old
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 A/libcoord.so B/libcoord.so" >&2; exit 2; }
for so in "$1" "$2"; do [ -f "$so" ] || { echo "$0: no such file: $so" >&2; exit 2; }; done

need_apt=()
[ "${AB_CALLGRIND:-1}" = 0 ] || command -v valgrind >/dev/null || need_apt+=(valgrind)
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's python3: its sqlite3 module can load extensions (pyenv's cannot)
exec /usr/bin/python3 "$(dirname "$0")/ab_claims.py" "$1" "$2"
