"""Train the LiDAR encoder (MinkUNet twin) for 23-class LiDAR segmentation.

Input: frames written by `scenetok sparse export --data DIR --out PTS` (TOP lidar points,
features x,y,z,intensity, labels). Output: safetensors weights (F16 by default) that
`scenetok eval --task lidar-seg` loads; the config and the provenance (command line, steps,
seed, data, final loss, git commit) travel in the file's metadata.

Reproducible: the run stops after `--steps` optimizer steps; the initial weights come from
`--seed`, and the data order and augmentation of step s from (seed, s) alone (no wall clock,
no global RNG). With `--ckpt DIR` the run writes DIR/config.json, DIR/loss.jsonl (one line
per step) and a checkpoint every `--ckpt-every` steps (model, optimizer, LR schedule, RNG
states, step; plus the weights exported at that step for evaluation); `--resume` continues
from DIR's last checkpoint and ends with the same weights, bit for bit, as an uninterrupted
run (same --threads: it refuses a changed configuration).

    .venv-train/bin/python tools/train/train_lidar_seg.py --data PTS --steps 3000 --seed 0 \\
        --ckpt ~/ckpt/lidar_seg/run --out data/weights/lidar_seg_minkunet.safetensors
    # interrupted? the same command with --resume
    # weights of a checkpoint:  --export-only --ckpt DIR [--at-step N] --out W.safetensors
"""
import argparse
import glob
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time

import torch
from safetensors.torch import load as st_load

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparse_twin as twin  # noqa: E402
import stio  # noqa: E402

CLASSES = 23
IGNORE = -100
# Arguments that may differ between a run and its resumption.
# (--threads is not among them: reductions, hence the weights' last bits, depend on it.)
RESUME_FREE = {"resume", "export_only", "at_step", "out", "dtype", "quiet", "workers"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", help="folder of `sparse export` frames (repeatable)")
    ap.add_argument("--data-cmd", action="append", default=[],
                    help="how the training data was made (generate/export commands with seeds; repeatable), recorded in the weights")
    ap.add_argument("--out", help="weights to write at the end (safetensors)")
    ap.add_argument("--steps", type=int, help="optimizer steps (the run stops there)")
    ap.add_argument("--seed", type=int, default=0, help="initial weights, data order, augmentation")
    ap.add_argument("--ckpt", help="checkpoint folder (config.json, loss.jsonl, step*.pt, step*.safetensors)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --ckpt")
    ap.add_argument("--export-only", action="store_true", help="write --out from a checkpoint of --ckpt and stop")
    ap.add_argument("--at-step", type=int, help="with --export-only: that step's checkpoint (default: the last)")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--voxel", type=float, default=0.1)
    ap.add_argument("--crop", type=float, default=0.0, help="train on |x|,|y| < crop metres (0: full range)")
    ap.add_argument("--every", type=int, default=1, help="use every N-th frame of each folder")
    ap.add_argument("--batch", type=int, default=1, help="frames per step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr", type=float, default=0.02, help="final LR as a fraction of --lr")
    ap.add_argument("--warmup", type=int, default=50, help="linear warm-up steps, then cosine decay")
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--class-weight", type=float, default=0.5,
                    help="cross-entropy class weights (1/frequency)^p over the training voxels; 0: none")
    ap.add_argument("--max-class-weight", type=float, default=10.0, help="cap, relative to the mean weight")
    ap.add_argument("--rotate", type=float, default=180.0, help="random yaw in ±degrees")
    ap.add_argument("--flip", type=float, default=0.5, help="probability of mirroring y")
    ap.add_argument("--scale", type=float, default=0.0, help="random isotropic scale in 1±s")
    ap.add_argument("--jitter", type=float, default=0.0, help="Gaussian point jitter (metres, std)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (part of the run: resume with the same; on a CPU shared with other jobs 1 is "
                         "faster than 2, whose OpenMP threads wait on each other)")
    ap.add_argument("--workers", type=int, default=1, help="processes preparing batches ahead (0: inline); no effect on results")
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="exported weights")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if not a.export_only and (not a.data or a.steps is None):
        ap.error("training needs --data and --steps")
    return a


