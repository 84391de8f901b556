"""Built-in data sets: CIFAR-10, MNIST (torchvision) and scikit-learn's 8×8 digits.

Every image data set also loads from the plain array layout
``<root>/<name>/{train,test}.npz`` holding ``x`` (N, H, W, C) uint8 and ``y`` (N,) int64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness import hookimpl
from harness.data import DataError, ImageDataset


def load_npz_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (N, H, W, C) uint8 and ``y`` (N,) int64 from one npz file."""
    with np.load(path) as arrays:
        x, y = arrays["x"], arrays["y"].astype(np.int64)
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) != len(y):
        raise DataError(f"{path}: expected x (N, H, W, C) uint8 and y (N,), got x {x.dtype} {x.shape}, y {y.shape}")
    return x, y


def load_array_layout(root: Path, name: str) -> tuple[np.ndarray, ...] | None:
    """(x_train, y_train, x_test, y_test) from ``<root>/<name>/{train,test}.npz``, or None if absent."""
    folder = root / name
    if not ((folder / "train.npz").exists() and (folder / "test.npz").exists()):
        return None
    return (*load_npz_split(folder / "train.npz"), *load_npz_split(folder / "test.npz"))


def _missing(name: str, root: Path, torchvision_layout: str, error: Exception) -> DataError:
    return DataError(
        f"{name} not found under {root} and could not be downloaded ({type(error).__name__}); "
        f"put it there as {torchvision_layout} or as {name}/train.npz + {name}/test.npz (x uint8 NHWC, y int64), "
        f"or point --data-root / HARNESS_DATA_ROOT at such a folder"
    )


def load_torchvision(name: str, dataset_class, root: Path, download: bool, layout: str) -> tuple[np.ndarray, ...]:
    """Arrays from ``<root>/<name>/*.npz`` if present, else from a torchvision data set class."""
    arrays = load_array_layout(root, name)
    if arrays is not None:
        return arrays
    try:
        splits = [dataset_class(root=str(root), train=train, download=download) for train in (True, False)]
    except Exception as error:  # torchvision raises RuntimeError offline, URLError, OSError...
        raise _missing(name, root, layout, error) from None
    out = []
    for split in splits:
        x = np.asarray(split.data, dtype=np.uint8)
        out += [x if x.ndim == 4 else x[..., None], np.asarray(split.targets, dtype=np.int64)]
    return tuple(out)


def load_cifar10(root: Path, download: bool) -> ImageDataset:
    """CIFAR-10 with the paper's preprocessing: /255, 28×28 center crop, per-image standardization."""
    from torchvision.datasets import CIFAR10

    arrays = load_torchvision("cifar10", CIFAR10, root, download, "cifar-10-batches-py/ (torchvision)")
    return ImageDataset("cifar10", *arrays, num_classes=10, crop=28, standardize=True)


def load_mnist(root: Path, download: bool) -> ImageDataset:
    """MNIST, /255 at 28×28, as in the paper's kernel experiments."""
    from torchvision.datasets import MNIST

    arrays = load_torchvision("mnist", MNIST, root, download, "MNIST/raw/ (torchvision's IDX files)")
    return ImageDataset("mnist", *arrays, num_classes=10)


DIGITS_TRAIN = 1500


def load_digits(root: Path, download: bool) -> ImageDataset:
    """scikit-learn's bundled 8×8 digits (1,797 images, no download): the first 1,500 train, the rest test."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = np.clip(bunch.images * 16, 0, 255).astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    return ImageDataset(
        "digits", x[:DIGITS_TRAIN], y[:DIGITS_TRAIN], x[DIGITS_TRAIN:], y[DIGITS_TRAIN:], num_classes=10
    )


@hookimpl
def register_datasets(register):
    register("cifar10", load_cifar10)
    register("mnist", load_mnist)
    register("digits", load_digits)
