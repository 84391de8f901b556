from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from harness.batches import BatchSource
from harness.config import RunConfig
from harness.data import ImageDataset
from harness.plugins.regularizers import Augment, EarlyStopping, RandomCrop
from harness.regularizers import RegularizerError, build_regularizers
from harness.runner import execute
from harness.training import build_model

DIGITS = {"model": "mlp_1x512", "dataset": "digits", "train_size": 100, "test_size": 50, "batch_size": 25, "seed": 0}


def cifar_like(n=8) -> ImageDataset:
    """Random 32×32 RGB images, preprocessed like CIFAR-10 (28×28 center crop, standardization)."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return ImageDataset("cifar_like", x, y, x, y, num_classes=10, crop=28, standardize=True)


class RecordingSGD(torch.optim.SGD):
    instances: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingSGD.instances.append(self)


@pytest.mark.parametrize("specs, expected", [((), 0.0), (("weight_decay",), 5e-4), (("weight_decay=1e-3",), 1e-3)])
def test_weight_decay_reaches_the_optimizer(tmp_path, monkeypatch, specs, expected):
    RecordingSGD.instances = []
    monkeypatch.setattr(torch.optim, "SGD", RecordingSGD)
    execute(RunConfig(**DIGITS, max_epochs=1, regularizers=specs), tmp_path, device="cpu")
    assert [g["weight_decay"] for g in RecordingSGD.instances[0].param_groups] == [expected]


def test_random_crop_is_a_fresh_real_28_crop_every_draw():
    images = torch.rand(16, 3, 32, 32)
    crop = RandomCrop(None)
    first, second = (crop.transform_batch(images, 28, torch.Generator().manual_seed(s)) for s in (1, 2))
    assert first.shape == (16, 3, 28, 28) and not torch.equal(first, second)
    for image, cropped in zip(images, first):
        windows = image.unfold(1, 28, 1).unfold(2, 28, 1)  # (3, 5, 5, 28, 28): every 28×28 window
        assert any(torch.equal(windows[:, i, j], cropped) for i in range(5) for j in range(5))


def test_random_crop_changes_batches_between_epochs():
    batches = BatchSource(cifar_like(), build_regularizers(["random_crop"]), torch.device("cpu"), seed=0)
    index = torch.arange(8)
    epoch1, epoch2 = batches(index), batches(index)
    assert epoch1.shape == batches.inputs[index].shape == (8, 3, 28, 28)
    assert not torch.equal(epoch1, epoch2)


def test_random_crop_pads_full_size_images_and_keeps_their_size():
    images = torch.rand(64, 1, 8, 8) + 1  # no pixel is 0, so every 0 comes from the padding
    cropped = RandomCrop("2").transform_batch(images, None, torch.Generator().manual_seed(0))
    assert cropped.shape == images.shape
    padded = torch.nn.functional.pad(images, [2] * 4)
    for image, crop in zip(padded, cropped):
        windows = image.unfold(1, 8, 1).unfold(2, 8, 1)  # (1, 5, 5, 8, 8): every 8×8 window of the padded image
        assert any(torch.equal(windows[:, i, j], crop) for i in range(5) for j in range(5))
    shifted = [crop for crop in cropped if (crop == 0).any()]
    assert shifted and all((crop == 0).sum() <= 8 * 8 - 6 * 6 for crop in shifted)  # a shift of at most 2 pixels


def test_augment_changes_inputs_and_keeps_shape_and_range():
    images = torch.rand(16, 3, 32, 32)
    augmented = Augment(None).transform_batch(images, 28, torch.Generator().manual_seed(0))
    again = Augment(None).transform_batch(images, 28, torch.Generator().manual_seed(1))
    assert augmented.shape == images.shape and not torch.equal(augmented, images) and not torch.equal(augmented, again)
    assert augmented.min() >= 0 and augmented.max() <= 1
    batches = BatchSource(cifar_like(), build_regularizers(["augment"]), torch.device("cpu"), seed=0)
    assert batches(torch.arange(8)).shape == (8, 3, 28, 28)


@pytest.mark.parametrize("model", ["alexnet", "mlp_1x512"])
def test_dropout_acts_in_training_only(model):
    regularizers = build_regularizers(["dropout=0.5"])
    torch.manual_seed(0)
    net = build_model(RunConfig(model=model), (3, 28, 28), 10, regularizers)
    x = torch.randn(4, 3, 28, 28)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_dropout_on_a_model_without_it_is_a_clear_error():
    with pytest.raises(RegularizerError, match="model inception does not support 'dropout'"):
        build_model(RunConfig(model="inception"), (3, 28, 28), 10, build_regularizers(["dropout"]))


def test_early_stopping_holds_out_data_and_stops(tmp_path):
    config = RunConfig(
        **{**DIGITS, "train_size": 200}, corruption="random_labels", max_epochs=100, regularizers=("early_stopping=2",)
    )
    row = execute(config, tmp_path, device="cpu").row
    assert row["stopped_early"] and row["epochs"] < 100 and row["train_acc"] < 1.0
    assert row["steps"] == row["epochs"] * 8  # 180 of 200 examples trained on, batch 25
    epochs = pq.read_table(tmp_path / "epochs" / f"{row['run_id']}.parquet").to_pylist()
    holdout = [e["holdout_acc"] for e in epochs]
    assert None not in holdout and holdout.index(max(holdout)) == len(holdout) - 3


def test_early_stopping_rule():
    stop = EarlyStopping("2")
    history = [{"holdout_acc": a} for a in (0.1, 0.3, 0.2)]
    assert not stop.should_stop(history)
    assert stop.should_stop(history + [{"holdout_acc": 0.3}])
