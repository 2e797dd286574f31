#!/usr/bin/env bash
# Creates .venv-py/ (git-ignored): the newest CPython on this machine (Debian's 3.11, or a
# newer one from pyenv), maturin and what the Python package's tests import. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[python] %s\n' "$*" >&2; }

VENV=.venv-py
# Pinned: the versions the README's numbers were measured with.
PACKAGES=(maturin==1.16.0 numpy==2.5.5 pyarrow==26.0.1 pytest==9.2.0 safetensors==0.8.0)

newest_python() {
    local best="" best_v=0 v
    for cand in python3.14 python3.13 python3.12 python3.11 python3 \
        "$HOME"/.pyenv/versions/3.1[1-9]*/bin/python3 /usr/bin/python3; do
        command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
        v=$("$cand" -c 'import sys, venv, ensurepip; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null) || continue
        if [ "$v" -gt "$best_v" ]; then best=$cand best_v=$v; fi
    done
    [ -n "$best" ] || { say "no Python 3 with venv found (apt-get install python3-venv)"; exit 1; }
    echo "$best"
}

if [ ! -x "$VENV/bin/python" ]; then
    PY=$(newest_python)
    say "creating $VENV with $PY ($("$PY" --version))"
    "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" tools/pinned.py "${PACKAGES[@]}" >/dev/null 2>&1; then
    say "installing ${PACKAGES[*]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
fi
