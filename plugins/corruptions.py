"""Built-in corruptions of Section 2.1 of the paper.

Each takes float images in [0, 1], a probability ``p`` and a seeded
``numpy.random.Generator``; test labels are never changed. Each says which training
examples it changed (``corrupted``) and, for label corruptions, which labels it drew
anew (``redrawn``).

Every one is defined per example, so that it corrupts a data set streamed from disk exactly as the
same data set in memory: labels are drawn over the label vector (which every data set holds), images
through a per-example transform (:func:`harness.data.transform_images`) whose draws come from
(seed, split, example index) alone. Before corruption scheme 2 (``runs.corruption_scheme``),
random_pixels and gaussian drew over whole splits at once; the other three draw as they always did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness import hookimpl
from harness.data import ImageDataset, channel_statistics, example_rng, transform_images


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
    """Permute pixel positions (all channels of a pixel move together); one permutation, or one per image."""
    n, h, w, c = images.shape
    flat = images.reshape(n, h * w, c)
    if permutation.ndim == 1:
        return flat[:, permutation].reshape(images.shape)
    return np.take_along_axis(flat, permutation[:, :, None], axis=1).reshape(images.shape)


def _both_splits(data: ImageDataset, transform) -> ImageDataset:
    """Train and test images through the per-example ``transform``; every training image changes."""
    return data.replace(
        x_train=transform_images(data.x_train, transform, "train"),
        x_test=transform_images(data.x_test, transform, "test"),
        corrupted=every_image(data),
    )


@dataclass(frozen=True)
class PixelPermutation:
    """The same permutation of pixel positions for every image."""

    permutation: np.ndarray

    def __call__(self, images, split, indices):
        return _permute_pixels(images, self.permutation)


@dataclass(frozen=True)
class RandomPermutations:
    """A permutation of pixel positions of each image's own, drawn from (``entropy``, split, index)."""

    entropy: int

    def __call__(self, images, split, indices):
        _, h, w, _ = images.shape
        drawn = [example_rng(self.entropy, split, index).permutation(h * w) for index in indices]
        return _permute_pixels(images, np.stack(drawn) if drawn else np.empty((0, h * w), dtype=np.int64))


@dataclass(frozen=True)
class GaussianInputs:
    """Each image replaced by Gaussian noise of per-channel ``mean`` and ``std``, drawn from
    (``entropy``, split, index)."""

    mean: np.ndarray
    std: np.ndarray
    entropy: int

    def __call__(self, images, split, indices):
        out = np.empty(images.shape, dtype=np.float32)
        for row, index in enumerate(indices):
            noise = example_rng(self.entropy, split, index).standard_normal(images.shape[1:])
            out[row] = noise * self.std + self.mean
        return out


def shuffled_pixels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """One fixed permutation of pixel positions applied to every train and test image."""
    _, h, w, _ = data.x_train.shape
    return _both_splits(data, PixelPermutation(rng.permutation(h * w)))


def random_pixels(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """An independent random permutation of pixel positions for each train and test image, drawn per
    example (:func:`harness.data.example_rng`)."""
    return _both_splits(data, RandomPermutations(int(rng.integers(2**63))))


def gaussian(data: ImageDataset, p: float, rng: np.random.Generator) -> ImageDataset:
    """Train and test images replaced by Gaussian noise with the training set's per-channel mean and std
    (:func:`harness.data.channel_statistics`), drawn per example (:func:`harness.data.example_rng`)."""
    mean, std = channel_statistics(data.x_train)
    return _both_splits(data, GaussianInputs(mean, std, int(rng.integers(2**63))))


@hookimpl
def register_corruptions(register):
    for name, corrupt in (
        ("none", true_labels),
        ("random_labels", random_labels),
        ("shuffled_pixels", shuffled_pixels),
        ("random_pixels", random_pixels),
        ("gaussian", gaussian),
    ):
        register(name, corrupt, per_example=True)
