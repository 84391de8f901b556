"""Kernel regression ``(K + λI) α = Y`` by a tiled Cholesky factorization, in or out of core.

:func:`solve_kernel_regression` builds the train and test kernels from feature
blocks, factors ``K + λI`` tile by tile (adding jitter on breakdown unless
``strict``), solves for all outputs at once with iterative refinement against a
pristine copy of ``K`` (residuals in float64), and predicts ``K_test,train α``.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.kernels.backend import get_backend
from harness.kernels.gram import (
    FeatureBlocks,
    accumulate_grams,
    check_kernel,
    diagonal_mean,
    pixel_blocks,
)
from harness.kernels.linalg import (
    NotPositiveDefiniteError,
    cholesky_operation_count,
    cholesky_solve,
    matmul,
    symmetric_matmul,
    tiled_cholesky,
)
from harness.kernels.memory import default_memory_budget, parse_memory_size, peak_rss_bytes
from harness.kernels.plan import DTYPES, StoragePlan, check_disk_space, plan_storage
from harness.kernels.progress import ProgressCallback, StageProgress
from harness.kernels.tiles import FileTileStore, MemoryTileStore, TileGrid, TileLayout, add_to_diagonal, copy_tiles

REFINEMENT_TOLERANCE = 1e-10
"""Refinement stops once ‖Y - (K + λI) α‖ / ‖Y‖ is below this."""
FIRST_JITTER = 1e-10
"""First jitter tried, relative to the mean of K's diagonal (at least the dtype's epsilon)."""
MAX_JITTER = 1e-1
"""Largest jitter tried, relative to the mean of K's diagonal; each retry multiplies by 10."""


class NonFiniteSolutionError(HarnessError, ArithmeticError):
    """The solve produced NaN or infinite values."""


def error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is not at the true label."""
    return float(np.mean(np.argmax(scores, axis=1) != np.asarray(labels)))


@dataclass
class KernelRegressionResult:
    """Solution, predictions and measurements of one kernel regression."""

    predictions: np.ndarray
    """(m, k) test scores ``K_test,train α``."""
    train_predictions: np.ndarray
    """(n, k) train scores ``K α``."""
    alpha: np.ndarray
    rkhs_norm: float
    """``sqrt(trace(αᵀ K α))``."""
    jitter: float
    """Added to the diagonal (besides the ridge) to make the factorization succeed; 0 if none."""
    relative_residual: float
    """``‖Y - (K + λI) α‖ / ‖Y‖`` (Frobenius norms, computed in float64)."""
    refinement_steps: int
    dtype: str
    backend: str
    device: str
    storage: str
    """Where the matrices were kept (see :meth:`StoragePlan.describe`)."""
    feature_dim: int
    gram_seconds: float
    factor_seconds: float
    solve_seconds: float
    predict_seconds: float
    peak_memory_bytes: int
    """Peak resident memory of the process so far (``ru_maxrss``)."""

    def train_error(self, labels: np.ndarray) -> float:
        return error_rate(self.train_predictions, labels)

    def test_error(self, labels: np.ndarray) -> float:
        return error_rate(self.predictions, labels)

    def quality(self, train_labels: np.ndarray, test_labels: np.ndarray) -> dict:
        """Train and test error (%) and the solution's diagnostics, as one flat dict."""
        return {
            "test_error_pct": 100 * self.test_error(test_labels),
            "train_error_pct": 100 * self.train_error(train_labels),
            "rkhs_norm": self.rkhs_norm,
            "relative_residual": self.relative_residual,
            "refinement_steps": self.refinement_steps,
            "jitter": self.jitter,
        }


