"""spconv (CPU build): the baseline and second correctness oracle of `scenetok bench sparse`.

Bench mode: the same MinkUNet (batch norm folded, same weights) on the same voxels as
scenetok. Times it with all CPU threads and with one thread, and compares each run's logits
with scenetok's (`ours.logits` in the case): prints one JSON object {"voxels", "spconv",
"runs": [{"threads", "ms", "max_abs", "max_rel", "argmax_agree", "agree"}, ...]}.

    python tools/bench/sparse_spconv.py CASE.safetensors REPS

Check mode: one conv of each kind MinkUNet uses (submanifold k3, submanifold 1x1, strided
k2 s2, submanifold k3 on the coarse level, transposed k2), each run by spconv on scenetok's own input of that
layer; compares the output coordinate sets (spconv's output rule for the strided conv) and
the features matched by coordinate. Prints one JSON object per layer and exits non-zero
when any layer disagrees.

    python tools/bench/sparse_spconv.py --check LAYERS.safetensors

Both case files are written by `scenetok bench sparse --keep-cases DIR`.

Conventions (checked against torch's dense conv3d / conv_transpose3d): scenetok's weights
are [K, cin, cout] with K in scenetok's kernel-offset order (odd kernels: x fastest; even
kernels: z fastest), coordinates (b, x, y, z). spconv 2.x stores KRSC = [cout, kx, ky, kz,
cin] for the axes in the order of the indices, and like scenetok computes a
cross-correlation (out[o] = sum_k in[o*s + k - p] W[k]); its inverse conv reuses the
strided conv's pairs with the same kernel index, as scenetok's transposed map does. Two
spconv 2.3.8 quirks are handled here: its 1x1 submanifold conv multiplies by the weight's
memory read as [cin, cout] (not its declared KRSC shape), and its CPU gather/scatter give
wrong, run-to-run different sums with more than one torch thread (spconv issue #679).
"""
import importlib.metadata
import json
import os
import sys
import time

import numpy as np
import torch
import spconv.pytorch as spconv
from spconv.pytorch.conv import FILTER_HWIO
from safetensors.torch import load_file

# Relative tolerance (max |diff| / max |value|) for "agrees" in f32.
TOL = 1e-3


def to_spconv(w, kernel, shape):
    """scenetok [K, cin, cout] -> spconv's weight of `shape` (KRSC, or RSKC in old builds)."""
    K, cin, cout = w.shape
    kx, ky, kz = kernel
    if all(k % 2 == 1 for k in kernel):
        w5 = w.reshape(kz, ky, kx, cin, cout).permute(2, 1, 0, 3, 4)  # -> kx,ky,kz,cin,cout
    else:
        w5 = w.reshape(kx, ky, kz, cin, cout)
    if tuple(shape) == (cout, kx, ky, kz, cin):  # KRSC (spconv 2.x default)
        return w5.permute(4, 0, 1, 2, 3).contiguous()
    if tuple(shape) == (kx, ky, kz, cin, cout):  # RSCK
        return w5.contiguous()
    raise SystemExit(f"unexpected spconv weight shape {tuple(shape)} for kernel {kernel}, {cin}->{cout}")


def load(mod, t, name, kernel):
    w = t[name + ".weight"]
    if getattr(mod, "conv1x1", False) and not FILTER_HWIO:
        # spconv's 1x1 path computes features @ weight.view(cin, cout), whatever the
        # declared KRSC shape [cout, 1, 1, 1, cin]: its memory must hold [cin, cout].
        mod.weight.data.view(w.shape[1], w.shape[2]).copy_(w[0])
    else:
        mod.weight.data.copy_(to_spconv(w, kernel, mod.weight.shape))
    mod.bias.data.copy_(t[name + ".bias"])


def keys(coords, dims):
    """Ravelled (b, x, y, z) keys, one int64 per row."""
    c = coords.long().numpy()
    return ((c[:, 0] * dims[0] + c[:, 1]) * dims[1] + c[:, 2]) * dims[2] + c[:, 3]


