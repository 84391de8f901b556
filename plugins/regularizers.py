"""Built-in regularizers: weight decay, dropout, random crop, augmentation, early stopping."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness import hookimpl
from harness.regularizers import Regularizer, parse_float


class WeightDecay(Regularizer):
    """L2 weight decay λ in the SGD optimizer (``weight_decay=λ``, default 5e-4)."""

    def __init__(self, value):
        self.coefficient = parse_float("weight_decay", value, default=5e-4)

    def optimizer_options(self):
        return {"weight_decay": self.coefficient}


class Dropout(Regularizer):
    """Dropout with probability p in the models that accept a ``dropout`` option (default 0.5)."""

    def __init__(self, value):
        self.p = parse_float("dropout", value, default=0.5, high=0.99)

    def model_options(self):
        return {"dropout": self.p}


def random_crops(images: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """An independent random side × side crop of each image (B, C, H, W), by index gathering."""
    b, _, h, w = images.shape
    top = torch.randint(0, h - side + 1, (b, 1, 1), generator=generator, device=images.device)
    left = torch.randint(0, w - side + 1, (b, 1, 1), generator=generator, device=images.device)
    offsets = torch.arange(side, device=images.device)
    rows = (top + offsets.view(1, side, 1)).expand(b, side, side)
    cols = (left + offsets.view(1, 1, side)).expand(b, side, side)
    batch = torch.arange(b, device=images.device).view(b, 1, 1)
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


class RandomCrop(Regularizer):
    """A random crop per image and epoch in place of the center crop (CIFAR: 28×28 of 32×32).

    Data sets used at full size (no crop, e.g. MNIST) are zero-padded by ``value`` pixels
    (default 2) and cropped back to their size.
    """

    def __init__(self, value):
        self.padding = int(parse_float("random_crop", value, default=2, high=64))

    def transform_batch(self, images, crop, generator):
        if crop is None:
            crop = images.shape[-1]
            images = F.pad(images, [self.padding] * 4)
        return random_crops(images, crop, generator)


# RGB -> YIQ, where a hue shift is a rotation of the (I, Q) plane.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def hue_rotation(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) RGB matrices rotating hue by ``angles`` radians."""
    cos, sin = angles.cos(), angles.sin()
    rotation = torch.zeros(len(angles), 3, 3, device=angles.device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    to_yiq = RGB_TO_YIQ.to(angles.device)
    return torch.linalg.inv(to_yiq) @ rotation @ to_yiq


class Augment(Regularizer):
    """Random horizontal flips and colour jitter (brightness, contrast, saturation, hue) per image,
    the perturbations of the paper's Section 3. ``augment=s`` scales the jitter (default 1):
    brightness ±0.25·s, contrast and saturation ×[1-0.5·s, 1+0.5·s], hue ±0.1·s turns."""

    def __init__(self, value):
        self.strength = parse_float("augment", value, default=1.0, high=2.0)

    def transform_batch(self, images, crop, generator):
        b, c = images.shape[:2]
        device = images.device

        def uniform(spread):
            return (torch.rand(b, 1, 1, 1, generator=generator, device=device) * 2 - 1) * spread * self.strength

        flip = torch.rand(b, 1, 1, 1, generator=generator, device=device) < 0.5
        images = torch.where(flip, images.flip(-1), images)
        images = images + uniform(0.25)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = (images - mean) * (1 + uniform(0.5)) + mean
        if c == 3:
            gray = (images * RGB_TO_YIQ[0].to(device).view(1, 3, 1, 1)).sum(1, keepdim=True)
            images = (images - gray) * (1 + uniform(0.5)) + gray
            angles = uniform(0.1).flatten() * 2 * torch.pi
            images = torch.einsum("bij,bjhw->bihw", hue_rotation(angles), images)
        return images.clamp(0, 1)


class EarlyStopping(Regularizer):
    """Hold out 10 % of the training data; stop when its accuracy has not improved for
    ``early_stopping=patience`` epochs (default 5)."""

    holdout_fraction = 0.1

    def __init__(self, value):
        self.patience = int(parse_float("early_stopping", value, default=5, low=1))

    def should_stop(self, history):
        accuracies = [row["holdout_acc"] for row in history]
        best_epoch = max(range(len(accuracies)), key=accuracies.__getitem__)
        return len(accuracies) - 1 - best_epoch >= self.patience


@hookimpl
def register_regularizers(register):
    register("weight_decay", WeightDecay)
    register("dropout", Dropout)
    register("random_crop", RandomCrop)
    register("augment", Augment)
    register("early_stopping", EarlyStopping)
