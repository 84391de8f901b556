"""``harness run`` and ``harness rademacher``: train models on (corrupted) data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import typer
from rich.progress import Progress
from rich.table import Table

from harness.cli.common import (
    ChannelsLastOption,
    CompileOption,
    DataRootOption,
    DeviceOption,
    FormatOption,
    LogOption,
    NprocPerNodeOption,
    OutputFormat,
    PrecisionOption,
    ResultsDirOption,
    SyncBnOption,
    console,
    emit,
    err_console,
    fail,
    format_cell,
)
from harness.cli.progress import Countdown, format_seconds, progress_columns


class LossOnItsWay:
    """A training loss copied to the host without waiting for the device (CUDA: a non-blocking copy
    and an event that says when it has landed)."""

    def __init__(self, loss: torch.Tensor):
        self.host = loss.detach().to("cpu", non_blocking=True)
        self.landed = None
        if loss.device.type == "cuda":
            self.landed = torch.cuda.Event()
            self.landed.record()

    def arrived(self) -> bool:
        """Whether :meth:`value` can be read without waiting."""
        return self.landed is None or self.landed.query()

    def value(self) -> float:
        return self.host.item()


class RichRunProgress:
    """Epoch and batch bars with the live training loss and accuracy, the time left in the epoch,
    and at most left in the run (training stops sooner once it fits its training set)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.epochs = self.batches = None
        self.epoch_clock = self.run_clock = None
        self.epoch_seconds: float | None = None
        self.epoch_stats = ""
        self.shown_loss = ""
        self.next_loss: LossOnItsWay | None = None  # shown once it is on the host: the device is never waited for

    def start(self, config, batches_per_epoch):
        self.epochs = self.progress.add_task(f"{config.model} / {config.corruption}", total=config.max_epochs, stats="")
        self.batches = self.progress.add_task("  batches", total=batches_per_epoch, stats="")
        self.epoch_clock = Countdown(batches_per_epoch)
        self.max_epochs = config.max_epochs

    def batch(self, epoch, batch, loss):
        if batch == 1:
            self.progress.reset(self.batches)
            if self.run_clock is None:  # a resumed run times only the epochs it trains now
                self.run_clock = Countdown(self.max_epochs, done=epoch - 1, started=self.epoch_clock.started)
        if batch % 10 and batch != self.epoch_clock.total:
            self.progress.update(self.batches, completed=batch)
            return
        epoch_left = self.epoch_clock.seconds_left(batch)
        epoch_seconds = self.epoch_seconds or self.epoch_clock.seconds_per_step(batch) * self.epoch_clock.total
        run_left = epoch_left + epoch_seconds * (self.max_epochs - epoch)
        if self.next_loss is None or self.next_loss.arrived():
            if self.next_loss is not None:
                self.shown_loss = f"loss {self.next_loss.value():.3f} · "
            self.next_loss = LossOnItsWay(loss)
        self.progress.update(
            self.batches, completed=batch, stats=f"{self.shown_loss}{format_seconds(epoch_left)} left in the epoch"
        )
        self.show_epoch_stats(run_left)

    def epoch(self, row):
        self.epoch_stats = (
            f"train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%} · test acc {row['test_acc']:.1%}"
        )
        self.progress.update(self.epochs, completed=row["epoch"])
        self.epoch_clock.restart(self.epoch_clock.total)  # the next epoch's batches start now
        self.epoch_seconds = self.run_clock.seconds_per_step(row["epoch"])  # evaluations included
        self.show_epoch_stats(self.run_clock.seconds_left(row["epoch"]))

    def show_epoch_stats(self, run_left: float | None) -> None:
        left = None if run_left is None else f"at most {format_seconds(run_left)} left"
        self.progress.update(self.epochs, stats=" · ".join(filter(None, (self.epoch_stats, left))))


