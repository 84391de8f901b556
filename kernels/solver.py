"""Kernel regression ``(K + λI) α = Y`` by a tiled Cholesky factorization, in or out of core.

:func:`solve_kernel_regression` builds the train kernel from feature blocks,
factors ``K + λI`` tile by tile (adding jitter on breakdown unless ``strict``),
solves for all outputs at once with iterative refinement against a pristine ``K``
(residuals in float64) and predicts ``K_test,train α``. The pristine ``K`` and the
test kernel are recomputed from the features when those fit in memory as one block
(:class:`~harness.kernels.sources.RecomputedKernel`), else stored
(:class:`~harness.kernels.sources.StoredKernel`).
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

from harness.kernels.backend import get_backend
from harness.kernels.gram import FeatureBlocks, KernelTiles, check_kernel, pixel_blocks
from harness.kernels.linalg import NotPositiveDefiniteError, cholesky_operation_count, cholesky_solve, tiled_cholesky
from harness.kernels.memory import default_memory_budget, parse_memory_size, peak_rss_bytes
from harness.kernels.plan import StoragePlan, check_disk_space, plan_storage
from harness.kernels.progress import ProgressCallback, StageProgress
from harness.kernels.sources import RecomputedKernel, StoredKernel
from harness.kernels.tiles import FileTileStore, MemoryTileStore, TileGrid, TileLayout, add_to_diagonal

REFINEMENT_TOLERANCE = 1e-10
"""Refinement stops once ‖Y - (K + λI) α‖ / ‖Y‖ is below this."""
FIRST_JITTER = 1e-10
"""First jitter tried, relative to the mean of K's diagonal (at least the dtype's epsilon)."""
MAX_JITTER = 1e-1
"""Largest jitter tried, relative to the mean of K's diagonal; each retry multiplies by 10."""


class NonFiniteSolutionError(ArithmeticError):
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
    ``dtype`` is the storage of the factor's tiles: "float64", "float32" (refined
    against float64 residuals) or "auto". When the features are a single block (raw
    pixels), the residuals are computed against the float64 kernel, recomputed from
    the features, and neither a copy of ``K`` nor the test kernel is stored; "auto"
    then factors in float32 and keeps that solution when refinement brings the
    residual to :data:`REFINEMENT_TOLERANCE`, else solves again in float64. With
    several feature blocks the kernels are stored, and "auto" takes float64 when its
    factor fits in memory, float32 otherwise. The dtype used is
    :attr:`KernelRegressionResult.dtype`.
    ``memory_budget`` (bytes or e.g. "20GB"; default a share of the available RAM)
    bounds the solver's own arrays; what does not fit goes to memory-mapped files in
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
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    y = np.asarray(y_onehot, dtype=np.float64)
    if y.ndim != 2 or not np.isfinite(y).all():
        raise ValueError(f"y_onehot must be a finite (n, k) array, got shape {y.shape}")
    blocks, expected_blocks = _feature_blocks(features, x_test)
    first = next(blocks, None)
    if first is None:
        raise ValueError("the feature map yielded no feature blocks")
    second = next(blocks, None) if expected_blocks != 1 else None
    array_backend = get_backend(backend)
    budget = _default_budget(array_backend) if memory_budget is None else parse_memory_size(memory_budget)
    feature_bytes = None if second is not None else _feature_bytes(first)
    plan_for = partial(plan_storage, len(y), len(first[1]), y.shape[1], budget=budget, tile_size=tile_size)
    plan = plan_for(dtype=dtype, feature_bytes=feature_bytes)
    if plan.recompute:
        source = RecomputedKernel(KernelTiles(*first, kernel, bandwidth, array_backend))
    else:
        blocks = itertools.chain([first] if second is None else [first, second], blocks)
        source = StoredKernel(blocks, len(first[1]), expected_blocks, kernel, bandwidth)
    solve = partial(
        _solve,
        source=source,
        y=y,
        ridge=ridge,
        strict=strict,
        max_steps=max_refinement_steps,
        backend=array_backend,
        temp_dir=temp_dir,
        progress=progress,
    )
    outcome = solve(plan)
    if dtype == "auto" and plan.recompute and plan.dtype == np.float32 and not outcome.converged:
        float64_plan = plan_for(dtype="float64", feature_bytes=feature_bytes)
        outcome = solve(float64_plan).after(outcome)
        plan = float64_plan

    xp = array_backend.xp
    finite = xp.isfinite(outcome.alpha).all() and xp.isfinite(outcome.predictions).all()
    if not (np.isfinite(outcome.residual) and bool(finite)):
        raise NonFiniteSolutionError(
            f"the {plan.dtype.name} solve produced non-finite values (jitter {outcome.jitter:g})"
        )
    alpha, k_alpha = outcome.alpha, outcome.k_alpha
    return KernelRegressionResult(
        predictions=array_backend.to_host(outcome.predictions),
        train_predictions=array_backend.to_host(k_alpha),
        alpha=array_backend.to_host(alpha),
        rkhs_norm=float(np.sqrt(max(float((alpha * k_alpha).sum()), 0.0))),
        jitter=outcome.jitter,
        relative_residual=outcome.residual,
        refinement_steps=outcome.steps,
        dtype=plan.dtype.name,
        backend=array_backend.name,
        device=array_backend.device,
        storage=_describe(plan, array_backend, outcome.in_host_memory),
        feature_dim=source.feature_dim,
        peak_memory_bytes=peak_rss_bytes(),
        **outcome.seconds,
    )


