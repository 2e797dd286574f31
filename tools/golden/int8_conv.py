"""Golden tensors for the INT8 sparse conv (docs/quantization.md), in NumPy: the same integer
arithmetic written out directly (no zero-point compensation trick, no packing), so the Rust
kernels (`vpdpbusd` and portable) must match it bit for bit.

    .venv/bin/python tools/golden/int8_conv.py --out tests/golden/int8_conv.safetensors

Two cases: a ReLU'd input (zero point 0) with SmoothQuant factors and a ReLU epilogue, and a
signed input (zero point 128) without activation. The quantization parameters (smoothing,
scale, zero point) are inputs to the test, not recomputed there; everything after them is
IEEE float32 basic operations and integers, which Rust and NumPy round identically.
Deterministic: the same file every run.
"""
import argparse
import json
import struct

import numpy as np

f32 = np.float32


def case(rng, n_in, n_out, volume, cin, cout, signed):
    x = rng.standard_normal((n_in, cin)).astype(f32) * f32(2.0)
    # Channel 0 carries an outlier range: what smoothing is for.
    x[:, 0] *= f32(20.0)
    if not signed:
        x = np.maximum(x, f32(0.0))
    w = (rng.standard_normal((volume * cin, cout)) * 0.1).astype(f32)
    bias = (rng.standard_normal(cout) * 0.5).astype(f32)
    present = rng.random((n_out, volume)) < 0.4
    kmap = np.where(present, rng.integers(0, n_in, (n_out, volume)), -1).astype(np.int32)

    absmax = np.abs(x).max(axis=0).astype(f32)
    if signed:
        smooth = np.ones(cin, dtype=f32)
        zero_point, levels = 128, f32(127.0)
    else:
        wmax = np.abs(w.reshape(volume, cin, cout)).max(axis=(0, 2))
        smooth = (np.sqrt(absmax.astype(np.float64)) / np.sqrt(wmax.astype(np.float64))).astype(f32)
        zero_point, levels = 0, f32(255.0)
    scale = f32((absmax / smooth).max() / levels)

    # Weights: smoothed, per-output-channel scale, round half to even, clamp ±127.
    ws = w.reshape(volume, cin, cout) * smooth[None, :, None]
    sw = np.abs(ws).max(axis=(0, 1)) / f32(127.0)
    wq = np.clip(np.rint(ws / sw[None, None, :]), -127, 127).astype(np.int64)
    # Activations: x · (1 / (scale · s_j)), rint, + zero point, clamp to u8.
    inv = f32(1.0) / (scale * smooth)
    xq = np.clip(np.rint(x * inv[None, :]) + f32(zero_point), 0, 255).astype(np.int64) - zero_point
    acc = np.zeros((n_out, cout), dtype=np.int64)
    for k in range(volume):
        rows = kmap[:, k] >= 0
        acc[rows] += xq[kmap[rows, k]] @ wq[k]
    assert np.abs(acc).max() < 2**31
    out_scale = scale * sw
    y = acc.astype(np.int32).astype(f32) * out_scale[None, :] + bias[None, :]
    if not signed:
        y = np.maximum(y, f32(0.0))
    assert y.dtype == f32
    return {
        "x": x,
        "w": w,
        "bias": bias,
        "map": kmap,
        "smooth": smooth,
        "scale": np.array([scale], dtype=f32),
        "zero_point": np.array([zero_point], dtype=np.int32),
        "acc": acc.astype(np.int32),
        "y": y.astype(f32),
    }


def save(tensors, path):
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(20261203)
    tensors = {}
    for name, (n_in, n_out, volume, cin, cout, signed) in {
        "relu": (300, 257, 27, 24, 40, False),
        "signed": (200, 131, 8, 4, 16, True),
    }.items():
        for k, v in case(rng, n_in, n_out, volume, cin, cout, signed).items():
            tensors[f"{name}.{k}"] = v
    save(tensors, args.out)


if __name__ == "__main__":
    main()
