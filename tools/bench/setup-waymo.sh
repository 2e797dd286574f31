#!/usr/bin/env bash
# Creates .venv-waymo/ (git-ignored): Waymo's own Python package, the baseline a user would
# pick for range image → points, for `scenetok bench io` only (tools/bench/io_waymo.py runs
# upstream's v2 `lidar_utils.convert_range_image_to_point_cloud` on the same dataset). Tests
# and every other command never need it; `scenetok bench io` uses it when this venv exists
# (or with --waymo-python) and says "not installed: run tools/bench/setup-waymo.sh" otherwise.
#
# TensorFlow 2.12 and its dependencies from PyPI, about 2.8 GB; Python 3.11 (the newest the
# package has wheels for). Idempotent: does nothing when the pinned package already imports.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[setup-waymo] %s\n' "$*" >&2; }

WAYMO_PKG="waymo-open-dataset-tf-2-12-0==1.6.7"
VENV=.venv-waymo

# Python 3.11: the package's wheels are for it (and 3.10).
PY=""
for cand in python3.11 /usr/bin/python3.11; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; then
        PY=$cand
        break
    fi
done
if [ -z "$PY" ]; then
    say "Python 3.11 with venv not found: $WAYMO_PKG has wheels for Python 3.10 and 3.11 only"
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi

check() {
    "$VENV/bin/python" - "$WAYMO_PKG" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
name, want = sys.argv[1].split("==")
if version(name) != want:
    sys.exit(1)
from waymo_open_dataset.v2.perception.utils import lidar_utils  # noqa: F401
PY
}

if ! check; then
    say "installing $WAYMO_PKG (TensorFlow 2.12, about 2.8 GB) into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade "pip<25"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$WAYMO_PKG"
fi
if ! check; then
    say "$WAYMO_PKG installed but does not import; the error:"
    "$VENV/bin/python" -c 'from waymo_open_dataset.v2.perception.utils import lidar_utils' || true
    exit 1
fi
say "ready: $VENV/bin/python ($("$VENV/bin/python" -c 'import tensorflow as tf; print("TensorFlow", tf.__version__)' 2>/dev/null))"
