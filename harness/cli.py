"""The ``harness`` command line."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import __version__
from harness.data import DataError
from harness.registry import KINDS, PluginError, UnknownNameError, get_registry
from harness.regularizers import RegularizerError
from harness.results import ResultsDirError, read_table

console = Console()
err_console = Console(stderr=True)

USER_ERRORS = (UnknownNameError, DataError, ResultsDirError, RegularizerError, PluginError, ValueError, RuntimeError)

DataRootOption = typer.Option(None, "--data-root", help="Data folder (default: $HARNESS_DATA_ROOT or a user cache folder).")
ResultsDirOption = typer.Option(Path("results"), "--results-dir", help="Results folder.")


def wide_console() -> Console:
    """The terminal's width, or 240 columns when output is not a terminal (tables stay readable in logs)."""
    return console if console.is_terminal else Console(width=240)


def fail(message: str, code: int = 2):
    """Print one error line and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class RichRunProgress:
    """Epoch and batch bars with the live training loss and accuracy."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.epochs = self.batches = None

    def start(self, config, batches_per_epoch):
        self.epochs = self.progress.add_task(f"{config.model} / {config.corruption}", total=config.epochs, stats="")
        self.batches = self.progress.add_task("  batches", total=batches_per_epoch, stats="")

    def batch(self, epoch, batch, loss):
        if batch == 1:
            self.progress.reset(self.batches)
        if batch % 10 == 0:
            self.progress.update(self.batches, completed=batch, stats=f"loss {loss.item():.3f}")
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
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    force: bool = typer.Option(False, help="Run again even if this configuration already completed."),
):
    """Train a model on (corrupted) data and store the run in RESULTS/runs and RESULTS/epochs."""
    from harness.runner import RunConfig, execute

    config = RunConfig(
        model=plugin, corruption=corruption, dataset=dataset, corrupt_prob=corrupt_prob,
        regularizers=tuple(regularizer), seed=seed, train_size=train_size, test_size=test_size,
        epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[stats]}"))
    try:
        with Progress(*columns, console=err_console, transient=False) as progress:
            outcome = execute(config, results_dir, data_root, device, force, RichRunProgress(progress))
    except USER_ERRORS as error:
        fail(str(error))
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


def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List every registered model, dataset, corruption, regularizer and feature map."""
    registry = get_registry()
    listing = {
        kind: [{"name": e.name, "source": e.source, **({"info": e.info} if e.info else {})} for e in registry.entries(kind)]
        for kind in KINDS
    }
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    table = Table("kind", "name", "from", "info")
    for kind, entries in listing.items():
        for entry in entries:
            info = ", ".join(f"{k}={v}" for k, v in entry.get("info", {}).items())
            table.add_row(kind, entry["name"], entry["source"], info)
    console.print(table)


RESULT_COLUMNS = ("run_id", "status", "model", "dataset", "corruption", "corrupt_prob", "regularizers", "seed",
                  "train_size", "epochs", "train_acc", "test_acc", "fit_epoch", "fit_step", "wall_seconds")


def results_command(
    results_dir: Path = ResultsDirOption,
    model: str | None = typer.Option(None, help="Only this model."),
    corruption: str | None = typer.Option(None, help="Only this corruption."),
    output_format: str = typer.Option("table", "--format", help="table, csv or json."),
):
    """Show stored runs."""
    if output_format not in ("table", "csv", "json"):
        fail(f"unknown format '{output_format}'; known: table, csv, json")
    table = read_table(results_dir, "runs")
    rows = table.to_pylist() if table is not None else []
    rows = [r for r in rows if (model is None or r["model"] == model) and (corruption is None or r["corruption"] == corruption)]
    rows.sort(key=lambda r: (r["started_at"] is not None, r["started_at"] or 0))  # runs that failed to start first
    if output_format == "json":
        print(json.dumps(rows, default=str, indent=2))
    elif output_format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else list(RESULT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    else:
        view = Table(*RESULT_COLUMNS, title=f"{len(rows)} runs in {results_dir}")
        for r in rows:
            view.add_row(*(format_cell(r[c]) for c in RESULT_COLUMNS))
        wide_console().print(view)


def schema_command():
    """Print every results table's columns (name, type, meaning) as markdown."""
    from harness.tables import markdown

    print(markdown())


def format_cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return " ".join(value) or "-"
    return "-" if value is None else str(value)


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
    device: str = typer.Option("auto"),
    data_root: Path | None = DataRootOption,
    results_dir: Path = ResultsDirOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Estimate the empirical Rademacher complexity of a model on a sample by fitting random signs."""
    from harness.rademacher import RademacherConfig, estimate

    config = RademacherConfig(plugin, dataset, train_size, trials, epochs, batch_size, lr, lr_decay, seed)
    try:
        summary, rows = estimate(config, results_dir, data_root, device)
    except USER_ERRORS as error:
        fail(str(error))
    if as_json:
        print(json.dumps({**summary, "correlations": [r["correlation"] for r in rows]}, default=str))
        return
    table = Table("trial", "correlation", "train acc", "epochs", "fit epoch", title=f"{plugin} on {train_size} {dataset} images")
    for r in rows:
        table.add_row(str(r["trial"]), f"{r['correlation']:.4f}", f"{r['train_acc']:.2%}", str(r["epochs"]), format_cell(r["fit_epoch"]))
    console.print(table)
    console.print(f"Rademacher estimate {summary['estimate']:.4f} ± {summary['estimate_std']:.4f} over {trials} trials")


def add_plugin_commands(app: typer.Typer) -> None:
    """Let plugins add sub-commands; a broken one is reported, not fatal (unless strict)."""
    registry = get_registry()
    for impl in registry.plugin_manager.hook.register_commands.get_hookimpls():
        try:
            impl.function(app=app)
        except Exception as error:
            source = registry.sources[impl.plugin_name]
            if registry.strict:
                raise PluginError(f"plugin {source} failed to add commands: {error}") from error
            err_console.print(f"[yellow]warning:[/] plugin {source} failed to add commands: {error}", highlight=False)


def create_app() -> typer.Typer:
    """The ``harness`` app with its built-in and plugin commands."""
    from harness.data_cli import data_app
    from harness.kernel_cli import kernel_command
    from harness.memorization_cli import memorization_command
    from harness.reports.cli import report_app
    from harness.sweep import sweep_command
    from harness.theory.cli import theory_app

    app = typer.Typer(help=f"harness {__version__}: randomization tests for neural networks and kernel machines.",
                      no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    app.command("run")(run_command)
    app.command("plugins")(plugins_command)
    app.command("results")(results_command)
    app.command("schema")(schema_command)
    app.add_typer(data_app, name="data")
    app.command("sweep")(sweep_command)
    app.add_typer(report_app, name="report")
    app.command("rademacher")(rademacher_command)
    app.command("kernel")(kernel_command)
    app.command("memorization")(memorization_command)
    app.add_typer(theory_app, name="theory")
    add_plugin_commands(app)
    return app


def main() -> None:
    try:
        registry = get_registry()
        app = create_app()
    except PluginError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    for warning in registry.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    app()
