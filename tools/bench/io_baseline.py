"""pyarrow and NumPy baselines for `scenetok bench io`, run by it in the same invocation.

    io_baseline.py DATASET_ROOT

For every segment with a `lidar` file: (1) pyarrow reads the same lidar columns scenetok
reads (timed: `pq.read_table`, pyarrow's own thread pool); (2) a NumPy port of
docs/geometry.md#range-image--points converts every first-return range image to points (TOP with
per-pixel pose and the inverse frame pose), in four variants:

    NumPy float64 xyz                  today's port: f64 math, xyz only (upstream's default)
    NumPy float64 keep_polar_features  + range, intensity, elongation (upstream's option)
    NumPy float32 xyz                  f32 math and output, the dtype of scenetok's points
    NumPy float32 keep_polar_features  and of upstream's TensorFlow code

Timed exactly as scenetok times its side: the inputs are decoded beforehand (range images and
pixel poses as float32 arrays, zero-copy from Arrow, as scenetok holds them as f32 images;
calibrations and frame poses as small arrays), then the frames are converted back to back, one
timer around each frame's conversion of all its lasers; the frame's outputs are kept until the
timer stops, and the checksums (point count, coordinate sum, polar-feature sum, in float64) are
computed after it, outside every timer. NumPy runs on one thread: its loops are single-threaded
and OpenBLAS (the two small matrix products per image) is held to one thread here.

Prints one JSON object: the read time, the thread counts, and per variant its seconds and
checksums, so that the caller can check that each produced the same points as scenetok.
"""
import json
import os
import pathlib
import sys
import time

