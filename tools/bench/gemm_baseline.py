"""NumPy's BLAS (the OpenBLAS its wheel bundles) for `scenetok bench gemm`, run by it in the
same invocation on the same shapes and the same data.

    gemm_baseline.py --threads T --reps R SHAPES

SHAPES is `m,k,n;m,k,n;...`. For each shape, A[m×k] and B[k×n] are float32 with the values
scenetok's side uses (A[i] = ((i·7919) mod 97)·0.01, B[i] = ((i·104729) mod 89)·0.01, the
products rounded to float32), C = A·B is computed R times into a preallocated C (`np.matmul`
with `out=`), one timer around each product; the checksum (sum of C in float64) is taken after
the timers. The caller starts this script with OPENBLAS_NUM_THREADS = T and without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on these machines, they slow OpenBLAS down).

Prints one JSON object: the BLAS NumPy reports, the threads, and per shape the best seconds
and the checksum.
"""
import argparse
import json
import time

import numpy as np


def operand(rows, cols, mult, modulus):
    i = np.arange(rows * cols, dtype=np.int64)
    return (((i * mult) % modulus).astype(np.float32) * np.float32(0.01)).reshape(rows, cols)


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        return cfg["Build Dependencies"]["blas"]["name"] + " " + cfg["Build Dependencies"]["blas"].get("version", "")
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("shapes")
    args = ap.parse_args()
    results = []
    for shape in args.shapes.split(";"):
        m, k, n = (int(x) for x in shape.split(","))
        a, b = operand(m, k, 7919, 97), operand(k, n, 104729, 89)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)  # warm-up: threads started, pages touched
        best = float("inf")
        for _ in range(max(1, args.reps)):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
        results.append({"m": m, "k": k, "n": n, "seconds": best, "checksum": float(c.sum(dtype=np.float64))})
    print(json.dumps({"blas": blas_name(), "threads": args.threads, "numpy": np.__version__, "shapes": results}))


if __name__ == "__main__":
    main()
