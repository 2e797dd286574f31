"""Reads a scenetok-generated v2 world with Waymo's own library and compares it with scenetok.

Not part of the tests or CI: Waymo's package needs TensorFlow (about 2.8 GB) in its own venv.
Run it whenever the generator (src/sim/) or the v2 writer (src/io/v2/) changes:

    tools/bench/setup-waymo.sh                      # once: .venv-waymo/ (git-ignored)
    cargo build                                     # target/debug/scenetok (or pass --scenetok)
    .venv-waymo/bin/python tools/check_waymo_v2.py [--world DIR] [--out DIR] [--scenetok BIN]

What it does:

1. The world: `scenetok generate --out OUT/world --segments 1 --frames 2 --camera-div 8
   --seed 1` (Waymo's full LiDAR sizes, camera images at 1/8 size), unless `--world` names one.
2. scenetok's points: `scenetok features --data WORLD --out OUT/features.parquet`, whose
   per-point file holds one row per point of both returns of every laser (`laser, return,
   row, col, x, y, z`) and the camera projection scenetok computed for it (`camera, u, v`:
   the first camera in lidar_camera_projection order whose image holds the point). It needs
   ONNX Runtime (tools/setup.sh), which scenetok finds as it always does.
3. Every component file read with the official v2 dataclasses as upstream's v2 tutorial does:
   `dask.dataframe.read_parquet`, `v2.merge` on the key columns, and `<Component>.from_dict(row)`
   for every row (`map_feature` is scenetok's extension and has no upstream class). A row
   that does not decode is a failure; `num_cameras_covered` (written as empty bytes, never
   null) must decode with the camera segmentation rows.
4. Points: for every frame, laser and return, upstream's
   `v2.perception.utils.lidar_utils.convert_range_image_to_point_cloud` (TOP with its
   `lidar_pose` pixel pose and the frame's `vehicle_pose`, as upstream applies it) against
   scenetok's rows: the same pixels in the same order, and the largest |Δx|, |Δy|, |Δz|.
5. Projections: upstream's camera model (`wdl_limited.camera.ops.py_camera_model_ops.
   world_to_image`, with each camera's calibration and its image's pose, velocity and
   shutter timing) applied to upstream's points, against (a) the `lidar_camera_projection`
   component the generator wrote (both slots) and (b) scenetok's own per-point projection from
   step 2; and which cameras see each point (the first two in FRONT, FRONT_LEFT, FRONT_RIGHT,
   SIDE_LEFT, SIDE_RIGHT order whose image holds the valid projection) against the stored
   slots. A point on an image edge (within the pixel tolerance) may fall either way.

Prints the counts and the largest differences; exits 1 when a row does not decode, the
pixels differ, or a difference exceeds the tolerances: 1e-4 m for points, 0.01 px for
projections. (Upstream computes in float32 and scenetok in float64, so small differences in
the last float32 bits are expected.)
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
from importlib.metadata import version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dask.dataframe as dd  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402

from waymo_open_dataset import v2  # noqa: E402
from waymo_open_dataset.v2.perception.utils import lidar_utils  # noqa: E402
from waymo_open_dataset.wdl_limited.camera.ops import py_camera_model_ops  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
POINT_TOLERANCE_M = 1e-4
PIXEL_TOLERANCE = 0.01
# lidar_camera_projection's camera order (docs/formats.md): FRONT, FRONT_LEFT, FRONT_RIGHT,
# SIDE_LEFT, SIDE_RIGHT.
PROJECTION_ORDER = [1, 2, 3, 4, 5]
TOP = 1

COMPONENTS = {
    "lidar": v2.LiDARComponent,
    "lidar_calibration": v2.LiDARCalibrationComponent,
    "lidar_pose": v2.LiDARPoseComponent,
    "lidar_segmentation": v2.LiDARSegmentationLabelComponent,
    "lidar_camera_projection": v2.LiDARCameraProjectionComponent,
    "camera_image": v2.CameraImageComponent,
    "camera_calibration": v2.CameraCalibrationComponent,
    "camera_segmentation": v2.CameraSegmentationLabelComponent,
    "lidar_box": v2.LiDARBoxComponent,
    "camera_box": v2.CameraBoxComponent,
    "projected_lidar_box": v2.ProjectedLiDARBoxComponent,
    "camera_to_lidar_box_association": v2.CameraToLiDARBoxAssociationComponent,
    "vehicle_pose": v2.VehiclePoseComponent,
    "stats": v2.StatsComponent,
    "camera_hkp": v2.CameraHumanKeypointsComponent,
}


class Report:
    def __init__(self):
        self.failures = []

    def fail(self, msg):
        self.failures.append(msg)
        print(f"  FAIL: {msg}")


def scenetok_binary(arg):
    if arg:
        return arg
    for profile in ("release", "debug"):
        exe = REPO / "target" / profile / "scenetok"
        if exe.exists():
            return str(exe)
    sys.exit("scenetok not built: run `cargo build` or pass --scenetok")


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def decode_components(root, segment, report):
    """Step 3: every row of every component through its dataclass."""
    print("components (official v2 dataclasses, from_dict on every row):")
    for tag, cls in COMPONENTS.items():
        path = root / tag / f"{segment}.parquet"
        if not path.exists():
            print(f"  {tag:32} absent")
            continue
        n, errors = 0, []
        for _, row in dd.read_parquet(str(path)).iterrows():
            try:
                component = cls.from_dict(row)
                if tag == "camera_segmentation":
                    covered = component.num_cameras_covered
                    if not isinstance(covered, (bytes, bytearray)):
                        errors.append(f"num_cameras_covered is {type(covered).__name__}, not bytes")
            except Exception as e:  # any failure to decode is what this step looks for
                errors.append(f"{type(e).__name__}: {e}")
            n += 1
        print(f"  {tag:32} {n:5} rows" + (f", {len(errors)} do not decode" if errors else " decode"))
        for e in errors[:3]:
            report.fail(f"{tag}: {e}")


def read(root, tag, segment):
    return dd.read_parquet(str(root / tag / f"{segment}.parquet"))


def present(row, column):
    """Whether a merged row has this (possibly left-joined) column."""
    v = row.get(column)
    return v is not None and not (isinstance(v, float) and np.isnan(v))


def camera_metadata(root, segment):
    """Per (timestamp, camera): what upstream's world_to_image takes."""
    cams = v2.merge(read(root, "camera_image", segment), read(root, "camera_calibration", segment))
    out = {}
    for _, row in cams.iterrows():
        image = v2.CameraImageComponent.from_dict(row)
        calib = v2.CameraCalibrationComponent.from_dict(row)
        i = calib.intrinsic
        v = image.velocity
        rs = image.rolling_shutter_params
        meta = list(image.pose.transform) + [
            v.linear_velocity.x, v.linear_velocity.y, v.linear_velocity.z,
            v.angular_velocity.x, v.angular_velocity.y, v.angular_velocity.z,
            image.pose_timestamp, rs.shutter, rs.camera_trigger_time, rs.camera_readout_done_time,
        ]
        out[(image.key.frame_timestamp_micros, image.key.camera_name)] = dict(
            extrinsic=tf.reshape(tf.constant(calib.extrinsic.transform, tf.float64), [4, 4]),
            intrinsic=tf.constant([i.f_u, i.f_v, i.c_u, i.c_v, i.k1, i.k2, i.p1, i.p2, i.k3], tf.float64),
            metadata=tf.constant([calib.width, calib.height, calib.rolling_shutter_direction], tf.int32),
            image=tf.constant(meta, tf.float64),
            pose=np.array(image.pose.transform, np.float64).reshape(4, 4),
            size=(calib.width, calib.height),
        )
    return out