# Before NumPy loads: its BLAS on one thread, so "NumPy: one thread" is a fact, not a threshold.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

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
    """Rz(yaw) @ Ry(pitch) @ Rx(roll), per pixel: inputs [...], output [..., 3, 3] (their dtype)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    r = np.empty(roll.shape + (3, 3), dtype=roll.dtype)
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


def to_points(ri, extrinsic, incl_values, incl_min, incl_max, pixel_pose, frame_pose, dtype=np.float64,
              keep_polar_features=False):
    """One range image ([H, W, C] float32) → [N, 3] xyz, or [N, 6] range, intensity, elongation,
    x, y, z with `keep_polar_features` (upstream's order), computed and returned in `dtype`."""
    h, w, _ = ri.shape
    if incl_values is not None and len(incl_values) > 0:
        incl = np.asarray(incl_values, dtype=dtype)
    else:
        incl = (incl_min + (np.arange(h) + 0.5) / h * (incl_max - incl_min)).astype(dtype)
    incl = incl[::-1]
    ext = extrinsic.astype(dtype, copy=False)
    az_corr = np.arctan2(ext[1, 0], ext[0, 0])
    az = (np.pi * (1.0 - (2.0 * np.arange(w, dtype=dtype) + 1.0) / w)).astype(dtype) - az_corr
    r = ri[..., 0].astype(dtype, copy=False)
    ci, si = np.cos(incl)[:, None], np.sin(incl)[:, None]
    ca, sa = np.cos(az)[None, :], np.sin(az)[None, :]
    p = np.stack([r * ci * ca, r * ci * sa, r * si], axis=-1)
    p = p @ ext[:3, :3].T + ext[:3, 3]
    if pixel_pose is not None and frame_pose is not None:
        pose = pixel_pose.astype(dtype, copy=False)
        rot = rotation_rpy(pose[..., 0], pose[..., 1], pose[..., 2])
        p = np.einsum("hwij,hwj->hwi", rot, p) + pose[..., 3:6]
        inv = np.linalg.inv(frame_pose.astype(dtype, copy=False))
        p = p @ inv[:3, :3].T + inv[:3, 3]
    mask = r > 0
    if keep_polar_features:
        # upstream: concat([range, intensity, elongation], xyz) of the kept pixels
        return np.concatenate([ri[..., :3][mask].astype(dtype, copy=False), p[mask]], axis=-1)
    return p[mask]


VARIANTS = [
    ("NumPy float64 xyz", np.float64, False),
    ("NumPy float64 keep_polar_features", np.float64, True),
    ("NumPy float32 xyz", np.float32, False),
    ("NumPy float32 keep_polar_features", np.float32, True),
]


def load_segment(root, seg, out):
    """Reads (timed) the lidar columns; returns the segment's frames, each a list of per-laser
    conversion inputs, decoded beforehand (not timed)."""
    lidar = root / "lidar" / seg
    t0 = time.perf_counter()
    table = pq.read_table(lidar, columns=LIDAR_COLUMNS)
    out["read_s"] += time.perf_counter() - t0
    out["rows"] += table.num_rows
    calib = {c["key.laser_name"]: c for c in pq.read_table(root / "lidar_calibration" / seg).to_pylist()}
    poses = {}
    if (root / "vehicle_pose" / seg).exists():
        for r in pq.read_table(root / "vehicle_pose" / seg).to_pylist():
            poses[r["key.frame_timestamp_micros"]] = np.asarray(
                r["[VehiclePoseComponent].world_from_vehicle.transform"], dtype=np.float64).reshape(4, 4)
    pixel_poses = {}
    if (root / "lidar_pose" / seg).exists():
        t = pq.read_table(root / "lidar_pose" / seg)
        values = t.column("[LiDARPoseComponent].range_image_return1.values").combine_chunks()
        shapes = t.column("[LiDARPoseComponent].range_image_return1.shape").to_pylist()
        keys = zip(t.column("key.frame_timestamp_micros").to_pylist(), t.column("key.laser_name").to_pylist())
        for i, key in enumerate(keys):
            # float32 as stored (zero-copy), as scenetok holds it
            pixel_poses[key] = values[i].values.to_numpy(zero_copy_only=False).reshape(shapes[i])
    values = table.column("[LiDARComponent].range_image_return1.values").combine_chunks()
    shapes = table.column("[LiDARComponent].range_image_return1.shape").to_pylist()
    lasers = table.column("key.laser_name").to_pylist()
    stamps = table.column("key.frame_timestamp_micros").to_pylist()
    frames = {}
    for i, (laser, ts) in enumerate(zip(lasers, stamps)):
        if shapes[i] is None:
            continue
        ri = values[i].values.to_numpy(zero_copy_only=False).reshape(shapes[i])
        c = calib[laser]
        ext = np.asarray(c["[LiDARCalibrationComponent].extrinsic.transform"], dtype=np.float64).reshape(4, 4)
        frames.setdefault(ts, []).append((ri, ext, c["[LiDARCalibrationComponent].beam_inclination.values"],
                                          c["[LiDARCalibrationComponent].beam_inclination.min"],
                                          c["[LiDARCalibrationComponent].beam_inclination.max"],
                                          pixel_poses.get((ts, laser)), poses.get(ts)))
    return [frames[ts] for ts in sorted(frames)]


def checksums(outputs, polar):
    """Point count, xyz sum and range+intensity+elongation sum, in float64."""
    n, coords, feats = 0, 0.0, 0.0
    for pts in outputs:
        n += int(pts.shape[0])
        if polar:
            coords += float(pts[:, 3:].sum(dtype=np.float64))
            feats += float(pts[:, :3].sum(dtype=np.float64))
        else:
            coords += float(pts.sum(dtype=np.float64))
    return n, coords, feats


def main(root):
    root = pathlib.Path(root)
    out = {
        "read_s": 0.0,
        "rows": 0,
        "threads": f"pyarrow {pa.cpu_count()} CPU + {pa.io_thread_count()} I/O threads (its defaults); "
                   "NumPy 1 thread (single-threaded loops, OpenBLAS held to 1)",
        "variants": [],
    }
    segments = [load_segment(root, p.name, out) for p in sorted((root / "lidar").glob("*.parquet"))]
    for name, dtype, polar in VARIANTS:
        v = {"name": name, "seconds": 0.0, "points": 0, "coord_sum": 0.0, "feature_sum": 0.0 if polar else None}
        for frames in segments:
            for frame in frames:
                t0 = time.perf_counter()
                outputs = [to_points(*a, dtype=dtype, keep_polar_features=polar) for a in frame]
                v["seconds"] += time.perf_counter() - t0
                n, coords, feats = checksums(outputs, polar)
                v["points"] += n
                v["coord_sum"] += coords
                if polar:
                    v["feature_sum"] += feats
                del outputs
        out["variants"].append(v)
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
