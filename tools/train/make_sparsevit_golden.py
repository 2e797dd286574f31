"""Golden tensors pinning the Rust SparseViT backbone (src/models/det/backbone.rs) to its
PyTorch twin (tools/train/sparsevit_twin.py), float64 reference.

Seeded random weights (LayerNorm gains and biases, relative position biases perturbed so
every parameter matters), config embed 16, depths 2-2-4-2, heads 1-2-2-4, window 7; a
230 × 170 image (not a multiple of the patch or of any stage's window: every stage pads,
the shifted blocks mask); the four stage outputs dense and at two sets of per-block ratios
(one with ratios that differ inside a block pair and a stage whose later blocks truncate
the lists of its first pruned block, one that keeps zero windows in a block). Weights go to
OUT_weights.safetensors (metadata `config`, loadable by `Backbone::load`).

    .venv-train/bin/python tools/train/make_sparsevit_golden.py --out tests/golden/sparsevit.safetensors

Byte-reproducible (one thread, seeded generators, stio's fixed metadata order).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparsevit_twin as tw  # noqa: E402
import stio  # noqa: E402

RATIOS = {
    "dense": None,
    "a": [[0.3, 0.6], [0.2, 0.2], [0.1, 0.2, 0.4, 0.5], [0.5, 0.5]],
    "b": [[0.0, 0.5], [0.8, 0.8], [0.0, 0.0, 0.6, 0.9], [0.0, 0.0]],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=int, default=230)
    ap.add_argument("--height", type=int, default=170)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(7)
    cfg = tw.SwinConfig(16, [2, 2, 4, 2], [1, 2, 2, 4], 7, 4, 4)
    model = tw.Backbone(cfg)
    tw.perturb(model, g)
    image = torch.randn((1, 3, a.height, a.width), generator=g)
    io = {"image": image[0].float().contiguous()}
    m = model.double().eval()
    with torch.no_grad():
        for key, ratios in RATIOS.items():
            feats, windows = m(image.double(), ratios, with_windows=True)
            for s, (f, hw) in enumerate(feats):
                io[f"{key}.{s}"] = f[0].float().contiguous()
                for b, kept in enumerate(windows[s]):
                    if kept is not None:
                        io[f"{key}.kept.{s}.{b}"] = kept[0].int().contiguous()
    weights = a.out.replace(".safetensors", "_weights.safetensors")
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    stio.save(sd, weights, metadata={"config": cfg.to_json()})
    meta = {"weights": os.path.basename(weights)}
    meta.update({f"ratios.{k}": ";".join(",".join(str(x) for x in s) for s in r) for k, r in RATIOS.items() if r})
    stio.save(io, a.out, metadata=meta)
    print(f"{len(io)} tensors -> {a.out}, {weights}")


if __name__ == "__main__":
    main()
