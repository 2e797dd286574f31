"""The models through the wheel: the same outputs as the command's."""

import numpy as np
import pytest

import scenetok
from scenetok.errors import InvalidInputError

from conftest import run


def test_transformer_predictions_equal_the_commands(cli, womd_sample, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    run(cli, "eval", "--data", womd_sample, "--model", "transformer", "--out", tmp_path / "run")
    want = pq.read_table(tmp_path / "run" / "predictions.parquet").to_pydict()
    (s,) = scenetok.womd.read_scenarios(womd_sample)
    p = scenetok.models.motion_model("transformer").predict(s)
    assert p.trajectories.shape[1:] == (6, 16, 2)
    got = {}
    for i, oid in enumerate(p.object_ids):
        for k in range(p.scores.shape[1]):
            if not np.isnan(p.scores[i, k]):
                got[(int(oid), k)] = (p.scores[i, k], p.trajectories[i, k, :, 0].tolist(), p.trajectories[i, k, :, 1].tolist())
    rows = {
        (oid, mode): (conf, x, y)
        for oid, mode, conf, x, y in zip(want["object_id"], want["mode"], want["confidence"], want["x"], want["y"])
    }
    assert got == rows


def test_lidar_segmenter_gives_a_class_per_point(fixture_dataset):
    ds = scenetok.v2.open(fixture_dataset)
    f = ds.segment(ds.segments[0])[0]
    cloud = f.point_cloud("TOP")
    seg = scenetok.models.LidarSegmenter()
    classes = seg(cloud["xyz"], cloud["features"][:, 1])
    assert classes.shape == (len(cloud["xyz"]),) and classes.dtype == np.int32
    assert classes.min() >= 0 and classes.max() <= 22
    # Deterministic, and the same for float64 input (converted to float32).
    np.testing.assert_array_equal(classes, seg(cloud["xyz"].astype(np.float64), cloud["features"][:, 1]))
    with pytest.raises(InvalidInputError, match="expected xyz"):
        seg(cloud["xyz"][:, :2], cloud["features"][:, 1])
    bad = cloud["xyz"].copy()
    bad[5, 0] = np.nan
    with pytest.raises(InvalidInputError, match="point 5: non-finite"):
        seg(bad, cloud["features"][:, 1])


def test_unknown_models_and_missing_weights(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown motion model"):
        scenetok.models.motion_model("oracle")
    with pytest.raises(scenetok.errors.InputNotFoundError):
        scenetok.models.motion_model("transformer", weights=tmp_path / "none.safetensors")
