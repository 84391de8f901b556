"""Models from torchvision and timm by name: building for CIFAR and MNIST shapes, parameter counts,
fitting random labels, errors, and the runs they store."""

import json
import urllib.error
import warnings

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from harness.architectures import ArchitectureError, model_name, parse_model_name
from harness.cli import create_app
from harness.config import RunConfig
from harness.data import ImageDataset
from harness.packing import PackingWarning, execute_pack
from harness.registry import get_registry
from harness.regularizers import RegularizerError, build_regularizers
from harness.runner import execute, resolve_config
from harness.training import RunProgress, Training, build_model, train_alone

timm = pytest.importorskip("timm")

CIFAR, MNIST = (3, 28, 28), (1, 28, 28)
VIT = "timm:vit_tiny_patch16_224,depth=2,patch_size=4"
"""One family per claim, each as small as its library's options make it."""
MODELS = {
    "torchvision:resnet18": lambda shape: torchvision.models.resnet18(num_classes=10),
    "timm:resnet10t": lambda shape: timm.create_model("resnet10t", num_classes=10, in_chans=shape[0]),
    VIT: lambda shape: timm.create_model(
        "vit_tiny_patch16_224", num_classes=10, in_chans=shape[0], img_size=shape[1:], depth=2, patch_size=4
    ),
    "timm:convnext_zepto_rms,patch_size=1": lambda shape: timm.create_model(
        "convnext_zepto_rms", num_classes=10, in_chans=shape[0], patch_size=1
    ),
}


def build(name, shape, seed=0, **options):
    torch.manual_seed(seed)
    return get_registry().get("models", name).obj(shape, 10, **options)


@pytest.mark.parametrize("shape", [CIFAR, MNIST], ids=["cifar", "mnist"])
@pytest.mark.parametrize("name", list(MODELS))
def test_builds_for_the_input_with_the_librarys_own_parameters(name, shape):
    model = build(name, shape)
    torch.manual_seed(0)
    own = MODELS[name](shape)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in own.parameters())
    if shape == CIFAR:  # the meta-device check draws no random numbers: the same weights as the library's own
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), own.state_dict().values()))
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def random_labels(shape, crop):
    """64 random images with random labels (the test split: 8 of them)."""
    rng = np.random.default_rng(0)
    x = rng.random((64, *shape), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    return ImageDataset("random", x, y, x[:8], y[:8], num_classes=10, crop=crop, standardize=True)


FITS = [  # (model, image shape, crop, batch size, learning rate); 1-2 minutes of 2 CPU cores each
    pytest.param("torchvision:resnet18", (32, 32, 3), 28, 32, 0.01, id="resnet18-cifar"),
    pytest.param("torchvision:resnet18", (28, 28, 1), None, 32, 0.01, id="resnet18-mnist"),
    pytest.param("timm:resnet10t", (32, 32, 3), 28, 64, 0.05, id="timm-resnet-cifar"),
    pytest.param(VIT, (32, 32, 3), 28, 32, 0.01, id="vit-cifar"),
    pytest.param(VIT, (28, 28, 1), None, 32, 0.01, id="vit-mnist"),
    pytest.param("timm:convnext_zepto_rms,patch_size=1", (32, 32, 3), 28, 32, 0.01, id="convnext-cifar"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, image_shape, crop, batch_size, lr", FITS)
def test_fits_64_random_labels(name, image_shape, crop, batch_size, lr):
    config = resolve_config(RunConfig(model=name, lr=lr, lr_decay=1.0, max_epochs=60, batch_size=batch_size))
    training = Training(config, random_labels(image_shape, crop), [], torch.device("cpu"))
    train_alone(training, RunProgress())
    assert training.history[-1]["train_acc"] == 1.0


def test_options_are_part_of_the_name_and_the_run_id():
    assert parse_model_name("timm:vit_tiny_patch16_224, patch_size=4,drop_rate=0.1,pretrained=false") == (
        "timm",
        "vit_tiny_patch16_224",
        {"patch_size": 4, "drop_rate": 0.1, "pretrained": False},
    )
    assert model_name("timm", "resnet18", {"drop_rate": 0.25, "a": "x"}) == "timm:resnet18,a=x,drop_rate=0.25"
    one, other = (
        resolve_config(RunConfig(model=f"timm:resnet10t,{options}"))
        for options in ("drop_rate=0.1,output_stride=16", "output_stride=16,drop_rate=0.1")
    )
    assert one.model == other.model == "timm:resnet10t,drop_rate=0.1,output_stride=16"
    assert one.run_id == other.run_id != resolve_config(RunConfig(model="timm:resnet10t")).run_id


@pytest.mark.parametrize(
    "name, message",
    [
        ("torchvision:resnet81", "unknown torchvision model 'resnet81'; closest: resnet18"),
        (
            "timm:vit_tiny_patch16",
            "unknown timm model 'vit_tiny_patch16'; closest: vit_tiny_patch16_384, vit_tiny_patch16_224",
        ),
        ("timn:resnet18", "unknown model library 'timn'; known: timm, torchvision"),
        ("torchvision:resnet18,width=2", "got an unexpected keyword argument 'width'; its options: block,"),
    ],
)
def test_unknown_names_are_one_line_with_suggestions(tmp_path, name, message):
    args = ["run", "--plugin", name, "--dataset", "digits", "--results-dir", str(tmp_path), "--device", "cpu"]
    result = CliRunner().invoke(create_app(), args, terminal_width=400)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "timm:convnext_zepto_rms",
            "cannot take 3x28x28 input (RuntimeError: Calculated padded input size per channel",
        ),
        (
            "timm:vit_tiny_patch16_224",
            "not a multiple of the patch size 16x16); timm:vit_tiny_patch16_224,patch_size=14 takes it",
        ),
        ("torchvision:vgg11", "Output size is too small); no size option of the library makes it fit"),
    ],
)
def test_inputs_a_model_cannot_take_are_one_line(name, message):
    with pytest.raises(ArchitectureError) as error:
        build(name, CIFAR)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_dropout_reaches_the_drop_rate_where_the_constructor_takes_one():
    dropout = build_regularizers(["dropout=0.3"])
    model = build_model(RunConfig(model="timm:resnet10t"), CIFAR, 10, dropout)
    assert model.drop_rate == 0.3
    with pytest.raises(RegularizerError, match="does not support 'dropout'"):
        build_model(RunConfig(model="torchvision:resnet18"), CIFAR, 10, dropout)
    with pytest.raises(ArchitectureError, match="both set the drop rate"):
        build_model(RunConfig(model="timm:resnet10t,drop_rate=0.1"), CIFAR, 10, dropout)


