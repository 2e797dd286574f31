"""The WOMD motion metrics through the wheel: Waymo's op table on the real scenario, the
command's own metrics on the same predictions, validation errors, the submission file."""

import json

import numpy as np
import pytest

import scenetok
from scenetok.errors import InvalidInputError

from conftest import run

# Waymo's own metrics op (`motion_metrics_ops.cc`, challenge config) on
# motion_data_one_scenario.tfrecord, every track valid at step 10 predicted with six
# constant-velocity modes (tests/it/motion_metrics.rs, `official_op_table`):
# (breakdown, minADE, minFDE, miss rate, overlap rate, mAP).
OP_TABLE = [
    ("TYPE_VEHICLE_5", 0.431358, 0.554363, 0.111111, 0.133333, 0.609929),
    ("TYPE_VEHICLE_9", 0.602987, 0.978062, 0.129032, 0.133333, 0.563665),
    ("TYPE_VEHICLE_15", 0.772710, 0.963475, 0.080000, 0.133333, 0.555174),
    ("TYPE_PEDESTRIAN_5", 0.213090, 0.307108, 0.0, 0.666667, 0.750000),
    ("TYPE_PEDESTRIAN_9", 0.284147, 0.470754, 0.0, 0.666667, 0.750000),
    ("TYPE_PEDESTRIAN_15", 0.406935, 0.662065, 0.0, 0.666667, 0.750000),
    ("TYPE_CYCLIST_5", 0.511216, 1.099601, 1.0, 0.0, 0.0),
    ("TYPE_CYCLIST_9", 0.511216, 0.0, 0.0, 0.0, 0.0),
    ("TYPE_CYCLIST_15", 0.511216, 0.0, 0.0, 0.0, 0.0),
]
FACTORS = np.array([1.0, 0.5, 1.5, 0.0, 0.75, 1.25])
CONFIDENCES = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1], dtype=np.float32).astype(np.float64)


def op_inputs(scenario):
    """The scenario with every track valid at step 10 to predict, and the op's six
    constant-velocity modes per track (float32 positions, as the op reads them)."""
    targets = np.flatnonzero(scenario.valid[:, 10])
    s = scenario.with_tracks_to_predict(targets)
    now = scenario.states[targets, 10]  # [N, 9]
    t = 0.5 * np.arange(1, 17)  # 16 points, 0.5 ... 8 s
    x = now[:, None, None, 0] + now[:, None, None, 7] * FACTORS[None, :, None] * t
    y = now[:, None, None, 1] + now[:, None, None, 8] * FACTORS[None, :, None] * t
    traj = np.stack([x, y], axis=-1).astype(np.float32)  # [N, 6, 16, 2]
    scores = np.broadcast_to(CONFIDENCES, (len(targets), 6))
    return s, scenetok.metrics.Predictions(s.scenario_id, scenario.object_ids[targets], traj, scores)


def test_the_real_scenario_gives_waymos_op_table(womd_sample):
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    s, p = op_inputs(scenario)
    types = scenario.object_types[s.tracks_to_predict]
    assert [int((types == t).sum()) for t in (1, 2, 3)] == [45, 3, 2]
    m = scenetok.metrics.MotionMetrics()
    m.add(s, p)
    got = m.result()
    assert list(got) == [row[0] for row in OP_TABLE]
    for name, ade, fde, mr, overlap, m_ap in OP_TABLE:
        b = got[name]
        assert b["min_ade"] == pytest.approx(ade, abs=1e-4), name
        assert b["min_fde"] == pytest.approx(fde, abs=1e-4), name
        assert b["miss_rate"] == pytest.approx(mr, abs=1e-6), name
        assert b["overlap_rate"] == pytest.approx(overlap, abs=1e-6), name
        assert b["mean_average_precision"] == pytest.approx(m_ap, abs=1e-6), name


