"""The regularizer contract.

A regularizer plugin registers ``factory(value: str | None) -> Regularizer``; on the
command line it is ``--regularizer NAME`` or ``--regularizer NAME=VALUE``. A
regularizer acts through any of the members below; the defaults do nothing.
"""

from __future__ import annotations

import torch

from harness.errors import ConfigError
from harness.registry import get_registry


class RegularizerError(ConfigError):
    """A regularizer was given a bad value or cannot apply to the chosen model."""


class Regularizer:
    """Base class of regularizers; override what applies."""

    #: Fraction of the training set held out (not trained on) and evaluated every epoch.
    holdout_fraction: float = 0.0

    def model_options(self) -> dict:
        """Keyword options passed to the model factory (e.g. ``{"dropout": 0.5}``)."""
        return {}

    def optimizer_options(self) -> dict:
        """Keyword options passed to the SGD optimizer (e.g. ``{"weight_decay": 5e-4}``)."""
        return {}

    def transform_batch(self, images: torch.Tensor, crop: int | None, generator: torch.Generator) -> torch.Tensor:
        """Change a training batch: (B, C, H, W) floats in [0, 1], before center crop and
        standardization. May crop to ``crop`` itself (then no center crop follows)."""
        return images

    def should_stop(self, history: list[dict]) -> bool:
        """Stop training after the epochs in ``history`` (rows of the ``epochs`` table)."""
        return False

    @property
    def transforms_batches(self) -> bool:
        """Whether this regularizer changes training batches."""
        return type(self).transform_batch is not Regularizer.transform_batch


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"weight_decay=5e-4"`` -> ``("weight_decay", "5e-4")``; ``"random_crop"`` -> ``("random_crop", None)``."""
    name, sep, value = spec.partition("=")
    return name.strip(), (value.strip() if sep else None)


def parse_float(
    name: str, value: str | None, default: float | None = None, low: float = 0.0, high: float = float("inf")
) -> float:
    """A float option value in [low, high], or ``default`` when none was given."""
    if value is None:
        if default is None:
            raise RegularizerError(f"regularizer {name} needs a value: --regularizer {name}=VALUE")
        return default
    try:
        number = float(value)
    except ValueError:
        raise RegularizerError(f"regularizer {name}: '{value}' is not a number") from None
    if not low <= number <= high:
        raise RegularizerError(f"regularizer {name}: {number} is outside [{low}, {high}]")
    return number


def build_regularizers(specs: list[str] | tuple[str, ...]) -> list[Regularizer]:
    """Regularizer objects for ``NAME[=VALUE]`` specs, through the registry."""
    registry = get_registry()
    regularizers = []
    for spec in specs:
        name, value = parse_spec(spec)
        regularizers.append(registry.get("regularizers", name).obj(value))
    return regularizers
