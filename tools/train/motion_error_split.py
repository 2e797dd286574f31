"""Where a motion model's minADE comes from: per agent type, the test samples whose truth turns
(its last valid point more than --turn metres to the side, in the agent's frame at t = 0) and
the rest, for trained weights and, paired on the same agents, for a `scenetok eval` run of any
other model (its predictions.parquet, in world coordinates).

minADE here is WOMD's at 8 s: 6 modes, the 16 steps at 2 Hz (0.5 s ... 8 s) where the truth is
valid, mean displacement; every model is scored on the same steps. Only agents that every eval
run predicted are counted.

    .venv-train/bin/python tools/train/motion_error_split.py --data ~/data/motion \\
        --weights data/weights/motion_transformer.safetensors \\
        --run lane-follower=runs/measure/motion_test_lane-follower
"""
import argparse
import collections
import glob
import os
import sys

import numpy as np
import pyarrow.parquet as pq
import torch

sys.path.insert(0, os.path.dirname(__file__))
import motion_twin as twin  # noqa: E402
from train_motion import TURN_M, batch_of, load_split, side_offset, to_model  # noqa: E402

TYPES = {1: "vehicle", 2: "pedestrian", 3: "cyclist"}
STEPS = np.arange(4, twin.FUTURE, 5)  # 0.5 s ... 8 s


def load_model(path):
    """Trained weights (safetensors) or a training checkpoint (.pt)."""
    if not path.endswith(".pt"):
        return twin.load(path)
    st = torch.load(path, weights_only=False)
    model = twin.build(st["run"]["config"])
    model.load_state_dict(st["model"])
    return model.eval()


@torch.no_grad()
def twin_min_ade(model, data, batch=256):
    out = []
    for s in range(0, len(data["agents"]), batch):
        idx = np.arange(s, min(s + batch, len(data["agents"])))
        x, y, v = to_model(batch_of(data, idx))
        mu = model(*x)[0][:, :, STEPS]
        out += twin.mean_displacement(mu, y[:, STEPS], v[:, STEPS]).min(1).values.tolist()
    return np.array(out)


def run_min_ade(run_dir, data, keys):
    """minADE of an eval run's predictions on the samples' agents (NaN where it has none)."""
    modes = collections.defaultdict(list)
    for r in pq.read_table(os.path.join(run_dir, "predictions.parquet")).to_pylist():
        modes[(r["scenario_id"], r["object_id"])].append((np.array(r["x"]), np.array(r["y"])))
    out = np.full(len(keys), np.nan)
    for i, k in enumerate(keys):
        if k not in modes:
            continue
        fut, ok = data["future_xy"][i].astype(float), data["future_valid"][i].astype(bool)
        c, s = np.cos(data["frame_heading"][i]), np.sin(data["frame_heading"][i])
        gx = data["frame_x"][i] + c * fut[:, 0] - s * fut[:, 1]
        gy = data["frame_y"][i] + s * fut[:, 0] + c * fut[:, 1]
        best = np.inf
        for x, y in modes[k]:
            if len(x) == len(fut):
                x, y = x[STEPS], y[STEPS]
            elif len(x) != len(STEPS):
                sys.exit(f"{run_dir}: {len(x)} points per mode (16 at 2 Hz or 80 at 10 Hz expected)")
            v = ok[STEPS]
            if v.any():
                best = min(best, np.hypot(x - gx[STEPS], y - gy[STEPS])[v].mean())
        out[i] = best if np.isfinite(best) else np.nan
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a `scenetok dataset motion` folder (its test split)")
    ap.add_argument("--weights", action="append", default=[], help="NAME=PATH (safetensors or checkpoint); repeatable")
    ap.add_argument("--run", action="append", default=[], help="NAME=DIR of a `scenetok eval` run; repeatable")
    ap.add_argument("--turn", type=float, default=TURN_M, help="metres to the side that make a future a turn")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = load_split(a.data, "test")
    keys = []
    for f in sorted(glob.glob(os.path.join(a.data, "test", "*.parquet"))):
        t = pq.read_table(f, columns=["scenario_id", "track_id"])
        keys += list(zip(t.column("scenario_id").to_pylist(), t.column("track_id").to_pylist()))
    errors = {}
    for spec in a.run:
        name, path = spec.split("=", 1)
        errors[name] = run_min_ade(path, data, keys)
    for spec in a.weights:
        name, path = spec.split("=", 1)
        errors[name] = twin_min_ade(load_model(path), data)
    covered = np.all([np.isfinite(e) for e in errors.values()], axis=0) if a.run else np.ones(len(keys), bool)
    side = side_offset(data["future_xy"], data["future_valid"])
    print(f"minADE (m), 6 modes, 8 s; a turn: last valid point > {a.turn:g} m to the side")
    print(f"{'type':<11}{'subset':<10}{'agents':>7}" + "".join(f"{n:>16}" for n in errors))
    for t, tname in TYPES.items():
        base = covered & (data["agent_type"] == t)
        for sname, m in (("all", base), ("turning", base & (side > a.turn)), ("straight", base & (side <= a.turn))):
            print(f"{tname:<11}{sname:<10}{m.sum():>7}" + "".join(f"{e[m].mean():>16.3f}" for e in errors.values()))


if __name__ == "__main__":
    main()
