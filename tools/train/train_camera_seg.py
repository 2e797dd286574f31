"""Train the dense camera-segmentation model (tools/train/camera_seg.py) and export it to ONNX.

Input: generated v2 datasets (`scenetok generate`), their camera images and panoptic labels
reduced to the 29 semantic classes. Output: an ONNX graph (input `image` [N, 3, H, W], output
`logits` [N, 29, H/4, W/4]) that `scenetok eval --task camera-seg` runs through ONNX Runtime at
full, ½ and ¼ resolution; the provenance (command, steps, seed, data, git commit) is in the
graph's metadata.

Reproducible: `--steps` optimizer steps; initial decoder weights from `--seed` (the backbone
starts from the ImageNet weights); the images, scales, crops and flips of step s come from
(seed, s) alone. With `--ckpt DIR` a checkpoint every `--ckpt-every` steps; `--resume` goes on
from the last one (same --threads, same data; it refuses a changed configuration).

Training samples: a random labelled image, a random scale in [--min-scale, 1] of full
resolution (log-uniform: the model must work on the ½ and ¼ inputs SparseRefine feeds it and
at full resolution, the baseline), a random --crop × --crop window (padding is ignored), a
random horizontal flip.

    .venv-train/bin/python tools/train/train_camera_seg.py --data ~/data/camseg/train \\
        --steps 1500 --seed 0 --ckpt ~/ckpt/camera_seg --out data/models/camera_seg_lite0.onnx
    # interrupted? the same command with --resume
"""
import argparse
import glob
import hashlib
import json
import math
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camera_seg as cs  # noqa: E402
from train_lidar_seg import git_commit  # noqa: E402,F401  (one definition; train_refiner imports it from here)

RESUME_FREE = {"resume", "export_only", "out", "quiet", "workers", "val", "val_images"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", help="a generated v2 dataset folder (repeatable)")
    ap.add_argument("--data-cmd", action="append", default=[], help="how the data was made (recorded)")
    ap.add_argument("--val", help="a v2 dataset for the mIoU printed at the end (not trained on)")
    ap.add_argument("--val-images", type=int, default=10)
    ap.add_argument("--out", help="ONNX graph to write at the end")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="write --out from the last checkpoint and stop")
    ap.add_argument("--width", type=int, default=48, help="decoder channels")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--min-scale", type=float, default=0.25)
    ap.add_argument("--lr", type=float, default=2e-3, help="decoder LR (the backbone gets --backbone-lr-mult of it)")
    ap.add_argument("--backbone-lr-mult", type=float, default=0.25)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--min-lr", type=float, default=0.02)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if not a.export_only and (not a.data or a.steps is None):
        ap.error("training needs --data and --steps")
    return a


def rng_for(seed, *keys):
    h = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def sample(images, seed, step, j, a):
    """Image, label crop of sample j of step `step`."""
    from PIL import Image

    g = rng_for(seed, "sample", step, j)
    key, jpeg, png, div = images[int(g.integers(len(images)))]
    rgb, sem = cs.decode(jpeg, png, div)
    s = float(np.exp(g.uniform(np.log(a.min_scale), 0.0)))
    h, w = sem.shape
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    rgb = np.asarray(Image.fromarray(rgb).resize((rw, rh), Image.BILINEAR))
    sem = np.asarray(Image.fromarray(sem.astype(np.uint8)).resize((rw, rh), Image.NEAREST)).astype(np.int64)
    c = a.crop
    img = np.zeros((c, c, 3), np.uint8) + 127
    lab = np.full((c, c), cs.IGNORE, np.int64)
    y0 = int(g.integers(max(1, rh - c + 1)))
    x0 = int(g.integers(max(1, rw - c + 1)))
    crop_rgb, crop_sem = rgb[y0:y0 + c, x0:x0 + c], sem[y0:y0 + c, x0:x0 + c]
    img[: crop_rgb.shape[0], : crop_rgb.shape[1]] = crop_rgb
    lab[: crop_sem.shape[0], : crop_sem.shape[1]] = crop_sem
    if g.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return img, lab


