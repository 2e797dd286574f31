#!/usr/bin/env bash
# The scale-out figures (tools/ray/bench.py): one process vs shards vs Ray with 1 and 2 CPUs,
# merging, and the extrapolation to WOMD validation. Sets up .venv-ray and builds first.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/ray/setup.sh
cargo build --locked --quiet
exec .venv-ray/bin/python tools/ray/bench.py "$@"
