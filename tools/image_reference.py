#!/usr/bin/env python3
"""NumPy + onnxruntime reference for scenetok's image encoder (no torch needed).

Used by the integration tests and by `scenetok bench image`.

    image_reference.py check DIR     compare what the Rust side wrote into DIR
    image_reference.py serve DIR     time onnxruntime on the batch the Rust side wrote: one
                                     run per `run` line on stdin, so that `scenetok bench
                                     image` interleaves Python's runs with its own

DIR/manifest.json (written by the Rust side) names:
  config            the model config (.toml)
  input_size        (optional) replaces the config's [input_size] (a test's other scale)
  images            [{"file", "width", "height"}]: decoded RGB, row-major, 3 bytes a pixel
  input             {"file", "shape"}: the Rust-preprocessed batch (float32, little-endian)
  outputs           [{"name", "file", "shape"}]: the Rust model outputs (float32)
  points (optional) {"map", "n", "image", "u", "v", "features"}: per-point image index
                    (int32, -1 = unseen), pixel u and v (float32) and sampled features
  threads           (serve) intra-op threads
  binding           (serve) "bound" (default): I/O bound once, as scenetok binds it — the input
                    bound in place (an OrtValue over the batch's array, no copy a run) and an
                    OrtValue pre-allocated for every output, bound once for the batch's shape,
                    each run `run_with_iobinding` (the outputs stay in those OrtValues);
                    "unbound": plain `InferenceSession.run(names, feed)`, which allocates the
                    outputs and returns them as new NumPy arrays every run

`check` prints one JSON object: max |difference| of the preprocessing (NumPy vs Rust,
on the same decoded pixels), of every output (onnxruntime on the Rust input vs Rust) and of
the per-point features (bilinear sampling, in NumPy, of onnxruntime's map at the Rust
pixel positions vs Rust). Patch-token outputs are compared as maps [N, C, gh, gw] (prefix
tokens dropped, patches row-major), as scenetok reads them.
"""

import json
import os
import sys
import time
import tomllib

import numpy as np


def load_config(path):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    model = cfg["model"]
    file = model["file"]
    if not os.path.isabs(file):
        file = os.path.join(os.path.dirname(path), file)
    return cfg, file


def resized_size(cfg, w, h):
    size = cfg["input_size"]
    if size["policy"] == "scale":
        r = lambda v: max(1, int(np.floor(v * size["scale"] + 0.5)))
        return r(w), r(h)
    return size["width"], size["height"]


