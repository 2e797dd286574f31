"""v2 datasets through the wheel: segments, frames, tables, and points equal to the command's."""

import shutil

import numpy as np
import pytest

import scenetok
from scenetok.errors import InputNotFoundError, InvalidInputError, ScenetokError

from conftest import run, run_failing


def exported(cli, data, tmp_path):
    """`scenetok sparse export`: the TOP lidar's first-return points of every frame."""
    from safetensors.numpy import load_file

    out = tmp_path / "export"
    run(cli, "sparse", "export", "--data", data, "--out", out)
    return {p.stem: load_file(str(p)) for p in sorted(out.glob("*.safetensors"))}


@pytest.mark.parametrize("which", ["fixture_dataset", "world"])
def test_points_equal_the_commands(cli, which, request, tmp_path):
    data = request.getfixturevalue(which)
    want = exported(cli, data, tmp_path)
    ds = scenetok.v2.open(data)
    seen = 0
    for name in ds.segments:
        for frame in ds.segment(name):
            w = want[f"{name}_{frame.timestamp_micros}"]
            xyz = frame.points("TOP")
            assert xyz.dtype == np.float32 and xyz.shape == w["xyz"].shape
            np.testing.assert_array_equal(xyz, w["xyz"])
            cloud = frame.point_cloud("TOP")
            np.testing.assert_array_equal(cloud["xyz"], xyz)
            np.testing.assert_array_equal(cloud["features"][:, 1], w["feats"][:, 3])  # intensity
            if "labels" in cloud:
                np.testing.assert_array_equal(cloud["labels"][:, 1], w["labels"])
            seen += 1
    assert seen == len(want) > 0


def test_frames_tables_and_images(fixture_dataset):
    pa = pytest.importorskip("pyarrow")
    ds = scenetok.v2.open(fixture_dataset)
    (name,) = ds.segments
    assert "lidar" in ds.components(name) and "vehicle_pose" in ds.components(name)
    seg = ds.segment(name)
    assert len(seg) == 3 and seg.timestamps.dtype == np.int64
    frames = list(seg)
    assert [f.timestamp_micros for f in frames] == seg.timestamps.tolist()
    f = seg[-1]
    assert f.timestamp_micros == seg.timestamps[-1]
    assert f.vehicle_pose.shape == (4, 4)
    order = ["TOP", "FRONT", "SIDE_LEFT", "SIDE_RIGHT", "REAR"]
    assert "TOP" in f.lasers and f.lasers == sorted(f.lasers, key=order.index)
    ri = f.range_image("TOP")
    assert ri.ndim == 3 and ri.shape[2] == 4
    assert len(f.points("TOP")) == int((ri[..., 0] > 0).sum())
    # Every laser together is every laser's points, in name order.
    every = np.concatenate([f.points(laser) for laser in f.lasers])
    np.testing.assert_array_equal(f.points(), every)
    cam = f.cameras[0]
    img = f.camera_image(cam)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert f.camera_jpeg(cam)[:2] == b"\xff\xd8"
    boxes = f.lidar_boxes()
    assert boxes["center"].shape == (len(boxes["id"]), 3)

    t = ds.table("lidar_box", name)
    assert isinstance(t, pa.Table) and t.num_rows == sum(len(fr.lidar_boxes()["id"]) for fr in frames)
    assert t.schema.field("key.frame_timestamp_micros").type == pa.int64()
    only = ds.table("vehicle_pose", name, columns=["key.frame_timestamp_micros"])
    assert only.column_names[-1] == "key.frame_timestamp_micros"
    assert sorted(only.column("key.frame_timestamp_micros").to_pylist()) == seg.timestamps.tolist()


def test_a_segment_reads_only_what_it_is_asked(fixture_dataset):
    ds = scenetok.v2.open(fixture_dataset)
    seg = ds.segment(ds.segments[0], components=["lidar", "lidar_calibration"], second_returns=False)
    f = seg[0]
    assert f.cameras == [] and f.vehicle_pose is None
    assert f.range_image("TOP", 2) is None and f.range_image("TOP", 1) is not None


def test_real_v2_sample_tables(samples):
    ds = scenetok.v2.open(samples / "v2" / "testdata" / "dataset")
    (name,) = ds.segments
    t = ds.table("vehicle_pose", name)
    assert t.num_rows > 0
    assert len(t.column("[VehiclePoseComponent].world_from_vehicle.transform")[0].as_py()) == 16


def test_bad_input_raises_the_commands_message(cli, fixture_dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(fixture_dataset, broken)
    lidar = next((broken / "lidar").glob("*.parquet"))
    lidar.write_bytes(lidar.read_bytes()[: lidar.stat().st_size // 2])
    with pytest.raises(InvalidInputError) as e:
        scenetok.v2.open(broken)
    assert str(lidar) in str(e.value)
    assert str(e.value) == run_failing(cli, "sparse", "export", "--data", broken, "--out", tmp_path / "x")


def test_missing_and_wrong_arguments(fixture_dataset, tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere"):
        scenetok.v2.open(tmp_path / "nowhere")
    ds = scenetok.v2.open(fixture_dataset)
    with pytest.raises(InvalidInputError, match="one of the segments"):
        ds.segment("no-such-segment")
    with pytest.raises(InvalidInputError, match="unknown component"):
        ds.table("lidars", ds.segments[0])
    f = ds.segment(ds.segments[0])[0]
    with pytest.raises(InvalidInputError, match="unknown laser"):
        f.points("ROOF")
    with pytest.raises(InvalidInputError, match="return_index must be 1 or 2"):
        f.points("TOP", 3)
    with pytest.raises(IndexError):
        ds.segment(ds.segments[0])[3]
    assert issubclass(InvalidInputError, ScenetokError) and issubclass(InvalidInputError, ValueError)


def test_a_mistyped_column_names_file_and_column(cli, fixture_dataset, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    bad = tmp_path / "bad"
    shutil.copytree(fixture_dataset, bad)
    path = next((bad / "vehicle_pose").glob("*.parquet"))
    t = pq.read_table(path)
    col = "[VehiclePoseComponent].world_from_vehicle.transform"
    t = t.set_column(t.column_names.index(col), col, pa.array(["not a matrix"] * t.num_rows))
    pq.write_table(t, path)
    ds = scenetok.v2.open(bad)
    with pytest.raises(InvalidInputError) as e:
        ds.segment(ds.segments[0])[0]
    assert str(path) in str(e.value) and col in str(e.value)
    assert str(e.value) == run_failing(cli, "sparse", "export", "--data", bad, "--out", tmp_path / "x")
