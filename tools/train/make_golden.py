"""Golden tensors pinning the Rust MinkUNet to its PyTorch twin: a small random voxel input,
the shipped weights, the twin's logits (eval mode).

    .venv-train/bin/python tools/train/make_golden.py --weights data/weights/lidar_seg_minkunet.safetensors --out tests/golden/lidar_seg_minkunet.safetensors
"""
import argparse
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
import sparse_twin as twin  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--voxels", type=int, default=600)
    a = ap.parse_args()
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
        logits = model(coords, feats, rng).double()
        # Reference in float64 for a tight oracle.
        model64 = model.double()
        logits = model64(coords, feats.double(), rng).float()
    save_file(
        {"coords": coords.int().contiguous(), "feats": feats.contiguous(), "range": torch.tensor(rng, dtype=torch.int32), "logits": logits.contiguous()},
        a.out,
        metadata={"weights": os.path.basename(a.weights)},
    )
    print(f"{len(coords)} voxels, logits {tuple(logits.shape)} -> {a.out}")


if __name__ == "__main__":
    main()
