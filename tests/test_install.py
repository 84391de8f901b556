"""A regular (non-editable) wheel install in a fresh virtual environment: the plugins/ and kernels/
folders install as harness.plugins and harness.kernels, and nothing else at the top level."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> Path:
    """A new venv with the wheel installed; its dependencies are taken from this environment."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so no build folder of an earlier layout leaks into the wheel
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "results", "out", "__pycache__")
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in sys.path if path.endswith("site-packages")))
    wheel = next(root.glob("harness-*.whl"))
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    return venv


def test_wheel_holds_only_the_harness_package(fresh_env):
    wheel = next(fresh_env.parent.glob("harness-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"harness"}
    assert "harness/plugins/mlp.py" in names and "harness/kernels/solver.py" in names and "harness/cli/run.py" in names


def test_installed_cli_lists_plugins_and_runs(fresh_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            str(fresh_env / "bin" / "python"),
            "-c",
            "import harness.plugins, harness.kernels; print(harness.plugins.__file__, harness.kernels.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    assert all(str(fresh_env) in path for path in where.stdout.split())
    harness = str(fresh_env / "bin" / "harness")
    listing = subprocess.run(
        [harness, "plugins", "--format", "json"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert listing.returncode == 0, listing.stderr
    assert {"mlp_1x512", "alexnet"} <= {entry["name"] for entry in json.loads(listing.stdout)["models"]}
    run = subprocess.run(
        [
            harness,
            "run",
            "--plugin",
            "mlp_1x512",
            "--dataset",
            "digits",
            "--train-size",
            "64",
            "--test-size",
            "32",
            "--max-epochs",
            "1",
            "--device",
            "cpu",
            "--results-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "train acc" in run.stdout and list((tmp_path / "r" / "runs").glob("*.parquet"))
