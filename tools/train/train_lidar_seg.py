"""Train the LiDAR encoder (MinkUNet twin) for 23-class LiDAR segmentation.

Input: frames written by `scenetok sparse export --data DIR --out PTS` (TOP lidar points,
features x,y,z,intensity, labels). Output: safetensors weights (F16) that
`scenetok eval --task lidar-seg` loads; the config travels in the file's metadata.

    .venv-train/bin/python tools/train/train_lidar_seg.py --data PTS --out data/weights/lidar_seg_minkunet.safetensors
"""
import argparse
import glob
import json
import os
import random
import sys
import time

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
import sparse_twin as twin  # noqa: E402

CLASSES = 23


def load_frame(path, voxel, crop):
    d = load_file(path)
    xyz, feats, labels = d["xyz"], d["feats"], d["labels"].long()
    keep = (xyz[:, 0].abs() < crop) & (xyz[:, 1].abs() < crop)
    xyz, feats, labels = xyz[keep], feats[keep], labels[keep]
    coords, vf, rng, inv = twin.voxelize(xyz, feats, voxel)
    # Voxel label: any labelled point's class (points of a 0.1 m voxel nearly always agree).
    vl = torch.full((len(coords),), -100, dtype=torch.long)
    ok = labels > 0
    vl[inv[ok]] = labels[ok]
    return coords, vf, rng, vl


def export(model, path, meta):
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    save_file(sd, path, metadata={k: str(v) for k, v in meta.items()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--voxel", type=float, default=0.1)
    ap.add_argument("--crop", type=float, default=20.0, help="train on |x|,|y| < crop metres")
    ap.add_argument("--every", type=int, default=3, help="use every N-th frame")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(a.threads)
    files = sorted(glob.glob(os.path.join(a.data, "*.safetensors")))[:: a.every]
    model = twin.MinkUNet(in_channels=4, num_classes=CLASSES, width=a.width)
    t0 = time.time()
    frames = []
    for f in files:
        coords, vf, rng, vl = load_frame(f, a.voxel, a.crop)
        frames.append((coords, vf, rng, vl, model.maps(coords, rng)))
    print(f"{len(frames)} frames prepared in {time.time() - t0:.0f} s", flush=True)
    counts = torch.zeros(CLASSES)
    for fr in frames:
        lab = fr[3][fr[3] >= 0]
        counts += torch.bincount(lab, minlength=CLASSES).float()
    weight = torch.where(counts > 0, (counts.sum() / counts.clamp(min=1)) ** 0.5, torch.zeros(CLASSES))
    weight = weight / weight[counts > 0].mean()
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=-100)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    t0 = time.time()
    step = 0
    log = []
    while time.time() - t0 < a.minutes * 60:
        order = list(range(len(frames)))
        random.shuffle(order)
        for i in order:
            if time.time() - t0 >= a.minutes * 60:
                break
            coords, vf, rng, vl, maps = frames[i]
            model.train()
            logits = model(coords, vf, rng, maps)
            loss = loss_fn(logits, vl)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            acc = (logits.argmax(1) == vl)[vl >= 0].float().mean().item()
            log.append((step, loss.item(), acc))
            if step % 10 == 0:
                print(f"step {step} loss {loss.item():.3f} voxel acc {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
    meta = {
        "model": "minkunet",
        "width": a.width,
        "voxel_size": a.voxel,
        "in_channels": 4,
        "features": "x,y,z,intensity",
        "num_classes": CLASSES,
        "steps": step,
        "train_frames": len(frames),
        "crop_m": a.crop,
        "final_loss": log[-1][1] if log else float("nan"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    export(model, a.out, meta)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
