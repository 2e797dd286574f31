"""Train the SparseViT camera detector (tools/train/camera_det.py) and write its weights.

Two phases in one reproducible run (reference/algorithms.md §C.3): `--steps` of dense training
from scratch (random init from --seed; no ImageNet Swin is available offline), then
`--saa-steps` of sparsity-aware adaptation, where every step draws new per-stage ratios
(depth/2 values from {0, .1, …, .8}, sorted, one per block pair) at a lower learning rate.

Samples: a random image (the images are decoded once at the model scale, camera_det.SCALE of
full size), a random scale jitter in [--min-jitter, --max-jitter], a --crop × --crop window
(grey padding), a random horizontal flip; everything from (seed, step, sample) alone.

    .venv-train/bin/python tools/train/train_camera_det.py --data ~/data/camseg/train \\
        --steps 1500 --saa-steps 500 --seed 0 --ckpt ~/ckpt/camera_det --out data/weights/camera_det_small.safetensors
    # interrupted? the same command with --resume

Continuing a trained detector with more adaptation (the shipped weights' second run):
`--init W --steps 0 --saa-steps N --saa-lr 2e-4 --saa-schedule cosine`.

Fine-tuning the searched ratios (§C.3's last step): `--init W --fixed-ratios R --saa-steps 0`
starts from trained weights and runs every step at ratios R (blocks by commas, stages by slashes).

Output: safetensors with the backbone's and the head's parameters (the twin's names) and
metadata: `config` (the Swin config, JSON), `head_dim`, `scale`, `stride`, `classes`, the
command, steps, seed, data digest and git commit.
"""
import argparse
import glob
import hashlib
import json
import os
import shlex
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camera_det as cd  # noqa: E402
import sparsevit_twin as tw  # noqa: E402
import stio  # noqa: E402
from train_lidar_seg import git_commit  # noqa: E402

RESUME_FREE = {"resume", "export_only", "out", "quiet"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", help="a generated v2 dataset folder (repeatable)")
    ap.add_argument("--out")
    ap.add_argument("--steps", type=int, default=1500, help="dense steps")
    ap.add_argument("--saa-steps", type=int, default=500, help="sparsity-aware adaptation steps after them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt")
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--init", help="start from these weights (safetensors) instead of a random init")
    ap.add_argument("--fixed-ratios", help="every step at these per-block ratios (fine-tuning a searched set)")
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--depths", default="2,2,4,2")
    ap.add_argument("--heads", default="1,2,4,8")
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--min-jitter", type=float, default=0.75)
    ap.add_argument("--max-jitter", type=float, default=1.25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--saa-lr", type=float, default=1e-4)
    ap.add_argument("--saa-schedule", choices=["constant", "cosine"], default="constant",
                    help="the SAA learning rate: constant, or a cosine from --saa-lr down to 2%% of it")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if not a.export_only and not a.data:
        ap.error("training needs --data")
    return a


def rng_for(seed, *keys):
    h = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def sample(images, seed, step, j, a):
    g = rng_for(seed, "sample", step, j)
    _, rgb, boxes, classes = images[int(g.integers(len(images)))]
    s = float(g.uniform(a.min_jitter, a.max_jitter))
    h, w = rgb.shape[:2]
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    rgb = cd.resize(rgb, rw, rh)
    boxes = boxes * np.array([rw / w, rh / h, rw / w, rh / h], np.float32)
    c = a.crop
    y0 = int(g.integers(max(1, rh - c + 1)))
    x0 = int(g.integers(max(1, rw - c + 1)))
    img = np.full((c, c, 3), 127, np.uint8)
    crop = rgb[y0:y0 + c, x0:x0 + c]
    img[: crop.shape[0], : crop.shape[1]] = crop
    b = boxes - np.array([x0, y0, x0, y0], np.float32)
    # Keep boxes whose centre is in the crop, clipped to it.
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    keep = (cx >= 0) & (cx < min(c, crop.shape[1])) & (cy >= 0) & (cy < min(c, crop.shape[0]))
    b, k = np.clip(b[keep], 0, c), classes[keep]
    if g.random() < 0.5:
        img = img[:, ::-1]
        b = np.stack([c - b[:, 2], b[:, 1], c - b[:, 0], b[:, 3]], 1) if len(b) else b
    return img, b, k


def ckpt_path(d, step):
    return os.path.join(d, f"step{step:06d}.pt")


def last_ckpt(d):
    cks = sorted(glob.glob(os.path.join(d, "step*.pt")))
    return cks[-1] if cks else None


def lr_at(step, a):
    if step >= a.steps:
        if a.saa_schedule == "constant":
            return a.saa_lr
        t = (step - a.steps) / max(1, a.saa_steps)
        return a.saa_lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * t)))
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * t)))


