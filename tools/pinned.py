"""Exits 0 when every NAME==VERSION argument is installed at exactly that version, 1 otherwise:
the check each venv set-up script (tools/setup-train.sh, tools/ray/setup.sh,
tools/python/setup.sh) runs with its venv's Python before deciding to install."""
import sys
from importlib.metadata import PackageNotFoundError, version

for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
