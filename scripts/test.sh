#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start the real
# spindle binary and talk to it over real sockets. tests/bench_smoke.rs runs
# the bench/ scripts briefly (about 25 s) so they cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
cargo test --all-targets "$@"
