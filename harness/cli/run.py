"""``harness run`` and ``harness rademacher``: train models on (corrupted) data."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli.common import (
    DataRootOption,
    DeviceOption,
    ResultsDirOption,
    console,
    err_console,
    fail,
    format_cell,
)


class RichRunProgress:
    """Epoch and batch bars with the live training loss and accuracy."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.epochs = self.batches = None
        self.shown_loss = None  # the loss shown next: ten steps old, so reading it does not wait for the device

    def start(self, config, batches_per_epoch):
        self.epochs = self.progress.add_task(f"{config.model} / {config.corruption}", total=config.epochs, stats="")
        self.batches = self.progress.add_task("  batches", total=batches_per_epoch, stats="")

    def batch(self, epoch, batch, loss):
        if batch == 1:
            self.progress.reset(self.batches)
        if batch % 10 == 0:
            stats = f"loss {self.shown_loss.item():.3f}" if self.shown_loss is not None else ""
            self.progress.update(self.batches, completed=batch, stats=stats)
            self.shown_loss = loss.detach()
        else:
            self.progress.update(self.batches, completed=batch)

    def epoch(self, row):
        stats = f"train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%} · test acc {row['test_acc']:.1%}"
        self.progress.update(self.epochs, completed=row["epoch"], stats=stats)


def run_command(
    plugin: str = typer.Option(..., "--plugin", help="Model plugin (see `harness plugins`)."),
    corruption: str = typer.Option("none", help="Corruption plugin: none, random_labels, shuffled_pixels, ..."),
    corrupt_prob: float = typer.Option(1.0, help="Probability p of replacing each training label (random_labels)."),
    dataset: str = typer.Option("cifar10", help="Dataset plugin."),
    regularizer: list[str] = typer.Option([], "--regularizer", help="NAME[=VALUE], repeatable."),
    epochs: int = typer.Option(100, help="Epoch limit; training also stops at 100 % training accuracy."),
    train_size: int | None = typer.Option(None, help="Use the first N training examples."),
    test_size: int | None = typer.Option(None, help="Use the first N test examples."),
    batch_size: int = typer.Option(128),
    lr: float | None = typer.Option(None, help="Initial learning rate (default: the model's)."),
    lr_decay: float = typer.Option(0.95, help="Learning-rate factor applied after every epoch."),
    seed: int = typer.Option(0),
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    force: bool = typer.Option(False, help="Run again even if this configuration already completed."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, tf32 (CUDA) or bf16 (autocast; float32 weights, BatchNorm and loss)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Channels-last layout of the model and inputs."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model for training and evaluation."),
):
    """Train a model on (corrupted) data and store the run in RESULTS/runs and RESULTS/epochs."""
    from harness.runner import RunConfig, execute

    config = RunConfig(
        model=plugin, corruption=corruption, dataset=dataset, corrupt_prob=corrupt_prob,
        regularizers=tuple(regularizer), seed=seed, train_size=train_size, test_size=test_size,
        epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay, precision=precision,
        channels_last=channels_last, compile=compile_model,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"))
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            outcome = execute(config, results_dir, data_root, device, force, RichRunProgress(progress))
    except KeyboardInterrupt:
        fail(f"interrupted; the finished epochs are stored in {results_dir}", code=130)
    row = outcome.row
    if outcome.skipped:
        console.print(f"already completed: run {row['run_id']} in {outcome.path} (use --force to run again)")
        return
    fit = f"fit at epoch {row['fit_epoch']}" if row["fit_epoch"] else "not fitted"
    console.print(
        f"run {row['run_id']}: {row['model']} on {row['dataset']}/{row['corruption']}: "
        f"train acc {row['train_acc']:.2%}, test acc {row['test_acc']:.2%}, {fit}, "
        f"{row['epochs']} epochs, {row['wall_seconds']:.1f} s -> {outcome.path}",
        highlight=False,
    )


def rademacher_command(
    plugin: str = typer.Option(..., "--plugin", help="Model plugin."),
    dataset: str = typer.Option("cifar10", help="Dataset plugin."),
    train_size: int = typer.Option(1000, help="Sample size n: the first n training examples."),
    trials: int = typer.Option(5, help="Number of random sign vectors."),
    epochs: int = typer.Option(100, help="Epoch limit per trial."),
    batch_size: int = typer.Option(128),
    lr: float | None = typer.Option(None, help="Initial learning rate (default: the model's)."),
    lr_decay: float = typer.Option(0.95),
    seed: int = typer.Option(0),
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Estimate the empirical Rademacher complexity of a model on a sample by fitting random signs."""
    from harness.rademacher import RademacherConfig, estimate

    config = RademacherConfig(plugin, dataset, train_size, trials, epochs, batch_size, lr, lr_decay, seed)
    summary, rows = estimate(config, results_dir, data_root, device)
    if as_json:
        print(json.dumps({**summary, "correlations": [r["correlation"] for r in rows]}, default=str))
        return
    table = Table("trial", "correlation", "train acc", "epochs", "fit epoch", title=f"{plugin} on {train_size} {dataset} images")
    for r in rows:
        table.add_row(str(r["trial"]), f"{r['correlation']:.4f}", f"{r['train_acc']:.2%}", str(r["epochs"]), format_cell(r["fit_epoch"]))
    console.print(table)
    console.print(f"Rademacher estimate {summary['estimate']:.4f} ± {summary['estimate_std']:.4f} over {trials} trials")
