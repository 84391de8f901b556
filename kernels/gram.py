"""Kernel matrices built tile by tile from blocks of feature dimensions.

A feature map yields pairs ``(F_train_b, F_test_b)``: float32 arrays of shape
(n, d_b) and (m, d_b) for successive blocks of feature dimensions; raw pixels
are a single block. :func:`accumulate_grams` sums the linear Grams
``F_train F_trainᵀ`` (lower tiles) and ``F_test F_trainᵀ`` and the squared row
norms over the blocks, so the full feature matrix is never held.
:func:`apply_kernel` then turns a Gram tile into a kernel tile:

- ``linear``:    k(x, y) = x·y
- ``gaussian``:  k(x, y) = exp(-γ ‖x - y‖²)
- ``laplacian``: k(x, y) = exp(-γ ‖x - y‖₂), the Euclidean (not Manhattan) distance

with ``‖x - y‖² = ‖x‖² + ‖y‖² - 2 x·y`` clipped at 0, and γ the ``bandwidth``.

When the features are one block held in memory (raw pixels), :class:`KernelTiles`
computes any kernel tile again on demand, in any dtype, so that the solver keeps
neither a copy of the train kernel nor the test kernel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from harness.kernels.progress import StageProgress, advance
from harness.kernels.tiles import STRIP_WIDTH, TileGrid, TileLayout, TileStore, column_strips

KERNELS = ("linear", "gaussian", "laplacian")

NORM_ROWS = 4096
"""Rows upcast to float64 at once when computing squared row norms."""

FeatureBlocks = Iterable[tuple[np.ndarray, np.ndarray]]
"""Pairs ``(F_train_b, F_test_b)`` of shapes (n, d_b) and (m, d_b), one per block of feature dimensions."""


def pixel_blocks(x_train: np.ndarray, x_test: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Raw inputs as a single feature block: each example flattened to one row."""
    return [(x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1))]


