"""Kernel matrices built tile by tile from blocks of feature dimensions.

A feature map yields pairs ``(F_train_b, F_test_b)``: float32 arrays of shape
(n, d_b) and (m, d_b) for successive blocks of feature dimensions; raw pixels
are a single block. :func:`accumulate_grams` sums the linear Grams
``F_train F_trainᵀ`` (lower tiles) and ``F_test F_trainᵀ`` and the squared row
norms over the blocks, so the full feature matrix is never held, and with the
last block :func:`apply_kernel` turns each Gram tile into a kernel tile:

- ``linear``:    k(x, y) = x·y
- ``gaussian``:  k(x, y) = exp(-γ ‖x - y‖²)
- ``laplacian``: k(x, y) = exp(-γ ‖x - y‖₂), the Euclidean (not Manhattan) distance

with ``‖x - y‖² = ‖x‖² + ‖y‖² - 2 x·y`` clipped at 0, and γ the ``bandwidth``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np

from harness.errors import ConfigError
from harness.kernels.progress import StageProgress, advance
from harness.kernels.tiles import TileStore, column_strips

KERNELS = ("linear", "gaussian", "laplacian")

FeatureBlocks = Iterable[tuple[np.ndarray, np.ndarray]]
"""Pairs ``(F_train_b, F_test_b)`` of shapes (n, d_b) and (m, d_b), one per block of feature dimensions."""


def pixel_blocks(x_train: np.ndarray, x_test: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Raw inputs as a single feature block: each example flattened to one row."""
    return [(x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1))]


def check_kernel(kernel: str, bandwidth: float | None) -> None:
    """Raise ConfigError unless ``kernel`` is known and has the bandwidth it needs."""
    if kernel not in KERNELS:
        raise ConfigError(f"unknown kernel {kernel!r}; available: {', '.join(KERNELS)}")
    if kernel != "linear" and (bandwidth is None or not bandwidth > 0):
        raise ConfigError(f"the {kernel} kernel needs a positive bandwidth γ, got {bandwidth}")


def apply_kernel(
    tile,
    row_sq_norms,
    col_sq_norms,
    kernel: str,
    bandwidth: float | None,
    xp,
    same_points: bool = False,
    map_strips=map,
):
    """Turn the Gram tile ``x_i·y_j`` into the kernel tile ``k(x_i, y_j)`` in place, strip by strip.

    ``same_points`` marks a diagonal tile of a train×train matrix: its diagonal is
    set to exactly ``k(x, x) = 1`` rather than a rounding residue. ``map_strips(function, strips)``
    runs the strips (a backend's ``map_parallel`` runs them on all cores).
    """
    if kernel == "linear":
        return tile
    row_norms = row_sq_norms.astype(tile.dtype)[:, None]

    def transform(column_strip):
        start, strip = column_strip
        strip *= 2  # strip becomes -‖x - y‖² = 2 x·y - ‖x‖² - ‖y‖²
        strip -= row_norms
        strip -= col_sq_norms[start : start + strip.shape[1]].astype(tile.dtype)[None, :]
        xp.minimum(strip, 0, out=strip)
        if kernel == "laplacian":
            xp.negative(strip, out=strip)
            xp.sqrt(strip, out=strip)
        strip *= -bandwidth if kernel == "laplacian" else bandwidth
        xp.exp(strip, out=strip)

    for _ in map_strips(transform, column_strips(tile)):
        pass
    if same_points:
        xp.fill_diagonal(tile, 1.0)
    return tile


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
    kernel: str = "linear",
    bandwidth: float | None = None,
    reference: TileStore | None = None,
) -> GramSums:
    """Build the ``kernel`` matrices: ``k(F_train, F_train)`` into ``train`` (lower tiles) and
    ``k(F_test, F_train)`` into ``test``, summing the linear Grams over the feature blocks.

    Each block is cast to the stores' dtype once; the tiles are computed by GEMMs on
    tile-high strips of its rows. With the last block, each tile gets the kernel's
    epilogue (:func:`apply_kernel`, or the backend's own) right after its GEMM and a
    train tile is copied to ``reference`` (when given), so the matrices are written
    once. The iterator is read one block ahead to know the last one.
    ``expected_blocks`` (when known) sizes the progress total; otherwise the total
    grows block by block.
    """
    backend = train.backend
    xp = backend.xp
    epilogue = getattr(backend, "apply_kernel", None) or partial(apply_kernel, xp=xp, map_strips=backend.map_parallel)
    train_rows, test_rows = train.layout.rows, test.layout.rows
    tiles_per_block = len(train.layout.tiles) + len(test.layout.tiles)
    sums = GramSums(xp.zeros(train_rows.size), xp.zeros(test_rows.size), 0, 0)
    blocks = iter(blocks)
    block = next(blocks, None)
    if block is None:
        raise ValueError("the feature map yielded no feature blocks")
    while block is not None:
        f_train, f_test = block
        _check_block(f_train, f_test, train_rows.size, test_rows.size, sums.blocks)
        if progress is not None and sums.blocks >= (expected_blocks or 1):
            progress.extend(tiles_per_block)
        f_train = backend.asarray(f_train, dtype=train.dtype)
        f_test = backend.asarray(f_test, dtype=train.dtype)
        sums.train_sq_norms += _sq_norms(f_train, train_rows, xp)
        sums.test_sq_norms += _sq_norms(f_test, test_rows, xp)
        sums.feature_dim += f_train.shape[1]
        beta = 1.0 if sums.blocks else 0.0
        sums.blocks += 1
        block = next(blocks, None)
        last = block is None
        for store, rows, features, norms in (
            (train, train_rows, f_train, sums.train_sq_norms),
            (test, test_rows, f_test, sums.test_sq_norms),
        ):
            for i, j in store.layout.tiles:
                with store.modify(i, j) as tile:
                    backend.gemm_update(tile, features[rows.span(i)], f_train[train_rows.span(j)], alpha=1.0, beta=beta)
                    if last:
                        same_points = store is train and i == j
                        col_norms = sums.train_sq_norms[train_rows.span(j)]
                        epilogue(tile, norms[rows.span(i)], col_norms, kernel, bandwidth, same_points=same_points)
                        if store is train and reference is not None:
                            reference.write(i, j, tile)
                advance(progress)
        del f_train, f_test
    return sums


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
