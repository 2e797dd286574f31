"""Golden tensors pinning the Rust SparseViT detector (src/models/det/detector.rs: input resize,
backbone, head) to its PyTorch twin (tools/train/camera_det.py), float64 reference.

Seeded random weights (embed 16, depths 2-2-2-2, heads 1-2-2-4, head width 16; LayerNorm
gains, biases and relative position biases perturbed); an RGB image 301 × 203 (odd: the ½
resize rounds) resized by the model's scale as scenetok does; the head's map [h·w, 7] dense and
at one set of ratios. Weights go to OUT_weights.safetensors with the detector's metadata.

    .venv-train/bin/python tools/train/make_camera_det_golden.py --out tests/golden/camera_det.safetensors
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camera_det as cd  # noqa: E402
import sparsevit_twin as tw  # noqa: E402
import stio  # noqa: E402

RATIOS = [[0.3, 0.3], [0.2, 0.5], [0.4, 0.4], [0.0, 0.0]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(11)
    g = torch.Generator().manual_seed(11)
    cfg = tw.SwinConfig(16, [2, 2, 2, 2], [1, 2, 2, 4], 7, 4, 4)
    model = cd.Detector(cfg, 16)
    tw.perturb(model, g)
    w, h = 301, 203
    rgb = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
    rw, rh = cd.scaled(w, cd.SCALE), cd.scaled(h, cd.SCALE)
    x = F.interpolate(rgb.permute(2, 0, 1)[None].double(), size=(rh, rw), mode="bilinear", align_corners=False)
    x = (x - cd.MEAN) / cd.STD
    io = {"rgb": rgb.contiguous(), "input": x[0].float().contiguous()}
    m = model.double().eval()
    with torch.no_grad():
        for key, ratios in (("dense", None), ("pruned", [[r for r in s] for s in RATIOS])):
            out = m(x, ratios)  # [1, gh, gw, 7]
            io[key] = out[0].reshape(-1, out.shape[-1]).float().contiguous()
            io["grid"] = torch.tensor(out.shape[1:3], dtype=torch.int32)
    weights = a.out.replace(".safetensors", "_weights.safetensors")
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": cfg.to_json(), "head_dim": 16, "scale": cd.SCALE, "stride": cd.STRIDE, "classes": ",".join(cd.CLASSES)}
    stio.save(sd, weights, metadata={k: str(v) for k, v in meta.items()})
    stio.save(io, a.out, metadata={"weights": os.path.basename(weights),
                                   "ratios": ";".join(",".join(str(r) for r in s) for s in RATIOS)})
    print(f"grid {tuple(io['grid'].tolist())} -> {a.out}, {weights}")


if __name__ == "__main__":
    main()
