"""Baselines for `scenetok bench io`, run by it in the same invocation.

    io_baseline.py DATASET_ROOT

For every segment with a `lidar` file: (1) pyarrow reads the same lidar columns scenetok
reads; (2) a NumPy port of docs/geometry.md#range-image--points converts every first-return range image to
points (TOP with per-pixel pose and the inverse frame pose), once as upstream does by default
(xyz only) and once with upstream's `keep_polar_features` (range, intensity and elongation
kept beside xyz, as scenetok's conversion always keeps the pixel's channels). Prints one JSON
object: seconds for each part, and the point count, coordinate sum and polar-feature sum, so
the caller can check that both implementations produced the same points.
"""
import json
import pathlib
import sys
import time

import numpy as np
import pyarrow.parquet as pq

LIDAR_COLUMNS = [
    "key.segment_context_name",
    "key.frame_timestamp_micros",
    "key.laser_name",
    "[LiDARComponent].range_image_return1.values",
    "[LiDARComponent].range_image_return1.shape",
    "[LiDARComponent].range_image_return2.values",
    "[LiDARComponent].range_image_return2.shape",
]


def rotation_rpy(roll, pitch, yaw):
    """Rz(yaw) @ Ry(pitch) @ Rx(roll), per pixel: inputs [...], output [..., 3, 3]."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    r = np.empty(roll.shape + (3, 3))
    r[..., 0, 0] = cy * cp
    r[..., 0, 1] = cy * sp * sr - sy * cr
    r[..., 0, 2] = cy * sp * cr + sy * sr
    r[..., 1, 0] = sy * cp
    r[..., 1, 1] = sy * sp * sr + cy * cr
    r[..., 1, 2] = sy * sp * cr - cy * sr
    r[..., 2, 0] = -sp
    r[..., 2, 1] = cp * sr
    r[..., 2, 2] = cp * cr
    return r


def to_points(ri, extrinsic, incl_values, incl_min, incl_max, pixel_pose, frame_pose, keep_polar_features=False):
    h, w, _ = ri.shape
    if incl_values is not None and len(incl_values) > 0:
        incl = np.asarray(incl_values, dtype=np.float64)
    else:
        incl = incl_min + (np.arange(h) + 0.5) / h * (incl_max - incl_min)
    incl = incl[::-1]
    az_corr = np.arctan2(extrinsic[1, 0], extrinsic[0, 0])
    az = np.pi * (1.0 - (2.0 * np.arange(w) + 1.0) / w) - az_corr
    r = ri[..., 0].astype(np.float64)
    ci, si = np.cos(incl)[:, None], np.sin(incl)[:, None]
    ca, sa = np.cos(az)[None, :], np.sin(az)[None, :]
    p = np.stack([r * ci * ca, r * ci * sa, r * si], axis=-1)
    p = p @ extrinsic[:3, :3].T + extrinsic[:3, 3]
    if pixel_pose is not None and frame_pose is not None:
        rot = rotation_rpy(pixel_pose[..., 0], pixel_pose[..., 1], pixel_pose[..., 2])
        p = np.einsum("hwij,hwj->hwi", rot, p) + pixel_pose[..., 3:6]
        inv = np.linalg.inv(frame_pose)
        p = p @ inv[:3, :3].T + inv[:3, 3]
    mask = r > 0
    if keep_polar_features:
        # upstream: concat([range, intensity, elongation], xyz) of the kept pixels
        return np.concatenate([ri[..., :3][mask].astype(np.float64), p[mask]], axis=-1)
    return p[mask]


def main(root):
    root = pathlib.Path(root)
    out = {"read_s": 0.0, "convert_s": 0.0, "convert_features_s": 0.0, "rows": 0, "points": 0, "coord_sum": 0.0,
           "feature_sum": 0.0}
    for lidar in sorted((root / "lidar").glob("*.parquet")):
        seg = lidar.name
        t0 = time.perf_counter()
        table = pq.read_table(lidar, columns=LIDAR_COLUMNS)
        out["read_s"] += time.perf_counter() - t0
        out["rows"] += table.num_rows
        calib = pq.read_table(root / "lidar_calibration" / seg).to_pylist()
        calib = {c["key.laser_name"]: c for c in calib}
        poses = {}
        if (root / "vehicle_pose" / seg).exists():
            for r in pq.read_table(root / "vehicle_pose" / seg).to_pylist():
                poses[r["key.frame_timestamp_micros"]] = np.asarray(r["[VehiclePoseComponent].world_from_vehicle.transform"]).reshape(4, 4)
        pixel_poses = {}
        if (root / "lidar_pose" / seg).exists():
            for r in pq.read_table(root / "lidar_pose" / seg).to_pylist():
                shape = r["[LiDARPoseComponent].range_image_return1.shape"]
                pixel_poses[(r["key.frame_timestamp_micros"], r["key.laser_name"])] = np.asarray(
                    r["[LiDARPoseComponent].range_image_return1.values"], dtype=np.float64).reshape(shape)
        # Inputs as NumPy arrays first (zero-copy from Arrow); the timed part is the
        # conversion itself, as on the Rust side.
        values = table.column("[LiDARComponent].range_image_return1.values").combine_chunks()
        shapes = table.column("[LiDARComponent].range_image_return1.shape").to_pylist()
        lasers = table.column("key.laser_name").to_pylist()
        stamps = table.column("key.frame_timestamp_micros").to_pylist()
        images = [values[i].values.to_numpy(zero_copy_only=False).reshape(shapes[i]) for i in range(table.num_rows)]
        args = []
        for laser, ts in zip(lasers, stamps):
            c = calib[laser]
            ext = np.asarray(c["[LiDARCalibrationComponent].extrinsic.transform"]).reshape(4, 4)
            args.append((ext, c["[LiDARCalibrationComponent].beam_inclination.values"],
                         c["[LiDARCalibrationComponent].beam_inclination.min"],
                         c["[LiDARCalibrationComponent].beam_inclination.max"],
                         pixel_poses.get((ts, laser)), poses.get(ts)))
        t0 = time.perf_counter()
        for ri, a in zip(images, args):
            pts = to_points(ri, *a)
            out["points"] += int(pts.shape[0])
            out["coord_sum"] += float(pts.sum())
        out["convert_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for ri, a in zip(images, args):
            pts = to_points(ri, *a, keep_polar_features=True)
            out["feature_sum"] += float(pts[:, :3].sum())
        out["convert_features_s"] += time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
