#!/usr/bin/env bash
# Hostile database files: builds the extension, runs tests/hardening/test_hostile.py
# with Debian's python3 (the one that can load extensions).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p coord-sqlite -q
/usr/bin/python3 -m unittest -v tests/hardening/test_hostile.py 2>&1
