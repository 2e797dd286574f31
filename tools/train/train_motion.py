"""Train the motion transformer (tools/train/motion_twin.py) on `scenetok dataset motion`
shards, by step count with a seed; checkpoints every --ckpt-every steps and resume.

    target/release/scenetok dataset motion --out ~/data/motion
    .venv-train/bin/python tools/train/train_motion.py --data ~/data/motion --steps 20000 \\
        --ckpt ~/ckpt/motion_d128 --out data/weights/motion_transformer.safetensors

Every sample of the train split is used (shuffled per epoch by the seed); the validation
split's minADE / minFDE (6 modes, metres) is logged every --eval-every steps. The weights
(safetensors, f32) record the command, the step, the data manifest's seeds and the config.

With --init WEIGHTS the run starts from trained weights (a fine-tune: same config, the same
anchors since they are fitted on the same data with the same seed; on other data, e.g. more
worlds, the new anchors are put in the order of the init weights' recorded end points, so
each mode keeps its intention); the new weights record the
first run in `run.init` and carry both runs' learning curve on one step axis. --type-weight
3=4 visits every cyclist sample four times per epoch (the shipped weights' second stage);
--turn-weight 3 every sample whose truth ends more than --turn-m (8) metres to the side three
times (the third stage).

With --tokens all|lidar|image (a dataset built with `dataset motion --tokens`), each sample
also gets its scene tokens (tools/train/scene_tokens.py) through the model's scene-token slot:
every feature block, or the geometry with only the LiDAR encoder's or only the image model's.
Each token column is standardised by its mean and std over the tokens of --token-norm-samples
training samples (a seeded draw; `--token-norm none`: raw, as the first token experiment), folded
into the token projection when the weights are written. --init may then name weights without
the scene-token slot (e.g. the shipped motion weights): everything else starts from them and
the token projection starts fresh. --token-kinds object keeps only the open-set object elements
(not the agents, which the boxes give, nor the ground tiles, which the map gives); the weights
record it and the Rust token source selects the same.
"""
import argparse
import glob
import json
import os
import shlex
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import torch

sys.path.insert(0, os.path.dirname(__file__))
import motion_anchors  # noqa: E402
import motion_twin as twin  # noqa: E402
import scene_tokens as sctok  # noqa: E402
import stio  # noqa: E402
from train_lidar_seg import drop_resume_free, git_commit  # noqa: E402

COLUMNS = ["agents", "agent_valid", "agent_types", "polylines", "point_valid", "polyline_type", "signal",
           "future_xy", "future_valid"]
SHAPES = {
    "agents": (twin.AGENT_SLOTS, twin.HISTORY, twin.AGENT_FEATURES),
    "agent_valid": (twin.AGENT_SLOTS, twin.HISTORY),
    "agent_types": (twin.AGENT_SLOTS,),
    "polylines": (twin.POLYLINES, twin.POINTS, 2),
    "point_valid": (twin.POLYLINES, twin.POINTS),
    "polyline_type": (twin.POLYLINES,),
    "signal": (twin.POLYLINES,),
    "future_xy": (twin.FUTURE, 2),
    "future_valid": (twin.FUTURE,),
}
INPUTS = COLUMNS[:7]
SCALARS = ["agent_type", "eval_target", "frame_x", "frame_y", "frame_heading", "agent_z", "obstacle_distance_m"]


def load_split(root, split, limit=None, required=True, tokens=None, manifest=None, kinds=()):
    """Every shard of a split as numpy arrays (one per column), shards in name order; None for
    a split without samples unless `required`. With `tokens` (a feature set), also the split's
    token sidecars (`data["tokens"]`, a scene_tokens.TokenStore)."""
    files = sorted(glob.glob(os.path.join(root, split, "*.parquet")))
    if not files or not sum(pq.ParquetFile(f).metadata.num_rows for f in files):
        if not required:
            return None
        sys.exit(f"no samples in {os.path.join(root, split)}: run `scenetok dataset motion --out {root}`")
    # Filled in place, shard by shard: concatenating per-shard arrays would hold the split
    # twice at the end (~70 kB per sample: 13 GB for a 1,440-world training split).
    rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    total = min(sum(rows), limit) if limit else sum(rows)
    out = {}
    n, used = 0, []
    scalars = {c: [] for c in SCALARS + ["shard", "start"]}
    for k, f in enumerate(files):
        if n >= total:
            break
        t = pq.read_table(f, columns=COLUMNS + SCALARS + ["scenario_id"])
        take = min(len(t), total - n)
        t = t.slice(0, take)
        for c in COLUMNS:
            values = t.column(c).combine_chunks().values.to_numpy(zero_copy_only=False)
            if c not in out:  # the file's own types, as the shards store them
                out[c] = np.empty((total, *SHAPES[c]), values.dtype)
            out[c][n:n + take] = values.reshape((take, *SHAPES[c]))
        for c in SCALARS:
            scalars[c].append(t.column(c).to_numpy(zero_copy_only=False))
        scalars["shard"].append(np.full(take, k))
        scalars["start"].append(np.array([sctok.window_start(i) if "@" in i else -1
                                          for i in t.column("scenario_id").to_pylist()], np.int64))
        used.append(os.path.basename(f))
        n += take
    out.update({c: np.concatenate(v) for c, v in scalars.items()})
    if tokens:
        plan = (manifest or {}).get("plan", {}).get("tokens")
        if not plan:
            sys.exit(f"--tokens: {root} was built without tokens (`scenetok dataset motion --tokens`)")
        out["tokens"] = sctok.TokenStore(root, split, used, tokens, history=plan["history"], kinds=kinds)
    return out