def test_pretrained_is_refused_when_the_weights_cannot_be_fetched(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(ArchitectureError, match="pretrained weights for torchvision:resnet18 are not cached"):
        build("torchvision:resnet18,pretrained=true", CIFAR)


def test_runs_record_the_library_and_its_version(tmp_path):
    config = RunConfig(
        model="timm:resnet10t",
        dataset="digits",
        train_size=32,
        test_size=16,
        max_epochs=1,
        regularizers=("weight_decay", "random_crop", "augment"),
    )
    row = execute(config, tmp_path, device="cpu").row
    assert row["status"] == "completed" and row["model"] == "timm:resnet10t"
    assert (row["model_library"], row["model_library_version"]) == ("timm", timm.__version__)
    assert row["param_count"] == sum(
        p.numel() for p in timm.create_model("resnet10t", num_classes=10, in_chans=1).parameters()
    )


def test_library_models_train_in_a_pack(tmp_path):
    """torch.func vectorizes a torchvision ResNet (BatchNorm included): a pack of two, no fallback."""
    configs = [
        RunConfig(model="torchvision:resnet18", dataset="digits", train_size=32, test_size=16, max_epochs=1, seed=seed)
        for seed in (0, 1)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PackingWarning)
        outcomes = execute_pack(configs, tmp_path, device="cpu")
    assert [(o.row["status"], o.row["pack_size"], o.row["model_library"]) for o in outcomes] == [
        ("completed", 2, "torchvision")
    ] * 2


def test_plugins_lists_the_libraries_and_searches_them():
    app = create_app()
    listing = json.loads(CliRunner().invoke(app, ["plugins", "--format", "json"]).stdout)
    libraries = {entry["name"]: entry["info"] for entry in listing["model_libraries"]}
    assert libraries["timm"]["version"] == timm.__version__ and libraries["torchvision"]["models"] > 50
    found = json.loads(CliRunner().invoke(app, ["plugins", "--search", "resnet18", "--format", "json"]).stdout)
    rows = {row["name"]: row for row in found}
    assert rows["torchvision:resnet18"]["params"] == 11_181_642 and rows["timm:resnet18"]["params"] == 11_181_642
    assert all("resnet18" in name and row["kind"] == "model" for name, row in rows.items())
    datasets = json.loads(CliRunner().invoke(app, ["plugins", "--search", "mnist", "--format", "json"]).stdout)
    names = {row["name"] for row in datasets if row["kind"] == "dataset"}
    assert {"mnist", "torchvision:FashionMNIST", "torchvision:KMNIST"} <= names


def test_pretrained_loads_the_cached_weights_that_fit_and_keeps_a_random_head(monkeypatch):
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(num_classes=1000).state_dict()
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *args, **kwargs: imagenet)
    model = build("torchvision:resnet18,pretrained=true", CIFAR)
    assert torch.equal(model.conv1.weight, imagenet["conv1.weight"])
    assert model.fc.weight.shape == (10, 512)
