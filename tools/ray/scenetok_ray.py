#!/usr/bin/env python3
"""scenetok on a Ray cluster: one `scenetok` process per shard, as Ray tasks over the nodes.

    python tools/ray/scenetok_ray.py eval --scenetok BIN --data PATH --shards N --out DIR \
        [--address ADDR] [--retries 3] -- --model transformer --stride 20
    python tools/ray/scenetok_ray.py dataset-motion --scenetok BIN --shards N --out DIR -- --train-worlds 480
    python tools/ray/scenetok_ray.py generate --scenetok BIN --shards N --out DIR -- --segments 64 --seed 7

Every task runs `BIN <command> --shard I/N ...` on whichever node Ray gives it, so BIN, the
data and the output folder must be the same paths on every node (a shared filesystem: NFS,
a mounted bucket, a Kubernetes volume). A task that fails (non-zero exit) or whose worker
dies (a killed process, a lost node) is retried up to --retries times. Then the driver joins
the shards on its own node:

* eval: `scenetok merge` of the shards' partial results → the run folder one process writes
  (metrics bit for bit the same).
* dataset-motion: one more `scenetok dataset motion` of the whole plan, which finds every
  shard's files built and writes the dataset's manifest (the parquet shards a PyTorch
  DataLoader reads: tools/train/).
* generate: nothing to join (each shard writes its own segments and manifest).

Progress goes to stderr, one line per finished shard; a summary (per-shard seconds inside the
task and as the driver saw them) is printed as JSON at the end (--summary FILE to keep it).
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import ray


def say(msg: str) -> None:
    print(f"[scenetok-ray] {msg}", file=sys.stderr, flush=True)


@ray.remote
def run_shard(argv: list, shard: str, kill_marker: str | None, threads: int) -> dict:
    """Runs one shard's command with `threads` compute threads; raises (so Ray retries) when
    it fails."""
    if kill_marker is not None and not os.path.exists(kill_marker):
        # Test hook (--inject-kill): the first attempt of this shard dies as a killed worker
        # would, after leaving a marker so that the retry goes through.
        Path(kill_marker).write_text("killed once\n")
        os.kill(os.getpid(), signal.SIGKILL)
    started = time.monotonic()
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"shard {shard}: `{shlex.join(argv)}` exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return {"shard": shard, "seconds": seconds, "node": ray.util.get_node_ip_address(), "stdout": proc.stdout[-1000:]}


def shard_commands(args) -> list:
    """Per shard: (shard label, argv, the file it writes or None)."""
    n = args.shards
    out = []
    for i in range(n):
        shard = f"{i}/{n}"
        if args.command == "eval":
            part = str(Path(args.work) / f"part-{i:05d}-of-{n:05d}.msgpack")
            argv = [args.scenetok, "eval", "--data", args.data, "--shard", shard, "--partial", part, *args.extra]
            out.append((shard, argv, part))
        elif args.command == "dataset-motion":
            argv = [args.scenetok, "dataset", "motion", "--out", args.out, "--shard", shard, *args.extra]
            out.append((shard, argv, None))
        else:
            argv = [args.scenetok, "generate", "--out", args.out, "--shard", shard, *args.extra]
            out.append((shard, argv, None))
    return out


def join_shards(args, parts: list) -> None:
    """What the driver runs once every shard is done."""
    if args.command == "eval":
        argv = [args.scenetok, "merge", *parts, "--out", args.out]
    elif args.command == "dataset-motion":
        argv = [args.scenetok, "dataset", "motion", "--out", args.out, *args.extra]
    else:
        return
    say(f"joining: {shlex.join(argv[:3])} … ({len(argv)} arguments)")
    subprocess.run(argv, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["eval", "dataset-motion", "generate"])
    p.add_argument("--scenetok", required=True, help="the scenetok binary, at the same path on every node")
    p.add_argument("--data", help="eval: the input (v2 dataset folder or WOMD TFRecord), shared")
    p.add_argument("--shards", type=int, required=True, help="how many shards (tasks)")
    p.add_argument("--out", required=True, help="the run folder / dataset / world, shared")
    p.add_argument("--work", help="eval: where the partial results go (default: OUT.parts), shared")
    p.add_argument("--address", default=None, help="the Ray cluster (default: RAY_ADDRESS, else a local one)")
    p.add_argument("--retries", type=int, default=3, help="retries of a failed or killed shard")
    p.add_argument("--cpus-per-task", type=int, default=1,
                   help="CPUs Ray reserves per shard, and the compute threads its scenetok runs")
    p.add_argument("--summary", help="also write the JSON summary here")
    p.add_argument("--inject-kill", type=int, action="append", default=[], metavar="I",
                   help="test hook: the first attempt of shard I kills its own worker")
    argv = sys.argv[1:]
    # After `--`: arguments for every shard's scenetok command.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.extra = extra
    if args.shards < 1:
        p.error("--shards must be at least 1")
    if args.command == "eval" and not args.data:
        p.error("eval needs --data")
    args.scenetok = str(Path(args.scenetok).resolve())
    args.out = str(Path(args.out).resolve())
    if args.data:
        args.data = str(Path(args.data).resolve())
    args.work = str(Path(args.work or args.out + ".parts").resolve())
    if args.command == "eval" or args.inject_kill:
        Path(args.work).mkdir(parents=True, exist_ok=True)

    ray.init(address=args.address, log_to_driver=False, logging_level="WARNING")
    say(f"cluster: {ray.cluster_resources().get('CPU', 0):.0f} CPUs on {len(ray.nodes())} node(s)")
    started = time.monotonic()
    commands = shard_commands(args)
    pending = {}
    submitted = {}
    for i, (shard, argv, _) in enumerate(commands):
        marker = str(Path(args.work) / f"killed-{i}") if i in args.inject_kill else None
        ref = run_shard.options(
            max_retries=args.retries, retry_exceptions=True, num_cpus=args.cpus_per_task
        ).remote(argv, shard, marker, args.cpus_per_task)
        pending[ref] = shard
        submitted[shard] = time.monotonic()
    results = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        shard = pending.pop(ref)
        try:
            r = ray.get(ref)
        except Exception as e:  # the last retry failed too
            say(f"shard {shard} failed after {args.retries} retries: {e}")
            return 1
        r["submitted_to_done_seconds"] = time.monotonic() - submitted[shard]
        results.append(r)
        say(f"shard {shard} done on {r['node']} in {r['seconds']:.2f} s ({len(results)}/{len(commands)})")
    shards_s = time.monotonic() - started
    t = time.monotonic()
    join_shards(args, [c[2] for c in commands if c[2]])
    join_s = time.monotonic() - t
    retried = [i for i in args.inject_kill if (Path(args.work) / f"killed-{i}").exists()]
    summary = {
        "command": args.command,
        "shards": len(commands),
        "cpus": ray.cluster_resources().get("CPU", 0),
        "shards_seconds": shards_s,
        "join_seconds": join_s,
        "killed_and_retried": retried,
        "per_shard": sorted(
            ({k: r[k] for k in ("shard", "seconds", "submitted_to_done_seconds", "node")} for r in results),
            key=lambda r: int(r["shard"].split("/")[0]),
        ),
    }
    text = json.dumps(summary, indent=2)
    if args.summary:
        Path(args.summary).write_text(text + "\n")
    print(text)
    say(f"all {len(commands)} shards in {shards_s:.1f} s, joined in {join_s:.1f} s → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
