"""Train SparseRefine's refiner + gated ensembler (tools/train/refiner_twin.py) for one input scale
of the dense model (data/models/camera_seg_lite0.onnx, run here through ONNX Runtime: the graph
scenetok runs).

1. The dense model runs once on every training image at `--scale`; its stride-4 logits are kept.
2. τ is chosen on `--val` images by scenetok's rule (src/models/seg/selector.rs): the largest τ
   whose selection H > τ holds `--error-recall` of the low-resolution errors. It travels in
   the weights' metadata; `scenetok eval --task camera-seg` uses it.
3. Each step takes `--batch` random `--crop`² windows of training images, selects their
   uncertain full-resolution pixels, and trains the refiner (cross-entropy on its logits l2 and
   on the ensemble's, labelled pixels only; the paper's two losses).

Reproducible: `--steps`, `--seed` (weights, windows), checkpoints every `--ckpt-every` steps in
`--ckpt`, `--resume`. Output: safetensors (f32) with the shape (`channels`, `hidden`), τ, scale
and provenance in the metadata.

    .venv-train/bin/python tools/train/train_refiner.py --data ~/data/camseg/train \\
        --val ~/data/camseg/val --scale 0.5 --steps 800 --seed 0 --ckpt ~/ckpt/refiner_x0.5 \\
        --out data/weights/camera_refiner_x0.5.safetensors
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
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camera_seg as cs  # noqa: E402
import refiner_twin as rt  # noqa: E402
import stio  # noqa: E402
from train_camera_seg import git_commit, rng_for  # noqa: E402

BIN, BINS = 1e-3, 3500


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--val", required=True, help="v2 dataset τ is chosen on (not trained on)")
    ap.add_argument("--model", default="data/models/camera_seg_lite0.onnx")
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--error-recall", type=float, default=0.8)
    ap.add_argument("--out")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ckpt")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--channels", default="16,32,64,128")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--class-weight", type=float, default=0.0,
                    help="cross-entropy class weights (1/frequency)^p over the training labels (capped at 10× the mean); 0: none")
    return ap.parse_args(argv)


def session(path, threads):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def dense_cells(sess, rgb, scale):
    """Stride-4 logit cells of the content [29, ch, cw] and the content size (rh, rw)."""
    x, (rh, rw) = cs.model_input(rgb, scale)
    out = sess.run(None, {"image": x[None].numpy()})[0][0]
    return out[:, : -(-rh // 4), : -(-rw // 4)], (rh, rw)


def taps(n_pix, n_cells):
    pos = ((np.arange(n_pix) + 0.5) / 4 - 0.5).clip(0, n_cells - 1)
    lo = np.minimum(pos.astype(np.int64), n_cells - 1)
    return lo, np.minimum(lo + 1, n_cells - 1), (pos - lo).astype(np.float32)


def input_logits(cells, iu, iv):
    """Bilinear logits [n, 29] at input pixels (iu, iv) (scenetok's `LogitCells::logits_at`)."""
    c = torch.from_numpy(np.asarray(cells, np.float32))
    x0, x1, fx = (torch.from_numpy(t) for t in taps(int(iu.max()) + 1, c.shape[2]))
    y0, y1, fy = (torch.from_numpy(t) for t in taps(int(iv.max()) + 1, c.shape[1]))
    iu, iv = torch.from_numpy(iu), torch.from_numpy(iv)
    a, b = c[:, y0[iv], x0[iu]], c[:, y0[iv], x1[iu]]
    d, e = c[:, y1[iv], x0[iu]], c[:, y1[iv], x1[iu]]
    top = a + fx[iu] * (b - a)
    bot = d + fx[iu] * (e - d)
    return (top + fy[iv] * (bot - top)).T.contiguous()


def window(cells, content, full, u0, v0, size):
    """The full-res pixels of a `size`² window at (u0, v0) and the low-resolution logits of the
    input pixels they fall in (nearest neighbour): (u, v) per pixel, `idx` per pixel into
    `l1` [m, 29] (one row per distinct input pixel) and its entropy `H` [m]."""
    (rh, rw), (h, w) = content, full
    u = np.arange(u0, min(w, u0 + size))
    v = np.arange(v0, min(h, v0 + size))
    iu = np.minimum(((u + 0.5) * rw / w).astype(np.int64), rw - 1)
    iv = np.minimum(((v + 0.5) * rh / h).astype(np.int64), rh - 1)
    ju, ku = np.unique(iu, return_inverse=True)
    jv, kv = np.unique(iv, return_inverse=True)
    gu, gv = np.meshgrid(ju, jv)
    l1 = input_logits(cells, gu.ravel(), gv.ravel())
    idx = (kv[:, None] * len(ju) + ku[None, :]).ravel()
    uu, vv = np.meshgrid(u, v)
    return uu.ravel(), vv.ravel(), idx, l1, rt.entropy(l1)[:, 0].numpy()


def choose_tau(sess, images, scale, recall):
    """scenetok's rule on whole images: the largest bin edge whose H > τ holds `recall` of the
    low-resolution errors on labelled full-resolution pixels. Entropy and class are per input
    pixel; each full-resolution pixel takes its input pixel's (nearest neighbour)."""
    wrong, allh = np.zeros(BINS, np.int64), np.zeros(BINS, np.int64)
    for _, jpeg, png, div in images:
        rgb, sem = cs.decode(jpeg, png, div)
        cells, (rh, rw) = dense_cells(sess, rgb, scale)
        iu, iv = np.meshgrid(np.arange(rw), np.arange(rh))
        l1 = input_logits(cells, iu.ravel(), iv.ravel())
        ent = rt.entropy(l1)[:, 0].numpy().reshape(rh, rw)
        cls = l1.argmax(1).numpy().reshape(rh, rw)
        h, w = sem.shape
        ju = np.minimum(((np.arange(w) + 0.5) * rw / w).astype(np.int64), rw - 1)
        jv = np.minimum(((np.arange(h) + 0.5) * rh / h).astype(np.int64), rh - 1)
        e, c = ent[jv][:, ju], cls[jv][:, ju]
        ok = sem != cs.IGNORE
        b = np.minimum((e / BIN).astype(np.int64), BINS - 1)
        allh += np.bincount(b[ok], minlength=BINS)
        wrong += np.bincount(b[ok & (c != sem)], minlength=BINS)
    tw, ta = wrong.sum(), allh.sum()
    cw = np.cumsum(wrong[::-1])[::-1]
    ca = np.cumsum(allh[::-1])[::-1]
    for b in range(BINS - 1, -1, -1):
        if tw == 0 or cw[b] >= recall * tw:
            tau = -1.0 if b == 0 else b * BIN - BIN * 1e-3
            return float(np.float32(tau)), float(cw[b] / max(1, tw)), float(ca[b] / max(1, ta))
    return -1.0, 1.0, 1.0


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    sess = session(a.model, a.threads)
    a.ckpt = os.path.expanduser(a.ckpt) if a.ckpt else None
    images = []
    for d in a.data:
        images += cs.load_images(os.path.expanduser(d))
    val = cs.load_images(os.path.expanduser(a.val))
    t0 = time.time()
    tau, rec, frac = choose_tau(sess, val, a.scale, a.error_recall)
    print(f"τ = {tau:.4f} on {len(val)} val images: selects {100 * frac:.1f}% of labelled pixels, "
          f"{100 * rec:.1f}% of the errors ({time.time() - t0:.0f} s)", flush=True)
    t0 = time.time()
    cache = []
    for k, (_, jpeg, png, div) in enumerate(images):
        rgb, sem = cs.decode(jpeg, png, div)
        cells, content = dense_cells(sess, rgb, a.scale)
        cache.append((cells.astype(np.float16), content, sem.shape))
    print(f"dense ×{a.scale} on {len(images)} training images in {time.time() - t0:.0f} s", flush=True)

    # Decoded images, kept (JPEG decoding would dominate the steps).
    rgb_cache = {}

    def decoded(k):
        if k not in rgb_cache:
            rgb, sem = cs.decode(*images[k][1:])
            rgb_cache[k] = (rgb, sem.astype(np.uint8))  # classes < 29 and IGNORE = 255 fit
        return rgb_cache[k]

    weight = None
    if a.class_weight > 0:
        counts = np.zeros(cs.CLASSES, np.float64)
        for k in range(len(images)):
            sem = decoded(k)[1]
            counts += np.bincount(sem[sem != cs.IGNORE].ravel(), minlength=cs.CLASSES)[: cs.CLASSES]
        present = counts > 0
        w = np.zeros(cs.CLASSES)
        w[present] = (counts.sum() / counts[present]) ** a.class_weight
        w /= w[present].mean()
        w = np.minimum(w, 10.0)
        w /= w[present].mean()
        weight = torch.tensor(w, dtype=torch.float32)
        print("class weights: " + " ".join(f"{i}:{v:.2f}" for i, v in enumerate(w) if v > 0), flush=True)

    channels = [int(c) for c in a.channels.split(",")]
    torch.manual_seed(a.seed)
    model = rt.Refiner(channels=channels, hidden=a.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps)
    model_sha = hashlib.sha256(open(a.model, "rb").read()).hexdigest()
    argv_rec = [x for x in (sys.argv if argv is None else ["train_refiner.py", *argv]) if x != "--resume"]
    meta = {"model": "sparserefine_refiner", "channels": a.channels, "hidden": a.hidden, "scale": a.scale,
            "tau": f"{tau:.6f}", "error_recall_target": a.error_recall, "val_error_recall": f"{rec:.4f}",
            "val_selected": f"{frac:.4f}", "dense_model_sha256": model_sha, "seed": a.seed, "total_steps": a.steps,
            "batch": a.batch, "crop": a.crop, "class_weight": a.class_weight, "train_images": len(images), "command": shlex.join([sys.executable, *argv_rec]),
            "git_commit": git_commit(), "torch": torch.__version__}
    step = 0
    if a.ckpt:
        os.makedirs(a.ckpt, exist_ok=True)
        cks = sorted(glob.glob(os.path.join(a.ckpt, "step*.pt")))
        if a.resume and cks:
            st = torch.load(cks[-1], weights_only=False)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            step = st["step"]
            print(f"resumed at step {step}", flush=True)
        elif cks:
            sys.exit(f"{a.ckpt} already has checkpoints: use --resume or another folder")
    model.train()
    t0 = time.time()
    losses = []
    while step < a.steps:
        ts = time.time()
        coords, rgbs, l1s, gts = [], [], [], []
        for j in range(a.batch):
            g = rng_for(a.seed, "window", step, j)
            k = int(g.integers(len(images)))
            cells, content, (h, w) = cache[k]
            u0 = int(g.integers(max(1, w - a.crop + 1)))
            v0 = int(g.integers(max(1, h - a.crop + 1)))
            u, v, idx, l1, H = window(cells, content, (h, w), u0, v0, a.crop)
            sel = H[idx] > tau
            if not sel.any():
                continue
            rgb, sem = decoded(k)
            u, v = u[sel], v[sel]
            coords.append(torch.from_numpy(np.stack([np.full_like(u, len(coords)), u - u0, v - v0, np.zeros_like(u)], 1)))
            rgbs.append(torch.from_numpy(rgb[v, u].astype(np.int64)))
            l1s.append(l1[torch.from_numpy(idx[sel])])
            gts.append(torch.from_numpy(sem[v, u].astype(np.int64)))
        if not coords:
            step += 1
            continue
        coords, rgb, l1, gt = torch.cat(coords), torch.cat(rgbs), torch.cat(l1s), torch.cat(gts)
        tm = time.time()
        l2, ens = model(coords, rgb, l1, [a.crop, a.crop, 1])
        loss = (F.cross_entropy(l2, gt, weight=weight, ignore_index=cs.IGNORE)
                + F.cross_entropy(ens, gt, weight=weight, ignore_index=cs.IGNORE))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        ok = gt != cs.IGNORE
        acc = lambda z: (z.argmax(1) == gt)[ok].float().mean().item()  # noqa: E731
        if step % 10 == 0 or step == a.steps:
            print(f"step {step}/{a.steps} loss {np.mean(losses[-20:]):.4f} acc low-res {acc(l1):.3f} refiner {acc(l2):.3f} "
                  f"ensemble {acc(ens):.3f} ({len(gt)} px, prep {tm - ts:.2f}s step {time.time() - tm:.2f}s) "
                  f"[{time.time() - t0:.0f} s]", flush=True)
        if a.ckpt and (step % a.ckpt_every == 0 or step == a.steps):
            p = os.path.join(a.ckpt, f"step{step:06d}.pt")
            torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict()}, p + ".tmp")
            os.replace(p + ".tmp", p)
    meta["steps"] = step
    meta["final_loss_mean20"] = f"{np.mean(losses[-20:]):.5f}" if losses else "resumed"
    if a.out:
        sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        stio.save(sd, a.out, metadata={k: str(v) for k, v in meta.items()})
        print(f"-> {a.out}")


if __name__ == "__main__":
    main()
