"""Built-in data sets: CIFAR-10, MNIST (torchvision), scikit-learn's 8×8 digits, and torchvision's
array data sets by name (``torchvision:CIFAR100``).

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


TORCHVISION_SYNTAX = "NAME[,crop=N][,standardize=true]"


def torchvision_dataset_names() -> list[str]:
    """The class names of torchvision's data sets."""
    import torchvision.datasets

    classes = vars(torchvision.datasets).items()
    return sorted(n for n, c in classes if isinstance(c, type) and issubclass(c, torchvision.datasets.VisionDataset))


def torchvision_dataset_class(name: str):
    """The torchvision data set class ``name`` (CIFAR100, SVHN, FashionMNIST, ...)."""
    import torchvision.datasets

    if name not in torchvision_dataset_names():
        raise DataError(f"torchvision has no data set '{name}'; it has: {', '.join(torchvision_dataset_names())}")
    return getattr(torchvision.datasets, name)


def split_arguments(dataset_class, train: bool) -> dict:
    """How ``dataset_class`` is asked for its train or test split: ``train=`` or ``split=``."""
    import inspect

    parameters = inspect.signature(dataset_class.__init__).parameters
    if "train" in parameters:
        return {"train": train}
    if "split" in parameters:
        return {"split": "train" if train else "test"}
    raise DataError(f"torchvision's {dataset_class.__name__} has no train and test split that torchvision: can take")


def image_array(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, H, W, C) uint8, y (N,) int64) of a torchvision data set that holds its images as an array."""
    labels = next((getattr(dataset, n) for n in ("targets", "labels") if getattr(dataset, n, None) is not None), None)
    images = getattr(dataset, "data", None)
    if images is None or labels is None:
        raise DataError(
            f"torchvision's {type(dataset).__name__} does not hold its images as one array; "
            "put them in an ImageFolder tree and use folder:PATH"
        )
    x = np.asarray(images, dtype=np.uint8)
    if x.ndim == 3:
        x = x[..., None]
    elif x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):  # (N, C, H, W), as SVHN and STL10
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


class TorchvisionDatasets:
    """The ``torchvision:`` family: :func:`load_torchvision_named`, and the names it can take."""

    def __call__(self, root: Path, download: bool, argument: str) -> ImageDataset:
        return load_torchvision_named(root, download, argument)

    def names(self) -> list[str]:
        return torchvision_dataset_names()


def load_torchvision_named(root: Path, download: bool, argument: str) -> ImageDataset:
    """``torchvision:NAME[,crop=N][,standardize=true]``: torchvision's data set class NAME from ``root``
    (downloaded first when ``download`` is true and there is a network), pixels /255, the test split as
    test; ``crop`` and ``standardize`` as for CIFAR-10 (off by default)."""
    from harness.options import parse_key_value

    name, *pairs = [part.strip() for part in argument.split(",")]
    options = {"crop": None, "standardize": False}
    for pair in pairs:
        key, value = parse_key_value(pair, expected=f"option KEY=VALUE in 'torchvision:{argument}'", error=DataError)
        if key not in options:
            raise DataError(f"unknown option '{key}' in 'torchvision:{argument}'; known: {', '.join(options)}")
        options[key] = value
    dataset_class = torchvision_dataset_class(name)
    try:
        splits = [
            dataset_class(root=str(root), download=download, **split_arguments(dataset_class, train))
            for train in (True, False)
        ]
    except DataError:
        raise
    except Exception as error:  # torchvision raises RuntimeError when the files are absent, URLError offline
        raise DataError(
            f"torchvision:{name} is not under {root} and could not be downloaded ({type(error).__name__}); put there "
            f"what torchvision.datasets.{name}(root=..., download=True) writes on a machine with a network, or point "
            "--data-root / HARNESS_DATA_ROOT at a folder that holds it"
        ) from None
    (x_train, y_train), (x_test, y_test) = (image_array(split) for split in splits)
    classes = getattr(splits[0], "classes", None)
    num_classes = len(classes) if classes else int(max(y_train.max(), y_test.max())) + 1
    return ImageDataset(f"torchvision:{argument}", x_train, y_train, x_test, y_test, num_classes=num_classes, **options)


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
    register("torchvision", TorchvisionDatasets(), argument=TORCHVISION_SYNTAX)
