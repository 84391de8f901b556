"""Image files decoded to fixed-size RGB arrays: the shorter side resized, then a center crop.

:func:`decode_image` gives what ``torchvision.transforms.Compose([Resize(size), CenterCrop(size)])``
gives on the PIL image (torchvision's ``ImageFolder`` loader), at about 60 % of its CPU time
per image; its docstring gives the levers that make it faster.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.errors import DataError

# What Pillow raises for a file it cannot open or decode: OSError (missing, unreadable, unknown
# format, truncated), EOFError and SyntaxError (malformed streams), ValueError (malformed headers),
# DecompressionBombError (more than twice Image.MAX_IMAGE_PIXELS)
READ_ERRORS = (OSError, EOFError, SyntaxError, ValueError, Image.DecompressionBombError)

# A JPEG is decoded at 1/2, 1/4 or 1/8 of its resolution (libjpeg's DCT scaling) only where that
# leaves at least DRAFT_MARGIN times the output size
DRAFT_MARGIN = 2


class ImageReadError(DataError):
    """An image file cannot be read or decoded."""


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """The image in ``path`` as a (size, size, 3) uint8 RGB array.

    The image is converted to RGB (from grayscale, palette, CMYK, RGBA...: Pillow's
    ``convert("RGB")``, which drops alpha), its shorter side resized to ``size`` with the
    aspect kept (the longer side truncated to an integer), then center-cropped to size×size:
    torchvision's ``Resize(size)`` and ``CenterCrop(size)`` on the PIL image, which the result
    matches within 1 grey level in every pixel (0.01 on average), or within 1 grey level on
    average where a JPEG is decoded at a reduced scale (Notes). An image whose shorter side is
    already ``size`` is cropped, never resampled, so a lossless image of exactly size×size
    comes back bit for bit. EXIF orientation is ignored, as torchvision's loader does.

    Raises
    ------
    ImageReadError
        The file is missing, is not an image, or is truncated or corrupt (Pillow's
        ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False: a truncated JPEG is an error, not
        an image padded with grey).

    Notes
    -----
    The levers, measured in CPU time of one thread on JPEGs whose shorter side is 400 to 500
    pixels, against torchvision's transforms on Pillow's image (2-core Xeon, noisy; rerun with
    ``python benchmarks/input_pipeline.py --levers --sizes 299,224,64``):

    - The resize is torch's antialiased bilinear resize of uint8 tensors (Pillow's algorithm,
      vectorized): 1.6x as fast as torchvision's transforms at 299 and 224 pixels. Pillow's
      resize of only the box that survives the crop (``Image.resize(box=...)``) is 1.3x.
    - A JPEG is decoded at 1/2, 1/4 or 1/8 of its resolution by libjpeg's DCT-domain scaling
      (``Image.draft``) where that leaves at least twice ``size`` (its shorter side at least
      four times ``size``): 1.4x as fast at 64 pixels, no change at 224 and 299. Scaling down
      to ``size`` itself would be 1.25x as fast at 224 pixels, but DCT scaling is a sharper
      filter than the bilinear resize: up to 3 grey levels from torchvision's result on
      average on sharp photographs, against less than 1 with the margin of two.
    - ``Image.resize(reducing_gap=...)`` reduces by an integer factor only where the resize
      is at least twice the gap: nothing at these sizes.
    - ``torchvision.io.decode_jpeg`` decodes faster than Pillow (with torch's resize: 2.0x
      torchvision's transforms, 1.25x this function) but reads JPEGs only and is deprecated
      (torchvision 0.29, for TorchCodec): not used.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            # JPEG only (None otherwise): the box of the original image in the reduced one
            drafted = image.draft(None, (DRAFT_MARGIN * size, DRAFT_MARGIN * size))
            image.load()
            # a copy: an array on Pillow's bytes is read-only, which torch.from_numpy warns about
            pixels = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    except READ_ERRORS as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ImageReadError(f"{os.fspath(path)}: cannot read the image: {reason}") from None
    new_width, new_height, left, top = resize_geometry(width, height, size)
    # (1, 3, H, W) in channels-last memory: the layout of torch's fast uint8 resize
    image = torch.from_numpy(pixels).unsqueeze(0).permute(0, 3, 1, 2)
    reduction = 1 if drafted is None else width / drafted[1][2]
    if (new_width, new_height, reduction) != (width, height, 1):  # else the shorter side is size
        scales = (output_per_input(new_height, height, reduction), output_per_input(new_width, width, reduction))
        image = F.interpolate(image, scale_factor=scales, mode="bilinear", antialias=True, recompute_scale_factor=False)
    return image[0, :, top : top + size, left : left + size].permute(1, 2, 0).contiguous().numpy()


def resize_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """torchvision's ``Resize(size)`` then ``CenterCrop(size)`` of a width×height image: the
    resized width and height, then the crop's left and top offsets in the resized image."""
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    return new_width, new_height, round((new_width - size) / 2), round((new_height - size) / 2)


def output_per_input(new: int, original: int, reduction: float) -> float:
    """Output pixels per decoded pixel, for ``new`` output pixels over ``original`` pixels of the
    image decoded at 1/``reduction`` of its resolution (a reduced decode covers ``original`` and a
    fraction of a pixel more). One step above the nearest float, so that the ``floor(decoded *
    scale)`` pixels that ``interpolate`` makes are never fewer than ``new``."""
    return math.nextafter(new * reduction / original, math.inf)
