"""``harness data``: look at exactly what a model is trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from harness.cli.common import DataRootOption, command
from harness.data import first_examples, load_dataset, prepare_data, read_all
from harness.errors import ConfigError
from harness.plugins.folders import write_image_folder
from harness.streaming import PIXEL_SCALE

data_app = typer.Typer(help="Inspect and export (corrupted) data sets.", no_args_is_help=True)

DatasetOption = typer.Option("cifar10", help="Dataset plugin.")
CorruptionOption = typer.Option("none", help="Corruption plugin.")
ProbOption = typer.Option(1.0, help="Corruption probability p.")
SeedOption = typer.Option(0)


@command(data_app, "preview")
def preview(
    out: Path = typer.Option(..., help="A file: the PNG grid to write."),
    dataset: str = DatasetOption,
    corruption: str = CorruptionOption,
    corrupt_prob: float = ProbOption,
    seed: int = SeedOption,
    count: int = typer.Option(32, help="Number of training images shown."),
    data_root: Path | None = DataRootOption,
):
    """A PNG grid of the first corrupted training images with their (corrupted) labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = prepare_data(dataset, corruption, corrupt_prob, seed, None, None, data_root)
    count = min(count, len(data.y_train))
    images = read_all(data.x_train[:count])
    images = images * PIXEL_SCALE if images.dtype == np.uint8 else images  # files without a corruption
    columns = min(8, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows + 0.4), squeeze=False)
    for i, axis in enumerate(axes.flat):
        axis.axis("off")
        if i < count:
            image = np.clip(images[i], 0, 1)
            axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            axis.set_title(f"label {data.y_train[i]}", fontsize=8)
    figure.suptitle(f"{dataset} / {corruption} (p={corrupt_prob}, seed={seed})")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    typer.echo(f"wrote {out}")


@command(data_app, "export")
def export(
    out: Path = typer.Option(..., help="A file: the .npz archive to write; with --layout folder, a folder."),
    dataset: str = DatasetOption,
    corruption: str = CorruptionOption,
    corrupt_prob: float = ProbOption,
    seed: int = SeedOption,
    train_size: int | None = typer.Option(None),
    test_size: int | None = typer.Option(None),
    data_root: Path | None = DataRootOption,
    layout: str = typer.Option(
        "npz", help="npz: the arrays; folder: the images as loaded, as a PNG tree that folder:PATH reads."
    ),
):
    """Write x_train, y_train, x_test, y_test after corruption, before crop and standardization
    (npz: float32 images in [0, 1], NHWC); or the uncorrupted images as an ImageFolder tree of lossless
    PNGs with a manifest of their order (--layout folder), which --dataset folder:PATH then trains on."""
    if layout not in ("npz", "folder"):
        raise ConfigError(f"--layout must be npz or folder, got '{layout}'")
    if layout == "folder":
        if corruption != "none":
            raise ConfigError("--layout folder writes the images as loaded: corrupt them in the run (--corruption)")
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} is not empty: --layout folder writes a new tree")
        data = first_examples(load_dataset(dataset, data_root), train_size, test_size)
        count = write_image_folder(data, out)
        typer.echo(f"wrote {out}: {count} PNG images; train on them with --dataset folder:{out}")
        return
    data = prepare_data(dataset, corruption, corrupt_prob, seed, train_size, test_size, data_root, streaming=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    typer.echo(f"wrote {out}: {len(data.y_train)} train, {len(data.y_test)} test images")
