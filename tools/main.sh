#!/usr/bin/env bash
# The main job (until `scenetok demo` arrives): write the built-in fixture dataset and a tiny
# synthetic world and inspect both, then inspect the real Waymo samples when
# ../shared/waymo-samples is there.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --locked --bin scenetok
bin=target/debug/scenetok
out=out/fixture
"$bin" fixture --out "$out"
"$bin" inspect "$out"
"$bin" generate --preset tiny --segments 1 --out out/generated
"$bin" inspect out/generated
samples=../shared/waymo-samples
if [ -d "$samples" ]; then
    "$bin" inspect "$samples"/v2/testdata/dataset \
        "$samples"/v2/testdata/dataset/vehicle_pose/*.parquet \
        "$samples"/womd/motion_data_one_scenario.tfrecord \
        "$samples"/v1/pvps_data_one_frame.tfrecord
else
    echo "(../shared/waymo-samples not found: the real-sample inspection is skipped)"
fi