def drop_resume_free(argv):
    return [x for x in argv if x not in ("--resume", "--quiet")]


def git_commit():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def rng_for(seed, *keys):
    """A generator determined by (seed, keys) alone."""
    h = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & ((1 << 63) - 1))


def frame_files(a):
    files = []
    for d in a.data:
        files += sorted(glob.glob(os.path.join(os.path.expanduser(d), "*.safetensors")))[:: a.every]
    if not files:
        sys.exit(f"no *.safetensors frames in {a.data}")
    return files


def load_frames(files, crop):
    """Raw points per frame (kept in memory) and a digest of the files' bytes."""
    frames, digest = [], hashlib.sha256()
    for f in files:
        raw = open(f, "rb").read()
        digest.update(hashlib.sha256(raw).digest())
        d = st_load(raw)
        xyz, feats, labels = d["xyz"], d["feats"], d["labels"].long()
        if crop > 0:
            keep = (xyz[:, 0].abs() < crop) & (xyz[:, 1].abs() < crop)
            xyz, feats, labels = xyz[keep], feats[keep], labels[keep]
        frames.append((xyz.contiguous(), feats[:, 3:4].contiguous(), labels.contiguous()))
    return frames, digest.hexdigest()


def voxel_labels(inv, labels, n):
    """Majority label of each voxel's labelled points (ties: the smaller class), IGNORE if none."""
    ok = (labels > 0) & (labels < CLASSES)
    counts = torch.bincount(inv[ok] * CLASSES + labels[ok], minlength=n * CLASSES).reshape(n, CLASSES)
    best = counts.argmax(1)
    return torch.where(counts.sum(1) > 0, best, torch.full_like(best, IGNORE))


def augment(xyz, g, a):
    if a.rotate > 0:
        t = (torch.rand((), generator=g, dtype=torch.float64) * 2 - 1) * math.radians(a.rotate)
        c, s = math.cos(float(t)), math.sin(float(t))
        r = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        xyz = (xyz.double() @ r.T).float()
    if a.flip > 0 and float(torch.rand((), generator=g)) < a.flip:
        xyz = xyz * torch.tensor([1.0, -1.0, 1.0])
    if a.scale > 0:
        xyz = xyz * float(1 + (torch.rand((), generator=g) * 2 - 1) * a.scale)
    if a.jitter > 0:
        xyz = xyz + torch.randn(xyz.shape, generator=g) * a.jitter
    return xyz


def make_batch(frames, idx, g, a, train=True):
    """Voxelized batch: coords (b,x,y,z), features (x,y,z,intensity means), range, voxel labels."""
    cs, fs, ls, rng = [], [], [], [0, 0, 0]
    for b, i in enumerate(idx):
        xyz, inten, labels = frames[i]
        if train:
            xyz = augment(xyz, g, a)
        c, f, r, inv = twin.voxelize(xyz, torch.cat([xyz, inten], 1), a.voxel)
        c[:, 0] = b
        cs.append(c)
        fs.append(f)
        ls.append(voxel_labels(inv, labels, len(c)))
        rng = [max(rng[k], r[k]) for k in range(3)]
    return torch.cat(cs), torch.cat(fs), rng, torch.cat(ls)


class Steps(torch.utils.data.Dataset):
    """Item s: step s's batch, voxelized and augmented, with its kernel maps."""

    def __init__(self, frames, a):
        self.frames, self.a = frames, a

    def __len__(self):
        return self.a.steps

    def __getitem__(self, step):
        a = self.a
        idx = frames_of_step(step, a.batch, len(self.frames), a.seed)
        coords, feats, rng, vl = make_batch(self.frames, idx, rng_for(a.seed, "step", step), a)
        return idx, coords, feats, rng, vl, twin.MinkUNet.pair_maps(coords, rng)


def frames_of_step(step, batch, n, seed):
    """Frame indices of optimizer step `step` (0-based): epochs are seeded permutations."""
    out = []
    for j in range(batch):
        gidx = step * batch + j
        epoch, k = divmod(gidx, n)
        out.append(int(torch.randperm(n, generator=rng_for(seed, "epoch", epoch))[k]))
    return out


