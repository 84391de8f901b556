"""Image data sets held in memory, and the paper's preprocessing."""

from __future__ import annotations

import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import DataError
from harness.registry import get_registry
from harness.streaming import PIXEL_SCALE, ExampleTransform, ImageFiles, in_order, memory_budget, read_batches

__all__ = ["DataError", "ImageDataset"]

DATA_ROOT_ENV = "HARNESS_DATA_ROOT"
STATISTICS_SAMPLE = 10_000
"""At most this many training images (evenly spaced) give a data set's per-channel statistics."""
STATISTICS_CHUNK = 256

CORRUPTION_SCHEME = 2
"""Version of how the built-in corruptions draw, stored in every ``runs`` row: 1 = random_pixels and
gaussian drawn over a whole split at once; 2 = drawn per example from (seed, split, example index),
identical for in-memory and streamed data sets. random_labels and shuffled_pixels draw the same
under both."""


@dataclass(frozen=True)
class ImageDataset:
    """A data set with train and test splits.

    ``x_*`` are (N, H, W, C) arrays: uint8 as loaded, float32 in [0, 1] after
    :func:`to_float` (corruptions act on the float form); or, for a data set too large for memory,
    :class:`~harness.streaming.ImageFiles`, read from disk as they are needed. ``y_*`` are (N,) int64.
    ``crop`` is the side of the center crop of the paper's preprocessing (None:
    keep the full image); ``standardize`` turns on per-image standardization.

    After a corruption (:func:`prepare_data`), three (N,) arrays describe the training
    examples: ``y_train_true`` the labels before the corruption, ``corrupted`` (bool) the
    examples whose label or input it changed, and ``redrawn`` (bool) the labels it drew
    anew, changed or not (None for corruptions that draw no labels).
    """

    name: str
    x_train: np.ndarray | ImageFiles
    y_train: np.ndarray
    x_test: np.ndarray | ImageFiles
    y_test: np.ndarray
    num_classes: int
    crop: int | None = None
    standardize: bool = False
    y_train_true: np.ndarray | None = None
    corrupted: np.ndarray | None = None
    redrawn: np.ndarray | None = None

    def replace(self, **changes) -> ImageDataset:
        return dataclasses.replace(self, **changes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model input after preprocessing."""
        _, h, w, c = self.x_train.shape
        side_h, side_w = (self.crop, self.crop) if self.crop else (h, w)
        return (c, side_h, side_w)


def default_data_root() -> Path:
    """``$HARNESS_DATA_ROOT`` if set, else a per-user cache folder."""
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "harness" / "data"


def to_float(data: ImageDataset) -> ImageDataset:
    """Scale uint8 pixels to float32 in [0, 1] (images read from files are scaled as they are read)."""

    def scaled(images):
        return images if isinstance(images, ImageFiles) else images.astype(np.float32) * PIXEL_SCALE

    return data.replace(x_train=scaled(data.x_train), x_test=scaled(data.x_test))


def in_memory_if_fits(data: ImageDataset, budget: float) -> ImageDataset:
    """``data`` with its images read into memory when they fit ``budget`` bytes as float32; else as it is
    (streamed from disk)."""
    splits = [data.x_train, data.x_test]
    if not any(isinstance(images, ImageFiles) for images in splits):
        return data
    if sum(images.nbytes for images in splits) > budget:
        return data
    return data.replace(**{f"x_{split}": read_all(images) for split, images in zip(("train", "test"), splits)})


def read_all(images: np.ndarray | ImageFiles) -> np.ndarray:
    """Every image in memory: files read by the data workers (as :meth:`ImageFiles.read`), arrays as they are."""
    if not isinstance(images, ImageFiles):
        return images
    batches = [batch.numpy() for batch in read_batches(images, in_order(len(images), STATISTICS_CHUNK))]
    return np.concatenate(batches) if batches else images.read()


def transform_images(
    images: np.ndarray | ImageFiles, transform: ExampleTransform, split: str
) -> np.ndarray | ImageFiles:
    """``images`` of ``split`` through a per-example corruption: at once for arrays (by chunks), as they
    are read for files; either way each image is transformed as a function of itself and its index."""
    if isinstance(images, ImageFiles):
        return images.with_transform(transform)
    out = np.empty(images.shape, dtype=np.float32)
    for positions in in_order(len(images), STATISTICS_CHUNK):
        out[positions] = transform(images[positions], split, positions)
    return out


def channel_statistics(images: np.ndarray | ImageFiles) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float64) of float images in [0, 1] (files: as read), over
    every image, or every k-th when there are more than :data:`STATISTICS_SAMPLE`."""
    sample = np.arange(0, len(images), -(-len(images) // STATISTICS_SAMPLE))
    chunks = [sample[i : i + STATISTICS_CHUNK] for i in range(0, len(sample), STATISTICS_CHUNK)]
    if isinstance(images, ImageFiles):
        read = (batch.numpy().astype(np.float32) * PIXEL_SCALE for batch in read_batches(images, chunks))
    else:
        read = (images[chunk] for chunk in chunks)
    total = squares = 0.0
    for chunk in read:
        total = total + chunk.sum(axis=(0, 1, 2), dtype=np.float64)
        squares = squares + np.square(chunk, dtype=np.float64).sum(axis=(0, 1, 2))
    values = len(sample) * images.shape[1] * images.shape[2]
    mean = total / values
    return mean, np.sqrt(np.maximum(squares / values - mean**2, 0.0))


def first_examples(data: ImageDataset, train_size: int | None, test_size: int | None) -> ImageDataset:
    """The first ``train_size`` / ``test_size`` examples in canonical order."""
    for split, size in (("train", train_size), ("test", test_size)):
        available = len(getattr(data, f"y_{split}"))
        if size is not None and not 0 < size <= available:
            raise DataError(f"--{split}-size {size} is out of range: {data.name} has {available} {split} examples")
    return data.replace(
        x_train=data.x_train[:train_size],
        y_train=data.y_train[:train_size],
        x_test=data.x_test[:test_size],
        y_test=data.y_test[:test_size],
    )


def center_crop(images: torch.Tensor, side: int) -> torch.Tensor:
    """Center crop of (N, C, H, W) images to side × side."""
    h, w = images.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side]


def standardize_per_image(images: torch.Tensor) -> torch.Tensor:
    """TensorFlow ``per_image_standardization``: (x - mean) / max(std, 1/sqrt(N)) per image."""
    flat = images.flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    floor = 1.0 / np.sqrt(flat.shape[1])
    return ((flat - mean) / std.clamp_min(floor)).view_as(images)


def to_model_input(images: np.ndarray | torch.Tensor, data: ImageDataset) -> torch.Tensor:
    """(N, H, W, C) float images in [0, 1] -> (N, C, H', W') model input (crop, standardize)."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2)
    if data.crop:
        x = center_crop(x, data.crop)
    if data.standardize:
        x = standardize_per_image(x)
    return x.contiguous()


def load_dataset(name: str, root: Path | None = None, download: bool = True) -> ImageDataset:
    """Load a registered data set (uint8 images) from ``root`` (default :func:`default_data_root`)."""
    loader = get_registry().get("datasets", name).obj
    root = Path(root) if root is not None else default_data_root()
    return loader(root, download)


SPLITS = ("train", "test")


def example_rng(entropy: int, split: str, index: int) -> np.random.Generator:
    """The generator of one example's draws in a per-example corruption: a function of the corruption's
    ``entropy`` (drawn from :func:`corruption_rng`), the example's split and its index in that split."""
    return np.random.default_rng([entropy, SPLITS.index(split), int(index)])


def corruption_rng(seed: int, corruption: str) -> np.random.Generator:
    """The generator a corruption draws from: a function of (seed, corruption name) only."""
    return np.random.default_rng([seed, zlib.crc32(corruption.encode())])


def prepare_data(
    dataset: str,
    corruption: str = "none",
    corrupt_prob: float = 1.0,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    root: Path | None = None,
    *,
    streaming: bool = True,
) -> ImageDataset:
    """Load, take the first N examples, scale to [0, 1] and corrupt: what a run trains on.

    Images read from files stay on disk (streamed) when they do not fit the memory budget
    (:func:`~harness.streaming.memory_budget`) and ``streaming`` is true; else they are read into memory.

    The corruption is a function of (data set, sizes, corruption, p, seed) alone, so it is
    identical across epochs and re-runs and differs between seeds.
    """
    if not 0.0 <= corrupt_prob <= 1.0:
        raise DataError(f"--corrupt-prob must be in [0, 1], got {corrupt_prob}")
    entry = get_registry().get("corruptions", corruption)
    budget = memory_budget() if streaming else np.inf
    clean = to_float(in_memory_if_fits(first_examples(load_dataset(dataset, root), train_size, test_size), budget))
    if isinstance(clean.x_train, ImageFiles) and not entry.info.get("per_example"):
        raise DataError(
            f"corruption {corruption} acts on whole image arrays, and {dataset} is read from disk (its images do not fit "
            f"the memory budget of {memory_budget() / 2**30:.1f} GiB): raise $HARNESS_MEMORY_BUDGET_GB, or define the "
            "corruption per example (harness.data.transform_images)"
        )
    corrupt = entry.obj
    return mark_corrupted(clean, corrupt(clean, corrupt_prob, corruption_rng(seed, corruption)), corruption)


def prepare_data_of(config, root: Path | None = None, *, streaming: bool = True) -> ImageDataset:
    """:func:`prepare_data` of what a configuration names: its ``dataset``, ``corruption``,
    ``corrupt_prob``, ``seed``, ``train_size`` and ``test_size`` (a run's, a kernel run's, ...)."""
    return prepare_data(
        config.dataset,
        config.corruption,
        config.corrupt_prob,
        config.seed,
        config.train_size,
        config.test_size,
        root,
        streaming=streaming,
    )


def changed_rows(before: np.ndarray, after: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(N,) bool: rows of ``after`` that differ from the same rows of ``before`` (all, if the shapes differ)."""
    if before.shape != after.shape:
        return np.ones(len(after), dtype=bool)
    flat_before, flat_after = before.reshape(len(before), -1), after.reshape(len(after), -1)
    changed = np.zeros(len(after), dtype=bool)
    for i in range(0, len(after), chunk):
        changed[i : i + chunk] = (flat_before[i : i + chunk] != flat_after[i : i + chunk]).any(axis=1)
    return changed


def mark_corrupted(clean: ImageDataset, data: ImageDataset, corruption: str) -> ImageDataset:
    """``data`` (the corruption's output) with ``y_train_true`` set and ``corrupted`` filled in.

    A corruption that does not set ``corrupted`` itself gets it by comparison: an example is
    corrupted when its label or any of its input values differs from the clean one.
    """
    n = len(clean.y_train)
    if len(data.y_train) != n:
        raise DataError(f"corruption {corruption} changed the number of training examples ({n} -> {len(data.y_train)})")
    corrupted = data.corrupted
    if corrupted is None and isinstance(data.x_train, ImageFiles):
        raise DataError(
            f"corruption {corruption} does not say which examples it changed (corrupted=...), and the images of "
            f"{data.name} are read from disk, where they cannot be compared"
        )
    if corrupted is None:
        corrupted = (data.y_train != clean.y_train) | changed_rows(clean.x_train, data.x_train)
    for name, mask in (("corrupted", corrupted), ("redrawn", data.redrawn)):
        if mask is not None and np.shape(mask) != (n,):
            raise DataError(f"corruption {corruption} set {name} of shape {np.shape(mask)}, expected ({n},)")
    redrawn = None if data.redrawn is None else np.asarray(data.redrawn, dtype=bool)
    return data.replace(y_train_true=clean.y_train, corrupted=np.asarray(corrupted, dtype=bool), redrawn=redrawn)
