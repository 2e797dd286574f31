"""Exports the twin's dense Swin backbone (tools/train/sparsevit_twin.py) to ONNX for the peer
row of `scenetok bench sparsevit`: input `image [1, 3, H, W]`, outputs the stage features.

    .venv-train/bin/python tools/train/export_swin_onnx.py --config swin-t --size 672x672 --out runs/swin_t_672.onnx

Random weights (seeded), also written beside the model as OUT.safetensors (metadata
`config`) so that `scenetok bench sparsevit --weights OUT.safetensors --onnx OUT` runs the same
weights on both sides and the checksums agree. With --weights, a trained backbone's
safetensors is exported instead.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparsevit_twin as tw  # noqa: E402
import stio  # noqa: E402


class Dense(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, image):
        return tuple(f for f, _ in self.backbone(image))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="swin-t", choices=["swin-t", "small"])
    ap.add_argument("--weights")
    ap.add_argument("--size", default="672x672")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    if a.weights:
        from safetensors import safe_open
        with safe_open(a.weights, "pt") as f:
            cfg = tw.SwinConfig(**json.loads(f.metadata()["config"]))
            sd = {k: f.get_tensor(k) for k in f.keys()}
        model = tw.Backbone(cfg)
        model.load_state_dict(sd, strict=False)
    else:
        cfg = tw.SwinConfig.swin_t() if a.config == "swin-t" else tw.SwinConfig()
        model = tw.Backbone(cfg)
    model.eval()
    w, h = (int(v) for v in a.size.split("x"))
    x = torch.randn(1, 3, h, w)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    names = [f"stage{s}" for s in range(len(cfg.depths))]
    torch.onnx.export(Dense(model), (x,), a.out, input_names=["image"], output_names=names, opset_version=17,
                      dynamo=False)
    if not a.weights:
        sd = {k: v.float().contiguous() for k, v in model.state_dict().items()}
        stio.save(sd, a.out + ".safetensors", metadata={"config": cfg.to_json()})
    print(f"{a.config} {w}x{h} -> {a.out}")


if __name__ == "__main__":
    main()
