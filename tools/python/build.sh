#!/usr/bin/env bash
# Builds the Python wheel (python/, abi3: one wheel for CPython >= 3.9 on Linux x86-64) into
# target/wheels/ and installs it into .venv-py. The shipped weights of the models the package
# offers are staged into the package first. Usage: tools/python/build.sh [--dev]
#   (default): release profile, stripped: the wheel to ship (about 6 min from nothing here).
#   --dev: the workspace's dev profile (optimised, with debug assertions) with the library's
#          default features (viewer and server, `share-test-build`, unused by the package): it
#          then reuses every crate the Rust tests' build compiled. What the test command uses.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/python/setup.sh

profile=(--release --strip)
if [ "${1:-}" = "--dev" ]; then profile=(--profile dev --features share-test-build); fi

stage=python/scenetok/_data/weights
mkdir -p "$stage"
for w in lidar_seg_minkunet.safetensors motion_transformer.safetensors; do
    cp -p "data/weights/$w" "$stage/$w"
done

rm -f target/wheels/scenetok-*.whl
start=$(date +%s)
.venv-py/bin/maturin build "${profile[@]}" --locked -m python/Cargo.toml -o target/wheels >&2
wheel=$(ls target/wheels/scenetok-*.whl)
printf '[python] built %s (%s bytes) in %s s\n' "$wheel" "$(stat -c %s "$wheel")" "$(( $(date +%s) - start ))" >&2
.venv-py/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
