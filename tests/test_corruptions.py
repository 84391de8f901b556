import numpy as np
import pytest

from harness.data import ImageDataset, prepare_data
from harness.plugins.corruptions import gaussian, random_labels, random_pixels, shuffled_pixels


def fake_data(n=2000, m=500, side=6, channels=3, seed=0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    return ImageDataset(
        "fake",
        rng.random((n, side, side, channels), dtype=np.float32),
        rng.integers(0, 10, n),
        rng.random((m, side, side, channels), dtype=np.float32),
        rng.integers(0, 10, m),
        num_classes=10,
    )


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_random_labels_changes_about_0_9_p(p):
    data = fake_data(n=20000)
    out = random_labels(data, p, rng())
    changed = (out.y_train != data.y_train).mean()
    assert changed == pytest.approx(0.9 * p, abs=0.02)
    assert np.array_equal(out.y_test, data.y_test)
    assert np.array_equal(out.x_train, data.x_train)
    assert set(np.unique(out.y_train)) <= set(range(10))


def test_random_labels_full_are_uniform_and_independent_of_truth():
    data = fake_data(n=50000)
    out = random_labels(data, 1.0, rng())
    counts = np.bincount(out.y_train, minlength=10) / len(out.y_train)
    assert np.allclose(counts, 0.1, atol=0.01)
    agreement = (out.y_train == data.y_train).mean()
    assert agreement == pytest.approx(0.1, abs=0.01)


def test_shuffled_pixels_is_one_permutation_for_train_and_test():
    data = fake_data()
    out = shuffled_pixels(data, 1.0, rng())
    n, h, w, c = data.x_train.shape
    before = data.x_train.reshape(n, h * w, c)
    after = out.x_train.reshape(n, h * w, c)
    # Recover the permutation from the first image and check it explains every image, train and test.
    permutation = np.array([np.flatnonzero((before[0] == after[0, j]).all(axis=1))[0] for j in range(h * w)])
    assert not np.array_equal(permutation, np.arange(h * w))
    assert np.array_equal(after, before[:, permutation])
    test_before = data.x_test.reshape(len(data.x_test), h * w, c)
    assert np.array_equal(out.x_test.reshape(test_before.shape), test_before[:, permutation])
    assert np.array_equal(out.y_train, data.y_train) and np.array_equal(out.y_test, data.y_test)


def test_random_pixels_permutes_each_image_independently():
    data = fake_data(n=200, m=50)
    out = random_pixels(data, 1.0, rng())
    n, h, w, c = data.x_train.shape
    before = data.x_train.reshape(n, h * w, c)
    after = out.x_train.reshape(n, h * w, c)

    # Same multiset of pixels per image ...
    def key(a):
        return np.sort(a[..., 0], axis=1)

    assert np.array_equal(key(before), key(after))
    # ... but different permutations for different images.
    first = [np.flatnonzero(before[i, :, 0] == after[i, 0, 0])[0] for i in range(20)]
    assert len(set(first)) > 5
    assert not np.array_equal(out.x_test, data.x_test)
    assert np.array_equal(out.y_train, data.y_train)


def test_gaussian_matches_per_channel_statistics():
    data = fake_data(n=3000)
    data = data.replace(x_train=data.x_train * np.array([1.0, 0.5, 0.2], dtype=np.float32))
    out = gaussian(data, 1.0, rng())
    assert out.x_train.shape == data.x_train.shape and out.x_train.dtype == np.float32
    assert np.allclose(out.x_train.mean(axis=(0, 1, 2)), data.x_train.mean(axis=(0, 1, 2)), atol=0.01)
    assert np.allclose(out.x_train.std(axis=(0, 1, 2)), data.x_train.std(axis=(0, 1, 2)), atol=0.01)
    assert np.array_equal(out.y_train, data.y_train)
    assert not np.allclose(out.x_test, data.x_test)


@pytest.mark.parametrize("corruption", ["random_labels", "shuffled_pixels", "random_pixels", "gaussian"])
def test_corruption_is_deterministic_per_seed(corruption):
    first = prepare_data("digits", corruption, 1.0, seed=3)
    again = prepare_data("digits", corruption, 1.0, seed=3)
    other = prepare_data("digits", corruption, 1.0, seed=4)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    differs = not np.array_equal(first.x_train, other.x_train) or not np.array_equal(first.y_train, other.y_train)
    assert differs


def test_test_labels_never_corrupted():
    clean = prepare_data("digits", "none")
    for corruption in ("random_labels", "shuffled_pixels", "random_pixels", "gaussian"):
        assert np.array_equal(prepare_data("digits", corruption, 1.0).y_test, clean.y_test)
