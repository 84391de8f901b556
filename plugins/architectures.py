"""The model libraries ``torchvision:`` and ``timm:`` (any architecture their model listers know).

Small-image options, per family:

- torchvision: models with an ``image_size`` option (ViT) get the data set's side; one-channel
  images (MNIST) are repeated to three channels by a parameter-free first layer, since torchvision
  models take RGB only; GoogLeNet and Inception V3 are built without auxiliary heads.
- timm: ``in_chans`` is the data set's channel count; models with a fixed input size (ViT, DeiT,
  MLP-Mixer, Swin, ...) get ``img_size`` = the data set's size (the patch size must divide it).

Every other model is built as the library defines it; one that cannot take the input size is
refused in one line (see :mod:`harness.architectures`).
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from harness import hookimpl
from harness.architectures import ArchitectureError, ModelLibrary


class RepeatChannels(nn.Module):
    """Repeats a one-channel image to ``channels`` channels (no parameters)."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.channels, -1, -1)


def load_matching(model: nn.Module, state: dict) -> nn.Module:
    """Load the pretrained tensors whose shapes match the model (the head and resized layers stay random)."""
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    return model


def weights_error(name: str, error: Exception) -> ArchitectureError:
    return ArchitectureError(
        f"pretrained weights for {name} are not cached and cannot be downloaded "
        f"({type(error).__name__}: {error}); a randomization test needs none: drop pretrained=true"
    )


class Torchvision(ModelLibrary):
    """torchvision's image classifiers, by the names of ``torchvision.models.list_models(torchvision.models)``
    (not its detection, segmentation, video or quantized models)."""

    name = "torchvision"
    drop_rate_option = "dropout"

    def names(self) -> list[str]:
        import torchvision

        return sorted(torchvision.models.list_models(module=torchvision.models))

    def version(self) -> str:
        import torchvision

        return torchvision.__version__

    def construct(self, arch, input_shape, num_classes, options, pretrained):
        import torchvision

        kwargs = dict(options)
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if input_shape is not None:
            parameters = self.constructor_parameters(arch)
            if "image_size" in parameters:
                kwargs.setdefault("image_size", input_shape[1])
            if "aux_logits" in parameters:
                kwargs.setdefault("aux_logits", False)
            if input_shape[0] not in (1, 3):
                raise ArchitectureError(
                    f"torchvision:{arch} takes 1- or 3-channel images, not {input_shape[0]} channels"
                )
        model = torchvision.models.get_model(arch, weights=None, **kwargs)
        if pretrained:
            try:
                state = torchvision.models.get_model_weights(arch).DEFAULT.get_state_dict(progress=False)
            except OSError as error:
                raise weights_error(f"torchvision:{arch}", error) from None
            load_matching(model, state)
        if input_shape is not None and input_shape[0] == 1:
            model = nn.Sequential(RepeatChannels(3), model)
        return model


class Timm(ModelLibrary):
    """timm, by the names of ``timm.list_models()``."""

    name = "timm"
    drop_rate_option = "drop_rate"
    extra = "timm"

    def available(self) -> bool:
        return importlib.util.find_spec("timm") is not None

    def names(self) -> list[str]:
        import timm

        return timm.list_models()

    def version(self) -> str:
        import timm

        return timm.__version__

    def construct(self, arch, input_shape, num_classes, options, pretrained):
        import timm

        kwargs = dict(options)
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        if input_shape is not None:
            kwargs["in_chans"] = input_shape[0]
            config = timm.models.get_pretrained_cfg(arch)
            if config is not None and config.fixed_input_size:
                kwargs.setdefault("img_size", tuple(input_shape[1:]))
        try:
            return timm.create_model(arch, pretrained=pretrained, **kwargs)
        except OSError as error:
            if pretrained:
                raise weights_error(f"timm:{arch}", error) from None
            raise


@hookimpl
def register_model_libraries(register):
    register("torchvision", Torchvision())
    register("timm", Timm())