class Steps(torch.utils.data.Dataset):
    def __init__(self, images, a):
        self.images, self.a = images, a

    def __len__(self):
        return self.a.steps

    def __getitem__(self, step):
        pairs = [sample(self.images, self.a.seed, step, j, self.a) for j in range(self.a.batch)]
        x = cs.normalise(np.stack([p[0] for p in pairs]))
        y = torch.from_numpy(np.stack([np.ascontiguousarray(p[1]) for p in pairs]))
        return x, y


def lr_factor(step, a):
    if step < a.warmup:
        return (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def data_digest(images):
    h = hashlib.sha256()
    for key, jpeg, png, div in images:
        h.update(json.dumps(key).encode())
        h.update(hashlib.sha256(jpeg).digest())
        h.update(hashlib.sha256(png).digest())
    return h.hexdigest()


def miou(model, images, scales):
    """mIoU over `images` for each input scale (bilinear upsampling to full resolution)."""
    out = {}
    for s in scales:
        conf = np.zeros((cs.CLASSES, cs.CLASSES), np.int64)
        for _, jpeg, png, div in images:
            rgb, sem = cs.decode(jpeg, png, div)
            pred = cs.predict_full(model, rgb, s).argmax(0).numpy()
            ok = sem != cs.IGNORE
            conf += np.bincount(sem[ok] * cs.CLASSES + pred[ok], minlength=cs.CLASSES ** 2).reshape(cs.CLASSES, -1)
        tp = np.diag(conf)
        union = conf.sum(0) + conf.sum(1) - tp
        present = union > 0
        out[s] = float((tp[present] / union[present]).mean())
    return out


def export_onnx(model, path, meta):
    import onnx
    import onnxruntime as ort

    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    x = torch.randn(2, 3, 224, 320)
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, input_names=["image"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "logits_h", 3: "logits_w"}},
                      dynamo=False)
    g = onnx.load(tmp)
    for k, v in meta.items():
        g.metadata_props.add(key=k, value=str(v))
    onnx.save(g, tmp)
    # The export checks itself: ONNX Runtime equals PyTorch at two sizes.
    sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 320, 480), (2, 3, 224, 320)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"image": x.numpy()})[0]
        err = np.abs(got - want).max() / max(1e-6, np.abs(want).max())
        if not err < 1e-4:
            sys.exit(f"ONNX export check failed at {shape}: relative error {err:.2e}")
    os.replace(tmp, path)
    print(f"-> {path} ({os.path.getsize(path) / 1e6:.1f} MB; ONNX Runtime = PyTorch within 1e-4)")


def ckpt_path(d, step):
    return os.path.join(d, f"step{step:06d}.pt")


