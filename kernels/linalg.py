"""Blocked linear algebra on tile stores: Cholesky factorization, triangular solves, products.

Every dense operation goes through the backend on one tile (or one tile-high
strip of right-hand sides) at a time, so no LAPACK/BLAS call sees the whole
matrix and the same code runs on in-memory and file-backed stores.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.kernels.progress import StageProgress, advance
from harness.kernels.tiles import TileStore, column_strips


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

    Returns a float64 backend array.
    """
    backend, grid = factor.backend, factor.layout.rows
    xp = backend.xp
    solution = xp.array(rhs, dtype=factor.dtype)
    with backend.memory_bound():
        for j in range(grid.count):  # forward: L z = rhs, one column of tiles at a time
            rows_j = grid.span(j)
            solution[rows_j] = backend.solve_triangular(factor.read(j, j), solution[rows_j], transpose=False)
            for i in range(j + 1, grid.count):
                solution[grid.span(i)] -= factor.read(i, j) @ solution[rows_j]
            advance(progress, grid.count - j)
        for j in reversed(range(grid.count)):  # backward: Lᵀ x = z, reading the same columns of tiles
            rows_j = grid.span(j)
            for i in range(j + 1, grid.count):
                solution[rows_j] -= factor.read(i, j).T @ solution[grid.span(i)]
            solution[rows_j] = backend.solve_triangular(factor.read(j, j), solution[rows_j], transpose=True)
            advance(progress, grid.count - j)
    return solution.astype(xp.float64)


def symmetric_matmul(store: TileStore, x, progress: StageProgress | None = None):
    """``K x`` in float64, ``K`` symmetric with its lower tiles in ``store`` (diagonal tiles full)."""
    xp = store.backend.xp
    grid = store.layout.rows
    product = xp.zeros((grid.size, x.shape[1]), dtype=xp.float64)
    with store.backend.memory_bound():
        for i, j in store.layout.tiles:
            rows = grid.span(i)
            for columns, strip in _float64_strips(store.read(i, j), grid.span(j).start, xp):
                product[rows] += strip @ x[columns]
                if i != j:
                    product[columns] += strip.T @ x[rows]
            advance(progress)
    return product


def matmul(store: TileStore, x, progress: StageProgress | None = None):
    """``A x`` in float64 for a rectangular tiled matrix ``A`` in ``store``."""
    xp = store.backend.xp
    rows, cols = store.layout.rows, store.layout.cols
    product = xp.zeros((rows.size, x.shape[1]), dtype=xp.float64)
    with store.backend.memory_bound():
        for i, j in store.layout.tiles:
            for columns, strip in _float64_strips(store.read(i, j), cols.span(j).start, xp):
                product[rows.span(i)] += strip @ x[columns]
            advance(progress)
    return product


def _float64_strips(tile, first_column: int, xp):
    """``(global columns, float64 strip)`` for the column strips of ``tile``.

    Upcasting a float32 tile strip by strip keeps the float64 copy in cache
    instead of writing a tile-sized copy to memory.
    """
    for start, strip in column_strips(tile):
        columns = slice(first_column + start, first_column + start + strip.shape[1])
        yield columns, strip.astype(xp.float64, copy=False)
