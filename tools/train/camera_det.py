"""The SparseViT camera detector (src/models/det/): the Swin backbone of sparsevit_twin.py and a
light CenterNet-style head, its data, targets, loss and decoding.

Head (on the stage outputs at strides 8, 16, 32): a Linear lateral per stage to D channels,
nearest upsampling to stride 8 (cell (y, x) reads cell (y >> k, x >> k) of the coarser map)
and a sum; two 3×3 convs with ReLU; a Linear to 3 + 4 outputs per cell: the class heat-map
logits (vehicle, pedestrian, cyclist), log(w / 8), log(h / 8) and the centre's offset inside the
cell (in cells). A box is decoded at every cell that is the maximum of its 3×3 neighbourhood
in its class' heat map (CenterNet's peak extraction), then class-wise NMS.

Input: the camera image resized by SCALE (bilinear with half-pixel centres, no antialiasing:
scenetok's resize, so the 2×2 box average at ½), (x − 127) / 128, RGB planes.
Data: a v2 dataset's `camera_image` and `camera_box` components joined on their keys;
types 1, 2, 4 (vehicle, pedestrian, cyclist) are detected, signs are not.
"""
import glob
import io
import math
import os

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

import sparsevit_twin as tw

CLASSES = ["vehicle", "pedestrian", "cyclist"]
TYPE_TO_CLASS = {1: 0, 2: 1, 4: 2}
STRIDE = 8
SCALE = 0.5
MEAN, STD = 127.0, 128.0


class Head(nn.Module):
    def __init__(self, dims, d=64, classes=3):
        super().__init__()
        self.lat = nn.ModuleList([nn.Linear(c, d) for c in dims])
        self.conv1 = nn.Conv2d(d, d, 3, padding=1)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1)
        self.out = nn.Linear(d, classes + 4)
        with torch.no_grad():
            self.out.bias[:classes].fill_(-2.19)  # heat-map prior 0.1

    def forward(self, feats):
        """feats: [(x [B, h·w, C], (h, w))] at strides 8, 16, 32 → [B, h, w, 7] at stride 8."""
        (f, (h, w)) = feats[0]
        b = f.shape[0]
        p = self.lat[0](f).reshape(b, h, w, -1)
        for k, (g, (hk, wk)) in enumerate(feats[1:], 1):
            q = self.lat[k](g).reshape(b, hk, wk, -1)
            iy = torch.arange(h, device=f.device) >> k
            ix = torch.arange(w, device=f.device) >> k
            p = p + q[:, iy][:, :, ix]
        x = p.permute(0, 3, 1, 2)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.out(x.permute(0, 2, 3, 1))


class Detector(tw.Backbone):
    def __init__(self, cfg, d=64):
        super().__init__(cfg)
        self.head = Head([cfg.dim(s) for s in range(1, len(cfg.depths))], d, len(CLASSES))

    def forward(self, img, ratios=None):
        feats = super().forward(img, ratios)
        return self.head(feats[1:])


# ---------------------------------------------------------------- data


def table(path):
    files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    if not files:
        raise FileNotFoundError(f"no parquet files under {path}")
    return [pq.read_table(f) for f in files]


def scaled(n, scale):
    """A side resized by `scale`, rounded half up as scenetok rounds (Python's round() is half-even)."""
    return max(1, int(math.floor(n * scale + 0.5)))


