"""The motion transformer's baselines for `scenetok bench motion`: the same weights in
PyTorch (CPU, eager, inference mode) and exported to ONNX and run by ONNX Runtime (Python,
CPU execution provider), on the same inputs, in the same invocation as scenetok's side.

    motion_baseline.py --inputs IN.safetensors --out DIR --config d256 --seed S --threads T --reps R

IN holds one scene's agents (the tensors of tools/train/motion_twin.py, batch = agents),
written by scenetok. This script builds the twin with seeded random weights and writes them
to DIR/weights.safetensors (scenetok loads exactly these), exports DIR/model.onnx (opset 17,
the batch size fixed), then times R forward passes of each side after two warm-ups (one timer
around each pass; both sides get T intra-op threads and one inter-op thread) and writes each
side's outputs to DIR/{torch,ort}_outputs.safetensors (after the timers). Prints one JSON
object: the versions, threads, and per side the seconds of every pass.
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
import motion_twin as twin  # noqa: E402
import stio  # noqa: E402

NAMES = ["agents", "agent_valid", "agent_types", "polylines", "point_valid", "polyline_type", "signal"]
OUTPUTS = ["mu", "sigma", "rho", "logits"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="d256", choices=sorted(twin.CONFIGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(a.seed)
    model = twin.build(a.config).eval()
    cfg = model.cfg
    stio.save({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
              os.path.join(a.out, "weights.safetensors"), {"run": json.dumps({"config": cfg})})
    raw = load_file(a.inputs)
    x = [raw[n] for n in NAMES]
    x[1], x[4] = x[1].bool(), x[4].bool()

    onnx_path = os.path.join(a.out, "model.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(x), onnx_path, dynamo=False, opset_version=17, input_names=NAMES,
                          output_names=OUTPUTS)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    feed = {n: v.numpy() for n, v in zip(NAMES, x)}

    def time_it(f):
        for _ in range(2):
            f()
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t)
        return times, out

    with torch.inference_mode():
        torch_s, torch_out = time_it(lambda: model(*x))
    ort_s, ort_out = time_it(lambda: session.run(OUTPUTS, feed))
    stio.save({k: v.contiguous() for k, v in zip(OUTPUTS, torch_out)}, os.path.join(a.out, "torch_outputs.safetensors"))
    stio.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in zip(OUTPUTS, ort_out)},
              os.path.join(a.out, "ort_outputs.safetensors"))
    print(json.dumps(dict(torch=torch.__version__, onnxruntime=ort.__version__, threads=a.threads,
                          config=cfg, torch_s=torch_s, ort_s=ort_s)))


if __name__ == "__main__":
    main()
