"""ImageNet-scale torchvision models and the ImageNet data set (an image folder tree)."""

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data import DataError
from harness.plugins import folders, imagenet


def test_resnet18_forward():
    model = imagenet.resnet18(input_shape=(3, 64, 64), num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_inception_v3_forward_at_its_minimum_size():
    model = imagenet.inception_v3(input_shape=(3, 75, 75), num_classes=5, dropout=0.3).eval()
    assert model.AuxLogits is None
    assert model.dropout.p == 0.3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 75)).shape == (1, 5)


@pytest.mark.parametrize("input_shape", [(1, 299, 299), (3, 64, 64)])
def test_inception_v3_rejects_inputs_it_cannot_take(input_shape):
    with pytest.raises(ValueError, match="inception_v3 needs 3-channel images of at least 75"):
        imagenet.inception_v3(input_shape=input_shape, num_classes=5)


def write_image_folder(split_folder, images_per_class):
    rng = np.random.default_rng(0)
    for class_name in ("cat", "dog"):
        (split_folder / class_name).mkdir(parents=True)
        for index in range(images_per_class):
            height, width = rng.integers(10, 40, size=2)
            pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(split_folder / class_name / f"{index}.png")


def test_loads_image_folder_tree_resized(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "imagenet" / "train", images_per_class=3)
    write_image_folder(tmp_path / "imagenet" / "val", images_per_class=1)
    monkeypatch.setenv(folders.IMAGENET_SIZE_ENV, "16")
    data = folders.load_imagenet(tmp_path, download=False)
    assert data.name == "imagenet" and data.num_classes == 2 and data.standardize and data.crop is None
    assert data.x_train.shape == (6, 16, 16, 3) and data.x_train.read().dtype == np.uint8
    assert data.x_test.shape == (2, 16, 16, 3)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1] and data.y_train.dtype == np.int64
    assert data.y_test.tolist() == [0, 1]
    assert data.input_shape == (3, 16, 16)


def test_image_size_defaults_to_299_and_must_be_positive(monkeypatch):
    monkeypatch.delenv(folders.IMAGENET_SIZE_ENV, raising=False)
    assert folders.imagenet_image_size() == 299
    monkeypatch.setenv(folders.IMAGENET_SIZE_ENV, "big")
    with pytest.raises(DataError, match=folders.IMAGENET_SIZE_ENV):
        folders.imagenet_image_size()


def test_missing_folder_names_it_and_the_layout_even_with_download(tmp_path):
    with pytest.raises(DataError, match="ImageNet not found") as error:
        folders.load_imagenet(tmp_path, download=True)
    message = str(error.value)
    assert str(tmp_path / "imagenet") in message and "train/<class>/<image>" in message
    assert "\n" not in message


def test_train_and_val_classes_must_agree(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "imagenet" / "train", images_per_class=1)
    write_image_folder(tmp_path / "imagenet" / "val", images_per_class=1)
    (tmp_path / "imagenet" / "val" / "dog").rename(tmp_path / "imagenet" / "val" / "bird")
    monkeypatch.setenv(folders.IMAGENET_SIZE_ENV, "8")
    with pytest.raises(DataError, match="same class folders"):
        folders.load_imagenet(tmp_path, download=False)
