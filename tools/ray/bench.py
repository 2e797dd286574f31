#!/usr/bin/env python3
"""What scaling out costs, measured on this machine (run by tools/ray/bench.sh).

Data: the real WOMD scenario of ../shared/waymo-samples, its record written FILES × RECORDS
times as a folder of TFRecords like WOMD's own release, in a temporary folder outside the
repository (the samples are never copied into it). Model: the motion
transformer. The same evaluation is timed

  1. as one process (2 compute threads, what a user runs on one machine), and with 1 thread;
  2. as one process per shard, run one after the other without Ray (each shard's process
     start, model load and reading: the per-shard cost of sharding itself);
  3. on a local Ray cluster with 1 worker CPU and with 2 (one thread per task), shards then
     merge: the 2-vs-1 throughput ratio and Ray's own cost per task (the driver's time per
     task beyond the scenetok process inside it);
  4. merging alone, and the partial results' size per scenario, for MessagePack partials (what
     the driver writes) and for the same shards as JSON.

It prints a table and writes the figures as JSON (--json), with the extrapolation to WOMD's
validation split (44,097 scenarios) on 1, 8 and 64 nodes of this machine's size.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WOMD_VALIDATION = 44_097


def run(argv, env=None, **kw):
    t = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, **kw)
    return time.monotonic() - t


def write_release(sample: Path, folder: Path, files: int, records: int) -> int:
    """FILES TFRecords of RECORDS copies of the sample's one framed record (the same
    scenario id throughout: the metrics and the merge do not need them distinct)."""
    record = sample.read_bytes()
    folder.mkdir(parents=True)
    for f in range(files):
        (folder / f"validation.tfrecord-{f:05d}-of-{files:05d}").write_bytes(record * records)
    return files * records


def ray_eval(py, bin_, data, shards, cpus, out, port):
    ray = str(Path(py).parent / "ray")
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1")
    subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus",
                    str(cpus), "--include-dashboard", "false", "--disable-usage-stats"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        summary = out.with_suffix(".summary.json")
        t = run([py, str(ROOT / "tools/ray/scenetok_ray.py"), "eval", "--address", f"127.0.0.1:{port}",
                 "--scenetok", bin_, "--data", str(data), "--shards", str(shards), "--out", str(out),
                 "--summary", str(summary), "--", "--model", "transformer"], stderr=subprocess.DEVNULL)
        return t, json.loads(summary.read_text())
    finally:
        subprocess.run([ray, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenetok", default=str(ROOT / "target/debug/scenetok"))
    p.add_argument("--python", default=str(ROOT / ".venv-ray/bin/python"))
    p.add_argument("--samples", default=str(ROOT.parent / "shared/waymo-samples"))
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--records", type=int, default=30)
    p.add_argument("--port", type=int, default=6392)
    p.add_argument("--json")
    args = p.parse_args()
    # Loopback-only clusters: no token authentication (see tools/ray/test.sh).
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_DISABLE_USAGE_STATS="1")
    sample = Path(args.samples) / "womd/motion_data_one_scenario.tfrecord"
    if not sample.exists():
        sys.exit(f"{sample}: the real WOMD sample is needed (the project's machines have it)")
    work = Path(tempfile.mkdtemp(prefix="scenetok-ray-bench-"))
    try:
        data = work / "release"
        scenarios = write_release(sample, data, args.files, args.records)
        data_bytes = sum(f.stat().st_size for f in data.iterdir())
        bin_ = args.scenetok
        ev = lambda out, *extra: [bin_, "eval", "--data", str(data), "--model", "transformer", *extra, "--out", str(out)]
        one = lambda threads: dict(os.environ, RAYON_NUM_THREADS=str(threads))
        # Warm the page cache and the binary: every later run reads from memory alike.
        run(ev(work / "warm"))
        single_2t = run(ev(work / "single2"), env=one(2))
        single_1t = run(ev(work / "single1"), env=one(1))
        shards = args.files
        # The shards in turn, as the Ray driver writes them (MessagePack), then the same
        # shards as JSON: each encoding's merge time and bytes.
        shard_run = lambda i, part: run([bin_, "eval", "--data", str(data), "--model", "transformer",
                                         "--shard", f"{i}/{shards}", "--partial", str(part)], env=one(1))
        parts = [work / f"part{i}.msgpack" for i in range(shards)]
        local = [shard_run(i, parts[i]) for i in range(shards)]
        merge_s = run([bin_, "merge", *map(str, parts), "--out", str(work / "merged_local")])
        partial_bytes = sum(p.stat().st_size for p in parts)
        parts_json = [work / f"part{i}.json" for i in range(shards)]
        for i in range(shards):
            shard_run(i, parts_json[i])
        merge_json_s = run([bin_, "merge", *map(str, parts_json), "--out", str(work / "merged_json")])
        json_bytes = sum(p.stat().st_size for p in parts_json)
        ray1_s, ray1 = ray_eval(args.python, bin_, data, shards, 1, work / "ray1", args.port)
        ray2_s, ray2 = ray_eval(args.python, bin_, data, shards, 2, work / "ray2", args.port)
        # With one CPU the tasks run one after another: the time from the first submission to
        # the last result beyond the scenetok processes inside them is Ray's, per task.
        in_task = [r["seconds"] for r in ray1["per_shard"]]
        task_overhead = [(ray1["shards_seconds"] - sum(in_task)) / shards] * shards
    finally:
        shutil.rmtree(work, ignore_errors=True)

    per_scenario_1t = single_1t / scenarios
    per_shard_local = sum(local) / shards
    # Cost of sharding itself per shard: a shard's process beyond its share of one run.
    shard_cost = per_shard_local - single_1t / shards
    ray_cost = sum(task_overhead) / shards
    merge_per_scenario = merge_s / scenarios
    fig = {
        "scenarios": scenarios,
        "files": args.files,
        "data_mb": data_bytes / 1e6,
        "single_process_2_threads_s": single_2t,
        "single_process_1_thread_s": single_1t,
        "per_scenario_1_thread_ms": per_scenario_1t * 1e3,
        "local_shards_sum_s": sum(local),
        "local_shard_mean_s": per_shard_local,
        "sharding_cost_per_shard_s": shard_cost,
        "ray_1_cpu_s": ray1_s,
        "ray_2_cpus_s": ray2_s,
        "ray_1_cpu_shards_s": ray1["shards_seconds"],
        "ray_2_cpus_shards_s": ray2["shards_seconds"],
        "ray_2_vs_1_throughput": ray1["shards_seconds"] / ray2["shards_seconds"],
        "ray_task_overhead_mean_s": ray_cost,
        "ray_task_inside_mean_s": sum(in_task) / shards,
        "merge_s": merge_s,
        "merge_per_scenario_ms": merge_per_scenario * 1e3,
        "partial_kb_per_scenario": partial_bytes / scenarios / 1e3,
        "merge_json_s": merge_json_s,
        "merge_json_per_scenario_ms": merge_json_s / scenarios * 1e3,
        "partial_json_kb_per_scenario": json_bytes / scenarios / 1e3,
    }
    # On paper: nodes of this machine's size (2 cores, one 1-thread task per core), WOMD
    # validation's 44,097 scenarios in 150 files (one shard per file: at most 150 busy tasks).
    est = {}
    for nodes in (1, 8, 64):
        tasks = min(2 * nodes, 150)
        # Files are the shards: the busiest task evaluates ⌈150 / tasks⌉ of them.
        shards_per_task = -(-150 // tasks)
        compute = shards_per_task * (WOMD_VALIDATION / 150) * per_scenario_1t
        overhead = shards_per_task * (shard_cost + ray_cost)
        merge = WOMD_VALIDATION * merge_per_scenario
        est[str(nodes)] = {"tasks": tasks, "compute_s": compute, "overhead_s": overhead, "merge_s": merge,
                           "total_s": compute + overhead + merge}
    fig["womd_validation_estimate"] = est
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=1) + "\n")
    print(f"{scenarios} real WOMD scenarios (copies of the sample, {fig['data_mb']:.0f} MB in {args.files} files), "
          "the motion transformer")
    print(f"  one process, 2 threads            {single_2t:7.2f} s")
    print(f"  one process, 1 thread             {single_1t:7.2f} s  ({fig['per_scenario_1_thread_ms']:.1f} ms per scenario)")
    print(f"  {shards} shard processes, in turn      {sum(local):7.2f} s  "
          f"(sharding costs {shard_cost:.3f} s per shard: process, model, reading)")
    print(f"  Ray, 1 worker CPU                 {ray1_s:7.2f} s  ({ray1['shards_seconds']:.2f} s from the first "
          "task to the last; the rest is the driver's start and the merge)")
    print(f"  Ray, 2 worker CPUs                {ray2_s:7.2f} s  ({ray2['shards_seconds']:.2f} s: throughput "
          f"×{fig['ray_2_vs_1_throughput']:.2f} over 1)")
    print(f"  Ray's cost per task               {ray_cost:7.3f} s  (beyond the {fig['ray_task_inside_mean_s']:.3f} s "
          "scenetok process inside)")
    print(f"  merge of {shards} partials            {merge_s:7.2f} s  ({fig['merge_per_scenario_ms']:.2f} ms, "
          f"{fig['partial_kb_per_scenario']:.0f} kB per scenario, MessagePack)")
    print(f"  the same partials as JSON         {merge_json_s:7.2f} s  ({fig['merge_json_per_scenario_ms']:.2f} ms, "
          f"{fig['partial_json_kb_per_scenario']:.0f} kB per scenario)")
    print(f"WOMD validation ({WOMD_VALIDATION} scenarios, 150 files), nodes of this machine's size (2 cores):")
    for nodes, e in est.items():
        print(f"  {nodes:>3} node(s): {e['tasks']:>3} tasks: compute {e['compute_s']:7.0f} s + per-shard "
              f"{e['overhead_s']:5.1f} s + merge {e['merge_s']:5.0f} s = {e['total_s']:7.0f} s")


if __name__ == "__main__":
    main()
