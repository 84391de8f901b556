"""Multi-layer perceptrons of Table 1 (ReLU, biases, 512 units per hidden layer) and a linear baseline."""

from __future__ import annotations

import math

from torch import nn

from harness import hookimpl


def mlp(input_shape, num_classes, hidden_layers: int, width: int = 512, dropout: float = 0.0) -> nn.Sequential:
    """Flatten → [Linear(width) → ReLU (→ Dropout)] × hidden_layers → Linear(num_classes)."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(hidden_layers):
        layers += [nn.Linear(features, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def mlp_1x512(input_shape, num_classes, dropout: float = 0.0) -> nn.Sequential:
    """One hidden layer of 512 units (1,209,866 parameters on 28×28×3)."""
    return mlp(input_shape, num_classes, hidden_layers=1, dropout=dropout)


def mlp_3x512(input_shape, num_classes, dropout: float = 0.0) -> nn.Sequential:
    """Three hidden layers of 512 units (1,735,178 parameters on 28×28×3)."""
    return mlp(input_shape, num_classes, hidden_layers=3, dropout=dropout)


def linear(input_shape, num_classes) -> nn.Sequential:
    """Multinomial logistic regression on the flattened input (an MLP with no hidden layer)."""
    return mlp(input_shape, num_classes, hidden_layers=0)


@hookimpl
def register_models(register):
    register("linear", linear, default_lr=0.01)
    register("mlp_1x512", mlp_1x512, default_lr=0.01)
    register("mlp_3x512", mlp_3x512, default_lr=0.01)