def project(cam, points_vehicle):
    """Upstream's projection of vehicle-frame points into one camera: u, v, valid."""
    world = points_vehicle @ cam["pose"][:3, :3].T + cam["pose"][:3, 3]
    uvk = py_camera_model_ops.world_to_image(
        cam["extrinsic"], cam["intrinsic"], cam["metadata"], cam["image"], tf.constant(world, tf.float64)
    ).numpy()
    return uvk[:, 0], uvk[:, 1], uvk[:, 2] > 0.5


def check_points_and_projections(root, segment, features, report):
    """Steps 4 and 5."""
    table = pq.read_table(features).to_pandas()
    table = table[table.segment == segment]
    cameras = camera_metadata(root, segment)
    lidar = v2.merge(read(root, "lidar", segment), read(root, "lidar_calibration", segment))
    lidar = v2.merge(lidar, read(root, "vehicle_pose", segment))
    lidar = v2.merge(lidar, read(root, "lidar_camera_projection", segment))
    lidar = v2.merge(lidar, read(root, "lidar_pose", segment), right_nullable=True)

    worst_point = 0.0
    worst_stored = 0.0
    worst_scenetok = 0.0
    n_points = n_stored = n_scenetok = 0
    choice_disagreements = choice_on_edge = 0
    ok_disagreements = 0
    print("points (upstream convert_range_image_to_point_cloud vs scenetok features):")
    for _, row in lidar.iterrows():
        l = v2.LiDARComponent.from_dict(row)
        calib = v2.LiDARCalibrationComponent.from_dict(row)
        frame_pose = v2.VehiclePoseComponent.from_dict(row)
        projection = v2.LiDARCameraProjectionComponent.from_dict(row)
        has_pose = present(row, "[LiDARPoseComponent].range_image_return1.values")
        pixel_pose = v2.LiDARPoseComponent.from_dict(row).range_image_return1 if has_pose else None
        ts, laser = l.key.frame_timestamp_micros, l.key.laser_name
        for ret, ri, proj in [
            (1, l.range_image_return1, projection.range_image_return1),
            (2, l.range_image_return2, projection.range_image_return2),
        ]:
            if ri is None or ri.values is None:
                continue
            pts = lidar_utils.convert_range_image_to_point_cloud(
                ri, calib, pixel_pose=pixel_pose, frame_pose=frame_pose if has_pose else None
            ).numpy().astype(np.float64)
            pixels = tf.compat.v1.where(ri.tensor[..., 0] > 0).numpy()
            mine = table[(table.timestamp_micros == ts) & (table.laser == laser) & (table["return"] == ret)]
            mine = mine.sort_values(["row", "col"], kind="stable")
            where = f"frame {ts}, laser {laser}, return {ret}"
            if len(mine) != len(pts) or not (
                np.array_equal(mine.row.to_numpy(), pixels[:, 0]) and np.array_equal(mine.col.to_numpy(), pixels[:, 1])
            ):
                report.fail(f"{where}: upstream has {len(pts)} points, scenetok {len(mine)} (or other pixels)")
                continue
            xyz = mine[["x", "y", "z"]].to_numpy(np.float64)
            diff = float(np.abs(xyz - pts).max()) if len(pts) else 0.0
            worst_point = max(worst_point, diff)
            n_points += len(pts)
            print(f"  {where}: {len(pts):6} points, max |Δxyz| {diff:.2e} m")

            # Projections of upstream's points by upstream's camera model.
            stored = lidar_utils.extract_pointwise_camera_projection(ri, proj).numpy().astype(np.float64)
            seen = {}
            for cam_name in PROJECTION_ORDER:
                cam = cameras.get((ts, cam_name))
                if cam is None:
                    continue
                u, v, valid = project(cam, pts)
                w, h = cam["size"]
                inside = valid & (u >= 0) & (u < w) & (v >= 0) & (v < h)
                edge = valid & (
                    (np.abs(u) < PIXEL_TOLERANCE) | (np.abs(u - w) < PIXEL_TOLERANCE)
                    | (np.abs(v) < PIXEL_TOLERANCE) | (np.abs(v - h) < PIXEL_TOLERANCE)
                )
                seen[cam_name] = (inside, edge)
                for slot in (0, 1):
                    sel = stored[:, 3 * slot] == cam_name
                    if sel.any():
                        ok_disagreements += int((~valid[sel]).sum())
                        d = np.maximum(np.abs(stored[sel, 3 * slot + 1] - u[sel]),
                                       np.abs(stored[sel, 3 * slot + 2] - v[sel]))
                        worst_stored = max(worst_stored, float(d.max()))
                        n_stored += int(sel.sum())
                sel = mine.camera.to_numpy() == cam_name
                if sel.any():
                    d = np.maximum(np.abs(mine.u.to_numpy()[sel] - u[sel]), np.abs(mine.v.to_numpy()[sel] - v[sel]))
                    worst_scenetok = max(worst_scenetok, float(d.max()))
                    n_scenetok += int(sel.sum())
            # Which cameras see each point: the first two in order, against the stored slots.
            expected = np.zeros((len(pts), 2))
            filled = np.zeros(len(pts), int)
            any_edge = np.zeros(len(pts), bool)
            for cam_name in PROJECTION_ORDER:
                if cam_name not in seen:
                    continue
                inside, edge = seen[cam_name]
                any_edge |= edge & (filled < 2)
                take = inside & (filled < 2)
                expected[take, filled[take]] = cam_name
                filled += take
            differ = (expected[:, 0] != stored[:, 0]) | (expected[:, 1] != stored[:, 3])
            choice_disagreements += int((differ & ~any_edge).sum())
            choice_on_edge += int((differ & any_edge).sum())

    print(f"points: {n_points} compared, max |Δxyz| {worst_point:.2e} m (tolerance {POINT_TOLERANCE_M:g} m)")
    if worst_point > POINT_TOLERANCE_M:
        report.fail(f"points differ by {worst_point:.2e} m")
    print(f"lidar_camera_projection (generator) vs upstream world_to_image: {n_stored} projections, "
          f"max |Δ| {worst_stored:.2e} px (tolerance {PIXEL_TOLERANCE:g} px); "
          f"{ok_disagreements} stored where upstream says invalid")
    print(f"scenetok features (camera, u, v) vs upstream world_to_image: {n_scenetok} points, "
          f"max |Δ| {worst_scenetok:.2e} px")
    print(f"cameras seeing each point (first two in order) vs the stored slots: {choice_disagreements} "
          f"disagree, {choice_on_edge} more on an image edge (within {PIXEL_TOLERANCE:g} px, either way is right)")
    if n_stored == 0 or n_scenetok == 0:
        report.fail("no projections compared")
    for what, worst in [("stored projections", worst_stored), ("scenetok projections", worst_scenetok)]:
        if worst > PIXEL_TOLERANCE:
            report.fail(f"{what} differ by {worst:.3g} px")
    if choice_disagreements or ok_disagreements:
        report.fail(f"camera choice differs for {choice_disagreements} points ({ok_disagreements} invalid upstream)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=pathlib.Path, help="a generated v2 world (default: generate one)")
    ap.add_argument("--out", type=pathlib.Path, help="working folder (default: a new temporary one)")
    ap.add_argument("--scenetok", help="the scenetok binary (default: target/release or target/debug)")
    args = ap.parse_args()
    exe = scenetok_binary(args.scenetok)
    out = args.out or pathlib.Path(tempfile.mkdtemp(prefix="check-waymo-v2-"))
    out.mkdir(parents=True, exist_ok=True)
    world = args.world
    if world is None:
        world = out / "world"
        if not world.exists():
            run([exe, "generate", "--out", str(world), "--segments", "1", "--frames", "2",
                 "--camera-div", "8", "--seed", "1"])
    features = out / "features.parquet"
    if not features.exists():
        run([exe, "features", "--data", str(world), "--out", str(features)])
    segments = sorted(p.stem for p in (world / "lidar").glob("*.parquet"))
    report = Report()
    print(f"waymo-open-dataset {version('waymo-open-dataset-tf-2-12-0')}, TensorFlow {tf.__version__}; "
          f"world {world}, segments {segments}")
    for segment in segments:
        decode_components(world, segment, report)
        check_points_and_projections(world, segment, features, report)
    if report.failures:
        print(f"FAILED: {len(report.failures)} problem(s)")
        sys.exit(1)
    print("OK: Waymo's v2 library reads the world, and its points and projections match scenetok's")


if __name__ == "__main__":
    main()