def class_weights(frames, a):
    counts = torch.zeros(CLASSES, dtype=torch.float64)
    for _, _, labels in frames:
        ok = (labels > 0) & (labels < CLASSES)
        counts += torch.bincount(labels[ok], minlength=CLASSES).double()
    present = counts > 0
    w = torch.zeros(CLASSES, dtype=torch.float64)
    if a.class_weight > 0:
        w[present] = (counts.sum() / counts[present]) ** a.class_weight
        w = w / w[present].mean()
        w = w.clamp(max=a.max_class_weight)
        w = w / w[present].mean()
    else:
        w[present] = 1.0
    return w.float(), counts


def lr_factor(step, a):
    """LR multiplier of step `step` (0-based): linear warm-up, then cosine to min_lr."""
    if step < a.warmup:
        return (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.min_lr + (1 - a.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def export(model, path, meta, dtype):
    dt = torch.float16 if dtype == "f16" else torch.float32
    sd = {k: v.detach().to(dt).contiguous() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stio.save(sd, path, metadata=meta)


def weights_meta(cfg, step, losses, a):
    final_loss = losses[-1] if losses else float("nan")
    mean_loss = sum(losses[-50:]) / max(1, len(losses[-50:]))
    m = {
        "model": "minkunet",
        "width": cfg["width"],
        "voxel_size": cfg["voxel"],
        "in_channels": 4,
        "features": "x,y,z,intensity",
        "num_classes": CLASSES,
        "steps": step,
        "total_steps": cfg["steps"],
        "seed": cfg["seed"],
        "batch": cfg["batch"],
        "train_frames": cfg["train_frames"],
        "train_data": " ".join(cfg["data"]),
        "train_data_sha256": cfg["data_sha256"],
        "data_commands": " ; ".join(cfg["data_cmd"]) or "unrecorded",
        "crop_m": cfg["crop"],
        "final_loss": f"{final_loss:.6f}",
        "mean_loss_last_50": f"{mean_loss:.6f}",
        "command": cfg["command"],
        "git_commit": cfg["git_commit"],
        "torch": torch.__version__,
        "dtype": a.dtype,
    }
    return {k: str(v) for k, v in m.items()}


def ckpt_path(d, step):
    return os.path.join(d, f"step{step:06d}.pt")


def last_ckpt(d):
    cks = sorted(glob.glob(os.path.join(d, "step*.pt")))
    return cks[-1] if cks else None


def read_log(path, upto):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            r = json.loads(line)
            if r["step"] <= upto:
                rows.append(r)
    return rows


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.ckpt:
        a.ckpt = os.path.expanduser(a.ckpt)
    cfg_now = {k: v for k, v in vars(a).items() if k not in RESUME_FREE}

    if a.export_only:
        if not (a.ckpt and a.out):
            sys.exit("--export-only needs --ckpt and --out")
        path = ckpt_path(a.ckpt, a.at_step) if a.at_step is not None else last_ckpt(a.ckpt)
        st = torch.load(path, weights_only=False)
        cfg = st["config"]
        model = twin.MinkUNet(in_channels=4, num_classes=CLASSES, width=cfg["width"])
        model.load_state_dict(st["model"])
        losses = [r["loss"] for r in read_log(os.path.join(a.ckpt, "loss.jsonl"), st["step"])]
        export(model, a.out, weights_meta(cfg, st["step"], losses, a), a.dtype)
        print(f"step {st['step']} -> {a.out}")
        return

    files = frame_files(a)
    t0 = time.time()
    frames, data_sha = load_frames(files, a.crop)
    npts = sum(len(f[0]) for f in frames)
    print(f"{len(frames)} frames, {npts} points, loaded in {time.time() - t0:.1f} s", flush=True)
    cfg = dict(cfg_now)
    cfg.update(
        # The recorded command never carries --resume (a resumed run is the same run).
        command=shlex.join([sys.executable, *drop_resume_free(sys.argv if argv is None else ["train_lidar_seg.py", *argv])]),
        train_frames=len(frames), train_files=[os.path.basename(f) for f in files], data_sha256=data_sha,
        git_commit=git_commit(),
    )

    torch.manual_seed(a.seed)
    model = twin.MinkUNet(in_channels=4, num_classes=CLASSES, width=a.width)
    weight, counts = class_weights(frames, a)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, a))
    step, resumed_at = 0, []
    log_path = os.path.join(a.ckpt, "loss.jsonl") if a.ckpt else None
    if a.ckpt:
        os.makedirs(a.ckpt, exist_ok=True)
        cfg_path = os.path.join(a.ckpt, "config.json")
        if a.resume:
            path = last_ckpt(a.ckpt)
            if path is None:
                sys.exit(f"--resume: no checkpoint in {a.ckpt}")
            st = torch.load(path, weights_only=False)
            old = {k: v for k, v in st["config"].items() if k in cfg_now}
            if old != cfg_now or st["config"]["data_sha256"] != data_sha:
                diff = {k: (old.get(k), cfg_now.get(k)) for k in set(old) | set(cfg_now) if old.get(k) != cfg_now.get(k)}
                sys.exit(f"--resume: the checkpoint's run differs: {diff or 'training data changed'}")
            cfg = st["config"]
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            torch.set_rng_state(st["torch_rng"])
            step = st["step"]
            resumed_at = st.get("resumed_at", []) + [step]
            # Steps after the checkpoint are run again: drop their log lines.
            rows = read_log(log_path, step)
            with open(log_path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            print(f"resumed at step {step} from {path}", flush=True)
        else:
            if last_ckpt(a.ckpt):
                sys.exit(f"{a.ckpt} already has checkpoints: use --resume or another folder")
            with open(cfg_path, "w") as f:
                json.dump({**cfg, "class_weights": weight.tolist(), "class_voxel_counts": counts.tolist()}, f, indent=1)
            open(log_path, "w").close()
    print("class weights: " + " ".join(f"{i}:{w:.2f}" for i, w in enumerate(weight.tolist()) if w > 0), flush=True)

    def save_ckpt():
        path = ckpt_path(a.ckpt, step)
        st = {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "torch_rng": torch.get_rng_state(), "config": cfg, "resumed_at": resumed_at}
        torch.save(st, path + ".tmp")
        os.replace(path + ".tmp", path)
        export(model, path.replace(".pt", ".safetensors"), weights_meta(cfg, step, losses, a), a.dtype)

    losses = [r["loss"] for r in read_log(log_path, step)] if log_path else []
    logf = open(log_path, "a") if log_path else None
    t0 = time.time()
    model.train()
    loader = torch.utils.data.DataLoader(Steps(frames, a), batch_size=None, sampler=range(step, a.steps),
                                         num_workers=a.workers, prefetch_factor=2 if a.workers else None,
                                         collate_fn=lambda x: x)
    batches = iter(loader)
    while step < a.steps:
        ts = time.time()
        idx, coords, feats, rng, vl, maps = next(batches)
        tm = time.time()
        logits = model(coords, feats, rng, maps)
        loss = loss_fn(logits, vl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr = opt.param_groups[0]["lr"]
        sched.step()
        step += 1
        with torch.no_grad():
            acc = (logits.argmax(1) == vl)[vl >= 0].float().mean().item()
        te = time.time()
        row = {"step": step, "loss": round(loss.item(), 6), "acc": round(acc, 5), "lr": lr, "frames": idx,
               "voxels": len(coords), "t_prep": round(tm - ts, 3), "t_step": round(te - tm, 3)}
        losses.append(row["loss"])
        if logf:
            logf.write(json.dumps(row) + "\n")
            logf.flush()
        if not a.quiet and (step % 10 == 0 or step == a.steps):
            m = sum(losses[-50:]) / len(losses[-50:])
            print(f"step {step}/{a.steps} loss {loss.item():.4f} (mean50 {m:.4f}) acc {acc:.3f} lr {lr:.2e} "
                  f"{len(coords)} vox prep {tm - ts:.2f}s fwd/bwd {te - tm:.2f}s  [{time.time() - t0:.0f} s]", flush=True)
        if a.ckpt and (step % a.ckpt_every == 0 or step == a.steps):
            save_ckpt()
    if logf:
        logf.close()
    if a.out:
        export(model, a.out, weights_meta(cfg, step, losses, a), a.dtype)
        print(f"-> {a.out}")


if __name__ == "__main__":
    main()
