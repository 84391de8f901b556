"""Samples for the theory commands: Gaussian points or flattened images, with real-valued labels.

Labels are class indices used as real numbers: "random" labels are drawn
uniformly from {0, …, num_classes − 1}; a data set's own labels keep their class index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_CLASSES = 10


def random_labels(n: int, rng: np.random.Generator, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """n classes drawn uniformly from {0, …, num_classes − 1}, as float64."""
    return rng.integers(num_classes, size=n).astype(np.float64)


def gaussian_sample(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n standard Gaussian points in R^d (float64) with random labels."""
    return rng.standard_normal((n, d)), random_labels(n, rng)


def image_sample(name: str, n: int, root: Path | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """The first n training images of data set ``name`` as (n, H·W·C) float64 pixels / 255,
    their labels as float64, and the number of classes.

    Raises ``harness.data.DataError`` when the data set cannot be loaded.
    """
    from harness.data import DataError, load_dataset, read_all

    data = load_dataset(name, root=root)
    if not 0 < n <= len(data.y_train):
        raise DataError(f"--n {n} is out of range: {name} has {len(data.y_train)} training images")
    pixels = read_all(data.x_train[:n]).reshape(n, -1) / 255.0
    return pixels, data.y_train[:n].astype(np.float64), data.num_classes