def resize(rgb, rw, rh):
    """uint8 [H, W, 3] → uint8 [rh, rw, 3] as scenetok resizes (F.interpolate bilinear,
    align_corners=False, no antialiasing)."""
    if rgb.shape[:2] == (rh, rw):
        return rgb
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def load_images(root, scale=SCALE):
    """[(key, uint8 [H, W, 3] at `scale`, boxes float [n, 4] x0 y0 x1 y1 at `scale`, classes int [n])]."""
    from PIL import Image

    boxes = {}
    for t in table(os.path.join(root, "camera_box")):
        c = t.to_pydict()
        for seg, ts, cam, x, y, sx, sy, ty in zip(
            c["key.segment_context_name"], c["key.frame_timestamp_micros"], c["key.camera_name"],
            c["[CameraBoxComponent].box.center.x"], c["[CameraBoxComponent].box.center.y"],
            c["[CameraBoxComponent].box.size.x"], c["[CameraBoxComponent].box.size.y"], c["[CameraBoxComponent].type"],
        ):
            if ty in TYPE_TO_CLASS:
                boxes.setdefault((seg, ts, cam), []).append((x - sx / 2, y - sy / 2, x + sx / 2, y + sy / 2, TYPE_TO_CLASS[ty]))
    out = []
    for t in table(os.path.join(root, "camera_image")):
        t = t.select(["key.segment_context_name", "key.frame_timestamp_micros", "key.camera_name", "[CameraImageComponent].image"])
        for seg, ts, cam, jpeg in zip(*t.to_pydict().values()):
            im = Image.open(io.BytesIO(jpeg)).convert("RGB")
            w, h = im.size
            rw, rh = scaled(w, scale), scaled(h, scale)
            rgb = resize(np.asarray(im), rw, rh)
            b = np.array([r[:4] for r in boxes.get((seg, ts, cam), [])], np.float32).reshape(-1, 4) * scale
            c = np.array([r[4] for r in boxes.get((seg, ts, cam), [])], np.int64)
            out.append(((seg, ts, cam), rgb, b, c))
    out.sort(key=lambda r: r[0])
    return out


def normalise(rgb):
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float()
    return ((x - MEAN) / STD).movedim(-1, -3)


# ---------------------------------------------------------------- targets and loss


def gaussian_radius(h, w, min_overlap=0.7):
    """CenterNet's radius (in cells) at which a box shifted by it keeps IoU ≥ min_overlap."""
    a1, b1, c1 = 1, h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def targets(boxes, classes, gh, gw):
    """Heat map [gh, gw, 3], and per object (cell index, log size, offset)."""
    heat = np.zeros((gh, gw, len(CLASSES)), np.float32)
    cells, sizes, offs = [], [], []
    for (x0, y0, x1, y1), c in zip(boxes, classes):
        w, h = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < gw and 0 <= iy < gh):
            continue
        r = max(0, int(gaussian_radius(h, w)))
        sigma = (2 * r + 1) / 6
        ys, xs = np.arange(gh)[:, None], np.arange(gw)[None, :]
        g = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
        g[np.abs(ys - iy).repeat(gw, 1) > r] = 0
        g[np.abs(xs - ix).repeat(gh, 0) > r] = 0
        heat[:, :, c] = np.maximum(heat[:, :, c], g)
        cells.append(iy * gw + ix)
        sizes.append((math.log(w), math.log(h)))
        offs.append((cx - ix, cy - iy))
    return heat, cells, sizes, offs


def loss_fn(out, batch_targets):
    """CenterNet: penalty-reduced focal loss on the heat map, L1 on log sizes and offsets at the centres."""
    b, gh, gw, _ = out.shape
    k = len(CLASSES)
    heat = torch.stack([torch.from_numpy(t[0]) for t in batch_targets])
    logit = out[..., :k]
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    neg = 1 - pos
    pos_loss = (torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * neg).sum()
    n = pos.sum().clamp(min=1)
    focal = -(pos_loss + neg_loss) / n
    reg = out[..., k:].reshape(b, gh * gw, 4)
    size_l, off_l, m = 0.0, 0.0, 0
    for i, (_, cells, sizes, offs) in enumerate(batch_targets):
        if cells:
            r = reg[i, torch.tensor(cells)]
            size_l = size_l + F.l1_loss(r[:, :2], torch.tensor(sizes, dtype=torch.float32), reduction="sum")
            off_l = off_l + F.l1_loss(r[:, 2:], torch.tensor(offs, dtype=torch.float32), reduction="sum")
            m += len(cells)
    m = max(m, 1)
    return focal + 0.5 * size_l / m + off_l / m, focal.item()