def last_ckpt(d):
    cks = sorted(glob.glob(os.path.join(d, "step*.pt")))
    return cks[-1] if cks else None


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    a.ckpt = os.path.expanduser(a.ckpt) if a.ckpt else None
    cfg_now = {k: v for k, v in vars(a).items() if k not in RESUME_FREE}
    model = cs.DenseSeg(width=a.width, pretrained=True)

    if a.export_only:
        st = torch.load(last_ckpt(a.ckpt), weights_only=False)
        model.load_state_dict(st["model"])
        export_onnx(model, a.out, st["meta"])
        return

    t0 = time.time()
    images = []
    for d in a.data:
        images += cs.load_images(os.path.expanduser(d))
    digest = data_digest(images)
    print(f"{len(images)} labelled images loaded in {time.time() - t0:.1f} s", flush=True)
    argv_rec = [x for x in (sys.argv if argv is None else ["train_camera_seg.py", *argv]) if x not in ("--resume", "--quiet")]
    meta = {
        "model": "efficientnet_lite0_fpn", "decoder_width": a.width, "classes": cs.CLASSES, "output_stride": 4,
        "seed": a.seed, "total_steps": a.steps, "batch": a.batch, "crop": a.crop, "min_scale": a.min_scale,
        "train_images": len(images), "train_data_sha256": digest, "data_commands": " ; ".join(a.data_cmd) or "unrecorded",
        "command": shlex.join([sys.executable, *argv_rec]), "git_commit": git_commit(), "torch": torch.__version__,
    }

    torch.manual_seed(a.seed)
    # Fresh decoder weights from the seed (the backbone keeps ImageNet's).
    model = cs.DenseSeg(width=a.width, pretrained=True)
    backbone = [p for n, p in model.named_parameters() if n.startswith(("stem", "blocks"))]
    decoder = [p for n, p in model.named_parameters() if not n.startswith(("stem", "blocks"))]
    opt = torch.optim.AdamW([{"params": backbone, "lr": a.lr * a.backbone_lr_mult}, {"params": decoder, "lr": a.lr}],
                            weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, a))
    step = 0
    log_path = os.path.join(a.ckpt, "loss.jsonl") if a.ckpt else None
    if a.ckpt:
        os.makedirs(a.ckpt, exist_ok=True)
        if a.resume:
            path = last_ckpt(a.ckpt)
            if path is None:
                sys.exit(f"--resume: no checkpoint in {a.ckpt}")
            st = torch.load(path, weights_only=False)
            old = {k: v for k, v in st["config"].items() if k in cfg_now}
            if old != cfg_now or st["meta"]["train_data_sha256"] != digest:
                sys.exit("--resume: the checkpoint's run differs (configuration or data)")
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            torch.set_rng_state(st["torch_rng"])
            step, meta = st["step"], st["meta"]
            rows = [l for l in open(log_path) if json.loads(l)["step"] <= step]
            open(log_path, "w").writelines(rows)
            print(f"resumed at step {step} from {path}", flush=True)
        elif last_ckpt(a.ckpt):
            sys.exit(f"{a.ckpt} already has checkpoints: use --resume or another folder")
        else:
            json.dump(cfg_now, open(os.path.join(a.ckpt, "config.json"), "w"), indent=1)
            open(log_path, "w").close()

    def save_ckpt():
        path = ckpt_path(a.ckpt, step)
        st = {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "torch_rng": torch.get_rng_state(), "config": cfg_now, "meta": {**meta, "steps": step}}
        torch.save(st, path + ".tmp")
        os.replace(path + ".tmp", path)

    loader = torch.utils.data.DataLoader(Steps(images, a), batch_size=None, sampler=range(step, a.steps),
                                         num_workers=a.workers, prefetch_factor=2 if a.workers else None)
    batches = iter(loader)
    logf = open(log_path, "a") if log_path else None
    losses = []
    model.train()
    t0 = time.time()
    while step < a.steps:
        ts = time.time()
        x, y = next(batches)
        tm = time.time()
        logits = model(x)
        up = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up, y, ignore_index=cs.IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr = opt.param_groups[1]["lr"]
        sched.step()
        step += 1
        with torch.no_grad():
            ok = y != cs.IGNORE
            acc = (up.argmax(1) == y)[ok].float().mean().item()
        losses.append(loss.item())
        row = {"step": step, "loss": round(loss.item(), 6), "acc": round(acc, 5), "lr": lr,
               "t_prep": round(tm - ts, 3), "t_step": round(time.time() - tm, 3)}
        if logf:
            logf.write(json.dumps(row) + "\n")
            logf.flush()
        if not a.quiet and (step % 10 == 0 or step == a.steps):
            m = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step}/{a.steps} loss {loss.item():.4f} (mean50 {m:.4f}) acc {acc:.3f} lr {lr:.2e} "
                  f"prep {tm - ts:.2f}s step {time.time() - tm:.2f}s [{time.time() - t0:.0f} s]", flush=True)
        if a.ckpt and (step % a.ckpt_every == 0 or step == a.steps):
            save_ckpt()
    meta["steps"] = step
    meta["final_loss_mean50"] = f"{sum(losses[-50:]) / max(1, len(losses[-50:])):.5f}" if losses else "resumed"
    model.eval()
    if a.val:
        val = cs.load_images(os.path.expanduser(a.val))
        val = val[:: max(1, len(val) // a.val_images)][: a.val_images]
        res = miou(model, val, [1.0, 0.5, 0.25])
        print("val mIoU (python, %d images): " % len(val) + ", ".join(f"scale {s}: {v:.4f}" for s, v in res.items()))
        meta["val_miou_python"] = json.dumps({str(s): round(v, 4) for s, v in res.items()})
    if a.out:
        export_onnx(model, a.out, meta)


if __name__ == "__main__":
    main()
