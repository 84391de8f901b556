import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from harness.cli import create_app
from harness.kernels import KERNEL_RUNS_SCHEMA
from harness.kernels.backend import gpu_available


def kernel(tmp_path, *args):
    return CliRunner().invoke(
        create_app(),
        ["kernel", "--dataset", "digits", "--device", "cpu", "--results-dir", str(tmp_path), *map(str, args)],
    )


def test_kernel_machine_interpolates_random_labels(tmp_path):
    result = kernel(tmp_path, "--corruption", "random_labels", "--bandwidth", "median")
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "kernel_runs").to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert row["train_error"] == 0.0 and row["test_error"] > 0.7  # memorized noise, chance on test
    assert row["bandwidth"] > 0 and row["relative_residual"] < 1e-8 and row["corruption"] == "random_labels"
    assert pq.read_schema(tmp_path / "kernel_runs" / f"{row['run_id']}.parquet").names == KERNEL_RUNS_SCHEMA.names
    assert "already completed" in kernel(tmp_path, "--corruption", "random_labels", "--bandwidth", "median").output


def test_true_labels_generalize_and_features_are_recorded(tmp_path):
    result = kernel(tmp_path, "--features", "gabor", "--feature-option", "scales=1", "--bandwidth", "median")
    assert result.exit_code == 0, result.output
    row = pq.read_table(tmp_path / "kernel_runs").to_pylist()[0]
    assert row["train_error"] == 0.0 and row["test_error"] < 0.15
    assert row["features"] == "gabor" and row["feature_options"] == '{"scales": 1}'


@pytest.mark.parametrize(
    "args, message",
    [
        (["--features", "nope"], "unknown feature map 'nope'; known: gabor, none, random_conv"),
        (["--kernel", "nope", "--bandwidth", "1"], "unknown kernel 'nope'"),
        (["--bandwidth", "-1"], "needs a positive bandwidth"),
        (["--bandwidth", "wide"], "--bandwidth must be a number or 'median'"),
        (["--bandwidth", "1", "--train-size", "5000"], "--train-size 5000 is out of range"),
        (["--bandwidth", "1", "--memory-budget", "1KB"], "memory budget"),
        pytest.param(
            ["--bandwidth", "1", "--device", "cuda"],
            "--device cuda",
            marks=pytest.mark.skipif(gpu_available(), reason="CuPy sees a CUDA device here: --device cuda works"),
        ),
        (["--feature-option", "scales"], "NAME=VALUE"),
    ],
)
def test_bad_input(tmp_path, args, message):
    result = kernel(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_library_entry_point_runs_and_then_skips(tmp_path):
    from harness.kernel_runner import KernelConfig, execute

    config = KernelConfig(dataset="digits", kernel="gaussian", bandwidth="median", train_size=300, test_size=100)
    stages = []
    first = execute(config, tmp_path, device="cpu", progress=lambda stage, done, total: stages.append(stage))
    assert not first.skipped and first.row["run_id"] == config.run_id and first.row["bandwidth"] > 0
    assert first.row["train_error"] == 0.0 and first.row["test_error"] < 0.2
    assert {"gram", "factor", "solve", "predict"} <= set(stages)
    assert pq.read_table(first.path).to_pylist()[0]["run_id"] == config.run_id
    again = execute(config, tmp_path, device="cpu")
    assert again.skipped and again.row["test_error"] == first.row["test_error"]


def test_a_failed_solve_is_stored_as_failed_with_its_error(tmp_path):
    # 300 digits have 64 pixels, so the linear kernel matrix is singular and --strict refuses it.
    result = kernel(tmp_path, "--kernel", "linear", "--strict", "--train-size", "300", "--test-size", "50")
    assert result.exit_code == 2 and "NotPositiveDefiniteError" not in result.stderr, result.output
    (row,) = pq.read_table(tmp_path / "kernel_runs").to_pylist()
    assert row["status"] == "failed" and row["error"].startswith("NotPositiveDefiniteError: ")
    assert row["train_size"] == 300 and row["train_error"] is None and row["wall_seconds"] > 0
    # Without --strict (not part of the run id) the same run is tried again, and completes with jitter.
    again = kernel(tmp_path, "--kernel", "linear", "--train-size", "300", "--test-size", "50")
    assert again.exit_code == 0, again.output
    (row,) = pq.read_table(tmp_path / "kernel_runs").to_pylist()
    assert row["status"] == "completed" and row["error"] is None and row["jitter"] > 0


def test_an_os_error_inside_the_solver_is_a_bug_with_its_traceback(tmp_path, monkeypatch):
    import harness.kernels

    def broken(*args, **kwargs):
        raise OSError("the disk went away")

    monkeypatch.setattr(harness.kernels, "solve_kernel_regression", broken)
    result = kernel(tmp_path, "--bandwidth", "1")
    assert result.exit_code == 1 and "Traceback" in result.stderr and "OSError: the disk went away" in result.stderr
    (row,) = pq.read_table(tmp_path / "kernel_runs").to_pylist()
    assert (row["status"], row["error"]) == ("failed", "OSError: the disk went away")
