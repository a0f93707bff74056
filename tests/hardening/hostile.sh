#!/usr/bin/env bash
# Hostile database files: builds the extension, runs tests/hardening/test_hostile.py
# and test_attacks.py (every attack of attacks.json, python3 and the sqlite3 shell)
# with Debian's python3 (the one that can load extensions).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p coord-sqlite -q
/usr/bin/python3 -m unittest -v tests/hardening/test_hostile.py tests/hardening/test_attacks.py 2>&1