def match(ours_coords, theirs_coords):
    """Rows of `theirs` for each row of `ours` (or None when the coordinate sets differ)."""
    both = torch.cat([ours_coords, theirs_coords]).long()
    dims = (both[:, 1:].max(0).values + 1).tolist()
    a, b = keys(ours_coords, dims), keys(theirs_coords, dims)
    if len(a) != len(b) or len(np.unique(b)) != len(b):
        return None
    order = np.argsort(b)
    pos = np.searchsorted(b[order], a)
    pos = np.clip(pos, 0, len(b) - 1)
    if not np.array_equal(b[order][pos], a):
        return None
    return torch.from_numpy(order[pos])


def compare(ours, theirs):
    scale = max(float(ours.abs().max()), 1e-6)
    d = float((ours - theirs).abs().max()) if len(ours) else 0.0
    return d, d / scale


def check(path):
    t = load_file(path)
    coords, feats, rng = t["coords"].int(), t["feats"], [int(v) for v in t["range"]]
    batch = int(coords[:, 0].max()) + 1
    ok = True

    def report(name, ours_coords, ours_out, y, **extra):
        nonlocal ok
        rows = match(ours_coords, y.indices)
        same_set = rows is not None
        res = {"layer": name, "outputs": len(ours_coords), "spconv_outputs": len(y.indices), "same_coords": same_set}
        if same_set:
            res["max_abs"], res["max_rel"] = compare(ours_out, y.features[rows])
            res["agree"] = res["max_rel"] < TOL
        else:
            res["agree"] = False
        res.update(extra)
        ok &= res["agree"]
        print(json.dumps(res))

    def conv(cls, name, kernel, **kw):
        w = t[name + ".weight"]
        m = cls(w.shape[1], w.shape[2], kernel, bias=True, **kw)
        load(m, t, name, (kernel,) * 3)
        return m

    # One thread: spconv's multi-threaded CPU gather/scatter is wrong (see `bench`).
    torch.set_num_threads(1)
    with torch.no_grad():
        x = spconv.SparseConvTensor(feats, coords, rng, batch)
        y = conv(spconv.SubMConv3d, "subm", 3, indice_key="s1")(x)
        report("subm k3", coords, t["subm.out"], y)
        h = spconv.SparseConvTensor(t["subm.out"], coords, rng, batch)
        y = conv(spconv.SubMConv3d, "proj", 1, indice_key="p1")(h)
        report("subm 1x1", coords, t["proj.out"], y)
        # The strided conv on scenetok's 1x1 output (same coordinates, same order).
        h = spconv.SparseConvTensor(t["proj.out"], coords, rng, batch)
        down = conv(spconv.SparseConv3d, "down", 2, stride=2, indice_key="d1")(h)
        report("strided k2 s2", t["down.coords"], t["down.out"], down)
        rows = match(t["down.coords"].int(), down.indices)
        if rows is None:
            print(json.dumps({"layer": "subm k3 (coarse), transposed k2", "skipped": "coarse coordinates differ"}))
            return 1
        # Coarse level: scenetok's features put into spconv's row order (keeps the pairs
        # of the strided conv for the inverse conv).
        inv = torch.empty_like(rows)
        inv[rows] = torch.arange(len(rows))
        coarse = down.replace_feature(t["down.out"][inv])
        y = conv(spconv.SubMConv3d, "subm2", 3, indice_key="s2")(coarse)
        report("subm k3 (coarse)", t["subm2.coords"], t["subm2.out"], y)
        coarse = down.replace_feature(t["subm2.out"][inv])
        y = conv(spconv.SparseInverseConv3d, "up", 2, indice_key="d1")(coarse)
        report("transposed k2", t["up.coords"], t["up.out"], y)
    return 0 if ok else 1


