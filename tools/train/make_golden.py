"""Golden tensors pinning the Rust networks to their PyTorch twins (eval mode, float64
reference).

MinkUNet: a small random voxel input, the shipped weights, the twin's logits.

    .venv-train/bin/python tools/train/make_golden.py --weights data/weights/lidar_seg_minkunet.safetensors --out tests/golden/lidar_seg_minkunet.safetensors

SparseResNet21D (no trained weights ship): seeded random weights with random batch-norm
statistics (so folding is exercised) written to OUT_weights.safetensors, and the input and
every stage's output coordinates and features to OUT.

    .venv-train/bin/python tools/train/make_golden.py --network resnet21d --out tests/golden/resnet21d.safetensors

Byte-reproducible: one torch thread, seeded generators, and the safetensors header written
with a fixed metadata key order (`stio.save`; safetensors' own writer orders metadata keys at
random). Running either command twice gives identical files; the resnet21d defaults
(800 voxels, width 0.125) regenerate the committed files.
"""
import argparse
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
import sparse_twin as twin  # noqa: E402
import stio  # noqa: E402


def blob(g, n, rng):
    """n distinct voxels of two frames, clustered so that neighbourhoods are populated."""
    cells = set()
    centre = torch.tensor([r / 2 for r in rng])
    spread = torch.tensor([r / 5 for r in rng])
    while len(cells) < n:
        b = int(torch.randint(0, 2, (1,), generator=g))
        c = (torch.randn(3, generator=g) * spread + centre).round().long()
        if all(0 <= int(c[i]) < rng[i] for i in range(3)):
            cells.add((b, int(c[0]), int(c[1]), int(c[2])))
    return torch.tensor(sorted(cells), dtype=torch.long)


def resnet21d(a):
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    model = twin.SparseResNet21D(in_channels=4, width=a.width)
    for name, t in model.state_dict().items():
        if name.endswith("running_mean") or name.endswith("bn.bias"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        elif name.endswith("running_var") or name.endswith("bn.weight"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    model.eval()
    rng = [40, 40, 24]
    coords = blob(g, a.voxels, rng)
    feats = torch.cat([coords[:, 1:].float() * 0.1, torch.rand((len(coords), 1), generator=g)], 1)
    with torch.no_grad():
        outs = model.double()(coords, feats.double(), rng)
    weights = a.out.replace(".safetensors", "_weights.safetensors")
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    stio.save(sd, weights, metadata={"width": str(a.width)})
    io = {"coords": coords.int().contiguous(), "feats": feats.contiguous(), "range": torch.tensor(rng, dtype=torch.int32)}
    for i, (c, h) in enumerate(outs):
        io[f"stage{i}.coords"] = c.int().contiguous()
        io[f"stage{i}.feats"] = h.float().contiguous()
    stio.save(io, a.out, metadata={"width": str(a.width), "weights": os.path.basename(weights)})
    print(f"{len(coords)} voxels -> stages " + ", ".join(f"{tuple(h.shape)}" for _, h in outs) + f" -> {a.out}, {weights}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--network", default="minkunet", choices=["minkunet", "resnet21d"])
    ap.add_argument("--weights")
    ap.add_argument("--out", required=True)
    ap.add_argument("--voxels", type=int, help="default: 600 (minkunet), 800 (resnet21d)")
    ap.add_argument("--width", type=float, default=0.125, help="resnet21d only (minkunet: from the weights)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    if a.voxels is None:
        a.voxels = 800 if a.network == "resnet21d" else 600
    if a.network == "resnet21d":
        return resnet21d(a)
    with safe_open(a.weights, "pt") as f:
        meta = f.metadata()
    model = twin.MinkUNet(in_channels=4, num_classes=int(meta["num_classes"]), width=float(meta["width"]))
    sd = {k: v.float() for k, v in load_file(a.weights).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval()
    g = torch.Generator().manual_seed(7)
    rng = [32, 32, 16]
    # Two frames; a blob of voxels (clustered, so neighbourhoods are populated).
    cells = set()
    while len(cells) < a.voxels:
        b = int(torch.randint(0, 2, (1,), generator=g))
        c = (torch.randn(3, generator=g) * torch.tensor([6.0, 6.0, 3.0]) + torch.tensor([16.0, 16.0, 8.0])).round().long()
        if all(0 <= int(c[i]) < rng[i] for i in range(3)):
            cells.add((b, int(c[0]), int(c[1]), int(c[2])))
    coords = torch.tensor(sorted(cells), dtype=torch.long)
    xyz = coords[:, 1:].float() * 0.1 - 1.6
    feats = torch.cat([xyz, torch.rand((len(coords), 1), generator=g)], 1)
    with torch.no_grad():
        # Reference in float64 for a tight oracle.
        logits = model.double()(coords, feats.double(), rng).float()
    stio.save(
        {"coords": coords.int().contiguous(), "feats": feats.contiguous(), "range": torch.tensor(rng, dtype=torch.int32), "logits": logits.contiguous()},
        a.out,
        metadata={"weights": os.path.basename(a.weights)},
    )
    print(f"{len(coords)} voxels, logits {tuple(logits.shape)} -> {a.out}")


if __name__ == "__main__":
    main()
