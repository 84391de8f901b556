"""The paper's CIFAR-10 convolutional networks: shapes, parameter counts, conventions."""

import inspect

import pytest
import torch
from torch import nn

from harness.plugins import cnn

CIFAR_SHAPE = (3, 28, 28)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_registers_models_with_paper_learning_rates():
    registered = {}
    cnn.register_models(lambda name, factory, default_lr=None: registered.update({name: default_lr}))
    assert registered == {"inception": 0.1, "inception_nobn": 0.1, "alexnet": 0.01}


@pytest.mark.parametrize(
    "factory, expected",
    [(cnn.inception, 1_649_402), (cnn.inception_nobn, 1_649_402), (cnn.alexnet, 1_387_786)],
)
def test_parameter_counts_match_table_1(factory, expected):
    assert count_parameters(factory(input_shape=CIFAR_SHAPE, num_classes=10)) == expected


@pytest.mark.parametrize("factory", [cnn.inception, cnn.inception_nobn, cnn.alexnet])
@pytest.mark.parametrize("input_shape", [CIFAR_SHAPE, (1, 28, 28), (1, 8, 8)])
def test_forward_gives_logits_per_class(factory, input_shape):
    model = factory(input_shape=input_shape, num_classes=7)
    assert model(torch.randn(2, *input_shape)).shape == (2, 7)


def test_batch_norm_convention():
    with_bn = cnn.inception(input_shape=CIFAR_SHAPE, num_classes=10)
    without_bn = cnn.inception_nobn(input_shape=CIFAR_SHAPE, num_classes=10)
    with_bn_convs = [m for m in with_bn.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.bias is None for conv in with_bn_convs)
    assert all(not m.affine for m in with_bn.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in without_bn.modules())
    assert all(m.bias is not None for m in without_bn.modules() if isinstance(m, nn.Conv2d))


def test_downsample_halves_the_side_like_its_conv_branch():
    x = torch.randn(1, 80, 28, 28)
    for side in (14, 7):
        x = cnn.DownsampleModule(x.shape[1], 16)(x)
        assert x.shape[-2:] == (side, side)


def test_max_pool_pads_like_tensorflow_same():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    # TF pads the odd extra row/column at the bottom/right: windows start at 0 and 2.
    assert cnn.max_pool_same(3, 2)(image).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]


def test_local_response_norm_matches_tensorflow_formula():
    x = torch.randn(2, 12, 3, 3)
    radius = cnn.LRN_DEPTH_RADIUS
    square_sums = torch.stack(
        [x[:, max(c - radius, 0) : c + radius + 1].pow(2).sum(dim=1) for c in range(x.shape[1])], dim=1
    )
    expected = x / (cnn.LRN_BIAS + cnn.LRN_ALPHA * square_sums) ** cnn.LRN_BETA
    torch.testing.assert_close(cnn.local_response_norm()(x), expected)


def test_only_alexnet_accepts_dropout():
    assert "dropout" in inspect.signature(cnn.alexnet).parameters
    assert "dropout" not in inspect.signature(cnn.inception).parameters
    assert "dropout" not in inspect.signature(cnn.inception_nobn).parameters


def test_alexnet_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    model = cnn.alexnet(input_shape=CIFAR_SHAPE, num_classes=10, dropout=0.5)
    x = torch.randn(2, *CIFAR_SHAPE)
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
