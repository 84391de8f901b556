"""Kernel matrices built from feature blocks, tile by tile, against a direct computation."""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from harness.kernels.backend import NumpyBackend
from harness.kernels.gram import accumulate_grams, pixel_blocks
from harness.kernels.progress import StageProgress
from harness.kernels.tiles import FileTileStore, MemoryTileStore, TileGrid, TileLayout

TRAIN, TEST, TILE = 90, 37, 32


def direct_kernel(x, y, kernel, bandwidth):
    x, y = x.astype(np.float64), y.astype(np.float64)
    if kernel == "linear":
        return x @ y.T
    if kernel == "gaussian":
        return np.exp(-bandwidth * cdist(x, y, "sqeuclidean"))
    return np.exp(-bandwidth * cdist(x, y, "euclidean"))


def dense(store):
    """The full matrix of a store (lower layouts mirrored)."""
    rows, cols = store.layout.rows, store.layout.cols
    matrix = np.full((rows.size, cols.size), np.nan)
    for i, j in store.layout.tiles:
        matrix[rows.span(i), cols.span(j)] = store.read(i, j)
        if store.layout.lower:
            matrix[cols.span(j), rows.span(i)] = store.read(i, j).T
    return matrix


def make_stores(dtype, in_memory, folder):
    backend = NumpyBackend()
    train_grid, test_grid = TileGrid(TRAIN, TILE), TileGrid(TEST, TILE)
    layouts = {
        "train": TileLayout(train_grid, train_grid, lower=True),
        "reference": TileLayout(train_grid, train_grid, lower=True),
        "test": TileLayout(test_grid, train_grid),
    }
    if in_memory:
        return [MemoryTileStore(layout, dtype, backend) for layout in layouts.values()]
    return [FileTileStore(layout, dtype, backend, folder / name) for name, layout in layouts.items()]


def split_columns(x, widths):
    edges = np.cumsum([0, *widths])
    return [x[:, a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("kernel, bandwidth", [("linear", None), ("gaussian", 0.05), ("laplacian", 0.2)])
@pytest.mark.parametrize("in_memory", [True, False])
def test_feature_blocks_match_concatenated_features(kernel, bandwidth, in_memory, tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.random((TRAIN, 25), dtype=np.float32)
    x_test = rng.random((TEST, 25), dtype=np.float32)
    blocks = zip(split_columns(x_train, [10, 7, 8]), split_columns(x_test, [10, 7, 8]))
    train, reference, test = make_stores(np.float64, in_memory, tmp_path)

    sums = accumulate_grams(iter(blocks), train, test, kernel=kernel, bandwidth=bandwidth, reference=reference)

    assert sums.feature_dim == 25 and sums.blocks == 3
    np.testing.assert_allclose(dense(train), direct_kernel(x_train, x_train, kernel, bandwidth), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dense(test), direct_kernel(x_test, x_train, kernel, bandwidth), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(dense(reference), dense(train))


def test_float32_tiles_and_exact_unit_diagonal():
    rng = np.random.default_rng(1)
    x_train = rng.random((TRAIN, 784), dtype=np.float32)
    x_test = rng.random((TEST, 784), dtype=np.float32)
    train, reference, test = make_stores(np.float32, True, None)

    accumulate_grams(
        iter(pixel_blocks(x_train, x_test)), train, test, kernel="laplacian", bandwidth=0.1, reference=reference
    )

    assert train.read(0, 0).dtype == np.float32
    np.testing.assert_array_equal(np.diag(dense(train)), 1.0)
    np.testing.assert_allclose(dense(test), direct_kernel(x_test, x_train, "laplacian", 0.1), rtol=2e-4)


def test_gram_progress_grows_with_blocks_of_unknown_number():
    rng = np.random.default_rng(2)
    x_train, x_test = rng.random((TRAIN, 6)), rng.random((TEST, 6))
    train, reference, test = make_stores(np.float64, True, None)
    reports = []
    tiles = len(train.layout.tiles) + len(test.layout.tiles)
    progress = StageProgress(lambda *report: reports.append(report), "gram", tiles)

    blocks = ((x_train[:, [c]], x_test[:, [c]]) for c in range(6))
    accumulate_grams(blocks, train, test, progress, reference=reference)

    assert reports[-1] == ("gram", 6 * tiles, 6 * tiles)
    assert all(done <= total for _, done, total in reports)


def test_bad_feature_blocks_are_rejected():
    train, _, test = make_stores(np.float64, True, None)
    good = np.zeros((TRAIN, 3)), np.zeros((TEST, 3))
    with pytest.raises(ValueError, match="do not match"):
        accumulate_grams(iter([(good[0], np.zeros((TEST, 4)))]), train, test)
    with pytest.raises(ValueError, match="non-finite"):
        accumulate_grams(iter([good, (np.full((TRAIN, 3), np.nan), good[1])]), train, test)
    with pytest.raises(ValueError, match="no feature blocks"):
        accumulate_grams(iter([]), train, test)
