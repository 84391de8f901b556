"""Matrices stored as square tiles, in memory or in a file.

A :class:`TileLayout` places the tiles of a matrix, column of tiles after column
of tiles, in one flat buffer; a symmetric matrix keeps only its lower tiles
(``i >= j``), about half of the full matrix. Each tile is a Fortran-ordered block.
A store hands out one tile at a time: :class:`MemoryTileStore` as views into a
buffer, :class:`FileTileStore` as copies read from a temporary file, so the
blocked algorithms work the same on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STRIP_WIDTH = 256
"""Columns per strip: a strip of a tile stays in cache across several passes over it."""


def column_strips(tile) -> Iterator[tuple[int, object]]:
    """``(first column, view)`` for consecutive strips of :data:`STRIP_WIDTH` columns of ``tile``.

    A device (non-NumPy) tile comes whole: strips help CPU caches, and on a GPU
    they would only multiply kernel launches.
    """
    width = STRIP_WIDTH if isinstance(tile, np.ndarray) else max(tile.shape[1], 1)
    for start in range(0, tile.shape[1], width):
        yield start, tile[:, start : start + width]


@dataclass(frozen=True)
class TileGrid:
    """``size`` rows (or columns) cut into consecutive tiles of ``tile_size`` (the last may be shorter)."""

    size: int
    tile_size: int

    @property
    def count(self) -> int:
        return -(-self.size // self.tile_size)

    def span(self, index: int) -> slice:
        """The rows of tile ``index``."""
        start = index * self.tile_size
        return slice(start, min(start + self.tile_size, self.size))

    def length(self, index: int) -> int:
        span = self.span(index)
        return span.stop - span.start


class TileLayout:
    """Where each tile of a ``rows`` × ``cols`` tiled matrix sits in a flat buffer.

    ``lower=True`` (square symmetric matrices) keeps only the tiles on and below
    the diagonal. :attr:`tiles` lists the stored tiles in buffer order.
    """

    def __init__(self, rows: TileGrid, cols: TileGrid, lower: bool = False):
        if lower and rows != cols:
            raise ValueError("a lower-triangular layout needs the same row and column tiles")
        self.rows, self.cols, self.lower = rows, cols, lower
        self.tiles = [(i, j) for j in range(cols.count) for i in range(j if lower else 0, rows.count)]
        self._offsets = {}
        offset = 0
        for i, j in self.tiles:
            self._offsets[i, j] = offset
            offset += rows.length(i) * cols.length(j)
        self.size = offset
        """Number of stored elements."""

    def offset(self, i: int, j: int) -> int:
        """Position of tile ``(i, j)``'s first element in the buffer."""
        return self._offsets[i, j]

    def shape(self, i: int, j: int) -> tuple[int, int]:
        return (self.rows.length(i), self.cols.length(j))


class TileStore:
    """Tiles of one matrix: :meth:`read`, :meth:`write` and :meth:`modify` one tile at a time."""

    in_memory: bool

    def __init__(self, layout: TileLayout, dtype, backend):
        self.layout, self.dtype, self.backend = layout, np.dtype(dtype), backend

    @property
    def nbytes(self) -> int:
        return self.layout.size * self.dtype.itemsize

    def read(self, i: int, j: int):
        raise NotImplementedError

    def write(self, i: int, j: int, tile) -> None:
        raise NotImplementedError

    @contextmanager
    def modify(self, i: int, j: int) -> Iterator:
        """Tile ``(i, j)`` to change in place; it is saved when the block exits without error."""
        tile = self.read(i, j)
        yield tile
        self.write(i, j, tile)


class MemoryTileStore(TileStore):
    """Tiles in one backend array; :meth:`read` returns views, so changes are immediate."""

    in_memory = True

    def __init__(self, layout: TileLayout, dtype, backend):
        super().__init__(layout, dtype, backend)
        self._buffer = backend.xp.empty(layout.size, dtype=self.dtype)

    def read(self, i: int, j: int):
        start = self.layout.offset(i, j)
        rows, cols = self.layout.shape(i, j)
        return self._buffer[start : start + rows * cols].reshape((rows, cols), order="F")

    def write(self, i: int, j: int, tile) -> None:
        self.read(i, j)[...] = tile

    @contextmanager
    def modify(self, i: int, j: int) -> Iterator:
        yield self.read(i, j)


class FileTileStore(TileStore):
    """Tiles in a file; each access reads or writes one tile with ``pread``/``pwrite``.

    Only the tile being used is resident in this process; the rest stays on disk
    or in the page cache. Tiles may be read from several threads at once.
    """

    in_memory = False

    def __init__(self, layout: TileLayout, dtype, backend, path: Path):
        super().__init__(layout, dtype, backend)
        self.path = Path(path)
        with open(self.path, "wb") as file:
            file.truncate(self.nbytes)

    def read(self, i: int, j: int):
        tile = np.empty(self.layout.shape(i, j), self.dtype, order="F")
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            _transfer(os.preadv, descriptor, _bytes_of(tile), self._byte_offset(i, j))
        finally:
            os.close(descriptor)
        return self.backend.asarray(tile)

    def write(self, i: int, j: int, tile) -> None:
        tile = np.asfortranarray(self.backend.to_host(tile), dtype=self.dtype)
        if tile.shape != self.layout.shape(i, j):
            raise ValueError(f"tile ({i}, {j}) has shape {self.layout.shape(i, j)}, got {tile.shape}")
        descriptor = os.open(self.path, os.O_WRONLY)
        try:
            _transfer(os.pwritev, descriptor, _bytes_of(tile), self._byte_offset(i, j))
        finally:
            os.close(descriptor)

    def _byte_offset(self, i: int, j: int) -> int:
        return self.layout.offset(i, j) * self.dtype.itemsize


def _bytes_of(tile: np.ndarray) -> memoryview:
    """The bytes of a Fortran-ordered ``tile``, in memory order."""
    return memoryview(tile.T).cast("B")


def _transfer(call, descriptor: int, remaining: memoryview, offset: int) -> None:
    """``os.preadv`` or ``os.pwritev`` until all of ``remaining`` has moved (a call may move fewer bytes)."""
    while remaining:
        moved = call(descriptor, [remaining], offset)
        if moved == 0:
            raise OSError(f"the tile file ended {len(remaining)} bytes early")
        remaining, offset = remaining[moved:], offset + moved


def copy_tiles(source: TileStore, target: TileStore) -> None:
    """Copy every tile of ``source`` into ``target`` (same layout)."""
    for i, j in source.layout.tiles:
        target.write(i, j, source.read(i, j))


def add_to_diagonal(store: TileStore, value: float) -> None:
    """Add ``value`` to the diagonal of a square tiled matrix."""
    xp = store.backend.xp
    for k in range(store.layout.rows.count):
        with store.modify(k, k) as tile:
            diagonal = xp.arange(tile.shape[0])
            tile[diagonal, diagonal] += value
