#!/usr/bin/env bash
# The test command: set-up, then every test. Tools the tests need are required here, so a
# missing one fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export SCENETOK_REQUIRE_TOOLS=1
cargo test --locked "$@"
# The Python package: the wheel built and installed into .venv-py, pytest against the command.
tools/python/test.sh
