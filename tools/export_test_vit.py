#!/usr/bin/env python3
"""Write the tiny ViT the tests run through scenetok's image encoder (no real weights).

    .venv-train/bin/python tools/export_test_vit.py --out tests/golden/tiny_vit.onnx

What it is for: the default backbone is a CNN read as NCHW RGB feature maps; a user's DINOv2 or
CLIP ViT is read through the other half of the model config (data/models/README.md): patch
tokens after a prefix (CLS and registers), a fixed input size, and here also an NHWC input in
BGR order. This model exercises all of those against Python onnxruntime in the tests, small
enough (≈ 120 KB) to commit. Its weights are random (seeded): equality with onnxruntime, the
token → cell layout and per-point sampling do not need a trained model.

Architecture (DINOv2-like, pre-norm): input `pixels` float32 [N, 48, 64, 3] (NHWC, BGR), a
stride-8 patch embedding (6×8 = 48 patches, 32 channels), a CLS token with a learned position
embedding added to it and the patches, then 4 register tokens (no position), 2 blocks of
2-head self-attention + MLP (×2), a final LayerNorm. Outputs:
    tokens [N, 1 + 4 + 48, 32]   CLS, registers, then patches row-major over the 6×8 grid
    cls    [N, 32]               the CLS token

The script checks that onnxruntime equals PyTorch on random batches of 1 and 3 images.
"""

import argparse
import hashlib
import sys

import numpy as np
import torch
from torch import nn

H, W, PATCH, DIM, HEADS, DEPTH, REGISTERS = 48, 64, 8, 32, 2, 2, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM)
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)
        self.norm2 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))

    def forward(self, x):
        n, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.softmax(q @ k.transpose(-2, -1) * (DIM // HEADS) ** -0.5, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, DIM))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        grid = (H // PATCH) * (W // PATCH)
        self.embed = nn.Conv2d(3, DIM, PATCH, PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.registers = nn.Parameter(torch.randn(1, REGISTERS, DIM) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 1 + grid, DIM) * 0.5)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(DIM)

    def forward(self, pixels):
        n = pixels.shape[0]
        patches = self.embed(pixels.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(n, -1, -1), patches], dim=1) + self.pos
        x = torch.cat([x[:, :1], self.registers.expand(n, -1, -1), x[:, 1:]], dim=1)
        for b in self.blocks:
            x = b(x)
        x = self.norm(x)
        return x, x[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    torch.manual_seed(5)
    model = TinyViT().eval()
    x = torch.zeros(1, H, W, 3)
    torch.onnx.export(
        model,
        (x,),
        args.out,
        input_names=["pixels"],
        output_names=["tokens", "cls"],
        dynamic_axes={"pixels": {0: "n"}, "tokens": {0: "n"}, "cls": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )

    import onnxruntime as ort

    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (1, 3):
        batch = rng.normal(size=(n, H, W, 3)).astype(np.float32)
        with torch.no_grad():
            want = [t.numpy() for t in model(torch.from_numpy(batch))]
        got = sess.run(["tokens", "cls"], {"pixels": batch})
        for name, w, g in zip(["tokens", "cls"], want, got):
            d = float(np.abs(w - g).max())
            if w.shape != g.shape or d > 1e-4:
                sys.exit(f"onnxruntime differs from PyTorch: {name} {g.shape} vs {w.shape}, max |d| {d}")
    # Patches must differ from one another, or a wrong token order would go unseen.
    spread = float(got[0][:, 1 + REGISTERS :].std(axis=1).mean())
    if spread < 0.1:
        sys.exit(f"patch tokens barely vary ({spread}): a token-order test would be blind")
    digest = hashlib.sha256(open(args.out, "rb").read()).hexdigest()
    print(f"wrote {args.out} (sha256 {digest}); onnxruntime = PyTorch; patch token spread {spread:.3f}")


if __name__ == "__main__":
    main()
