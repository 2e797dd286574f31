#!/usr/bin/env bash
# The main job: `scenetok demo` (a small synthetic world, every motion baseline evaluated on it
# and on the real WOMD sample, with reports), a Chromium check of one report, then inspect the built-in fixture, the generated world and the
# real Waymo samples when ../shared/waymo-samples is there.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --locked --bin scenetok
bin=target/debug/scenetok
"$bin" demo --out out/demo
# Look at a report as a user will: headless Chromium renders it, console errors fail the job.
"$bin" report out/demo/generated/lane-follower --screenshot out/demo/report.png
out=out/fixture
"$bin" fixture --out "$out"
"$bin" inspect "$out"
"$bin" inspect out/demo/world
samples=../shared/waymo-samples
if [ -d "$samples" ]; then
    "$bin" inspect "$samples"/v2/testdata/dataset \
        "$samples"/v2/testdata/dataset/vehicle_pose/*.parquet \
        "$samples"/womd/motion_data_one_scenario.tfrecord \
        "$samples"/v1/pvps_data_one_frame.tfrecord
else
    echo "(../shared/waymo-samples not found: the real-sample inspection is skipped)"
fi
