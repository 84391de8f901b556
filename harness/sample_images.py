"""Sample trees of JPEG images for tests, benchmarks and examples; never a data set.

The images are crops of the two photographs that scikit-learn ships
(``sklearn.datasets.load_sample_images``: china.jpg and flower.jpg, 640x427), so they decode,
resize and compress like real photographs, at ImageNet's usual sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val")


def write_jpeg_tree(
    root: Path,
    *,
    classes: int,
    per_class: dict[str, int] | int,
    short_side: tuple[int, int] = (400, 500),
    quality: int = 90,
    seed: int = 0,
) -> Path:
    """Write an ImageFolder tree ``root/<split>/<class>/<class>_<index>.JPEG`` of photograph crops.

    Class ``k`` is named ``class<k>`` (zero-padded, so the sorted names are in class order).
    It crops photograph ``k mod 2`` and multiplies the red, green and blue channels by a gain
    of its own, drawn once in [0.4, 1]: a model tells the classes apart by their colour
    balance. Each image is a random crop (position, scale, landscape or portrait, aspect
    between 5:4 and 3:2) resized (bicubic) so that its shorter side is a random integer in
    ``short_side`` (inclusive), then saved as JPEG at ``quality``. The same arguments write
    the same bytes.

    Parameters
    ----------
    root
        The folder of the tree; created if missing.
    classes
        The number of classes.
    per_class
        Images per class: a count for each of the splits ``train`` and ``val``, or a
        count for each split named.
    short_side
        The smallest and largest shorter side of the images, in pixels.
    quality
        The JPEG quality (1 to 95).
    seed
        The seed of every random choice.

    Returns
    -------
    Path
        ``root``.
    """
    from sklearn.datasets import load_sample_images

    counts = dict.fromkeys(SPLITS, per_class) if isinstance(per_class, int) else per_class
    photos = [Image.fromarray(photo) for photo in load_sample_images().images]
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.4, 1.0, size=(classes, 3))
    digits = len(str(classes - 1))
    for split, count in counts.items():
        for k in range(classes):
            name = f"class{k:0{digits}d}"
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            tint = [round(value * gain) for gain in gains[k] for value in range(256)]
            for index in range(count):
                image = photo_crop(photos[k % 2], rng, short_side).point(tint)
                image.save(folder / f"{name}_{index}.JPEG", quality=quality)
    return Path(root)


def photo_crop(photo: Image.Image, rng: np.random.Generator, short_side: tuple[int, int]) -> Image.Image:
    """A random crop of ``photo`` resized to a random shorter side in ``short_side``."""
    aspect = rng.uniform(1.25, 1.5)
    short = int(rng.integers(short_side[0], short_side[1], endpoint=True))
    long = round(short * aspect)
    portrait = rng.random() < 0.5
    # the largest crop of this aspect that fits, then a random fraction of it
    width_over_height = 1 / aspect if portrait else aspect
    height = min(photo.height, photo.width / width_over_height) * rng.uniform(0.5, 1.0)
    width = height * width_over_height
    left = rng.uniform(0, photo.width - width)
    top = rng.uniform(0, photo.height - height)
    size = (short, long) if portrait else (long, short)
    return photo.resize(size, Image.Resampling.BICUBIC, box=(left, top, left + width, top + height))
