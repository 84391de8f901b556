"""Tiled Cholesky factorization and solves on tile stores, against SciPy on the whole matrix."""

import numpy as np
import pytest
import scipy.linalg
from tile_helpers import lower_part

from harness.kernels.backend import NumpyBackend, get_backend
from harness.kernels.linalg import (
    NotPositiveDefiniteError,
    cholesky_operation_count,
    cholesky_solve,
    matmul,
    symmetric_matmul,
    tiled_cholesky,
)
from harness.kernels.progress import StageProgress
from harness.kernels.tiles import FileTileStore, MemoryTileStore, TileGrid, TileLayout

SIZE, TILE = 150, 64


def random_spd(size, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size))
    return a @ a.T + size * np.eye(size)


def store_of(matrix, dtype=np.float64, lower=True, folder=None, tile=TILE):
    rows, cols = TileGrid(matrix.shape[0], tile), TileGrid(matrix.shape[1], tile)
    layout = TileLayout(rows, cols, lower=lower)
    if folder is None:
        store = MemoryTileStore(layout, dtype, NumpyBackend())
    else:
        store = FileTileStore(layout, dtype, NumpyBackend(), folder / "matrix.tiles")
    for i, j in layout.tiles:
        store.write(i, j, matrix[rows.span(i), cols.span(j)])
    return store


@pytest.mark.parametrize("on_disk", [False, True])
def test_tiled_cholesky_and_solve_match_scipy(on_disk, tmp_path):
    matrix = random_spd(SIZE)
    rhs = np.random.default_rng(1).standard_normal((SIZE, 10))
    store = store_of(matrix, folder=tmp_path if on_disk else None)
    progress = StageProgress(None, "factor", cholesky_operation_count(3))

    tiled_cholesky(store, progress)

    assert progress.done == progress.total
    np.testing.assert_allclose(lower_part(store), np.linalg.cholesky(matrix), atol=1e-12)
    expected = scipy.linalg.cho_solve(scipy.linalg.cho_factor(matrix), rhs)
    np.testing.assert_allclose(cholesky_solve(store, rhs), expected, rtol=1e-10, atol=1e-13)


def test_float32_factor_solves_to_float32_accuracy():
    matrix = random_spd(SIZE).astype(np.float32).astype(np.float64)
    rhs = np.random.default_rng(2).standard_normal((SIZE, 3))
    store = store_of(matrix, dtype=np.float32)
    tiled_cholesky(store)
    solution = cholesky_solve(store, rhs)
    assert solution.dtype == np.float64
    np.testing.assert_allclose(solution, np.linalg.solve(matrix, rhs), rtol=1e-4, atol=1e-6)


def test_breakdown_names_the_global_pivot_row():
    matrix = np.eye(SIZE)
    matrix[131, 131] = -1.0  # in the third tile, local row 3
    with pytest.raises(NotPositiveDefiniteError, match=r"pivot row 131 \(0-based\) of 150") as caught:
        tiled_cholesky(store_of(matrix))
    assert caught.value.row == 131


def test_products_by_tiles():
    rng = np.random.default_rng(3)
    symmetric = random_spd(SIZE)
    rectangular = rng.standard_normal((70, SIZE))
    x = rng.standard_normal((SIZE, 4))
    np.testing.assert_allclose(symmetric_matmul(store_of(symmetric), x), symmetric @ x, rtol=1e-12)
    np.testing.assert_allclose(matmul(store_of(rectangular, lower=False), x), rectangular @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("on_disk", [False, True])
def test_products_of_float32_tiles_are_float64_and_do_not_depend_on_the_workers(on_disk, tmp_path):
    rng = np.random.default_rng(4)
    symmetric = random_spd(1500).astype(np.float32)  # tiles of 600: strips of 256, 256 and 88 columns
    rectangular = rng.standard_normal((700, 1500)).astype(np.float32)
    x = rng.standard_normal((1500, 3))
    results = []
    for workers in (1, 3):
        stores = []
        for name, matrix, lower in (("symmetric", symmetric, True), ("rectangular", rectangular, False)):
            folder = tmp_path / f"{name}-{workers}" if on_disk else None
            if folder is not None:
                folder.mkdir()
            stores.append(store_of(matrix, dtype=np.float32, lower=lower, folder=folder, tile=600))
            stores[-1].backend.workers = workers
        results.append((symmetric_matmul(stores[0], x), matmul(stores[1], x), cholesky_solve(stores[0], x)))
    np.testing.assert_allclose(results[0][0], symmetric.astype(np.float64) @ x, rtol=1e-12)
    np.testing.assert_allclose(results[0][1], rectangular.astype(np.float64) @ x, rtol=1e-12, atol=1e-12)
    for one_worker, three_workers in zip(*results):
        np.testing.assert_array_equal(one_worker, three_workers)


def test_a_tile_file_rejects_a_tile_of_another_shape(tmp_path):
    store = store_of(random_spd(SIZE), folder=tmp_path)
    with pytest.raises(ValueError, match=r"tile \(1, 0\) has shape \(64, 64\)"):
        store.write(1, 0, np.zeros((64, 32)))


def test_unknown_backend_is_rejected():
    assert get_backend("numpy").device == "cpu"
    with pytest.raises(ValueError, match="available: numpy"):
        get_backend("tpu")
