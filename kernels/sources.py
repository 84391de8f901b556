"""Where the solver's kernel matrices come from: stored once, or recomputed from the features.

Both classes give the solver the same five operations: build the train kernel into
the factor's store (and whatever else they keep), write it there again before a
retry with jitter, and the products ``K x`` (train kernel) and ``K_test,train x``.
"""

from __future__ import annotations

from harness.kernels.gram import KernelTiles, accumulate_grams, diagonal_mean, finish_kernels
from harness.kernels.linalg import matmul, symmetric_matmul
from harness.kernels.progress import StageProgress
from harness.kernels.tiles import TileGrid, TileLayout, TileStore, copy_tiles


class RecomputedKernel:
    """Kernels computed again from features held in memory (:class:`KernelTiles`) whenever they are
    needed: no copy of the train kernel and no test kernel is stored, and the residuals and the
    predictions use the float64 kernel whatever the factor's dtype."""

    def __init__(self, tiles: KernelTiles):
        self.tiles = tiles
        self.test_size = len(tiles.test_sq_norms)
        self.feature_dim = tiles.feature_dim
        self.mean_diagonal = diagonal_mean(tiles.kernel, tiles.train_sq_norms)

    def build(self, factor: TileStore, reference: None, test: None, progress) -> None:
        self.tiles.fill_store(factor, StageProgress(progress, "gram", len(factor.layout.tiles)))

    def refill(self, factor: TileStore, reference: None) -> None:
        self.tiles.fill_store(factor)

    def train_product(self, layout: TileLayout, reference: None, x, progress):
        return self.tiles.matmul(layout, x, self.tiles.backend.xp.float64, "train", progress)

    def test_product(self, test: None, layout: TileLayout, x, progress):
        test_layout = TileLayout(TileGrid(self.test_size, layout.rows.tile_size), layout.cols)
        stage = StageProgress(progress, "predict", len(test_layout.tiles))
        return self.tiles.matmul(test_layout, x, self.tiles.backend.xp.float64, "test", stage)


class StoredKernel:
    """Kernels accumulated once over feature blocks (which are not kept) into tile stores: a
    pristine copy of the train kernel and the test kernel, in the factor's dtype."""

    def __init__(self, blocks, test_size: int, expected_blocks: int | None, kernel: str, bandwidth):
        self.blocks, self.test_size, self.expected_blocks = blocks, test_size, expected_blocks
        self.kernel, self.bandwidth = kernel, bandwidth
        self.sums = None

    @property
    def feature_dim(self) -> int:
        return self.sums.feature_dim

    @property
    def mean_diagonal(self) -> float:
        return diagonal_mean(self.kernel, self.sums.train_sq_norms)

    def build(self, factor: TileStore, reference: TileStore, test: TileStore, progress) -> None:
        tiles_per_block = len(factor.layout.tiles) + len(test.layout.tiles)
        stage = StageProgress(progress, "gram", tiles_per_block * ((self.expected_blocks or 1) + 1))
        self.sums = accumulate_grams(self.blocks, factor, test, stage, self.expected_blocks)
        finish_kernels(self.sums, factor, test, reference, self.kernel, self.bandwidth, stage)

    def refill(self, factor: TileStore, reference: TileStore) -> None:
        copy_tiles(reference, factor)

    def train_product(self, layout: TileLayout, reference: TileStore, x, progress):
        return symmetric_matmul(reference, x, progress)

    def test_product(self, test: TileStore, layout: TileLayout, x, progress):
        return matmul(test, x, StageProgress(progress, "predict", len(test.layout.tiles)))
