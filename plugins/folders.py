"""Image folder data sets: ``folder:PATH`` (any ImageFolder tree) and ``imagenet`` (the paper's).

A tree holds ``PATH/train/<class>/<image>`` and ``PATH/val/<class>/<image>``; the val split is the test
split, and class indices follow the sorted class folder names, which must be the same in both. The
examples of a split are in ImageFolder's order (class, then file name), or in the order of
``PATH/manifest.txt`` when there is one: one path per line, relative to ``PATH`` and starting with
the split (``train/cat/0001.png``), as ``harness data export --layout folder`` writes it.

Images are decoded as they are needed (:mod:`harness.streaming`): a tree whose images fit the memory
budget is read into memory once, a larger one streams from disk. Each image is converted to RGB, its
shorter side resized to ``size`` and center-cropped to size × size; ``crop`` is a center crop of the
model input (as CIFAR-10's 28 of 32), ``standardize`` per-image standardization. An image that cannot
be decoded ends the run with an error naming its file: skipping it would silently change the data set
a result is about.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness import hookimpl
from harness.data import DataError, ImageDataset
from harness.options import parse_key_value
from harness.streaming import ImageFiles

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""What counts as an image file (torchvision's ImageFolder's list, in any case)."""
MANIFEST = "manifest.txt"
SPLIT_FOLDERS = {"train": "train", "test": "val"}
FOLDER_OPTIONS = {"size": 224, "crop": None, "standardize": True}
FOLDER_SYNTAX = "PATH[,size=224][,crop=N][,standardize=true]"

IMAGENET_SIZE_ENV = "HARNESS_IMAGENET_SIZE"
IMAGENET_SIZE = 299


def parse_folder_argument(argument: str) -> tuple[Path, dict]:
    """``"trees/pets,size=64"`` -> ``(Path("trees/pets"), {"size": 64, "crop": None, "standardize": True})``."""
    path, *pairs = [part.strip() for part in argument.split(",")]
    if not path:
        raise DataError(f"folder: needs a path, as in folder:{FOLDER_SYNTAX}")
    options = dict(FOLDER_OPTIONS)
    for pair in pairs:
        key, value = parse_key_value(pair, expected=f"folder option KEY=VALUE in 'folder:{argument}'", error=DataError)
        if key not in FOLDER_OPTIONS:
            raise DataError(f"unknown folder option '{key}' in 'folder:{argument}'; known: {', '.join(FOLDER_OPTIONS)}")
        options[key] = value
    for key in ("size", "crop"):
        value = options[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DataError(f"folder option {key} must be a positive whole number of pixels, got {value!r}")
    if options["crop"] is not None and options["crop"] > options["size"]:
        raise DataError(f"folder option crop={options['crop']} is larger than size={options['size']}")
    if not isinstance(options["standardize"], bool):
        raise DataError(f"folder option standardize must be true or false, got {options['standardize']!r}")
    return Path(path), options


def class_folders(split: Path) -> list[str]:
    """The sorted class folder names of one split folder; each must hold at least one image."""
    classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir())
    if not classes:
        raise DataError(f"{split} holds no class folders: expected {split}/<class>/<image>")
    return classes


def images_of(folder: Path) -> list[str]:
    """The sorted image file names of one class folder (none: an error)."""
    names = sorted(entry.name for entry in os.scandir(folder) if entry.name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}): remove the class or add its images")
    return names


def split_examples(
    tree: Path, folder: str, classes: list[str], manifest: list[str] | None
) -> tuple[list[str], np.ndarray]:
    """(paths relative to ``tree``, labels) of one split, in the manifest's order or ImageFolder's."""
    index = {name: label for label, name in enumerate(classes)}
    if manifest is None:
        paths = [f"{folder}/{name}/{image}" for name in classes for image in images_of(tree / folder / name)]
    else:
        paths = [line for line in manifest if line.startswith(f"{folder}/")]
    labels = []
    for path in paths:
        parts = path.split("/")
        if len(parts) != 3 or parts[1] not in index:
            raise DataError(f"{tree / MANIFEST}: '{path}' is not {folder}/<class>/<image> of a class folder of {tree}")
        labels.append(index[parts[1]])
    return paths, np.asarray(labels, dtype=np.int64)