def write_weights(model, path, meta):
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    stio.save(sd, path, metadata={k: str(v) for k, v in meta.items()})


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    a.ckpt = os.path.expanduser(a.ckpt) if a.ckpt else None
    cfg_now = {k: v for k, v in vars(a).items() if k not in RESUME_FREE}
    cfg = tw.SwinConfig(a.embed, [int(v) for v in a.depths.split(",")], [int(v) for v in a.heads.split(",")], 7, 4, 4)
    torch.manual_seed(a.seed)
    model = cd.Detector(cfg, a.head_dim)
    if a.init:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(os.path.expanduser(a.init)))

    if a.export_only:
        st = torch.load(last_ckpt(a.ckpt), weights_only=False)
        model.load_state_dict(st["model"])
        write_weights(model, a.out, st["meta"])
        return

    t0 = time.time()
    images = []
    for d in a.data:
        images += cd.load_images(os.path.expanduser(d))
    digest = hashlib.sha256()
    for key, rgb, boxes, classes in images:
        digest.update(json.dumps(key).encode() + rgb.tobytes()[:: 997] + boxes.tobytes() + classes.tobytes())
    digest = digest.hexdigest()
    print(f"{len(images)} images, {sum(len(c) for *_, c in images)} boxes loaded in {time.time() - t0:.1f} s", flush=True)
    argv_rec = [x for x in (sys.argv if argv is None else ["train_camera_det.py", *argv]) if x not in ("--resume", "--quiet")]
    meta = {
        "config": cfg.to_json(), "head_dim": a.head_dim, "scale": cd.SCALE, "stride": cd.STRIDE,
        "classes": ",".join(cd.CLASSES), "seed": a.seed, "dense_steps": a.steps, "saa_steps": a.saa_steps,
        "init": a.init or "random", "fixed_ratios": a.fixed_ratios or "none",
        "batch": a.batch, "crop": a.crop, "train_images": len(images), "train_data_sha256": digest,
        "command": shlex.join([sys.executable, *argv_rec]), "git_commit": git_commit(), "torch": torch.__version__,
    }
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "rel_bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "rel_bias" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    step, total = 0, a.steps + a.saa_steps
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
        st = {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
              "torch_rng": torch.get_rng_state(), "config": cfg_now, "meta": {**meta, "steps": step}}
        torch.save(st, path + ".tmp")
        os.replace(path + ".tmp", path)

    logf = open(log_path, "a") if log_path else None
    losses = []
    model.train()
    t0 = time.time()
    gh = gw = a.crop // cd.STRIDE
    fixed = [[float(v) for v in st.split(",")] for st in a.fixed_ratios.split("/")] if a.fixed_ratios else None
    while step < total:
        ts = time.time()
        samples = [sample(images, a.seed, step, j, a) for j in range(a.batch)]
        x = torch.stack([cd.normalise(s[0]) for s in samples])
        tg = [cd.targets(b, k, gh, gw) for _, b, k in samples]
        ratios = fixed
        if step >= a.steps:
            gen = torch.Generator().manual_seed(int(rng_for(a.seed, "ratios", step).integers(1 << 62)))
            ratios = tw.random_ratios(cfg, gen)
        tm = time.time()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, a)
        out = model(x, ratios)
        loss, focal = cd.loss_fn(out, tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        row = {"step": step, "loss": round(loss.item(), 6), "focal": round(focal, 6), "lr": lr_at(step - 1, a),
               "ratios": ratios, "t_prep": round(tm - ts, 3), "t_step": round(time.time() - tm, 3)}
        if logf:
            logf.write(json.dumps(row) + "\n")
            logf.flush()
        if not a.quiet and (step % 10 == 0 or step == total):
            m = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step}/{total} loss {loss.item():.4f} (mean50 {m:.4f}) focal {focal:.4f} "
                  f"prep {tm - ts:.2f}s step {time.time() - tm:.2f}s [{time.time() - t0:.0f} s]", flush=True)
        if a.ckpt and (step % a.ckpt_every == 0 or step == total):
            save_ckpt()
    meta["steps"] = step
    meta["final_loss_mean50"] = f"{sum(losses[-50:]) / max(1, len(losses[-50:])):.5f}" if losses else "resumed"
    if a.out:
        write_weights(model, a.out, meta)
        print(f"-> {a.out}")


if __name__ == "__main__":
    main()