def test_metrics_equal_the_commands_on_its_own_predictions(cli, womd_sample, tmp_path):
    """`scenetok eval` writes predictions and metrics; the wheel scores those predictions
    and gets the same numbers, bit for bit."""
    pa = pytest.importorskip("pyarrow.parquet")
    run(cli, "eval", "--data", womd_sample, "--model", "ctra", "--out", tmp_path / "run")
    table = pa.read_table(tmp_path / "run" / "predictions.parquet").to_pydict()
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    ids = list(dict.fromkeys(table["object_id"]))
    k = max(table["mode"]) + 1
    traj = np.full((len(ids), k, 16, 2), np.nan)
    scores = np.full((len(ids), k), np.nan)
    for oid, mode, conf, x, y in zip(table["object_id"], table["mode"], table["confidence"], table["x"], table["y"]):
        i = ids.index(oid)
        traj[i, mode] = np.stack([x, y], axis=-1)
        scores[i, mode] = conf
    m = scenetok.metrics.MotionMetrics()
    m.add(scenario, scenetok.metrics.Predictions(scenario.scenario_id, ids, traj, scores))
    got = m.result()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    want = {f"{b['object_type']}_{b['measurement_step']}": b for b in find_breakdowns(metrics)}
    assert set(want) == set(got)
    present = {("VEHICLE", "PEDESTRIAN", "CYCLIST")[int(t) - 1] for t in scenario.object_types[scenario.tracks_to_predict]}
    assert len(present) < 3, "the scenario should leave a type out (for the -1 rule below)"
    for name, b in got.items():
        w = want[name]
        if name.split("_")[1] not in present:
            # No predicted object of this type: the op's -1, the command's zeros.
            assert set(b.values()) == {-1.0}, name
            assert (w["min_ade"], w["min_fde"], w["miss_rate"], w["map"]) == (0.0, 0.0, 0.0, 0.0), name
            continue
        assert (b["min_ade"], b["min_fde"], b["miss_rate"], b["overlap_rate"]) == (
            w["min_ade"], w["min_fde"], w["miss_rate"], w["overlap_rate"],
        ), name
        assert (b["mean_average_precision"], b["soft_mean_average_precision"]) == (w["map"], w["soft_map"]), name


def find_breakdowns(metrics):
    """The breakdown list of a run's metrics.json, wherever the run put it."""
    stack = [metrics]
    while stack:
        v = stack.pop()
        if isinstance(v, list) and v and isinstance(v[0], dict) and "measurement_step" in v[0]:
            return v
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    raise AssertionError("no breakdowns in metrics.json")


def test_ground_truth_predictions_score_perfectly(womd_sample):
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    targets = scenario.tracks_to_predict
    steps = 15 + 5 * np.arange(16)  # the track steps of the 16 prediction points
    xy = scenario.states[targets][:, steps, :2]  # [N, 16, 2]
    p = scenetok.metrics.Predictions(scenario.scenario_id, scenario.object_ids[targets], xy[:, None], np.ones((len(targets), 1)))
    m = scenetok.metrics.MotionMetrics()
    m.add(scenario, p)
    assert m.num_scenarios == 1
    present = {("VEHICLE", "PEDESTRIAN", "CYCLIST")[int(t) - 1] for t in scenario.object_types[targets]}
    for name, b in m.result().items():
        if name.split("_")[1] not in present:
            assert set(b.values()) == {-1.0}, name
            continue
        assert b["min_ade"] == 0.0 and b["min_fde"] == 0.0 and b["miss_rate"] == 0.0, name
        # mAP 1 where the step has a sample (valid ground truth there), else 0.
        assert b["mean_average_precision"] in (0.0, 1.0), name


