#!/usr/bin/env bash
# The Python package's figures (tools/measure.sh step `python_wheel`):
#   1. a clean release build of the wheel (a fresh target folder; crates already downloaded):
#      its wall time, the wheel's size and the extension module's size;
#   2. the WOMD metrics on the shared real scenario through that wheel vs Waymo's own op
#      (TensorFlow), in one process in .venv-waymo (tools/bench/metrics_vs_op.py).
# Sets up .venv-py and .venv-waymo first. Usage: tools/python/bench.sh [--reps R]
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=50
if [ "${1:-}" = "--reps" ]; then reps=$2; fi
tools/python/setup.sh
tools/bench/setup-waymo.sh
stage=python/scenetok/_data/weights
mkdir -p "$stage"
cp -p data/weights/lidar_seg_minkunet.safetensors data/weights/motion_transformer.safetensors "$stage/"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s.%N)
CARGO_TARGET_DIR="$tmp/target" .venv-py/bin/maturin build --release --strip --locked -m python/Cargo.toml -o "$tmp/wheels" >&2
end=$(date +%s.%N)
wheel=$(ls "$tmp"/wheels/scenetok-*.whl)
so_bytes=$(.venv-py/bin/python -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist() if i.filename.endswith(".so")))' "$wheel")
python3 -c 'import json, sys; print(json.dumps({"wheel": sys.argv[1].rsplit("/", 1)[-1], "clean_build_seconds": round(float(sys.argv[2]) - float(sys.argv[3]), 1), "wheel_bytes": int(sys.argv[4]), "extension_bytes": int(sys.argv[5]), "cores": int(sys.argv[6])}))' \
    "$wheel" "$end" "$start" "$(stat -c %s "$wheel")" "$so_bytes" "$(nproc)"

.venv-waymo/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
.venv-waymo/bin/python tools/bench/metrics_vs_op.py ../shared/waymo-samples/womd/motion_data_one_scenario.tfrecord --reps "$reps" 2>/dev/null
