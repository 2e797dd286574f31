#!/usr/bin/env bash
# Installs what scenetok's commands and tests need, from the package registries only.
# Idempotent: each step checks first and does nothing when its result is already there.
#
#   .venv/                 Python venv with pyarrow and numpy (tests compare our parquet with pyarrow's
#                          view; `scenetok bench io` runs its pyarrow/NumPy baselines there)
#   .deps/onnxruntime/     libonnxruntime.so from the PyPI onnxruntime wheel (ort loads it at run time);
#                          the wheel is kept and installed into .venv (tests and `scenetok bench image`
#                          compare with Python onnxruntime)
#   Debian packages        python3-venv and gcc when missing; chromium (headless report rendering)
#   .venv/ rerun-sdk       the rerun viewer and CLI matching the rerun crate (tests read .rrd files back;
#                          `rerun out.rrd` views a recording), with analytics turned off
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
PYARROW_VERSION=26.0.1
NUMPY_VERSION=2.4.6

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Rust ----------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install the Rust toolchain (rustup) first; scenetok needs Rust 1.95+"
    exit 1
fi

# --- System packages (Debian) ----------------------------------------------------------------
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# Headless Chromium renders report.html in the tests and the main job (scenetok report --screenshot).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing Debian packages: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# --- Python venv for the test-side tools -----------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import pyarrow, numpy, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION' or numpy.__version__ != '$NUMPY_VERSION')" >/dev/null 2>&1; then
    say "installing pyarrow==$PYARROW_VERSION numpy==$NUMPY_VERSION into .venv"
    .venv/bin/pip install -q --disable-pip-version-check "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION"
fi

# --- ONNX Runtime shared library (from the PyPI wheel; no other download source) -----------------
ORT_DIR=.deps/onnxruntime
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$ORT_LIB" ]; then
    say "fetching libonnxruntime $ORT_VERSION from the PyPI onnxruntime wheel"
    mkdir -p "$ORT_DIR/wheel"
    .venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 "onnxruntime==$ORT_VERSION" -d "$ORT_DIR/wheel"
    .venv/bin/python - "$ORT_DIR" "$ORT_VERSION" <<'PY'
import glob, sys, zipfile, os
out, version = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(out, "wheel", "onnxruntime-*.whl"))[0]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z, open(os.path.join(out, f"libonnxruntime.so.{version}"), "wb") as f:
    f.write(z.read(name))
PY
    ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
fi
# --- Python onnxruntime (the same version as the library; image-encoder tests and bench) --------
if ! .venv/bin/python -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" >/dev/null 2>&1; then
    say "installing onnxruntime==$ORT_VERSION into .venv"
    # Reuse the wheel the library came from when it is still there (cp311 = .venv's Python).
    links=(); [ -d "$ORT_DIR/wheel" ] && links=(--find-links "$ORT_DIR/wheel")
    .venv/bin/pip install -q --disable-pip-version-check "${links[@]}" "onnxruntime==$ORT_VERSION"
fi
# --- rerun viewer / CLI, the same version as the rerun crate -------------------------------------
RERUN_VERSION=0.36.3
if ! .venv/bin/python -c "import rerun, sys; sys.exit(rerun.__version__ != '$RERUN_VERSION')" >/dev/null 2>&1; then
    say "installing rerun-sdk==$RERUN_VERSION into .venv"
    .venv/bin/pip install -q --disable-pip-version-check "rerun-sdk==$RERUN_VERSION"
fi
# The SDK and viewer would otherwise send usage data; this machine and CI have no use for it.
.venv/bin/rerun analytics disable >/dev/null 2>&1 || true

say "ready (rust $(rustc --version | cut -d' ' -f2), pyarrow $PYARROW_VERSION, numpy $NUMPY_VERSION, onnxruntime $ORT_VERSION, rerun $RERUN_VERSION)"
