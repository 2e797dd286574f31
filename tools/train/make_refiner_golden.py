"""Golden tensors pinning the Rust SparseRefine refiner + ensembler (src/models/seg/refiner.rs)
to its PyTorch twin (tools/train/refiner_twin.py), eval mode, float64 reference.

Seeded random weights with random batch-norm statistics (folding is exercised), channels
8,16,32 (three levels: two down, two up), hidden 8; the input is bands of pixels around
random curves (what the entropy selector picks: thin, connected sets) with random RGB and
low-resolution logits. Weights go to OUT_weights.safetensors (with `channels`, `hidden`
metadata, loadable by `Refiner::load`); pixels, RGB, l1 and the twin's l2 and ensemble logits
to OUT.

    .venv-train/bin/python tools/train/make_refiner_golden.py --out tests/golden/refiner.safetensors

Byte-reproducible (one thread, seeded generators, stio's fixed metadata order).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refiner_twin as rt  # noqa: E402
import stio  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=120)
    a = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    channels, hidden = [8, 16, 32], 8
    model = rt.Refiner(channels=channels, hidden=hidden)
    for name, t in model.state_dict().items():
        if name.endswith("running_mean") or name.endswith("bn.bias"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        elif name.endswith("running_var") or name.endswith("bn.weight"):
            t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    model.eval()
    # Bands 1-4 px wide around random sine curves.
    cells = set()
    for _ in range(6):
        amp, phase, y0 = (float(torch.rand(1, generator=g)) * 30, float(torch.rand(1, generator=g)) * 6, int(torch.randint(10, a.height - 10, (1,), generator=g)))
        half = int(torch.randint(0, 2, (1,), generator=g)) + 1
        for u in range(a.width):
            c = y0 + amp * torch.sin(torch.tensor(u / 17.0 + phase)).item()
            for v in range(int(c) - half, int(c) + half + 1):
                if 0 <= v < a.height:
                    cells.add((u, v))
    pix = torch.tensor(sorted(cells, key=lambda p: (p[1], p[0])), dtype=torch.long)
    n = len(pix)
    coords = torch.cat([torch.zeros(n, 1, dtype=torch.long), pix, torch.zeros(n, 1, dtype=torch.long)], 1)
    rgb = torch.randint(0, 256, (n, 3), generator=g)
    l1 = torch.randn((n, rt.CLASSES), generator=g) * 3
    with torch.no_grad():
        m = model.double()
        l2, ens = m(coords, rgb.double(), l1.double(), [a.width, a.height, 1])
    weights = a.out.replace(".safetensors", "_weights.safetensors")
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    stio.save(sd, weights, metadata={"channels": ",".join(map(str, channels)), "hidden": str(hidden)})
    io = {"pixels": pix.int().contiguous(), "rgb": rgb.int().contiguous(), "l1": l1.float().contiguous(),
          "l2": l2.float().contiguous(), "ensemble": ens.float().contiguous(),
          "size": torch.tensor([a.width, a.height], dtype=torch.int32)}
    stio.save(io, a.out, metadata={"weights": os.path.basename(weights)})
    print(f"{n} pixels -> {a.out}, {weights}")


if __name__ == "__main__":
    main()