def run_command(
    plugin: str = typer.Option(..., "--plugin", help="Model plugin (see `harness plugins`)."),
    corruption: str = typer.Option("none", help="Corruption plugin: none, random_labels, shuffled_pixels, ..."),
    corrupt_prob: float = typer.Option(1.0, help="Probability p of replacing each training label (random_labels)."),
    dataset: str = typer.Option("cifar10", help="Dataset plugin."),
    regularizer: list[str] = typer.Option([], "--regularizer", help="NAME[=VALUE], repeatable."),
    max_epochs: int = typer.Option(100, help="Epoch limit; training also stops at 100 % training accuracy."),
    train_size: int | None = typer.Option(None, help="Use the first N training examples."),
    test_size: int | None = typer.Option(None, help="Use the first N test examples."),
    batch_size: int = typer.Option(128, help="Mini-batch size."),
    lr: float | None = typer.Option(None, help="Initial learning rate (default: the model's)."),
    lr_decay: float = typer.Option(0.95, help="Learning-rate factor applied after every epoch."),
    momentum: float = typer.Option(0.9, help="SGD momentum."),
    seed: int = typer.Option(0, help="Seed of the corruption, the model's initialization and the batch order."),
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    force: bool = typer.Option(False, help="Run again even if this configuration already completed."),
    log: list[str] = LogOption,
    precision: str | None = PrecisionOption,
    channels_last: bool | None = ChannelsLastOption,
    compile: bool | None = CompileOption,
    sync_bn: bool | None = SyncBnOption,
    nproc_per_node: int | None = NprocPerNodeOption,
):
    """Train a model on (corrupted) data and store the run in RESULTS/runs and RESULTS/epochs.

    Started by torchrun (or with --nproc-per-node), the run is data-parallel: every process trains its
    share of each batch, and rank 0 stores the run."""
    from harness import distributed
    from harness.config import RunConfig
    from harness.runner import execute

    options = dict(
        model=plugin,
        corruption=corruption,
        dataset=dataset,
        corrupt_prob=corrupt_prob,
        regularizers=tuple(regularizer),
        seed=seed,
        train_size=train_size,
        test_size=test_size,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        lr_decay=lr_decay,
        momentum=momentum,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        sync_bn=sync_bn,
    )
    config = RunConfig(**{name: value for name, value in options.items() if value is not None})  # None: the default
    if nproc_per_node is not None and not distributed.launched():
        launch(config, device, results_dir, nproc_per_node)
        return
    main = os.environ.get("RANK", "0") == "0"  # the other processes of a data-parallel run show nothing
    try:
        with Progress(*progress_columns(), console=err_console, transient=False, disable=not main) as progress:
            outcome = execute(
                config,
                results_dir,
                data_root=data_root,
                device=device,
                force=force,
                progress=RichRunProgress(progress),
                log=tuple(log),
            )
    except KeyboardInterrupt:
        fail(f"interrupted; the finished epochs are stored in {results_dir}", code=130)
    if main:
        show_outcome(outcome)


def launch(config, device: str, results_dir: Path, nproc: int) -> None:
    """This command line again on ``nproc`` processes (:func:`harness.distributed.launch`); a failed process
    is named in the run's row, which is then ``failed``."""
    from harness import distributed
    from harness.results import read_row, table_path
    from harness.runner import RunOutcome, check_run, record_failure

    config, _ = check_run(config, device)
    try:
        distributed.launch(sys.argv[1:], nproc)
    except distributed.LaunchInterrupted as error:
        fail(f"interrupted ({error}); the finished epochs are stored in {results_dir}", code=130)
    except distributed.RankFailed as error:
        row = record_failure(results_dir, config, f"{error} of {nproc} processes", naming=True)
        fail(f"run {config.run_id} failed: {row['error']}", code=1)
    outcome = RunOutcome(read_row(results_dir, "runs", config.run_id), table_path(results_dir, "runs", config.run_id))
    show_outcome(outcome)


def show_outcome(outcome) -> None:
    """One line: the run's id, accuracies, fit and where it is stored (or that it was already)."""
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
    max_epochs: int = typer.Option(100, help="Epoch limit per trial."),
    batch_size: int = typer.Option(128),
    lr: float | None = typer.Option(None, help="Initial learning rate (default: the model's)."),
    lr_decay: float = typer.Option(0.95),
    seed: int = typer.Option(0),
    device: str = DeviceOption,
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    output_format: OutputFormat = FormatOption,
):
    """Estimate the empirical Rademacher complexity of a model on a sample by fitting random signs."""
    from harness.rademacher import RademacherConfig, estimate

    config = RademacherConfig(
        model=plugin,
        dataset=dataset,
        n=train_size,
        trials=trials,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        lr_decay=lr_decay,
        seed=seed,
    )
    summary, rows = estimate(config, results_dir, data_root=data_root, device=device)

    def show_table():
        table = Table(
            "trial",
            "correlation",
            "train acc",
            "epochs",
            "fit epoch",
            title=f"{plugin} on {train_size} {dataset} images",
        )
        for r in rows:
            table.add_row(
                str(r["trial"]),
                f"{r['correlation']:.4f}",
                f"{r['train_acc']:.2%}",
                str(r["epochs"]),
                format_cell(r["fit_epoch"]),
            )
        console.print(table)
        console.print(
            f"Rademacher estimate {summary['estimate']:.4f} ± {summary['estimate_std']:.4f} over {trials} trials"
        )

    emit(output_format, rows, show_table, as_json={**summary, "correlations": [r["correlation"] for r in rows]})
