#!/usr/bin/env bash
# The training / baseline venv (never needed by the tests): .venv-train/ with torch (CPU use;
# PyPI's wheel brings CUDA libraries, ~5.5 GB), safetensors, numpy, and spconv's CPU build
# (the `scenetok bench sparse` baseline). Idempotent.
#
#   tools/setup-train.sh
#   .venv-train/bin/python tools/train/train_lidar_seg.py --help
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup-train] %s\n' "$*" >&2; }
if [ ! -x .venv-train/bin/python ]; then
    say "creating .venv-train"
    python3 -m venv .venv-train
fi
py=.venv-train/bin/python
if ! "$py" -c 'import torch, safetensors, numpy' >/dev/null 2>&1; then
    say "installing torch, safetensors, numpy"
    "$py" -m pip install --quiet torch safetensors numpy
fi
if ! "$py" -c 'import spconv.pytorch' >/dev/null 2>&1; then
    say "installing spconv (CPU build)"
    "$py" -m pip install --quiet spconv || say "spconv did not install: scenetok bench sparse reports its baseline as blocked"
fi
say "ready: $py"
