from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.plugins.feature_maps import (
    CONTRAST_EPS,
    GaborFeatures,
    PixelFeatures,
    RandomConvFeatures,
    _morlet,
    register_feature_maps,
)

SMALL = {
    "none": PixelFeatures,
    "gabor": partial(GaborFeatures, scales=2, orientations=4, pool=2),
    "random_conv": partial(RandomConvFeatures, num_filters=20, patch=3),
}
BANKS = ["gabor", "random_conv"]


def images(n, shape=(8, 8, 3), seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def features(feature_map, x_train, x_test):
    pairs = list(feature_map.blocks(x_train, x_test))
    return np.hstack([a for a, _ in pairs]), np.hstack([b for _, b in pairs]), pairs


def test_registered_names():
    registered = {}
    register_feature_maps(lambda name, obj: registered.setdefault(name, obj))
    assert registered == {"none": PixelFeatures, "gabor": GaborFeatures, "random_conv": RandomConvFeatures}


@pytest.mark.parametrize("shape", [(8, 8, 3), (9, 7, 1)])
@pytest.mark.parametrize("name", SMALL)
def test_blocks_agree_with_dim_and_num_blocks(name, shape):
    options = {} if name == "none" else {"block_dim": 50, "batch_size": 3}
    feature_map = SMALL[name](**options)
    x_train, x_test = images(7, shape), images(4, shape, seed=1)
    full_train, full_test, pairs = features(feature_map, x_train, x_test)
    assert len(pairs) == feature_map.num_blocks(shape)
    assert full_train.shape == (7, feature_map.dim(shape)) and full_test.shape == (4, feature_map.dim(shape))
    for a, b in pairs:
        assert a.dtype == b.dtype == np.float32 and a.shape[1] == b.shape[1]
        assert name == "none" or a.shape[1] <= 50
    assert np.isfinite(full_train).all() and np.isfinite(full_test).all()


@pytest.mark.parametrize("name", BANKS)
def test_blocking_and_batching_do_not_change_features(name):
    x_train, x_test = images(7), images(4, seed=1)
    whole = features(SMALL[name](block_dim=10**6, batch_size=100), x_train, x_test)
    split = features(SMALL[name](block_dim=30, batch_size=2), x_train, x_test)
    assert len(whole[2]) == 1 and len(split[2]) > 1
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(split[1], whole[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SMALL)
def test_train_and_test_go_through_the_same_map(name):
    x = images(5)
    train, test, _ = features(SMALL[name](), x, x)
    np.testing.assert_array_equal(train, test)


def test_random_conv_is_deterministic_for_a_seed():
    x_train, x_test = images(6), images(3, seed=1)
    first = features(RandomConvFeatures(num_filters=16, patch=3, seed=4), x_train, x_test)
    again = features(RandomConvFeatures(num_filters=16, patch=3, seed=4), x_train, x_test)
    other = features(RandomConvFeatures(num_filters=16, patch=3, seed=5), x_train, x_test)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.allclose(first[1], other[1])
    assert (first[0] >= 0).all()


def test_pixels_are_the_flattened_images():
    x_train, x_test = images(3), images(2)
    train, test, pairs = features(PixelFeatures(), x_train, x_test)
    assert len(pairs) == 1
    np.testing.assert_array_equal(train, x_train.reshape(3, -1))
    np.testing.assert_array_equal(test, x_test.reshape(2, -1))


def test_default_dimensions():
    assert PixelFeatures().dim((28, 28, 1)) == 784
    assert GaborFeatures().dim((28, 28, 1)) == 833
    assert GaborFeatures().dim((32, 32, 3)) == 3264
    assert RandomConvFeatures().dim((32, 32, 3)) == 256_000
    assert RandomConvFeatures().num_blocks((32, 32, 3)) == 63
    # 50,000 images x 4,096 float32 features per block: under 1 GB.
    assert GaborFeatures(pool=2).num_blocks((32, 32, 3)) == 4


def test_gabor_first_filter_gives_the_pooled_pixels():
    x = images(3, (8, 8, 2))
    gabor = GaborFeatures(pool=2, block_dim=32)  # one filter (2 channels x 4 x 4) per block
    first_train, _ = next(gabor.blocks(x, x))
    pooled = F.avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 2).flatten(1).numpy()
    np.testing.assert_allclose(first_train, pooled, atol=1e-6)


def test_morlet_has_zero_mean():
    wavelet = _morlet(radius=10, sigma=1.6, xi=3 * np.pi / 8, theta=np.pi / 4, slant=0.5)
    assert wavelet.sum((1, 2)).abs().max() < 1e-12


def gaussian_kernel_error(feature_map, x_train, y_train, x_test, y_test):
    train, test, _ = features(feature_map, x_train, x_test)
    train, test = train.astype(np.float64), test.astype(np.float64)
    sq_train, sq_test = (train**2).sum(1), (test**2).sum(1)
    dist = sq_train[:, None] + sq_train - 2 * train @ train.T
    dist_test = sq_test[:, None] + sq_train - 2 * test @ train.T
    gamma = 1 / np.median(dist)
    alpha = np.linalg.solve(np.exp(-gamma * dist), np.eye(10)[y_train])
    return np.mean((np.exp(-gamma * dist_test) @ alpha).argmax(1) != y_test)


def test_gabor_beats_pixels_on_mnist(mnist_root):
    from harness.plugins.datasets import load_mnist

    data = load_mnist(mnist_root, download=False)
    x_train, x_test = data.x_train[:500] / np.float32(255), data.x_test[:300] / np.float32(255)
    args = (x_train, data.y_train[:500], x_test, data.y_test[:300])
    assert gaussian_kernel_error(GaborFeatures(), *args) < gaussian_kernel_error(PixelFeatures(), *args)


def random_conv_by_its_definition(x: np.ndarray, filters: torch.Tensor, patch: int, bias: float) -> np.ndarray:
    """The documented features, patch by patch: normalized patches, responses, both polarities, quadrants."""
    images = torch.from_numpy(x).permute(0, 3, 1, 2).double()
    patches = F.unfold(images, patch)  # (N, C * patch**2, positions), in (C, patch, patch) order
    patches = patches - patches.mean(1, keepdim=True)
    patches = patches / (patches.var(1, unbiased=False, keepdim=True) + CONTRAST_EPS).sqrt()
    filters = filters.double()
    response = torch.einsum("fd,ndp->nfp", filters[:, :-1], patches) + filters[:, -1, None]
    side = x.shape[1] - patch + 1
    response = response.unflatten(2, (side, side))
    polarities = torch.stack([(response - bias).clamp_min(0), (-response - bias).clamp_min(0)], 2)
    half = (side + 1) // 2  # quadrants share the middle row and column when the side is odd
    quadrants = [polarities[..., rows, cols].mean((-2, -1)) for rows in (slice(0, half), slice(side - half, side))
                 for cols in (slice(0, half), slice(side - half, side))]  # fmt: skip
    return (torch.stack(quadrants, -1).flatten(1) / np.sqrt(len(filters))).numpy()


@pytest.mark.parametrize("side, bias", [(11, 0.25), (12, 0.0), (3, 0.1)])  # response maps 9, 10 and 1 wide
def test_random_conv_features_are_their_definition(side, bias):
    x = images(6, (side, side, 3))
    feature_map = RandomConvFeatures(num_filters=10, patch=3, bias=bias, block_dim=8 * 4)
    filters = feature_map._filter_bank(x)
    blocks = [train for train, _ in feature_map.blocks(x, x[:0])]
    assert len(blocks) == 3  # 4 + 4 + 2 filters
    expected = random_conv_by_its_definition(x, filters, patch=3, bias=bias)
    np.testing.assert_allclose(np.concatenate(blocks, 1), expected, rtol=1e-4, atol=1e-6)


def test_random_conv_refuses_a_negative_threshold():
    with pytest.raises(ConfigError, match="bias is a threshold"):
        RandomConvFeatures(bias=-0.1)
