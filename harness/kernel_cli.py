"""``harness kernel``: exact kernel regression (Section 5 of the paper) on a (corrupted) data set."""

from __future__ import annotations

import inspect
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness import __version__
from harness.data import prepare_data
from harness.registry import get_registry
from harness.results import check_writable, config_id, read_row, write_table

STAGES = ("gram", "factor", "solve", "predict")


def parse_options(pairs: list[str]) -> dict:
    """``["num_filters=2000", "pool=2"]`` -> ``{"num_filters": 2000, "pool": 2}`` (numbers parsed)."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--feature-option expects NAME=VALUE, got '{pair}'")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[name.strip()] = value
    return options


def kernel_backend(device: str) -> str:
    """The solver backend for ``--device``: CuPy on a GPU, NumPy on the CPU."""
    from harness.kernels.backend import gpu_available

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device '{device}'; known: auto, cpu, cuda")
    if device != "cpu" and gpu_available():
        return "cupy"
    if device == "cuda":
        raise ValueError("--device cuda: CuPy sees no CUDA device here (install harness[gpu] on a GPU machine)")
    return "numpy"


def make_feature_map(name: str, options: dict, seed: int, backend: str):
    """The feature map ``name`` with ``options``; it also gets the run's seed and, on a GPU
    backend, ``device="cuda"`` when it takes those options."""
    factory = get_registry().get("feature_maps", name).obj
    accepted = inspect.signature(factory).parameters
    defaults = {"seed": seed, "device": "cuda" if backend == "cupy" else "cpu"}
    return factory(**{**{k: v for k, v in defaults.items() if k in accepted}, **options})


MEDIAN_SAMPLE = 500


def median_bandwidth(feature_map, x_train: np.ndarray, kernel: str) -> float:
    """γ = 1 / median of ‖x - y‖² (gaussian) or of ‖x - y‖ (laplacian) over pairs of the
    first 500 training examples' features."""
    sample = x_train[:MEDIAN_SAMPLE]
    gram = sum(f.astype(np.float64) @ f.T.astype(np.float64) for f, _ in feature_map.blocks(sample, sample[:1]))
    norms = np.diag(gram)
    distances = np.maximum(norms[:, None] + norms[None, :] - 2 * gram, 0)[np.triu_indices(len(sample), 1)]
    median = np.median(distances if kernel == "gaussian" else np.sqrt(distances))
    if not median > 0:
        raise ValueError("cannot set the bandwidth from the data: the sampled features are all equal")
    return float(1 / median)


def parse_bandwidth(value: str | None) -> float | str | None:
    """A positive number, "median", or None."""
    if value is None or value == "median":
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"--bandwidth must be a number or 'median', got '{value}'") from None


class StageBars:
    """One rich progress bar per solver stage."""

    def __init__(self, progress: Progress):
        self.progress, self.tasks = progress, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def kernel_command(
    dataset: str = typer.Option("mnist", help="Dataset plugin."),
    features: str = typer.Option("none", help="Feature map plugin: none, gabor, random_conv, ..."),
    feature_option: list[str] = typer.Option([], "--feature-option", help="NAME=VALUE passed to the feature map, repeatable."),
    kernel: str = typer.Option("gaussian", help="linear, gaussian (exp(-γ‖x-y‖²)) or laplacian (exp(-γ‖x-y‖))."),
    bandwidth: str | None = typer.Option(
        None, help="γ of the gaussian/laplacian kernel (paper's MNIST: 0.02 on pixels/255), or 'median' for 1/median distance."
    ),
    ridge: float = typer.Option(0.0, help="λ in (K + λI) α = Y; 0 interpolates, as in the paper."),
    train_size: int | None = typer.Option(None, help="Use the first N training examples."),
    test_size: int | None = typer.Option(None, help="Use the first N test examples."),
    corruption: str = typer.Option("none", help="Corruption plugin, as for `harness run`."),
    corrupt_prob: float = typer.Option(1.0),
    seed: int = typer.Option(0, help="Seed of the corruption and of random feature maps."),
    dtype: str = typer.Option("auto", help="Kernel storage: float64, float32 (with float64 refinement) or auto."),
    memory_budget: str | None = typer.Option(None, help="e.g. 20GB (default: a safe share of available RAM)."),
    strict: bool = typer.Option(False, help="Stop when K is not numerically positive definite instead of adding jitter."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Data folder (default: $HARNESS_DATA_ROOT)."),
    results_dir: Path = typer.Option(Path("results"), "--results-dir"),
    force: bool = typer.Option(False, help="Run again even if this configuration already completed."),
):
    """Solve (K + λI) α = Y exactly on a data set's features and store the run in RESULTS/kernel_runs."""
    from harness.cli import USER_ERRORS, console, err_console, fail
    from harness.kernels import (
        KERNEL_RUNS_SCHEMA,
        MemoryBudgetError,
        NonFiniteSolutionError,
        NotPositiveDefiniteError,
        solve_kernel_regression,
    )

    try:
        options = parse_options(feature_option)
        bandwidth = parse_bandwidth(bandwidth)
        backend = kernel_backend(device)
        feature_map = make_feature_map(features, options, seed, backend)
        check_writable(results_dir)
        config = dict(dataset=dataset, features=features, feature_options=options, kernel=kernel, bandwidth=bandwidth,
                      ridge=ridge, train_size=train_size, test_size=test_size, corruption=corruption,
                      corrupt_prob=corrupt_prob, seed=seed, dtype=dtype)
        run_id = config_id(config)
        existing = read_row(results_dir, "kernel_runs", run_id)
        if existing is not None and existing["status"] == "completed" and not force:
            console.print(f"already completed: kernel run {run_id} in {results_dir / 'kernel_runs'} (use --force to run again)")
            return
        started_at, start = datetime.now(UTC), time.perf_counter()
        data = prepare_data(dataset, corruption, corrupt_prob, seed, train_size, test_size, data_root)
        if bandwidth == "median" and kernel != "linear":
            bandwidth = median_bandwidth(feature_map, data.x_train, kernel)
        targets = np.eye(data.num_classes)[data.y_train]
        columns = (TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console) as progress:
            result = solve_kernel_regression(
                feature_map.blocks(data.x_train, data.x_test), targets, kernel=kernel, bandwidth=bandwidth,
                ridge=ridge, dtype=dtype, memory_budget=memory_budget, strict=strict, backend=backend,
                progress=StageBars(progress),
            )
    except (*USER_ERRORS, MemoryBudgetError, NotPositiveDefiniteError, NonFiniteSolutionError, OSError, TypeError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; temporary files were removed", code=130)
    row = {
        **config,
        "feature_options": json.dumps(options, sort_keys=True),
        "bandwidth": bandwidth,
        "run_id": run_id,
        "status": "completed",
        "train_size": len(data.y_train),
        "test_size": len(data.y_test),
        "train_error": result.train_error(data.y_train),
        "test_error": result.test_error(data.y_test),
        "wall_seconds": time.perf_counter() - start,
        "started_at": started_at,
        "harness_version": __version__,
        **{k: getattr(result, k) for k in (
            "feature_dim", "dtype", "backend", "device", "rkhs_norm", "jitter", "relative_residual", "gram_seconds",
            "factor_seconds", "solve_seconds", "predict_seconds", "peak_memory_bytes")},
    }
    path = write_table(results_dir, "kernel_runs", run_id, [row], KERNEL_RUNS_SCHEMA)
    console.print(
        f"kernel run {run_id}: {dataset}/{features}/{kernel} n={row['train_size']}: train error {row['train_error']:.2%}, "
        f"test error {row['test_error']:.2%}, norm {row['rkhs_norm']:.1f}, {row['dtype']}, residual "
        f"{row['relative_residual']:.1e}, jitter {row['jitter']:g}, {row['wall_seconds']:.1f} s -> {path}",
        highlight=False,
    )
