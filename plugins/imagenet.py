"""ImageNet-scale models: torchvision's ResNet-18 and Inception V3 (the ImageNet data set is in
:mod:`harness.plugins.folders`).

The models are built untrained (``weights=None``) and take ImageNet-style 3-channel
input, e.g. (3, 224, 224) for ResNet-18 and (3, 299, 299) for Inception V3 (at least
75×75). Their default learning rate, 0.1, is that of torchvision's reference SGD recipe.
"""

from __future__ import annotations

from torch import nn

from harness import hookimpl
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


@hookimpl
def register_models(register):
    register("resnet18", resnet18, default_lr=0.1)
    register("inception_v3", inception_v3, default_lr=0.1)