@dataclass
class _Outcome:
    """What one factor-and-solve attempt produced, and how long its stages took."""

    alpha: object
    k_alpha: object
    predictions: object
    residual: float
    steps: int
    jitter: float
    in_host_memory: bool
    seconds: dict

    @property
    def converged(self) -> bool:
        return self.residual <= REFINEMENT_TOLERANCE

    def after(self, earlier: _Outcome) -> _Outcome:
        """This outcome, with the seconds of an ``earlier`` attempt added to its own."""
        self.seconds = {stage: seconds + earlier.seconds[stage] for stage, seconds in self.seconds.items()}
        return self


def _solve(plan: StoragePlan, *, source, y, ridge, strict, max_steps, backend, temp_dir, progress) -> _Outcome:
    """Build the factor as ``plan`` says, factor it, solve with refinement and predict."""
    # A GPU backend keeps what does not fit on the device in host memory when it fits there.
    in_host_memory = hasattr(backend, "host_store") and plan.disk_bytes <= default_memory_budget()
    seconds = {}
    with ExitStack() as cleanup:
        folder = None
        if plan.disk_bytes and not in_host_memory:
            base = Path(temp_dir) if temp_dir is not None else Path(tempfile.gettempdir())
            check_disk_space(plan, base)
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="harness-kernel-", dir=base)))
        factor, reference, test = _make_stores(plan, len(y), source.test_size, backend, folder)

        start = time.perf_counter()
        source.build(factor, reference, test, progress)
        seconds["gram_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        refill = partial(source.refill, factor, reference)
        jitter = _factor_with_jitter(factor, refill, ridge, strict, source.mean_diagonal, progress)
        seconds["factor_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        product = partial(source.train_product, factor.layout, reference)
        alpha, k_alpha, residual, steps = _refined_solve(
            factor, product, backend.asarray(y), ridge, max_steps, progress
        )
        seconds["solve_seconds"] = _elapsed(backend, start)

        start = time.perf_counter()
        predictions = source.test_product(test, factor.layout, alpha, progress)
        seconds["predict_seconds"] = _elapsed(backend, start)
    return _Outcome(alpha, k_alpha, predictions, residual, steps, jitter, in_host_memory, seconds)


def _feature_bytes(block) -> int:
    """Memory for keeping a single feature block: the arrays, float32 and float64 copies."""
    train, test = block
    return (train.size + test.size) * (train.dtype.itemsize + 4 + 8)


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
    in the backend's host stores, as the plan says; reference and test are None when recomputed."""
    train_grid, test_grid = TileGrid(train_size, plan.tile_size), TileGrid(test_size, plan.tile_size)
    train_layout = TileLayout(train_grid, train_grid, lower=True)

    def store(layout, in_memory, name):
        if in_memory:
            return MemoryTileStore(layout, plan.dtype, backend)
        if folder is None:
            return backend.host_store(layout, plan.dtype)
        return FileTileStore(layout, plan.dtype, backend, folder / f"{name}.tiles")

    factor = store(train_layout, plan.factor_in_memory, "factor")
    if plan.recompute:
        return factor, None, None
    return (
        factor,
        store(train_layout, plan.reference_in_memory, "reference"),
        store(TileLayout(test_grid, train_grid), plan.test_in_memory, "test"),
    )


def _factor_with_jitter(factor, refill, ridge, strict, mean_diagonal, callback) -> float:
    """Factor ``K + (ridge + jitter) I`` in place; return the jitter (0 unless a breakdown forced one).

    ``refill()`` writes ``K`` into ``factor`` again before a retry with more jitter.

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
        refill()
        add_to_diagonal(factor, ridge + jitter)
        stage.restart()


def _refined_solve(factor, kernel_product, y, ridge, max_steps, callback):
    """``α`` with iterative refinement: ``α += (L Lᵀ)⁻¹ (Y - (K + λI) α)`` while the residual halves.

    ``kernel_product(x, progress)`` is ``K x`` in float64, one progress step per lower tile.
    Returns ``(α, K α, relative residual, accepted refinement steps)``.
    """
    xp = factor.backend.xp
    pass_steps = 3 * len(factor.layout.tiles)
    stage = StageProgress(callback, "solve", pass_steps)
    y_norm = float(xp.linalg.norm(y))

    def evaluate(alpha):
        k_alpha = kernel_product(alpha, stage)
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
