import numpy as np
import pytest
import torch

from harness.data import (
    DataError,
    ImageDataset,
    center_crop,
    first_examples,
    load_dataset,
    prepare_data,
    standardize_per_image,
    to_model_input,
)
from harness.plugins.datasets import load_array_layout
from harness.plugins.mlp import mlp_1x512, mlp_3x512


def test_per_image_standardization_matches_tensorflow_formula():
    images = torch.rand(4, 3, 28, 28, dtype=torch.float64)
    images[3] = 0.5  # constant image: std floored at 1/sqrt(N)
    out = standardize_per_image(images)
    for image, result in zip(images.numpy(), out.numpy()):
        n = image.size
        expected = (image - image.mean()) / max(image.std(), 1 / np.sqrt(n))
        assert np.allclose(result, expected)
    assert torch.allclose(out[:3].flatten(1).mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out[:3].flatten(1).std(1, unbiased=False), torch.ones(3, dtype=torch.float64))


def test_center_crop_28_of_32():
    images = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32)
    cropped = center_crop(images, 28)
    assert cropped.shape == (1, 1, 28, 28) and cropped[0, 0, 0, 0] == 2 * 32 + 2


def test_mlp_param_counts_on_cifar_input():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    assert count(mlp_1x512((3, 28, 28), 10)) == 1_209_866
    assert count(mlp_3x512((3, 28, 28), 10)) == 1_735_178


def test_array_layout_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    folder.mkdir()
    for split, n in (("train", 30), ("test", 10)):
        np.savez(folder / f"{split}.npz", x=rng.integers(0, 256, (n, 5, 5, 3), dtype=np.uint8), y=rng.integers(0, 4, n))
    x_train, y_train, x_test, y_test = load_array_layout(tmp_path, "mine")
    assert x_train.shape == (30, 5, 5, 3) and y_test.dtype == np.int64
    assert load_array_layout(tmp_path, "absent") is None


def test_first_examples_are_taken_and_too_many_refused():
    data = load_dataset("digits")
    small = first_examples(data, 10, 5)
    assert np.array_equal(small.y_train, data.y_train[:10]) and len(small.y_test) == 5
    with pytest.raises(DataError, match="1500 train"):
        first_examples(data, 1501, None)


@pytest.mark.data
def test_real_cifar10_as_the_paper_preprocesses_it(cifar_root):
    data = prepare_data("cifar10", train_size=100, test_size=10, root=cifar_root)
    assert data.x_train.shape == (100, 32, 32, 3) and data.input_shape == (3, 28, 28)
    assert list(data.y_train[:10]) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    inputs = to_model_input(data.x_train, data)
    assert inputs.shape == (100, 3, 28, 28)
    assert torch.allclose(inputs.flatten(1).mean(1), torch.zeros(100), atol=1e-5)


@pytest.mark.data
def test_real_mnist_through_torchvision(mnist_root):
    data = load_dataset("mnist", mnist_root, download=False)
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert list(data.y_train[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert isinstance(data, ImageDataset) and data.input_shape == (1, 28, 28)
