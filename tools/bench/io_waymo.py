"""Waymo's own range image → points as a `scenetok bench io` baseline (run by it when
.venv-waymo/ exists; tools/bench/setup-waymo.sh creates it).

    .venv-waymo/bin/python io_waymo.py DATASET_ROOT [--threads N]

Upstream's v2 conversion, `waymo_open_dataset.v2.perception.utils.lidar_utils.
convert_range_image_to_point_cloud(range_image, calibration, pixel_pose, frame_pose,
keep_polar_features)` (package waymo-open-dataset-tf-2-12-0, TensorFlow), called eagerly as
upstream's v2 tutorial does, on every first return of the dataset's `lidar` rows: TOP with
its `lidar_pose` pixel pose and the frame's `vehicle_pose`, the other lasers without (upstream
applies the pixel pose only when both are given).

Timed as scenetok and the NumPy baseline are: the v2 components are read with pyarrow and
decoded beforehand (not timed: `LiDARCalibrationComponent` and `VehiclePoseComponent` through
upstream's `from_dict`, range images and pixel poses as upstream's `RangeImage` /
`PoseRangeImage` holding float32 tensors, so that `.tensor` inside the conversion is a reshape
and not a copy from Python lists); one untimed warm-up frame per variant (TensorFlow's kernels
are created on first use); then the frames back to back, one timer around each frame's
conversion of all its lasers, outputs kept until the timer stops (eager ops have finished
when they return on the CPU), checksums (point count, xyz sum, range+intensity+elongation
sum, in float64) after it. TensorFlow's intra-op and inter-op thread pools are set to
`--threads` (default: the machine's cores) before any op runs.

Prints one JSON object: thread counts, versions, and per variant (xyz; keep_polar_features)
its seconds and checksums.
"""
import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402
from importlib.metadata import version  # noqa: E402

from waymo_open_dataset.v2.perception import context as v2_context  # noqa: E402
from waymo_open_dataset.v2.perception import lidar as v2_lidar  # noqa: E402
from waymo_open_dataset.v2.perception import pose as v2_pose  # noqa: E402
from waymo_open_dataset.v2.perception.utils import lidar_utils  # noqa: E402

PACKAGE = "waymo-open-dataset-tf-2-12-0"


def load_segment(root, seg):
    """The segment's frames, each a list of (range_image, calibration, pixel_pose, frame_pose)."""
    calib = {}
    for r in pq.read_table(root / "lidar_calibration" / seg).to_pylist():
        calib[r["key.laser_name"]] = v2_context.LiDARCalibrationComponent.from_dict(r)
    poses = {}
    if (root / "vehicle_pose" / seg).exists():
        for r in pq.read_table(root / "vehicle_pose" / seg).to_pylist():
            poses[r["key.frame_timestamp_micros"]] = v2_pose.VehiclePoseComponent.from_dict(r)
    pixel_poses = {}
    if (root / "lidar_pose" / seg).exists():
        t = pq.read_table(root / "lidar_pose" / seg)
        values = t.column("[LiDARPoseComponent].range_image_return1.values").combine_chunks()
        shapes = t.column("[LiDARPoseComponent].range_image_return1.shape").to_pylist()
        keys = zip(t.column("key.frame_timestamp_micros").to_pylist(), t.column("key.laser_name").to_pylist())
        for i, key in enumerate(keys):
            v = tf.constant(values[i].values.to_numpy(zero_copy_only=False))
            pixel_poses[key] = v2_lidar.PoseRangeImage(values=v, shape=shapes[i])
    table = pq.read_table(root / "lidar" / seg, columns=[
        "key.frame_timestamp_micros", "key.laser_name",
        "[LiDARComponent].range_image_return1.values", "[LiDARComponent].range_image_return1.shape",
    ])
    values = table.column("[LiDARComponent].range_image_return1.values").combine_chunks()
    shapes = table.column("[LiDARComponent].range_image_return1.shape").to_pylist()
    stamps = table.column("key.frame_timestamp_micros").to_pylist()
    lasers = table.column("key.laser_name").to_pylist()
    frames = {}
    for i, (ts, laser) in enumerate(zip(stamps, lasers)):
        if shapes[i] is None:
            continue
        ri = v2_lidar.RangeImage(values=tf.constant(values[i].values.to_numpy(zero_copy_only=False)),
                                 shape=shapes[i])
        pixel_pose, frame_pose = pixel_poses.get((ts, laser)), poses.get(ts)
        if pixel_pose is None or frame_pose is None:
            # upstream asserts a frame pose whenever a pixel pose is given; it applies neither alone
            pixel_pose = frame_pose = None
        frames.setdefault(ts, []).append((ri, calib[laser], pixel_pose, frame_pose))
    return [frames[ts] for ts in sorted(frames)]


def convert(frame, polar):
    return [lidar_utils.convert_range_image_to_point_cloud(ri, c, pp, fp, keep_polar_features=polar)
            for ri, c, pp, fp in frame]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    root = pathlib.Path(args.root)
    segments = [load_segment(root, p.name) for p in sorted((root / "lidar").glob("*.parquet"))]
    out = {
        "threads": f"TensorFlow {tf.__version__} eager, intra-op "
                   f"{tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
                   f"{tf.config.threading.get_inter_op_parallelism_threads()} threads",
        "package": f"{PACKAGE} {version(PACKAGE)}",
        "variants": [],
    }
    first = next((frames[0] for frames in segments if frames), None)
    for name, polar in [("Waymo TF xyz", False), ("Waymo TF keep_polar_features", True)]:
        if first is not None:
            convert(first, polar)  # warm-up: kernels created, not timed
        v = {"name": name, "seconds": 0.0, "points": 0, "coord_sum": 0.0, "feature_sum": 0.0 if polar else None}
        for frames in segments:
            for frame in frames:
                t0 = time.perf_counter()
                outputs = convert(frame, polar)
                v["seconds"] += time.perf_counter() - t0
                for pts in outputs:
                    pts = pts.numpy()
                    v["points"] += int(pts.shape[0])
                    v["coord_sum"] += float(pts[:, -3:].sum(dtype=np.float64))
                    if polar:
                        v["feature_sum"] += float(pts[:, :3].sum(dtype=np.float64))
                del outputs
        out["variants"].append(v)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
