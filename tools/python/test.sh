#!/usr/bin/env bash
# The Python package's tests: build the wheel (dev profile), install it into .venv-py, run
# pytest on python/tests against the `scenetok` command of the same checkout. Called by
# tools/test.sh after the Rust tests (which build that command).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/python/build.sh --dev
export SCENETOK_BIN=${SCENETOK_BIN:-$PWD/target/debug/scenetok}
.venv-py/bin/python -m pytest -q python/tests "$@"