def image_folder(tree: Path, *, name: str, size: int, crop: int | None, standardize: bool) -> ImageDataset:
    """The data set of an ImageFolder tree (see the module's description), its images read from disk."""
    missing = [folder for folder in SPLIT_FOLDERS.values() if not (tree / folder).is_dir()]
    if missing:
        raise DataError(
            f"{tree} has no {' or '.join(missing)} folder: expected {tree}/train/<class>/<image> and "
            f"{tree}/val/<class>/<image> (ImageFolder layout)"
        )
    classes = class_folders(tree / "train")
    test_classes = class_folders(tree / "val")
    if classes != test_classes:
        only = [
            f"only in {split}: {', '.join(sorted(set(mine) - set(other))[:5])}"
            for split, mine, other in (("train", classes, test_classes), ("val", test_classes, classes))
            if set(mine) - set(other)
        ]
        raise DataError(f"{tree}: train and val must have the same class folders ({'; '.join(only)})")
    manifest_path = tree / MANIFEST
    manifest = (
        [line.strip() for line in manifest_path.read_text().splitlines() if line.strip()]
        if manifest_path.exists()
        else None
    )
    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
        paths, labels = split_examples(tree, folder, classes, manifest)
        splits[split] = (ImageFiles.of(tree, paths, size, split), labels)
    return ImageDataset(
        name, *splits["train"], *splits["test"], num_classes=len(classes), crop=crop, standardize=standardize
    )


def write_image_folder(data: ImageDataset, tree: Path) -> int:
    """Write the uint8 images of ``data`` (as loaded, before any corruption) as a lossless PNG tree that
    ``folder:`` reads back as the same examples in the same order: class folders named by the zero-padded
    class index, and ``manifest.txt``. The number of images written."""
    from PIL import Image

    width = len(str(data.num_classes - 1))
    lines = []
    for split, folder in SPLIT_FOLDERS.items():
        images, labels = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise DataError(f"{data.name}: only uint8 images held in memory can be written as a folder tree")
        for label in range(data.num_classes):
            (tree / folder / f"{label:0{width}d}").mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(images, labels)):
            path = f"{folder}/{label:0{width}d}/{index:07d}.png"
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(tree / path)
            lines.append(path)
    (tree / MANIFEST).write_text("\n".join(lines) + "\n")
    return len(lines)


def load_folder(root: Path, download: bool, argument: str) -> ImageDataset:
    """``folder:PATH[,OPTION=VALUE...]``: the ImageFolder tree at PATH (relative: under the data folder)."""
    path, options = parse_folder_argument(argument)
    tree = path if path.is_absolute() else root / path
    if not tree.is_dir():
        raise DataError(f"folder:{argument}: {tree} is not a folder (a relative PATH is under the data folder {root})")
    return image_folder(tree, name=f"folder:{argument}", **options)


def imagenet_image_size() -> int:
    """Side of ImageNet's images: ``$HARNESS_IMAGENET_SIZE`` if set, else 299 (Inception V3's)."""
    value = os.environ.get(IMAGENET_SIZE_ENV, str(IMAGENET_SIZE))
    if not value.isdigit() or int(value) == 0:
        raise DataError(f"{IMAGENET_SIZE_ENV} must be a positive integer, got {value!r}")
    return int(value)


def load_imagenet(root: Path, download: bool) -> ImageDataset:
    """ImageNet (or any subset) from ``<root>/imagenet/{train,val}/<class>/<image>``, with the paper's
    preprocessing: ``$HARNESS_IMAGENET_SIZE`` pixels square (299 by default), per-image standardization.
    It streams from disk when it does not fit the memory budget; it cannot be downloaded."""
    tree = root / "imagenet"
    if not ((tree / "train").is_dir() and (tree / "val").is_dir()):
        raise DataError(
            f"ImageNet not found: expected {tree}/train/<class>/<image> and {tree}/val/<class>/<image> "
            "(ImageFolder layout); it cannot be downloaded, put it there yourself"
        )
    return image_folder(tree, name="imagenet", size=imagenet_image_size(), crop=None, standardize=True)


@hookimpl
def register_datasets(register):
    register("folder", load_folder, argument=FOLDER_SYNTAX)
    register("imagenet", load_imagenet)
