"""Helpers shared by the tile-store tests."""

import numpy as np


def lower_part(store) -> np.ndarray:
    """The lower triangle of a square tile store, as one host matrix."""
    grid = store.layout.rows
    matrix = np.zeros((grid.size, grid.size))
    for i, j in store.layout.tiles:
        matrix[grid.span(i), grid.span(j)] = store.backend.to_host(store.read(i, j))
    return np.tril(matrix)
