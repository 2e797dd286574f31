"""Golden scene tokens pinning the training side (tools/train/scene_tokens.py) to the Rust
token source of evaluation (src/pipeline/motion_split.rs, SidecarTokens): every test sample of a
tiny token dataset, its tokens as the trainer makes them.

    target/debug/scenetok dataset motion --out /tmp/tok_golden --preset tiny --frames 100 \\
        --seed 70 --stride 5 --train-worlds 0 --validation-worlds 0 --test-worlds 1 \\
        --tokens --no-lidar --no-image --token-lidar-div 8,16 --token-camera-div 8
    .venv-train/bin/python tools/train/make_token_golden.py --data /tmp/tok_golden \\
        --out tests/golden/scene_tokens.safetensors

Writes `tokens` [rows, width] (every sample's tokens one after the other), `offsets`
[samples + 1] and the samples' (scenario_id, track_id) in the `samples` metadata, and the
same for object tokens only (`object_tokens`, `object_offsets`: `--token-kinds object`); the
Rust test (tests/it/motion_tokens.rs) builds the same dataset and compares.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import scene_tokens as sctok  # noqa: E402
import stio  # noqa: E402
from train_motion import load_split, sample_tokens  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    manifest = json.load(open(os.path.join(a.data, "dataset_manifest.json")))
    d = load_split(a.data, "test", tokens="all", manifest=manifest)
    import pyarrow.parquet as pq
    import glob
    ids = []
    for f in sorted(glob.glob(os.path.join(a.data, "test", "*.parquet"))):
        t = pq.read_table(f, columns=["scenario_id", "track_id"])
        ids += list(zip(t.column("scenario_id").to_pylist(), t.column("track_id").to_pylist()))
    objects = load_split(a.data, "test", tokens="all", manifest=manifest, kinds=["object"])["tokens"]
    out = {}
    for prefix, store in (("", d["tokens"]), ("object_", objects)):
        rows, offsets = [], [0]
        for i in range(len(d["agents"])):
            t = sample_tokens(d, i, store)
            rows.append(t)
            offsets.append(offsets[-1] + len(t))
        tokens = np.concatenate(rows) if rows else np.zeros((0, store.width), np.float32)
        out[prefix + "tokens"] = torch.from_numpy(tokens)
        out[prefix + "offsets"] = torch.tensor(offsets, dtype=torch.int64)
        print(f"{prefix or 'all '}tokens: {len(ids)} samples, {len(tokens)} tokens of {store.width} values")
    stio.save(out, a.out, {"samples": json.dumps(ids), "width": str(d["tokens"].width)})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
