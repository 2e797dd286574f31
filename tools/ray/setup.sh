#!/usr/bin/env bash
# Creates .venv-ray/ (git-ignored): Ray for tools/ray/scenetok_ray.py, the scale-out driver.
# Neither the tests nor the `scenetok` command need it. Idempotent: does nothing when the
# pinned versions are already there. On a cluster, every node needs the same Ray version.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[setup-ray] %s\n' "$*" >&2; }

PKGS=(
    "ray==2.60.0"
)

if [ ! -x .venv-ray/bin/python ]; then
    say "creating .venv-ray"
    python3 -m venv .venv-ray
fi
if ! .venv-ray/bin/python tools/pinned.py "${PKGS[@]}" >/dev/null 2>&1; then
    say "installing ${PKGS[*]}"
    .venv-ray/bin/python -m pip install --quiet --upgrade pip
    .venv-ray/bin/python -m pip install --quiet "${PKGS[@]}"
fi
say "ready: .venv-ray/bin/python ($(.venv-ray/bin/python -c 'import ray; print("ray", ray.__version__)'))"
