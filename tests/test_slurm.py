"""A sweep through `--executor submitit` on a real Slurm cluster (e.g. scripts/slurm-local-cluster.sh)."""

import importlib.util
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app


def slurm_answers() -> str | None:
    """Why Slurm cannot be used here, or None when `sinfo` sees an idle node."""
    if importlib.util.find_spec("submitit") is None:
        return "submitit not installed: pip install 'harness[slurm]'"
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (no sinfo); see scripts/slurm-local-cluster.sh"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
    except subprocess.TimeoutExpired:
        return "Slurm is not running (sinfo timed out); start it with scripts/slurm-local-cluster.sh start"
    if not {"idle", "mixed"} & set(states.split()):
        return (
            "Slurm is not running or has no idle node; start it with scripts/slurm-local-cluster.sh start "
            "and export the SLURM_CONF it prints"
        )
    return None


WHY_NOT = slurm_answers()


@pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))
def test_sweep_runs_as_a_slurm_job_array(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[grid]\nplugin = ["mlp_1x512"]\nseed = [0, 1]\n[overrides]\ndataset = "digits"\n'
        "train_size = 100\ntest_size = 50\nepochs = 2\n"
        '[executor]\nname = "submitit"\ncluster = "slurm"\ntimeout_min = 10\ncpus_per_task = 1\n'
    )
    results = tmp_path / "r"
    result = CliRunner().invoke(create_app(), ["sweep", str(spec), "--results-dir", str(results), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "sweep done: 2 completed, 0 skipped, 0 failed" in " ".join(result.output.split())
    rows = [pq.read_table(p).to_pylist()[0] for p in (results / "runs").glob("*.parquet")]
    assert sorted(r["seed"] for r in rows) == [0, 1] and {r["status"] for r in rows} == {"completed"}
    assert len(list((results / "logs").rglob("*_log.out"))) == 2  # Slurm wrote the job logs beside the results
