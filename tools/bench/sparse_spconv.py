"""spconv (CPU build) baseline for `scenetok bench sparse`: the same MinkUNet (batch norm
folded, same weights) on the same voxels. Prints {"ms": per-frame ms}; writes the logits
(f32, input voxel order) to INPUT.out for the correctness comparison.

    python tools/bench/sparse_spconv.py CASE.safetensors REPS
"""
import json
import os
import sys
import time

import torch
import spconv.pytorch as spconv
from safetensors.torch import load_file


def to_spconv(w, kernel):
    """scenetok [K, cin, cout] (odd: x fastest; even: z fastest) -> the module's layout."""
    K, cin, cout = w.shape
    kx, ky, kz = kernel
    if all(k % 2 == 1 for k in kernel):
        w5 = w.reshape(kz, ky, kx, cin, cout).permute(2, 1, 0, 3, 4)  # -> kx,ky,kz,cin,cout
    else:
        w5 = w.reshape(kx, ky, kz, cin, cout)
    return w5


def load(mod, t, name, kernel):
    w5 = to_spconv(t[name + ".weight"], kernel)
    shape = tuple(mod.weight.shape)
    if shape == tuple(w5.shape):  # RSCK
        mod.weight.data.copy_(w5)
    else:  # KRSC: cout, kx, ky, kz, cin
        mod.weight.data.copy_(w5.permute(4, 0, 1, 2, 3))
    mod.bias.data.copy_(t[name + ".bias"])


def main():
    path, reps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(os.cpu_count() or 1)
    t = load_file(path)
    coords, feats, rng = t["coords"], t["feats"], [int(v) for v in t["range"]]
    # Channel widths from the weights.
    def dims(name):
        w = t[name + ".weight"]
        return w.shape[1], w.shape[2]

    layers = {}

    def subm(name, k, key):
        cin, cout = dims(name)
        m = spconv.SubMConv3d(cin, cout, k, bias=True, indice_key=key)
        load(m, t, name, (k, k, k))
        layers[name] = m
        return m

    def down(name, key):
        cin, cout = dims(name)
        m = spconv.SparseConv3d(cin, cout, 2, stride=2, bias=True, indice_key=key)
        load(m, t, name, (2, 2, 2))
        layers[name] = m
        return m

    def up(name, key):
        cin, cout = dims(name)
        m = spconv.SparseInverseConv3d(cin, cout, 2, bias=True, indice_key=key)
        load(m, t, name, (2, 2, 2))
        layers[name] = m
        return m

    def relu(x):
        return x.replace_feature(torch.relu(x.features))

    def res(x, name, lvl):
        h = relu(subm(name + ".c1", 3, f"s{lvl}")(x)) if name + ".c1" not in layers else relu(layers[name + ".c1"](x))
        h = layers[name + ".c2"](h) if name + ".c2" in layers else subm(name + ".c2", 3, f"s{lvl}")(h)
        if name + ".proj.weight" in t:
            p = layers.get(name + ".proj") or subm(name + ".proj", 1, f"p{lvl}")
            s = p(x)
        else:
            s = x
        return h.replace_feature(torch.relu(h.features + s.features))

    def forward():
        x = spconv.SparseConvTensor(feats, coords.int(), rng, int(coords[:, 0].max()) + 1)
        h = relu((layers.get("stem.0") or subm("stem.0", 3, "s0"))(x))
        h = relu((layers.get("stem.1") or subm("stem.1", 3, "s0"))(h))
        skips = [h]
        for i in range(4):
            h = relu((layers.get(f"enc.{i}.down") or down(f"enc.{i}.down", f"d{i}"))(h))
            h = res(h, f"enc.{i}.res.0", i + 1)
            h = res(h, f"enc.{i}.res.1", i + 1)
            skips.append(h)
        skips.pop()
        for i in range(4):
            lvl = 3 - i
            h = relu((layers.get(f"dec.{i}.up") or up(f"dec.{i}.up", f"d{lvl}"))(h))
            s = skips.pop()
            h = h.replace_feature(torch.cat([h.features, s.features], 1))
            h = res(h, f"dec.{i}.res.0", lvl)
            h = res(h, f"dec.{i}.res.1", lvl)
        return h.features @ t["head.weight"] + t["head.bias"]

    with torch.no_grad():
        out = forward()  # warm-up (and builds the modules)
        t0 = time.perf_counter()
        for _ in range(reps):
            out = forward()
        ms = (time.perf_counter() - t0) * 1e3 / reps
    out.contiguous().numpy().astype("float32").tofile(path + ".out")
    print(json.dumps({"ms": ms, "voxels": len(coords), "spconv": spconv.__version__ if hasattr(spconv, "__version__") else "?"}))


if __name__ == "__main__":
    main()
