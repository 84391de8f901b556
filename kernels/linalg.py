"""Blocked linear algebra on tile stores: Cholesky factorization, triangular solves, products.

Every dense operation goes through the backend on one tile (or one tile-high
strip of right-hand sides) at a time, so no LAPACK/BLAS call sees the whole
matrix and the same code runs on in-memory and file-backed stores.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from harness.errors import HarnessError
from harness.kernels.progress import StageProgress, advance
from harness.kernels.tiles import STRIP_WIDTH, TileStore, column_strips


class NotPositiveDefiniteError(HarnessError, ArithmeticError):
    """The Cholesky factorization broke down: the matrix is not numerically positive definite."""

    def __init__(self, row: int, size: int, dtype, jitter: float = 0.0):
        self.row, self.size, self.jitter = row, size, jitter
        tried = f" even with jitter {jitter:.3g}" if jitter else ""
        super().__init__(
            f"Cholesky breakdown at pivot row {row} (0-based) of {size} in {dtype}{tried}: "
            "K + ridge·I is not numerically positive definite; raise the ridge or allow jitter"
        )


def cholesky_operation_count(tile_count: int) -> int:
    """Tile operations (potrf, trsm, syrk, gemm) of a right-looking tiled Cholesky."""
    return sum(1 + (tile_count - k - 1) + (tile_count - k - 1) * (tile_count - k) // 2 for k in range(tile_count))


def tiled_cholesky(store: TileStore, progress: StageProgress | None = None) -> None:
    """Overwrite the lower tiles of ``store`` with ``L``, ``K = L Lᵀ`` (right-looking).

    Step ``k`` factors the diagonal tile, solves the tiles below it (the panel) and
    subtracts the panel's outer product from the trailing tiles. Raises
    :class:`NotPositiveDefiniteError` naming the global pivot row that failed.
    """
    backend, grid = store.backend, store.layout.rows
    for k in range(grid.count):
        with store.modify(k, k) as diagonal:
            info = backend.cholesky_in_place(diagonal)
            if info:
                raise NotPositiveDefiniteError(grid.span(k).start + info - 1, grid.size, store.dtype)
        advance(progress)
        panel = {}
        for i in range(k + 1, grid.count):
            with store.modify(i, k) as tile:
                backend.solve_panel(diagonal, tile)
            panel[i] = tile
            advance(progress)
        for j in range(k + 1, grid.count):
            with store.modify(j, j) as tile:
                backend.syrk_update(tile, panel[j])
            advance(progress)
            for i in range(j + 1, grid.count):
                with store.modify(i, j) as tile:
                    backend.gemm_update(tile, panel[i], panel[j])
                advance(progress)


def cholesky_solve(factor: TileStore, rhs, progress: StageProgress | None = None):
    """``(L Lᵀ)⁻¹ rhs`` for the factor ``L`` in ``factor``; ``rhs`` is (n, k), solved in the factor's dtype.

    Each triangular pass reads every tile of ``L`` once; the products of one column of tiles run
    on the backend's workers (:meth:`map_parallel`). Returns a float64 backend array.
    """
    backend, grid = factor.backend, factor.layout.rows
    xp = backend.xp
    solution = xp.array(rhs, dtype=factor.dtype)
    for j in range(grid.count):  # forward: L z = rhs, one column of tiles at a time
        rows_j = grid.span(j)
        solution[rows_j] = backend.solve_triangular(factor.read(j, j), solution[rows_j], transpose=False)
        below = range(j + 1, grid.count)
        for i, product in zip(below, backend.map_parallel(partial(_below_times, factor, j, solution[rows_j]), below)):
            solution[grid.span(i)] -= product
        advance(progress, grid.count - j)
    for j in reversed(range(grid.count)):  # backward: Lᵀ x = z, reading the same columns of tiles
        rows_j = grid.span(j)
        for product in backend.map_parallel(
            partial(_below_transposed_times, factor, j, solution), range(j + 1, grid.count)
        ):
            solution[rows_j] -= product
        solution[rows_j] = backend.solve_triangular(factor.read(j, j), solution[rows_j], transpose=True)
        advance(progress, grid.count - j)
    return solution.astype(xp.float64)


def _below_times(factor: TileStore, j: int, x, i: int):
    """``L_ij x``."""
    return _product(factor.read(i, j), x)


def _below_transposed_times(factor: TileStore, j: int, solution, i: int):
    """``L_ijᵀ solution_i``, ``solution_i`` the rows of tile ``i``."""
    return factor.read(i, j).T @ solution[factor.layout.rows.span(i)]


def symmetric_matmul(store: TileStore, x, progress: StageProgress | None = None):
    """``K x`` in float64, ``K`` symmetric with its lower tiles in ``store`` (diagonal tiles full)."""
    grid = store.layout.rows
    product = store.backend.xp.zeros((grid.size, x.shape[1]), dtype=store.backend.xp.float64)
    tiles = store.layout.tiles
    for (i, j), (times, transposed_times) in zip(
        tiles, store.backend.map_parallel(partial(_tile_products, store, x), tiles)
    ):
        product[grid.span(i)] += times
        if i != j:
            product[grid.span(j)] += transposed_times
        advance(progress)
    return product


def matmul(store: TileStore, x, progress: StageProgress | None = None):
    """``A x`` in float64 for a rectangular tiled matrix ``A`` in ``store``."""
    rows = store.layout.rows
    product = store.backend.xp.zeros((rows.size, x.shape[1]), dtype=store.backend.xp.float64)
    tiles = store.layout.tiles
    products = store.backend.map_parallel(partial(_tile_products, store, x, transposed=False), tiles)
    for (i, _), (times, _) in zip(tiles, products):
        product[rows.span(i)] += times
        advance(progress)
    return product


def _tile_products(store: TileStore, x, tile_index: tuple[int, int], transposed: bool = True):
    """``(A_ij x_j, A_ijᵀ x_i)`` in float64 for tile ``(i, j)`` of ``store``, ``x_i`` and ``x_j`` the rows of
    ``x`` at its rows and columns (``A_ijᵀ x_i`` is None unless ``transposed`` and ``i != j``).

    The products of each tile are summed by the caller in a fixed order, so that the result does
    not depend on which worker computed which tile.
    """
    i, j = tile_index
    xp = store.backend.xp
    rows, columns = store.layout.rows.span(i), store.layout.cols.span(j)
    transposed = transposed and i != j
    tile = store.read(i, j)
    times = xp.zeros((tile.shape[0], x.shape[1]), dtype=xp.float64)
    transposed_times = xp.empty((tile.shape[1], x.shape[1]), dtype=xp.float64) if transposed else None
    for start, strip in _float64_strips(tile, xp):
        strip_columns = slice(start, start + strip.shape[1])
        times += _product(strip, x[columns][strip_columns])
        if transposed:
            transposed_times[strip_columns] = strip.T @ x[rows]
    return times, transposed_times


def _product(matrix, x):
    """``matrix @ x`` for a Fortran-ordered ``matrix`` and a few columns ``x``, computed as ``(xᵀ matrixᵀ)ᵀ``:
    OpenBLAS streams the matrix 1.6-1.7x faster in that form (one thread, 4096-row tiles, 10 columns)."""
    return (x.T @ matrix.T).T


def _float64_strips(tile, xp):
    """``(first column, float64 strip)`` for the column strips of ``tile``.

    A float32 host tile is upcast strip by strip into one buffer that stays in cache, instead
    of into a tile-sized copy written to memory.
    """
    buffer = None
    for start, strip in column_strips(tile):
        if isinstance(strip, np.ndarray) and strip.dtype != np.float64:
            if buffer is None:
                buffer = np.empty((tile.shape[0], STRIP_WIDTH), order="F")
            np.copyto(buffer[:, : strip.shape[1]], strip)
            strip = buffer[:, : strip.shape[1]]
        yield start, strip.astype(xp.float64, copy=False)