def sample_tokens(data, i, store=None):
    """Sample i's scene tokens ([S, width]) from `store` (default: the split's own)."""
    store = store or data["tokens"]
    return store.tokens(data["shard"][i], data["start"][i],
                        (data["frame_x"][i], data["frame_y"][i], data["agent_z"][i], data["frame_heading"][i]))


def batch_of(data, idx):
    b = [torch.from_numpy(np.ascontiguousarray(data[c][idx])) for c in COLUMNS]
    if data.get("tokens") is not None:
        x, v = sctok.pad([sample_tokens(data, i) for i in idx])
        b += [torch.from_numpy(x), torch.from_numpy(v)]
    return b


def to_model(b):
    agents, av, at, poly, pv, pt, sig, fxy, fv = b[:9]
    x = (agents, av.bool(), at, poly, pv.bool(), pt, sig, *b[9:])
    return x, fxy, fv.bool()


@torch.no_grad()
def evaluate(model, data, batch=256):
    model.eval()
    ade, fde, n = 0.0, 0.0, 0
    per_type = {}
    for s in range(0, len(data["agents"]), batch):
        idx = np.arange(s, min(s + batch, len(data["agents"])))
        x, y, v = to_model(batch_of(data, idx))
        mu, _, _, _ = model(*x)
        d = (mu - y[:, None]).norm(dim=-1)  # [B, K, T]
        sample_ade = twin.mean_displacement(mu, y, v).min(1).values
        ade += sample_ade.sum().item()
        for t, e in zip(data["agent_type"][idx], sample_ade.tolist()):
            per_type.setdefault(int(t), []).append(e)
        last = (torch.arange(twin.FUTURE)[None] * v).argmax(-1)
        fde += d[torch.arange(len(idx)), :, last].min(1).values.sum().item()
        n += len(idx)
    model.train()
    return dict(min_ade=ade / max(n, 1), min_fde=fde / max(n, 1), samples=n,
                min_ade_by_type={str(t): round(float(np.mean(e)), 4) for t, e in sorted(per_type.items())})


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a `scenetok dataset motion` folder")
    ap.add_argument("--config", default="d128", choices=sorted(twin.CONFIGS))
    ap.add_argument("--tokens", choices=sctok.FEATURE_SETS,
                    help="with scene tokens: every feature block, or only the LiDAR's or the image's")
    ap.add_argument("--token-kinds", type=lambda v: v.split(","), default=[],
                    help="comma-separated element kinds that become tokens (agent, object, ground; default all)")
    ap.add_argument("--token-norm", choices=["standard", "none"], default="standard",
                    help="standardise each scene-token column (training tokens' mean / std) or feed them raw")
    ap.add_argument("--token-norm-samples", type=int, default=2000,
                    help="training samples whose tokens give the standardisation's mean and std")
    ap.add_argument("--steps", type=int, help="optimizer steps (the run stops there)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=0.02, help="final LR as a fraction of --lr")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip")
    ap.add_argument("--assign", choices=["anchors", "wta"], default="anchors",
                    help="which mode each sample trains: its type's intention anchor nearest the truth "
                         "(tools/train/motion_anchors.py) or plain winner-take-all")
    ap.add_argument("--train-limit", type=int, help="use only the first N training samples")
    ap.add_argument("--init", help="start from these weights (a fine-tune; same config): their command and "
                                   "step are recorded in the new weights' run")
    ap.add_argument("--type-weight", action="append", default=[], metavar="TYPE=N",
                    help="each sample of WOMD agent type TYPE (1 vehicle, 2 pedestrian, 3 cyclist) appears "
                         "N times per epoch (repeatable)")
    ap.add_argument("--turn-weight", type=int, default=1, metavar="N",
                    help="each sample whose truth turns (see --turn-m) appears N times per epoch; multiplies "
                         "with --type-weight")
    ap.add_argument("--turn-m", type=float, default=TURN_M,
                    help="metres to the side (last valid future point, agent frame at t = 0) that make a turn")
    ap.add_argument("--ckpt", help="checkpoint folder (config.json, loss.jsonl, step*.pt)")
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", help="weights to write at the end (safetensors)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.steps is None:
        ap.error("--steps is required")
    weights = {}
    for w in a.type_weight:
        t, _, n = w.partition("=")
        if not (t.isdigit() and n.isdigit() and int(n) >= 1):
            ap.error(f"--type-weight {w}: expected TYPE=N with integers, N >= 1")
        weights[int(t)] = int(n)
    a.type_weight = weights
    bad = [k for k in a.token_kinds if k not in sctok.KINDS]
    if bad:
        ap.error(f"--token-kinds: unknown {bad} (kinds: {', '.join(sctok.KINDS)})")
    if a.token_kinds and not a.tokens:
        ap.error("--token-kinds needs --tokens")
    if a.turn_weight < 1:
        ap.error("--turn-weight: N >= 1")
    return a


