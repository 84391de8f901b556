"""Built-in corruptions of Section 2.1 of the paper.

Each takes float images in [0, 1], a probability ``p`` and a seeded
``numpy.random.Generator``; test labels are never changed. Each says which training
examples it changed (``corrupted``) and, for label corruptions, which labels it drew
anew (``redrawn``).
"""

from __future__ import annotations

import numpy as np

from harness import hookimpl
from harness.data import ImageDataset


def true_labels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """No corruption."""
    return data.replace(corrupted=np.zeros(len(data.y_train), dtype=bool))


def random_labels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """Each training label, independently with probability p, becomes a uniform random class
    (possibly the same one, so about 0.9·p of labels change with 10 classes).

    ``redrawn`` marks the labels drawn anew; ``corrupted`` only those whose label changed.
    """
    n = len(data.y_train)
    replace = rng.random(n) < p
    drawn = rng.integers(0, data.num_classes, size=n)
    labels = np.where(replace, drawn, data.y_train)
    return data.replace(y_train=labels, corrupted=labels != data.y_train, redrawn=replace)


def every_image(data: ImageDataset) -> np.ndarray:
    """``corrupted`` of a corruption that changes every training image."""
    return np.ones(len(data.y_train), dtype=bool)


def _permute_pixels(images: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Permute pixel positions (all channels of a pixel move together)."""
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w, c)
    if permutation.ndim == 1:
        return flat[:, permutation].reshape(images.shape)
    return np.take_along_axis(flat, permutation[:, :, None], axis=1).reshape(images.shape)


def shuffled_pixels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """One fixed permutation of pixel positions applied to every train and test image."""
    _, h, w, _ = data.x_train.shape
    permutation = rng.permutation(h * w)
    return data.replace(
        x_train=_permute_pixels(data.x_train, permutation),
        x_test=_permute_pixels(data.x_test, permutation),
        corrupted=every_image(data),
    )


def _independent_permutations(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.random((count, size)).argsort(axis=1)


def random_pixels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """An independent random permutation of pixel positions for each train and test image."""
    _, h, w, _ = data.x_train.shape
    return data.replace(
        x_train=_permute_pixels(data.x_train, _independent_permutations(len(data.x_train), h * w, rng)),
        x_test=_permute_pixels(data.x_test, _independent_permutations(len(data.x_test), h * w, rng)),
        corrupted=every_image(data),
    )


def gaussian(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """Train and test images replaced by Gaussian noise with the training set's per-channel mean and std."""
    mean = data.x_train.mean(axis=(0, 1, 2), dtype=np.float64)
    std = data.x_train.std(axis=(0, 1, 2), dtype=np.float64)

    def noise(shape):
        return (rng.standard_normal(shape) * std + mean).astype(np.float32)

    return data.replace(x_train=noise(data.x_train.shape), x_test=noise(data.x_test.shape), corrupted=every_image(data))


@hookimpl
def register_corruptions(register):
    register("none", true_labels)
    register("random_labels", random_labels)
    register("shuffled_pixels", shuffled_pixels)
    register("random_pixels", random_pixels)
    register("gaussian", gaussian)