def solve_kernel_regression(
    features: np.ndarray | FeatureBlocks,
    y_onehot: np.ndarray,
    x_test: np.ndarray | None = None,
    *,
    kernel: str = "gaussian",
    bandwidth: float | None = None,
    ridge: float = 0.0,
    dtype: str = "auto",
    memory_budget: int | str | None = None,
    strict: bool = False,
    tile_size: int | None = None,
    max_refinement_steps: int = 10,
    backend: str = "numpy",
    temp_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> KernelRegressionResult:
    """Solve ``(K + ridge·I) α = y_onehot`` for the kernel on ``features`` and predict the test set.

    ``features`` is either the train inputs (with ``x_test`` the test inputs; each
    example is flattened) or feature blocks ``(F_train_b, F_test_b)`` as yielded
    by a feature map. ``bandwidth`` is γ of the gaussian/laplacian kernel.
    ``dtype`` is the storage of the kernel tiles: "float64", "float32" (refined
    against float64 residuals) or "auto". For a single feature block (raw pixels),
    "auto" solves in float32 and, when refinement does not bring the residual to
    :data:`REFINEMENT_TOLERANCE`, solves again in float64 from the same features
    (the result's ``dtype`` is the one used; its ``storage`` tells of the retry).
    With several feature blocks, which are not kept, "auto" takes float64 when its
    factor fits in memory, float32 otherwise.
    ``memory_budget`` (bytes or e.g. "20GB"; default a share of the available RAM)
    bounds the solver's own arrays; what does not fit goes to tile files in
    a temporary folder under ``temp_dir``, removed on exit, also on interruption.
    ``backend="cupy"`` solves on the GPU: the budget (default a share of the free
    device memory) is then device memory, and what does not fit stays in pinned host
    memory, streamed through the GPU (or in files when the host is short of RAM).
    ``strict=True`` raises :class:`NotPositiveDefiniteError` on a Cholesky breakdown
    instead of adding jitter. ``progress(stage, done, total)`` is called during the
    stages "gram", "factor", "solve" and "predict".
    """
    check_kernel(kernel, bandwidth)
    if not ridge >= 0:
        raise ConfigError(f"ridge must be >= 0, got {ridge}")
    y = np.asarray(y_onehot, dtype=np.float64)
    if y.ndim != 2 or not np.isfinite(y).all():
        raise ValueError(f"y_onehot must be a finite (n, k) array, got shape {y.shape}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    blocks, expected_blocks = _feature_blocks(features, x_test)
    first = next(blocks, None)
    if first is None:
        raise ValueError("the feature map yielded no feature blocks")
    second = next(blocks, None) if expected_blocks != 1 else None
    single_block = second is None  # then it is kept, to build the kernels again in float64 if needed
    array_backend = get_backend(backend)
    budget = _default_budget(array_backend) if memory_budget is None else parse_memory_size(memory_budget)
    first_dtype = "float32" if dtype == "auto" and single_block else dtype
    attempt = partial(
        _solve,
        y=y,
        test_size=len(first[1]),
        kernel=kernel,
        bandwidth=bandwidth,
        ridge=ridge,
        strict=strict,
        budget=budget,
        tile_size=tile_size,
        max_steps=max_refinement_steps,
        backend=array_backend,
        temp_dir=temp_dir,
        progress=progress,
    )
    blocks = iter([first]) if single_block else itertools.chain([first, second], blocks)
    outcome = attempt(blocks, expected_blocks or (1 if single_block else None), first_dtype)
    if dtype == "auto" and single_block and not outcome.residual <= REFINEMENT_TOLERANCE:
        stalled = outcome
        outcome = attempt(iter([first]), 1, "float64")
        outcome.add_time(stalled)
        outcome.storage += f"; float32 refinement stopped at residual {stalled.residual:.1e}, solved again in float64"

    alpha, k_alpha, predictions = outcome.alpha, outcome.k_alpha, outcome.predictions
    xp = array_backend.xp
    if not (np.isfinite(outcome.residual) and bool(xp.isfinite(alpha).all()) and bool(xp.isfinite(predictions).all())):
        raise NonFiniteSolutionError(
            f"the {outcome.dtype} solve produced non-finite values (jitter {outcome.jitter:g})"
        )
    return KernelRegressionResult(
        predictions=array_backend.to_host(predictions),
        train_predictions=array_backend.to_host(k_alpha),
        alpha=array_backend.to_host(alpha),
        rkhs_norm=float(np.sqrt(max(float((alpha * k_alpha).sum()), 0.0))),
        jitter=outcome.jitter,
        relative_residual=outcome.residual,
        refinement_steps=outcome.steps,
        dtype=outcome.dtype,
        backend=array_backend.name,
        device=array_backend.device,
        storage=outcome.storage,
        feature_dim=outcome.feature_dim,
        peak_memory_bytes=peak_rss_bytes(),
        **outcome.seconds,
    )


@dataclass
class _Outcome:
    """What one build-factor-solve-predict attempt produced, and the seconds of its stages."""

    alpha: object
    k_alpha: object
    predictions: object
    residual: float
    steps: int
    jitter: float
    dtype: str
    storage: str
    feature_dim: int
    seconds: dict

    def add_time(self, earlier: _Outcome) -> None:
        """Count the seconds of an ``earlier`` attempt in this one's stages."""
        self.seconds = {stage: seconds + earlier.seconds[stage] for stage, seconds in self.seconds.items()}


def _solve(
    blocks,
    expected_blocks,
    dtype,
    *,
    y,
    test_size,
    kernel,
    bandwidth,
    ridge,
    strict,
    budget,
    tile_size,
    max_steps,
    backend,
    temp_dir,
    progress,
) -> _Outcome:
    """Plan the storage for ``dtype``, build the kernels from ``blocks``, factor, solve with refinement, predict."""
    plan = plan_storage(len(y), test_size, y.shape[1], dtype, budget, tile_size)
    # A GPU backend keeps what does not fit on the device in host memory when it fits there.
    in_host_memory = hasattr(backend, "host_store") and plan.disk_bytes <= default_memory_budget()
    seconds = {}
    with ExitStack() as cleanup:
        folder = None
        if plan.disk_bytes and not in_host_memory:
            base = Path(temp_dir) if temp_dir is not None else Path(tempfile.gettempdir())
            check_disk_space(plan, base)
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="harness-kernel-", dir=base)))
        factor, reference, test = _make_stores(plan, len(y), test_size, backend, folder)

        start = time.perf_counter()
        tiles_per_block = len(factor.layout.tiles) + len(test.layout.tiles)
        gram_progress = StageProgress(progress, "gram", tiles_per_block * (expected_blocks or 1))
        sums = accumulate_grams(blocks, factor, test, gram_progress, expected_blocks, kernel, bandwidth, reference)
        seconds["gram_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        mean_diagonal = diagonal_mean(kernel, sums.train_sq_norms)
        jitter = _factor_with_jitter(factor, reference, ridge, strict, mean_diagonal, progress)
        seconds["factor_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        alpha, k_alpha, residual, steps = _refined_solve(
            factor, reference, backend.asarray(y), ridge, max_steps, progress
        )
        seconds["solve_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        predictions = matmul(test, alpha, StageProgress(progress, "predict", len(test.layout.tiles)))
        seconds["predict_seconds"] = _elapsed(backend, start)
    storage = _describe(plan, backend, in_host_memory)
    return _Outcome(
        alpha, k_alpha, predictions, residual, steps, jitter, plan.dtype.name, storage, sums.feature_dim, seconds
    )


def _feature_blocks(features, x_test):
    """An iterator over the feature blocks, and their number when known."""
    if isinstance(features, np.ndarray):
        if x_test is None:
            raise ValueError("x_test is required when features are the train inputs")
        return iter(pixel_blocks(features, np.asarray(x_test))), 1
    if x_test is not None:
        raise ValueError("x_test must be None when features are feature blocks (they carry the test features)")
    return iter(features), (len(features) if hasattr(features, "__len__") else None)


def _default_budget(backend) -> int:
    """The backend's own default budget (device memory on a GPU), else a share of the available RAM."""
    device_budget = getattr(backend, "default_memory_budget", None)
    return device_budget() if device_budget is not None else default_memory_budget()


def _elapsed(backend, start: float) -> float:
    """Seconds since ``start``, once the work queued on the backend's device (if any) has finished."""
    synchronize = getattr(backend, "synchronize", None)
    if synchronize is not None:
        synchronize()
    return time.perf_counter() - start


def _describe(plan: StoragePlan, backend, in_host_memory: bool) -> str:
    """Where the plan put the matrices, in the backend's terms."""
    if backend.device == "cpu":
        return plan.describe()
    return plan.describe("on the GPU", "in host memory" if in_host_memory else "on disk")


def _make_stores(plan: StoragePlan, train_size: int, test_size: int, backend, folder: Path | None):
    """The factor, reference and test-kernel stores: in memory, in ``folder``, or (without a folder)
    in the backend's host stores, as the plan says."""
    train_grid, test_grid = TileGrid(train_size, plan.tile_size), TileGrid(test_size, plan.tile_size)
    train_layout = TileLayout(train_grid, train_grid, lower=True)

    def store(layout, in_memory, name):
        if in_memory:
            return MemoryTileStore(layout, plan.dtype, backend)
        if folder is None:
            return backend.host_store(layout, plan.dtype)
        return FileTileStore(layout, plan.dtype, backend, folder / f"{name}.tiles")

    return (
        store(train_layout, plan.factor_in_memory, "factor"),
        store(train_layout, plan.reference_in_memory, "reference"),
        store(TileLayout(test_grid, train_grid), plan.test_in_memory, "test"),
    )


def _factor_with_jitter(factor, reference, ridge, strict, mean_diagonal, callback) -> float:
    """Factor ``K + (ridge + jitter) I`` in place; return the jitter (0 unless a breakdown forced one).

    A backend with its own ``tiled_cholesky`` (the GPU's, which also streams host tiles) is used instead.
    """
    cholesky = getattr(factor.backend, "tiled_cholesky", tiled_cholesky)
    stage = StageProgress(callback, "factor", cholesky_operation_count(factor.layout.rows.count))
    jitter = 0.0
    if ridge:
        add_to_diagonal(factor, ridge)
    while True:
        try:
            cholesky(factor, stage)
            return jitter
        except NotPositiveDefiniteError as error:
            if strict:
                raise
            jitter = 10 * jitter if jitter else mean_diagonal * max(FIRST_JITTER, float(np.finfo(factor.dtype).eps))
            if jitter > MAX_JITTER * mean_diagonal:
                raise NotPositiveDefiniteError(error.row, error.size, factor.dtype, jitter / 10) from None
        copy_tiles(reference, factor)
        add_to_diagonal(factor, ridge + jitter)
        stage.restart()


def _refined_solve(factor, reference, y, ridge, max_steps, callback):
    """``α`` with iterative refinement: ``α += (L Lᵀ)⁻¹ (Y - (K + λI) α)`` while the residual halves.

    Returns ``(α, K α, relative residual, accepted refinement steps)``.
    """
    xp = factor.backend.xp
    pass_steps = 2 * len(factor.layout.tiles) + len(reference.layout.tiles)
    stage = StageProgress(callback, "solve", pass_steps)
    y_norm = float(xp.linalg.norm(y))

    def evaluate(alpha):
        k_alpha = symmetric_matmul(reference, alpha, stage)
        residual = y - k_alpha - ridge * alpha
        return k_alpha, residual, float(xp.linalg.norm(residual)) / y_norm

    alpha = cholesky_solve(factor, y, stage)
    k_alpha, residual, error = evaluate(alpha)
    steps = 0
    while error > REFINEMENT_TOLERANCE and steps < max_steps:
        stage.extend(pass_steps)
        candidate = alpha + cholesky_solve(factor, residual, stage)
        candidate_k_alpha, candidate_residual, candidate_error = evaluate(candidate)
        if not candidate_error < error:
            break
        previous_error = error
        alpha, k_alpha, residual, error = candidate, candidate_k_alpha, candidate_residual, candidate_error
        steps += 1
        if error > previous_error / 2:
            break
    return alpha, k_alpha, error, steps
