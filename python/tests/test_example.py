"""The README's example, run as a user runs it: a fresh interpreter, no TensorFlow."""

import importlib.util
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluate.py"


def test_the_readme_example_evaluates_the_real_scenario_without_tensorflow(womd_sample):
    assert importlib.util.find_spec("tensorflow") is None
    out = subprocess.run([sys.executable, str(EXAMPLE), str(womd_sample)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        f"TYPE_{t}_{s}" for t in ("VEHICLE", "PEDESTRIAN", "CYCLIST") for s in (5, 9, 15)
    ]
    assert "minADE" in lines[0] and "mAP" in lines[0]


def test_the_readme_names_the_example():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme
