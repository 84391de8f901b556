"""A kernel-regression run (Section 5 of the paper): exact kernel interpolation on a data set's
features, stored as one ``kernel_runs`` row. The library counterpart of :mod:`harness.runner`:
configuration in, stored row out, for the command line, sweeps, notebooks and executors alike."""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from harness import __version__
from harness.data import prepare_data_of
from harness.errors import ConfigError
from harness.registry import get_registry
from harness.results import check_writable, completed_row, config_id, table_path, write_table

DEVICES = ("auto", "cpu", "cuda")
MEDIAN_SAMPLE = 500


@dataclass(frozen=True)
class KernelConfig:
    """Everything that defines a kernel run's result; its hash is the ``run_id``.

    ``bandwidth`` is γ, ``"median"`` (1 / median distance of a sample, resolved at run time) or
    None (linear kernel); ``dtype`` is the kernel storage: float64, float32 (with float64
    refinement) or auto.
    """

    dataset: str = "cifar10"
    features: str = "none"
    feature_options: dict = field(default_factory=dict)
    kernel: str = "gaussian"
    bandwidth: float | str | None = None
    ridge: float = 0.0
    train_size: int | None = None
    test_size: int | None = None
    corruption: str = "none"
    corrupt_prob: float = 1.0
    seed: int = 0
    dtype: str = "auto"

    @property
    def run_id(self) -> str:
        return config_id(asdict(self))


@dataclass
class KernelOutcome:
    """The stored row, where it is, and whether a completed run was found instead of run."""

    row: dict
    path: Path
    skipped: bool = False


def kernel_backend(device: str) -> str:
    """The solver backend for ``device``: CuPy on a GPU, NumPy on the CPU."""
    from harness.kernels.backend import gpu_available

    if device not in DEVICES:
        raise ConfigError(f"unknown device '{device}'; known: {', '.join(DEVICES)}")
    if device != "cpu" and gpu_available():
        return "cupy"
    if device == "cuda":
        raise ConfigError("--device cuda: CuPy sees no CUDA device here (install harness[gpu] on a GPU machine)")
    return "numpy"


def make_feature_map(name: str, options: dict, seed: int, backend: str):
    """The feature map ``name`` with ``options``; it also gets the run's seed and, on a GPU
    backend, ``device="cuda"`` when it takes those options."""
    factory = get_registry().get("feature_maps", name).obj
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        raise ConfigError(f"feature map '{name}' takes no option {', '.join(unknown)}; known: {', '.join(accepted)}")
    defaults = {"seed": seed, "device": "cuda" if backend == "cupy" else "cpu"}
    return factory(**{**{k: v for k, v in defaults.items() if k in accepted}, **options})


def median_bandwidth(feature_map, x_train: np.ndarray, kernel: str) -> float:
    """γ = 1 / median of ‖x - y‖² (gaussian) or of ‖x - y‖ (laplacian) over pairs of the
    first 500 training examples' features."""
    sample = x_train[:MEDIAN_SAMPLE]
    gram = sum(f.astype(np.float64) @ f.T.astype(np.float64) for f, _ in feature_map.blocks(sample, sample[:1]))
    norms = np.diag(gram)
    distances = np.maximum(norms[:, None] + norms[None, :] - 2 * gram, 0)[np.triu_indices(len(sample), 1)]
    median = np.median(distances if kernel == "gaussian" else np.sqrt(distances))
    if not median > 0:
        raise ConfigError("cannot set the bandwidth from the data: the sampled features are all equal")
    return float(1 / median)


def execute(
    config: KernelConfig,
    results_dir: Path,
    *,
    data_root: Path | None = None,
    device: str = "auto",
    force: bool = False,
    memory_budget: str | None = None,
    strict: bool = False,
    progress=None,
) -> KernelOutcome:
    """Run (or skip, when already completed) one kernel configuration and store its row.

    ``memory_budget`` (e.g. "20GB") and ``strict`` (stop instead of adding jitter when K is not
    numerically positive definite) change how, not what, is solved, so they are not part of the
    run id. ``progress(stage, done, total)`` is called as each solver stage advances. A solve
    that fails is stored as ``failed`` with its error, then the error is re-raised. Ctrl-C
    removes the solver's temporary files and re-raises; nothing is stored then.
    """
    from harness.kernels import KERNEL_RUNS_SCHEMA, solve_kernel_regression

    backend = kernel_backend(device)
    feature_map = make_feature_map(config.features, config.feature_options, config.seed, backend)
    results_dir = Path(results_dir)
    check_writable(results_dir)
    run_id = config.run_id
    done = None if force else completed_row(results_dir, "kernel_runs", run_id)
    if done is not None:
        return KernelOutcome(done, table_path(results_dir, "kernel_runs", run_id), skipped=True)
    started_at, start = datetime.now(UTC), time.perf_counter()
    data = prepare_data_of(config, data_root, streaming=False)  # a kernel machine holds its data
    row = {
        **asdict(config),
        "feature_options": json.dumps(config.feature_options, sort_keys=True),
        "bandwidth": None,
        "run_id": run_id,
        "status": "failed",  # until the solve completes
        "train_size": len(data.y_train),
        "test_size": len(data.y_test),
        "started_at": started_at,
        "harness_version": __version__,
    }
    try:
        bandwidth = config.bandwidth
        if bandwidth == "median" and config.kernel != "linear":
            bandwidth = median_bandwidth(feature_map, data.x_train, config.kernel)
        row["bandwidth"] = bandwidth
        result = solve_kernel_regression(
            feature_map.blocks(data.x_train, data.x_test),
            np.eye(data.num_classes)[data.y_train],
            kernel=config.kernel,
            bandwidth=bandwidth,
            ridge=config.ridge,
            dtype=config.dtype,
            memory_budget=memory_budget,
            strict=strict,
            backend=backend,
            progress=progress,
        )
    except Exception as error:  # stored as failed with its error, like a failed training run
        row["error"] = f"{type(error).__name__}: {error}"
        row["wall_seconds"] = time.perf_counter() - start
        write_table(results_dir, "kernel_runs", run_id, [row], KERNEL_RUNS_SCHEMA)
        raise
    row.update(
        {
            "status": "completed",
            "train_error": result.train_error(data.y_train),
            "test_error": result.test_error(data.y_test),
            "wall_seconds": time.perf_counter() - start,
            **{
                k: getattr(result, k)
                for k in (
                    "feature_dim",
                    "dtype",
                    "backend",
                    "device",
                    "rkhs_norm",
                    "jitter",
                    "relative_residual",
                    "gram_seconds",
                    "factor_seconds",
                    "solve_seconds",
                    "predict_seconds",
                    "peak_memory_bytes",
                )
            },
        }
    )
    path = write_table(results_dir, "kernel_runs", run_id, [row], KERNEL_RUNS_SCHEMA)
    return KernelOutcome(row, path)