TURN_M = 8.0


def side_offset(future_xy, future_valid):
    """Per sample, how far to the side (m, absolute) its last valid future point ends, in the
    agent's frame at t = 0; 0 for a sample without a valid future point."""
    valid = future_valid.astype(bool)
    last = np.where(valid.any(1), valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1), -1)
    side = np.abs(future_xy[np.arange(len(last)), np.maximum(last, 0), 1]).astype(np.float64)
    return np.where(last >= 0, side, 0.0)


def epoch_pool(agent_type, type_weight, turning=None, turn_weight=1):
    """The sample indices one epoch visits: every sample once, those of a weighted type N times,
    and a turning one (`turning`, a mask) `turn_weight` times that."""
    reps = np.ones(len(agent_type), np.int64)
    for t, n in type_weight.items():
        reps[agent_type == t] = n
    if turning is not None:
        reps[turning] *= turn_weight
    return np.repeat(np.arange(len(agent_type)), reps)


def weights_metadata(path):
    """A safetensors file's metadata (strings)."""
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        return f.metadata() or {}


def init_record(path, meta):
    """The weights a fine-tune starts from, as its run records them: their command, step and commit."""
    return dict(path=os.path.basename(path), command=meta.get("command", ""), step=json.loads(meta.get("step", "0")),
                commit=meta.get("commit", ""))


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (a.min_lr + (1 - a.min_lr) * 0.5 * (1 + np.cos(np.pi * min(t, 1.0))))


CURVE_WINDOW = 50


def curve_of(records, command, window=CURVE_WINDOW):
    """The learning curve the weights carry (metadata `curve`; the evaluation report draws it):
    the loss averaged over each `window` steps and every validation pass. `records` are
    loss.jsonl's rows; a step logged twice (a run resumed before its last checkpoint) counts
    once, its last row."""
    by_step = {r["step"]: r for r in records}
    steps, loss, validation = [], [], []
    ordered = [by_step[k] for k in sorted(by_step)]
    for i in range(0, len(ordered), window):
        part = ordered[i:i + window]
        steps.append(part[-1]["step"])
        loss.append(float(np.mean([r["loss"] for r in part])))
    for r in ordered:
        if "validation" in r:
            v = r["validation"]
            validation.append(dict(step=r["step"], min_ade=v["min_ade"], min_fde=v["min_fde"]))
    return dict(command=command, steps=steps, loss=loss, validation=validation)


def chained(first, then):
    """The learning curve of a fine-tune (`then`) that started from weights with curve `first`:
    both runs on one step axis (the fine-tune's steps after the last of `first`, which for
    weights that were fine-tuned themselves is past their own run's step), and the command that
    reproduces both."""
    offset = first["steps"][-1] if first["steps"] else 0
    shift = lambda steps: [k + offset for k in steps]  # noqa: E731
    return dict(command=f"{first['command']} && {then['command']}", steps=first["steps"] + shift(then["steps"]),
                loss=first["loss"] + then["loss"],
                validation=first.get("validation", []) + [dict(v, step=v["step"] + offset) for v in then["validation"]])


