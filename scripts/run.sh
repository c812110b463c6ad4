#!/usr/bin/env bash
# Builds Spindle and serves the demo site on http://127.0.0.1:8080
# (SPINDLE_LISTEN, SPINDLE_WORKERS and the other SPINDLE_* variables apply).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release
exec target/release/spindle serve demo --hub "$@"