def check_kernel(kernel: str, bandwidth: float | None) -> None:
    """Raise ValueError unless ``kernel`` is known and has the bandwidth it needs."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; available: {', '.join(KERNELS)}")
    if kernel != "linear" and (bandwidth is None or not bandwidth > 0):
        raise ValueError(f"the {kernel} kernel needs a positive bandwidth γ, got {bandwidth}")


def apply_kernel(tile, row_sq_norms, col_sq_norms, kernel: str, bandwidth: float | None, xp, same_points: bool = False):
    """Turn the Gram tile ``x_i·y_j`` into the kernel tile ``k(x_i, y_j)`` in place, strip by strip.

    ``same_points`` marks a diagonal tile of a train×train matrix: its diagonal is
    set to exactly ``k(x, x) = 1`` rather than a rounding residue.
    """
    if kernel == "linear":
        return tile
    row_norms = row_sq_norms.astype(tile.dtype)[:, None]
    for start, strip in column_strips(tile):
        strip *= 2  # strip becomes -‖x - y‖² = 2 x·y - ‖x‖² - ‖y‖²
        strip -= row_norms
        strip -= col_sq_norms[start : start + strip.shape[1]].astype(tile.dtype)[None, :]
        xp.minimum(strip, 0, out=strip)
        if kernel == "laplacian":
            xp.negative(strip, out=strip)
            xp.sqrt(strip, out=strip)
        strip *= -bandwidth if kernel == "laplacian" else bandwidth
        xp.exp(strip, out=strip)
    if same_points:
        xp.fill_diagonal(tile, 1.0)
    return tile


class KernelTiles:
    """Kernel tiles computed on demand from features held in memory: one GEMM and the
    :func:`apply_kernel` epilogue per column strip, so each strip is finished while in cache.

    ``train`` and ``test`` are (n, d) and (m, d) float32 feature arrays. A tile is
    computed in the dtype of the array it is written to (float64 from float64
    copies of the features, made when first asked for).
    """

    def __init__(self, train, test, kernel: str, bandwidth: float | None, backend):
        _check_block(train, test, len(train), len(test), 0)
        self.kernel, self.bandwidth, self.backend = kernel, bandwidth, backend
        self.epilogue = getattr(backend, "apply_kernel", None) or partial(apply_kernel, xp=backend.xp)
        self._features = {"train": backend.asarray(train), "test": backend.asarray(test)}
        self._copies = {}
        self.feature_dim = train.shape[1]
        self.train_sq_norms = _sq_norms(self._features["train"], TileGrid(len(train), NORM_ROWS), backend.xp)
        self.test_sq_norms = _sq_norms(self._features["test"], TileGrid(len(test), NORM_ROWS), backend.xp)

    def fill(self, out, rows: slice, cols: slice, side: str = "train") -> None:
        """Write ``k(x_rows, x_train_cols)`` into ``out`` (``x`` the ``side`` features: "train" or "test")."""
        x_rows, x_cols = self._get(side, out.dtype)[rows], self._get("train", out.dtype)[cols]
        norms = self.train_sq_norms if side == "train" else self.test_sq_norms
        self.backend.gemm_update(out, x_rows, x_cols, alpha=1.0, beta=0.0)
        self.epilogue(out, norms[rows], self.train_sq_norms[cols], self.kernel, self.bandwidth)
        if side == "train" and self.kernel != "linear":
            first, last = max(rows.start, cols.start), min(rows.stop, cols.stop)
            if first < last:  # k(x, x) = 1 exactly, not a rounding residue
                on_diagonal = self.backend.xp.arange(first, last)
                out[on_diagonal - rows.start, on_diagonal - cols.start] = 1.0

    def fill_store(self, store: TileStore, progress: StageProgress | None = None) -> None:
        """Write the train kernel into the lower tiles of ``store``, one column strip of a tile at a time."""
        grid = store.layout.rows
        for i, j in store.layout.tiles:
            with store.modify(i, j) as tile:
                for start, strip in column_strips(tile):
                    first = grid.span(j).start + start
                    self.fill(strip, grid.span(i), slice(first, first + strip.shape[1]))
            advance(progress)

    def matmul(self, layout: TileLayout, x, dtype, side: str = "train", progress: StageProgress | None = None):
        """``K x`` in float64, ``K`` the train kernel (``layout`` its lower tiles; ``K`` is symmetric) or the
        test×train kernel (``side="test"``), computed strip by strip in ``dtype`` and never stored."""
        xp = self.backend.xp
        rows, cols = layout.rows, layout.cols
        product = xp.zeros((rows.size, x.shape[1]), dtype=xp.float64)
        scratch = {}
        for i, j in layout.tiles:
            width = STRIP_WIDTH if xp is np else cols.length(j)
            for first in range(cols.span(j).start, cols.span(j).stop, width):
                columns = slice(first, min(first + width, cols.span(j).stop))
                shape = (rows.length(i), columns.stop - columns.start)
                if shape not in scratch:
                    scratch[shape] = xp.empty(shape, dtype=dtype, order="F")
                strip = scratch[shape]
                self.fill(strip, rows.span(i), columns, side)
                strip = strip.astype(xp.float64, copy=False)
                product[rows.span(i)] += strip @ x[columns]
                if layout.lower and i != j:
                    product[columns] += strip.T @ x[rows.span(i)]
            advance(progress)
        return product

    def _get(self, side: str, dtype):
        """The ``side`` features in ``dtype`` (a copy made once when they are in another dtype)."""
        features = self._features[side]
        if features.dtype == dtype:
            return features
        if (side, dtype) not in self._copies:
            self._copies[side, dtype] = features.astype(dtype)
        return self._copies[side, dtype]


def diagonal_mean(kernel: str, train_sq_norms) -> float:
    """Mean of the train kernel's diagonal: ‖x‖² for the linear kernel, 1 otherwise."""
    return float(train_sq_norms.mean()) if kernel == "linear" else 1.0


@dataclass
class GramSums:
    """What :func:`accumulate_grams` gathers besides the Gram tiles."""

    train_sq_norms: np.ndarray
    test_sq_norms: np.ndarray
    feature_dim: int
    blocks: int


