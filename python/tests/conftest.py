"""Fixtures of the Python package's tests: the `scenetok` command (to compare against), the
built-in v2 fixture, a small generated world, and the real Waymo samples of ../shared.

Run by tools/python/test.sh (the README's test command runs it) after the wheel is built and
installed into .venv-py. As in the Rust tests, SCENETOK_REQUIRE_SAMPLES=1 turns a missing
samples folder into a failure, and SCENETOK_REQUIRE_TOOLS=1 a missing command.
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _require(env: str, message: str):
    if os.environ.get(env):
        pytest.fail(f"{message}, and {env} says it must be there")
    pytest.skip(message)


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `scenetok` command built from this checkout (SCENETOK_BIN overrides)."""
    path = Path(os.environ.get("SCENETOK_BIN", REPO / "target" / "debug" / "scenetok"))
    if not path.is_file():
        _require("SCENETOK_REQUIRE_TOOLS", f"the scenetok command is not built at {path} (cargo build)")
    return path


def run(cli: Path, *args) -> str:
    out = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, f"scenetok {' '.join(map(str, args))} failed:\n{out.stderr}"
    return out.stdout


def run_failing(cli: Path, *args) -> str:
    """The message the command prints for an error, without its `error: ` prefix."""
    out = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert out.returncode != 0, f"scenetok {' '.join(map(str, args))} did not fail"
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), out.stderr
    return line[len("error: "):]


@pytest.fixture(scope="session")
def fixture_dataset(cli, tmp_path_factory) -> Path:
    """scenetok's built-in v2 dataset: every component, 3 frames."""
    out = tmp_path_factory.mktemp("fixture") / "v2"
    run(cli, "fixture", "--out", out)
    return out


@pytest.fixture(scope="session")
def world(cli, tmp_path_factory) -> Path:
    """A small generated world (tiny preset: 1 segment of 6 frames)."""
    out = tmp_path_factory.mktemp("world") / "v2"
    run(cli, "generate", "--out", out, "--preset", "tiny", "--segments", "1", "--frames", "6", "--seed", "3")
    return out


@pytest.fixture(scope="session")
def samples() -> Path:
    path = Path(os.environ.get("SCENETOK_SAMPLES", REPO.parent / "shared" / "waymo-samples"))
    if not path.is_dir():
        _require("SCENETOK_REQUIRE_SAMPLES", f"the real Waymo samples are not at {path}")
    return path


@pytest.fixture(scope="session")
def womd_sample(samples) -> Path:
    return samples / "womd" / "motion_data_one_scenario.tfrecord"
