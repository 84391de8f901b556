"""The paper's CIFAR-10 convolutional networks: small Inception (with and without
BatchNorm) and small AlexNet.

Conventions:

- Padding is TensorFlow's 'SAME': the output side is ceil(side / stride), and when
  the total padding is odd the extra row/column goes to the bottom/right. Max-pools
  pad with -inf, so padding never wins a max.
- BatchNorm follows TF-slim's default: the conv has no bias and is followed by a
  BatchNorm with a learnable shift (beta) but no scale (gamma). Here that is
  ``BatchNorm2d(affine=False)`` plus a per-channel bias; running statistics use
  PyTorch's defaults (eps 1e-5, momentum 0.1). Without BatchNorm the conv has a bias.
  Either way each conv has one per-channel shift, so both Inceptions have exactly
  1,649,402 parameters on 28×28×3 input, as in the paper's Table 1.
- Weights use PyTorch's default initialization (the paper does not state one).
- Models return logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness import hookimpl


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) of one spatial axis."""
    out_size = math.ceil(size / stride)
    total = max((out_size - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class SamePad(nn.Module):
    """Pads (N, C, H, W) input so a following conv or pool behaves like TensorFlow's 'SAME'."""

    def __init__(self, kernel_size: int, stride: int, value: float = 0.0):
        super().__init__()
        self.kernel_size, self.stride, self.value = kernel_size, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
        return F.pad(x, (left, right, top, bottom), value=self.value)


def max_pool_same(kernel_size: int, stride: int) -> nn.Sequential:
    """Max-pool with TensorFlow 'SAME' padding."""
    return nn.Sequential(SamePad(kernel_size, stride, value=-math.inf), nn.MaxPool2d(kernel_size, stride))


class BatchNormShift(nn.Module):
    """TF-slim BatchNorm without scale: normalize, then add a learnable per-channel shift (beta)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.beta.view(1, -1, 1, 1)


class ConvModule(nn.Sequential):
    """Conv k×k ('SAME') → BatchNorm (optional) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, batch_norm: bool = True):
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=not batch_norm)
        norm = [BatchNormShift(out_channels)] if batch_norm else []
        super().__init__(SamePad(kernel_size, stride), conv, *norm, nn.ReLU())
        self.out_channels = out_channels


class Concat(nn.Module):
    """Applies each branch to the same input and concatenates the outputs on the channel axis."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class InceptionModule(Concat):
    """1×1 conv module with ``ch1`` filters next to a 3×3 conv module with ``ch3`` filters."""

    def __init__(self, in_channels: int, ch1: int, ch3: int, batch_norm: bool = True):
        super().__init__(
            ConvModule(in_channels, ch1, 1, batch_norm=batch_norm),
            ConvModule(in_channels, ch3, 3, batch_norm=batch_norm),
        )
        self.out_channels = ch1 + ch3


class DownsampleModule(Concat):
    """3×3 stride-2 conv module with ``ch3`` filters next to a 3×3 stride-2 max-pool."""

    def __init__(self, in_channels: int, ch3: int, batch_norm: bool = True):
        conv = ConvModule(in_channels, ch3, 3, stride=2, batch_norm=batch_norm)
        super().__init__(conv, max_pool_same(3, 2))
        self.out_channels = ch3 + in_channels


SMALL_INCEPTION_LAYOUT = (
    (InceptionModule, (32, 32)),
    (InceptionModule, (32, 48)),
    (DownsampleModule, (80,)),
    (InceptionModule, (112, 48)),
    (InceptionModule, (96, 64)),
    (InceptionModule, (80, 80)),
    (InceptionModule, (48, 96)),
    (DownsampleModule, (96,)),
    (InceptionModule, (176, 160)),
    (InceptionModule, (176, 160)),
)
"""Layers 2-11 of the paper's Figure 3, after the first 3×3 conv module with 96 filters."""


def small_inception(input_shape: tuple[int, int, int], num_classes: int, batch_norm: bool) -> nn.Sequential:
    """The paper's Figure 3 Inception: conv, inception and downsample modules, global mean pool, FC."""
    blocks = [ConvModule(input_shape[0], 96, 3, batch_norm=batch_norm)]
    for module, widths in SMALL_INCEPTION_LAYOUT:
        blocks.append(module(blocks[-1].out_channels, *widths, batch_norm=batch_norm))
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(blocks[-1].out_channels, num_classes)]
    return nn.Sequential(*blocks, *head)


def inception(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Small Inception with BatchNorm (1,649,402 parameters on 28×28×3, 10 classes)."""
    return small_inception(input_shape, num_classes, batch_norm=True)


def inception_nobn(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Small Inception with every BatchNorm removed (same parameter count)."""
    return small_inception(input_shape, num_classes, batch_norm=False)


LRN_DEPTH_RADIUS, LRN_BIAS, LRN_ALPHA, LRN_BETA = 4, 1.0, 0.001 / 9, 0.75
"""TensorFlow CIFAR-10 tutorial values of ``tf.nn.local_response_normalization``."""


def local_response_norm() -> nn.LocalResponseNorm:
    """TF's LRN in PyTorch's parameterization: window 2r+1, and PyTorch divides alpha by the window."""
    size = 2 * LRN_DEPTH_RADIUS + 1
    return nn.LocalResponseNorm(size, alpha=LRN_ALPHA * size, beta=LRN_BETA, k=LRN_BIAS)


def alexnet_module(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 5×5 ('SAME') → ReLU → max-pool 3×3 stride 2 ('SAME') → LRN."""
    return nn.Sequential(
        SamePad(5, 1),
        nn.Conv2d(in_channels, out_channels, 5),
        nn.ReLU(),
        max_pool_same(3, 2),
        local_response_norm(),
    )


def alexnet(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Small AlexNet: two conv modules of 64 filters, FC 384 → FC 192 → linear output.

    ``dropout`` is the drop probability applied before each of the three fully connected
    layers (active in training mode only). 1,387,786 parameters on 28×28×3, 10 classes.
    """
    channels, height, width = input_shape
    for _ in range(2):  # each module halves the side, rounding up ('SAME' stride-2 pool)
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return nn.Sequential(
        alexnet_module(channels, 64),
        alexnet_module(64, 64),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(64 * height * width, 384),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(384, 192),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(192, num_classes),
    )


@hookimpl
def register_models(register):
    register("inception", inception, default_lr=0.1)
    register("inception_nobn", inception_nobn, default_lr=0.1)
    register("alexnet", alexnet, default_lr=0.01)
