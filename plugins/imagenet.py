"""ImageNet-scale models (torchvision's ResNet-18 and Inception V3) and an ImageFolder data set.

The models are built untrained (``weights=None``) and take ImageNet-style 3-channel
input, e.g. (3, 224, 224) for ResNet-18 and (3, 299, 299) for Inception V3 (at least
75×75). Their default learning rate, 0.1, is that of torchvision's reference SGD recipe.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import nn

from harness import hookimpl
from harness.data import DataError, ImageDataset
from harness.errors import ConfigError

INCEPTION_V3_MIN_SIDE = 75


def require_rgb(name: str, input_shape: tuple[int, int, int], min_side: int = 1) -> None:
    """Raise ConfigError unless ``input_shape`` is (3, H, W) with H, W >= ``min_side``."""
    channels, height, width = input_shape
    if channels != 3 or min(height, width) < min_side:
        raise ConfigError(
            f"{name} needs 3-channel images of at least {min_side}×{min_side}, got {input_shape} (C, H, W)"
        )


def resnet18(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18, untrained."""
    from torchvision.models import resnet18 as torchvision_resnet18

    require_rgb("resnet18", input_shape)
    return torchvision_resnet18(weights=None, num_classes=num_classes)


def inception_v3(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    """torchvision's Inception V3, untrained, without the auxiliary classifier.

    ``dropout`` is the drop probability before the final linear layer (the paper's
    ImageNet runs use dropout only as an explicit regularizer; its rate is not given).
    """
    from torchvision.models import inception_v3 as torchvision_inception_v3

    require_rgb("inception_v3", input_shape, INCEPTION_V3_MIN_SIDE)
    return torchvision_inception_v3(
        weights=None, num_classes=num_classes, aux_logits=False, init_weights=True, dropout=dropout
    )


IMAGE_SIZE_ENV = "HARNESS_IMAGENET_SIZE"
DEFAULT_IMAGE_SIZE = 299


def imagenet_image_size() -> int:
    """Side of the loaded images: ``$HARNESS_IMAGENET_SIZE`` if set, else 299."""
    value = os.environ.get(IMAGE_SIZE_ENV, str(DEFAULT_IMAGE_SIZE))
    if not value.isdigit() or int(value) == 0:
        raise DataError(f"{IMAGE_SIZE_ENV} must be a positive integer, got {value!r}")
    return int(value)


def load_image_folder(folder: Path, side: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(x (N, side, side, 3) uint8, y (N,) int64, class names) from one ImageFolder tree.

    Each image is converted to RGB, its shorter side resized to ``side`` and center-cropped.
    """
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    resize = transforms.Compose([transforms.Resize(side), transforms.CenterCrop(side)])
    try:  # no class folders, no images, or an unreadable image
        dataset = ImageFolder(str(folder), transform=resize)
        x = np.empty((len(dataset), side, side, 3), dtype=np.uint8)
        for index, (image, _) in enumerate(dataset):
            x[index] = np.asarray(image)
    except OSError as error:
        raise DataError(f"{folder}: {error}") from None
    return x, np.asarray(dataset.targets, dtype=np.int64), dataset.classes


def load_imagenet(root: Path, download: bool) -> ImageDataset:
    """ImageNet (or any subset) from ``<root>/imagenet/{train,val}/<class>/<image>``.

    Images are resized (shorter side, then center crop) to ``$HARNESS_IMAGENET_SIZE``
    pixels square, 299 by default, and held in memory as uint8: this suits subsets,
    not the full 1.28 M-image training set (about 340 GB at 299×299). Class indices
    follow the sorted class folder names, which must be the same in train and val.
    The val split is the test split; inputs get per-image standardization.
    ImageNet cannot be downloaded: ``download`` has no effect.
    """
    folder = root / "imagenet"
    if not ((folder / "train").is_dir() and (folder / "val").is_dir()):
        raise DataError(
            f"ImageNet not found: expected {folder}/train/<class>/<image> and {folder}/val/<class>/<image> "
            "(ImageFolder layout); it cannot be downloaded, put it there yourself"
        )
    side = imagenet_image_size()
    x_train, y_train, train_classes = load_image_folder(folder / "train", side)
    x_test, y_test, test_classes = load_image_folder(folder / "val", side)
    if train_classes != test_classes:
        raise DataError(f"{folder}: train and val must have the same class folders")
    return ImageDataset("imagenet", x_train, y_train, x_test, y_test, num_classes=len(train_classes), standardize=True)


@hookimpl
def register_models(register):
    register("resnet18", resnet18, default_lr=0.1)
    register("inception_v3", inception_v3, default_lr=0.1)


@hookimpl
def register_datasets(register):
    register("imagenet", load_imagenet)