def token_stats(data, samples, seed):
    """Per-column mean and std of the scene tokens of `samples` training samples (drawn with
    the seed, so a resumed run gets the same), and the number of tokens they hold."""
    n = len(data["agents"])
    idx = np.sort(np.random.default_rng([seed, 7]).choice(n, size=min(samples, n), replace=False))
    rows = np.concatenate([sample_tokens(data, i) for i in idx]).astype(np.float64)
    if not len(rows):
        width = data["tokens"].width
        return np.zeros(width, np.float32), np.ones(width, np.float32), 0
    return rows.mean(0).astype(np.float32), rows.std(0).astype(np.float32), len(rows)


@torch.no_grad()
def check_folded(model, path, data):
    """The written weights (standardisation folded into scene_in) against the trained model on
    a few samples: the same outputs up to float rounding."""
    model.eval()
    x, _, _ = to_model(batch_of(data, np.arange(min(32, len(data["agents"])))))
    ours, theirs = model(*x), twin.load(path)(*x)
    diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
    scale = max(a.abs().max().item() for a in ours)
    if diff > 1e-4 * max(1.0, scale):
        sys.exit(f"{path}: folding the token standardisation changed the outputs by {diff:.3g}")
    print(f"token standardisation folded into scene_in: outputs within {diff:.2g}", flush=True)