def accumulate_grams(
    blocks: Iterator[tuple[np.ndarray, np.ndarray]],
    train: TileStore,
    test: TileStore,
    progress: StageProgress | None = None,
    expected_blocks: int | None = None,
) -> GramSums:
    """Sum ``F_train F_trainᵀ`` into ``train`` (lower tiles) and ``F_test F_trainᵀ`` into ``test``.

    Each block is cast to the stores' dtype once; the tiles are computed by
    GEMMs on tile-high strips of its rows. ``expected_blocks`` (when known)
    sizes the progress total; otherwise the total grows block by block.
    """
    backend = train.backend
    xp = backend.xp
    train_rows, test_rows = train.layout.rows, test.layout.rows
    tiles_per_block = len(train.layout.tiles) + len(test.layout.tiles)
    sums = GramSums(xp.zeros(train_rows.size), xp.zeros(test_rows.size), 0, 0)
    for f_train, f_test in blocks:
        _check_block(f_train, f_test, train_rows.size, test_rows.size, sums.blocks)
        if progress is not None and sums.blocks >= (expected_blocks or 1):
            progress.extend(tiles_per_block)
        f_train = backend.asarray(f_train, dtype=train.dtype)
        f_test = backend.asarray(f_test, dtype=train.dtype)
        beta = 1.0 if sums.blocks else 0.0
        for store, rows, features in ((train, train_rows, f_train), (test, test_rows, f_test)):
            for i, j in store.layout.tiles:
                with store.modify(i, j) as tile:
                    backend.gemm_update(tile, features[rows.span(i)], f_train[train_rows.span(j)], alpha=1.0, beta=beta)
                advance(progress)
        sums.train_sq_norms += _sq_norms(f_train, train_rows, xp)
        sums.test_sq_norms += _sq_norms(f_test, test_rows, xp)
        sums.feature_dim += f_train.shape[1]
        sums.blocks += 1
    if not sums.blocks:
        raise ValueError("the feature map yielded no feature blocks")
    return sums


def finish_kernels(
    sums: GramSums,
    train: TileStore,
    test: TileStore,
    reference: TileStore,
    kernel: str,
    bandwidth: float | None,
    progress: StageProgress | None = None,
) -> None:
    """Turn the accumulated Grams into kernel matrices in place and copy the train kernel to ``reference``.

    A backend with its own ``apply_kernel`` (the GPU's fused kernel) is used instead of :func:`apply_kernel`.
    """
    backend = train.backend
    epilogue = getattr(backend, "apply_kernel", None) or partial(apply_kernel, xp=backend.xp)
    train_rows, test_rows = train.layout.rows, test.layout.rows
    for i, j in train.layout.tiles:
        with train.modify(i, j) as tile:
            norms_i, norms_j = sums.train_sq_norms[train_rows.span(i)], sums.train_sq_norms[train_rows.span(j)]
            epilogue(tile, norms_i, norms_j, kernel, bandwidth, same_points=i == j)
        reference.write(i, j, tile)
        advance(progress)
    for i, j in test.layout.tiles:
        with test.modify(i, j) as tile:
            norms_i, norms_j = sums.test_sq_norms[test_rows.span(i)], sums.train_sq_norms[train_rows.span(j)]
            epilogue(tile, norms_i, norms_j, kernel, bandwidth)
        advance(progress)


def _sq_norms(features, rows, xp):
    """Squared row norms in float64, one tile-high strip at a time."""
    norms = xp.empty(rows.size)
    for index in range(rows.count):
        strip = features[rows.span(index)].astype(xp.float64)
        norms[rows.span(index)] = (strip * strip).sum(axis=1)
    return norms


def _check_block(f_train, f_test, train_size: int, test_size: int, index: int) -> None:
    if f_train.ndim != 2 or f_test.ndim != 2:
        raise ValueError(f"feature block {index}: expected 2-D arrays, got shapes {f_train.shape} and {f_test.shape}")
    if f_train.shape[0] != train_size or f_test.shape[0] != test_size or f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            f"feature block {index}: shapes {f_train.shape} and {f_test.shape} do not match "
            f"{train_size} train and {test_size} test examples with the same feature dimensions"
        )
    if not (np.isfinite(f_train).all() and np.isfinite(f_test).all()):
        raise ValueError(f"feature block {index} has non-finite values")
