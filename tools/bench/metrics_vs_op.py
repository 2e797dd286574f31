"""The WOMD motion metrics through scenetok's wheel against Waymo's own op, in one process.

    .venv-waymo/bin/python tools/bench/metrics_vs_op.py SCENARIO.tfrecord [--reps R] [--batches 1,16]

Run by tools/python/bench.sh (which builds the wheel and installs it, without its
dependencies, into .venv-waymo: the abi3 wheel imports on that venv's Python 3.11 and
NumPy 1.23 beside TensorFlow 2.13 and `waymo-open-dataset-tf-2-12-0`, the only place Waymo's
op runs).

Both sides score the same inputs: the scenario's every track valid at the current step as a
prediction target, six constant-velocity modes each (the setting of the op table in
tests/it/motion_metrics.rs), the challenge config. A call scores a batch of B copies of the
scenario (the op: one `motion_metrics` call on [B, ...] tensors with B scenario ids; the wheel:
`MotionMetrics()`, B `add`s, `result()`). Inputs are built once, outside the timers (the op's
as float32 tensors, the wheel's as `Scenario` / `Predictions` objects); two untimed warm-up
calls per side; then R rounds, each timing one call of each side in turn (one timer around
each call; TensorFlow runs eagerly and its result is ready when the call returns); the
values are compared after the timers. Both sides run with their default threads on this
machine's cores (TensorFlow's pools; the wheel's metrics are single-threaded).

Prints one JSON object: versions, cores, and per batch size each side's seconds per call
(every round), scenarios per second (median) and the ratio, plus the largest difference
between the two sides' nine breakdowns.
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from importlib.metadata import version  # noqa: E402
from waymo_open_dataset.metrics.ops import py_metrics_ops  # noqa: E402
from waymo_open_dataset.protos import motion_metrics_pb2  # noqa: E402

import scenetok  # noqa: E402

CHALLENGE = """
track_steps_per_second: 10
prediction_steps_per_second: 2
track_history_samples: 10
track_future_samples: 80
speed_lower_bound: 1.4
speed_upper_bound: 11.0
speed_scale_lower: 0.5
speed_scale_upper: 1.0
step_configurations { measurement_step: 5 lateral_miss_threshold: 1.0 longitudinal_miss_threshold: 2.0 }
step_configurations { measurement_step: 9 lateral_miss_threshold: 1.8 longitudinal_miss_threshold: 3.6 }
step_configurations { measurement_step: 15 lateral_miss_threshold: 3.0 longitudinal_miss_threshold: 6.0 }
max_predictions: 6
"""
FACTORS = np.array([1.0, 0.5, 1.5, 0.0, 0.75, 1.25])
CONFIDENCES = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1], dtype=np.float32)
# The op's output order (config_util.cc) and scenetok's names for the same breakdowns.
BREAKDOWNS = [f"TYPE_{t}_{s}" for t in ("VEHICLE", "PEDESTRIAN", "CYCLIST") for s in (5, 9, 15)]
OP_METRICS = ["min_ade", "min_fde", "miss_rate", "overlap_rate", "mean_average_precision"]


def inputs(scenario):
    targets = np.flatnonzero(scenario.valid[:, 10])
    now = scenario.states[targets, 10]
    t = 0.5 * np.arange(1, 17)
    x = now[:, None, None, 0] + now[:, None, None, 7] * FACTORS[None, :, None] * t
    y = now[:, None, None, 1] + now[:, None, None, 8] * FACTORS[None, :, None] * t
    traj = np.stack([x, y], axis=-1).astype(np.float32)  # [M, 6, 16, 2]
    scores = np.broadcast_to(CONFIDENCES, (len(targets), 6))
    return targets, traj, scores


def op_tensors(scenario, targets, traj, scores, batch):
    st = scenario.states  # x y z length width height heading vx vy
    gt = np.stack([st[..., 0], st[..., 1], st[..., 3], st[..., 4], st[..., 6], st[..., 7], st[..., 8]], axis=-1)
    rep = lambda a: np.repeat(a[None], batch, axis=0)  # noqa: E731
    return dict(
        prediction_trajectory=tf.constant(rep(traj[:, :, None])),  # [B, M, K, 1, T, 2]
        prediction_score=tf.constant(rep(scores.astype(np.float32))),
        ground_truth_trajectory=tf.constant(rep(gt.astype(np.float32))),
        ground_truth_is_valid=tf.constant(rep(scenario.valid)),
        prediction_ground_truth_indices=tf.constant(rep(targets.astype(np.int64)[:, None])),
        prediction_ground_truth_indices_mask=tf.constant(rep(np.ones((len(targets), 1), bool))),
        object_type=tf.constant(rep(scenario.object_types)),
        object_id=tf.constant(rep(scenario.object_ids)),
        scenario_id=tf.constant([f"{scenario.scenario_id}-{b}" for b in range(batch)]),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--batches", default="1,16")
    args = ap.parse_args()

    (scenario,) = scenetok.womd.read_scenarios(args.scenario)
    targets, traj, scores = inputs(scenario)
    s = scenario.with_tracks_to_predict(targets)
    p = scenetok.metrics.Predictions(s.scenario_id, scenario.object_ids[targets], traj, scores)
    config = text_format.Parse(CHALLENGE, motion_metrics_pb2.MotionMetricsConfig()).SerializeToString()

    def op_call(tensors):
        return py_metrics_ops.motion_metrics(config=config, **tensors)

    def wheel_call(batch):
        m = scenetok.metrics.MotionMetrics()
        for _ in range(batch):
            m.add(s, p)
        return m.result()

    out = {
        "scenario": scenario.scenario_id,
        "prediction_targets": int(len(targets)),
        "tensorflow": tf.__version__,
        "waymo_open_dataset": version("waymo-open-dataset-tf-2-12-0"),
        "scenetok": scenetok.__version__,
        "numpy": np.__version__,
        "cores": os.cpu_count(),
        "reps": args.reps,
        "batches": {},
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        tensors = op_tensors(scenario, targets, traj, scores, batch)
        for _ in range(2):
            op_result, wheel_result = op_call(tensors), wheel_call(batch)
        op_s, wheel_s = [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            op_result = op_call(tensors)
            t1 = time.perf_counter()
            wheel_result = wheel_call(batch)
            t2 = time.perf_counter()
            op_s.append(t1 - t0)
            wheel_s.append(t2 - t1)
        # The two sides' values (after the timers): the op's five metrics of nine breakdowns.
        diff = 0.0
        for name, values in zip(OP_METRICS, op_result):
            for i, b in enumerate(BREAKDOWNS):
                diff = max(diff, abs(float(values.numpy()[i]) - wheel_result[b][name]))
        op_med, wheel_med = statistics.median(op_s), statistics.median(wheel_s)
        out["batches"][str(batch)] = {
            "op_seconds": op_s,
            "wheel_seconds": wheel_s,
            "op_scenarios_per_second": batch / op_med,
            "wheel_scenarios_per_second": batch / wheel_med,
            "speedup_median": op_med / wheel_med,
            "speedup_per_round": sorted(o / w for o, w in zip(op_s, wheel_s)),
            "max_abs_difference": diff,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