def export(model, path, meta):
    tensors = {k: v.float().contiguous() for k, v in model.folded_state_dict().items()}
    stio.save(tensors, path, {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()})


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    manifest = json.load(open(os.path.join(a.data, "dataset_manifest.json")))
    t0 = time.time()
    train = load_split(a.data, "train", a.train_limit, tokens=a.tokens, manifest=manifest, kinds=a.token_kinds)
    val = load_split(a.data, "validation", required=False, tokens=a.tokens, manifest=manifest, kinds=a.token_kinds)
    print(f"{len(train['agents'])} training and {len(val['agents']) if val else 0} validation samples "
          f"loaded in {time.time() - t0:.0f} s", flush=True)
    cfg = dict(twin.CONFIGS[a.config])
    scene = None
    if a.tokens:
        store = train["tokens"]
        cfg["scene_dim"] = store.width
        scene = dict(features=a.tokens, image_channels=store.model_layout[0], lidar_channels=store.model_layout[1],
                     history=store.history, max_tokens=store.max_tokens, range=sctok.RANGE)
        if a.token_kinds:
            scene["kinds"] = a.token_kinds
    model = twin.build(cfg)
    init_meta = weights_metadata(a.init) if a.init else {}
    fresh_scene_in = False
    if a.init:
        start = twin.load(a.init)
        # Weights without the scene-token slot may start a token model: all but scene_in.
        fresh_scene_in = start.cfg["scene_dim"] == 0 and model.cfg["scene_dim"] > 0
        if dict(start.cfg, scene_dim=model.cfg["scene_dim"]) != model.cfg or \
                (start.cfg["scene_dim"] != model.cfg["scene_dim"] and not fresh_scene_in):
            sys.exit(f"--init {a.init}: its config {start.cfg} differs from --config {a.config} ({model.cfg})")
        missing, unexpected = model.load_state_dict(start.state_dict(), strict=not fresh_scene_in)
        if unexpected or any(not k.startswith("scene_in.") for k in missing):
            sys.exit(f"--init {a.init}: tensors differ from the model's: missing {missing}, unexpected {unexpected}")
        model.train()
    if scene and a.token_norm == "standard":
        mean, std, count = token_stats(train, a.token_norm_samples, a.seed)
        model.set_scene_norm(mean, std)
        scene["norm"] = dict(rule="standard", samples=min(a.token_norm_samples, len(train["agents"])))
        print(f"scene tokens standardised over {count} tokens of {scene['norm']['samples']} training samples; "
              f"column std {std.min():.3g}..{std.max():.3g}", flush=True)
    anchors = {}
    if a.assign == "anchors":
        anchors = motion_anchors.fit(train["future_xy"], train["future_valid"], train["agent_type"],
                                     model.cfg["modes"], seed=a.seed)
        reordered = {}
        init_ends = json.loads(init_meta.get("run", "{}")).get("assign", {}).get("end_points")
        if init_ends:
            anchors, reordered = motion_anchors.match(anchors, init_ends)
        print("anchor end points (m) per agent type:", json.dumps(motion_anchors.describe(anchors)), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    command = shlex.join([sys.executable, *drop_resume_free(sys.argv if argv is None else ["train_motion.py", *argv])])
    run = dict(config=model.cfg, seed=a.seed, batch=a.batch, lr=a.lr, steps=a.steps, warmup=a.warmup,
               data_seed=manifest["plan"]["base_seed"], train_samples=len(train["agents"]))
    if a.assign == "anchors":
        run["assign"] = dict(rule="anchors", end_points=motion_anchors.describe(anchors))
        if reordered:
            # The init weights' modes keep their intentions (anchors fitted on other data).
            run["assign"]["reordered_to_init"] = reordered
    if a.init:
        run["init"] = init_record(a.init, init_meta)
        if fresh_scene_in:
            run["init"]["scene_in"] = "fresh"
    if a.type_weight:
        run["type_weight"] = {str(t): n for t, n in sorted(a.type_weight.items())}
    turning = None
    if a.turn_weight > 1:
        turning = side_offset(train["future_xy"], train["future_valid"]) > a.turn_m
        run["turn_weight"] = dict(n=a.turn_weight, side_m=a.turn_m, samples=int(turning.sum()))
    if scene:
        run["scene_tokens"] = scene
    step = 0
    if a.ckpt:
        a.ckpt = os.path.expanduser(a.ckpt)
        os.makedirs(a.ckpt, exist_ok=True)
        cks = sorted(glob.glob(os.path.join(a.ckpt, "step*.pt")))
        if a.resume and cks:
            st = torch.load(cks[-1], weights_only=False)
            if st["run"] != run:
                sys.exit(f"--resume: the checkpoint's run differs: {st['run']} vs {run}")
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            torch.set_rng_state(st["torch_rng"])
            step = st["step"]
            print(f"resumed at step {step} from {cks[-1]}", flush=True)
        elif cks:
            sys.exit(f"{a.ckpt} already has checkpoints: use --resume or another folder")
        json.dump(dict(run=run, command=command), open(os.path.join(a.ckpt, "config.json"), "w"), indent=1)
    log = open(os.path.join(a.ckpt, "loss.jsonl"), "a") if a.ckpt else None
    history = []  # this process's rows (loss.jsonl has every run's)
    pool = epoch_pool(train["agent_type"], a.type_weight, turning, a.turn_weight)
    n = len(pool)
    per_epoch = max(1, n // a.batch)
    t_start = time.time()
    while step < a.steps:
        epoch, pos = divmod(step, per_epoch)
        order = pool[np.random.default_rng([a.seed, epoch]).permutation(n)]
        idx = np.sort(order[pos * a.batch:(pos + 1) * a.batch])
        x, y, v = to_model(batch_of(train, idx))
        for g in opt.param_groups:
            g["lr"] = lr_at(a, step)
        assigned = motion_anchors.assign(anchors, train["agent_type"][idx], y, v) if anchors else None
        total, parts = twin.loss(model(*x), y, v, assigned)
        opt.zero_grad()
        total.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip).item()
        opt.step()
        step += 1
        rec = dict(step=step, loss=total.item(), grad_norm=gn, lr=lr_at(a, step - 1), **parts)
        if val is not None and (step % a.eval_every == 0 or step == a.steps):
            rec["validation"] = evaluate(model, val)
        history.append(rec)
        if log:
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if not a.quiet and (step % 50 == 0 or "validation" in rec):
            rate = (time.time() - t_start) / max(1, step - (st["step"] if a.resume and a.ckpt and cks else 0))
            print(json.dumps(rec), f"{rate:.2f} s/step", flush=True)
        if a.ckpt and (step % a.ckpt_every == 0 or step == a.steps):
            path = os.path.join(a.ckpt, f"step{step:07d}.pt")
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, run=run,
                            torch_rng=torch.get_rng_state()), path + ".tmp")
            os.replace(path + ".tmp", path)
    if a.out:
        if log:
            log.close()
            with open(os.path.join(a.ckpt, "loss.jsonl")) as f:
                history = [json.loads(line) for line in f if line.strip()]
        meta = dict(command=command, commit=git_commit(), step=step, run=run,
                    generator=manifest.get("generator_version", ""), curve=curve_of(history, command))
        if init_meta.get("curve"):
            meta["curve"] = chained(json.loads(init_meta["curve"]), meta["curve"])
        if scene:
            meta["scene_tokens"] = scene
        export(model, a.out, meta)
        if model.scene_shift is not None:
            check_folded(model, a.out, val if val is not None else train)
        print(f"wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