def bench(path, reps):
    t = load_file(path)
    coords, feats, rng = t["coords"].int(), t["feats"], [int(v) for v in t["range"]]
    batch = int(coords[:, 0].max()) + 1

    def build(cls, name, kernel, **kw):
        w = t[name + ".weight"]
        m = cls(w.shape[1], w.shape[2], kernel, bias=True, **kw)
        load(m, t, name, (kernel,) * 3)
        return m

    # Modules, built once. Submanifold convs of one level share their pairs (indice_key);
    # the inverse conv of a level reuses the pairs of the strided conv that left it.
    L = {}
    for n in ("stem.0", "stem.1"):
        L[n] = build(spconv.SubMConv3d, n, 3, indice_key="s0")

    def block(name, lvl):
        L[name + ".c1"] = build(spconv.SubMConv3d, name + ".c1", 3, indice_key=f"s{lvl}")
        L[name + ".c2"] = build(spconv.SubMConv3d, name + ".c2", 3, indice_key=f"s{lvl}")
        if name + ".proj.weight" in t:
            L[name + ".proj"] = build(spconv.SubMConv3d, name + ".proj", 1, indice_key=f"p{lvl}")

    for i in range(4):
        L[f"enc.{i}.down"] = build(spconv.SparseConv3d, f"enc.{i}.down", 2, stride=2, indice_key=f"d{i}")
        for j in range(2):
            block(f"enc.{i}.res.{j}", i + 1)
    for i in range(4):
        L[f"dec.{i}.up"] = build(spconv.SparseInverseConv3d, f"dec.{i}.up", 2, indice_key=f"d{3 - i}")
        for j in range(2):
            block(f"dec.{i}.res.{j}", 3 - i)

    def relu(x):
        return x.replace_feature(torch.relu(x.features))

    def res(x, name):
        h = relu(L[name + ".c1"](x))
        h = L[name + ".c2"](h)
        s = L[name + ".proj"](x).features if name + ".proj" in L else x.features
        return h.replace_feature(torch.relu(h.features + s))

    def forward():
        x = spconv.SparseConvTensor(feats, coords, rng, batch)
        h = relu(L["stem.1"](relu(L["stem.0"](x))))
        skips = [h]
        for i in range(4):
            h = relu(L[f"enc.{i}.down"](h))
            h = res(res(h, f"enc.{i}.res.0"), f"enc.{i}.res.1")
            skips.append(h)
        skips.pop()
        for i in range(4):
            h = relu(L[f"dec.{i}.up"](h))
            h = h.replace_feature(torch.cat([h.features, skips.pop().features], 1))
            h = res(res(h, f"dec.{i}.res.0"), f"dec.{i}.res.1")
        return h

    ours = t["ours.logits"]

    def timed(threads, warm):
        torch.set_num_threads(threads)
        with torch.no_grad():
            if warm:
                forward()
            t0 = time.perf_counter()
            for _ in range(reps):
                h = forward()
            ms = (time.perf_counter() - t0) * 1e3 / reps
            logits = h.features @ t["head.weight"] + t["head.bias"]
        r = {"threads": threads, "ms": ms}
        rows = match(coords, h.indices)
        if rows is None:
            r.update(agree=False, error="spconv's output coordinates differ from the input voxels")
        else:
            theirs = logits[rows]
            r["max_abs"], r["max_rel"] = compare(ours, theirs)
            r["argmax_agree"] = float((ours.argmax(1) == theirs.argmax(1)).float().mean())
            r["agree"] = r["max_rel"] < TOL
        return r

    # spconv 2.3.8's CPU gather/scatter give wrong, run-to-run different sums with more than
    # one torch thread (its issue #679): the single-thread run is the valid baseline; the
    # multi-thread run is timed and checked too, and reported as what it is.
    # The single-thread run goes first and carries the warm-up.
    threads = os.cpu_count() or 1
    runs = [timed(1, True)] + ([timed(threads, False)] if threads > 1 else [])
    res = {"voxels": len(coords), "spconv": importlib.metadata.version("spconv"), "runs": runs}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 3:
        sys.exit(bench(sys.argv[1], int(sys.argv[2])))
    sys.exit(__doc__)
