"""solve_kernel_regression end to end: accuracy, memory plans, breakdowns, interruptions."""

import numpy as np
import pyarrow as pa
import pytest
import scipy.linalg
from sklearn.metrics.pairwise import rbf_kernel

from harness.kernels import (
    KERNEL_RUNS_SCHEMA,
    MemoryBudgetError,
    NotPositiveDefiniteError,
    error_rate,
    parse_memory_size,
    solve_kernel_regression,
)
from harness.kernels.memory import available_memory_bytes, default_memory_budget
from harness.kernels.plan import plan_storage

TRAIN, TEST, CLASSES = 200, 40, 10


def integer_problem(seed=0):
    """Small-integer features: their linear kernel is exact in float32 and float64."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(-3, 4, (TRAIN, 60)).astype(np.float32)
    x_test = rng.integers(-3, 4, (TEST, 60)).astype(np.float32)
    labels = rng.integers(0, CLASSES, TRAIN)
    return x_train, x_test, np.eye(CLASSES)[labels]


def exact_linear_solution(x_train, x_test, y, ridge):
    k = x_train.astype(np.float64) @ x_train.T.astype(np.float64)
    alpha = scipy.linalg.cho_solve(scipy.linalg.cho_factor(k + ridge * np.eye(len(k))), y)
    return alpha, x_test.astype(np.float64) @ x_train.T.astype(np.float64) @ alpha


# Budgets (bytes) that put all three matrices of this problem on disk, with tiles of 64.
OUT_OF_CORE_BUDGET = {"float64": 310_000, "float32": 260_000}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("out_of_core", [False, True])
def test_matches_cholesky_solve_of_the_whole_matrix(dtype, out_of_core, tmp_path):
    x_train, x_test, y = integer_problem()
    ridge = 5.0
    budget = OUT_OF_CORE_BUDGET[dtype] if out_of_core else None
    result = solve_kernel_regression(
        x_train,
        y,
        x_test,
        kernel="linear",
        ridge=ridge,
        dtype=dtype,
        tile_size=64,
        memory_budget=budget,
        temp_dir=tmp_path,
    )
    alpha, predictions = exact_linear_solution(x_train, x_test, y, ridge)

    assert result.dtype == dtype
    assert ("factor on disk" in result.storage) == out_of_core
    assert result.relative_residual < 1e-10
    assert (result.refinement_steps > 0) == (dtype == "float32")
    np.testing.assert_allclose(result.alpha, alpha, rtol=1e-7, atol=1e-9 * np.abs(alpha).max())
    np.testing.assert_allclose(result.predictions, predictions, rtol=1e-6, atol=1e-8 * np.abs(predictions).max())
    np.testing.assert_allclose(result.train_predictions, y - ridge * result.alpha, atol=1e-8)
    assert result.rkhs_norm == pytest.approx(np.sqrt(np.sum(alpha * (y - ridge * alpha))), rel=1e-8)
    assert list(tmp_path.iterdir()) == []


def test_gaussian_kernel_interpolates_random_labels():
    rng = np.random.default_rng(3)
    x_train, x_test = rng.random((300, 30)), rng.random((50, 30))
    labels = rng.integers(0, CLASSES, 300)
    result = solve_kernel_regression(
        x_train, np.eye(CLASSES)[labels], x_test, kernel="gaussian", bandwidth=0.5, tile_size=128, dtype="float64"
    )

    assert result.train_error(labels) == 0.0
    assert result.jitter == 0.0
    test_labels = rng.integers(0, CLASSES, 50)
    quality = result.quality(labels, test_labels)
    assert quality["train_error_pct"] == 0.0 and quality["test_error_pct"] == 100 * result.test_error(test_labels)
    assert quality["rkhs_norm"] == result.rkhs_norm and quality["relative_residual"] == result.relative_residual
    assert result.relative_residual < 1e-8
    assert result.feature_dim == 30
    k = rbf_kernel(x_train, gamma=0.5)
    expected = scipy.linalg.solve(k, np.eye(CLASSES)[labels], assume_a="pos")
    np.testing.assert_allclose(result.predictions, rbf_kernel(x_test, x_train, gamma=0.5) @ expected, atol=1e-6)


def singular_problem():
    """Linear kernel whose row 150 duplicates row 0: the Cholesky pivot there is exactly 0."""
    features = np.zeros((TRAIN, TRAIN), dtype=np.float32)
    features[np.arange(150), np.arange(150)] = 1.0
    features[150, 0] = 1.0
    features[151:, 151:] = np.eye(TRAIN - 151)
    y = np.eye(CLASSES)[np.arange(TRAIN) % CLASSES]
    return features, y


def test_strict_breakdown_names_the_pivot_row():
    features, y = singular_problem()
    with pytest.raises(NotPositiveDefiniteError, match=r"pivot row 150 \(0-based\) of 200"):
        solve_kernel_regression(features, y, features[:5], kernel="linear", tile_size=64, strict=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_breakdown_adds_jitter(dtype):
    features, y = singular_problem()
    result = solve_kernel_regression(features, y, features[:5], kernel="linear", tile_size=64, dtype=dtype)
    assert result.jitter >= 1e-10
    assert np.isfinite(result.relative_residual)
    assert np.isfinite(result.alpha).all() and np.isfinite(result.predictions).all()


def test_too_small_budget_fails_before_writing_anything(tmp_path):
    x_train, x_test, y = integer_problem()
    with pytest.raises(MemoryBudgetError, match="needs at least .* MB") as caught:
        solve_kernel_regression(x_train, y, x_test, kernel="linear", memory_budget="10kB", temp_dir=tmp_path)
    assert "in memory" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_auto_dtype_keeps_float32_when_refinement_converges():
    rng = np.random.default_rng(4)
    x_train, x_test = rng.random((300, 30)), rng.random((50, 30))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, 300)]
    options = dict(kernel="gaussian", bandwidth=0.5, tile_size=128)
    auto = solve_kernel_regression(x_train, y, x_test, **options)
    float64 = solve_kernel_regression(x_train, y, x_test, dtype="float64", **options)
    assert auto.dtype == "float32" and auto.refinement_steps > 0 and auto.relative_residual < 1e-10
    assert "factored again" not in auto.storage
    assert auto.rkhs_norm == pytest.approx(float64.rkhs_norm, rel=1e-6)
    np.testing.assert_allclose(auto.predictions, float64.predictions, rtol=0, atol=1e-4)


@pytest.mark.parametrize("in_memory", [True, False])
def test_auto_dtype_solves_again_in_float64_when_float32_refinement_stalls(in_memory, tmp_path):
    rng = np.random.default_rng(5)
    x_train, x_test = rng.random((300, 30)), rng.random((50, 30))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, 300)]
    float64_in_memory = plan_storage(300, 50, CLASSES, "float64", 10**12, 128).memory_bytes
    budget = None if in_memory else float64_in_memory - 1
    options = dict(kernel="linear", ridge=1e-5, tile_size=128, temp_dir=tmp_path, memory_budget=budget)
    float32 = solve_kernel_regression(x_train, y, x_test, dtype="float32", **options)
    float64 = solve_kernel_regression(x_train, y, x_test, dtype="float64", **options)
    auto = solve_kernel_regression(x_train, y, x_test, **options)  # rank 30 plus a ridge: condition near 1e8

    assert float32.relative_residual > 1e-4 and float64.relative_residual < 1e-6
    assert auto.dtype == "float64" and auto.relative_residual == float64.relative_residual
    assert auto.storage == f"{float64.storage}; float32 refinement stopped at residual " + (
        f"{float32.relative_residual:.1e}, solved again in float64"
    )
    assert ("on disk" in auto.storage) != in_memory
    np.testing.assert_array_equal(auto.predictions, float64.predictions)
    assert list(tmp_path.iterdir()) == []


def test_auto_dtype_prefers_float64_and_falls_back_to_float32():
    n, m, k = 20_000, 10_000, 10
    float64_in_memory = plan_storage(n, m, k, "float64", budget=10**12)
    assert plan_storage(n, m, k, "auto", budget=float64_in_memory.memory_bytes).dtype == np.float64
    fallback = plan_storage(n, m, k, "auto", budget=2 * 10**9)
    assert fallback.dtype == np.float32 and fallback.factor_in_memory and not fallback.test_in_memory
    tiny = plan_storage(n, m, k, "float64", budget=200 * 10**6)
    assert not tiny.factor_in_memory and tiny.tile_size < 4096 and tiny.memory_bytes <= 200 * 10**6


def test_interrupt_removes_the_temporary_files(tmp_path):
    x_train, x_test, y = integer_problem()
    seen = []

    def interrupt(stage, done, total):
        seen.append(sorted(path.name for folder in tmp_path.iterdir() for path in folder.iterdir()))
        if stage == "factor" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve_kernel_regression(
            x_train,
            y,
            x_test,
            kernel="linear",
            ridge=1.0,
            tile_size=64,
            memory_budget=OUT_OF_CORE_BUDGET["float64"],
            dtype="float64",
            temp_dir=tmp_path,
            progress=interrupt,
        )
    assert seen[-1] == ["factor.tiles", "reference.tiles", "test.tiles"]
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_every_stage_to_completion():
    x_train, x_test, y = integer_problem()
    reports = []
    solve_kernel_regression(
        x_train,
        y,
        x_test,
        kernel="linear",
        ridge=1.0,
        dtype="float32",
        tile_size=64,
        progress=lambda *report: reports.append(report),
    )
    stages = [stage for stage, _, _ in reports]
    assert sorted(set(stages), key=stages.index) == ["gram", "factor", "solve", "predict"]
    for stage in set(stages):
        last = [report for report in reports if report[0] == stage][-1]
        assert last[1] == last[2] > 0
    assert all(0 <= done <= total for _, done, total in reports)


def test_feature_blocks_give_the_same_solution_as_pixels():
    x_train, x_test, y = integer_problem()
    from_pixels = solve_kernel_regression(
        x_train, y, x_test, kernel="gaussian", bandwidth=0.01, ridge=0.1, tile_size=64, dtype="float64"
    )
    blocks = ((x_train[:, c : c + 16], x_test[:, c : c + 16]) for c in range(0, 60, 16))
    from_blocks = solve_kernel_regression(
        blocks, y, kernel="gaussian", bandwidth=0.01, ridge=0.1, tile_size=64, dtype="float64"
    )
    assert from_blocks.feature_dim == 60
    np.testing.assert_allclose(from_blocks.predictions, from_pixels.predictions, rtol=1e-9, atol=1e-12)


def test_invalid_arguments():
    x_train, x_test, y = integer_problem()
    with pytest.raises(ValueError, match="positive bandwidth"):
        solve_kernel_regression(x_train, y, x_test, kernel="gaussian")
    with pytest.raises(ValueError, match="unknown kernel"):
        solve_kernel_regression(x_train, y, x_test, kernel="poly", bandwidth=1.0)
    with pytest.raises(ValueError, match="x_test is required"):
        solve_kernel_regression(x_train, y, kernel="linear")
    with pytest.raises(ValueError, match="unknown dtype"):
        solve_kernel_regression(x_train, y, x_test, kernel="linear", dtype="float16")


def test_memory_sizes(tmp_path):
    assert parse_memory_size("20GB") == 20 * 10**9
    assert parse_memory_size("1.5 GiB") == 3 * 2**29
    assert parse_memory_size("512mb") == 512 * 10**6
    assert parse_memory_size(4096) == 4096
    for bad in ["", "20 parsecs", "-1GB", "0"]:
        with pytest.raises(ValueError):
            parse_memory_size(bad)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   1000 kB\n")
    assert available_memory_bytes(meminfo) == 1024000
    assert 0 < default_memory_budget() < available_memory_bytes()


def test_error_rate():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert error_rate(scores, np.array([0, 1, 1])) == pytest.approx(1 / 3)


def test_schema_has_the_run_columns_each_described():
    required = [
        "run_id",
        "status",
        "error",
        "dataset",
        "features",
        "kernel",
        "bandwidth",
        "ridge",
        "corruption",
        "corrupt_prob",
        "seed",
        "train_size",
        "test_size",
        "feature_dim",
        "dtype",
        "backend",
        "device",
        "train_error",
        "test_error",
        "rkhs_norm",
        "jitter",
        "relative_residual",
        "gram_seconds",
        "factor_seconds",
        "solve_seconds",
        "predict_seconds",
        "wall_seconds",
        "peak_memory_bytes",
        "started_at",
        "harness_version",
    ]
    assert set(required) <= set(KERNEL_RUNS_SCHEMA.names)
    assert len(set(KERNEL_RUNS_SCHEMA.names)) == len(KERNEL_RUNS_SCHEMA.names)
    for field in KERNEL_RUNS_SCHEMA:
        assert field.metadata[b"description"].strip()
    assert pa.types.is_timestamp(KERNEL_RUNS_SCHEMA.field("started_at").type)


@pytest.mark.slow
def test_auto_dtype_on_mnist_gives_the_float64_solution(mnist_root):
    from harness.plugins.datasets import load_mnist

    data = load_mnist(mnist_root, download=False)
    x_train = data.x_train[:5000].reshape(5000, -1) / np.float32(255)
    x_test = data.x_test[:1000].reshape(1000, -1) / np.float32(255)
    y = np.eye(10)[data.y_train[:5000]]
    options = dict(kernel="gaussian", bandwidth=0.02)
    auto = solve_kernel_regression(x_train, y, x_test, **options)
    float64 = solve_kernel_regression(x_train, y, x_test, dtype="float64", **options)

    assert auto.dtype == "float32" and auto.relative_residual < 1e-10
    assert auto.rkhs_norm == pytest.approx(float64.rkhs_norm, rel=1e-6)
    assert auto.test_error(data.y_test[:1000]) == float64.test_error(data.y_test[:1000])


def test_too_little_disk_space_is_a_user_error(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from harness.errors import HarnessError
    from harness.kernels.plan import DiskSpaceError, check_disk_space, plan_storage

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**6, 10**6 - 100, 100))
    plan = plan_storage(2000, 100, 10, "float64", 20 * 10**6)  # out of core: the factor goes to disk
    assert plan.disk_bytes > 100
    with pytest.raises(DiskSpaceError, match=f"{tmp_path} has 0.0 MB free") as raised:
        check_disk_space(plan, tmp_path)
    assert isinstance(raised.value, HarnessError) and isinstance(raised.value, OSError)
