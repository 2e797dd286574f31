"""Golden tensors pinning the Rust motion transformer (src/models/motion/transformer/) to its
PyTorch twin (tools/train/motion_twin.py), computed in float64.

A small config with seeded random weights and a scene-token input (so every path runs),
inputs from a `scenetok dataset motion` shard (the first --samples rows of the first test
shard, the last one with half of its points and history steps masked out), random scene
tokens with some masked; writes OUT_weights.safetensors (f32, `run` metadata with the config)
and OUT (inputs and the twin's mu, sigma, rho, logits).

    .venv-train/bin/python tools/train/make_motion_golden.py --data ~/data/motion --out tests/golden/motion_transformer.safetensors

With --shipped WEIGHTS: the shipped model instead (its config from the file's `run` metadata,
no scene tokens), on the same kind of inputs; writes OUT only (inputs and the twin's outputs),
pinning the committed weights and the loader at the shipped size:

    .venv-train/bin/python tools/train/make_motion_golden.py --data ~/data/motion \
        --shipped data/weights/motion_transformer.safetensors --out tests/golden/motion_transformer_shipped.safetensors
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import motion_twin as twin  # noqa: E402
import stio  # noqa: E402
from train_motion import COLUMNS, INPUTS, load_split  # noqa: E402

CONFIG = dict(d=32, heads=4, hidden=16, latents=8, fusion_layers=1, decoder_layers=1, modes=6, scene_dim=8)
SCENE_TOKENS = 5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--shipped", help="trained weights (.safetensors with `run` metadata) to pin instead")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if a.shipped:
        model = twin.load(a.shipped)
        config = model.cfg
    else:
        config = CONFIG
        model = twin.build(CONFIG)
        # Non-trivial LayerNorm parameters (they start at 1 and 0).
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.add_(torch.randn_like(p) * 0.1)
    data = load_split(a.data, "test", a.samples)
    x = {c: torch.from_numpy(np.ascontiguousarray(data[c][: a.samples])) for c in COLUMNS}
    x["agent_valid"][-1, ::2, ::2] = 0
    x["point_valid"][-1, :, 1::2] = 0
    x["agent_valid"][-1, 0, -1] = 1
    g = torch.Generator().manual_seed(1)
    with_scene = config["scene_dim"] > 0
    scene = torch.randn(a.samples, SCENE_TOKENS, config["scene_dim"], generator=g)
    scene_valid = torch.ones(a.samples, SCENE_TOKENS, dtype=torch.uint8)
    scene_valid[0, 3:] = 0
    m64 = twin.build(config).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()
    with torch.no_grad():
        args = [x["agents"].double(), x["agent_valid"].bool(), x["agent_types"], x["polylines"].double(),
                x["point_valid"].bool(), x["polyline_type"], x["signal"]]
        if with_scene:
            mu, sigma, rho, logits = m64(*args, scene.double(), scene_valid.bool())
        else:
            mu, sigma, rho, logits = m64(*args)
    if not a.shipped:
        weights = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        stio.save(weights, a.out.replace(".safetensors", "_weights.safetensors"),
                  {"run": json.dumps({"config": config}), "command": " ".join(sys.argv)})
    golden = {c: x[c].contiguous() for c in INPUTS}
    if with_scene:
        golden.update(scene_tokens=scene.contiguous(), scene_valid=scene_valid)
    golden.update(mu=mu.contiguous(), sigma=sigma.contiguous(), rho=rho.contiguous(), logits=logits.contiguous())
    stio.save(golden, a.out, {"command": " ".join(sys.argv)})
    print(f"wrote {a.out}: logits {logits[0].tolist()}")


if __name__ == "__main__":
    main()
