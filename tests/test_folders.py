"""Image folder and torchvision data sets by name, streamed from disk, corrupted per example exactly as
the same data set held in memory."""

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from harness.config import RunConfig
from harness.data import DataError, load_dataset, prepare_data
from harness.plugins.folders import write_image_folder
from harness.runner import execute
from harness.sample_images import write_jpeg_tree
from harness.streaming import MEMORY_BUDGET_ENV, PIXEL_SCALE, WORKERS_ENV, ImageFiles, StreamedBatches

CORRUPTIONS = ["none", "random_labels", "shuffled_pixels", "random_pixels", "gaussian"]
TRAIN, TEST = 2000, 200


@pytest.fixture(scope="module")
def cifar_tree(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, the first 2,000 / 200 CIFAR-10 images as a lossless PNG tree with its manifest)."""
    root = Path(os.environ.get("HARNESS_DATA_ROOT", "/nonexistent"))
    if not (root / "cifar10" / "train.npz").exists() and not (root / "cifar-10-batches-py").exists():
        pytest.skip(f"CIFAR-10 not found under HARNESS_DATA_ROOT ({root})")
    tree = tmp_path_factory.mktemp("cifar10-png")
    data = load_dataset("cifar10", root, download=False)
    small = data.replace(
        x_train=data.x_train[:TRAIN], y_train=data.y_train[:TRAIN], x_test=data.x_test[:TEST], y_test=data.y_test[:TEST]
    )
    write_image_folder(small, tree)
    return root, tree


def as_float(images: np.ndarray) -> np.ndarray:
    """Images read from files as the model sees them (uncorrupted ones are read as uint8)."""
    return images.astype(np.float32) * PIXEL_SCALE if images.dtype == np.uint8 else images


def streamed(tree: Path) -> str:
    return f"folder:{tree},size=32,crop=28"


@pytest.fixture
def streaming(monkeypatch):
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    monkeypatch.setenv(WORKERS_ENV, "2")


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_streamed_tree_is_corrupted_as_the_same_images_in_memory(cifar_tree, streaming, corruption):
    root, tree = cifar_tree
    memory = prepare_data("cifar10", corruption, 0.5, seed=3, train_size=TRAIN, test_size=TEST, root=root)
    files = prepare_data(streamed(tree), corruption, 0.5, seed=3, root=root)
    assert isinstance(files.x_train, ImageFiles) and isinstance(files.x_test, ImageFiles)
    assert np.array_equal(files.y_train, memory.y_train) and np.array_equal(files.y_train_true, memory.y_train_true)
    assert np.array_equal(files.corrupted, memory.corrupted)
    assert np.array_equal(as_float(files.x_train.read()), memory.x_train)
    assert np.array_equal(as_float(files.x_test.read()), memory.x_test)
    if corruption != "none":
        assert files.corrupted.any()


@pytest.mark.parametrize("corruption", ["random_labels", "gaussian"])
def test_a_streamed_run_trains_as_the_run_in_memory(cifar_tree, streaming, tmp_path, corruption):
    root, tree = cifar_tree
    histories = []
    for dataset, sizes in (("cifar10", dict(train_size=TRAIN, test_size=TEST)), (streamed(tree), {})):
        config = RunConfig(model="mlp_1x512", dataset=dataset, corruption=corruption, max_epochs=3, seed=1, **sizes)
        outcome = execute(config, tmp_path, data_root=root, device="cpu")
        assert outcome.row["status"] == "completed" and outcome.row["train_size"] == TRAIN
        histories.append(pq.read_table(tmp_path / "epochs" / f"{outcome.row['run_id']}.parquet").to_pandas())
    memory, files = histories
    for column in ("train_loss", "test_loss"):
        np.testing.assert_allclose(files[column], memory[column], rtol=1e-5)
    assert (abs(files.train_acc - memory.train_acc) * TRAIN <= 1).all()


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("corruption", ["random_labels", "random_pixels", "gaussian"])
def test_every_worker_count_and_epoch_reads_the_same_examples(cifar_tree, monkeypatch, corruption):
    root, tree = cifar_tree
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    data = prepare_data(streamed(tree), corruption, 1.0, seed=5, train_size=300, root=root)
    seen = []
    for workers in ("0", "1", "3"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        batches = StreamedBatches(data.x_train, torch.device("cpu"))
        for epoch in range(2):
            order = torch.randperm(300, generator=torch.Generator().manual_seed(epoch + int(workers)))
            epoch_batches = list(order.split(64))
            batches.start_epoch(epoch_batches)
            images = torch.empty(300, 32, 32, 3)
            for index in epoch_batches:
                images[index] = batches(index)
            seen.append(images)
    for images in seen[1:]:
        assert torch.equal(images, seen[0])
    assert np.array_equal(
        data.y_train, prepare_data(streamed(tree), corruption, 1.0, seed=5, train_size=300, root=root).y_train
    )


def write_tree(root: Path, classes=("cat", "dog"), per_class=2, side=12) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 256, size=(side, side + 3, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{index}.png")
    return root


def load_folder(tree: Path, options: str = ",size=8") -> object:
    return load_dataset(f"folder:{tree}{options}", tree.parent, download=False)


def test_a_tree_loads_in_imagefolder_order_with_options_and_relative_paths(tmp_path):
    write_tree(tmp_path / "pets", per_class=3)
    data = load_dataset("folder:pets,size=8,standardize=false", tmp_path, download=False)
    assert (
        data.num_classes == 2
        and data.y_train.tolist() == [0, 0, 0, 1, 1, 1]
        and data.y_test.tolist() == [0, 0, 0, 1, 1, 1]
    )
    assert data.x_train.shape == (6, 8, 8, 3) and data.input_shape == (3, 8, 8) and not data.standardize
    assert data.x_train.read().dtype == np.uint8


def flatten_classes(tree: Path) -> None:
    for path in list((tree / "train").glob("*/*.png")):
        path.rename(tree / "train" / f"{path.parent.name}-{path.name}")
    for folder in [path for path in (tree / "train").iterdir() if path.is_dir()]:
        folder.rmdir()


def empty_class(tree: Path) -> None:
    for path in (tree / "train" / "dog").iterdir():
        path.unlink()


@pytest.mark.parametrize(
    "breakage, message",
    [
        (flatten_classes, "train holds no class folders"),
        (
            lambda tree: (tree / "val" / "dog").rename(tree / "val" / "bird"),
            "same class folders .only in train: dog; only in val: bird",
        ),
        (empty_class, "train/dog holds no images"),
        (lambda tree: (tree / "val").rename(tree / "test"), "has no val folder"),
    ],
    ids=["no class folders", "train and val classes differ", "empty class", "no val split"],
)
def test_a_broken_tree_is_one_line_naming_the_problem(tmp_path, breakage, message):
    tree = write_tree(tmp_path / "tree")
    breakage(tree)
    with pytest.raises(DataError, match=message) as error:
        load_folder(tree)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("option", [",size=0", ",size=8,crop=9", ",standardize=maybe", ",colour=true"])
def test_bad_folder_options_are_refused(tmp_path, option):
    tree = write_tree(tmp_path / "tree")
    with pytest.raises(DataError, match="folder option|unknown folder option"):
        load_folder(tree, option)


def test_a_corrupt_image_among_a_thousand_ends_the_run_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    monkeypatch.setenv(WORKERS_ENV, "2")
    tree = write_jpeg_tree(tmp_path / "tree", classes=2, per_class={"train": 500, "val": 20}, short_side=(40, 48))
    broken = sorted((tree / "train" / "class1").iterdir())[321]
    broken.write_bytes(broken.read_bytes()[:200])
    config = RunConfig(model="mlp_1x512", dataset=f"folder:{tree},size=16", max_epochs=2)
    with pytest.raises(DataError, match=broken.name) as error:
        execute(config, tmp_path / "results", device="cpu")
    assert "\n" not in str(error.value)
    row = pq.read_table(next((tmp_path / "results" / "runs").glob("*.parquet"))).to_pylist()[0]
    assert row["status"] == "failed" and broken.name in row["error"]


def test_a_run_streams_photographs_and_learns_their_classes(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    monkeypatch.setenv(WORKERS_ENV, "2")
    tree = write_jpeg_tree(tmp_path / "tree", classes=4, per_class={"train": 60, "val": 20}, short_side=(60, 80))
    config = RunConfig(model="mlp_1x512", dataset=f"folder:{tree},size=32", max_epochs=8, batch_size=32)
    row = execute(config, tmp_path / "results", device="cpu").row
    assert row["status"] == "completed" and (row["train_size"], row["test_size"]) == (240, 80)
    assert row["test_acc"] > 0.5  # chance is 0.25


def test_an_image_too_small_for_the_model_is_one_line(tmp_path):
    tree = write_tree(tmp_path / "tree")
    config = RunConfig(model="inception_v3", dataset=f"folder:{tree},size=64", max_epochs=1)
    with pytest.raises(ValueError, match="inception_v3 needs 3-channel images of at least 75"):
        execute(config, tmp_path / "results", device="cpu")


def test_torchvision_data_sets_load_by_class_name(mnist_root, tmp_path):
    fashion = tmp_path / "FashionMNIST" / "raw"  # same IDX file names as MNIST's
    fashion.mkdir(parents=True)
    for path in (mnist_root / "MNIST" / "raw").iterdir():
        (fashion / path.name).symlink_to(path)
    data = load_dataset("torchvision:FashionMNIST", tmp_path, download=False)
    mnist = load_dataset("mnist", mnist_root, download=False)
    assert data.name == "torchvision:FashionMNIST" and data.num_classes == 10
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert np.array_equal(data.x_test, mnist.x_test) and np.array_equal(data.y_train, mnist.y_train)
    assert np.array_equal(load_dataset("torchvision:MNIST", mnist_root, download=False).x_train, mnist.x_train)


def test_a_torchvision_data_set_not_on_disk_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"torchvision:CIFAR100 is not under .*datasets.CIFAR100\(root=") as error:
        load_dataset("torchvision:CIFAR100", tmp_path, download=False)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="torchvision has no data set 'CIFAR1000'; it has: .*CIFAR100"):
        load_dataset("torchvision:CIFAR1000", tmp_path, download=False)


def test_a_tree_that_fits_the_budget_is_read_into_memory(tmp_path, monkeypatch):
    tree = write_tree(tmp_path / "tree")
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "1")
    data = prepare_data(f"folder:{tree},size=8", "random_pixels", root=tmp_path)
    assert isinstance(data.x_train, np.ndarray) and data.x_train.dtype == np.float32
    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    files = prepare_data(f"folder:{tree},size=8", "random_pixels", root=tmp_path)
    assert np.array_equal(as_float(files.x_train.read()), data.x_train)


def test_the_command_line_trains_on_a_folder_and_names_a_broken_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from harness.cli import create_app

    monkeypatch.setenv(MEMORY_BUDGET_ENV, "0")
    monkeypatch.setenv(WORKERS_ENV, "0")
    write_tree(tmp_path / "pets", per_class=4)
    app, results = create_app(), str(tmp_path / "results")
    common = ["run", "--plugin", "mlp_1x512", "--corruption", "random_labels", "--max-epochs", "2"]
    done = CliRunner().invoke(
        app, [*common, "--dataset", "folder:pets,size=8", "--data-root", str(tmp_path), "--results-dir", results]
    )
    assert done.exit_code == 0, done.output
    row = pq.read_table(next((tmp_path / "results" / "runs").glob("*.parquet"))).to_pylist()[0]
    assert row["dataset"] == "folder:pets,size=8" and row["train_size"] == 8 and row["status"] == "completed"
    broken = CliRunner().invoke(
        app, [*common, "--dataset", "folder:nowhere", "--data-root", str(tmp_path), "--results-dir", results]
    )
    assert broken.exit_code == 2 and "nowhere is not a folder" in broken.output