def batch_size(cfg, sizes):
    size = cfg["input_size"]
    if size["policy"] == "scale":
        m = size["multiple"]
        up = lambda v: -(-v // m) * m
        return up(max(s[0] for s in sizes)), up(max(s[1] for s in sizes))
    return size["width"], size["height"]


def taps(n_in, n_out):
    """Bilinear, half-pixel centres, clamped (OpenCV INTER_LINEAR / align_corners=False)."""
    d = np.arange(n_out, dtype=np.float64)
    s = np.clip((d + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (s - i0).astype(np.float32)


def preprocess(cfg, images):
    """images: list of uint8 [H, W, 3] RGB → (batch, [(content_w, content_h)])."""
    m = cfg["model"]
    sizes = [resized_size(cfg, im.shape[1], im.shape[0]) for im in images]
    w, h = batch_size(cfg, sizes)
    order = [0, 1, 2] if m["channel_order"] == "rgb" else [2, 1, 0]
    mean = np.array(m["mean"], dtype=np.float32)
    std = np.array(m["std"], dtype=np.float32)
    out = np.zeros((len(images), h, w, 3), dtype=np.float32)
    for n, (im, (cw, ch)) in enumerate(zip(images, sizes)):
        x0, x1, wx = taps(im.shape[1], cw)
        y0, y1, wy = taps(im.shape[0], ch)
        px = im[:, :, order].astype(np.float32)
        wx = wx[None, :, None]
        wy = wy[:, None, None]
        r0, r1 = px[y0], px[y1]
        a = (np.float32(1) - wx) * r0[:, x0] + wx * r0[:, x1]
        b = (np.float32(1) - wx) * r1[:, x0] + wx * r1[:, x1]
        v = (np.float32(1) - wy) * a + wy * b
        out[n, :ch, :cw] = (v - mean) / std
    if m["layout"] == "nchw":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out, sizes


def session(model_file, threads, stop_spinning=False):
    """onnxruntime's defaults (all graph optimisations, sequential, spinning threads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if stop_spinning:
        # The interleaved benchmark: threads still spinning after this run would steal the
        # cores from the scenetok run that follows (scenetok's session does the same).
        so.add_session_config_entry("session.force_spinning_stop", "1")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(model_file, so, providers=["CPUExecutionProvider"])


def sample(fmap, stride, content, scale, u, v):
    """Bilinear sample of one image's [C, H, W] map at camera pixels (u, v) (see features.rs)."""
    cw = min(-(-content[0] // stride), fmap.shape[2])
    ch = min(-(-content[1] // stride), fmap.shape[1])
    x = np.clip(u.astype(np.float64) * scale[0] / stride - 0.5, 0, cw - 1)
    y = np.clip(v.astype(np.float64) * scale[1] / stride - 0.5, 0, ch - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, cw - 1)
    y1 = np.minimum(y0 + 1, ch - 1)
    wx = (x - x0).astype(np.float32)[:, None]
    wy = (y - y0).astype(np.float32)[:, None]
    f = fmap.transpose(1, 2, 0)
    top = (1 - wx) * f[y0, x0] + wx * f[y0, x1]
    bottom = (1 - wx) * f[y1, x0] + wx * f[y1, x1]
    return (1 - wy) * top + wy * bottom


def as_map(spec, out, in_h, in_w):
    """A patch-token output [N, prefix + gh·gw, C] as the map [N, C, gh, gw] scenetok reads
    (prefix tokens dropped, patches row-major); other outputs unchanged."""
    if spec["kind"] != "patch_tokens":
        return out
    p = spec["patch"]
    gh, gw = in_h // p, in_w // p
    grid = out[:, spec.get("prefix_tokens", 0) :]
    if grid.shape[1] != gh * gw:
        return grid  # a shape the comparison reports
    return np.ascontiguousarray(grid.reshape(out.shape[0], gh, gw, out.shape[2]).transpose(0, 3, 1, 2))


def read(d, spec, dtype=np.float32):
    return np.fromfile(os.path.join(d, spec["file"]), dtype=dtype).reshape(spec["shape"])


def check(d):
    man = json.load(open(os.path.join(d, "manifest.json")))
    cfg, model_file = load_config(man["config"])
    cfg["input_size"] = man.get("input_size", cfg["input_size"])
    images = [
        np.fromfile(os.path.join(d, im["file"]), dtype=np.uint8).reshape(im["height"], im["width"], 3)
        for im in man["images"]
    ]
    ref_input, sizes = preprocess(cfg, images)
    rust_input = read(d, man["input"])
    res = {"input_shape": list(ref_input.shape)}
    if ref_input.shape != rust_input.shape:
        res["error"] = f"input shape {rust_input.shape} vs reference {ref_input.shape}"
        print(json.dumps(res))
        return 1
    res["preprocess_max_abs"] = float(np.abs(ref_input - rust_input).max())
    sess = session(model_file, man.get("threads", 0))
    names = [o["name"] for o in man["outputs"]]
    got = dict(zip(names, sess.run(names, {cfg["model"]["input"]: rust_input})))
    in_h, in_w = rust_input.shape[1:3] if cfg["model"]["layout"] == "nhwc" else rust_input.shape[2:4]
    specs = {o["name"]: o for o in cfg["outputs"]}
    got = {name: as_map(specs[name], out, in_h, in_w) for name, out in got.items()}
    res["outputs"] = {}
    for o in man["outputs"]:
        r = read(d, o)
        p = got[o["name"]]
        res["outputs"][o["name"]] = (
            float(np.abs(r - p).max()) if r.shape == p.shape else f"shape {r.shape} vs {p.shape}"
        )
    pts = man.get("points")
    if pts:
        spec = specs[pts["map"]]
        stride = spec.get("stride") or spec.get("patch")
        n = pts["n"]
        img = np.fromfile(os.path.join(d, pts["image"]), dtype=np.int32)
        u = np.fromfile(os.path.join(d, pts["u"]), dtype=np.float32)
        v = np.fromfile(os.path.join(d, pts["v"]), dtype=np.float32)
        feats = np.fromfile(os.path.join(d, pts["features"]), dtype=np.float32).reshape(n, -1)
        ref = np.zeros_like(feats)
        fmap = got[pts["map"]]
        for k, im in enumerate(images):
            sel = img == k
            scale = (sizes[k][0] / im.shape[1], sizes[k][1] / im.shape[0])
            ref[sel] = sample(fmap[k], stride, sizes[k], scale, u[sel], v[sel])
        res["points_seen"] = int((img >= 0).sum())
        res["points_max_abs"] = float(np.abs(ref - feats).max()) if n else 0.0
        res["points_unseen_nonzero"] = int(np.abs(feats[img < 0]).sum() > 0)
    print(json.dumps(res))
    return 0


def bound_run(sess, input_name, x, names, shapes):
    """The I/O binding scenetok uses: the input bound in place, outputs pre-allocated once for
    this batch shape; returns the function that runs it (nothing allocated per run)."""
    import onnxruntime as ort

    io = sess.io_binding()
    x_ort = ort.OrtValue.ortvalue_from_numpy(x, "cpu", 0)  # over x's memory: no copy
    io.bind_ortvalue_input(input_name, x_ort)
    outs = [ort.OrtValue.ortvalue_from_shape_and_type(shapes[n], np.float32, "cpu", 0) for n in names]
    for n, o in zip(names, outs):
        io.bind_ortvalue_output(n, o)

    def run():
        sess.run_with_iobinding(io)

    run.keep = (x, x_ort, outs)  # alive as long as the binding
    return run


def serve(d):
    """Warm up, print `ready`, then answer each `run` line with {"seconds": s} of one run."""
    man = json.load(open(os.path.join(d, "manifest.json")))
    cfg, model_file = load_config(man["config"])
    x = read(d, man["input"])
    sess = session(model_file, man.get("threads", 0), stop_spinning=True)
    names = [o["name"] for o in man["outputs"]]
    input_name = cfg["model"]["input"]
    feed = {input_name: x}
    # The warm-up run (arena, kernels); it also gives the output shapes to pre-allocate.
    first = sess.run(names, feed)
    binding = man.get("binding", "bound")
    if binding == "bound":
        run = bound_run(sess, input_name, x, names, {n: o.shape for n, o in zip(names, first)})
        run()  # the binding's own warm-up run
    elif binding == "unbound":
        def run():
            sess.run(names, feed)
    else:
        print(f"unknown binding {binding!r} (bound or unbound)", file=sys.stderr)
        return 2
    del first
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t = time.perf_counter()
        run()
        print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
    return 0


if __name__ == "__main__":
    modes = {"check": check, "serve": serve}
    if len(sys.argv) != 3 or sys.argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(modes[sys.argv[1]](sys.argv[2]))