def test_a_type_without_predictions_is_minus_one_as_in_the_op(womd_sample):
    """Only the vehicles of the op table predicted: Waymo's op gave the table's vehicle rows
    and -1 for every pedestrian and cyclist metric (run in .venv-waymo)."""
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    s, p = op_inputs(scenario)
    vehicles = scenario.object_types[s.tracks_to_predict] == 1
    s = scenario.with_tracks_to_predict(s.tracks_to_predict[vehicles])
    p = scenetok.metrics.Predictions(s.scenario_id, p.object_ids[vehicles], p.trajectories[vehicles], p.scores[vehicles])
    m = scenetok.metrics.MotionMetrics()
    m.add(s, p)
    got = m.result()
    for name, ade, fde, mr, overlap, m_ap in OP_TABLE:
        if name.startswith("TYPE_VEHICLE"):
            assert (got[name]["min_ade"], got[name]["mean_average_precision"]) == (
                pytest.approx(ade, abs=1e-4), pytest.approx(m_ap, abs=1e-6)), name
        else:
            assert set(got[name].values()) == {-1.0}, name


def test_bad_predictions_raise_with_the_scenario_named(womd_sample):
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    s, p = op_inputs(scenario)
    m = scenetok.metrics.MotionMetrics()
    traj = p.trajectories.copy()
    traj[0, 0, 3, 0] = np.nan
    with pytest.raises(InvalidInputError, match=f"scenario {s.scenario_id}: object .* non-finite predicted coordinate at step 3"):
        m.add(s, scenetok.metrics.Predictions(s.scenario_id, p.object_ids, traj, p.scores))
    with pytest.raises(InvalidInputError, match="no prediction for tracks_to_predict"):
        m.add(s, scenetok.metrics.Predictions(s.scenario_id, p.object_ids[1:], p.trajectories[1:], p.scores[1:]))
    with pytest.raises(InvalidInputError, match="trajectory of 15 points, expected 16"):
        m.add(s, scenetok.metrics.Predictions(s.scenario_id, p.object_ids, p.trajectories[:, :, :15], p.scores))
    with pytest.raises(InvalidInputError, match="disagree"):
        scenetok.metrics.Predictions(s.scenario_id, p.object_ids, p.trajectories, p.scores[:, :3])
    with pytest.raises(InvalidInputError, match="object_ids: expected an array of int64"):
        scenetok.metrics.Predictions(s.scenario_id, p.object_ids + 0.5, p.trajectories, p.scores)
    with pytest.raises(InvalidInputError, match="unknown metrics config"):
        scenetok.metrics.MotionMetrics("leaderboard")
    # Nothing was added by the refused calls.
    assert m.num_scenarios == 0


def test_predictions_round_trip_with_nan_for_missing_modes():
    traj = np.arange(2 * 3 * 16 * 2, dtype=np.float64).reshape(2, 3, 16, 2)
    scores = np.array([[0.5, 0.3, 0.2], [0.9, np.nan, np.nan]])
    p = scenetok.metrics.Predictions("s", [7, 9], traj, scores)
    assert len(p) == 2 and p.scenario_id == "s"
    assert p.object_ids.tolist() == [7, 9]
    np.testing.assert_array_equal(p.scores, scores)
    back = p.trajectories
    np.testing.assert_array_equal(back[0], traj[0])
    np.testing.assert_array_equal(back[1, 0], traj[1, 0])
    assert np.isnan(back[1, 1:]).all()


def test_submission_equals_the_commands_byte_for_byte(cli, womd_sample, tmp_path):
    """The same model's predictions written by the wheel and by `scenetok eval`: the same
    protobuf bytes (and the leaderboard's fields when given)."""
    run(cli, "eval", "--data", womd_sample, "--model", "ctra", "--out", tmp_path / "run")
    (scenario,) = scenetok.womd.read_scenarios(womd_sample)
    p = scenetok.models.motion_model("ctra").predict(scenario)
    path = tmp_path / "submission.binproto"
    scenetok.metrics.write_submission(path, [p], method_name="scenetok-ctra")
    assert path.read_bytes() == (tmp_path / "run" / "submission.binproto").read_bytes()
    scenetok.metrics.write_submission(path, [p], method_name="mine", account_name="me@example.com", authors=["A"])
    data = path.read_bytes()
    assert b"mine" in data and b"me@example.com" in data and scenario.scenario_id.encode() in data
